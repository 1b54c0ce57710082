"""Foreign load in each row's window: what ``telemetry.foreign`` recorded (source
``foreign``), weighed over the window, and the ``foreign_load`` diagnostic's message.

An averaged reading (``foreign_cpu_pct``, ``foreign_cpu_pct:<name>``: ``avg_s`` > 0)
covers ``[t_ns - avg_s, t_ns]`` and counts by how much of that period lies in the window;
a name absent from a pass used less than the per-name floor then, and counts as 0. A
process seen at a pass (other trb runs, processes on the GPU: ``avg_s`` 0) was there
during the window when a pass inside the window saw it, or, where no pass fell inside
(a window shorter than the period), the passes just before and just after both did.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

SOURCE = "foreign"
#: how many processes a message names, busiest first
NAMED = 5


def _by_run(telemetry: pd.DataFrame) -> Dict[object, pd.DataFrame]:
    tel = telemetry[telemetry["source"] == SOURCE]
    if not len(tel):
        return {}
    if "avg_s" not in tel.columns:
        tel = tel.assign(avg_s=0.0)
    tel = tel.assign(avg_s=pd.to_numeric(tel["avg_s"], errors="coerce").fillna(0.0))
    return {rid: g.sort_values("t_ns", kind="stable") for rid, g in tel.groupby("run_id", sort=False)}


def _present(tel: pd.DataFrame, timeline: str, prefix: str, start: int, end: int) -> Dict[str, float]:
    """Per name (metric ``prefix<name>``), its value at the passes that show it in the
    window (the last such pass's)."""
    passes = np.unique(tel.loc[tel["metric"] == timeline, "t_ns"].to_numpy(np.int64))
    if not passes.size:
        return {}
    inside = passes[(passes >= start) & (passes <= end)]
    if inside.size:
        need, times = 1, inside
    else:  # no pass inside: the process was there before and after it
        lo, hi = passes[passes < start], passes[passes > end]
        if not lo.size or not hi.size:
            return {}
        need, times = 2, np.array([lo[-1], hi[0]])
    sel = tel[tel["metric"].str.startswith(prefix) & tel["t_ns"].isin(times)]
    out: Dict[str, float] = {}
    for metric, g in sel.groupby("metric", sort=False):
        if g["t_ns"].nunique() >= need:
            out[metric[len(prefix):]] = float(g["value"].iloc[-1])
    return out


def _ranked(name: str) -> Tuple[str, int]:
    """``python#2`` -> ("python", 2); ``python`` -> ("python", 1)."""
    base, sep, k = name.rpartition("#")
    return (base, int(k)) if sep and k.isdigit() else (name, 1)


def in_window(tel: pd.DataFrame, start: int, end: int) -> Optional[dict]:
    """What the foreign readings of one run say about ``[start, end]`` (ns): ``cpu_pct``
    (NaN where no reading covers the window), ``names`` [(name, % of a core, [pids])]
    busiest first, ``trb`` [pid], ``gpu`` [(name, MiB, pid)], ``unresolved`` (GPU processes
    whose owner is unknown); None where the run has no foreign readings."""
    if tel is None or not len(tel):
        return None
    t = tel["t_ns"].to_numpy(np.int64)
    avg = tel["avg_s"].to_numpy(np.float64)
    lo = t - (avg * 1e9).astype(np.int64)
    near = (avg > 0) & (t > start) & (lo < end)  # the averaged readings whose period meets the window
    t, lo = t[near], lo[near]
    metric = tel["metric"].to_numpy(object)[near]
    value = tel["value"].to_numpy(np.float64)[near]
    ov = (np.minimum(t, end) - np.maximum(lo, start)).astype(np.float64)
    total = metric == "foreign_cpu_pct"
    covered = float(ov[total].sum())
    cpu = float((value[total] * ov[total]).sum() / covered) if covered > 0 else float("nan")
    names: List[Tuple[str, float, List[int]]] = []
    if covered > 0:
        w = np.array([m.startswith("foreign_cpu_pct:") for m in metric], dtype=bool)
        weight = {(m[len("foreign_cpu_pct:"):], int(tt)): v * o for m, tt, v, o in zip(metric[w], t[w], value[w], ov[w])}
        ranked: Dict[str, Dict[int, Tuple[int, float]]] = {}  # name -> pid -> (best rank, -weight)
        for m, tt, v in zip(metric, t, value):
            if not m.startswith("foreign_pid:"):
                continue
            name, rank = _ranked(m[len("foreign_pid:"):])
            wt = weight.get((name, int(tt)))
            if wt is None:
                continue
            r, acc = ranked.setdefault(name, {}).get(int(v), (rank, 0.0))
            ranked[name][int(v)] = (min(r, rank), acc - wt)
        sums: Dict[str, float] = {}
        for (name, _), wt in weight.items():
            sums[name] = sums.get(name, 0.0) + wt
        names = sorted(((n, float(tot / covered), [p for p, _ in sorted(ranked.get(n, {}).items(), key=lambda kv: kv[1])])
                        for n, tot in sums.items()), key=lambda x: -x[1])
    trb = sorted(int(p) for p in _present(tel, "foreign_trb_runs", "foreign_trb_run:", start, end))
    mem = _present(tel, "foreign_gpu_procs", "foreign_gpu_mem_mib:", start, end)
    gpid = _present(tel, "foreign_gpu_procs", "foreign_gpu_pid:", start, end)
    gpu = [(n, mem[n], int(gpid.get(n, 0))) for n in sorted(mem)]
    unresolved = _present(tel, "foreign_gpu_procs", "gpu_procs_unresolved", start, end)
    return {"cpu_pct": cpu, "names": names, "trb": trb, "gpu": gpu,
            "unresolved": int(max(unresolved.values())) if unresolved else 0}


def message(f: dict, cpu_limit: float, name_floor: float) -> str:
    """The ``foreign_load`` message for one window's :func:`in_window`, or ``""`` where
    nothing foreign is over the thresholds."""
    parts = []
    if f["cpu_pct"] > cpu_limit:
        named = [(n, p, pids) for n, p, pids in f["names"] if p >= name_floor][:NAMED]
        who = ", ".join(f"{n} ({_pids(pids)}) {p:.0f} %" + (" of a core" if k == 0 else "")
                        for k, (n, p, pids) in enumerate(named))
        parts.append(f"other processes used the machine during this window: {who + '; ' if who else ''}"
                     f"{f['cpu_pct']:.0f} % of a core in all (above {cpu_limit:g} %)")
    if f["trb"]:
        parts.append(f"another trb run ({_pids(f['trb'])}) was running" if len(f["trb"]) == 1
                     else f"{len(f['trb'])} other trb runs ({_pids(f['trb'])}) were running")
    if f["gpu"]:
        procs = ", ".join(f"{n} (pid {pid}" + (f", {mib:.0f} MiB)" if mib == mib else ")") for n, mib, pid in f["gpu"])
        parts.append(f"other processes were on the experiment's GPU: {procs}")
    if not parts:
        return ""
    return "; ".join(parts) + ": latencies may include their contention"


def _pids(pids: List[int]) -> str:
    if not pids:
        return "pid unknown"
    return f"pid {pids[0]}" if len(pids) == 1 else "pids " + ", ".join(str(p) for p in pids[:3])


def foreign_load(runs: pd.DataFrame, telemetry: Optional[pd.DataFrame], starts: np.ndarray, ends: np.ndarray,
                 ok: np.ndarray, lists: List[List[dict]], thresholds: dict) -> None:
    """The ``foreign_load`` diagnostic: ok rows whose window saw foreign CPU load above
    ``thresholds["foreign_cpu_pct"]`` (% of one core, on average), another trb run, or
    another process on the experiment's GPU get one message naming them."""
    if telemetry is None or not len(telemetry) or "source" not in telemetry.columns or not ok.any():
        return
    by_run = _by_run(telemetry)
    if not by_run:
        return
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else np.full(len(runs), None)
    for j in range(len(runs)):
        s, e = starts[j], ends[j]
        if not ok[j] or rids[j] not in by_run or pd.isna(s) or pd.isna(e):
            continue
        f = in_window(by_run[rids[j]], int(s), int(e))
        msg = message(f, thresholds["foreign_cpu_pct"], thresholds["foreign_name_pct"]) if f else ""
        if msg:
            lists[j].append({"code": "foreign_load", "message": msg})
