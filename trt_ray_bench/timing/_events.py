"""A fixed ring of timing events for a GPU runner, recycled.

A runner records a tuple of CUDA events around every inference. Making them inside a
timed span costs host time (``cudaEventCreate``), and keeping one tuple per inference
grows without bound (an hour at 3000 inferences/s is tens of millions of events). So a
runner makes ``size`` tuples once, before timing, and reuses them in turn; ``run_loop``
reads the GPU times every ``size // 2`` inferences, outside the timed span, so a tuple is
always read before it is recorded again.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

#: event tuples a runner keeps; ``run_loop`` reads the times every half ring
EVENT_RING = 1024


class EventRing:
    """``size`` slots of ``k`` events from ``make``, recycled. ``next()`` gives the slot
    for the next inference (creating nothing once ``fill`` ran); ``take()`` returns
    ``read(slot)`` for every slot used since the last ``take``, in order. A caller that
    does not take in time is still correct: ``next`` then reads the oldest slot before it
    reuses it (a cost inside whatever span ``next`` is in, which ``run_loop`` never lets
    happen)."""

    def __init__(self, make: Callable[[], Any], read: Callable[[tuple], Tuple[float, ...]], k: int,
                 size: int = EVENT_RING):
        if size < 2:
            raise ValueError("an event ring needs at least 2 slots")
        self._make, self._read, self.k, self.size = make, read, k, size
        self.slots: List[tuple] = []
        self.made = 0  #: events made so far (``size * k`` once filled, never more)
        self._head = 0  # the slot next() gives
        self._used = 0  # slots given since the last take
        self._early: List[Tuple[float, ...]] = []  # read by next() on an overrun

    def fill(self) -> None:
        """Make every slot's events now (before timing, in the thread that times)."""
        while len(self.slots) < self.size:
            self.slots.append(tuple(self._make() for _ in range(self.k)))
            self.made += self.k

    def next(self) -> tuple:
        if len(self.slots) < self.size:
            self.fill()
        if self._used == self.size:  # the oldest unread slot is the one about to be reused
            self._early.append(self._read(self.slots[self._head]))
            self._used -= 1
        slot = self.slots[self._head]
        self._head = (self._head + 1) % self.size
        self._used += 1
        return slot

    @property
    def pending(self) -> int:
        """Slots recorded and not yet read."""
        return self._used + len(self._early)

    def last(self) -> Optional[tuple]:
        """The slot most recently given (None if none since the last take)."""
        return self.slots[(self._head - 1) % self.size] if self._used else None

    def take(self) -> List[Tuple[float, ...]]:
        start = (self._head - self._used) % self.size
        out = self._early + [self._read(self.slots[(start + j) % self.size]) for j in range(self._used)]
        self._early = []
        self._used = 0
        return out
