"""Do the statistics' verdicts hold? Monte-Carlo figures for the intervals of one series,
the verdict between conditions, the gap study's attribution, and what the intervals do
on the real H100 series shipped in tests/data/h100.

Everything is computed by the project's own functions (``timing._stats.summarize``,
``median_ci``, ``mean_ci``, ``median_interval``; ``results.verdict.compare_rows``;
``results.attribution.attribute``; ``results.load``) on synthetic data with a known
truth. Every rate is printed with its trial count and a 95 % Monte-Carlo margin (the
binomial half-width ``1.96 sqrt(p (1 - p) / N)``, Agresti-Coull's ``p`` (two successes and
two failures added), so a rate of 0 still gets one).

1. Interval coverage under autocorrelation: AR(1) series ``z`` (``scipy.signal.lfilter``
   after a burn-in, unit variance) of lag-1 correlation rho 0 / 0.5 / 0.9 and length 200 /
   2000, latencies ``exp(0.3 z)`` (lognormal: true median 1, true mean exp(0.045)). Per
   cell: the share of series given an interval (the rest get none, "—", by design: too
   short for their own dependence), the coverage of the 95 % intervals of the median and
   of the mean among those, and, for comparison, the coverage of the i.i.d. binomial
   median interval (``median_interval``, which assumes independence). Target 93-97 %.
2. False positives of the between-condition verdict: two models with the same truth, each
   measured by k process-isolated runs; a run's level is off by a lognormal factor of sd
   ``spread`` (the noise between processes), its n = 300 inferences an AR(1) rho 0.5
   series around that level (lognormal, sigma 0.15); rows via ``summarize``, verdict via
   ``compare_rows`` (different models: Welch). The share called slower / faster (target
   <= 5 %) and the share of "—" (k = 1 must always give "—").
3. Power: the same with the second condition truly 5 / 10 / 20 % slower. Welch (two
   models, independent processes), and paired: the same model's two conditions measured
   in the same processes (rows with the same run_id, model and repeat and a differing
   ``variant``), the process factor shared by both sides; with no shift too, for the
   paired design's false positives. The share shown in the right direction and in the
   wrong one, and the median ``detectable`` ratio the verdict reports (its own estimate of
   the shift it finds four times in five).
4. Gap attribution (``attribute``) on the runs table that
   ``examples/03_idle_gap_slowdown/gap_attribution.yaml`` writes (one run per clock mode;
   per run, k process-isolated repeats; the variants of a repeat in one process, so they
   share the process's level, a lognormal factor of sd ``cv``): each variant's GPU p50 is
   the p50 of a simulated run of 200 inferences (AR(1) rho 0.5, lognormal sigma 0.05
   around the variant's level x the process's). Scenarios: no slowdown at all (everything
   0.358 ms: a cause named is a false one, target <= 5 %); an engine cold state (back to
   back 0.358, the plain gap +20 % or +85.7 % (0.664), spin / poke / clocks max as slow as
   the gap, dummy back at 0.358: target >= 80 % named right at cv 0.10 with the shipped 6
   repeats, <= 5 % a wrong cause); the same with every variant its own model (own
   process: the process noise does not cancel); and the H200's measured levels
   (docs/guides/idle-gap-slowdown.md) as the truth. The shipped 6 repeats (``--studies``
   a cell), and 3 and 10 for context (``--context-studies`` a cell: each study is one
   ``attribute`` call, about 40 ms, so 1000 everywhere would cost 40 CPU-min).
5. The real H100 trees in tests/data/h100: for every ok row with samples and timer (host
   and GPU), n, lag-1 autocorrelation, block ratio, n_eff, the width of the median's
   interval under independence (``median_interval``) and under the series' dependence
   (``median_ci``, the row's p50 interval), and their ratio.

Trials per cell: coverage 2000 series, false positives 2000, power 1000, attribution 1000
studies at 6 repeats and 300 at 3 and 10 (``--quick``: 300 / 300 / 100 / 150, 6 repeats
only, the separate-models layout at cv 0.10 only). Seeded throughout (a seed per table
cell, so ``--jobs`` does not change a figure): a rerun prints the same figures. The cells
run in ``--jobs`` worker processes (default: every CPU); the last line gives the wall
time and the CPU time the cells took.

    python benchmarks/stat_validity.py            # the published figures (~38 CPU-min)
    python benchmarks/stat_validity.py --quick    # a smoke check (~3.3 CPU-min, ~2 min on 2 cores)
    python benchmarks/stat_validity.py --only 1,5 --jobs 1   # sections 1 and 5 only (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import scipy
from scipy.signal import lfilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trt_ray_bench import results  # noqa: E402
from trt_ray_bench.results.attribution import attribute  # noqa: E402
from trt_ray_bench.results.explain import SAMPLE_KEYS, row_keys  # noqa: E402
from trt_ray_bench.results.verdict import NO_TEST, compare_rows  # noqa: E402
from trt_ray_bench.timing._stats import mean_ci, median_ci, median_interval, summarize  # noqa: E402

SEED = 20261204
BURN_IN = 500
CONF = 0.95

# 1. coverage
COV_RHOS = (0.0, 0.5, 0.9)
COV_NS = (200, 2000)
COV_SIGMA = 0.3
COV_TARGET = (93.0, 97.0)
# 2. / 3. verdicts
V_N, V_RHO, V_SIGMA = 300, 0.5, 0.15
FP_KS = (1, 3, 5)
FP_SPREADS = (0.0, 0.02, 0.05, 0.10, 0.20, 0.30)
PW_KS = (3, 5)
PW_SPREADS = (0.02, 0.05, 0.10)
PW_SHIFTS = (0.05, 0.10, 0.20)
# 4. attribution (the shipped study: 6 repeats, 200 iterations, 20 ms gap)
AT_N, AT_RHO, AT_SIGMA = 200, 0.5, 0.05
AT_REPEATS = (3, 6, 10)
AT_SHIPPED = 6
AT_CVS = (0.05, 0.10, 0.20)
B2B = 0.358
RUN_DEFAULT, RUN_MAX = "20260101-000000-aaaaaa", "20260101-000100-bbbbbb"
#: (run, clocks, variant, gap_s, gap_mode, prewarm): the rows the study writes per repeat
#: (at max only the two the attribution reads)
AT_VARIANTS = [
    (RUN_DEFAULT, "default", "back-to-back", 0.0, "sleep", "none"),
    (RUN_DEFAULT, "default", "gap-sleep", 0.02, "sleep", "none"),
    (RUN_DEFAULT, "default", "gap-spin", 0.02, "spin", "none"),
    (RUN_DEFAULT, "default", "gap-poke", 0.02, "sleep", "poke"),
    (RUN_DEFAULT, "default", "gap-dummy", 0.02, "sleep", "dummy"),
    (RUN_MAX, "max", "back-to-back", 0.0, "sleep", "none"),
    (RUN_MAX, "max", "gap-sleep", 0.02, "sleep", "none"),
]
CAUSES = ("host wake-up", "clocks", "GPU power state", "engine cold state")


def _levels(gap: float, spin: float, poke: float, dummy: float, b2b_max: float, gap_max: float) -> Tuple[float, ...]:
    return (B2B, gap, spin, poke, dummy, b2b_max, gap_max)


#: scenario -> (true GPU p50 per AT_VARIANTS row, the causes that are true, label)
SCENARIOS: Dict[str, Tuple[Tuple[float, ...], frozenset, str]] = {
    "none": (_levels(B2B, B2B, B2B, B2B, B2B, B2B), frozenset(), "no slowdown"),
    "cold20": (_levels(B2B * 1.2, B2B * 1.2, B2B * 1.2, B2B, B2B, B2B * 1.2), frozenset({"engine cold state"}),
               "cold +20 %"),
    "cold86": (_levels(0.664, 0.664, 0.664, B2B, B2B, 0.664), frozenset({"engine cold state"}), "cold +85.7 %"),
    "h200": (_levels(0.664, 0.411, 0.632, 0.383, 0.351, 0.605), frozenset(), "H200 levels"),
}

H100 = ROOT / "tests" / "data" / "h100"


# --------------------------------------------------------------------------- helpers
def rng_for(*key: int) -> np.random.Generator:
    """The generator of one table cell: the same figures whatever ran before it."""
    return np.random.default_rng(np.random.SeedSequence([SEED, *key]))


def ar1(rng: np.random.Generator, shape: Tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) series of unit variance along the last axis (``lfilter`` after a
    burn-in of ``BURN_IN``)."""
    e = rng.standard_normal(shape[:-1] + (shape[-1] + BURN_IN,))
    if rho == 0.0:
        return e[..., BURN_IN:]
    e *= math.sqrt(1.0 - rho * rho)
    return lfilter([1.0], [1.0, -rho], e, axis=-1)[..., BURN_IN:]


def margin(hits: int, n: int) -> float:
    """95 % Monte-Carlo half-width of a rate in %, Agresti-Coull's p (never 0)."""
    if n <= 0:
        return float("nan")
    p = (hits + 2.0) / (n + 4.0)
    return 196.0 * math.sqrt(p * (1.0 - p) / n)


def rate(hits: int, n: int, width: int = 4) -> str:
    """``"4.9 ±1.0"``: the rate in % and its margin; "—" without trials."""
    if n <= 0:
        return "—"
    return f"{100.0 * hits / n:{width}.1f} ±{margin(hits, n):3.1f}"


def check(hits: int, n: int, lo: float = -math.inf, hi: float = math.inf, low: str = "LOW", high: str = "HIGH") -> str:
    """A rate (%) against its target ``lo <= rate <= hi``: ``ok``; ``ok~`` where it misses
    by less than its Monte-Carlo margin (the trials do not show a miss); else ``low`` /
    ``high``."""
    if n <= 0:
        return ""
    p, m = 100.0 * hits / n, margin(hits, n)
    if lo <= p <= hi:
        return "ok"
    if lo <= p + m and p - m <= hi:
        return "ok~"
    return low if p < lo else high


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table, columns right-aligned except the first."""
    cols = list(zip(*([list(header)] + [list(map(str, r)) for r in rows])))
    w = [max(len(c) for c in col) for col in cols]

    def fmt(r):
        return "  ".join(str(v).ljust(w[i]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(r)).rstrip()

    out = [fmt(header), "  ".join("-" * x for x in w)]
    out += [fmt(r) for r in rows]
    return "\n".join(out)


def _fmt(v: float, spec: str = ".3f") -> str:
    return format(v, spec) if np.isfinite(v) else "—"


# --------------------------------------------------------------------------- 1. coverage
def cell_coverage(rho: float, n: int, series: int) -> dict:
    rng = rng_for(1, int(rho * 100), n)
    true_med, true_mean = 1.0, math.exp(COV_SIGMA ** 2 / 2.0)
    out = Counter()
    ratios: List[float] = []
    chunk = max(1, min(series, 4_000_000 // (n + BURN_IN)))
    done = 0
    while done < series:
        m = min(chunk, series - done)
        xs = np.exp(COV_SIGMA * ar1(rng, (m, n), rho))
        for x in xs:
            lo, hi, _ = median_ci(x, CONF)
            ilo, ihi = median_interval(x, CONF)
            if np.isfinite(lo):
                out["med_given"] += 1
                out["med_hit"] += lo <= true_med <= hi
                if ihi > ilo:
                    ratios.append((hi - lo) / (ihi - ilo))
            if np.isfinite(ilo):
                out["iid_given"] += 1
                out["iid_hit"] += ilo <= true_med <= ihi
            lo, hi, _ = mean_ci(x, CONF)
            if np.isfinite(lo):
                out["mean_given"] += 1
                out["mean_hit"] += lo <= true_mean <= hi
        done += m
    return {"series": series, **out, "width_ratio": float(np.median(ratios)) if ratios else float("nan")}


def print_coverage(cells: Dict[tuple, dict]) -> None:
    print("1. Interval coverage under autocorrelation (AR(1), lognormal exp(0.3 z); 95 % intervals)")
    print("   given = share of series that get an interval; coverage among those; i.i.d. = median_interval (old)")
    rows = []
    for (rho, n), c in sorted(cells.items()):
        s = c["series"]

        def cov(hit, given):
            return rate(c.get(hit, 0), c.get(given, 0))

        def tgt(hit, given):
            return check(c.get(hit, 0), c.get(given, 0), *COV_TARGET)

        rows.append([f"{rho:.1f}", n, s, rate(c.get("med_given", 0), s), cov("med_hit", "med_given"),
                     tgt("med_hit", "med_given"), rate(c.get("mean_given", 0), s), cov("mean_hit", "mean_given"),
                     tgt("mean_hit", "mean_given"), cov("iid_hit", "iid_given"), _fmt(c["width_ratio"], ".2f")])
    print(table(["rho", "n", "series", "median given %", "median cover %", "93-97", "mean given %",
                 "mean cover %", "93-97", "i.i.d. median cover %", "width new/iid"], rows))
    print("   width new/iid: median over series of the median interval's width, dependence-aware / i.i.d.")
    print()


# --------------------------------------------------------------------------- 2. / 3. verdicts
def _rows_of(xs: np.ndarray, models: Sequence[str], variants: Sequence, repeats: Sequence[int]) -> pd.DataFrame:
    """One runs row per series: ``summarize(x).as_dict()`` plus the identity columns of a
    process-isolated repeat (as tests/results/test_verdict.py's ``_row``)."""
    rows = []
    for x, m, v, r in zip(xs, models, variants, repeats):
        d = summarize(x, 1, CONF).as_dict()
        d.update(run_id="r", model=m, variant=v, repeat=int(r), phase="alone", mode="inference", status="ok",
                 batch=1, confidence=CONF, repeat_isolation="process")
        rows.append(d)
    return pd.DataFrame(rows)


def cell_verdict(design: str, k: int, spread: float, shift: float, trials: int) -> dict:
    """``trials`` comparisons of condition b (``shift`` slower) against a, k runs a side."""
    rng = rng_for(2, 0 if design == "welch" else 1, k, int(round(spread * 1000)), int(round(shift * 1000)))
    out = Counter()
    detect: List[float] = []
    if design == "welch":
        models, variants = ["a"] * k + ["b"] * k, [None] * (2 * k)
    else:
        models, variants = ["m"] * (2 * k), ["a"] * k + ["b"] * k
    repeats = list(range(k)) * 2
    chunk = 200
    done = 0
    while done < trials:
        m = min(chunk, trials - done)
        z = ar1(rng, (m, 2 * k, V_N), V_RHO)
        if design == "welch":  # every run its own process
            proc = np.exp(rng.normal(0.0, spread, (m, 2 * k)))
        else:  # run r measured both conditions: one factor for both sides
            proc = np.tile(np.exp(rng.normal(0.0, spread, (m, k))), (1, 2))
        level = proc * np.concatenate([np.ones(k), np.full(k, 1.0 + shift)])
        xs = level[:, :, None] * np.exp(V_SIGMA * z)
        for t in range(m):
            rows = _rows_of(xs[t], models, variants, repeats)
            side = rows["model"] if design == "welch" else rows["variant"]
            v = compare_rows(rows[side == "a"], rows[side == "b"], "p50_ms")
            out[v.verdict] += 1
            if np.isfinite(v.detectable):
                detect.append(v.detectable)
        done += m
    return {"trials": trials, **out, "detectable": float(np.median(detect)) if detect else float("nan")}


def print_false_positives(cells: Dict[tuple, dict]) -> None:
    print("2. False positives of the between-condition verdict (same truth; Welch: two models, k process-isolated")
    print(f"   runs a side, process factor lognormal sd = spread, n = {V_N} inferences AR(1) rho {V_RHO}, "
          f"sigma {V_SIGMA}; compare_rows on p50)")
    rows = []
    for (k, spread), c in sorted(cells.items()):
        n = c["trials"]
        shown = c.get("slower", 0) + c.get("faster", 0)
        ok = ("ok" if c.get(NO_TEST, 0) == n else "FAIL") if k == 1 else check(shown, n, hi=5.0)
        rows.append([k, f"{spread * 100:.0f} %", n, rate(c.get("slower", 0), n), rate(c.get("faster", 0), n),
                     rate(shown, n), rate(c.get("not shown", 0), n), rate(c.get(NO_TEST, 0), n), ok])
    print(table(["k", "spread", "trials", "slower %", "faster %", "shown %", "not shown %", "— %",
                 "target"], rows))
    print("   target: shown <= 5 % for k >= 2; k = 1 always —")
    print()


def print_power(cells: Dict[tuple, dict]) -> None:
    print("3. Power (b truly slower by shift; right = 'slower', wrong = 'faster'); welch = two models, independent")
    print("   processes; paired = one model, both conditions in the same processes (variant column), factor shared")
    rows = []
    for (design, k, spread, shift), c in sorted(cells.items()):
        n = c["trials"]
        det = c["detectable"]
        rows.append([design, k, f"{spread * 100:.0f} %", f"{shift * 100:.0f} %", n, rate(c.get("slower", 0), n),
                     rate(c.get("faster", 0), n), rate(c.get(NO_TEST, 0), n),
                     f"{(det - 1) * 100:.1f} %" if np.isfinite(det) else "—"])
    print(table(["design", "k", "spread", "shift", "trials", "right %", "wrong %", "— %", "detectable (median)"],
                rows))
    print("   shift 0 rows (paired): the paired design's false positives ('right' = called slower, 'wrong' = faster),")
    print("   target <= 5 % together; detectable: the verdict's own 80 %-power shift, median over trials")
    print()


# --------------------------------------------------------------------------- 4. attribution
def _template(k: int, separate: bool) -> Tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The identity columns of one study's rows (as tests/results/test_attribution.py's
    ``_rows``), the AT_VARIANTS index of each row and its process index."""
    rows, vi, proc = [], [], []
    for r in range(k):
        for i, (run, clocks, name, gap, mode, pre) in enumerate(AT_VARIANTS):
            rows.append({"run_id": run, "status": "ok", "model": name if separate else "yolov8n-cls",
                         "variant": None if separate else name, "repeat": r, "repeat_isolation": "process",
                         "clocks_mode": clocks, "gap_s": gap, "gap_mode": mode, "prewarm": pre,
                         "confidence": CONF})
            vi.append(i)
            # a process: (run, repeat) when the variants share it, else (run, variant, repeat)
            proc.append(i * k + r if separate else (0 if clocks == "default" else 1) * k + r)
    return pd.DataFrame(rows), np.asarray(vi), np.asarray(proc)


def classify(sentence: str) -> Tuple[str, frozenset]:
    """(outcome, causes named): outcome ``named`` / ``inconclusive`` / ``no slowdown`` / ``other``."""
    if sentence.startswith("cause: "):
        names = sentence[len("cause: "):].split(" (", 1)[0]
        parts = [p for chunk in names.split(" and ") for p in chunk.split(", ")]
        return "named", frozenset(p.strip() for p in parts if p.strip())
    if sentence.startswith("inconclusive"):
        return "inconclusive", frozenset()
    if sentence.startswith("no slowdown shown"):
        return "no slowdown", frozenset()
    return "other", frozenset()


def cell_attribution(scenario: str, separate: bool, k: int, cv: float, studies: int) -> dict:
    rng = rng_for(4, list(SCENARIOS).index(scenario), int(separate), k, int(round(cv * 1000)))
    truth = np.asarray(SCENARIOS[scenario][0])
    true_causes = SCENARIOS[scenario][1]
    tmpl, vi, proc = _template(k, separate)
    n_proc = int(proc.max()) + 1
    out = Counter()
    named: Counter = Counter()
    chunk = max(1, 20000 // (len(tmpl)))
    done = 0
    while done < studies:
        m = min(chunk, studies - done)
        level = np.exp(rng.normal(0.0, cv, (m, n_proc)))[:, proc] * truth[vi]
        # the p50 of a simulated run: summarize's p50 is np.percentile(x, 50), the median
        p50 = np.median(level[:, :, None] * np.exp(AT_SIGMA * ar1(rng, (m, len(tmpl), AT_N), AT_RHO)), axis=-1)
        for s in range(m):
            rows = tmpl.copy()
            rows["gpu_p50_ms"] = p50[s]
            rows["p50_ms"] = p50[s] + 0.1  # host time: the GPU's plus the launch, as in the tests
            _, sentence = attribute(rows)
            what, causes = classify(sentence)
            out[what] += 1
            if what == "named":
                named[" and ".join(c for c in CAUSES if c in causes) or "?"] += 1
                out["right"] += causes == true_causes
                out["wrong"] += bool(causes - true_causes)
        done += m
    return {"studies": studies, **out, "named_as": dict(named)}


def print_attribution(cells: Dict[tuple, dict]) -> None:
    print("4. Gap attribution (attribute on the study's runs table; per run k process-isolated repeats, process")
    print(f"   factor lognormal sd cv; each p50 that of a simulated {AT_N}-inference run, AR(1) rho {AT_RHO}, "
          f"sigma {AT_SIGMA})")
    print("   one process = the variants of a repeat in one process (the shipped study); separate = every variant")
    print("   its own model and process. named = a cause named; right = exactly the true cause; wrong = a cause")
    print("   named that is not true (in 'no slowdown' every named cause is wrong)")
    rows = []
    for (scen, sep, k, cv), c in sorted(cells.items(), key=lambda kv: (list(SCENARIOS).index(kv[0][0]),) + kv[0][1:]):
        if scen == "h200":
            continue
        n = c["studies"]
        if scen == "none":
            target = check(c.get("named", 0), n, hi=5.0)
        elif not sep and k == AT_SHIPPED and abs(cv - 0.10) < 1e-9:
            flags = {check(c.get("right", 0), n, lo=80.0, low="MISS"), check(c.get("wrong", 0), n, hi=5.0)}
            target = next((f for f in ("MISS", "HIGH", "ok~") if f in flags), "ok")
        else:
            target = "" if 100.0 * c.get("wrong", 0) / n <= 5.0 else "wrong > 5"
        rows.append([SCENARIOS[scen][2], "separate" if sep else "one process", k, f"{cv:.2f}", n,
                     rate(c.get("named", 0), n), "" if scen == "none" else rate(c.get("right", 0), n),
                     rate(c.get("wrong", 0), n), rate(c.get("inconclusive", 0), n),
                     rate(c.get("no slowdown", 0), n), target])
    print(table(["scenario", "layout", "repeats", "cv", "studies", "named %", "right %", "wrong %",
                 "inconclusive %", "no slowdown %", "target"], rows))
    print("   targets: no slowdown: named <= 5 %; engine cold state at cv 0.10 with the shipped 6 repeats, one")
    print("   process: right >= 80 % and wrong <= 5 % (other rows: context, flagged only where wrong > 5 %)")
    print()
    h = {key: c for key, c in cells.items() if key[0] == "h200"}
    if not h:
        return
    levels = SCENARIOS["h200"][0]
    print("   The H200's measured levels as the truth (GPU p50 ms: back to back %.3f, gap sleep %.3f, spin %.3f,"
          % levels[:3])
    print("   poke %.3f, dummy %.3f; clocks max: back to back %.3f, gap %.3f): what is named" % levels[3:])
    shares = {"spin": levels[2], "poke": levels[3], "dummy": levels[4]}
    slow = math.log(levels[1] / levels[0])
    parts = [f"{v} {math.log(levels[1] / x) / slow * 100:.0f} %" for v, x in shares.items()]
    parts.append(f"clocks max {(slow - math.log(levels[6] / levels[5])) / slow * 100:.0f} %")
    print("   (true shares of the slowdown recovered, on logs: " + ", ".join(parts) + ")")
    names: Counter = Counter()
    for c in h.values():
        names.update(c["named_as"])
    top = [nm for nm, _ in names.most_common()]
    rows = []
    for (_, sep, k, cv), c in sorted(h.items()):
        n = c["studies"]
        rows.append(["separate" if sep else "one process", k, f"{cv:.2f}", n]
                    + [rate(c["named_as"].get(nm, 0), n) for nm in top]
                    + [rate(c.get("inconclusive", 0), n), rate(c.get("no slowdown", 0), n)])
    print(table(["layout", "repeats", "cv", "studies"] + [f"{nm} %" for nm in top]
                + ["inconclusive %", "no slowdown %"], rows))
    print()


# --------------------------------------------------------------------------- 5. H100 trees
def cell_h100() -> dict:
    lines = []
    for tree in sorted(p for p in H100.iterdir() if p.is_dir()):
        r = results.load(tree)
        runs, samples = r.runs, r.samples
        if not len(samples):
            continue
        sel = samples["in_window"].astype(bool) if "in_window" in samples.columns else ~samples["warmup"].astype(bool)
        s = samples.loc[sel]
        if "t_start_ns" in s.columns:
            s = s.sort_values("t_start_ns", kind="stable")  # time order: the dependence is between neighbours
        idx = s.groupby([row_keys(s)[k] for k in SAMPLE_KEYS], sort=False).indices
        ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
        keys = list(row_keys(ok).itertuples(index=False, name=None))
        for (label, row), key in zip(ok.iterrows(), keys):
            pos = idx.get(key)
            if pos is None:
                continue
            sub = s.iloc[pos]
            for prefix, col in (("", "host_ms"), ("gpu_", "gpu_ms")):
                if col not in sub.columns:
                    continue
                x = pd.to_numeric(sub[col], errors="coerce").dropna().to_numpy(np.float64)
                if not len(x):
                    continue
                st = summarize(x, 1, CONF)
                ilo, ihi = median_interval(x, CONF)
                lo, hi, dep = median_ci(x, CONF)
                stored = (row.get(f"{prefix}p50_ci_lo_ms", np.nan), row.get(f"{prefix}p50_ci_hi_ms", np.nan))
                same = all((np.isnan(a) and np.isnan(b)) or (np.isfinite(a) and abs(a - b) <= 1e-9 * max(1.0, abs(b)))
                           for a, b in zip(map(float, stored), (lo, hi)))
                lines.append({"tree": tree.name, "run": str(row["run_id"])[-6:], "model": row["model"],
                              "phase": row.get("phase", ""), "mode": row.get("mode", ""),
                              "repeat": row.get("repeat", 0), "timer": "gpu" if prefix else "host", "n": st.n,
                              "acf1": st.acf1, "block": st.block_ratio, "n_eff": st.n_eff, "p50": st.p50_ms,
                              "w_iid": ihi - ilo, "w_new": hi - lo, "stored_same": same})
    return {"lines": lines}


def print_h100(res: dict) -> None:
    lines = res["lines"]
    print(f"5. The H100 trees in {H100.relative_to(ROOT)} (real GPU series; in-window samples in time order)")
    print("   width i.i.d. = median_interval (binomial, independent draws); new = median_ci under the series'")
    print("   dependence (the row's p50 interval); — = no interval (too short for its dependence)")
    if not lines:
        print("   no rows with samples found")
        print()
        return
    for tree in sorted({ln["tree"] for ln in lines}):
        print(f"   {tree}")
        rows = []
        for ln in (x for x in lines if x["tree"] == tree):
            ratio = ln["w_new"] / ln["w_iid"] if np.isfinite(ln["w_new"]) and ln["w_iid"] > 0 else float("nan")
            rows.append([ln["model"], ln["phase"], ln["mode"], ln["run"], ln["repeat"], ln["timer"], ln["n"],
                         _fmt(ln["acf1"], ".2f"), _fmt(ln["block"], ".2f"), _fmt(ln["n_eff"], ".0f"),
                         _fmt(ln["p50"], ".3f"), _fmt(ln["w_iid"], ".4f"), _fmt(ln["w_new"], ".4f"),
                         _fmt(ratio, ".2f")])
        print(table(["model", "phase", "mode", "run", "rep", "timer", "n", "acf1", "block", "n_eff", "p50 ms",
                     "width iid", "width new", "new/iid"], rows))
    blocks = np.array([ln["block"] for ln in lines], dtype=float)
    ratios = np.array([ln["w_new"] / ln["w_iid"] for ln in lines if np.isfinite(ln["w_new"]) and ln["w_iid"] > 0])
    none = sum(not np.isfinite(ln["w_new"]) for ln in lines)
    same = sum(ln["stored_same"] for ln in lines)
    print(f"   summary: {len(lines)} series (rows x timers); block ratio median {np.nanmedian(blocks):.2f}, "
          f"max {np.nanmax(blocks):.2f}; no interval for {none} of {len(lines)}; width new/iid median "
          f"{np.median(ratios):.2f}, max {np.max(ratios):.2f} (over the {len(ratios)} with one); "
          f"{same} of {len(lines)} stored row intervals equal median_ci")
    print()


# --------------------------------------------------------------------------- driver
def _run(task: tuple) -> Tuple[tuple, dict, float]:
    fn = {"coverage": cell_coverage, "verdict": cell_verdict, "attribution": cell_attribution, "h100": cell_h100}
    t0 = time.process_time()
    name, key, args = task
    res = fn[name](*args)
    return (name, key), res, time.process_time() - t0


def tasks(a) -> List[tuple]:
    only = {int(s) for s in a.only.split(",")} if a.only else {1, 2, 3, 4, 5}
    out = []
    if 1 in only:
        out += [("coverage", (rho, n), (rho, n, a.series)) for rho in COV_RHOS for n in COV_NS]
    if 2 in only:
        out += [("verdict", ("fp", k, sp), ("welch", k, sp, 0.0, a.trials)) for k in FP_KS for sp in FP_SPREADS]
    if 3 in only:
        for design in ("welch", "paired"):
            for k in PW_KS:
                for sp in PW_SPREADS:
                    for sh in ((0.0,) if design == "paired" else ()) + PW_SHIFTS:
                        out.append(("verdict", ("pw", design, k, sp, sh), (design, k, sp, sh, a.power_trials)))
    if 4 in only:
        reps = AT_REPEATS if a.context_studies > 0 else (AT_SHIPPED,)
        for scen in SCENARIOS:
            for sep in (False, True):
                if sep and scen == "h200":
                    continue
                for k in reps:
                    for cv in AT_CVS:
                        if sep and a.quick and abs(cv - 0.10) > 1e-9:
                            continue  # --quick: the separate layout at the reference noise only
                        n = a.studies if k == AT_SHIPPED else a.context_studies
                        out.append(("attribution", (scen, sep, k, cv), (scen, sep, k, cv, n)))
    if 5 in only:
        out.append(("h100", (), ()))
    return out


def header(a) -> None:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "?"
    except Exception:  # not a checkout, no git
        commit = "?"
    print("stat_validity: do the statistics' verdicts hold? (trt_ray_bench)")
    print(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command   {shlex.join([os.path.basename(sys.executable)] + sys.argv)}   (cwd {os.getcwd()})")
    print(f"python    {platform.python_version()} ({platform.python_implementation()}); numpy {np.__version__}, "
          f"scipy {scipy.__version__}, pandas {pd.__version__}")
    print(f"machine   {platform.platform()}; processor {platform.processor() or platform.machine()}; "
          f"{os.cpu_count()} CPUs; {a.jobs} worker process(es)")
    print(f"code      git HEAD {commit} (the working tree may differ from it)")
    ctx = (f", {a.context_studies} at 3 and 10 repeats" if a.context_studies > 0 else " (3 and 10 repeats skipped)")
    if a.quick:
        ctx += ", separate models at cv 0.10 only (--quick)"
    print(f"trials    coverage {a.series} series/cell; false positives {a.trials}/cell; power {a.power_trials}/cell; "
          f"attribution {a.studies} studies/cell at the shipped 6 repeats{ctx}; seed {SEED}")
    print("margins   ± = 95 % Monte-Carlo half-width of the rate (binomial, Agresti-Coull); target column: ok, ok~ =")
    print("          misses the target by less than its margin (not shown to miss), else LOW / HIGH / MISS")
    print()
    sys.stdout.flush()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer trials (300 / 300 / 100 / 150); the attribution at the shipped 6 repeats only, "
                         "separate models at cv 0.10 only")
    ap.add_argument("--series", type=int, help="coverage: series per cell (default 2000, --quick 300)")
    ap.add_argument("--trials", type=int, help="false positives: trials per cell (default 2000, --quick 300)")
    ap.add_argument("--power-trials", type=int, help="power: trials per cell (default 1000, --quick 100)")
    ap.add_argument("--studies", type=int,
                    help="attribution: studies per cell at the shipped 6 repeats (default 1000, --quick 150)")
    ap.add_argument("--context-studies", type=int,
                    help="attribution: studies per cell at 3 and 10 repeats (default 300; 0 or --quick: skipped)")
    ap.add_argument("--only", default="", help="comma-separated sections to run (1-5; default all)")
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (default: every CPU)")
    a = ap.parse_args(argv)
    a.series = a.series or (300 if a.quick else 2000)
    a.trials = a.trials or (300 if a.quick else 2000)
    a.power_trials = a.power_trials or (100 if a.quick else 1000)
    a.studies = a.studies or (150 if a.quick else 1000)
    if a.context_studies is None:  # 0: the 3 and 10 repeats are skipped
        a.context_studies = 0 if a.quick else 300
    a.jobs = a.jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    t0 = time.perf_counter()
    header(a)
    todo = tasks(a)
    done: Dict[tuple, dict] = {}
    cpu: Counter = Counter()
    sections = [("coverage", print_coverage), ("fp", print_false_positives), ("pw", print_power),
                ("attribution", print_attribution), ("h100", print_h100)]

    def section_of(name: str, key: tuple) -> str:
        return key[0] if name == "verdict" else name

    wanted = Counter(section_of(t[0], t[1]) for t in todo)
    got: Counter = Counter()
    printed = 0

    def flush_ready() -> None:
        nonlocal printed
        while printed < len(sections):
            sec, show = sections[printed]
            if got[sec] < wanted[sec]:
                return
            if wanted[sec]:
                cells = {k[1] if sec in ("coverage", "attribution") else k[1][1:]: v
                         for k, v in done.items() if section_of(*k) == sec}
                show(cells[()] if sec == "h100" else cells)
                print(f"   ({sec}: {cpu[sec]:.0f} s of CPU)\n")
                sys.stdout.flush()
            printed += 1

    def take(res) -> None:
        key, val, secs = res
        done[key] = val
        sec = section_of(*key)
        got[sec] += 1
        cpu[sec] += secs
        flush_ready()

    # the slowest cells first, so that the workers finish together
    order = sorted(todo, key=lambda t: {"attribution": 0, "verdict": 1, "coverage": 2, "h100": 3}[t[0]])
    order = [t for t in order if t[0] != "coverage"] + [t for t in order if t[0] == "coverage"]
    if a.jobs <= 1:
        for t in todo:
            take(_run(t))
    else:
        with ProcessPoolExecutor(max_workers=a.jobs) as pool:
            futures = [pool.submit(_run, t) for t in order]
            for f in as_completed(futures):
                take(f.result())
    flush_ready()
    wall = time.perf_counter() - t0
    print(f"runtime   {int(wall // 60)} min {int(wall % 60)} s wall, {sum(cpu.values()) / 60:.1f} min of CPU in the "
          f"cells, {a.jobs} worker process(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
