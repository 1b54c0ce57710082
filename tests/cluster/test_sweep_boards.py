"""Sweeps by board kind on a real three-node Ray (``ray.cluster_utils.Cluster``): two
nodes of kind ``a`` and one of kind ``b``, each with its own model/engine cache folder
(``TRB_CACHE_DIR`` set per node), as separate boards have. A kind's models are made once,
on one of its nodes, and installed on the others."""

import json
import os

import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import sweep_from_dict

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def boards(tmp_path_factory, cls_onnx):
    import shutil

    import ray
    from ray.cluster_utils import Cluster

    had_local = ray.is_initialized()
    if had_local:
        ray.shutdown()
    caches = {n: tmp_path_factory.mktemp(f"cache-{n}") for n in ("n0", "n1", "n2")}
    # n2 (the only node of kind b) already has the model: nothing to make there
    (caches["n2"] / "models").mkdir()
    shutil.copy(cls_onnx, caches["n2"] / "models" / cls_onnx.name)

    def node(n, kind):
        return {"num_cpus": 1, "resources": {f"trb_node_{n}": 1, f"trb_board_{kind}": 1, "trb_slot": 1},
                "env_vars": {"TRB_CACHE_DIR": str(caches[n])}}

    c = Cluster(initialize_head=True, head_node_args={**node("n0", "a"), "include_dashboard": False})
    c.add_node(**node("n1", "a"))
    c.add_node(**node("n2", "b"))
    c.wait_for_nodes()
    ray.init(address=c.address, namespace="trb", logging_level="ERROR", log_to_driver=False)
    yield c, caches
    ray.shutdown()
    c.shutdown()
    if had_local:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="trb",
                 logging_level="ERROR", log_to_driver=False)


def _sweep(tmp_path, nodes="all"):
    return sweep_from_dict({
        "base": {"name": "kinds", "output": str(tmp_path / "results"), "schedule": "alone",
                 "models": [{"arch": "yolov8n", "task": "classify", "imgsz": 64, "name": "cls",
                             "options": {"threads": 1}}],
                 "timing": {"iterations": 5, "warmup": 1}},
        "axes": {"timing.gap_s": [0, 0.01, 0.02]}, "nodes": nodes}, "sweep.yaml")


def test_models_made_once_per_board_kind(tmp_path, boards, cls_onnx):
    from trt_ray_bench import results
    from trt_ray_bench.cluster.sweep import run_sweep

    cluster, caches = boards
    lines = []
    out = run_sweep(_sweep(tmp_path), log=lines.append, poll_s=0.1)
    assert [r["status"] for r in out["records"]] == ["ok"] * 3
    prep = [s for s in lines if s.startswith("prepare") and "model(s)" in s]  # the end line of each board's
    assert len(prep) == 1 and "board a on n0: 1 model(s), 0 engine(s)" in prep[0], lines  # not for b: one node
    by_node = {r["node"]: r for r in out["records"]}
    assert set(by_node) == {"n0", "n1", "n2"}
    rel = f"models/{cls_onnx.name}"
    assert by_node["n1"]["installed"] == [rel]  # got a's model from n0 instead of exporting it
    assert by_node["n0"]["installed"] == [] and by_node["n2"]["installed"] == []
    assert (caches["n1"] / rel).read_bytes() == (caches["n0"] / rel).read_bytes()
    runs = results.load(out["root"], samples=False, telemetry=False).runs
    assert dict(zip(runs.node_name, runs.node_board)) == {"n0": "a", "n1": "a", "n2": "b"}
    log = [json.loads(s) for s in (out["root"] / "sweep-log.jsonl").read_text().splitlines()]
    assert {r["node"]: r["installed"] for r in log}["n1"] == [rel]


def test_board_selector(tmp_path, boards):
    from trt_ray_bench.cluster.sweep import run_sweep

    out = run_sweep(_sweep(tmp_path, {"board": "b"}), log=lambda s: None, poll_s=0.1)
    assert {r["node"] for r in out["records"]} == {"n2"} and all(r["status"] == "ok" for r in out["records"])
    with pytest.raises(UserError, match=r"nodes.board: orin_nx: no alive node of that kind \(have a \(n0\), a \(n1\), b \(n2\)\)"):
        run_sweep(_sweep(tmp_path, {"board": "Orin NX"}), log=lambda s: None)
