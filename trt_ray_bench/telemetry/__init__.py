"""Telemetry samplers on the node's monotonic clock, in long form: (t_ns, source, metric, value, unit)."""

from ._collect import Collector, Sampler, StreamingSampler
from .host import HostSampler
from .nvml import NvmlSampler, decode_throttle_reasons, gpu_info
from .tegrastats import TegrastatsSampler
from .tegrastats import parse_line as parse_tegrastats_line
from .tegrastats import read_log as read_tegrastats_log

__all__ = ["Collector", "Sampler", "StreamingSampler", "HostSampler", "NvmlSampler", "TegrastatsSampler",
           "decode_throttle_reasons", "gpu_info", "parse_tegrastats_line", "read_tegrastats_log"]
