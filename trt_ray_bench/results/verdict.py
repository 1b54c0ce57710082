"""Whether two conditions differ: a test on their runs, never on their inferences.

Inferences of one run share that run's process, engine placement, clocks and neighbours,
so between two runs of the *same* condition the p50 moves by more than a row's own
interval admits (22-36 % between processes of one GPU engine on an H200). A difference
between conditions is therefore tested on **units of evidence**: one value per process
that measured the condition (``unit_keys``), and at least two on each side.

- A unit is a model's process in one run: a repeat under ``repeat_isolation: process``
  (a fresh process each repeat), the whole run under ``actor`` (every repeat in the same
  process; its repeats' values are combined into one by their geometric mean).
- The statistic is ``log p50`` (or the ``stat`` asked): latencies move by factors, so a
  ratio is what is estimated, with its interval, by Student's t:

  - **paired** where both sides were measured by the same processes (same model, run and
    repeat: alone vs together of one model, timing variants of one model): the mean of the
    per-unit log ratios, ``df = k - 1``;
  - **Welch** otherwise (two models, two runs): the difference of the mean logs,
    ``se^2 = s_a^2/k_a + s_b^2/k_b``, Welch-Satterthwaite ``df``.

- ``verdict``: ``slower`` / ``faster`` when the interval of the ratio excludes 1 (at the
  rows' ``confidence``), ``not shown`` when it does not (not "no difference": ``detectable``
  says how large a difference the data could have shown), ``—`` when the data cannot
  decide (fewer than two units a side), with ``why`` and what would decide it.
- ``detectable``: the smallest ratio this test would show four times in five (80 % power at
  the rows' level), were the spread between runs what was observed: the shift ``d`` at
  which a noncentral t with ``df`` degrees of freedom and noncentrality ``d / se'`` exceeds
  the test's critical value with probability 0.8, where ``se' = se / c4(df + 1)`` undoes
  the downward bias of a standard deviation from few runs (with 3 runs a sample standard
  deviation is on average 0.89 of the true one). Calibrated in benchmarks/stat_validity.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Hashable, List, Optional, Tuple

import numpy as np
import pandas as pd

from ..timing._stats import CONFIDENCE, t_quantile, t_sf

NO_TEST = "—"
#: what a run needs for a verdict, in the words every ``—`` repeats
HOW = "set repeats: 3 or more and repeat_isolation: process"
#: the power at which ``detectable`` is given
POWER = 0.8


@dataclass(frozen=True)
class Verdict:
    """The test of ``b`` against ``a`` (a value; ``as_dict`` for table columns)."""

    ratio: float  # b / a, geometric means of the units' values
    lo: float  # its interval at ``confidence``
    hi: float
    p_value: float
    verdict: str  # slower | faster | not shown | —
    why: str  # why —, else how it was tested
    detectable: float  # smallest ratio (> 1) the test would show with 80 % power
    k_a: int
    k_b: int
    paired: bool
    df: float
    confidence: float = CONFIDENCE

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def shown(self) -> bool:
        return self.verdict in ("slower", "faster")


def _num(rows: pd.DataFrame, col: str) -> pd.Series:
    if col not in rows.columns:
        return pd.Series(np.nan, index=rows.index)
    return pd.to_numeric(rows[col], errors="coerce")


def _strs(rows: pd.DataFrame, col: str, default: str) -> list:
    if col not in rows.columns:
        return [default] * len(rows)
    return [str(x) for x in rows[col].tolist()]


def unit_keys(rows: pd.DataFrame) -> pd.Series:
    """Per row, the process that measured it (module doc): ``(run_id, model, repeat)``
    under ``repeat_isolation: process``, ``(run_id, model)`` otherwise (also for trees
    that do not say: repeats then shared one process)."""
    run, model = _strs(rows, "run_id", ""), _strs(rows, "model", "")
    iso, rep = _strs(rows, "repeat_isolation", ""), _strs(rows, "repeat", "0")
    return pd.Series([(r, m, p if i == "process" else "*") for r, m, p, i in zip(run, model, rep, iso)],
                     index=rows.index, dtype=object)


def unit_values(rows: pd.DataFrame, stat: str = "p50_ms") -> pd.Series:
    """One value of ``stat`` per unit of evidence: the geometric mean of the unit's rows
    (a single row's own value). Non-positive and missing values are left out."""
    v = _num(rows, stat).to_numpy(dtype=float)
    keep = np.isfinite(v) & (v > 0)
    if not keep.any():
        return pd.Series(dtype=float)
    logs: Dict[tuple, list] = {}
    for key, x in zip(unit_keys(rows).to_numpy()[keep], np.log(v[keep])):
        logs.setdefault(key, []).append(x)
    keys = sorted(logs)
    out = pd.Series([math.exp(sum(x) / len(x)) for x in (logs[k] for k in keys)], dtype=float)
    out.index = pd.Index(keys, tupleize_cols=False)
    return out


def _none(why: str, ratio: float, k_a: int, k_b: int, paired: bool, confidence: float) -> Verdict:
    nan = float("nan")
    return Verdict(ratio, nan, nan, nan, NO_TEST, why, nan, k_a, k_b, paired, nan, confidence)


def _why_few(a_rows: pd.DataFrame, b_rows: pd.DataFrame, k_a: int, k_b: int) -> str:
    rows = max(len(a_rows), len(b_rows))
    if min(k_a, k_b) == 0:
        return "not measured on both sides"
    if rows > max(k_a, k_b):  # repeats were there, but in one process
        return (f"the repeats of a side ran in one process (repeat_isolation: actor): run-to-run noise unknown; "
                f"{HOW}")
    if max(k_a, k_b) <= 1:
        return f"one run each: run-to-run noise unknown; {HOW}"
    return (f"{k_a} run{'s' if k_a != 1 else ''} against {k_b}: a side needs 2 or more for run-to-run noise; "
            f"{HOW}")


class LogDesign:
    """Several conditions' unit values on the log scale, for estimates that combine their
    means (a difference, a contrast, a ratio of two of those). Conditions measured by the
    same units (processes) form a paired set, whose per-unit combinations carry their
    covariance; sets are independent of each other. ``var`` of a combination is the sum
    over sets, its degrees of freedom Welch-Satterthwaite's over sets (``k - 1`` each)."""

    def __init__(self, groups: Dict[Hashable, pd.Series]):
        self.logs: Dict[Hashable, pd.Series] = {}
        for g, v in groups.items():
            v = pd.Series(v, dtype=float)
            v = v[np.isfinite(v) & (v > 0)]
            self.logs[g] = np.log(v)
        self.sets: list = []  # [(units, [groups])]
        for g, v in self.logs.items():
            units = frozenset(v.index)
            for us, members in self.sets:
                if us == units:
                    members.append(g)
                    break
            else:
                self.sets.append((units, [g]))

    def k(self, g: Hashable) -> int:
        return len(self.logs[g]) if g in self.logs else 0

    def ready(self, weights: Dict[Hashable, float]) -> bool:
        return all(self.k(g) >= 2 for g, w in weights.items() if w)

    def mean(self, weights: Dict[Hashable, float]) -> float:
        return float(sum(w * float(self.logs[g].mean()) for g, w in weights.items() if w))

    def _set_parts(self, w: Dict[Hashable, float], u: Dict[Hashable, float]):
        for units, members in self.sets:
            if not any(w.get(g) or u.get(g) for g in members):
                continue
            idx = sorted(units, key=str)
            a = sum(w.get(g, 0.0) * self.logs[g].reindex(idx).to_numpy() for g in members)
            b = sum(u.get(g, 0.0) * self.logs[g].reindex(idx).to_numpy() for g in members)
            k = len(idx)
            a = np.broadcast_to(np.asarray(a, dtype=float), (k,))
            b = np.broadcast_to(np.asarray(b, dtype=float), (k,))
            cov = float(np.cov(a, b, ddof=1)[0, 1]) / k if k >= 2 else float("nan")
            yield cov, k

    def cov(self, w: Dict[Hashable, float], u: Dict[Hashable, float]) -> float:
        return float(sum(c for c, _ in self._set_parts(w, u)))

    def df(self, w: Dict[Hashable, float]) -> float:
        parts = list(self._set_parts(w, w))
        var = sum(c for c, _ in parts)
        den = sum(c * c / (k - 1) for c, k in parts if c > 0 and k > 1)
        return var * var / den if den > 0 else float(sum(k - 1 for _, k in parts))

    def estimate(self, w: Dict[Hashable, float]) -> Tuple[float, float, float]:
        """``sum w_g mean(log g)``, its standard error and degrees of freedom (NaN where a
        group has fewer than two units)."""
        if not self.ready(w):
            return float("nan"), float("nan"), float("nan")
        return self.mean(w), math.sqrt(max(self.cov(w, w), 0.0)), self.df(w)

    def share(self, num: Dict[Hashable, float], den: Dict[Hashable, float], confidence: float = CONFIDENCE
              ) -> Tuple[float, float, float]:
        """The ratio of two combinations ``num / den`` and its Fieller interval: every
        ``theta`` with ``(N - theta D)^2 <= t^2 var(N - theta D)``, ``t`` at the
        Satterthwaite degrees of freedom of ``N - theta D`` at the estimate. The interval
        is ``(-inf, inf)`` when ``D`` is not itself told from 0."""
        nan = float("nan")
        if not (self.ready(num) and self.ready(den)):
            return nan, nan, nan
        n, d = self.mean(num), self.mean(den)
        if d == 0:
            return nan, -math.inf, math.inf
        theta = n / d
        comb = dict(num)
        for g, w in den.items():
            comb[g] = comb.get(g, 0.0) - theta * w
        df = self.df(comb)
        t = t_quantile(0.5 + confidence / 2.0, df) if df > 0 else nan
        vnn, vdd, vnd = self.cov(num, num), self.cov(den, den), self.cov(num, den)
        a = d * d - t * t * vdd
        b = -2.0 * (n * d - t * t * vnd)
        c = n * n - t * t * vnn
        if not a > 0:
            return theta, -math.inf, math.inf
        disc = max(b * b - 4 * a * c, 0.0)
        r = math.sqrt(disc)
        return theta, (-b - r) / (2 * a), (-b + r) / (2 * a)


def _c4(n: float) -> float:
    """E[s] / sigma for a normal sample of ``n`` (``n - 1`` degrees of freedom)."""
    from scipy.special import gammaln

    return math.sqrt(2.0 / (n - 1.0)) * math.exp(gammaln(n / 2.0) - gammaln((n - 1.0) / 2.0))


def detectable_shift(se: float, df: float, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """The log shift a two-sided t test at ``confidence`` with ``df`` degrees of freedom
    shows with probability ``power`` when the standard error is ``se`` (debiased, module
    doc): bisection on the noncentral t's power."""
    from scipy import special

    if not (se > 0 and df > 0):
        return float("nan")
    s = se / _c4(df + 1.0)
    tc = t_quantile(0.5 + confidence / 2.0, df)
    lo, hi = 0.0, s * (tc + 10.0)
    for _ in range(50):
        mid = (lo + hi) / 2.0
        nc = mid / s
        # the noncentral t's two tails (scipy's nctdtr: stats.nct without its per-call overhead)
        if 1.0 - special.nctdtr(df, nc, tc) + special.nctdtr(df, nc, -tc) < power:
            lo = mid
        else:
            hi = mid
    return hi


def interval_verdict(est: float, se: float, df: float, confidence: float = CONFIDENCE) -> Tuple[float, float, float, str, float]:
    """From a log-scale estimate: the ratio's interval ``(lo, hi)``, the two-sided p-value,
    the word (slower / faster / not shown) and the detectable ratio (module doc)."""
    t = t_quantile(0.5 + confidence / 2.0, df)
    lo, hi = math.exp(est - t * se), math.exp(est + t * se)
    p = min(1.0, 2.0 * t_sf(abs(est) / se, df))
    shown = lo > 1.0 or hi < 1.0
    word = ("slower" if est > 0 else "faster") if shown else "not shown"
    return lo, hi, p, word, math.exp(detectable_shift(se, df, confidence))


def compare_units(a: pd.Series, b: pd.Series, confidence: float = CONFIDENCE, why_few: str = "") -> Verdict:
    """The test of ``b`` against ``a``, each a Series of positive values indexed by unit
    (:func:`unit_values`): paired where both were measured by the same units, Welch
    otherwise."""
    design = LogDesign({"a": a, "b": b})
    k_a, k_b = design.k("a"), design.k("b")
    paired = len(design.sets) == 1
    w = {"b": 1.0, "a": -1.0}
    ratio = float(math.exp(design.mean(w))) if k_a and k_b else float("nan")
    if k_a < 2 or k_b < 2:
        return _none(why_few or f"one run each: run-to-run noise unknown; {HOW}", ratio, k_a, k_b, paired, confidence)
    est, se, df = design.estimate(w)
    if not se > 0:
        return _none("no spread between the runs: the noise cannot be estimated", ratio, k_a, k_b, paired,
                     confidence)
    lo, hi, p, word, detect = interval_verdict(est, se, df, confidence)
    how = f"paired t on logs, {k_a} pairs of runs" if paired else f"Welch t on logs, {k_a} and {k_b} runs"
    return Verdict(ratio, lo, hi, p, word, how, detect, k_a, k_b, paired, df, confidence)


def compare_rows(a_rows: pd.DataFrame, b_rows: pd.DataFrame, stat: str = "p50_ms",
                 confidence: Optional[float] = None) -> Verdict:
    """The test of condition ``b`` (its runs rows) against condition ``a`` on ``stat``."""
    a_rows, b_rows = a_rows[_columns(a_rows, stat)], b_rows[_columns(b_rows, stat)]
    c = confidence if confidence is not None else level(pd.concat([a_rows, b_rows]))
    a, b = unit_values(a_rows, stat), unit_values(b_rows, stat)
    return compare_units(a, b, c, _why_few(a_rows, b_rows, len(a), len(b)))


#: the runs columns a test reads besides its statistic (``unit_keys``, ``level``)
UNIT_COLUMNS = ("run_id", "model", "repeat_isolation", "repeat", "confidence")


def _columns(rows: pd.DataFrame, stat: str) -> List[str]:
    """The columns of ``rows`` a test of ``stat`` reads: a wide runs table is narrowed
    before it is copied and joined."""
    return [c for c in dict.fromkeys(UNIT_COLUMNS + (stat,)) if c in rows.columns]


def level(runs: pd.DataFrame) -> float:
    """The level the rows were measured at (the spec's ``confidence``), else 0.95."""
    if "confidence" in runs.columns and runs["confidence"].notna().any():
        return float(runs["confidence"].dropna().iloc[0])
    return CONFIDENCE
