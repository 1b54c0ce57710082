"""The machine a number is taken on: platform detection and provenance, and the controls
a run may apply and always restores (pyperf "system tune" style: each control one small
class with ``available()``, ``read()``, ``check(mode)``, ``apply(mode)``, ``restore()``):
desktop GPUs through nvidia-smi and MPS, Jetsons through nvpmodel, jetson_clocks and the
GPU's devfreq node. ``doctor_lines()`` says what this machine offers."""

from .clocks import NvidiaSmiClocks
from .devfreq import GpuDevfreq
from .doctor import doctor_lines
from .gpus import board_kind, detect_gpus
from .jetson_clocks import JetsonClocks
from .machine import MachineControls
from .mps import MpsDaemon
from .nvpmodel import NvpModel
from .platform import collect_provenance, detect_platform

__all__ = ["GpuDevfreq", "JetsonClocks", "MachineControls", "MpsDaemon", "NvidiaSmiClocks", "NvpModel",
           "board_kind", "collect_provenance", "detect_gpus", "detect_platform", "doctor_lines"]
