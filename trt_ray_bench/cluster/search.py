"""The highest sustainable rate: a sweep spec's ``search`` section, run by ``trb sweep``.

For each model alone, then for all models together (their rates in the ratio of their
own ``timing.rate_hz``, the largest one searched), the highest ``timing.rate_hz`` whose
probe meets ``search.until`` (e.g. ``p99_from_arrival_ms <= deadline_ms``), by bisection
between ``low`` and ``high`` until the bracket is ``resolution`` narrow. A probe is one
experiment (the base, that model or all of them, at that rate, ``repeats`` repeats) and
meets only if **every** ok row of it does (each model, each repeat: the runs are the
evidence, and a rate that one repeat of one model fails is not sustainable); a row whose
value is not given (a p99 of fewer than 368 frames, a failed model) does not meet it.

A rate above a model's capacity *c* is not sustainable, yet a short probe can pass it: under
``backlog: queue`` the wait grows by 1/c - 1/r a frame, and ``until`` fails only once the
frames it counts wait longer than its bound *L* (the deadline, or the latency it names). A
probe of N frames therefore hides an overload of up to about r²L/(fN) (f: the share of
frames, from the first, that must be on time: 0.99 for a p99 or a 1 % miss rate, half for a
median), so each probe runs at least r·R·L/(f·resolution) frames a model (R the rate
searched): what it could hide stays below the resolution (``probe_frames``).

Probes run here, one after another (each depends on the last, unlike a sweep's points),
on one Ray started (or joined) once. Every probe is a run under the results folder, and
``search-log.jsonl`` lists them; the answer is one table (model, alone max rate, together
max rate) printed and written as ``search.parquet`` and ``search.csv`` beside them."""

from __future__ import annotations

import copy
import json
import math
import operator
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pandas as pd

from .. import progress
from ..errors import UserError
from ..results.schema import RUNS
from ..spec import ExperimentSpec, SweepSpec, TimingSpec, spec_from_dict
from ..timing._stats import percentile_min_n

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


def bisect_rate(meets: Callable[[float], bool], low: float, high: float, resolution: float) -> Tuple[float, str]:
    """The highest rate in ``[low, high]`` that ``meets``, to ``resolution``, assuming
    that a rate meets wherever a higher one does; and a note: ``below low`` (NaN: not even
    ``low`` meets), ``at least high`` (``high`` meets) or ``""``."""
    if not meets(low):
        return float("nan"), f"below {low:g}"
    if meets(high):
        return high, f"at least {high:g}"
    lo, hi = low, high
    while hi - lo > resolution:
        mid = (lo + hi) / 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return lo, ""


def row_meets(row: pd.Series, criterion: Tuple[str, str, object]) -> bool:
    """Whether one runs row meets ``criterion`` (column, operator, number or column)."""
    col, op, rhs = criterion
    if row.get("status") != "ok":
        return False
    a = row.get(col)
    b = row.get(rhs) if isinstance(rhs, str) else rhs
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return False
    return bool(_OPS[op](float(a), float(b)))


def _on_time_share(col: str, op: str, rhs) -> Optional[float]:
    """Where a wait grows frame by frame, ``col op rhs`` holds only while the first share f
    of a row's frames is on time: the quantile's (0.99 for a p99), half for a median or a mean,
    all for a max, 1 - the miss rate allowed; None where it bounds no latency from arrival."""
    if col == "deadline_miss" and op in ("<=", "<") and isinstance(rhs, float):
        return 1.0 - rhs if rhs < 1 else None
    if op not in ("<=", "<") or not (col.endswith("_from_arrival_ms") or col.startswith("queue_")):
        return None
    q = _quantile(col)
    if q:
        return q / 100.0
    stat = col.split("_")[1] if col.startswith("queue_") else col.split("_")[0]
    return {"p50": 0.5, "mean": 0.5, "max": 1.0}.get(stat)


def probe_frames(criterion: Tuple[str, str, object], timing: TimingSpec, rate: float, top: float,
                 resolution: float) -> Optional[int]:
    """The frames a probe row at ``rate`` (its model's; ``top`` the rate searched) needs so
    that an overload it could hide (module doc) is below ``resolution``; None where no queue
    can hide one (``backlog: drop`` counts a frame past capacity as a miss at once) or the
    criterion bounds no latency from arrival."""
    col, op, rhs = criterion
    share = _on_time_share(col, op, rhs)
    bound = timing.deadline_ms if col == "deadline_miss" or rhs == "deadline_ms" else rhs
    if timing.backlog == "drop" or share is None or not isinstance(bound, float) or bound <= 0:
        return None
    return math.ceil(rate * top * bound / 1000.0 / resolution / share)


def _rates(spec: ExperimentSpec) -> Dict[str, float]:
    return {m.name: spec.timing_for(m).rate_hz for m in spec.models}


def check_search(sweep: SweepSpec) -> ExperimentSpec:
    """The base spec, and everything about the search refused in one line before anything
    runs: a criterion naming no runs column, a model that runs closed (no rate), a p99
    criterion on rows too short to have one."""
    s = sweep.search
    where = f"{sweep.source}: search"
    col, _, rhs = s.criterion()
    for c in (col, rhs):
        if isinstance(c, str) and c not in RUNS.names:
            raise UserError(f"{where}.until", f"{c!r} is not a runs column (e.g. p99_from_arrival_ms, "
                                              "deadline_miss, deadline_ms)")
    base = spec_from_dict(sweep.base, f"{sweep.source}: base")
    for i, m in enumerate(base.models):
        t = base.timing_for(m)
        if t.arrivals == "closed":
            raise UserError(f"{where}.field", f"models[{i}] ({m.name}) runs closed: a rate search needs "
                            "timing.arrivals periodic or poisson and a timing.rate_hz")
        if isinstance(rhs, str) and rhs == "deadline_ms" and t.deadline_ms is None:
            raise UserError(f"{where}.until", f"compares with deadline_ms, which models[{i}] ({m.name}) does not "
                            "have: set timing.deadline_ms")
        q = _quantile(col)
        if q and t.iterations is not None and t.iterations < percentile_min_n(q, base.confidence):
            raise UserError(f"{where}.until", f"{col} needs at least {percentile_min_n(q, base.confidence)} frames "
                            f"a row; models[{i}] ({m.name}) runs {t.iterations}: raise timing.iterations")
    # every probe must be a valid experiment: each model alone at the highest and lowest
    # rate (a together probe runs every model at or below the rate searched)
    for rate, bound in ((s.high, "high"), (s.low, "low")):
        for m in base.models:
            probe = _probe_dict(sweep.base, base, [m.name], {m.name: rate}, s.repeats, sweep.name)
            try:
                spec_from_dict(probe, "probe")
            except UserError as e:
                why = str(e)[len("probe: "):] if str(e).startswith("probe: ") else str(e)
                hint = "; lower search.high or the jitter" if bound == "high" and "jitter_ms" in why else ""
                raise UserError(f"{where}.{bound}", f"{m.name} at {rate:g} Hz is not a valid run: {why}{hint}") from None
    return base


def _quantile(col: str) -> Optional[int]:
    for q in (90, 95, 99):
        if col.startswith(f"p{q}_"):
            return q
    return None


def _lengths(sweep: SweepSpec, spec: ExperimentSpec, rates: Dict[str, float]) -> Dict[str, dict]:
    """Each probed model's timing lengthened to ``probe_frames`` where its own is shorter:
    ``iterations``, or ``duration_s`` for a model timed by duration."""
    s = sweep.search
    top = max(rates.values())
    out = {}
    for m in spec.models:
        if m.name not in rates:
            continue
        t = spec.timing_for(m)
        n = probe_frames(s.criterion(), t, rates[m.name], top, s.resolution)
        if n is None:
            continue
        if t.iterations is not None and n > t.iterations:
            out[m.name] = {"iterations": n}
        elif t.duration_s is not None and n / rates[m.name] > t.duration_s:
            out[m.name] = {"duration_s": n / rates[m.name]}
    return out


def _probe_dict(base: dict, spec: ExperimentSpec, names: List[str], rates: Dict[str, float], repeats: int,
                name: str, lengths: Optional[Dict[str, dict]] = None) -> dict:
    """The base experiment with only ``names``, each at its rate (and length), ``repeats`` repeats."""
    d = copy.deepcopy(base)
    d["name"] = name
    d["repeats"] = repeats
    d["schedule"] = "together" if len(names) > 1 else "alone"
    keep = []
    for m, raw in zip(spec.models, d["models"]):
        if m.name in names:
            raw = dict(raw)
            raw["timing"] = {**(raw.get("timing") or {}), "rate_hz": rates[m.name], **(lengths or {}).get(m.name, {})}
            raw.setdefault("name", m.name)
            keep.append(raw)
    d["models"] = keep
    return d


def describe_search(sweep: SweepSpec, base: ExperimentSpec) -> str:
    s = sweep.search
    rates = _rates(base)
    steps = max(0, math.ceil(math.log2(max((s.high - s.low) / s.resolution, 1.0))))
    n = len(base.models) + (1 if s.together and len(base.models) > 1 else 0)
    lines = [f"search      {sweep.name}: the highest {s.field} with {s.until} in every row, {s.repeats} repeat(s) "
             f"a probe, between {s.low:g} and {s.high:g} Hz to {s.resolution:g} Hz",
             f"probes      up to {2 + steps} per search, {n} searches ({len(base.models)} alone"
             + (", 1 together)" if n > len(base.models) else ")"),
             f"output      {Path(base.output) / sweep.name}"]
    longest = _lengths(sweep, base, {m.name: s.high for m in base.models})
    if longest:
        lines.append("length      probes lengthened where a queue growing through one could hide an overload "
                     f"wider than {s.resolution:g} Hz; at {s.high:g} Hz: "
                     + ", ".join(f"{k} {next(iter(v.values())):.4g}{' frames' if 'iterations' in v else ' s'}"
                                 for k, v in longest.items()))
    for m in base.models:
        lines.append(f"  {m.name:<16} {base.timing_for(m).arrivals} at {rates[m.name]:g} Hz in the spec")
    if s.together and len(base.models) > 1:
        top = max(rates.values())
        lines.append("  together: " + ", ".join(f"{k} x{v / top:.3g}" for k, v in rates.items())
                     + " of the rate searched")
    return "\n".join(lines)


def run_search(sweep: SweepSpec, address: Optional[str] = None, log=None) -> dict:
    """Run the search (module doc); returns the table and the probes."""
    from .node_run import connect, run_plan
    from .plan import make_plan

    log = progress.say(log)
    s = sweep.search
    base = check_search(sweep)
    criterion = s.criterion()
    rates = _rates(base)
    root = Path(base.output) / sweep.name
    probes: List[dict] = []
    started = connect(address)

    def probe(names: List[str], what: str) -> Callable[[float], bool]:
        top = max(rates[n] for n in names)

        def meets(rate: float) -> bool:
            r = {n: rates[n] * rate / top for n in names}
            lengths = _lengths(sweep, base, r)
            spec = spec_from_dict(_probe_dict(sweep.base, base, names, r, s.repeats, sweep.name, lengths),
                                  f"{sweep.source}: search probe {what} at {rate:g} Hz")
            out = run_plan(make_plan(spec, address=address), log=lambda line: None)
            runs = out["tables"]["runs"]
            ok = bool(len(runs)) and all(row_meets(row, criterion) for _, row in runs.iterrows())
            vals = [None if pd.isna(v) else float(v) for v in runs.get(criterion[0], pd.Series(dtype=float))]
            rec = {"search": sweep.name, "what": what, "rate_hz": rate, "rates": r, "lengths": lengths, "met": ok,
                   criterion[0]: vals, "run_dir": str(out["run_dir"])}
            probes.append(rec)
            root.mkdir(parents=True, exist_ok=True)
            with open(root / "search-log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            shown = ", ".join("—" if v is None else f"{v:.3g}" for v in vals)
            log.info(f"probe       {what} at {rate:g} Hz: {'meets' if ok else 'fails'} ({criterion[0]} {shown})")
            return ok
        return meets

    try:
        alone: Dict[str, Tuple[float, str]] = {}
        for m in base.models:
            alone[m.name] = bisect_rate(probe([m.name], m.name), s.low, s.high, s.resolution)
        together: Dict[str, Tuple[float, str]] = {}
        if s.together and len(base.models) > 1:
            names = [m.name for m in base.models]
            best, note = bisect_rate(probe(names, "together"), s.low, s.high, s.resolution)
            top = max(rates.values())
            together = {n: (best * rates[n] / top, note) for n in names}
    finally:
        if started:
            import ray

            ray.shutdown()
    table = pd.DataFrame([{
        "model": m.name, "alone_max_rate_hz": alone[m.name][0],
        "together_max_rate_hz": together.get(m.name, (float("nan"), ""))[0],
        "until": s.until, "resolution_hz": s.resolution, "repeats": s.repeats,
        "note": "; ".join(x for x in (f"alone {alone[m.name][1]}" if alone[m.name][1] else "",
                                      f"together {together[m.name][1]}" if together.get(m.name, (0, ""))[1]
                                      else "") if x),
    } for m in base.models])
    root.mkdir(parents=True, exist_ok=True)
    table.to_parquet(root / "search.parquet", index=False)
    table.to_csv(root / "search.csv", index=False)
    return {"table": table, "probes": probes, "root": root}
