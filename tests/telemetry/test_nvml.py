"""NVML sampler: on a real GPU where one answers (skipped elsewhere), and its reader table
on any machine through a stand-in NVML module."""

import inspect
import sys
import time
from collections import Counter

import pytest

from trt_ray_bench.errors import MissingExtra
from trt_ray_bench.telemetry import Collector, NvmlSampler, decode_throttle_reasons, gpu_info

METRICS = {
    "gpu_freq_mhz", "gpu_graphics_mhz", "mem_freq_mhz", "gpu_util_pct", "mem_util_pct",
    "power_mw:gpu", "temp_c:gpu", "pstate", "throttle_reasons", "mem_used_mib", "energy_mj:gpu",
}


# ------------------------------------------------------------------------ a real GPU
@pytest.fixture(scope="module")
def nvml():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        pytest.skip(f"no NVML here: {exc}")
    if n == 0:
        pynvml.nvmlShutdown()
        pytest.skip("NVML sees no GPU")
    yield pynvml
    pynvml.nvmlShutdown()


def test_gpu_sampler_at_100_hz(nvml):
    s = NvmlSampler(0)
    c = Collector([s], interval_s=0.01).start()
    time.sleep(0.5)
    rows = c.stop()
    s.close()
    assert c.errors == []
    assert set(rows["source"]) == {"nvml"}
    assert len(set(rows["t_ns"])) >= 40
    assert set(rows["metric"]) == METRICS, f"unavailable on this GPU: {s.unavailable}"
    by = {}
    for m, v in zip(rows["metric"], rows["value"]):
        by.setdefault(m, []).append(v)
    for m in ("gpu_freq_mhz", "gpu_graphics_mhz", "mem_freq_mhz"):
        assert min(by[m]) > 0, m
    for m in ("gpu_util_pct", "mem_util_pct"):
        assert all(0 <= v <= 100 for v in by[m]), m
    assert min(by["power_mw:gpu"]) > 0
    assert all(0 < v < 120 for v in by["temp_c:gpu"])
    assert all(0 <= v <= 15 for v in by["pstate"])
    assert min(by["mem_used_mib"]) > 0
    assert all(v == int(v) >= 0 for v in by["throttle_reasons"])
    energy = by["energy_mj:gpu"]  # the total-energy counter only grows, by about the power times the time
    assert all(b >= a for a, b in zip(energy, energy[1:])) and energy[-1] > energy[0]
    joules, watts = (energy[-1] - energy[0]) / 1e3, sum(by["power_mw:gpu"]) / len(by["power_mw:gpu"]) / 1e3
    assert 0.2 * watts * 0.45 < joules < 3 * watts * 0.55, (joules, watts)
    print("clock event reasons seen:", sorted({n for v in by["throttle_reasons"] for n in decode_throttle_reasons(v)}))


def test_gpu_info(nvml):
    info = gpu_info(0)
    assert info["name"] and info["uuid"].startswith("GPU-")
    assert info["driver_version"] and info["cuda_driver_version"].count(".") == 1
    assert info["memory_total_mib"] > 1000
    assert info["max_sm_mhz"] > 0 and info["max_mem_mhz"] > 0
    assert info["power_limit_mw"] > 0


def test_sampler_by_uuid_and_the_gpu_list(nvml, monkeypatch):
    """The Monitor's way: the GPU by UUID; and the GPU list trb leases from, NVML's."""
    from trt_ray_bench.control.gpus import list_gpus, visible_gpus

    info = gpu_info(0)
    s = NvmlSampler(0, uuid=info["uuid"])
    got = {m for m, _, _ in s.read()}
    s.close()
    assert s.source == "nvml" and "gpu_freq_mhz" in got
    monkeypatch.delenv("TRB_GPU_SOURCE", raising=False)
    gpus = list_gpus()
    assert len(gpus) == nvml.nvmlDeviceGetCount() and (gpus[0].uuid, gpus[0].name) == (info["uuid"], info["name"])
    assert visible_gpus(gpus[-1].uuid, gpus) == [gpus[-1]] and visible_gpus(str(gpus[-1].index), gpus) == [gpus[-1]]


# ------------------------------------------------------------- any machine: stand-in
class FakeNvml:
    """A stand-in for the pynvml module, for machines where NVML cannot exist (no GPU,
    no driver). It carries pynvml's own error classes and constants; its functions have
    pynvml's names and return fixed values, except those named in ``fail``, which raise
    the given real pynvml error. Only the sampler's handling of what NVML answers is under
    test here; what a real GPU answers is tested above."""

    def __init__(self, pynvml, fail=None, drop=()):
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError", "nvmlClocks")):
                setattr(self, name, getattr(pynvml, name))
        self.fail = fail or {}
        self.calls = Counter()
        funcs = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetHandleByIndex": lambda i: ("handle", i),
            "nvmlDeviceGetHandleByUUID": lambda uuid: ("handle", uuid),
            "nvmlDeviceGetClockInfo": lambda h, t: {0: 1500, 1: 1410, 2: 2619}[t],
            "nvmlDeviceGetUtilizationRates": lambda h: type("U", (), {"gpu": 37, "memory": 12})(),
            "nvmlDeviceGetPowerUsage": lambda h: 71000,
            "nvmlDeviceGetTemperatureV": lambda h, sensor: 41,
            "nvmlDeviceGetTemperature": lambda h, sensor: 42,
            "nvmlDeviceGetPerformanceState": lambda h: 0,
            "nvmlDeviceGetCurrentClocksEventReasons": lambda h: 0x1,
            "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: 0x4,
            "nvmlDeviceGetMemoryInfo": lambda h: type("M", (), {"used": 3 * 2**20, "total": 80 * 2**30})(),
            # millijoules since the driver loaded: 71 W for 0.1 s per call
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: 5_000_000 + 7100 * self.calls[
                "nvmlDeviceGetTotalEnergyConsumption"],
        }
        self.functions = {k: fn for k, fn in funcs.items() if k not in drop}
        for name, fn in self.functions.items():
            setattr(self, name, self._counted(name, fn))

    def _counted(self, name, fn):
        def call(*args):
            self.calls[name] += 1
            if name in self.fail:
                raise self.fail[name]
            return fn(*args)

        return call


@pytest.fixture(scope="module")
def pynvml():
    return pytest.importorskip("pynvml")


def _by_metric(readings):
    return {m: (v, u) for m, v, u in readings}


def test_the_stand_in_calls_exist_in_pynvml_with_the_same_arguments(pynvml):
    fake = FakeNvml(pynvml)
    for name in fake.functions:
        args = len(inspect.signature(fake.functions[name]).parameters)
        inspect.signature(getattr(pynvml, name)).bind(*range(args))  # TypeError if not


def test_reader_table_yields_every_metric_with_units(pynvml):
    s = NvmlSampler(0, nvml=FakeNvml(pynvml))
    got = _by_metric(s.read())
    assert set(got) == METRICS and s.unavailable == {}
    assert got["gpu_freq_mhz"] == (1410, "MHz")  # NVML_CLOCK_SM, not the graphics clock
    assert got["gpu_graphics_mhz"] == (1500, "MHz")
    assert got["mem_freq_mhz"] == (2619, "MHz")
    assert got["gpu_util_pct"] == (37, "%") and got["mem_util_pct"] == (12, "%")
    assert got["power_mw:gpu"] == (71000, "mW")
    assert got["temp_c:gpu"] == (41, "C")  # the versioned TemperatureV is preferred
    assert got["throttle_reasons"][0] == 0x1  # the newer ClocksEvent call is preferred
    assert got["mem_used_mib"] == (3.0, "MiB")
    assert got["energy_mj:gpu"] == (5_007_100, "mJ")  # the counter as read: the join interpolates it
    assert _by_metric(s.read())["energy_mj:gpu"] == (5_014_200, "mJ")


def test_a_gpu_older_than_volta_has_no_energy_counter_and_the_rest_goes_on(pynvml):
    fake = FakeNvml(pynvml, fail={"nvmlDeviceGetTotalEnergyConsumption": pynvml.NVMLError_NotSupported()})
    s = NvmlSampler(0, nvml=fake)
    assert set(_by_metric(s.read())) == set(_by_metric(s.read())) == METRICS - {"energy_mj:gpu"}
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1
    assert s.unavailable == {"energy_mj:gpu": "Not Supported"}


def test_a_call_not_supported_is_dropped_after_its_first_failure(pynvml):
    fake = FakeNvml(pynvml, fail={"nvmlDeviceGetPowerUsage": pynvml.NVMLError_NotSupported()})
    s = NvmlSampler(0, nvml=fake)
    polls = [_by_metric(s.read()) for _ in range(5)]
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 1
    assert all(set(p) == METRICS - {"power_mw:gpu"} for p in polls)
    assert fake.calls["nvmlDeviceGetClockInfo"] == 3 * 5
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 5  # one call per poll for two metrics
    assert s.unavailable == {"power_mw:gpu": "Not Supported"}
    assert "power_mw:gpu" not in s.metrics


@pytest.mark.parametrize("newer, older, metric, value", [
    ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons", "throttle_reasons", 0x4),
    ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature", "temp_c:gpu", 42),
])
def test_an_older_driver_falls_back_to_the_older_call_in_the_same_poll(pynvml, newer, older, metric, value):
    fake = FakeNvml(pynvml, fail={newer: pynvml.NVMLError_FunctionNotFound()})
    s = NvmlSampler(0, nvml=fake)
    first, second = _by_metric(s.read()), _by_metric(s.read())
    assert first[metric][0] == value == second[metric][0]
    assert fake.calls[newer] == 1 and fake.calls[older] == 2
    assert s.unavailable == {}


def test_an_older_pynvml_without_the_event_call_uses_throttle_reasons(pynvml):
    fake = FakeNvml(pynvml, drop={"nvmlDeviceGetCurrentClocksEventReasons"})
    s = NvmlSampler(0, nvml=fake)
    assert _by_metric(s.read())["throttle_reasons"][0] == 0x4


def test_a_metric_with_no_working_call_is_reported_unavailable(pynvml):
    fake = FakeNvml(pynvml, fail={
        "nvmlDeviceGetCurrentClocksEventReasons": pynvml.NVMLError_NotSupported(),
        "nvmlDeviceGetCurrentClocksThrottleReasons": pynvml.NVMLError_NotSupported(),
    })
    s = NvmlSampler(0, nvml=fake)
    for _ in range(3):
        assert "throttle_reasons" not in _by_metric(s.read())
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 1
    assert s.unavailable == {"throttle_reasons": "Not Supported"}


def test_other_nvml_errors_reach_the_collector_and_the_call_is_kept(pynvml):
    fake = FakeNvml(pynvml, fail={"nvmlDeviceGetTemperatureV": pynvml.NVMLError_GpuIsLost()})
    s = NvmlSampler(0, nvml=fake)
    c = Collector([s], interval_s=0.005).start()
    time.sleep(0.05)
    c.stop()
    assert c.errors == ["nvml: NVMLError_GpuIsLost: GPU is lost"]
    assert fake.calls["nvmlDeviceGetTemperatureV"] > 1  # transient: asked again next poll
    assert fake.calls["nvmlDeviceGetTemperature"] == 0  # and not mistaken for a missing call
    assert "temp_c:gpu" in s.metrics


def test_a_second_gpu_has_its_own_source(pynvml):
    fake = FakeNvml(pynvml)
    assert NvmlSampler(1, nvml=fake).source == "nvml:1" and NvmlSampler(0, nvml=fake).source == "nvml"


def test_an_experiments_gpu_is_sampled_by_uuid(pynvml):
    """The Monitor's sampler: the leased GPU by its UUID (no ordering can swap it), rows
    under ``nvml`` whatever its index, as the analysis reads them."""
    fake = FakeNvml(pynvml)
    s = NvmlSampler(1, nvml=fake, uuid="GPU-0aad8f23-5820-48fa-ec4e-214d33c8b46d")
    assert s.handle == ("handle", "GPU-0aad8f23-5820-48fa-ec4e-214d33c8b46d") and s.source == "nvml"
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 0 and fake.calls["nvmlDeviceGetHandleByUUID"] == 1


def test_gpu_info_with_a_missing_value(pynvml):
    fake = FakeNvml(pynvml, fail={"nvmlDeviceGetPowerUsage": pynvml.NVMLError_NotSupported()})
    fake.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"
    fake.nvmlDeviceGetUUID = lambda h: "GPU-0000"
    fake.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    fake.nvmlSystemGetCudaDriverVersion = lambda: 13000
    fake.nvmlDeviceGetMaxClockInfo = lambda h, t: {1: 1980, 2: 2619}[t]

    def no_limit(h):
        raise pynvml.NVMLError_NotSupported()

    fake.nvmlDeviceGetEnforcedPowerLimit = no_limit
    assert gpu_info(0, nvml=fake) == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-0000", "driver_version": "580.65.06",
        "cuda_driver_version": "13.0", "memory_total_mib": 80 * 1024.0, "max_sm_mhz": 1980,
        "max_mem_mhz": 2619, "power_limit_mw": None,
    }


# --------------------------------------------------------------- decoding, no NVML
def test_decode_throttle_reasons(pynvml):
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(pynvml.nvmlClocksEventReasonGpuIdle) == ["gpu_idle"]
    mask = pynvml.nvmlClocksThrottleReasonSwPowerCap | pynvml.nvmlClocksThrottleReasonHwThermalSlowdown
    assert decode_throttle_reasons(mask) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_throttle_reasons(0x1FF) == [
        "gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost",
        "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "display_clock_setting",
    ]
    assert decode_throttle_reasons(0x10 | 0x600) == ["sync_boost", "other_0x600"]
    assert decode_throttle_reasons(4.0) == ["sw_power_cap"]  # as stored in telemetry (float)


def test_without_pynvml_decoding_works_and_the_sampler_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert decode_throttle_reasons(0x4 | 0x80) == ["sw_power_cap", "hw_power_brake_slowdown"]
    with pytest.raises(MissingExtra, match=r"pynvml: not installed; NVML telemetry needs it.*\[tensorrt\]"):
        NvmlSampler(0)
    with pytest.raises(MissingExtra):
        gpu_info(0)
