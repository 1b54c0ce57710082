"""The measurement loop and its statistics: plain functions, no Ray, no GPU imports."""

from ._events import EVENT_RING, EVENT_RING_MAX, EventRing
from ._loop import BaseRunner, LoopPlan, Runner, Samples, run_loop, wait_until
from ._stats import Stats, summarize
from ._window import common_window

__all__ = [
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
]
