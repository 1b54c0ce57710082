"""Stopping the driver: SIGTERM and SIGHUP (an ssh session that drops) stop ``trb`` the way
Ctrl-C does, so the node's clocks, power mode and MPS are restored and what was measured
is written; the exit status is 128 + the signal, with one line and no stack dump.

Ray's core worker installs its own handlers (a C++ stack dump on SIGTERM) when it
starts, so ``install`` runs again after ``ray.init``. What no handler can catch (SIGKILL,
a crash, power loss) is covered by the node's journal (``control.journal``)."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, List, Optional

#: the signals that stop a run cleanly besides SIGINT (Ctrl-C, Python's own)
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM / SIGHUP; handled wherever Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_received: list = []


def received() -> "Optional[Stopped]":
    """The stop this process received, if any. Ray's ``ray.get`` turns whatever a signal
    handler raises into a plain KeyboardInterrupt, so the signal is remembered here."""
    return _received[-1] if _received else None


def why(exc: BaseException) -> "Stopped | KeyboardInterrupt":
    """``exc`` as the stop it stands for: the signal received, else Ctrl-C."""
    return exc if isinstance(exc, Stopped) else (received() or exc)


def _stop(signum, frame) -> None:
    # Once: a second TERM/HUP while restoring must not cut the restore short (SIGKILL
    # still can, and the journal covers it).
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if signum == getattr(signal, "SIGHUP", None):
        _detach_terminal()
    stop = Stopped(signum)
    _received.append(stop)
    raise stop


_held: dict = {}


def hold_further() -> None:
    """After the first stop: a second Ctrl-C (or TERM / HUP) must not cut short the restore
    of the machine (SIGKILL still can; the journal covers it) until ``release``. In the
    main thread only."""
    if threading.current_thread() is not threading.main_thread() or _held:
        return
    for sig in (signal.SIGINT,) + STOP_SIGNALS:
        _held[sig] = signal.signal(sig, signal.SIG_IGN)


def release() -> None:
    """The handlers ``hold_further`` replaced, back."""
    while _held:
        sig, handler = _held.popitem()
        signal.signal(sig, handler)


def _detach_terminal() -> None:
    """The terminal is gone: what is printed from here on must not fail (EIO) and skip
    the restore."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


def install() -> None:
    """SIGTERM and SIGHUP raise ``Stopped`` in the main thread (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block is done, then act on the first one
    as its handler would have: for a step that must not stop half-way (a phase's samples
    written and its rows kept, or neither). In the main thread only (elsewhere signals
    are not delivered to Python anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: List[int] = []

    def hold(signum, frame) -> None:
        held.append(signum)

    before = {}
    for sig in (signal.SIGINT,) + STOP_SIGNALS:
        before[sig] = signal.getsignal(sig)
        if before[sig] not in (signal.SIG_IGN, None):
            signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)
        if held:
            sig, handler = held[0], before[held[0]]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)
