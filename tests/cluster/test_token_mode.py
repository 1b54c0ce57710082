"""The Ray token file is the cluster's key: trb refuses one that group or others may read
or write, as ssh refuses such a private key, in one line naming the file, its mode and the
fix (``chmod 600 FILE``), before anything starts: `trb node start` (head and joining
node), `trb run --address`, `trb sweep --address`. Real files with real modes; the check
is on the mode bits, not on access (these tests may run as root, who can read any file).
Files trb writes are 0600 whatever the umask, also over an empty file it fills, and a
local Ray started by trb finds one before Ray would write its own, world-readable."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trt_ray_bench.cluster import join
from trt_ray_bench.errors import UserError

token_auth = pytest.mark.skipif(not join.has_token_auth(), reason="this Ray has no token authentication (2.52+)")


def open_file(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("f" * 64)
    path.chmod(mode)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    return path


def refused(path: Path, mode: int) -> str:
    return (f"trb: error: --token-file: {path} has mode {mode:04o}: group or others may read the cluster's Ray token "
            "(anyone who has it can run code on every node); it must be its owner's alone, as an ssh key is: "
            f"chmod 600 {path}")


@pytest.fixture
def listener():
    """Something that answers at an address (``check_address`` only connects): the token
    is refused before any Ray is asked anything."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _specs(tmp_path: Path, onnx) -> tuple:
    base = {"name": "tok", "output": str(tmp_path / "results"), "schedule": "alone",
            "timing": {"iterations": 3, "warmup": 1}, "models": [{"path": str(onnx), "name": "cls"}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({"name": "toks", "base": base,
                                                        "axes": {"timing.gap_s": [0, 0.01]}}))
    return tmp_path / "run.yaml", tmp_path / "sweep.yaml"


@token_auth
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o601, 0o700 | 0o004])
def test_every_command_refuses_an_open_token_file(mode, tmp_path, trb, listener, cls_onnx):
    token = open_file(tmp_path / "secrets" / "auth_token", mode)
    run_spec, sweep_spec = _specs(tmp_path, cls_onnx)
    for args in (["node", "start", "--head", "--token-file", token, "--dry-run"],
                 ["node", "start", "--head", "--token-file", token],
                 ["node", "start", "--address", listener, "--token-file", token, "--dry-run"],
                 ["node", "start", "--address", listener, "--token-file", token],
                 ["run", run_spec, "--address", listener, "--token-file", token],
                 ["sweep", sweep_spec, "--address", listener, "--token-file", token]):
        code, out, err = trb(*args)
        assert (code, out, err.splitlines()) == (2, "", [refused(token, mode)]), args
    assert stat.S_IMODE(token.stat().st_mode) == mode  # refused, not repaired: trb did not write it
    assert not (tmp_path / "results").exists()


@token_auth
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_file_is_used(mode, tmp_path, trb):
    token = open_file(tmp_path / "secrets" / "auth_token", mode)
    code, out, err = trb("node", "start", "--head", "--token-file", token, "--dry-run")
    assert code == 0 and f"# token authentication: {token} (kept when the node starts)" in out, err


@token_auth
def test_the_default_files_are_checked_too(tmp_path, trb, monkeypatch):
    """$RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token: the one Ray 2.5x+ writes with the umask."""
    by_env = open_file(tmp_path / "env" / "auth_token", 0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(by_env))
    code, out, err = trb("node", "start", "--head", "--dry-run")
    assert (code, out, err.splitlines()) == (2, "", [refused(by_env, 0o644)])
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    in_home = open_file(tmp_path / "home" / ".ray" / "auth_token", 0o644)
    code, out, err = trb("node", "start", "--head", "--dry-run")
    assert (code, out, err.splitlines()) == (2, "", [refused(in_home, 0o644)])
    in_home.chmod(0o600)
    code, out, err = trb("node", "start", "--head", "--dry-run")
    assert code == 0 and f"# token authentication: {in_home}" in out


def test_files_trb_writes_are_owner_only(tmp_path, monkeypatch):
    old = os.umask(0)  # the loosest umask: the mode is trb's own
    try:
        made = tmp_path / "a" / "auth_token"
        assert join.make_token(made) and stat.S_IMODE(made.stat().st_mode) == 0o600
        assert stat.S_IMODE(made.parent.stat().st_mode) == 0o700
        empty = open_file(tmp_path / "b" / "auth_token", 0o644)
        empty.write_text("")  # an empty file is filled, and made the owner's alone
        assert join.make_token(empty) and stat.S_IMODE(empty.stat().st_mode) == 0o600
        assert len(empty.read_text()) == 64
        assert not join.make_token(empty)  # one with a token is kept as it is
    finally:
        os.umask(old)


@token_auth
def test_a_local_ray_finds_an_owner_only_token_before_ray_writes_its_own(tmp_path, monkeypatch):
    """`trb run` / `trb sweep` without --address start a Ray of their own; a Ray that turns
    token authentication on by itself writes ~/.ray/auth_token (mode 0644 with the usual
    umask) where there is none. trb makes it first, 0600, and Ray's own loader finds it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for k in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    old = os.umask(0o022)
    try:
        made = join.local_token()
    finally:
        os.umask(old)
    if not join._ray_turns_token_on():
        assert made is None and not (home / ".ray").exists()
        return
    assert made == home / ".ray" / "auth_token" and stat.S_IMODE(made.stat().st_mode) == 0o600
    assert join.local_token() is None  # there: kept as it is
    code = ("from ray._raylet import AuthenticationTokenLoader as L; "
            "print(L.instance().has_token(ignore_auth_mode=True))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")})
    assert p.stdout.strip() == "True", p.stderr[-2000:]  # so ray.init makes no file of its own
    # one that others may read is the cluster's key shared with them: refused, as --address refuses it
    made.chmod(0o644)
    with pytest.raises(UserError, match=r"^~/\.ray/auth_token: .*auth_token has mode 0644: group or others may read"):
        join.local_token()
    made.chmod(0o600)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's choice: nothing made
    made.unlink()
    assert join.local_token() is None and not made.exists()


def test_a_token_file_is_never_written_through_a_link_nor_taken_from_another_user(tmp_path, monkeypatch):
    """A link planted where the token goes would have the key written where it points; a
    0600 file of another user would be their key, not this user's."""
    target = tmp_path / "elsewhere"
    link = tmp_path / "tk" / "auth_token"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(UserError, match=r"auth_token: is a symbolic link: the Ray token is written only to a file"):
        join.make_token(link)
    assert not target.exists()
    theirs = tmp_path / "theirs"
    theirs.write_text("x" * 64)
    theirs.chmod(0o600)
    me = theirs.stat().st_uid + 1000  # (this process as a user who is not the file's owner, nor root)
    monkeypatch.setattr(join.os, "geteuid", lambda: me)
    with pytest.raises(UserError, match=rf"^--token-file: .*theirs belongs to uid \d+, not to this user \(uid {me}\)"):
        join.check_token_mode(theirs, "--token-file")

