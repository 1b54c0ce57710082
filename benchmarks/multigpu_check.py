"""The multi-GPU proof's table: a sweep run on one node with two GPUs
(``benchmarks/multigpu_sweep.yaml``) next to what ``nvidia-smi`` logged meanwhile,
independently of trb:

    nvidia-smi --query-gpu=timestamp,index,uuid,utilization.gpu,clocks.sm --format=csv -lms 100 > smi.csv
    python benchmarks/multigpu_check.py /tmp/trb-results/multigpu smi.csv

Per point: the GPU it leased (index, UUID), its wall-clock start and end, and over its
measuring window the NVML telemetry its Monitor recorded (utilization, SM clock) beside
nvidia-smi's log of each GPU in that window. Then the verdicts, each ``OK`` or ``FAIL``
(exit 1 on any FAIL):

* at most as many points at once as GPUs, and points that overlap hold different GPUs;
* each point's GPU in nvidia-smi's list has the UUID the run recorded;
* each point's NVML telemetry follows its own GPU's nvidia-smi log, not the other's
  (the smaller mean distance in utilization and SM clock);
* a point with ``clocks: {gpu_mhz: N}`` ran its GPU at N MHz, and the other GPU's SM
  clock was not held there meanwhile (unless a point of its own asked for N).

The measuring window is the run's first to last measured inference on the node's
monotonic clock; it is put on the wall clock through the Monitor's first telemetry
sample, taken as the run's ``started_at`` was stamped (tens of ms apart), which is
finer than nvidia-smi's 100 ms. nvidia-smi prints local time: run this where it ran.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pandas as pd

from trt_ray_bench import results

SM_PER_PCT = 20.0  # MHz of SM clock weighed like 1 % of utilization in the distance


def _num(text: str) -> float:
    m = re.match(r"\s*(-?\d+(?:\.\d+)?)", text or "")
    return float(m.group(1)) if m else float("nan")


def read_smi(path: Path) -> pd.DataFrame:
    """nvidia-smi's ``--format=csv`` log (header, units, repeated headers allowed):
    ``t`` (UTC), ``index``, ``uuid``, ``util`` (%), ``sm`` (MHz)."""
    rows, header = [], None
    for line in Path(path).read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if not line.strip():
            continue
        if parts[0].startswith("timestamp"):
            header = [re.sub(r"\s*\[.*\]$", "", p).replace("clocks.current.sm", "clocks.sm") for p in parts]
            continue
        if header is None:
            raise SystemExit(f"{path}: no header line: run nvidia-smi with --format=csv (not noheader)")
        rec = dict(zip(header, parts))
        try:
            t = datetime.strptime(rec["timestamp"], "%Y/%m/%d %H:%M:%S.%f").astimezone(timezone.utc)
        except (KeyError, ValueError):
            continue  # a line cut short when nvidia-smi was stopped
        rows.append({"t": t, "index": int(rec["index"]), "uuid": rec.get("uuid"),
                     "util": _num(rec.get("utilization.gpu", "")), "sm": _num(rec.get("clocks.sm", ""))})
    return pd.DataFrame(rows, columns=["t", "index", "uuid", "util", "sm"])


def _ts(x) -> pd.Timestamp:
    t = pd.Timestamp(x)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def point_windows(res) -> pd.DataFrame:
    """One row per point (run): its GPU, clocks, its wall-clock span and measuring window,
    and its NVML telemetry within that window (as series)."""
    out = []
    for run_id, runs in res.runs.groupby("run_id"):
        r = runs.iloc[0]
        s = res.samples[(res.samples.run_id == run_id) & ~res.samples.warmup]
        tel = res.telemetry[res.telemetry.run_id == run_id]
        if s.empty or tel.empty:
            continue
        p0, p1 = int(s.t_start_ns.min()), int(s.t_end_ns.max())
        offset = _ts(r.started_at).value - int(tel.t_ns.min())  # wall ns - monotonic ns
        nvml = tel[(tel.source == "nvml") & tel.t_ns.between(p0, p1)]
        series = {m: pd.Series(g.value.values, index=pd.to_datetime(g.t_ns.values + offset, utc=True))
                  for m, g in nvml.groupby("metric") if m in ("gpu_util_pct", "gpu_freq_mhz")}
        point = json.loads(r.point) if isinstance(r.get("point"), str) else {}
        inforce = json.loads(r.clocks_in_force) if isinstance(r.get("clocks_in_force"), str) else {}
        out.append({
            "point_id": r.get("point_id"), "point": point, "clocks": r.clocks_mode, "gap_s": r.gap_s,
            "gpu_index": None if pd.isna(r.gpu_index) else int(r.gpu_index), "gpu_uuid": r.gpu_uuid,
            "cuda_visible_devices": r.get("cuda_visible_devices"), "clocks_gpu": inforce.get("gpu"),
            "start": _ts(r.point_started_at) if "point_started_at" in r and pd.notna(r.point_started_at) else None,
            "end": _ts(r.point_ended_at) if "point_ended_at" in r and pd.notna(r.point_ended_at) else None,
            "w0": pd.Timestamp(p0 + offset, tz="UTC"), "w1": pd.Timestamp(p1 + offset, tz="UTC"),
            "nvml": series, "status": ",".join(sorted(set(runs.status))),
        })
    return pd.DataFrame(out).sort_values("w0").reset_index(drop=True)


def _distance(series: dict, smi_gpu: pd.DataFrame) -> float:
    """Mean distance of a point's NVML series to one GPU's nvidia-smi log (nearest sample
    within 150 ms): utilization in %, SM clock in SM_PER_PCT MHz steps."""
    if smi_gpu.empty or not series:
        return float("nan")
    smi = smi_gpu.set_index("t").sort_index()
    smi = smi[~smi.index.duplicated()]
    total, parts = 0.0, 0
    for metric, col, scale in (("gpu_util_pct", "util", 1.0), ("gpu_freq_mhz", "sm", SM_PER_PCT)):
        s = series.get(metric)
        if s is None or s.empty:
            continue
        near = smi[col].reindex(s.index.sort_values(), method="nearest", tolerance=pd.Timedelta("150ms"))
        d = (near.values - s.sort_index().values) / scale
        d = d[~np.isnan(d)]
        if len(d):
            total += float(np.mean(np.abs(d)))
            parts += 1
    return total if parts else float("nan")


def _fmt(x: float, unit: str = "") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.0f}{unit}"


def check(root: Path, smi_path: Path, res=None) -> Tuple[pd.DataFrame, List[str], List[str]]:
    """The table, and the verdict lines (OK ...) and (FAIL ...); ``res``: the results
    tree already loaded."""
    res = results.load(root) if res is None else res
    pts = point_windows(res)
    smi = read_smi(smi_path)
    gpus = sorted(smi["index"].unique()) if not smi.empty else []
    ok, fail = [], []

    def verdict(good: bool, text: str) -> None:
        (ok if good else fail).append(("OK    " if good else "FAIL  ") + text)

    rows = []
    for p in pts.itertuples():
        row = {"point": " ".join(f"{k}={json.dumps(v)}" for k, v in p.point.items()) or p.point_id,
               "gpu": p.gpu_index, "uuid": (p.gpu_uuid or "")[:12], "start": p.start.strftime("%H:%M:%S.%f")[:-4]
               if p.start is not None else "-", "end": p.end.strftime("%H:%M:%S.%f")[:-4] if p.end is not None else "-",
               "window_s": round((p.w1 - p.w0).total_seconds(), 1)}
        util = p.nvml.get("gpu_util_pct")
        sm = p.nvml.get("gpu_freq_mhz")
        row["nvml util%"] = _fmt(util.mean() if util is not None else None)
        row["nvml sm"] = _fmt(sm.median() if sm is not None else None)
        for g in gpus:
            inwin = smi[(smi["index"] == g) & smi.t.between(p.w0, p.w1)]
            row[f"smi{g} util%"] = _fmt(inwin.util.mean() if len(inwin) else None)
            row[f"smi{g} sm"] = (f"{inwin.sm.min():.0f}-{inwin.sm.max():.0f}" if len(inwin) else "-")
            row[f"dist{g}"] = _fmt(_distance(p.nvml, inwin))
        rows.append(row)
    table = pd.DataFrame(rows)

    # concurrency: no more points at once than GPUs; overlapping points on different GPUs
    spans = [(p.start, p.end, p) for p in pts.itertuples() if p.start is not None]
    most = max((sum(1 for s, e, _ in spans if s <= t0 < e) for t0, _, _ in spans), default=0)
    verdict(0 < most <= max(1, len(gpus)), f"{most} points ran at once at most, on {len(gpus)} GPUs")
    # on different GPUs whenever they measured at the same time (a point's own span also
    # holds its tabulation after its GPU was given back, when the next point may take it)
    measured = [(p.w0, p.w1, p) for p in pts.itertuples()]
    for i, (s1, e1, a) in enumerate(measured):
        for s2, e2, b in measured[i + 1:]:
            if s1 < e2 and s2 < e1:
                verdict(a.gpu_index != b.gpu_index, f"points {a.point_id} and {b.point_id} measured at once on GPUs "
                                                    f"{a.gpu_index} and {b.gpu_index}")
    for p in pts.itertuples():
        name = f"point {p.point_id} ({p.clocks}, gap {p.gap_s:g})"
        listed = smi[smi["index"] == p.gpu_index].uuid.dropna().unique()
        verdict(list(listed) == [p.gpu_uuid], f"{name}: GPU {p.gpu_index} is {p.gpu_uuid} in nvidia-smi's list too")
        verdict(p.cuda_visible_devices == p.gpu_uuid, f"{name}: its model process saw CUDA_VISIBLE_DEVICES="
                                                      f"{p.cuda_visible_devices}")
        dists = {g: _distance(p.nvml, smi[(smi["index"] == g) & smi.t.between(p.w0, p.w1)]) for g in gpus}
        if all(np.isnan(d) for d in dists.values()):
            fail.append(f"FAIL  {name}: no NVML telemetry to compare with nvidia-smi's log")
        else:
            nearest = min((d, g) for g, d in dists.items() if not np.isnan(d))[1]
            verdict(nearest == p.gpu_index, f"{name}: its NVML telemetry follows GPU {nearest}'s nvidia-smi log "
                                            f"(distance {', '.join(f'GPU {g}: {d:.1f}' for g, d in dists.items())})")
        m = re.match(r"gpu_mhz=(\d+)", p.clocks or "")
        if not m:
            continue
        mhz = int(m.group(1))
        locked = None if pd.isna(p.clocks_gpu) else int(p.clocks_gpu)
        verdict(locked == p.gpu_index, f"{name}: nvidia-smi -i {locked} locked it (its GPU: {p.gpu_index})")
        own = smi[(smi["index"] == p.gpu_index) & smi.t.between(p.w0, p.w1)]
        verdict(len(own) > 0 and abs(own.sm.median() - mhz) <= 15,
                f"{name}: GPU {p.gpu_index} ran at {_fmt(own.sm.median() if len(own) else None)} MHz (median) "
                f"while it measured")
        for g in gpus:
            if g == p.gpu_index:
                continue
            other = smi[(smi["index"] == g) & smi.t.between(p.w0, p.w1)]
            beside = [q for q in pts.itertuples() if q.gpu_index == g and q.w0 < p.w1 and p.w0 < q.w1]
            locked_there = any(re.match(rf"gpu_mhz={mhz}\b", q.clocks or "") for q in beside)
            held = len(other) > 0 and bool((other.sm.sub(mhz).abs() <= 15).all())
            who = ", ".join(f"{q.point_id} ({q.clocks})" for q in beside) or "no point"
            verdict(locked_there or (len(other) > 0 and not held),
                    f"{name}: meanwhile GPU {g} ({who}) ran at {_fmt(other.sm.min() if len(other) else None)}-"
                    f"{_fmt(other.sm.max() if len(other) else None)} MHz: "
                    + ("its own point's lock" if locked_there else "not held at " + str(mhz)))
    return table, ok, fail


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    table, ok, fail = check(Path(argv[0]), Path(argv[1]))
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    print(table.to_string(index=False))
    print()
    for line in ok + fail:
        print(line)
    print(f"\n{len(ok)} OK, {len(fail)} FAIL")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
