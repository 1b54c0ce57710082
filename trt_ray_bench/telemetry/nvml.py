"""NVIDIA GPU telemetry through NVML (nvidia-ml-py, ``import pynvml``), one GPU per sampler.

Metric names match the Jetson sampler's where they mean the same thing: ``gpu_freq_mhz``
(SM clock), ``gpu_graphics_mhz``, ``mem_freq_mhz``, ``gpu_util_pct``, ``mem_util_pct``,
``power_mw:gpu``, ``temp_c:gpu``, ``pstate`` (P0 = 0; NVML says 32 when unknown),
``throttle_reasons`` (the clock-event bitmask; ``decode_throttle_reasons`` names it),
``mem_used_mib`` (MiB, 2**20 bytes) and ``energy_mj:gpu``, the GPU's total-energy counter
(``nvmlDeviceGetTotalEnergyConsumption``: millijoules since the driver loaded, Volta and
newer; read at every poll, so a window's energy is the counter interpolated to its edges
with no call on the timed path: ``results.energy``).

Averaged readings carry the period they average (``avg_s``, see ``_collect.Reading``):
``gpu_util_pct`` / ``mem_util_pct`` are the share of time busy over NVML's sample period,
1/6 s to 1 s depending on the product (the shortest is taken: ``UTIL_AVG_S``);
``power_mw:gpu`` is averaged over 1 s on Ampere (compute capability 8.6 and up, not GA100)
and newer, instantaneous before (``power_avg_s``).

pynvml is imported when a sampler is made, so the package imports without it.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import lazy_import
from ._collect import Reading

MiB = 2**20
#: NVML's utilisation sample period: "between 1 second and 1/6 second depending on the product"
UTIL_AVG_S = 1.0 / 6
#: nvmlDeviceGetPowerUsage on Ampere (except GA100) and newer: "averaged over 1 sec interval"
POWER_AVG_S = 1.0


def power_avg_s(cc: Optional[Tuple[int, int]]) -> float:
    """The period ``nvmlDeviceGetPowerUsage`` averages on a GPU of compute capability
    ``cc``: 1 s from GA10x (8.6) on, 0 (instantaneous) before; 1 s when unknown."""
    if cc is None:
        return POWER_AVG_S
    return POWER_AVG_S if tuple(cc) >= (8, 6) else 0.0


#: metric -> the period it averages (``power_mw:gpu`` set per GPU in ``NvmlSampler``)
_AVERAGED = {"gpu_util_pct": UTIL_AVG_S, "mem_util_pct": UTIL_AVG_S}

#: What an NVML call raises when this GPU, driver or container cannot answer it at all:
#: asking again will not help, so the call is dropped from later polls.
_UNAVAILABLE = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", "NVMLError_NoPermission")

#: Clock event (throttle) reasons: our name, pynvml's constant suffix, NVML's documented bit.
_REASONS = (
    ("gpu_idle", "GpuIdle", 0x1),
    ("applications_clocks_setting", "ApplicationsClocksSetting", 0x2),
    ("sw_power_cap", "SwPowerCap", 0x4),
    ("hw_slowdown", "HwSlowdown", 0x8),
    ("sync_boost", "SyncBoost", 0x10),
    ("sw_thermal_slowdown", "SwThermalSlowdown", 0x20),
    ("hw_thermal_slowdown", "HwThermalSlowdown", 0x40),
    ("hw_power_brake_slowdown", "HwPowerBrakeSlowdown", 0x80),
    ("display_clock_setting", "DisplayClockSetting", 0x100),
)


def _pynvml():
    return lazy_import("pynvml", "tensorrt", "NVML telemetry")


class _Reader:
    """One NVML call and the metrics it yields. ``calls`` are alternatives, best first
    (a newer NVML function, then the one older drivers have); each returns a tuple of
    values, one per entry of ``outputs``."""

    __slots__ = ("outputs", "calls")

    def __init__(self, outputs: Sequence[Tuple[str, str]], *calls: Callable[[], tuple]):
        self.outputs = tuple(outputs)
        self.calls = [c for c in calls if c is not None]


def _readers(nvml, h) -> List[_Reader]:
    """The table: every NVML call a poll makes, built once per sampler."""

    def one(name: str, *args, scale: float = 1.0):
        fn = getattr(nvml, name, None)  # absent in an older pynvml: no such alternative
        if fn is None:
            return None
        if scale == 1.0:
            return lambda: (fn(h, *args),)
        return lambda: (fn(h, *args) / scale,)

    def util():
        u = nvml.nvmlDeviceGetUtilizationRates(h)  # one call, two metrics
        return u.gpu, u.memory

    def mem_used():
        return (nvml.nvmlDeviceGetMemoryInfo(h).used / MiB,)

    return [
        _Reader([("gpu_freq_mhz", "MHz")], one("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM)),
        _Reader([("gpu_graphics_mhz", "MHz")], one("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_GRAPHICS)),
        _Reader([("mem_freq_mhz", "MHz")], one("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM)),
        _Reader([("gpu_util_pct", "%"), ("mem_util_pct", "%")], util),
        _Reader([("power_mw:gpu", "mW")], one("nvmlDeviceGetPowerUsage")),
        _Reader([("temp_c:gpu", "C")],
                one("nvmlDeviceGetTemperatureV", nvml.NVML_TEMPERATURE_GPU),  # the unversioned
                one("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU)),  # goes in CUDA 14
        _Reader([("pstate", "")], one("nvmlDeviceGetPerformanceState")),
        _Reader([("throttle_reasons", "bitmask")],
                one("nvmlDeviceGetCurrentClocksEventReasons"),  # NVML >= 535
                one("nvmlDeviceGetCurrentClocksThrottleReasons")),
        _Reader([("mem_used_mib", "MiB")], mem_used),
        _Reader([("energy_mj:gpu", "mJ")], one("nvmlDeviceGetTotalEnergyConsumption")),
    ]


class NvmlSampler:
    """Clocks, utilization, power, temperature, P-state, clock event reasons and memory of
    one GPU. A call this GPU does not support (or an older driver lacks) is dropped after
    its first failure, falling back to an older call where there is one; ``unavailable``
    says which and why. Other NVML errors propagate (the Collector records them).

    ``nvml`` is the pynvml module; tests pass a stand-in where no GPU exists."""

    source = "nvml"

    def __init__(self, index: int = 0, nvml=None, uuid: Optional[str] = None):
        """``uuid`` (``GPU-...``): the GPU by its UUID, which no device ordering changes
        (the Monitor samples its experiment's leased GPU so, as source ``nvml``);
        otherwise NVML's ``index``."""
        self.nvml = nvml if nvml is not None else _pynvml()
        self.index = index
        self.uuid = uuid
        if index and not uuid:  # several samplers must not mix their rows in the long-form table
            self.source = f"nvml:{index}"
        self.nvml.nvmlInit()
        self.handle = handle_by_uuid(self.nvml, uuid) if uuid else self.nvml.nvmlDeviceGetHandleByIndex(index)
        self._unavailable = tuple(getattr(self.nvml, n) for n in _UNAVAILABLE if hasattr(self.nvml, n))
        #: metric -> why it is not (or no longer) read, e.g. "Not Supported"
        self.unavailable: Dict[str, str] = {}
        self._readers = []
        for r in _readers(self.nvml, self.handle):
            if r.calls:
                self._readers.append(r)
            else:
                self.unavailable.update((m, "not in this pynvml") for m, _ in r.outputs)
        self._stale = False
        try:
            cc = tuple(self.nvml.nvmlDeviceGetCudaComputeCapability(self.handle))
        except Exception:  # noqa: BLE001 - an older pynvml or a stand-in: assume averaged
            cc = None
        #: metric -> the period its value averages (the Collector stores it as ``avg_s``)
        self.avg_s = dict(_AVERAGED, **{"power_mw:gpu": power_avg_s(cc)})

    @property
    def metrics(self) -> List[str]:
        """The metrics a poll still reads."""
        return [m for r in self._readers for m, _ in r.outputs]

    def read(self) -> Iterable[Reading]:
        out: List[Reading] = []
        append = out.append
        for r in self._readers:
            try:
                values = r.calls[0]()
            except self._unavailable as exc:
                values = self._fall_back(r, exc)
                if values is None:
                    continue
            for (metric, unit), v in zip(r.outputs, values):
                append((metric, v, unit))
        if self._stale:
            self._readers = [r for r in self._readers if r.calls]
            self._stale = False
        return out

    def read_metric(self, metric: str) -> Optional[float]:
        """One metric now (``temp_c:gpu`` for a cooldown), outside the polls; None where
        this GPU does not give it or the call fails."""
        for r in list(self._readers):
            for i, (m, _) in enumerate(r.outputs):
                if m == metric and r.calls:
                    try:
                        return float(r.calls[0]()[i])
                    except Exception:  # noqa: BLE001 - the polls drop a failing call; here: no value
                        return None
        return None

    def _fall_back(self, r: _Reader, exc: Exception) -> Optional[tuple]:
        """Drop ``r``'s failing call for good; the next alternative answers this poll."""
        while True:
            r.calls.pop(0)
            if not r.calls:
                for metric, _ in r.outputs:
                    self.unavailable[metric] = str(exc)
                self._stale = True
                return None
            try:
                return r.calls[0]()
            except self._unavailable as e:
                exc = e

    def close(self) -> None:
        """Release this sampler's hold on NVML (nvmlInit counts its callers)."""
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down is best effort
            pass


def decode_throttle_reasons(mask: int) -> List[str]:
    """Names of the clock event (throttle) reasons set in ``mask``; bits NVML documents
    beyond these come back as one ``other_0x...`` entry. Works without pynvml, from the
    documented bit values, so stored telemetry can be read anywhere."""
    try:
        import pynvml as nvml
    except ImportError:
        nvml = None
    mask = int(mask)
    names, known = [], 0
    for name, suffix, bit in _REASONS:
        for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
            v = getattr(nvml, prefix + suffix, None)
            if v is not None:
                bit = v
                break
        known |= bit
        if mask & bit:
            names.append(name)
    rest = mask & ~known
    if rest:
        names.append(f"other_0x{rest:x}")
    return names


def handle_by_uuid(nvml, uuid: str):
    """``nvmlDeviceGetHandleByUUID``; pynvml releases before str arguments took bytes."""
    try:
        return nvml.nvmlDeviceGetHandleByUUID(uuid)
    except (TypeError, ctypes.ArgumentError):
        return nvml.nvmlDeviceGetHandleByUUID(uuid.encode())


def gpu_info(index: int = 0, nvml=None) -> dict:
    """Provenance of one GPU: name, uuid, driver and CUDA driver versions, memory total,
    highest SM and memory clocks, enforced power limit. A value NVML cannot give is None."""
    nvml = nvml if nvml is not None else _pynvml()
    nvml.nvmlInit()
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)

        def cuda_version():
            v = nvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12040
            return f"{v // 1000}.{v % 1000 // 10}"

        fields = {
            "name": lambda: nvml.nvmlDeviceGetName(h),
            "uuid": lambda: nvml.nvmlDeviceGetUUID(h),
            "driver_version": nvml.nvmlSystemGetDriverVersion,
            "cuda_driver_version": cuda_version,
            "memory_total_mib": lambda: nvml.nvmlDeviceGetMemoryInfo(h).total / MiB,
            "max_sm_mhz": lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM),
            "max_mem_mhz": lambda: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM),
            "power_limit_mw": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h),
        }
        info = {"index": index}
        for key, get in fields.items():
            try:
                v = get()
            except nvml.NVMLError:
                v = None
            info[key] = v.decode() if isinstance(v, bytes) else v
        return info
    finally:
        nvml.nvmlShutdown()
