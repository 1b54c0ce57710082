"""Statistics of an open loop (frames arriving on a clock): latency from each frame's
arrival (what the frame saw) beside the service time from its start, the queue, the
deadline misses with an interval that respects their bursts, and the harness's own
scheduling error.

- **from arrival**: ``t_end - t_arrival``; **queue**: ``t_start - t_arrival``.
- **deadline misses**: one indicator per frame in arrival order, 1 for a frame served
  later than ``deadline_ms`` after its arrival or never served (dropped under ``backlog:
  drop``, or still waiting when a ``duration_s`` ended). Under queueing misses come in
  bursts (one slow inference delays the frames behind it), so the rate's interval is a
  Wilson score interval on the indicator series' effective sample size ``n_eff``
  (``_stats.dependence``, Geyer), with Student's t at its ``df``; none (NaN) where the
  series is too short for its own dependence (``Dependence.usable``). A closed loop's
  frames "arrive" when they start: its misses are of the service time.
- **scheduling error**: ``t_start - t_arrival`` of the frames that found the model idle
  (its previous inference had ended before the frame arrived): how late the harness's
  clock started a frame it could have started on time (sleep then spin,
  ``_loop.wait_until``).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from ._stats import CONFIDENCE, dependence, percentile_min_n, summarize, t_quantile

#: the from-arrival statistics a runs row keeps: ``Stats`` field -> column
FROM_ARRIVAL = {
    "mean_ms": "mean_from_arrival_ms", "p50_ms": "p50_from_arrival_ms", "p90_ms": "p90_from_arrival_ms",
    "p95_ms": "p95_from_arrival_ms", "p99_ms": "p99_from_arrival_ms", "max_ms": "max_from_arrival_ms",
    "p50_ci_lo_ms": "p50_from_arrival_ci_lo_ms", "p50_ci_hi_ms": "p50_from_arrival_ci_hi_ms",
    "mean_ci_lo_ms": "mean_from_arrival_ci_lo_ms", "mean_ci_hi_ms": "mean_from_arrival_ci_hi_ms",
}
#: every column :func:`open_loop_stats` fills
COLUMNS = (tuple(FROM_ARRIVAL.values())
           + ("queue_mean_ms", "queue_max_ms", "frames", "dropped", "deadline_miss", "deadline_miss_lo",
              "deadline_miss_hi", "sched_error_n", "sched_error_p50_ms", "sched_error_p99_ms", "sched_error_max_ms"))


def miss_interval(miss: np.ndarray, confidence: float = CONFIDENCE):
    """``(rate, lo, hi, n_eff)`` of a 0/1 series: its mean and a Wilson score interval on
    its effective sample size (module doc); ``lo``/``hi`` NaN where it is too short for
    its own dependence."""
    x = np.asarray(miss, dtype=bool)
    n = x.size
    if n == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    p = float(x.mean())
    dep = dependence(x)
    if not dep.usable:
        return p, float("nan"), float("nan"), float(dep.n_eff)
    ne = float(dep.n_eff)
    z = t_quantile(0.5 + confidence / 2.0, dep.df)
    z2 = z * z
    centre = (p + z2 / (2 * ne)) / (1 + z2 / ne)
    half = z / (1 + z2 / ne) * math.sqrt(max(p * (1 - p) / ne + z2 / (4 * ne * ne), 0.0))
    # the score interval holds the rate; rounding must not push an end past it (0 misses: lo
    # exactly 0, every frame late: hi exactly 1)
    return p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)), ne


def _tail(x: np.ndarray, q: float, confidence: float) -> float:
    return float(np.percentile(x, q)) if x.size and x.size >= percentile_min_n(q, confidence) else float("nan")


def open_loop_stats(ts: np.ndarray, te: np.ndarray, ta: Optional[np.ndarray], frame: Optional[np.ndarray],
                    idle: Optional[np.ndarray], deadline_ms: Optional[float], batch: int = 1,
                    confidence: float = CONFIDENCE, frames: Optional[Tuple[int, int]] = None) -> Dict[str, float]:
    """The columns of ``COLUMNS`` for one row's served inferences (in order): start, end
    and (open loop) arrival times in ns, their frame indices on the arrival clock and
    whether each found the model idle. ``frames``: the indices ``[from, end)`` of the frames
    that arrived in the row (default: from the first served frame to the last). A closed loop
    (``ta`` None) gets only its deadline misses (of the service time)."""
    nan = float("nan")
    out: Dict[str, float] = {c: nan for c in COLUMNS}
    n = len(ts)
    if ta is None:
        if deadline_ms is not None and n:
            late = (np.asarray(te) - np.asarray(ts)) > deadline_ms * 1e6
            out["deadline_miss"], out["deadline_miss_lo"], out["deadline_miss_hi"], _ = miss_interval(late, confidence)
        return out
    if n == 0:
        total = frames[1] - frames[0] if frames is not None else 0
        out.update(frames=total, dropped=total)
        if total and deadline_ms is not None:
            out["deadline_miss"] = 1.0
        return out
    ts, te, ta = (np.asarray(a, dtype=np.int64) for a in (ts, te, ta))
    frame = np.asarray(frame, dtype=np.int64)
    since = (te - ta) / 1e6
    s = summarize(since, batch, confidence).as_dict()
    out.update({col: s[k] for k, col in FROM_ARRIVAL.items()})
    queue = (ts - ta) / 1e6
    out["queue_mean_ms"], out["queue_max_ms"] = float(queue.mean()), float(queue.max())
    lo, hi = (int(frames[0]), int(frames[1])) if frames is not None else (int(frame[0]), int(frame[-1]) + 1)
    lo, hi = min(lo, int(frame[0])), max(hi, int(frame[-1]) + 1)
    out["frames"], out["dropped"] = hi - lo, max(0, hi - lo - n)
    if deadline_ms is not None:
        # every frame in arrival order: the served ones late or not, the others missed
        miss = np.ones(hi - lo, dtype=bool)
        miss[frame - lo] = since > deadline_ms
        out["deadline_miss"], out["deadline_miss_lo"], out["deadline_miss_hi"], _ = miss_interval(miss, confidence)
    if idle is not None:
        err = queue[np.asarray(idle, dtype=bool)]
        out["sched_error_n"] = int(err.size)
        if err.size:
            out["sched_error_p50_ms"] = float(np.median(err))
            out["sched_error_p99_ms"] = _tail(err, 99, confidence)
            out["sched_error_max_ms"] = float(err.max())
    return out
