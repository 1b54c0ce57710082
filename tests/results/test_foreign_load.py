"""The ``foreign_load`` diagnostic over a telemetry table as ``telemetry.foreign`` writes
it: averaged readings weighed by how much of their period lies in the row's window;
processes seen at a pass present when a pass inside the window, or both passes around a
window too short to hold one, saw them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trt_ray_bench.results import diagnose
from trt_ray_bench.results.diagnose import CODES, THRESHOLDS
from trt_ray_bench.results.foreign import in_window

S = 1_000_000_000


def _tel(rows, run_id="r1"):
    return pd.DataFrame([{"run_id": run_id, "t_ns": int(t * S), "source": "foreign", "metric": m, "value": float(v),
                          "unit": "", "avg_s": float(a)} for t, m, v, a in rows])


def _runs(windows, run_id="r1"):
    return pd.DataFrame([{"run_id": run_id, "model": f"m{i}", "phase": "alone", "repeat": 0, "mode": "inference",
                          "status": "ok", "window_start_ns": int(a * S), "window_end_ns": int(b * S)}
                         for i, (a, b) in enumerate(windows)])


def _foreign(diags):
    return [[d["message"] for d in ds if d["code"] == "foreign_load"] for ds in diags]


# three 1 s passes: nothing foreign in (0, 1], `stress` (two processes, the busiest 4242)
# at a whole core in (1, 2], nothing in (2, 3]
CPU = [
    (1, "foreign_cpu_pct", 0.5, 1), (2, "foreign_cpu_pct", 101.0, 1), (3, "foreign_cpu_pct", 0.5, 1),
    (2, "foreign_cpu_pct:stress", 100.0, 1), (2, "foreign_pid:stress", 4242, 1), (2, "foreign_pid:stress#2", 4243, 1),
    (2, "foreign_cpu_pct:sshd", 1.0, 1), (2, "foreign_pid:sshd", 700, 1),
] + [(t, "foreign_trb_runs", 0, 0) for t in (1, 2, 3)]


def test_foreign_load_is_a_documented_code():
    assert "foreign_load" in CODES
    assert THRESHOLDS["foreign_cpu_pct"] == 10.0 and THRESHOLDS["foreign_name_pct"] == 2.0


def test_cpu_readings_weighed_by_their_overlap_with_the_window():
    tel = _tel(CPU)
    half = in_window(tel, int(1.5 * S), int(2.5 * S))  # half of (1, 2], half of (2, 3]
    assert half["cpu_pct"] == 50.75
    assert [(n, round(p, 2), pids) for n, p, pids in half["names"]] == [("stress", 50.0, [4242, 4243]),
                                                                        ("sshd", 0.5, [700])]
    inside = in_window(tel, int(1.2 * S), int(1.8 * S))  # a window shorter than the period: its reading
    assert inside["cpu_pct"] == 101.0
    assert in_window(tel, int(2.2 * S), int(2.9 * S))["cpu_pct"] == 0.5
    assert np.isnan(in_window(tel, int(5 * S), int(6 * S))["cpu_pct"])  # no reading covers it


def test_rows_under_foreign_cpu_load_are_flagged_naming_the_processes():
    runs = _runs([(1.5, 2.5), (1.2, 1.8), (2.2, 2.9), (0.1, 0.9)])
    msgs = _foreign(diagnose(runs, None, _tel(CPU)))
    assert msgs[0] == ["other processes used the machine during this window: stress (pids 4242, 4243) 50 % of a "
                       "core; 51 % of a core in all (above 10 %): latencies may include their contention"]
    assert "stress (pids 4242, 4243) 100 % of a core" in msgs[1][0]  # sshd's 1 % is not named (below 2 %)
    assert "sshd" not in msgs[1][0]
    assert msgs[2] == [] and msgs[3] == []


def test_the_threshold_is_an_average_above_ten_percent_of_a_core():
    tel = _tel([(1, "foreign_cpu_pct", 9.9, 1), (2, "foreign_cpu_pct", 10.1, 1), (2, "foreign_cpu_pct:x", 10.1, 1),
                (2, "foreign_pid:x", 5, 1)])
    msgs = _foreign(diagnose(_runs([(0.2, 0.8), (1.2, 1.8), (0.5, 1.5)]), None, tel))
    assert msgs[0] == [] and msgs[1] and msgs[2] == []  # (0.5, 1.5): 9.9 and 10.1 half each: 10.0


def test_another_trb_run_and_gpu_processes_count_while_present():
    rows = [(t, "foreign_cpu_pct", 1.0, 1) for t in (1, 2, 3)] + [(t, "foreign_trb_runs", n, 0)
                                                               for t, n in ((1, 1), (2, 1), (3, 0))]
    rows += [(1, "foreign_trb_run:9001", 2, 0), (2, "foreign_trb_run:9001", 2, 0)]
    rows += [(t, "foreign_gpu_procs", n, 0) for t, n in ((1, 0), (2, 1), (3, 1))]
    rows += [(t, m, v, 0) for t in (2, 3) for m, v in (("foreign_gpu_mem_mib:python3", 1536), ("foreign_gpu_pid:python3", 88))]
    runs = _runs([(1.2, 1.8), (2.2, 2.8), (0.5, 2.5), (3.5, 4.0)])
    msgs = _foreign(diagnose(runs, None, _tel(rows)))
    # (1.2, 1.8): no pass inside; the passes around it both saw the other run, not the GPU process
    assert msgs[0] == ["another trb run (pid 9001) was running: latencies may include their contention"]
    # (2.2, 2.8): the run was gone at 3 s; the GPU process was there at 2 and 3 s
    assert msgs[1] == ["other processes were on the experiment's GPU: python3 (pid 88, 1536 MiB): latencies may "
                       "include their contention"]
    assert "another trb run (pid 9001)" in msgs[2][0] and "python3 (pid 88, 1536 MiB)" in msgs[2][0]
    assert msgs[3] == []  # after the last pass: nothing is known


def test_only_the_rows_own_run_and_ok_rows():
    tel = pd.concat([_tel(CPU, "r1"), _tel([(2, "foreign_cpu_pct", 0.0, 1)], "r2")], ignore_index=True)
    runs = pd.concat([_runs([(1.2, 1.8)], "r1"), _runs([(1.2, 1.8)], "r2"), _runs([(1.2, 1.8)], "r3")],
                     ignore_index=True)
    runs.loc[2, "status"] = "failed"
    runs.loc[2, "run_id"] = "r1"
    assert [bool(m) for m in _foreign(diagnose(runs, None, tel))] == [True, False, False]
    # a tree written before foreign telemetry existed: nothing to say
    assert _foreign(diagnose(runs, None, tel[tel.metric == "none"])) == [[], [], []]
