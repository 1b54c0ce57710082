"""Telemetry samplers on the node's monotonic clock, in long form: (t_ns, source, metric, value, unit)."""

from ._collect import Collector, Sampler
from .host import HostSampler

__all__ = ["Collector", "Sampler", "HostSampler"]
