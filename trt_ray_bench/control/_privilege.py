"""Running a Jetson tool as root: directly when we are root, otherwise through ``sudo -n``.

``-n`` makes sudo fail instead of asking for a password: a benchmark has nobody at the
terminal (a Ray worker has no terminal at all), and a prompt would hang the run. Whether
sudo would work is asked before anything changes (``sudo -n -l CMD``: is CMD allowed
without a password), so a missing sudo rule is one clear error, not a half-applied run.

sysfs files are written through ``sudo -n tee FILE`` with the value on stdin: an argv
list, never a shell redirection. ``TRB_SUDO=always`` goes through sudo even as root (the
tests use it with a stand-in sudo; a root shell may use it to keep sudo's log).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import UserError
from ._command import Answer, run, which

SUDO = "sudo"


def through_sudo() -> bool:
    """True when root's tools must be run through ``sudo -n``."""
    return os.environ.get("TRB_SUDO", "auto") == "always" or os.geteuid() != 0


def as_root(argv: Sequence[str]) -> List[str]:
    """``argv`` as root: itself, or prefixed with ``sudo -n``."""
    return [SUDO, "-n", *argv] if through_sudo() else list(argv)


def run_as_root(argv: Sequence[str], timeout_s: float = 30.0) -> Answer:
    return run(as_root(argv), timeout_s=timeout_s)


def root_problem(argv: Sequence[str]) -> Optional[str]:
    """Why ``argv`` cannot run as root without a password (in sudo's words), or None."""
    if not through_sudo():
        return None
    if which(SUDO) is None:
        return "sudo is not installed"
    a = run([SUDO, "-n", "-l", *argv], timeout_s=15.0)
    return None if a.ok else f"sudo -n failed: {a.first_line()}"


def check_root(argv: Sequence[str], where: str, what: str) -> None:
    """Refuse (UserError naming ``where``) unless ``argv`` can run as root without a
    password. Runs ``sudo -n -l`` only: changes nothing."""
    problem = root_problem(argv)
    if problem:
        tool = os.path.basename(argv[0])
        raise UserError(where, f"{what} needs root; run as root or allow passwordless sudo for {tool} ({problem})")


def write_as_root(path: Path, value: int) -> Answer:
    """Write ``value`` to the sysfs file ``path`` as root; the answer says how it went."""
    text = f"{value}\n"
    if through_sudo():
        return run([SUDO, "-n", "tee", str(path)], input=text, timeout_s=15.0)
    try:
        with open(path, "w") as f:  # one write(): sysfs parses each write on its own
            f.write(text)
    except OSError as exc:
        return Answer(("write", str(path)), 1, f"{path}: {exc.strerror or exc}")
    return Answer(("write", str(path)), 0, "")
