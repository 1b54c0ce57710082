"""The measurement loop and its statistics: plain functions, no Ray, no GPU imports."""

from ._arrivals import ARRIVALS, BACKLOGS, ArrivalClock
from ._events import EVENT_RING, EVENT_RING_MAX, EventRing
from ._loop import BaseRunner, LoopPlan, Runner, Samples, run_loop, wait_until
from ._stats import Stats, summarize
from ._queueing import open_loop_stats
from ._window import common_window

__all__ = [
    "ARRIVALS",
    "ArrivalClock",
    "BACKLOGS",
    "BaseRunner",
    "EVENT_RING",
    "EVENT_RING_MAX",
    "EventRing",
    "LoopPlan",
    "Runner",
    "Samples",
    "run_loop",
    "wait_until",
    "Stats",
    "summarize",
    "common_window",
    "open_loop_stats",
]
