"""Ray on a Jetson: the `ray start` line a board needs, and `trb doctor` on a board.
The board is a fake seen through TRB_ROOT with stand-ins for jetson_clocks / nvpmodel /
sudo (hardware-only commands), from conftest's ``fake_jetson``."""

import json

from trt_ray_bench.cluster.node import ray_start_argv


def test_ray_start_on_a_jetson_declares_its_gpu(fake_jetson):
    argv = ray_start_argv(head=True, node_ip="192.168.10.21", name="orin-1")
    assert argv[:3] == ["ray", "start", "--head"]
    assert "--num-gpus=1" in argv  # Ray does not detect the integrated GPU itself
    assert "--node-ip-address=192.168.10.21" in argv and "--include-dashboard=false" in argv
    res = json.loads(next(a for a in argv if a.startswith("--resources=")).split("=", 1)[1])
    # the board kind from the fake's device-tree model: what a sweep's nodes: {board: ...} selects
    kinds = [k for k in res if k.startswith("trb_board_")]
    assert kinds and kinds[0].startswith("trb_board_nvidia_jetson") and "orin" in kinds[0], res
    assert {k: v for k, v in res.items() if k not in kinds} == {"trb_node_orin_1": 1, "trb_slot": 1}


def test_ray_start_worker_and_errors(trb):
    argv = ray_start_argv(head=False, address="192.168.10.20:6379", name="b", num_gpus=1)
    assert argv[2] == "--address=192.168.10.20:6379" and "--head" not in argv
    code, out, err = trb("node", "start", "--head", "--name", "x", "--num-gpus", "1", "--dry-run")
    assert code == 0 and out.startswith("ray start --head") and "--num-gpus=1" in out
    code, out, err = trb("node", "start", "--head", "--name", "x", "--num-gpus", "1", "--board", "Orin NX 16GB",
                         "--dry-run")
    assert code == 0 and '"trb_board_orin_nx_16gb":1' in out, out


def test_doctor_on_a_jetson(fake_jetson, trb):
    code, out, err = trb("doctor")
    assert code == 4, err  # it printed a MISSING line (tegrastats)
    assert "jetson" in out.lower() and "Orin" in out
    assert "L4T 35.4.1, JetPack 5.1.2" in out, out
    assert "tegrastats    MISSING" in out  # what the user must fix
    assert "0 (MAXN)" in out and "1300 MHz" in out
