"""The window in which all models of a "together" run were running."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple


def common_window(
    series: Iterable[Tuple[Sequence[int], Sequence[int]]],
) -> Optional[Tuple[int, int]]:
    """Given per model (measured start times, end times) in ns, the interval from the
    earliest first start (the common start instant, give or take the start skew, which
    is recorded separately) to the earliest last end: after that some model had stopped
    loading the device. ``None`` when there is nothing to measure."""
    firsts, lasts = [], []
    for starts, ends in series:
        if len(starts) == 0:
            continue
        firsts.append(min(starts))
        lasts.append(max(ends))
    if not firsts:
        return None
    lo, hi = min(firsts), min(lasts)
    return (lo, hi) if hi > max(firsts) else None
