"""What ties a sample to its runs row, and the span each row measured: shared by
``compare`` (statistics computed again from samples), ``explain`` and ``diagnose``
(telemetry over a row's window), and the report's figures."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

#: What ties a sample to its runs row.
SAMPLE_KEYS = ["run_id", "model", "phase", "repeat", "mode", "variant"]


def row_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``SAMPLE_KEYS`` of ``frame`` (runs or samples), comparable across the two tables."""
    out = pd.DataFrame(index=frame.index)
    for k in SAMPLE_KEYS:
        col = frame[k] if k in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        out[k] = col.astype("int64") if k == "repeat" and col.notna().all() else col.astype(object).where(col.notna(), "")
    return out


def measured(samples: pd.DataFrame) -> pd.DataFrame:
    """The inferences the statistics are computed over (``in_window``), with the keys
    normalised by ``row_keys``, in time order."""
    sel = samples["in_window"].astype(bool) if "in_window" in samples.columns else ~samples["warmup"].astype(bool)
    s = samples.loc[sel]
    keys = row_keys(s)
    cols = [c for c in ("t_start_ns", "t_end_ns", "host_ms", "iteration") if c in s.columns]
    return pd.concat([keys, s[cols]], axis=1).sort_values("t_start_ns", kind="stable")


def row_windows(runs: pd.DataFrame, samples: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``start_ns``, ``end_ns`` per runs row: ``window_start_ns..window_end_ns`` where
    present, else (with ``samples``) the span of the row's measured inferences."""
    out = pd.DataFrame(index=runs.index)
    for col, new in (("window_start_ns", "start_ns"), ("window_end_ns", "end_ns")):
        out[new] = pd.to_numeric(runs[col], errors="coerce") if col in runs.columns else np.nan
    missing = out["start_ns"].isna() | out["end_ns"].isna()
    if missing.any() and samples is not None and len(samples):
        meas = measured(samples)
        span = meas.groupby(SAMPLE_KEYS, dropna=False).agg(lo=("t_start_ns", "min"), hi=("t_end_ns", "max"))
        keys = row_keys(runs.loc[missing])
        found = span.reindex(pd.MultiIndex.from_frame(keys))
        out.loc[missing, "start_ns"] = found["lo"].to_numpy(np.float64)
        out.loc[missing, "end_ns"] = found["hi"].to_numpy(np.float64)
    return out
