"""Sweeps: the spec (product, exclude/include, errors) and real multi-node runs on one
machine (``ray.cluster_utils.Cluster``, three nodes with a trb_slot each)."""

import json
import os
import threading
import time

import pandas as pd
import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import expand, load_sweep, sweep_from_dict


def _sweep(tmp_path, model="m.onnx", **over):
    d = {
        "base": {"name": "sw", "output": str(tmp_path / "results"),
                 "models": [{"path": str(model), "name": "cls", "options": {"threads": 1}}],
                 "schedule": "alone", "timing": {"iterations": 5, "warmup": 1}},
        "axes": {"timing.gap_s": [0, 0.01, 0.02], "models.*.options.threads": [1, 2]},
    }
    d.update(over)
    return sweep_from_dict(d, "sweep.yaml")


# --- the spec -----------------------------------------------------------------------


def test_product_exclude_include(tmp_path):
    pts = expand(_sweep(tmp_path))
    assert len(pts) == 6 and len({p.point_id for p in pts}) == 6
    assert {(p.values["timing.gap_s"], p.values["models.*.options.threads"]) for p in pts} == \
        {(g, t) for g in (0, 0.01, 0.02) for t in (1, 2)}
    p = next(p for p in pts if p.values == {"timing.gap_s": 0.02, "models.*.options.threads": 2})
    assert p.spec.timing.gap_s == 0.02 and p.spec.models[0].options["threads"] == 2 and p.spec.name == "sw"
    pts = expand(_sweep(tmp_path, exclude=[{"models.*.options.threads": 2}, {"timing.gap_s": 0}],
                        include=[{"timing.gap_s": 0.5}], repeats=3))
    assert [p.values for p in pts] == [
        {"timing.gap_s": 0.01, "models.*.options.threads": 1},
        {"timing.gap_s": 0.02, "models.*.options.threads": 1},
        {"timing.gap_s": 0.5},
    ]
    assert all(p.spec.repeats == 3 for p in pts)
    # identity: same resolved spec and node kind -> same id; another node kind -> another
    a = expand(_sweep(tmp_path))[0].point_id
    assert expand(_sweep(tmp_path))[0].point_id == a
    assert expand(_sweep(tmp_path, nodes=["n0"]))[0].point_id != a
    b = expand(_sweep(tmp_path, nodes={"board": "orin_nx"}))[0].point_id
    assert b not in (a, expand(_sweep(tmp_path, nodes={"board": "orin_nano"}))[0].point_id)


def test_bad_axis_field_is_one_line(tmp_path):
    with pytest.raises(UserError) as e:
        expand(_sweep(tmp_path, axes={"timing.gapp_s": [0, 1]}))
    assert "axes.timing.gapp_s" in str(e.value) and "not a field" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"axes\.models\.7\.batch.*not a field"):
        expand(_sweep(tmp_path, axes={"models.7.batch": [1]}))


def test_bad_value_names_the_point(tmp_path):
    with pytest.raises(UserError, match=r"point timing.gap_s=-1.*gap_s"):
        expand(_sweep(tmp_path, axes={"timing.gap_s": [0, -1]}))


def test_empty_product_and_bad_shapes(tmp_path):
    with pytest.raises(UserError, match="excludes every point"):
        expand(_sweep(tmp_path, axes={"timing.gap_s": [0]}, exclude=[{"timing.gap_s": 0}]))
    with pytest.raises(UserError, match="axes.timing.gap_s: expected a non-empty list"):
        _sweep(tmp_path, axes={"timing.gap_s": []})
    with pytest.raises(UserError, match="nodes.board: expected a board kind"):
        _sweep(tmp_path, nodes={"board": []})
    with pytest.raises(UserError, match="nodes.name: unknown key"):
        _sweep(tmp_path, nodes={"name": "x"})
    assert _sweep(tmp_path, nodes={"board": "Orin NX"}).nodes == {"board": ["orin_nx"]}
    with pytest.raises(UserError, match="axess: unknown key"):
        _sweep(tmp_path, axess={})


def test_base_file(tmp_path):
    (tmp_path / "exp.yaml").write_text("name: e\nmodels: [{path: m.onnx}]\n")
    (tmp_path / "sweep.yaml").write_text("name: s\nbase_file: exp.yaml\naxes:\n  clocks: [default, max]\n")
    sw = load_sweep(tmp_path / "sweep.yaml")
    assert [p.spec.clocks for p in expand(sw)] == ["default", "max"] and sw.name == "s"


# --- on three nodes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    had_local = ray.is_initialized()  # the session's ray_local: put back afterwards
    if had_local:
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"trb_node_n0": 1, "trb_slot": 1}, "include_dashboard": False})
    for i in (1, 2):
        c.add_node(num_cpus=1, resources={f"trb_node_n{i}": 1, "trb_slot": 1})
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="trb", logging_level="ERROR", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()
    if had_local:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="trb",
                 logging_level="ERROR", log_to_driver=False)


def _windows(runs):
    return runs.drop_duplicates("run_id")[["node_name", "point_started_at", "point_ended_at", "point_id"]]


@pytest.mark.ray
@pytest.mark.slow
def test_points_spread_never_two_on_one_node_and_resume(tmp_path, cls_onnx, cluster):
    from trt_ray_bench import results
    from trt_ray_bench.cluster.sweep import point_columns, run_sweep

    sw = _sweep(tmp_path, cls_onnx, axes={"timing.gap_s": [0, 0.01, 0.02], "models.*.options.threads": [1, 2]})
    lines = []
    out = run_sweep(sw, log=lines.append, poll_s=0.1)
    assert [r["status"] for r in out["records"]] == ["ok"] * 6
    runs = results.load(out["root"], samples=False, telemetry=False).runs
    assert runs.point_id.nunique() == 6 and runs.run_id.nunique() == 6 and (runs.status == "ok").all()
    per = _windows(runs)
    assert per.node_name.nunique() >= 2, per  # spread
    for _, g in per.groupby("node_name"):  # never two at once on one node
        g = g.sort_values("point_started_at")
        assert (g.point_started_at.iloc[1:].values >= g.point_ended_at.iloc[:-1].values).all()
    # axis values: filterable columns
    wide = point_columns(runs)
    sel = wide[(wide["axis:timing.gap_s"] == 0.02) & (wide["axis:models.*.options.threads"] == 2)]
    assert len(sel) == 1 and sel.gap_s.iloc[0] == 0.02
    assert any("6/6 done" in s for s in lines)
    log = [json.loads(s) for s in (out["root"] / "sweep-log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(r["node"] in ("n0", "n1", "n2") for r in log)

    # resume after a partial sweep: delete two finished points; only they run again
    import shutil

    gone = sorted(runs.run_id.unique())[:2]
    gone_points = set(runs[runs.run_id.isin(gone)].point_id)
    for rid in gone:
        shutil.rmtree(out["root"] / rid)
    out2 = run_sweep(sw, resume=True, log=lambda s: None, poll_s=0.1)
    assert {r["point_id"] for r in out2["records"]} == gone_points
    assert len(out2["skipped"]) == 4
    runs2 = results.load(out["root"], samples=False, telemetry=False).runs
    assert runs2.point_id.nunique() == 6 and runs2.run_id.nunique() == 6


@pytest.mark.ray
@pytest.mark.slow
def test_node_selector(tmp_path, cls_onnx, cluster):
    from trt_ray_bench.cluster.sweep import run_sweep

    sw = _sweep(tmp_path, cls_onnx, axes={"timing.gap_s": [0, 0.01]}, nodes=["n2"])
    out = run_sweep(sw, log=lambda s: None, poll_s=0.1)
    assert {r["node"] for r in out["records"]} == {"n2"} and all(r["status"] == "ok" for r in out["records"])
    with pytest.raises(UserError, match="nodes: n9: no such alive node"):
        run_sweep(_sweep(tmp_path, cls_onnx, nodes=["n9"]), log=lambda s: None)


@pytest.mark.ray
@pytest.mark.slow
def test_failed_point_is_retried_elsewhere(tmp_path, cls_onnx, cluster):
    """A point that fails (here: every attempt, TensorRT on CPU nodes) is recorded
    with its reason and node, retried once on another node; the rest still finish."""
    from trt_ray_bench.cluster.sweep import run_sweep

    sw = _sweep(tmp_path, cls_onnx, axes={"timing.gap_s": [0]},
                include=[{"models.*.backend": "tensorrt", "models.*.precision": "fp16", "models.*.options": {}}],
                retries=1)
    out = run_sweep(sw, log=lambda s: None, poll_s=0.1)
    recs = pd.DataFrame(out["records"])
    bad = recs[recs.point.map(lambda p: p.get("models.*.backend") == "tensorrt")]
    assert list(bad.attempt) == [1, 2] and (bad.status == "failed").all() and bad.node.nunique() == 2
    # this machine has no TensorRT (where it has, the CPU node lacks the GPU): refused on the node either way
    assert bad.reason.str.contains("tensorrt: not installed|needs a GPU").all()
    good = recs[recs.point.map(lambda p: "models.*.backend" not in p)]
    assert list(good.status) == ["ok"]


@pytest.mark.ray
@pytest.mark.slow
def test_node_removed_mid_sweep(tmp_path, cls_onnx, cluster):
    """The node running a slow point goes away: the point is recorded failed on it and
    re-run on another node."""
    from trt_ray_bench.cluster.sweep import run_sweep

    sw = _sweep(tmp_path, cls_onnx, axes={"timing.duration_s": [4.0]}, nodes=["n1", "n2"],
                base={"name": "slow", "output": str(tmp_path / "results"), "schedule": "alone",
                      "models": [{"path": str(cls_onnx), "name": "cls", "options": {"threads": 1}}],
                      "timing": {"iterations": None, "duration_s": 4.0, "warmup": 1, "gap_s": 0.01}})
    lines, box = [], {}
    th = threading.Thread(target=lambda: box.update(out=run_sweep(sw, log=lines.append, poll_s=0.1)))
    th.start()
    t_end = time.time() + 60
    while not any(s.startswith("start") for s in lines) and time.time() < t_end:
        time.sleep(0.05)
    first = next(s for s in lines if s.startswith("start")).split()[3]
    time.sleep(1.5)
    node = next(n for n in cluster.worker_nodes if f"trb_node_{first}" in str(getattr(n, "_ray_params").resources))
    cluster.remove_node(node)
    th.join(timeout=180)
    assert not th.is_alive()
    recs = box["out"]["records"]
    assert recs[0]["status"] == "failed" and recs[0]["node"] == first
    assert "died" in recs[0]["reason"] or "Died" in recs[0]["reason"] or "lost" in recs[0]["reason"], recs[0]
    assert recs[-1]["status"] == "ok" and recs[-1]["node"] != first and recs[-1]["attempt"] == 2


def _sweep_file(tmp_path, model, axes="  timing.gap_s: [0, 0.01]\n", nodes=""):
    p = tmp_path / "sweep.yaml"
    p.write_text(f"name: clisweep\nbase:\n  name: x\n  output: {tmp_path / 'results'}\n  schedule: alone\n"
                 f"  models: [{{path: {model}, name: cls}}]\n  timing: {{iterations: 5, warmup: 1}}\n"
                 f"axes:\n{axes}{nodes}")
    return p


def test_cli_dry_run_and_bad_axis(tmp_path, cls_onnx, trb):
    code, out, err = trb("sweep", _sweep_file(tmp_path, cls_onnx), "--dry-run")
    assert code == 0 and "2 points, 2 to run" in out and "timing.gap_s=0.01" in out and "dry run" in out
    assert not (tmp_path / "results").exists()
    code, out, err = trb("sweep", _sweep_file(tmp_path, cls_onnx, axes="  timing.nope: [1]\n"), "--dry-run")
    assert code == 2 and err.count("\n") == 1 and "axes.timing.nope: not a field" in err


@pytest.mark.ray
@pytest.mark.slow
def test_cli_sweep_then_resume(tmp_path, cls_onnx, cluster, trb):
    f = _sweep_file(tmp_path, cls_onnx)
    code, out, err = trb("sweep", f, "--address", cluster.address)
    assert code == 0 and "2 ok, 0 failed, 0 skipped" in out and "[2/2 done, 0 running, 0 failed, eta 0 s]" in err
    code, out, err = trb("sweep", f, "--address", cluster.address, "--resume")
    assert code == 0 and "0 to run" in err and "0 ok, 0 failed, 2 skipped" in out


def test_cli_sweep_set_and_output_dry_run(tmp_path, cls_onnx, trb):
    """``trb sweep --set K=V --output DIR``: on the base experiment of every point, as
    ``trb run --set``; a key the sweep sets itself (an axis, its name) is refused."""
    f = _sweep_file(tmp_path, cls_onnx)
    code, out, err = trb("sweep", f, "--dry-run", "--set", "timing.warmup=3", "--output", tmp_path / "elsewhere")
    assert code == 0, err
    assert f"output      {tmp_path / 'elsewhere' / 'clisweep'}" in out
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "results").exists()
    for bad, what in (("timing.gap_s=0.5", "an axis of the sweep (timing.gap_s)"), ("name=other", "the sweep's name"),
                      ("timing=1", "an axis of the sweep (timing.gap_s)")):
        code, out, err = trb("sweep", f, "--dry-run", "--set", bad)
        assert code == 2 and err.count("\n") == 1 and f"--set: {bad.split('=')[0]}: {what} sets it" in err, err
    code, out, err = trb("sweep", f, "--dry-run", "--set", "timing.nope=1")
    assert code == 2 and err.count("\n") == 1 and "timing.nope" in err


@pytest.mark.ray
@pytest.mark.slow
def test_cli_sweep_set_and_output_run_quietly(tmp_path, cls_onnx, cluster, trb):
    """A real sweep with --set and --output: every point measured the overridden count,
    written under --output; -q leaves stderr to warnings (no progress lines)."""
    from trt_ray_bench import results

    f = _sweep_file(tmp_path, cls_onnx)
    code, out, err = trb("sweep", f, "--address", cluster.address, "--set", "timing.iterations=7",
                         "--output", tmp_path / "other", "-q")
    assert code == 0 and "2 ok, 0 failed, 0 skipped" in out and str(tmp_path / "other" / "clisweep") in out, err
    assert "start       " not in err and "done," not in err  # -q: no progress lines
    runs = results.load(tmp_path / "other" / "clisweep", samples=False, telemetry=False).runs
    assert len(runs) == 2 and set(runs["n"]) == {7} and set(runs["gap_s"]) == {0, 0.01}
    assert not (tmp_path / "results").exists()


def _install_in(cache: str, data: bytes):
    os.environ["TRB_CACHE_DIR"] = cache
    from trt_ray_bench.cluster.sweep import _install

    return _install({"engines/m.engine": data})


def test_two_points_on_one_node_install_the_same_engine_at_once(tmp_path):
    """Two points of a kind start together on a node of two GPUs and install the kind's
    prepared files into its one cache: each through a file of its own, so neither's rename
    finds the other's gone, and the engine ends whole."""
    import multiprocessing

    data = os.urandom(32 * 2 ** 20)
    ctx = multiprocessing.get_context("spawn")
    for trial in range(3):
        cache = tmp_path / f"cache{trial}"
        with ctx.Pool(2) as pool:
            done = pool.starmap(_install_in, [(str(cache), data)] * 2)
        assert all(d in ([], ["engines/m.engine"]) for d in done)
        assert (cache / "engines" / "m.engine").read_bytes() == data
        assert not list((cache / "engines").glob("*.part"))


@pytest.mark.ray
def test_a_point_whose_results_cannot_be_written_fails_alone(tmp_path, cls_onnx, cluster, monkeypatch):
    """The driver's disk fills up while a point's results are written (the write is made to
    fail with ENOSPC by a substituted ``write_run``, the first time only): that point is
    recorded failed with the reason, nothing half-written is left, and the other points run
    and are written. Where the sweep log itself cannot be written, the sweep stops in one
    line naming it."""
    import errno

    from trt_ray_bench.cluster import sweep as sweep_mod

    real, calls = sweep_mod.write_run, []

    def full_once(run_dir, *a, **k):
        calls.append(run_dir)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir))
        return real(run_dir, *a, **k)

    monkeypatch.setattr(sweep_mod, "write_run", full_once)
    sw = _sweep(tmp_path, cls_onnx, axes={"timing.gap_s": [0, 0.01]})
    out = sweep_mod.run_sweep(sw, log=lambda s: None, poll_s=0.1)
    recs = pd.DataFrame(out["records"])
    assert sorted(recs.status) == ["failed", "ok", "ok"] and len(calls) == 3
    lost = recs[recs.status == "failed"].iloc[0]
    assert lost.reason.startswith("its results could not be written to ") and "(No space left on device)" in lost.reason
    assert pd.isna(lost.run_dir) and not os.path.exists(str(calls[0]))
    # retried as any failed point is (retries: 1), and written then
    again = recs[(recs.point_id == lost.point_id) & (recs.status == "ok")]
    assert list(again.attempt) == [2] and all(os.path.isdir(d) for d in recs[recs.status == "ok"].run_dir)

    def log_full(path, rec):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sweep_mod, "_append", log_full)
    sw = _sweep(tmp_path / "again", cls_onnx, axes={"timing.gap_s": [0]})
    with pytest.raises(UserError, match=r"^output: the sweep log .*sweep-log.jsonl cannot be written \(No space left "
                                        r"on device\); 1 attempt\(s\) ended, the last not logged") as err:
        sweep_mod.run_sweep(sw, log=lambda s: None, poll_s=0.1)
    assert "\n" not in str(err.value)
