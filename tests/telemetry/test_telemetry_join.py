"""Issue 14 (d, e): samples joined to telemetry per source, with a tolerance, and each
averaged reading placed over the period it averages."""

import time

import numpy as np
import pandas as pd

from trt_ray_bench import results
from trt_ray_bench.results.join import placed_t_ns
from trt_ray_bench.telemetry import Collector, HostSampler

MS = 1_000_000


def _samples(starts_ms):
    t = np.asarray(starts_ms, dtype=np.int64) * MS
    return pd.DataFrame({"run_id": "r", "model": "m", "t_start_ns": t, "t_end_ns": t + MS, "host_ms": 1.0})


def _tel(source, metric, times_ms, values, avg_s=0.0):
    return pd.DataFrame({"run_id": "r", "t_ns": np.asarray(times_ms, dtype=np.int64) * MS, "source": source,
                         "metric": metric, "value": values, "unit": "", "avg_s": avg_s})


def test_two_samplers_each_join_every_inference():
    """Host every 100 ms, tegrastats every 100 ms offset by 37 ms: no shared timestamp,
    yet every inference gets both sources' readings (ram_used_mib, in both, is named per source)."""
    tel = pd.concat([_tel("host", "cpu_util_pct", range(0, 1000, 100), np.arange(10.0)),
                     _tel("host", "ram_used_mib", range(0, 1000, 100), 1000.0),
                     _tel("tegrastats", "gpu_freq_mhz", range(37, 1000, 100), 600.0 + np.arange(10)),
                     _tel("tegrastats", "ram_used_mib", range(37, 1000, 100), 2000.0)])
    j = results.samples_with_telemetry(_samples([150, 450, 820]), tel)
    assert list(j["cpu_util_pct"]) == [1.0, 4.0, 8.0]
    assert list(j["gpu_freq_mhz"]) == [601.0, 604.0, 607.0]
    assert (j["ram_used_mib@host"] == 1000).all() and (j["ram_used_mib@tegrastats"] == 2000).all()


def test_a_stale_reading_is_not_attached():
    """Readings every 100 ms that stop at 1 s: an inference at 10 s gets NaN, not the
    10-s-old reading; the default tolerance is 3 sampling periods, and can be given."""
    tel = _tel("nvml", "gpu_freq_mhz", range(0, 1000, 100), 1980.0)
    j = results.samples_with_telemetry(_samples([500, 1150, 10_000]), tel)
    assert j["gpu_freq_mhz"].tolist()[:2] == [1980.0, 1980.0] and np.isnan(j["gpu_freq_mhz"].iloc[2])
    j = results.samples_with_telemetry(_samples([1150]), tel, tolerance_ns=200 * MS)
    assert np.isnan(j["gpu_freq_mhz"].iloc[0])


def test_an_averaged_reading_is_placed_over_its_period():
    """Power averaged over 1 s, read every 500 ms: 100 W while idle until t=2 s, then 300 W
    under load. The reading at t=3.0 s (average of 2..3 s: 300) describes an inference at
    t=2.5 s; the latest reading at or before it (t=2.5: the average of 1.5..2.5, half idle)
    does not."""
    times = [1000, 1500, 2000, 2500, 3000, 3500]
    values = [100.0, 100.0, 100.0, 200.0, 300.0, 300.0]
    tel = pd.concat([_tel("nvml", "power_mw:gpu", times, values, avg_s=1.0),
                     _tel("nvml", "gpu_freq_mhz", times, 1980.0)])
    assert list(placed_t_ns(tel.iloc[:2]) // MS) == [500, 1000]
    j = results.samples_with_telemetry(_samples([2500, 2600]), tel)
    assert list(j["power_mw:gpu"]) == [300.0, 300.0]
    assert list(j["gpu_freq_mhz"]) == [1980.0, 1980.0]  # instantaneous: the latest at or before


def test_the_collector_stores_what_each_reading_averages():
    """psutil's CPU load is the average since the previous poll; NVML's power and
    utilisation average fixed periods (``NvmlSampler.avg_s``); the rest is instantaneous."""

    class Fixed:
        source = "fixed"
        avg_s = {"power_mw:gpu": 1.0}

        def read(self):
            return [("power_mw:gpu", 1.0, "mW"), ("gpu_freq_mhz", 2.0, "MHz")]

    c = Collector([HostSampler(), Fixed()], interval_s=0.05).start()
    time.sleep(0.4)
    rows = pd.DataFrame(c.stop())
    cpu = rows[(rows.source == "host") & (rows.metric == "cpu_util_pct")]
    assert len(cpu) >= 4 and cpu["avg_s"].iloc[1:].between(0.03, 0.3).all()
    assert (rows[rows.metric == "ram_used_mib"]["avg_s"] == 0).all()
    assert set(rows[rows.metric == "power_mw:gpu"]["avg_s"]) == {1.0}
    assert set(rows[rows.metric == "gpu_freq_mhz"]["avg_s"]) == {0.0}
