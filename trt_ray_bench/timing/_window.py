"""The window in which all models of a "together" run were running."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple


def common_window(
    series: Iterable[Tuple[Sequence[int], Sequence[int]]],
) -> Optional[Tuple[int, int]]:
    """Given per model (measured start times, end times) in ns, the interval in which
    every model was running: from the latest first start (before it, some model had not
    started: the early ones ran alone for the start skew) to the earliest last end (after
    it, some model had stopped loading the device). ``None`` when there is nothing to
    measure or the models never ran at the same time."""
    firsts, lasts = [], []
    for starts, ends in series:
        if len(starts) == 0:
            continue
        firsts.append(min(starts))
        lasts.append(max(ends))
    if not firsts:
        return None
    lo, hi = max(firsts), min(lasts)
    return (lo, hi) if hi > lo else None
