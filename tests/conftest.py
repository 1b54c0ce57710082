"""Shared fixtures: real things, built small. Models are exported by Ultralytics from
its yaml (random weights) at small input sizes; Ray is a real local instance."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest


def pytest_configure(config):
    """The tests of Ctrl-C send SIGINT to runs and expect it to stop them. A shell script
    that starts the suite in the background (``pytest &``) hands it SIGINT ignored, which
    every run started from it would inherit (and rightly obey): the suite takes Ctrl-C back,
    as an interactive shell gives it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- two workers at once
# On two workers (pytest-xdist, ``-n 2``: CI's Python 3.8 core suite), a test
# marked ``alone`` (every test of the measurement loop's timing, tests/timing, whose
# wall-clock statistics must not share a core, and a few that need a quiet machine) runs
# while the other worker waits between its tests: the other tests hold a shared lock, an
# ``alone`` one the exclusive lock, and a gate taken first keeps the shared ones from
# starving it. Without xdist nothing is locked.
ALONE_DIRS = (ROOT / "tests" / "timing",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(d in Path(str(item.fspath)).parents for d in ALONE_DIRS):
            item.add_marker("alone")


@contextlib.contextmanager
def _machine_share(where: Path, alone: bool):
    import fcntl

    with open(where / "trb-tests.gate", "a") as gate, open(where / "trb-tests.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)  # an alone test waiting here holds it: no shared one starts
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _workers_dir(tmp_path_factory) -> Path:
    """The directory the workers share: each worker's base temp sits in it (popen-gwN)."""
    return tmp_path_factory.getbasetemp().parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The whole of a test (its fixtures' setup and teardown too) under the workers' lock."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    with _machine_share(_workers_dir(item.config._tmp_path_factory),
                        alone=item.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep exports of the test session out of the user's cache, shared by all tests."""
    d = os.environ.get("TRB_TEST_CACHE")
    if not d and os.environ.get("PYTEST_XDIST_WORKER"):  # one cache for both workers' exports
        d = str(_workers_dir(tmp_path_factory) / "trb-cache")
        os.makedirs(d, exist_ok=True)
    d = d or str(tmp_path_factory.mktemp("trb-cache"))
    os.environ["TRB_CACHE_DIR"] = d
    yield d


@pytest.fixture(scope="session", autouse=True)
def _ray_token(tmp_path_factory):
    """The session's own Ray token file, owner-only, for every Ray the tests start and
    every `trb node start`: never the user's ~/.ray/auth_token, which a Ray of 2.5x+ writes
    itself (world-readable, with the umask) on its first local ray.init, and which trb
    refuses while group or others may read it (``cluster.join.check_token_mode``)."""
    from trt_ray_bench.cluster.join import TOKEN_PATH_ENV, make_token

    path = tmp_path_factory.mktemp("ray-token") / "auth_token"
    make_token(path)
    os.environ[TOKEN_PATH_ENV] = str(path)
    yield path


@pytest.fixture(autouse=True)
def _keep_ray_token(_ray_token, monkeypatch):
    """Set again for each test: a test that joins a head without token authentication
    takes it out of this process's environment (``cluster.join._use_auth``)."""
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(_ray_token))


def _export(arch, task, imgsz, batch=1):
    """Exported here, or found in the cache where Ultralytics is not installed (a GPU
    machine that was given the exports: benchmarks/gpu_models.py; CI's Python 3.8 run,
    given the default Python's: with TRB_TEST_NEED_EXPORTS=1 a missing one fails, not skips)."""
    from trt_ray_bench.errors import MissingExtra
    from trt_ray_bench.models import export_onnx, yaml_name

    try:
        path, _ = export_onnx(yaml_name(arch, task), task, (imgsz, imgsz), batch)
    except MissingExtra as exc:
        if os.environ.get("TRB_TEST_NEED_EXPORTS"):
            pytest.fail(f"{arch} {task} {imgsz}: not in the test cache {os.environ.get('TRB_CACHE_DIR')} ({exc})")
        pytest.skip(str(exc))
    return path


@pytest.fixture(scope="session")
def cls_onnx(_cache_dir) -> Path:
    """yolov8n-cls exported at 64x64: a real Ultralytics classification graph, fast on CPU."""
    return _export("yolov8n", "classify", 64)


@pytest.fixture(scope="session")
def det_onnx(_cache_dir) -> Path:
    """yolov8n detect exported at 96x96."""
    return _export("yolov8n", "detect", 96)


@pytest.fixture(scope="session")
def det320_onnx(_cache_dir) -> Path:
    """yolov8n detect exported at 320x320: large enough that TensorRT picks INT8 kernels."""
    return _export("yolov8n", "detect", 320)


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the tests that drive actors directly (not through the CLI)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="trb",
                 logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def trb(monkeypatch, capsys):
    """Run the ``trb`` CLI in-process; returns (exit code, stdout, stderr)."""
    from trt_ray_bench.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


class ReleasedRun:
    """A run started in a thread, held until its together phase was released, so a test
    can hurt it mid-measurement (kill a model actor) and then see what was written."""

    def __init__(self, ray, plan):
        import threading
        import time

        from trt_ray_bench.cluster import run_plan

        self.ray, self.plan, self.box = ray, plan, {}
        self.thread = threading.Thread(target=lambda: self.box.update(out=run_plan(plan, log=lambda s: None)))
        self.thread.start()
        coord = self.actor("coordinator")
        while ray.get(coord.state.remote())["start_ns"] is None:
            time.sleep(0.02)

    def actor(self, name: str, timeout: float = 60):
        """The run's named actor ``<run_id>/<name>`` (a model, or ``coordinator``)."""
        import time

        suffix = f"{self.plan.run_id}/{name}"
        t_end = time.time() + timeout
        while time.time() < t_end:
            for a in self.ray.util.list_named_actors(all_namespaces=True):
                if a["name"].endswith(suffix):
                    return self.ray.get_actor(a["name"], namespace=a["namespace"])
            time.sleep(0.05)
        raise AssertionError(f"no actor named *{suffix}")

    def kill(self, model: str) -> None:
        self.ray.kill(self.actor(model))

    def join(self, timeout: float = 120) -> dict:
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "the run hung after a model actor was killed"
        return self.box["out"]


@pytest.fixture
def released_run(ray_local):
    """``released_run(plan)``: start ``plan`` and return once it measures together."""
    return lambda plan: ReleasedRun(ray_local, plan)
