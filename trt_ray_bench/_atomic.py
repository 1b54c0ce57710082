"""One way to write a file that other processes may be reading or writing at the same time
(the model and engine caches, which sweep points on one node share)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Union


def write_atomic(target: Path, data: Union[bytes, bytearray, memoryview, Callable[[Path], None]]) -> None:
    """``data`` (bytes, or ``data(path)`` that writes the file) into a temporary file of this
    process's own beside ``target``, then renamed over it: two processes writing the same
    file each replace a whole one, and a reader sees the old file or a whole new one, never
    half of one. The file is left readable by all (``0644``), as the caches' files always
    were; on any failure the temporary file is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=str(target.parent))
    try:
        if callable(data):
            os.close(fd)
            data(Path(tmp))
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(memoryview(data))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
