"""The energy of each runs row's measured window, and where it came from.

>>> from trt_ray_bench import results
>>> r = results.load("results/gpu_alone_together")
>>> r.runs[["model", "phase", "energy_j", "energy_mj_per_inf", "inf_per_j", "energy_source"]]

Sources, best first, per run (the first that has readings; never two mixed):

1. ``nvml_counter``: NVML's total-energy counter (``energy_mj:gpu``, millijoules since the
   driver loaded; Volta and newer), read by the Monitor at every poll, interpolated
   linearly to the window's two edges. No call on the timed path; its error is the
   counter's own granularity (it advances every 20 to 100 ms on recent GPUs) over the
   window's length.
2. ``nvml_power_integral``: NVML's power readings (``power_mw:gpu``) averaged over the
   window as ``window_mean`` does (an averaged reading weighs by the share of its period
   inside the window) times its length. A window shorter than the period NVML averages
   power over (1 s on Ampere and newer) has none, and says so.
3. ``tegrastats:<RAIL>``: a Jetson's module input rail (``VDD_IN``; ``POM_5V_IN`` on the
   Nano; ``VIN`` on Thor), averaged over the window (each reading inside it counts once, a
   window with none the latest before its end) times its length; on boards without one
   (AGX Xavier, AGX Orin) the sum of every rail tegrastats prints, as jetson-stats counts
   the total: ``tegrastats:sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0)``. The GPU's own rail
   (``VDD_GPU``, ``GPU``, ``POM_5V_GPU``, ``VDD_SYS_GPU``; ``VDD_GPU_SOC`` on AGX Orin,
   ``VDD_CPU_GPU_CV`` on Xavier NX / Orin NX / Orin Nano, which share it) gives
   ``energy_gpu_j``.

NVML measures the GPU board only: on a desktop ``energy_j`` is the GPU's (and
``energy_gpu_j`` the same), and a model that ran on the CPU gets none from it. A together
window's energy is the whole window's, every model's together: each of its rows carries
it, and its per-inference figures divide it by the inferences of all the models in the
window (``energy_why`` says so). ``idle_power_w`` is the same source's mean power over the
idle measurement before the run (``telemetry.idle_s``), and ``energy_above_idle_j`` the
window's energy less that power over the window.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from ._keys import row_windows
from .explain import Series, series_of, window_mean

#: the columns ``window_energy`` gives, in order
COLUMNS = ("energy_j", "energy_gpu_j", "energy_mj_per_inf", "inf_per_j", "avg_power_w", "energy_source",
           "energy_gpu_source", "energy_why", "idle_power_w", "energy_above_idle_j")

#: a Jetson's module input rail, as tegrastats names it, by board generation: TX1, TX2,
#: Xavier NX, Orin NX and Orin Nano ``VDD_IN``, the Nano ``POM_5V_IN``, Thor ``VIN``
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")
#: the rail that holds the GPU, best first (as ``explain.QUANTITIES["power_w"]``)
GPU_RAILS = ("VDD_GPU", "GPU", "POM_5V_GPU", "VDD_SYS_GPU", "VDD_GPU_SOC", "VDD_CPU_GPU_CV")

_NONE = ("no power reading on this node: NVML gives a GPU's energy and tegrastats a Jetson's; a machine "
         "without either (a CPU run on a desktop) has none")


class _Source:
    """One run's energy source: a counter (``t``, ``mj``) or power ``Series`` (W)."""

    def __init__(self, name: str, power: Optional[Series] = None, counter: Optional[Tuple[np.ndarray,
                                                                                            np.ndarray]] = None,
                 gpu_only: bool = False):
        self.name, self.power, self.counter, self.gpu_only = name, power, counter, gpu_only

    def energy(self, a, b) -> Tuple[float, str]:
        """Joules over ``[a, b]`` ns and, where none, why."""
        if a is None or b is None or pd.isna(a) or pd.isna(b) or int(b) <= int(a):
            return np.nan, "the row has no measured window"
        a, b = int(a), int(b)
        if self.counter is not None:
            t, mj = self.counter
            if a < t[0] or b > t[-1]:
                return np.nan, "the energy counter was not read on both sides of the window"
            return float(np.interp(b, t, mj) - np.interp(a, t, mj)) / 1e3, ""
        mean, coarse = window_mean(self.power, a, b)
        if coarse > 0:
            return np.nan, (f"{self.name.split(':')[0].replace('nvml_power_integral', 'NVML')} averages power over "
                            f"{coarse:.3g} s but this window lasted {(b - a) / 1e9:.2g} s, and there is no energy "
                            f"counter: lengthen the phase to at least {coarse:.3g} s")
        if not np.isfinite(mean):
            return np.nan, "no power reading covers this window"
        return mean * (b - a) / 1e9, ""


def _power(tel: pd.DataFrame, scale: float = 1e-3) -> Dict[object, Series]:
    """Per run, a power ``Series`` in W of the readings ``tel`` (mW)."""
    if not len(tel):
        return {}
    avg = pd.to_numeric(tel["avg_s"], errors="coerce").fillna(0.0) if "avg_s" in tel.columns else 0.0
    part = pd.DataFrame({"run_id": tel["run_id"].to_numpy(), "t_ns": tel["t_ns"].to_numpy(np.int64),
                         "value": tel["value"].to_numpy(np.float64) * scale, "avg_s": avg,
                         "source": tel["source"].to_numpy()})
    return series_of(part.sort_values(["run_id", "t_ns"], kind="stable"))


def _rails(teg: pd.DataFrame) -> Dict[object, Tuple[str, Optional[str], pd.DataFrame, pd.DataFrame]]:
    """Per run of tegrastats readings: (total's name, GPU rail or None, total readings, GPU readings)."""
    cur = teg[teg["metric"].str.match(r"power_mw:[A-Z][A-Z0-9_]*$")]
    out = {}
    for rid, g in cur.groupby("run_id", sort=False):
        rails = list(dict.fromkeys(g["metric"].str[len("power_mw:"):]))
        total = next((r for r in TOTAL_RAILS if r in rails), None)
        gpu = next((r for r in GPU_RAILS if r in rails), None)
        if total is not None:
            tot = g[g["metric"] == f"power_mw:{total}"]
            name = total
        else:  # no module input: every rail of each line, summed (NC and the like left out)
            keep = [r for r in rails if r != "NC"]
            part = g[g["metric"].isin([f"power_mw:{r}" for r in keep])]
            tot = part.groupby(["run_id", "t_ns"], as_index=False).agg(value=("value", "sum"),
                                                                         avg_s=("avg_s", "max"),
                                                                         source=("source", "first"))
            name = f"sum({'+'.join(keep)})"
        out[rid] = (name, gpu, tot, g[g["metric"] == f"power_mw:{gpu}"] if gpu else g.iloc[0:0])
    return out


def _sources(telemetry: Optional[pd.DataFrame]) -> Dict[object, Tuple[_Source, Optional[_Source]]]:
    """Per run: (the total's source, the GPU's source or None)."""
    out: Dict[object, Tuple[_Source, Optional[_Source]]] = {}
    if telemetry is None or not len(telemetry) or "metric" not in telemetry.columns:
        return out
    tel = telemetry if "avg_s" in telemetry.columns else telemetry.assign(avg_s=0.0)
    nv = tel[tel["source"] == "nvml"]
    for rid, g in nv[nv["metric"] == "energy_mj:gpu"].groupby("run_id", sort=False):
        g = g.sort_values("t_ns", kind="stable")
        t, v = g["t_ns"].to_numpy(np.int64), g["value"].to_numpy(np.float64)
        if len(t) >= 2 and v[-1] >= v[0]:  # a counter that went back: the driver reloaded, not energy
            src = _Source("nvml_counter", counter=(t, v), gpu_only=True)
            out[rid] = (src, src)
    for rid, s in _power(nv[nv["metric"] == "power_mw:gpu"]).items():
        if rid not in out:
            src = _Source("nvml_power_integral", power=s, gpu_only=True)
            out[rid] = (src, src)
    teg = tel[tel["source"] == "tegrastats"]
    if len(teg):
        for rid, (name, gpu, tot, gpu_tel) in _rails(teg).items():
            if rid in out:
                continue
            total = _power(tot).get(rid)
            if total is None:
                continue
            g = _power(gpu_tel).get(rid) if gpu else None
            out[rid] = (_Source(f"tegrastats:{name}", power=total),
                        _Source(f"tegrastats:{gpu}", power=g) if g is not None else None)
    return out


def _inferences(runs: pd.DataFrame, win: pd.DataFrame) -> Tuple[np.ndarray, np.ndarray]:
    """Per row: the inferences its window's energy is divided by (together: every model's in
    the window), and how many models shared the window."""
    n = pd.to_numeric(runs["n"], errors="coerce").fillna(0).to_numpy(np.float64) if "n" in runs.columns \
        else np.zeros(len(runs))
    ok = (runs["status"] == "ok").to_numpy() if "status" in runs.columns else np.ones(len(runs), bool)
    phase = runs["phase"].astype(str).to_numpy() if "phase" in runs.columns else np.full(len(runs), "alone")
    rid = runs["run_id"].astype(str).to_numpy() if "run_id" in runs.columns else np.full(len(runs), "")
    key = pd.Series([f"{r}\x1f{a}\x1f{b}" if p == "together" else f"row{j}" for j, (r, p, a, b) in
                     enumerate(zip(rid, phase, win["start_ns"], win["end_ns"]))])
    n_ok = pd.Series(np.where(ok, n, 0.0))
    return n_ok.groupby(key).transform("sum").to_numpy(), pd.Series(ok.astype(int)).groupby(key).transform(
        "sum").to_numpy()


def window_energy(runs: pd.DataFrame, telemetry: Optional[pd.DataFrame],
                  idle: Optional[Tuple[int, int]] = None) -> pd.DataFrame:
    """Per runs row (same index), ``COLUMNS`` (module doc): the energy of its measured
    window (``window_start_ns..window_end_ns``, else its inferences' span) from the
    telemetry of its run, per inference and per joule, its mean power and source; where
    there is none, ``energy_why`` says why. ``idle``: the idle window (ns, node clock) of a
    run whose every row is in ``runs`` (``telemetry.idle_s``), for ``idle_power_w``."""
    out = pd.DataFrame(index=runs.index, columns=list(COLUMNS), dtype=object)
    for c in ("energy_j", "energy_gpu_j", "energy_mj_per_inf", "inf_per_j", "avg_power_w", "idle_power_w",
              "energy_above_idle_j"):
        out[c] = np.nan
    if not len(runs):
        return out
    win = row_windows(runs)
    starts, ends = win["start_ns"].to_numpy(), win["end_ns"].to_numpy()
    sources = _sources(telemetry)
    n_all, n_models = _inferences(runs, win.reset_index(drop=True))
    ok = (runs["status"] == "ok").to_numpy() if "status" in runs.columns else np.ones(len(runs), bool)
    rids = runs["run_id"].to_numpy() if "run_id" in runs.columns else np.full(len(runs), None)
    dev = runs["device"].astype(str).to_numpy() if "device" in runs.columns else np.full(len(runs), "")
    phase = runs["phase"].astype(str).to_numpy() if "phase" in runs.columns else np.full(len(runs), "alone")
    # a together window whose models all ran on the CPU: NVML's GPU energy is not theirs
    gpu_in_window = pd.Series(dev != "cpu").groupby(pd.Series([f"{r}\x1f{a}\x1f{b}" if p == "together" else j
                                                               for j, (r, p, a, b) in
                                                               enumerate(zip(rids, phase, starts, ends))])
                                                     ).transform("any").to_numpy()
    idle_w: Dict[object, tuple] = {}  # per run: (idle power W, why none)
    rows = {c: [] for c in COLUMNS}
    for j in range(len(runs)):
        vals = dict.fromkeys(COLUMNS, np.nan)
        vals.update(energy_source=None, energy_gpu_source=None, energy_why=None)
        if ok[j]:
            total, gpu = sources.get(rids[j], (None, None))
            a, b = starts[j], ends[j]
            if total is None:
                vals["energy_why"] = _NONE
            elif total.gpu_only and not gpu_in_window[j]:
                vals["energy_why"] = ("the model ran on the CPU and this node's power reading is NVML's, of the GPU "
                                      "alone: it is not this model's energy")
            else:
                e, why = total.energy(a, b)
                if np.isfinite(e):
                    secs = (int(b) - int(a)) / 1e9
                    vals.update(energy_j=e, avg_power_w=e / secs, energy_source=total.name)
                    if n_all[j] > 0:
                        vals.update(energy_mj_per_inf=e * 1e3 / n_all[j], inf_per_j=n_all[j] / e if e > 0 else np.nan)
                    if phase[j] == "together" and n_models[j] > 1:
                        vals["energy_why"] = (f"together: the energy of the whole window, the {int(n_models[j])} "
                                              f"models' together; per inference over all their {int(n_all[j])} "
                                              f"inferences in it")
                    if gpu is not None:
                        eg, _ = gpu.energy(a, b)
                        if np.isfinite(eg):
                            vals.update(energy_gpu_j=eg, energy_gpu_source=gpu.name)
                    if idle is not None:
                        if rids[j] not in idle_w:
                            ie, iwhy = total.energy(*idle)
                            idle_w[rids[j]] = ((ie / ((int(idle[1]) - int(idle[0])) / 1e9), None) if np.isfinite(ie)
                                               else (np.nan, iwhy))
                        p0, iwhy = idle_w[rids[j]]
                        if np.isfinite(p0):
                            vals.update(idle_power_w=p0, energy_above_idle_j=e - p0 * secs)
                        else:  # the idle measurement gave no power: why, beside the window's own
                            vals["energy_why"] = "; ".join(x for x in (vals["energy_why"], f"no idle power: {iwhy}")
                                                           if x)
                else:
                    vals["energy_why"] = why
        for c in COLUMNS:
            rows[c].append(vals[c])
    for c in COLUMNS:
        out[c] = pd.Series(rows[c], index=runs.index, dtype=object if c in ("energy_source", "energy_gpu_source",
                                                                              "energy_why") else np.float64)
    return out
