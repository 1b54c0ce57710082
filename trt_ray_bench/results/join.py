"""Per-inference attribution: each sample joined to the telemetry around its start time.

Each telemetry source (``host``, ``nvml``, ``tegrastats``) is sampled by its own poller
or stream, so their readings never share a timestamp: each source is joined on its own
(``pandas.merge_asof``), with a tolerance, so every inference gets every source's
readings, and none that is stale.

A reading is placed over the period it describes (``placed_t_ns``): an instantaneous
one (a clock, the P-state) at the instant it was read, joined as the latest one at or
before the inference; an averaged one (NVML power over ~1 s, utilisation over its sample
period, psutil's CPU load since the previous poll; the telemetry table's ``avg_s``) at
the midpoint of its period, joined as the nearest one.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

#: a reading farther than this many of its source's sampling periods from an inference
#: is not attached (NaN): a poller that stalled must not lend a stale reading
TOLERANCE_PERIODS = 3
#: the tolerance where a source's period cannot be measured (a single reading)
FALLBACK_TOLERANCE_NS = 1_000_000_000


def placed_t_ns(telemetry: pd.DataFrame) -> pd.Series:
    """Where each reading belongs on the node's clock: ``t_ns - avg_s / 2``, the middle
    of the period an averaged reading describes; ``t_ns`` for an instantaneous one (and
    for tables written before ``avg_s`` existed)."""
    t = telemetry["t_ns"].astype("int64")
    if "avg_s" not in telemetry.columns:
        return t
    half = (pd.to_numeric(telemetry["avg_s"], errors="coerce").fillna(0.0) * 5e8).round().astype("int64")
    return t - half


def placed(telemetry: pd.DataFrame) -> pd.DataFrame:
    """``telemetry`` with ``t_ns`` replaced by ``placed_t_ns``: the readings a window
    should average are then those stamped inside it (``results.explain``'s choice)."""
    if "avg_s" not in telemetry.columns or not len(telemetry):
        return telemetry
    return telemetry.assign(t_ns=placed_t_ns(telemetry))


def sampling_period_ns(telemetry: pd.DataFrame) -> float:
    """The median time between one source's successive readings (per run, pooled); NaN
    with fewer than two."""
    gaps: List[np.ndarray] = []
    for _, t in telemetry.groupby("run_id")["t_ns"]:
        u = np.unique(t.to_numpy(np.int64))
        if len(u) > 1:
            gaps.append(np.diff(u))
    return float(np.median(np.concatenate(gaps))) if gaps else float("nan")


def _period_classes(tel: pd.DataFrame) -> Dict[float, List[str]]:
    """Metrics grouped by the period they typically average (0: instantaneous); metrics
    of one class read at one poll share a placed time, so one pivot serves them."""
    avg = pd.to_numeric(tel["avg_s"], errors="coerce").fillna(0.0) if "avg_s" in tel.columns \
        else pd.Series(0.0, index=tel.index)
    typical = avg.groupby(tel["metric"]).median().round(3)
    out: Dict[float, List[str]] = {}
    for metric, a in typical.items():
        out.setdefault(float(a), []).append(metric)
    return out


def samples_with_telemetry(
    samples: pd.DataFrame,
    telemetry: pd.DataFrame,
    metrics: Optional[Sequence[str]] = None,
    tolerance_ns: Optional[int] = None,
    source: Optional[str] = None,
) -> pd.DataFrame:
    """``samples`` with one column per telemetry metric, each source joined separately
    by run: an instantaneous reading is the latest at or before the inference's
    ``t_start_ns``, an averaged one the one whose period's midpoint is nearest to it.
    ``tolerance_ns``: the farthest a reading may be (default: ``TOLERANCE_PERIODS`` of
    that source's own sampling period); beyond it the value is NaN. A metric that more
    than one source reports (host and tegrastats both have ``ram_used_mib``) is named
    ``metric@source``; ``source`` keeps one sampler's rows (plain names)."""
    tel = telemetry if source is None else telemetry[telemetry["source"] == source]
    tel = tel if metrics is None else tel[tel["metric"].isin(list(metrics))]
    out = samples.sort_values("t_start_ns").reset_index(drop=True)
    out["t_start_ns"] = out["t_start_ns"].astype("int64")
    if not len(tel):
        return out
    shared = tel.groupby("metric")["source"].nunique()
    for src, part in tel.groupby("source", sort=True):
        if tolerance_ns is not None:
            tol = int(tolerance_ns)
        else:
            period = sampling_period_ns(part)
            tol = int(TOLERANCE_PERIODS * period) if np.isfinite(period) else FALLBACK_TOLERANCE_NS
        for avg, names in _period_classes(part).items():
            sub = part[part["metric"].isin(names)]
            sub = sub.assign(_t=placed_t_ns(sub))
            wide = (sub.pivot_table(index=["run_id", "_t"], columns="metric", values="value", aggfunc="last")
                    .reset_index().sort_values("_t"))
            wide.columns.name = None
            wide = wide.rename(columns={m: f"{m}@{src}" for m in names if shared.get(m, 1) > 1})
            wide["_t"] = wide["_t"].astype("int64")
            out = pd.merge_asof(out, wide, left_on="t_start_ns", right_on="_t", by="run_id",
                                direction="nearest" if avg > 0 else "backward", tolerance=tol)
            out = out.drop(columns=["_t"])
    return out
