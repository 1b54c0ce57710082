"""A ring of timing events for a GPU runner, made before timing and recycled.

A runner records a tuple of CUDA events around every inference. Making them inside a
timed span costs host time (``cudaEventCreate``), and keeping one tuple per inference
grows without bound (an hour at 3000 inferences/s is tens of millions of events). So a
runner makes ``size`` tuples before timing (``reserve``, which ``run_loop`` calls) and
reuses them in turn; ``run_loop`` reads the GPU times outside the timed spans, often
enough that a tuple is read before it is recorded again: every ``EVENT_RING // 2``
inferences where every inference is waited for anyway (``sync: device | stream``), and
with ``sync: none`` only where the loop is not timing back to back (in a gap, after the
final synchronisation). With ``sync: none`` and no gap the ring is sized for the whole
phase (up to ``EVENT_RING_MAX``); an inference past its capacity gets no slot, so no GPU
time (NaN), rather than a read of the oldest slot inside its span.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

#: event tuples a runner keeps until asked for more; ``run_loop`` reads the times every half ring
EVENT_RING = 1024
#: the most tuples ``reserve`` makes a ring hold: ``sync: none`` at gap 0 keeps a whole
#: phase's events unread until its final synchronisation (2**17 = 131072 inferences: 43 s
#: at 3000 inferences/s); the inferences past it have no GPU time
EVENT_RING_MAX = 2 ** 17


class EventRing:
    """``size`` slots of ``k`` events from ``make``, recycled. ``next()`` gives the slot
    for the next inference (creating nothing once ``fill`` ran); ``take()`` returns
    ``read(slot)`` (a tuple of ``width`` floats) for every inference since the last
    ``take``, in order.

    A caller that does not take in time: before ``reserve``, ``next`` reads the oldest
    slot before it reuses it (a wait inside whatever span ``next`` is in; right for a
    caller that reads rarely, like the predict pipeline used on its own). After
    ``reserve`` (the caller, ``run_loop``, reads in time or accepts the loss), ``next``
    returns ``None`` once every slot is unread: that inference records no events and
    ``take`` gives it a tuple of NaN."""

    def __init__(self, make: Callable[[], Any], read: Callable[[tuple], Tuple[float, ...]], k: int,
                 size: int = EVENT_RING, width: int = 1):
        if size < 2:
            raise ValueError("an event ring needs at least 2 slots")
        self._make, self._read, self.k, self.size = make, read, k, size
        self.slots: List[tuple] = []
        self.made = 0  #: events made so far (``size * k`` once filled, never more)
        self.drop = False  #: past the capacity: no slot (True, once reserved) or read the oldest
        self._blank = (float("nan"),) * width  # what take() gives an inference that had no slot
        self._head = 0  # the slot next() gives
        self._used = 0  # slots given since the last take
        self._dropped = 0  # inferences since the last take that got no slot
        self._early: List[Tuple[float, ...]] = []  # read by next() on an overrun

    def fill(self) -> None:
        """Make every slot's events now (before timing, in the thread that times)."""
        while len(self.slots) < self.size:
            self.slots.append(tuple(self._make() for _ in range(self.k)))
            self.made += self.k

    def reserve(self, n: int) -> int:
        """Hold at least ``n`` slots (at most ``EVENT_RING_MAX``; a ring never shrinks),
        all made now; from now on an inference past the capacity gets no slot. Grows only
        with nothing unread (after a ``take``). Returns the capacity: the inferences whose
        times the ring holds between two takes."""
        n = min(int(n), EVENT_RING_MAX)
        if n > self.size and not self.pending:
            self.size = n
            self._head = 0
        self.fill()
        self.drop = True
        return self.size

    def next(self) -> Optional[tuple]:
        if len(self.slots) < self.size:
            self.fill()
        if self._used == self.size:  # every slot is unread
            if self.drop:
                self._dropped += 1
                return None
            self._early.append(self._read(self.slots[self._head]))  # the oldest, about to be reused
            self._used -= 1
        slot = self.slots[self._head]
        self._head = (self._head + 1) % self.size
        self._used += 1
        return slot

    @property
    def pending(self) -> int:
        """Inferences given a slot (or none) and not yet taken."""
        return self._used + len(self._early) + self._dropped

    def last(self) -> Optional[tuple]:
        """The slot most recently given (None if none since the last take)."""
        return self.slots[(self._head - 1) % self.size] if self._used else None

    def take(self) -> List[Tuple[float, ...]]:
        start = (self._head - self._used) % self.size
        out = self._early + [self._read(self.slots[(start + j) % self.size]) for j in range(self._used)]
        out.extend([self._blank] * self._dropped)  # after every slot: they came once all were unread
        self._early = []
        self._used = 0
        self._dropped = 0
        return out
