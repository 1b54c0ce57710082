"""Joining a lab's cluster, for real: heads started by ``ray start`` (and by ``trb node
start``) in their own processes, with and without token authentication; a Ray already
running on the machine; a head of another Ray / Python version. Every head here is its
own process group, stopped by the test (never ``ray stop``, which would stop every Ray
on the machine)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml

from trt_ray_bench import results
from trt_ray_bench.cluster import join

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TOKEN_AUTH = join.has_token_auth()


def _free_port() -> int:
    # outside Ray's default worker port range (10002-19999)
    for port in range(26500, 26600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class Head:
    """``argv`` (a ``ray start --head ... --block``, or ``trb node start --head ... -- --block``)
    in its own session; ``stop()`` ends the whole group."""

    def __init__(self, argv, env, port: int, log: Path):
        self.port, self.log = port, log
        self.proc = subprocess.Popen(argv, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t_end = time.time() + 90
        while time.time() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"head exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    time.sleep(2)  # the GCS answers before the raylet has registered
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"head did not come up: {log.read_text()[-2000:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        # `ray start --block` takes SIGTERM as a cue to stop its processes one by one and can
        # take half a minute: a few seconds, then the whole group is killed (nothing of it
        # outlives the group; the test's Ray is throwaway)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _forget_current_cluster(self.port)


def _forget_current_cluster(port: int) -> None:
    """``ray start`` records its head for ``ray.init()`` to find (``/tmp/ray/ray_current_cluster``);
    a stopped head must not be found by later tests."""
    f = Path("/tmp/ray/ray_current_cluster")
    try:
        if f.is_file() and f.read_text().strip().endswith(f":{port}"):
            f.unlink()
    except OSError:
        pass


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), **extra)
    home.mkdir(parents=True, exist_ok=True)
    return env


def _spec(tmp_path: Path, cls_onnx) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump({
        "name": "joined", "output": str(tmp_path / "results"), "schedule": "alone",
        "timing": {"iterations": 3, "warmup": 1}, "telemetry": {"nvml": False},
        "models": [{"path": str(cls_onnx), "name": "cls"}]}))
    return p


def _trb(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def _refused(p, *expect):
    assert p.returncode == 2, (p.returncode, p.stdout[-1000:], p.stderr[-2000:])
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trb: error: "), p.stderr
    for e in expect:
        assert e in lines[0], (e, lines[0])


def test_run_starts_its_own_ray_beside_one_already_running(tmp_path, cls_onnx):
    """A lab's head board after `trb node start --head`: `trb run SPEC` without --address
    used to attach to that Ray and crash ("num_cpus and num_gpus must not be provided")."""
    port = _free_port()
    head = Head([_bin("ray"), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                 "--disable-usage-stats", "--block"], _env(tmp_path / "home", RAY_AUTH_MODE="disabled"), port,
                tmp_path / "head.log")
    try:
        p = _trb(["run", _spec(tmp_path, cls_onnx)], _env(tmp_path / "home"), tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "Traceback" not in p.stderr
        runs = results.load(tmp_path / "results").runs
        assert set(runs.status) == {"ok"}
        # ours was a Ray of its own: the head's cluster still has its one node, untouched
        assert "ray         local (started for this run, this machine)" in p.stderr
    finally:
        head.stop()


def test_output_that_cannot_be_created_is_one_line(trb, tmp_path, cls_onnx):
    spec = _spec(tmp_path, cls_onnx)
    for args in ((), ("--dry-run",)):
        code, out, err = trb("run", spec, "--output", "/proc/forbidden", *args)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, out, err)
        assert err.startswith("trb: error: --output: /proc/forbidden/joined: cannot create /proc/forbidden")
    assert not Path("/proc/forbidden").exists()


@pytest.mark.skipif(not TOKEN_AUTH, reason=f"Ray {ray.__version__} has no token authentication (2.52+)")
def test_token_authentication_on_a_real_cluster(tmp_path, cls_onnx):
    """`trb node start --head` makes the token file and runs Ray with RAY_AUTH_MODE=token;
    a client without the token is refused (in one line), with it a run works; the token
    is on no command line and in no result."""
    port = _free_port()
    token = tmp_path / "secrets" / "auth_token"
    head = Head([sys.executable, "-m", "trt_ray_bench.cli", "node", "start", "--head", f"--port={port}",
                 "--token-file", str(token), "--", "--num-cpus=1", "--block"],
                _env(tmp_path / "head-home"), port, tmp_path / "head.log")
    try:
        secret = token.read_text().strip()
        assert len(secret) >= 32 and oct(token.stat().st_mode & 0o777) == "0o600"
        assert f"token made: {token}" in (tmp_path / "head.log").read_text()
        spec = _spec(tmp_path, cls_onnx)
        stranger = _env(tmp_path / "stranger-home")  # no ~/.ray/auth_token there
        # Ray itself refuses a client without the token
        p = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{head.address}')"],
                           capture_output=True, text=True, env=stranger, timeout=120)
        assert p.returncode != 0 and "Authentication" in (p.stderr + p.stdout)
        # trb says so in one line, before exporting or running anything
        _refused(_trb(["run", spec, "--address", head.address], stranger, tmp_path),
                 f"--address: {head.address} requires a Ray token")
        assert not (tmp_path / "results").exists()
        # a copy group or others may read, where the client looks by default (as Ray 2.5x+ writes its own with
        # the umask): refused in one line, before anything runs (tests/cluster/test_token_mode.py: every command)
        copy = tmp_path / "stranger-home" / ".ray" / "auth_token"
        copy.parent.mkdir()
        copy.write_text(secret)
        copy.chmod(0o644)
        _refused(_trb(["run", spec, "--address", head.address], stranger, tmp_path),
                 f"--token-file: {copy} has mode 0644: group or others may read", f"chmod 600 {copy}")
        assert not (tmp_path / "results").exists()
        copy.unlink()
        # (a dry run contacts nothing, so it cannot tell the head wants a token: the real start refuses, before
        # anything starts)
        _refused(_trb(["node", "start", "--address", head.address], stranger, tmp_path),
                 "--token-file: no Ray token at")
        # with the file, a run works
        p = _trb(["run", spec, "--address", head.address, "--token-file", token], stranger, tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        assert set(results.load(tmp_path / "results").runs.status) == {"ok"}
        # a second node's dry run: the command and the token file it would use, nothing contacted or checked
        p = _trb(["node", "start", "--address", head.address, "--token-file", token, "--dry-run"], stranger, tmp_path)
        assert p.returncode == 0 and f"then {token} is used" in p.stdout and secret not in p.stdout
        assert "# not checked (a dry run contacts nothing)" in p.stdout
        # the token is on no command line of this machine and in no result file
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    assert secret not in (d / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    pass
        for f in (tmp_path / "results").rglob("*"):
            if f.is_file():
                assert secret.encode() not in f.read_bytes(), f
    finally:
        head.stop()


def test_joining_a_head_of_another_ray_or_python_is_refused_first(tmp_path):
    """The head's own record of its versions (Ray's CLUSTER_METADATA in its GCS) is made
    to say what a JetPack 5 head says; `trb node start --address` refuses in one line and
    starts nothing."""
    port = _free_port()
    head = Head([_bin("ray"), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                 "--disable-usage-stats", "--block"], _env(tmp_path / "home", RAY_AUTH_MODE="disabled"), port,
                tmp_path / "head.log")
    try:
        here = _env(tmp_path / "home")
        p = _trb(["node", "start", "--address", head.address, "--dry-run"], here, tmp_path)
        assert p.returncode == 0, p.stderr  # same versions: fine
        code = ("import json, os; os.environ['RAY_AUTH_MODE'] = 'disabled'\n"
                "from ray._raylet import GcsClient\n"
                f"c = GcsClient(address='{head.address}')\n"
                "m = json.loads(c.internal_kv_get(b'CLUSTER_METADATA', namespace=b'cluster'))\n"
                "m.update(ray_version='2.10.0', python_version='3.8.10')\n"
                "c.internal_kv_put(b'CLUSTER_METADATA', json.dumps(m).encode(), True, namespace=b'cluster')\n")
        subprocess.run([sys.executable, "-c", code], check=True, env=here, timeout=60, capture_output=True)
        p = _trb(["node", "start", "--address", head.address], here, tmp_path)
        _refused(p, f"--address: {head.address}: the head runs Ray 2.10.0 on Python 3.8.10; this node has Ray "
                    f"{ray.__version__} on Python {sys.version.split()[0]}", "each JetPack generation needs its own "
                                                                               "cluster")
        assert p.stdout == ""  # nothing printed, nothing started
    finally:
        head.stop()


OTHER = os.environ.get("TRB_OTHER_RAY_BIN")  # `ray` of another Ray / Python (CI: the Python 3.8 venv's)


@pytest.mark.skipif(not OTHER, reason="TRB_OTHER_RAY_BIN (a `ray` of another Ray/Python version) not given")
def test_a_real_head_of_another_generation_is_refused(tmp_path):
    """A real head of the other generation (CI: Ray 2.10 on Python 3.8, JetPack 5's)."""
    port = _free_port()
    head = Head([OTHER, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                 "--disable-usage-stats", "--block"], _env(tmp_path / "home"), port, tmp_path / "head.log")
    try:
        # not --dry-run (a dry run contacts nothing): the head is asked its version before
        # anything starts on this node, and the refusal leaves nothing started
        p = _trb(["node", "start", "--address", head.address], _env(tmp_path / "home"), tmp_path)
        _refused(p, f"--address: {head.address}: the head runs Ray ", f"this node has Ray {ray.__version__}",
                 "each JetPack generation needs its own cluster")
    finally:
        head.stop()
