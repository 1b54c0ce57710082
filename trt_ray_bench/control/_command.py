"""Running the machine's own tools (nvidia-smi, nvidia-cuda-mps-control): argv lists only.

Users run this on shared lab machines, so nothing goes through a shell: every command is
a list of arguments, and text for a tool's stdin is passed as ``input``, never piped.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence


@dataclass(frozen=True)
class Answer:
    """What a command said: its exit status and its stdout and stderr together (the
    NVIDIA tools print refusals on either, and sometimes exit 0 with one)."""

    argv: tuple
    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def first_line(self) -> str:
        """The tool's own words, for a one-line error message."""
        lines = [ln.strip() for ln in self.out.splitlines() if ln.strip()]
        return lines[0] if lines else f"exit status {self.rc}"

    def says(self, *phrases: str) -> bool:
        text = self.out.lower()
        return any(p.lower() in text for p in phrases)


def which(tool: str) -> Optional[str]:
    """The tool's path on PATH, or None."""
    return shutil.which(tool)


def run(argv: Sequence[str], input: Optional[str] = None, timeout_s: float = 30.0,
        env: Optional[Mapping[str, str]] = None) -> Answer:
    """Run ``argv`` (no shell) and return its answer; a missing tool or a hang becomes an
    answer too (127, 124), so callers word one error instead of catching three.

    Output goes to a file, not a pipe: a tool that leaves a daemon behind
    (``nvidia-cuda-mps-control -d``) cannot keep us waiting for the pipe to close. Without
    ``input`` stdin is empty, so no tool ever waits for a terminal. ``env``: the tool's
    whole environment (default: ours)."""
    argv = tuple(str(a) for a in argv)
    with tempfile.TemporaryFile(mode="w+", prefix="trb-cmd-") as out:
        try:
            p = subprocess.run(list(argv), input=input, stdin=None if input is not None else subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout_s, check=False,
                               env=dict(env) if env is not None else None)
        except FileNotFoundError:
            return Answer(argv, 127, f"{argv[0]}: command not found")
        except PermissionError as exc:
            return Answer(argv, 126, f"{argv[0]}: {exc.strerror}")
        except subprocess.TimeoutExpired:
            return Answer(argv, 124, f"{' '.join(argv)}: no answer within {timeout_s:g} s")
        out.seek(0)
        return Answer(argv, p.returncode, out.read())
