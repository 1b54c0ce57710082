"""What ``trb`` says while it works, on stderr: the package's logger and progress displays.

Library code logs to :data:`LOGGER` (``trt_ray_bench``) and never prints; a library user
sees nothing unless they configure logging. The CLI calls :func:`configure`: INFO lines
by default, ``-q`` warnings only, ``-v`` debug as well. Tables and results go to stdout,
everything else to stderr.

Progress: where stderr is a terminal (and not ``-q``, ``TERM=dumb`` or
``TRB_PROGRESS=0``), a live line redrawn in place for each long step (an export, an engine
build, a phase, a sweep); elsewhere (a pipe, a file, CI) plain lines only, one where a
step starts or ends, never a redraw. The live line is tqdm's: one pure-Python module with
no dependencies of its own, on Python 3.8 (JetPack 5) to 3.13 and any architecture, and
already what Ultralytics installs; rich draws more (several bars, colours) but brings
pygments and markdown-it-py, about ten times the size, for one line of progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional

LOGGER = logging.getLogger("trt_ray_bench")
LOGGER.addHandler(logging.NullHandler())  # a library: silent unless its user configures logging

#: how often the driver asks the model actors how far a phase is (live display only)
POLL_S = 0.5
#: verbosity: -1 (-q) warnings only, 0 progress lines, 1 (-v) debug too
QUIET, NORMAL, VERBOSE = -1, 0, 1

_state = {"live": False, "verbosity": NORMAL}
_open: List["Line"] = []  # the live lines on screen (log lines are written above them)
_lock = threading.RLock()


class _StderrHandler(logging.Handler):
    """One line per record on the current ``sys.stderr`` (looked up at each record, so a
    test's captured stream is the one written to), above the live lines where there are."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stream = sys.stderr
            with _lock:
                if _open:
                    from tqdm import tqdm

                    tqdm.write(msg, file=stream)
                else:
                    stream.write(msg + "\n")
                    stream.flush()
        except Exception:  # noqa: BLE001 - logging must not fail the run
            self.handleError(record)


_HANDLER = _StderrHandler()
_HANDLER.setFormatter(logging.Formatter("%(message)s"))


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False


def configure(verbosity: int = NORMAL, live: Optional[bool] = None) -> None:
    """What the CLI does once per command: the package logger writes to stderr at the
    verbosity's level; ``live`` (default: stderr is a terminal, not ``-q``, ``TERM`` is not
    ``dumb`` and ``TRB_PROGRESS`` is not ``0``) turns the live display on."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    LOGGER.setLevel(level)
    if _HANDLER not in LOGGER.handlers:
        LOGGER.addHandler(_HANDLER)
    LOGGER.propagate = False  # a root logger set up by someone else must not repeat our lines
    if live is None:
        live = (verbosity >= 0 and _is_terminal(sys.stderr) and os.environ.get("TERM") != "dumb"
                and os.environ.get("TRB_PROGRESS", "").lower() not in ("0", "no", "off", "false"))
    _state.update(live=bool(live), verbosity=verbosity)


def live() -> bool:
    """Whether a live display is drawn (stderr is a terminal): what polls for progress ask."""
    return _state["live"]


def verbosity() -> int:
    return _state["verbosity"]


class Say:
    """Where a step's lines go: to ``log(line)`` where a caller gave one (every line, as
    library callers always had them), else to the package logger at the line's level."""

    def __init__(self, log: Optional[Callable[[str], None]] = None, logger: logging.Logger = LOGGER):
        self.log, self.logger = log, logger

    def _emit(self, level: int, msg: str) -> None:
        if self.log is not None:
            self.log(msg)
        else:
            self.logger.log(level, msg)

    def info(self, msg: str) -> None:
        self._emit(logging.INFO, msg)

    def warning(self, msg: str) -> None:
        self._emit(logging.WARNING, msg)

    def error(self, msg: str) -> None:
        self._emit(logging.ERROR, msg)

    def debug(self, msg: str) -> None:
        if self.log is None:
            self.logger.debug(msg)


def say(log: Optional[Callable[[str], None]] = None) -> Say:
    return log if isinstance(log, Say) else Say(log)


def duration(s: float) -> str:
    """``75.3`` -> ``1m15s``; ``4.2`` -> ``4.2 s``."""
    if s != s or s < 0:  # NaN
        return "?"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _size():
    """stderr's terminal (columns, lines), 0 where it tells none."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        return size.columns, size.lines
    except (AttributeError, ValueError, OSError):
        return 0, 0


class Line:
    """One live line on stderr (a tqdm bar: ``total`` set, or a counter without), or
    nothing at all where the display is not live. ``update(n, note)`` moves it; the note
    follows the label (``{desc}`` of ``bar_format``)."""

    def __init__(self, desc: str, total: Optional[float] = None, unit: str = "it", bar_format: Optional[str] = None):
        self.bar = None
        self.label = desc
        if not live():
            return
        from tqdm import tqdm

        cols, rows = _size()
        with _lock:  # a terminal that tells no size (a bare pty: 0 x 0, where tqdm draws nothing) gets 80 x 24
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=bool(cols),
                            ncols=None if cols else 80, nrows=None if rows else 24, mininterval=0.1,
                            bar_format=bar_format, position=len(_open))
            _open.append(self)

    def update(self, n: Optional[float] = None, note: Optional[str] = None, total: Optional[float] = None) -> None:
        if self.bar is None:
            return
        with _lock:
            if total is not None:
                self.bar.total = total
            if n is not None:
                self.bar.n = n
            if note is not None:
                self.bar.set_description_str(f"{self.label}  {note}" if self.label else note, refresh=False)
            self.bar.refresh()

    def describe(self, desc: str) -> None:
        if self.bar is not None:
            with _lock:
                self.bar.set_description_str(desc, refresh=True)

    def close(self) -> None:
        if self.bar is None:
            return
        with _lock:
            self.bar.close()
            if self in _open:
                _open.remove(self)
            self.bar = None

    def __enter__(self) -> "Line":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_FRAMES = "|/-\\"


#: where the display is not live, a step's "under way" line comes after this many seconds
QUIET_S = 2.0


class Spinner:
    """A spinner with the time elapsed, for a step whose length nothing tells (an export,
    an engine build, a remote preparation): redrawn every 0.1 s by a thread of its own.
    ``note(text)`` adds what the step says of itself (TensorRT's build phases)."""

    def __init__(self, desc: str):
        self.desc, self._note, self.t0 = desc, "", time.perf_counter()
        self._line = Line("", bar_format="{desc}")
        self._stop = threading.Event()
        self._thread = None
        if self._line.bar is not None:
            self._thread = threading.Thread(target=self._spin, name="trb-spinner", daemon=True)
            self._thread.start()

    def note(self, text: str) -> None:
        self._note = text

    def _spin(self) -> None:
        i = 0
        while not self._stop.wait(0.1):
            i += 1
            el = time.perf_counter() - self.t0
            self._line.update(note=f"{self.desc} {_FRAMES[i % 4]} {duration(el)}"
                                   + (f"  {self._note}" if self._note else ""))

    def close(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._line.close()
        return time.perf_counter() - self.t0


@contextlib.contextmanager
def spinner(desc: str, log: Optional[Callable[[str], None]] = None) -> Iterator[Spinner]:
    """The block runs under a live spinner (``desc`` and the time elapsed); where the
    display is not live, one plain line ``desc ...`` says it is under way once it has
    run ``QUIET_S`` (a step that fails or ends at once adds no line before the caller's
    own: a refusal stays one line), and the caller says how it ended."""
    timer = None
    if not live():
        timer = threading.Timer(QUIET_S, lambda: say(log).info(f"{desc} ..."))
        timer.daemon = True
        timer.start()
    s = Spinner(desc)
    try:
        yield s
    finally:
        if timer is not None:
            timer.cancel()
        s.close()
