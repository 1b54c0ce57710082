"""Telemetry samplers on the node's monotonic clock, in long form: (t_ns, source, metric, value, unit)."""

from ._collect import Collector, Sampler
from .host import HostSampler
from .nvml import NvmlSampler, decode_throttle_reasons, gpu_info

__all__ = ["Collector", "Sampler", "HostSampler", "NvmlSampler", "decode_throttle_reasons", "gpu_info"]
