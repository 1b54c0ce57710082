"""The machine a number is taken on: platform detection and provenance, and the controls
a run may apply and always restores (pyperf "system tune" style: each control one small
class with ``available()``, ``read()``, ``apply(mode)``, ``restore()``)."""

from .clocks import NvidiaSmiClocks
from .machine import MachineControls
from .mps import MpsDaemon
from .platform import collect_provenance, detect_gpus, detect_platform

__all__ = ["MachineControls", "MpsDaemon", "NvidiaSmiClocks", "collect_provenance", "detect_gpus", "detect_platform"]
