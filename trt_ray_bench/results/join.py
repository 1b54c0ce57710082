"""Per-inference attribution: each sample joined to the telemetry at its start time."""

from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd


def samples_with_telemetry(
    samples: pd.DataFrame,
    telemetry: pd.DataFrame,
    metrics: Optional[Sequence[str]] = None,
    tolerance_ns: Optional[int] = None,
    source: Optional[str] = None,
) -> pd.DataFrame:
    """``samples`` with one column per telemetry metric: the latest reading at or before
    each inference's ``t_start_ns`` on the same run (``pandas.merge_asof``). ``source``
    keeps one sampler's rows (host and tegrastats share names such as ``ram_used_mb``)."""
    tel = telemetry if source is None else telemetry[telemetry["source"] == source]
    tel = tel if metrics is None else tel[tel["metric"].isin(list(metrics))]
    wide = (
        tel.pivot_table(index=["run_id", "t_ns"], columns="metric", values="value", aggfunc="last")
        .reset_index()
        .sort_values("t_ns")
    )
    wide.columns.name = None
    left = samples.sort_values("t_start_ns").reset_index(drop=True)
    merged = pd.merge_asof(
        left, wide, left_on="t_start_ns", right_on="t_ns", by="run_id", direction="backward",
        tolerance=tolerance_ns,
    )
    return merged.drop(columns=["t_ns"])
