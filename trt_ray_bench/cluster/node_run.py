"""Running one experiment on one node: the driver-side orchestration of the actors."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import socket
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import pandas as pd
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..errors import UserError
from ..results import write_run
from ..timing import LoopPlan, common_window, stability_warnings, summarize
from .actors import NAMESPACE, Coordinator, ModelActor, Monitor
from .plan import Phase, Plan

Log = Callable[[str], None]


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """Refuse an address nobody answers at, in seconds (``ray.init`` retries for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError("--address", f"{address!r}: expected HOST:PORT (e.g. 192.168.1.10:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError("--address", f"{address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def connect(address: Optional[str]) -> bool:
    """Join the cluster at ``address`` or start a local Ray; True if we started it."""
    if ray.is_initialized():
        return False
    kw = dict(namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
    if address:
        check_address(address)
        try:
            ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError("--address", f"{address}: no Ray cluster answers there ({str(exc).splitlines()[0]})") from None
        return True
    # Actors ask for no CPU: on a 2-core board five models must still fit at once.
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **kw)
    return True


def _loop_plan(plan: Plan) -> LoopPlan:
    t = plan.spec.timing
    return LoopPlan(iterations=t.iterations, duration_s=t.duration_s, warmup=t.warmup,
                    warmup_s=t.warmup_s, gap_s=t.gap_s, sync=t.sync)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ray.exceptions.RayActorError):
        return "model actor died (killed or crashed) during the run"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = str(cause).strip().splitlines()
        return f"{cause.__class__.__name__}: {text[-1] if text else ''}"[:500]
    return f"{exc.__class__.__name__}: {exc}"[:500]


def execute(plan: Plan, log: Log = print) -> dict:
    """Run every phase of ``plan`` on this node's actors; return the raw outcome."""
    node_id = ray.get_runtime_context().get_node_id()
    place = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    spec = plan.spec
    monitor = Monitor.options(scheduling_strategy=place).remote(spec.telemetry.interval_s, spec.telemetry.host)
    provenance = ray.get(monitor.provenance.remote())
    ray.get(monitor.start.remote())
    started_at = _dt.datetime.now(_dt.timezone.utc)
    input_spec = spec.input.model_dump()
    actors: Dict[str, object] = {}
    failed: Dict[str, str] = {}
    info: Dict[str, dict] = {}
    outcomes: List[dict] = []
    try:
        for m in plan.models:
            actors[m.name] = ModelActor.options(
                scheduling_strategy=place, name=f"{plan.run_id}/{m.name}"
            ).remote(m, input_spec)
        loads = {name: a.load.remote() for name, a in actors.items()}
        for name, ref in loads.items():
            try:
                info[name] = ray.get(ref)
                log(f"loaded   {name}  ({info[name]['device']}, {info[name]['load_s']:.1f} s)")
            except Exception as exc:  # noqa: BLE001 - recorded, the others go on
                failed[name] = f"load: {_reason(exc)}"
                log(f"FAILED   {name}: {failed[name]}")
        lp = _loop_plan(plan)
        for ph in plan.phases:
            names = [n for n in ph.models if n not in failed]
            skipped = [n for n in ph.models if n in failed]
            for n in skipped:
                outcomes.append({"phase": ph, "model": n, "status": "failed", "error": failed[n]})
            if not names:
                continue
            log(f"repeat {ph.repeat}  {ph.phase:<8} {', '.join(names)}")
            outcomes.extend(_run_phase(ph, names, actors, lp, spec, failed, plan.run_id))
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
        for ph in plan.phases:
            for n in ph.models:
                if not any(o["phase"] == ph and o["model"] == n for o in outcomes):
                    outcomes.append({"phase": ph, "model": n, "status": "interrupted", "error": "Ctrl-C"})
    finally:
        try:
            telemetry = ray.get(monitor.stop.remote(), timeout=30)
        except Exception as exc:  # noqa: BLE001
            telemetry = {"rows": {}, "errors": [f"monitor: {_reason(exc)}"]}
        for a in list(actors.values()) + [monitor]:
            ray.kill(a)
    return {"outcomes": outcomes, "info": info, "provenance": provenance, "telemetry": telemetry,
            "started_at": started_at}


def _fail(name: str, exc: BaseException, failed: Dict[str, str]) -> str:
    """The reason of a failed phase; a dead actor is also left out of later phases."""
    reason = _reason(exc)
    if isinstance(exc, ray.exceptions.RayActorError):
        failed[name] = reason
    return reason


def _run_phase(ph: Phase, names: List[str], actors, lp: LoopPlan, spec, failed: Dict[str, str],
               run_id: str) -> List[dict]:
    t = spec.timing
    if ph.phase == "alone":
        name = names[0]
        try:
            raw = ray.get(actors[name].run_phase.remote(lp))
            return [{"phase": ph, "model": name, "status": "ok", "raw": raw}]
        except Exception as exc:  # noqa: BLE001
            return [{"phase": ph, "model": name, "status": "failed", "error": _fail(name, exc, failed)}]
    coord = Coordinator.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
        name=f"{run_id}/coordinator",
    ).remote(names, t.start_lead_s, t.barrier_timeout_s)
    ray.get(coord.set_actors.remote({n: actors[n] for n in names}))
    fill = t.fill and t.iterations is not None
    if len(names) >= (os.cpu_count() or 1):  # more waiters than cores: sleep, do not spin
        lp = dataclasses.replace(lp, spin_s=0.0)
    refs = {actors[n].run_phase.remote(lp, coord, fill, t.fill_timeout_s): n for n in names}
    out = []
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        name = refs[done[0]]
        try:
            raw = ray.get(done[0])
            out.append({"phase": ph, "model": name, "status": "ok", "raw": raw})
        except Exception as exc:  # noqa: BLE001 - a dead model must not hang the others
            out.append({"phase": ph, "model": name, "status": "failed", "error": _fail(name, exc, failed)})
            coord.withdraw.remote(name)
    ray.kill(coord)
    return out


def build_tables(plan: Plan, result: dict) -> Dict[str, pd.DataFrame]:
    """Samples, runs (statistics over the right window) and telemetry of one run."""
    spec, t = plan.spec, plan.spec.timing
    by_name = {m.name: m for m in plan.models}
    sample_frames, run_rows = [], []
    # Together phases: the window in which every successful model was running.
    windows, skews = {}, {}
    groups: Dict[tuple, List[dict]] = {}
    for o in result["outcomes"]:
        groups.setdefault((o["phase"].repeat, o["phase"].phase, o["phase"].models), []).append(o)
    for key, os_ in groups.items():
        ok = [o for o in os_ if o["status"] == "ok"]
        measured = []
        for o in ok:
            w = ~o["raw"]["warmup"]
            measured.append((o["raw"]["t_start_ns"][w], o["raw"]["t_end_ns"][w]))
        if key[1] == "together":
            windows[key] = common_window(measured)
            firsts = [s[0] for s, _ in measured if len(s)]
            skews[key] = (max(firsts) - min(firsts)) / 1e3 if len(firsts) > 1 else float("nan")
        else:
            windows[key] = (int(measured[0][0][0]), int(measured[0][1][-1])) if ok and len(measured[0][0]) else None
            skews[key] = float("nan")
    prov = dict(result["provenance"])
    for o in result["outcomes"]:
        ph: Phase = o["phase"]
        key = (ph.repeat, ph.phase, ph.models)
        m = by_name[o["model"]]
        info = result["info"].get(m.name, {})
        row = {
            "run_id": plan.run_id, "experiment": spec.name, "model": m.name, "phase": ph.phase, "repeat": ph.repeat,
            "status": o["status"], "error": o.get("error"), "task": m.task, "backend": m.backend,
            "device": info.get("device"), "providers": info.get("providers"), "source": m.source,
            "onnx_path": m.onnx_path, "onnx_sha256": m.sha256, "weights": m.weights,
            "imgsz_h": m.hw[0], "imgsz_w": m.hw[1], "batch": m.batch, "input_kind": spec.input.kind,
            "n_inputs": info.get("n_inputs"), "sync": t.sync, "gap_s": t.gap_s, "iterations": t.iterations,
            "duration_s": t.duration_s, "n_models": len(ph.models), "start_skew_us": skews.get(key),
            "started_at": result["started_at"], "spec_sha256": plan.spec_sha256, **prov,
        }
        warnings: List[str] = []
        if o["status"] == "ok":
            raw = o["raw"]
            win = windows.get(key)
            ts, te = raw["t_start_ns"], raw["t_end_ns"]
            host_ms = (te - ts) / 1e6
            warm = raw["warmup"]
            inwin = (~warm) & ((ts >= win[0]) & (te <= win[1]) if win else False)
            gpu = raw.get("gpu_ms")
            frame = pd.DataFrame({
                "run_id": plan.run_id, "model": m.name, "phase": ph.phase, "repeat": ph.repeat,
                "iteration": np.arange(len(ts)), "warmup": warm, "in_window": inwin,
                "t_start_ns": ts, "t_end_ns": te, "host_ms": host_ms, "enqueue_ms": raw["enqueue_ns"] / 1e6,
                "gpu_ms": gpu if gpu is not None else np.full(len(ts), np.nan),
            })
            sample_frames.append(frame)
            sel = host_ms[inwin]
            row.update(summarize(sel, m.batch).as_dict())
            if gpu is not None:
                row.update(summarize(gpu[inwin], m.batch).as_dict("gpu_"))
            row["enqueue_mean_ms"] = float(np.mean(raw["enqueue_ns"][inwin]) / 1e6) if inwin.any() else np.nan
            row["timer"] = "cuda_event+host" if gpu is not None else "host"
            row["warmup_n"] = int(warm.sum())
            row["n_total"] = int((~warm).sum())
            first = ts[~warm][0] if (~warm).any() else None
            row["start_instant_ns"] = int(raw["instant_ns"])
            row["start_late_us"] = (first - raw["instant_ns"]) / 1e3 if first is not None else np.nan
            if win:
                row.update(window_start_ns=int(win[0]), window_end_ns=int(win[1]), window_s=(win[1] - win[0]) / 1e9)
            warnings.extend(stability_warnings(sel, "latency"))
            if ph.phase == "together" and t.iterations and row["n"] < t.iterations:
                warnings.append(f"together window holds {row['n']} of the {t.iterations} requested inferences")
        row["warnings"] = warnings
        run_rows.append(row)
    tel = result["telemetry"].get("rows") or {}
    tel_frame = pd.DataFrame(tel) if tel else pd.DataFrame(columns=["t_ns", "source", "metric", "value", "unit"])
    tel_frame.insert(0, "run_id", plan.run_id)
    samples = pd.concat(sample_frames, ignore_index=True) if sample_frames else pd.DataFrame()
    return {"runs": pd.DataFrame(run_rows), "samples": samples, "telemetry": tel_frame}


def run_plan(plan: Plan, log: Log = print) -> dict:
    """Connect (or start) Ray, execute, write the run atomically; returns tables and path."""
    started = connect(plan.address)
    try:
        t0 = time.perf_counter()
        result = execute(plan, log)
        tables = build_tables(plan, result)
        path = write_run(plan.run_dir, tables, plan.spec_yaml)
        log(f"wrote    {path}  ({time.perf_counter() - t0:.1f} s)")
        for e in result["telemetry"].get("errors", []):
            log(f"warning  telemetry: {e}")
        return {"run_dir": path, "tables": tables}
    finally:
        if started:
            ray.shutdown()
