"""TensorRT's builder timing cache kept in a file (``options.timing_cache``, trtexec's
``--timingCacheFile``): the tactic timings one build measured, read by the next build on
the same GPU and TensorRT, which then times only the layers it has not seen. On TensorRT
8.5 (JetPack 5), where a build takes minutes, a study's builds of one model at other
precisions reuse the timings of the layers they share (an entry holds the layer's shapes:
another input size is timed anew).

The file is read before the build and written after a build that succeeded, never after
one that failed. Writers (sweep points on one node, builds in threads) hold an exclusive
``flock`` on ``FILE.lock`` while they write, and first merge what another build wrote
since they read it (``ITimingCache.combine``), so the file keeps every build's timings.
It is not part of an engine's cache key: the same engine is wanted with or without it.

``IBuilderConfig.create_timing_cache`` / ``set_timing_cache`` / ``get_timing_cache`` and
``ITimingCache.serialize`` / ``combine`` exist in every TensorRT from 8.5 to 11.x."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple

from .._atomic import write_atomic
from ..errors import UserError

EXPECTED = "expected a file path (TensorRT's timing cache: created by the first build, updated by every build)"


def check(value: Any, where: str) -> None:
    """Refuse, in one line naming ``WHERE.options.timing_cache``, what cannot be a timing
    cache file, before anything is built: not a path, a folder, a file in a folder that
    does not exist or cannot be written (the file and its ``.lock`` are written there), or
    a file that cannot be read. None: no timing cache."""
    if value is None:
        return
    name = f"{where}.options.timing_cache"
    if not isinstance(value, str) or not value.strip():
        raise UserError(name, f"{value!r:.60}, {EXPECTED}")
    path = Path(value).expanduser()
    folder = path.parent
    if path.is_dir():
        raise UserError(name, f"{value} is a folder, {EXPECTED}")
    if not folder.is_dir():
        raise UserError(name, f"{value}: no such folder {folder}, {EXPECTED}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(name, f"{value}: the folder {folder} cannot be written (the cache and its .lock are "
                        "written there)")
    if path.exists() and (not path.is_file() or not os.access(path, os.R_OK)):
        raise UserError(name, f"{value} cannot be read as a file, {EXPECTED}")


def _version(st: os.stat_result) -> Tuple[int, int, int]:
    """What tells one version of the file from another (each write renames a new file over
    it: a new inode)."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def _stamp(path: Path) -> Optional[Tuple[int, int, int]]:
    """The version of the file there now; None where there is no file."""
    try:
        return _version(os.stat(path))
    except FileNotFoundError:
        return None


def _read(path: Path) -> Tuple[bytes, Optional[tuple]]:
    """The file's bytes (b"" where there is none) and the stamp of the version read."""
    try:
        with open(path, "rb") as f:
            return f.read(), _version(os.fstat(f.fileno()))
    except FileNotFoundError:
        return b"", None


@dataclass
class Attached:
    """The timing cache of one build: its file, what that held, and the cache TensorRT uses."""

    path: Path
    existed: bool
    bytes_before: int
    stamp: Optional[tuple]
    cache: Any

    def record(self, bytes_after: int) -> dict:
        """What the engine's record says of it: whether the build could reuse timings."""
        return {"path": os.path.abspath(self.path), "existed": self.existed, "bytes_before": self.bytes_before,
                "bytes_after": bytes_after}


def attach(config, value: Optional[str], logger, where: str, here: str) -> Optional[Attached]:
    """Give ``config`` the timing cache of file ``value`` (a new one where the file does not
    exist yet). A file this TensorRT refuses (written by another GPU or TensorRT version,
    or not a timing cache) is a one-line error naming the option and the file, raised
    before the build. ``here``: this TensorRT and GPU, in words, for that error."""
    if value is None:
        return None
    path = Path(value).expanduser()
    try:
        data, stamp = _read(path)
    except OSError as exc:
        raise UserError(f"{where}.options.timing_cache", f"{path} cannot be read ({exc.strerror})") from None
    seen = len(logger.errors)
    detail = ""
    try:
        cache = config.create_timing_cache(data)
        # False where TensorRT's check of the cache's header (device, version) fails
        ok = cache is not None and bool(config.set_timing_cache(cache, ignore_mismatch=False))
    except Exception as exc:  # noqa: BLE001 - whatever the binding raises for bytes it cannot read
        ok, detail = False, f"{exc.__class__.__name__}: {exc}"
    if not ok:
        said = " | ".join(logger.errors[seen:] + ([detail] if detail else [])).replace("\n", " ")
        raise UserError(f"{where}.options.timing_cache",
                        f"{path} was written by another GPU or TensorRT version, or is no timing cache ({here} "
                        f"refuses it{': ' + said[-300:] if said else ''}): delete it or name another file")
    return Attached(path, stamp is not None, len(data), stamp, cache)


def save(config, attached: Attached, where: str) -> dict:
    """After a build that succeeded: the config's timing cache (what the build measured and
    what it read) written over the file, merged first with what another build wrote there
    since it was read; all under an exclusive lock on ``FILE.lock``. Returns the record."""
    path = attached.path
    cache = config.get_timing_cache()
    if cache is None:  # TensorRT gives back the cache it was given; the one attached, where it does not
        cache = attached.cache
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{where}.options.timing_cache", f"{lock} cannot be written ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _stamp(path) not in (None, attached.stamp):  # another build wrote it since: keep its timings too
            theirs, _ = _read(path)
            try:
                other = config.create_timing_cache(theirs)
                if other is not None:
                    cache.combine(other, ignore_mismatch=False)
            except Exception:  # noqa: BLE001 - theirs cannot be merged (another version): ours is written
                pass
        data = bytes(cache.serialize())
        write_atomic(path, data)
    except OSError as exc:
        raise UserError(f"{where}.options.timing_cache", f"{path} cannot be written ({exc.strerror})") from None
    finally:
        os.close(fd)  # and the lock with it
    return attached.record(len(data))


def describe(record: Optional[dict]) -> str:
    """The timing cache of a build, in words for the build's line ("" where none was used)."""
    if not record:
        return ""
    read = f"read {record['bytes_before']} bytes" if record.get("existed") else "new"
    return f", timing cache {Path(record['path']).name} ({read}, wrote {record['bytes_after']})"
