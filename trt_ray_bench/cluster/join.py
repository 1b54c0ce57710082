"""Joining a lab's Ray cluster: its token, and whether this node can join it at all.

Token authentication (Ray 2.52 and later): every node and every client of a cluster runs
with ``RAY_AUTH_MODE=token`` and reads the same token from a file (``RAY_AUTH_TOKEN_PATH``,
default ``~/.ray/auth_token``). The token travels as that file only: never on a command
line (``ps`` shows command lines to every user of a shared board), never in results. It
is defence in depth, sent in clear without TLS: the lab network stays closed. Ray 2.10
(the last for JetPack 5's Python 3.8) has no token authentication; there the lab network
is the only protection.

Versions: Ray refuses a node whose Ray or Python differs from the head's, after it has
started part of it, with a stack trace. ``check_head_versions`` reads the head's own
record (the ``CLUSTER_METADATA`` Ray keeps in its GCS) first and refuses in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import stat
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

from ..errors import UserError

#: Ray's token authentication: the version that brought it, and its environment
AUTH_SINCE = (2, 52)
AUTH_MODE, TOKEN_PATH_ENV, TOKEN_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"


def ray_version() -> str:
    import ray

    return ray.__version__


def _tuple(version: str) -> Tuple[int, int]:
    parts = (version.split(".") + ["0", "0"])[:2]
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts)  # type: ignore[return-value]


def has_token_auth(version: Optional[str] = None) -> bool:
    """Whether this Ray (or ``version``) has token authentication."""
    return _tuple(version or ray_version()) >= AUTH_SINCE


def token_path(given: Optional[str] = None) -> Path:
    """The token file: ``--token-file``, else ``$RAY_AUTH_TOKEN_PATH``, else Ray's default."""
    return Path(given or os.environ.get(TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token").expanduser()


def no_auth_note(version: Optional[str] = None) -> str:
    return (f"Ray {version or ray_version()} has no token authentication (Ray 2.52+): the lab network is the only "
            "protection; bind every node to it (--node-ip) and keep it closed")


def make_token(path: Path) -> bool:
    """Write a new random token to ``path`` (owner-only: 0600, whatever the umask, also
    over an empty file of another mode) unless one is there; True if made."""
    if path.is_file() and path.read_text().strip():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.is_symlink():  # the key goes where the user named it, not where a link points
        raise UserError(str(path), "is a symbolic link: the Ray token is written only to a file of its own")
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                 stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), stat.S_IRUSR | stat.S_IWUSR)  # O_CREAT's mode does not apply to a file that was there
        f.write(secrets.token_hex(32))
    return True


def check_token_mode(path: Path, where: str) -> None:
    """Refuse a token file that group or others may read or write, or that another user
    owns (root excepted), as ssh refuses such a private key: one line naming the file, its
    mode or owner and the fix. On the mode bits, not on access (root can read any file)."""
    try:
        st = path.stat()
    except OSError:
        return  # missing or unreadable: the caller's own message says so
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid() and os.geteuid() != 0:
        raise UserError(where, f"{path} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()}): the "
                               f"cluster's Ray token must be your own file, as an ssh key is")
    if mode & 0o077:
        raise UserError(where, f"{path} has mode {mode:04o}: group or others may read the cluster's Ray token "
                               f"(anyone who has it can run code on every node); it must be its owner's alone, as "
                               f"an ssh key is: chmod 600 {path}")


def _ray_turns_token_on() -> bool:
    """Whether this Ray turns token authentication on by itself for a new local cluster
    (and then writes ``~/.ray/auth_token`` where there is none)."""
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except Exception:  # noqa: BLE001 - a Ray without it
        return False
    return hasattr(setup, "enable_token_auth_by_default")


def local_token() -> Optional[Path]:
    """Before this process starts a local Ray of its own (``trb run`` / ``trb sweep``
    without ``--address``). A Ray that turns token authentication on by itself (2.5x+,
    ``RAY_AUTH_MODE`` unset) writes ``~/.ray/auth_token`` where there is none with the
    process's umask: 0644, the cluster's key readable by every user of the machine. So
    the file is made here first, owner-only (``make_token``), and Ray finds it. Nothing is
    made where this Ray has no token authentication, where ``RAY_AUTH_MODE`` says other
    than token, where ``$RAY_AUTH_TOKEN`` holds the token, or where the file is there; one
    that is there and that group or others may read is refused (``check_token_mode``).
    Returns the path made, or None."""
    if not has_token_auth():
        return None
    mode = os.environ.get(AUTH_MODE)
    if os.environ.get(TOKEN_ENV) or (mode is not None and mode.lower() != "token"):
        return None
    if mode is None and not _ray_turns_token_on():
        return None
    path = token_path()
    if path.is_file():  # Ray will use the one there: not if others may read it (as --address refuses)
        check_token_mode(path, "~/.ray/auth_token")
    try:
        return path if make_token(path) else None
    except OSError:
        return None  # a home that cannot be written: Ray says what it cannot do


def _readable_token(path: Path, where: str, how_to_get: str) -> None:
    try:
        ok = bool(path.read_text().strip())
    except OSError as exc:
        raise UserError(where, f"no Ray token at {path} ({exc.strerror}): {how_to_get}") from None
    if not ok:
        raise UserError(where, f"{path} is empty: {how_to_get}")
    check_token_mode(path, where)


def head_env(given: Optional[str], auth: str = "token", make: bool = True) -> Tuple[Dict[str, str], str]:
    """The environment ``ray start --head`` gets, and a line saying what was done: with
    token authentication (the default where this Ray has it) the head makes the token
    file if there is none; the other nodes need a copy of that file."""
    version = ray_version()
    if not has_token_auth(version):
        return {}, no_auth_note(version)
    if auth == "none":
        return {AUTH_MODE: "disabled"}, "token authentication off (--auth none): the lab network is the only protection"
    path = token_path(given)
    env = {AUTH_MODE: "token", TOKEN_PATH_ENV: str(path)}
    if not make:
        check_token_mode(path, "--token-file")  # one kept as found must be its owner's alone
        return env, f"token authentication: {path} ({'kept' if path.is_file() else 'made'} when the node starts)"
    made = make_token(path)
    if not made:
        check_token_mode(path, "--token-file")
    return env, (f"token {'made' if made else 'kept'}: {path} (copy this file to the same path on every node; never "
                 "on a command line)")


def join_env(address: str, given: Optional[str], auth: str = "token") -> Tuple[Dict[str, str], str]:
    """For ``ray start --address``: the node runs in the head's authentication mode (a
    node with token authentication cannot talk to a head without, and the reverse), with
    the head's token file; the head's Ray and Python versions are checked first
    (``check_head_versions``). One-line UserErrors; nothing has started."""
    version = ray_version()
    if not has_token_auth(version):
        check_head_versions(address)
        return {}, no_auth_note(version)
    if given:  # named by the user: checked before the head is asked anything
        check_token_mode(token_path(given), "--token-file")
    if not _head_requires_token(address):
        check_head_versions(address)
        return {AUTH_MODE: "disabled"}, ("the head runs without token authentication, so does this node: the lab "
                                         "network is the only protection")
    if auth == "none":
        raise UserError("--auth", f"none, but the head at {address} requires a Ray token: give this node a copy of "
                                  "its token file (--token-file)")
    path = token_path(given)
    _readable_token(path, "--token-file", "copy the head's token file here (scp, or ray_cluster.yaml's file_mounts), "
                                          "or give its path with --token-file")
    _use_auth({AUTH_MODE: "token", TOKEN_PATH_ENV: str(path)})
    check_head_versions(address)
    return {AUTH_MODE: "token", TOKEN_PATH_ENV: str(path)}, f"token: {path}"


def _use_auth(env: Dict[str, str]) -> None:
    """This process's Ray clients use ``env``'s authentication from now on."""
    os.environ.update(env)
    for key in (AUTH_MODE, TOKEN_PATH_ENV):
        if key not in env:
            os.environ.pop(key, None)
    _refresh_ray_config()


def _head_requires_token(address: str) -> bool:
    """Whether the head refuses a client without a token (this process asks once with
    authentication off; its own environment is put back)."""
    saved = {k: os.environ.get(k) for k in (AUTH_MODE, TOKEN_PATH_ENV, TOKEN_ENV)}
    try:
        os.environ.pop(TOKEN_ENV, None)
        _use_auth({AUTH_MODE: "disabled"})
        try:
            head_metadata(address)
        except UserError as exc:
            if "requires a Ray token" in exc.message:
                return True
            raise
        return False
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _refresh_ray_config()


def client_auth(address: str, given: Optional[str] = None) -> Optional[Path]:
    """For a driver joining the cluster at ``address`` (``trb run/sweep --address``): this
    process runs in the head's authentication mode. Where the head requires a token, the
    token file (``--token-file``, ``$RAY_AUTH_TOKEN_PATH`` or Ray's default; or
    ``$RAY_AUTH_TOKEN``) is used and its path returned; a head that requires one this driver
    lacks is one line, before anything is exported or run. A head without token
    authentication is joined without (a client in token mode breaks its runtime envs)."""
    if not has_token_auth():
        return None
    if given:
        _readable_token(token_path(given), "--token-file", "give the path of the cluster's token file")
    if not _head_requires_token(address):
        _use_auth({AUTH_MODE: "disabled"})
        return None
    if os.environ.get(TOKEN_ENV) and not given:  # the user's own way: the token in the environment
        _use_auth({AUTH_MODE: "token"})
        return None
    path = token_path(given)
    if not path.is_file():
        raise UserError("--address", token_hint(address, given))
    check_token_mode(path, "--token-file")
    _use_auth({AUTH_MODE: "token", TOKEN_PATH_ENV: str(path)})
    return path


def _refresh_ray_config() -> None:
    """Ray caches its config (the auth mode among it) and the token per process: read the
    environment again."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # noqa: BLE001 - older Ray: nothing cached to refresh
        pass


def auth_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the cluster refusing this client for want of (the right) token."""
    text = f"{exc.__class__.__name__}: {exc}"
    return "AuthenticationError" in text or "InvalidAuthToken" in text or "Authentication token" in text


def token_hint(address: str, given: Optional[str]) -> str:
    return (f"{address} requires a Ray token and this client has none or another: copy the cluster's token file "
            f"to {token_path(given)} or give it with --token-file (never the token on a command line)")


# ------------------------------------------------------------------ the head's versions
def head_metadata(address: str, timeout_s: float = 10.0) -> Dict[str, object]:
    """The head's own record of its Ray and Python versions (Ray's ``CLUSTER_METADATA``
    in its GCS), read without joining."""
    from ray._raylet import GcsClient

    try:
        with _quiet_fd2():  # Ray's C++ client logs its refusals itself; ours is the one line
            client = GcsClient(address=address)
            raw = client.internal_kv_get(b"CLUSTER_METADATA", namespace=b"cluster", timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - RpcError, AuthenticationError, ...
        if auth_refused(exc):
            raise UserError("--address", token_hint(address, None)) from None
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError("--address", f"{address}: cannot read the head's versions ({first})") from None
    if not raw:
        raise UserError("--address", f"{address}: the head has no cluster record (not a Ray head?)")
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the duration (C++ logging writes there directly)."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _python_key(version: str, level: str) -> Tuple[str, ...]:
    parts = version.split(".")
    return tuple(parts[:2] if level == "minor" else parts[:3])


def version_mismatch(head: Dict[str, object], ray_here: str, python_here: str) -> Optional[str]:
    """What differs between the head and this node, in words, or None. Python is compared
    at Ray's own level (``RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL``: patch unless minor)."""
    level = os.environ.get("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", "patch")
    ray_head, py_head = str(head.get("ray_version")), str(head.get("python_version"))
    if ray_head == ray_here and _python_key(py_head, level) == _python_key(python_here, level):
        return None
    return f"the head runs Ray {ray_head} on Python {py_head}; this node has Ray {ray_here} on Python {python_here}"


def check_head_versions(address: str) -> Dict[str, object]:
    """Refuse, in one line and before anything starts, to join a head of another Ray or
    Python version (a JetPack 5 board and a JetPack 6 head, say)."""
    head = head_metadata(address)
    diff = version_mismatch(head, ray_version(), platform.python_version())
    if diff:
        raise UserError("--address", f"{address}: {diff}. Ray needs the same Ray and Python on every node: each "
                                     "JetPack generation needs its own cluster (README: one cluster per generation)")
    return head
