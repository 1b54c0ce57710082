import subprocess
import sys
import time

from trt_ray_bench.telemetry import Collector, HostSampler


def test_host_sampler_collects_on_the_loop_clock():
    # Load a core from another process, as a model actor would (a busy thread in this
    # process would starve the sampler thread of the GIL; the Monitor actor has its own).
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<0.5: pass"])
    time.sleep(0.05)
    t0 = time.perf_counter_ns()
    c = Collector([HostSampler()], interval_s=0.02).start()
    time.sleep(0.2)
    rows = c.stop()
    busy.wait()
    t1 = time.perf_counter_ns()
    metrics = set(rows["metric"])
    assert {"cpu_util_pct", "cpu0_util_pct", "ram_used_mib", "ram_total_mib"} <= metrics
    stamps = sorted(set(rows["t_ns"]))
    assert 5 <= len(stamps) <= 15  # ~10 polls at 20 ms
    assert t0 <= stamps[0] and stamps[-1] <= t1
    assert all(0 <= v <= 100 for m, v in zip(rows["metric"], rows["value"]) if m.endswith("util_pct"))
    # the busiest core shows the busy process (the total is diluted on a many-core node)
    per_core = [v for m, v in zip(rows["metric"], rows["value"]) if m.startswith("cpu") and m.endswith("_util_pct")
                and m != "cpu_util_pct"]
    assert max(per_core) > 50


def test_a_failing_sampler_is_recorded_not_fatal():
    class Broken:
        source = "broken"

        def read(self):
            raise OSError("sensor gone")

    c = Collector([Broken(), HostSampler()], interval_s=0.01).start()
    time.sleep(0.05)
    rows = c.stop()
    assert c.errors == ["broken: OSError: sensor gone"]
    assert "host" in rows["source"]
