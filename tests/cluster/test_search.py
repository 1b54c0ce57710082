"""The rate search: its bisection against a known threshold, its refusals, and a whole
search on the CPU with real ONNX Runtime models on a real local Ray."""

import math
from pathlib import Path

import pandas as pd
import pytest

from trt_ray_bench.cluster.search import bisect_rate, check_search, row_meets
from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import sweep_from_dict


def test_bisection_finds_the_threshold_to_the_resolution():
    calls = []

    def meets(rate):
        calls.append(rate)
        return rate <= 137.0

    best, note = bisect_rate(meets, 10, 1000, 5)
    assert note == "" and 137 - 5 <= best <= 137 and meets(best)
    assert len(calls) <= 2 + math.ceil(math.log2(990 / 5)) + 1
    assert bisect_rate(lambda r: False, 10, 1000, 5) == (pytest.approx(float("nan"), nan_ok=True), "below 10")
    assert bisect_rate(lambda r: True, 10, 1000, 5) == (1000, "at least 1000")


def test_a_row_meets_only_with_a_value():
    crit = ("p99_from_arrival_ms", "<=", "deadline_ms")
    ok = pd.Series({"status": "ok", "p99_from_arrival_ms": 20.0, "deadline_ms": 33.0})
    assert row_meets(ok, crit)
    assert not row_meets(ok.replace({20.0: 40.0}), crit)
    assert not row_meets(pd.Series({"status": "ok", "p99_from_arrival_ms": float("nan"), "deadline_ms": 33.0}), crit)
    assert not row_meets(pd.Series({"status": "failed", "p99_from_arrival_ms": 1.0, "deadline_ms": 33.0}), crit)
    assert row_meets(pd.Series({"status": "ok", "deadline_miss": 0.0}), ("deadline_miss", "<=", 0.01))


def _sweep(search, timing=None, models=None):
    base = {"name": "s", "timing": timing or {"arrivals": "periodic", "rate_hz": 30, "deadline_ms": 33,
                                              "iterations": 400},
            "models": models or [{"arch": "yolov8n", "task": "classify", "imgsz": 64}]}
    return sweep_from_dict({"base": base, "search": search}, "search.yaml")


@pytest.mark.parametrize("search, timing, where, says", [
    ({"low": 10, "high": 5, "resolution": 1}, None, "search.yaml: search", "must be above low"),
    ({"low": 10, "high": 50, "resolution": 1, "until": "p99 <= 3"}, None, "search.until", "not a runs column"),
    ({"low": 10, "high": 50, "resolution": 1, "until": "p99_from_arrival_ms ~ 3"}, None, "search.until",
     "COLUMN OP VALUE"),
    ({"low": 10, "high": 50, "resolution": 1}, {"iterations": 100}, "search.field", "runs closed"),
    ({"low": 10, "high": 50, "resolution": 1}, {"arrivals": "poisson", "rate_hz": 5, "iterations": 100},
     "search.until", "deadline_ms"),
    ({"low": 10, "high": 50, "resolution": 1}, {"arrivals": "poisson", "rate_hz": 5, "iterations": 100,
                                                 "deadline_ms": 10}, "search.until", "at least 368"),
    ({"low": 10, "high": 50, "resolution": 0}, None, "search.resolution", "greater than 0"),
    ({"low": 10, "high": float("inf"), "resolution": 1}, None, "search.high", "finite number"),
    ({"low": 10, "high": 50, "resolution": 1e-300}, None, "search.yaml: search", "20-step bisection"),
    # a probe that would not be a valid run (2 ms of jitter is half the period at 250 Hz),
    # refused before the first probe runs, not when the bisection reaches it
    ({"low": 10, "high": 400, "resolution": 10}, {"arrivals": "periodic", "rate_hz": 30, "jitter_ms": 2,
                                                   "deadline_ms": 33, "iterations": 400},
     "search.yaml: search.high", "yolov8n-cls at 400 Hz is not a valid run: models[0].timing.rate_hz: jitter_ms 2 ms"),
    ({"low": 10, "high": 400, "resolution": 10}, {"arrivals": "periodic", "rate_hz": 30, "jitter_ms": 2,
                                                   "deadline_ms": 33, "iterations": 400},
     "search.yaml: search.high", "lower search.high or the jitter"),
])
def test_what_a_search_cannot_do_is_one_line(search, timing, where, says):
    with pytest.raises(UserError) as e:
        check_search(_sweep(search, timing))
    assert where in str(e.value) and says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["keep_up_gpu.yaml", "keep_up_cpu.yaml"])
def test_the_keep_up_benchmarks_search_is_a_valid_search_of_its_spec(spec):
    # benchmarks/keep_up_gpu.py searches up to 4000 FPS from a spec with a camera's jitter
    # (1 or 2 ms): at that rate the jitter must shrink below half the period, or the whole
    # search is refused before its first probe
    import importlib.util

    import yaml

    root = Path(__file__).resolve().parents[2]
    mod_spec = importlib.util.spec_from_file_location("keep_up_gpu", root / "benchmarks" / "keep_up_gpu.py")
    bench = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(bench)
    args = bench.parse_args([])
    base = yaml.safe_load((root / "examples" / "12_keep_up" / spec).read_text())
    assert base["timing"]["jitter_ms"] >= 500 / args.search_high  # too much jitter at --search-high as written
    d = bench.search_sweep(base, args)
    assert 0 < d["base"]["timing"]["jitter_ms"] <= 250 / args.search_high
    assert d["base"]["timing"]["iterations"] == args.search_frames
    check_search(sweep_from_dict(d, "keep_up_gpu search"))


@pytest.mark.parametrize("until, timing, frames", [
    # r * R * L / (share on time * resolution): 1000 * 1000 * 0.033 / (0.99 * 250)
    ("p99_from_arrival_ms <= deadline_ms", {}, 134),
    ("deadline_miss <= 0.01", {}, 134),
    ("deadline_miss <= 0.5", {}, 264),                         # half may miss: half must be on time
    ("p50_from_arrival_ms <= deadline_ms", {}, 264),
    ("mean_from_arrival_ms <= 20", {}, 160),
    ("max_from_arrival_ms <= 20", {}, 80),
    ("queue_max_ms <= 10", {}, 40),
    ("p99_from_arrival_ms <= deadline_ms", {"backlog": "drop"}, None),   # no queue to hide an overload
    ("p99_ms <= deadline_ms", {}, None),                       # the service time: no queue in it
    ("throughput_ips >= 900", {}, None),
])
def test_a_probe_is_long_enough_that_an_overload_it_hides_is_below_the_resolution(until, timing, frames):
    """A queue growing by 1/c - 1/r a frame fails ``until`` only after its first share f of
    frames: a probe of N frames at r hides up to r**2 L / (f N) Hz of overload."""
    from trt_ray_bench.cluster.search import describe_search, probe_frames
    from trt_ray_bench.spec._model import TimingSpec

    timing = {"arrivals": "periodic", "rate_hz": 30, "deadline_ms": 33, "iterations": 50, **timing}
    if "p99" in until:
        timing["iterations"] = 400  # a p99 needs 368
    sweep = _sweep({"until": until, "low": 10, "high": 1000, "resolution": 250}, timing)
    assert probe_frames(sweep.search.criterion(), TimingSpec(**timing), 1000, 1000, 250) == frames
    # together at half the rate searched: half the frames, the same length in seconds
    if frames:
        assert probe_frames(sweep.search.criterion(), TimingSpec(**timing), 500, 1000, 250) == math.ceil(frames / 2)
    # the dry run says which probes are lengthened, and to what, at search.high
    text = describe_search(sweep, check_search(sweep))
    longer = bool(frames and frames > timing["iterations"])
    assert ("length " in text) == longer and (not longer or f"yolov8n-cls {frames} frames" in text), text


def test_a_probe_timed_by_duration_is_lengthened_in_seconds():
    from trt_ray_bench.cluster.search import _lengths, describe_search

    timing = {"arrivals": "periodic", "rate_hz": 30, "deadline_ms": 33, "duration_s": 0.5}
    coarse = _sweep({"until": "deadline_miss <= 0.01", "low": 10, "high": 1000, "resolution": 250}, timing)
    assert _lengths(coarse, check_search(coarse), {"yolov8n-cls": 1000.0}) == {}  # 134 frames: 0.134 s < 0.5 s
    fine = _sweep({"until": "deadline_miss <= 0.01", "low": 10, "high": 1000, "resolution": 25}, timing)
    base = check_search(fine)
    assert _lengths(fine, base, {"yolov8n-cls": 1000.0}) == {"yolov8n-cls": {"duration_s": pytest.approx(1.334)}}
    assert "yolov8n-cls 1.334 s" in describe_search(fine, base)


def test_a_search_with_axes_is_refused():
    with pytest.raises(UserError, match="search or axes"):
        sweep_from_dict({"base": {"name": "s", "models": [{"arch": "yolov8n", "task": "classify"}]},
                         "axes": {"timing.warmup": [1, 2]}, "search": {"low": 1, "high": 2, "resolution": 1}})


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.alone  # its rates are the CPU's: under two workers (-n 2) the other one waits
def test_a_search_on_the_cpu_finds_rates_alone_and_together(tmp_path, cls_onnx, det_onnx, trb):
    """Two real models on ONNX Runtime: the highest rate whose median from arrival stays within
    its deadline (5 ms, the detector 40). Below its service rate a model keeps up (from arrival
    = service); well above it the queue grows by (service - period) a frame and the median
    passes the deadline: the answer lies near 1/service, and together no higher than alone."""
    import yaml

    LOW, HIGH, RES = 100, 2000, 500  # four probes a search: both ends, then two halvings
    spec = {
        "name": "s",
        "base": {"name": "s", "output": str(tmp_path / "out"),
                 "timing": {"warmup": 3, "iterations": 60, "arrivals": "periodic", "rate_hz": 40, "deadline_ms": 5},
                 "models": [{"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}},
                            {"path": str(det_onnx), "name": "det", "options": {"threads": 1},
                             "timing": {"rate_hz": 20, "deadline_ms": 40}}],
                 "telemetry": {"interval_s": 0.1}},
        "search": {"until": "p50_from_arrival_ms <= deadline_ms", "low": LOW, "high": HIGH, "resolution": RES,
                   "repeats": 1},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, out, err = trb("sweep", path)
    assert code == 0, err
    assert "| model | alone_max_rate_hz | together_max_rate_hz |" in out
    t = pd.read_parquet(tmp_path / "out" / "s" / "search.parquet").set_index("model")
    assert list(t.index) == ["cls", "det"]
    from trt_ray_bench import results

    runs = results.load(tmp_path / "out" / "s", samples=False, telemetry=False).runs
    for m in ("cls", "det"):
        a = t.loc[m, "alone_max_rate_hz"]
        assert LOW <= a <= HIGH  # (HIGH: a machine quick enough that the 64-px classifier kept up at every rate)
        service = runs[(runs.model == m) & (runs.phase == "alone")].p50_ms.median()
        # keeps up below 1/service; above it the queue grows through the probe (lengthened to
        # what the resolution needs) and the median passes the deadline a little above it
        assert 0.5 * 1000 / service - RES <= a <= 3 * 1000 / service + RES, (m, a, service)
    # together, at the spec's ratio (cls twice det's rate), no faster than alone
    assert t.loc["cls", "together_max_rate_hz"] == pytest.approx(2 * t.loc["det", "together_max_rate_hz"])
    assert t.loc["cls", "together_max_rate_hz"] <= t.loc["cls", "alone_max_rate_hz"] + RES
    assert (tmp_path / "out" / "s" / "search.csv").is_file() and (tmp_path / "out" / "s" / "search-log.jsonl").is_file()
    # the probe at 2000 Hz ran 2000 * 2000 * 5 ms / (0.5 * 500 Hz) = 80 frames, not the base's 60
    import json

    log = [json.loads(line) for line in (tmp_path / "out" / "s" / "search-log.jsonl").read_text().splitlines()]
    top = next(p for p in log if p["what"] == "cls" and p["rate_hz"] == HIGH)
    assert top["lengths"] == {"cls": {"iterations": 80}}
    rows = results.load(top["run_dir"], samples=False, telemetry=False).runs
    assert list(rows.frames) == [80]
