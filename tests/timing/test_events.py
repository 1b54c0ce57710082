"""The event ring a GPU runner recycles (``timing.EventRing``), with plain objects for
events: what ``next`` gives, what ``take`` returns, how ``reserve`` sizes it."""

import math

import pytest

from trt_ray_bench.timing import EVENT_RING, EventRing


def _ring(size=EVENT_RING, width=1):
    made = []

    def make():
        made.append(len(made))
        return made[-1]

    return EventRing(make, lambda slot: (float(slot[0]),) * width, 2, size=size, width=width), made


def test_unreserved_ring_reads_the_oldest_slot_before_reusing_it():
    """A caller that reads rarely (the predict pipeline used on its own): correct, at the
    cost of a read inside whatever span ``next`` is in."""
    ring, made = _ring(size=2)
    firsts = [ring.next()[0] for _ in range(3)]
    assert firsts == [0, 2, 0] and len(made) == 4
    assert ring.pending == 3
    assert ring.take() == [(0.0,), (2.0,), (0.0,)] and ring.pending == 0


def test_reserved_ring_gives_no_slot_past_its_capacity_and_nan_for_it():
    ring, made = _ring(size=2, width=4)
    assert ring.reserve(3) == 3 and len(made) == 6  # grown, every slot made now
    assert ring.reserve(2) == 3  # never shrinks
    slots = [ring.next() for _ in range(5)]
    assert slots[3:] == [None, None] and ring.pending == 5
    out = ring.take()
    assert out[:3] == [(0.0,) * 4, (2.0,) * 4, (4.0,) * 4]
    assert len(out) == 5 and all(len(v) == 4 and all(math.isnan(x) for x in v) for v in out[3:])
    assert ring.next()[0] == 0 and ring.take() == [(0.0,) * 4]  # the same slots, in turn


def test_reserve_grows_only_between_takes_and_up_to_the_cap(monkeypatch):
    from trt_ray_bench.timing import _events

    ring, made = _ring(size=2)
    ring.next()
    assert ring.reserve(8) == 2 and len(made) == 4  # one unread: not now
    ring.take()
    monkeypatch.setattr(_events, "EVENT_RING_MAX", 6)
    assert ring.reserve(8) == 6 and len(made) == 12


def test_a_ring_needs_two_slots():
    with pytest.raises(ValueError):
        _ring(size=1)
