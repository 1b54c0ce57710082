"""What a report is made from: one results tree, its runs with the telemetry of each
window beside them, and the few questions every section asks (what varies, how to
name a row)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import List, Sequence

import pandas as pd

from .. import results
from .digest import Digest, digest

#: run conditions that, when they vary for one model, split its rows in figures
CONDITIONS = ("mode", "clocks_mode", "mps", "power_mode", "gap_s")


@dataclass(frozen=True)
class ReportData:
    """``runs`` (sweep points spread into ``axis:<field>`` columns), ``telemetry``,
    ``window`` (the telemetry of each runs row's window, same index) and ``res``, the
    results they come from, whose samples stay on disk: the figures read them a row at a
    time (``digest``); ``samples`` reads them whole."""

    runs: pd.DataFrame
    telemetry: pd.DataFrame
    window: pd.DataFrame
    res: results.Results

    @classmethod
    def from_results(cls, res: results.Results) -> "ReportData":
        runs = res.runs.reset_index(drop=True)
        if "point" in runs.columns and runs["point"].notna().any():
            from ..cluster.sweep import point_columns

            runs = point_columns(runs)
        window = results.window_telemetry(runs, res.telemetry)
        return cls(runs, res.telemetry, window, res)

    @property
    def samples(self) -> pd.DataFrame:
        """Every sample, every column (read whole: the figures use ``digest``)."""
        return self.res.samples

    @cached_property
    def n_samples(self) -> int:
        """How many samples were recorded (warm-up included), without reading them."""
        return self.res.n_samples

    @cached_property
    def digest(self) -> Digest:
        """What the figures draw of the samples, gathered in one pass a row at a time
        (``report.digest``): the series of a row are its phase and the conditions its
        model was measured under."""
        conds = conditions(self.runs, self.axes)
        series = labels(self.runs, ["phase"] + conds)
        return digest(self.res, self.runs, series)

    @cached_property
    def ok(self) -> pd.DataFrame:
        """Successful rows with their window telemetry beside them."""
        both = pd.concat([self.runs, self.window.drop(columns=self.runs.columns, errors="ignore")], axis=1)
        return both[both["status"] == "ok"]

    @property
    def axes(self) -> List[str]:
        """A sweep's axis columns (``axis:<field>``) whose values differ between points."""
        return [c for c in self.runs.columns if c.startswith("axis:") and self.runs[c].astype(str).nunique() > 1]

    @property
    def is_sweep(self) -> bool:
        return "point_id" in self.runs.columns and self.runs["point_id"].notna().any()

    @cached_property
    def timed(self) -> pd.DataFrame:
        """Samples that enter the statistics: after warm-up, inside the window (every
        sample read: the figures use ``digest``)."""
        s = self.samples
        return s[~s["warmup"].astype(bool) & s["in_window"].astype(bool)]


def present(df: pd.DataFrame, col: str) -> bool:
    """``col`` exists and holds at least one value."""
    return col in df.columns and df[col].notna().any()


def varies(df: pd.DataFrame, col: str) -> bool:
    """``col`` takes more than one value in ``df``."""
    return col in df.columns and df[col].astype(str).nunique() > 1


def varying_within_model(df: pd.DataFrame, cols: Sequence[str] = CONDITIONS) -> List[str]:
    """The columns of ``cols`` that take two values for one model: the conditions a
    model was measured under (a gap study whose models each have one gap has none)."""
    return [c for c in cols if c in df.columns and (df.groupby("model")[c].agg(lambda v: v.astype(str).nunique()) > 1).any()]


def same_partition(df: pd.DataFrame, a: str, b: str) -> bool:
    """``a`` and ``b`` split the rows alike (a sweep's ``axis:timing.gap_s`` and ``gap_s``)."""
    x, y = df[a].astype(str), df[b].astype(str)
    return bool((y.groupby(x).nunique() <= 1).all() and (x.groupby(y).nunique() <= 1).all())


def conditions(df: pd.DataFrame, axes: Sequence[str] = (), cols: Sequence[str] = CONDITIONS,
               within_model: bool = True) -> List[str]:
    """The conditions that vary (for one model, or at all): the named columns ``cols``,
    then the sweep ``axes`` that are not one of them under another name."""
    pick = (lambda cs: varying_within_model(df, cs)) if within_model else (lambda cs: [c for c in cs if varies(df, c)])
    named = pick(cols)
    return named + [a for a in pick(axes) if not any(same_partition(df, a, c) for c in named)]


def label(row, cols: Sequence[str]) -> str:
    """``together · clocks_mode=max`` for the columns ``cols`` of one row."""
    parts = []
    for c in cols:
        v = row[c]
        if c in ("phase", "model"):
            parts.append(str(v))
        elif c == "mps":
            parts.append(f"MPS {'on' if bool(v) else 'off'}")
        else:
            parts.append(f"{c.replace('axis:', '')}={v:g}" if isinstance(v, float) else f"{c.replace('axis:', '')}={v}")
    return " · ".join(parts)


def labels(df: pd.DataFrame, cols: Sequence[str], prefix: str = "") -> pd.Series:
    """``label`` of every row of ``df`` (same index), optionally after the model's name
    (``prefix="model"``); computed once per distinct combination."""
    key = pd.Series("", index=df.index)
    for c in ([prefix] if prefix else []) + list(cols):
        key = key + "\x1f" + df[c].astype(str)
    first = df[~key.duplicated()]
    names = {k: " · ".join(x for x in ((str(r[prefix]) if prefix else ""), label(r, cols)) if x)
             for k, (_, r) in zip(key[first.index], first.iterrows())}
    return key.map(names)


def ordered(values) -> list:
    """Distinct values in order of appearance (models as the spec listed them)."""
    return list(dict.fromkeys(values))
