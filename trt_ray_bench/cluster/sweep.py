"""Sweeps across several nodes: every point of a sweep spec is one experiment, run as a
Ray task pinned to one node that holds one of the node's ``trb_slot`` (one per GPU: a
node runs as many points at once as it has GPUs, each on a GPU of its own, which the
point's Monitor leases); the task runs the one-node path (``make_plan`` there, so
models are exported/found on the node, ``execute``, ``RunTables``) and returns the
tables (the samples as a Parquet file made phase by phase); the driver writes them under
``<output>/<sweep name>/<run_id>/`` (one results tree, on the driver, which is what
``--resume`` reads).

Every attempt is also appended to ``<output>/<sweep name>/sweep-log.jsonl`` (point id,
axis values, node, attempt, status, reason, start and end), failed attempts included."""

from __future__ import annotations

import datetime as _dt
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

import pandas as pd
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import progress
from .._atomic import write_atomic
from ..errors import UserError
from ..results import write_run
from ..results.write import SamplesBuffer
from ..spec import SweepPoint, SweepSpec, expand
from ..telemetry.foreign import driver_identity
from .node_run import RunTables, _reason, connect, execute
from .plan import make_plan

Log = Callable[[str], None]
SLOT = "trb_slot"
NODE_PREFIX = "trb_node_"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


BOARD_PREFIX = "trb_board_"


@dataclass(frozen=True)
class SweepNode:
    node_id: str
    name: str
    board: str = ""
    slots: int = 1  # points it runs at once: its GPUs (trb node start), 1 without


def sweep_nodes(sweep: SweepSpec) -> List[SweepNode]:
    """The alive nodes with a ``trb_slot`` the sweep's selector picks; UserError if none."""
    found = []
    for n in ray.nodes():
        res = n.get("Resources", {})
        if not n.get("Alive") or res.get(SLOT, 0) < 1:
            continue
        names = [k[len(NODE_PREFIX):] for k in res if k.startswith(NODE_PREFIX)]
        boards = [k[len(BOARD_PREFIX):] for k in res if k.startswith(BOARD_PREFIX)]
        found.append(SweepNode(n["NodeID"], names[0] if names else n["NodeID"][:8], boards[0] if boards else "",
                               int(res.get(SLOT, 1))))
    if not found:
        raise UserError("nodes", "no alive node offers a trb_slot resource (start each board with `trb node start`)")
    if sweep.nodes == "all":
        return sorted(found, key=lambda n: n.name)
    if isinstance(sweep.nodes, dict):
        picked = [n for n in found if n.board in sweep.nodes["board"]]
        if not picked:
            have = ", ".join(sorted({f"{n.board or '(none)'} ({n.name})" for n in found}))
            raise UserError(f"{sweep.source}: nodes.board", f"{', '.join(sweep.nodes['board'])}: no alive node of "
                            f"that kind (have {have})")
        return sorted(picked, key=lambda n: n.name)
    picked = [n for n in found if n.name in sweep.nodes]
    if not picked:
        have = ", ".join(sorted(n.name for n in found))
        raise UserError(f"{sweep.source}: nodes", f"{', '.join(sweep.nodes)}: no such alive node (have {have})")
    return sorted(picked, key=lambda n: n.name)


def _alive_ids() -> Set[str]:
    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


def done_points(root: Path) -> Set[str]:
    """Point ids with a complete run under ``root`` whose every row is ``ok``."""
    from ..results import load

    try:
        runs = load(root, samples=False, telemetry=False).runs
    except UserError:
        return set()
    runs = runs[runs["point_id"].notna()]
    ok = runs.groupby(["point_id", "run_id"])["status"].agg(lambda s: bool((s == "ok").all()))
    return {pid for (pid, _), good in ok.items() if good}


def point_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the JSON ``point`` column spread into ``axis:<field>`` columns
    (``runs[runs["axis:timing.gap_s"] == 0.05]``)."""
    vals = runs["point"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
    axes = pd.DataFrame(list(vals), index=runs.index)
    return pd.concat([runs, axes.add_prefix("axis:")], axis=1)


@ray.remote(num_cpus=0, max_retries=0)
def _prepare_kind(specs: list) -> Dict[str, bytes]:
    """On one node of a board kind, before any of the sweep's points: export every
    point's models and build their TensorRT engines (once, here), and return the files
    (path under the cache folder -> bytes) for the kind's other nodes to install."""
    from ..engines import has_build_step, made_files, prepare_model, resolve_model
    from ..models import cache_dir

    root = cache_dir().resolve()
    files: Dict[str, bytes] = {}
    seen = set()
    for spec in specs:
        for i, ms in enumerate(spec.models):
            key = json.dumps(ms.model_dump(mode="json"), sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            m = resolve_model(ms, f"models[{i}]", export=True)
            paths = [m.onnx_path]
            if has_build_step(m):
                paths += made_files(prepare_model(m, f"models[{i}]"))
            for p in paths:
                p = Path(p).resolve() if p else None
                if p is not None and p.is_file() and root in p.parents:
                    files[str(p.relative_to(root))] = p.read_bytes()
    return files


def _install(files: Optional[Dict[str, bytes]]) -> List[str]:
    """Put a kind's exported models and engines into this node's cache (atomically),
    where they are missing or differ; returns what was written."""
    from ..models import cache_dir

    root, done = cache_dir(), []
    for rel, data in (files or {}).items():
        dest = root / rel
        if dest.is_file() and dest.stat().st_size == len(data) and dest.read_bytes() == data:
            continue
        write_atomic(dest, data)  # two points starting at once on one node install the same files
        done.append(rel)
    return done


@ray.remote(num_cpus=0, max_retries=0)
def _run_point(spec, meta: dict, files: Optional[Dict[str, bytes]] = None, driver: Optional[dict] = None) -> dict:
    """On the node this task was pinned to: install the kind's prepared files, then plan,
    run and tabulate one point. ``driver``: the sweep's driver (its processes are not
    foreign load where it runs on this node)."""
    started = _now()
    lines: List[str] = []
    installed = _install(files)
    plan = make_plan(spec, export=True)
    samples = SamplesBuffer()  # each phase's samples into a Parquet file in memory as it ends, its raw arrays dropped
    built = RunTables(plan, sink=samples.write_samples)
    result = execute(plan, lines.append, driver=driver, on_phase=built.add)
    tables = built.finish(result)
    ended = _now()
    runs = tables["runs"]
    for k, v in {**meta, "point_started_at": started, "point_ended_at": ended}.items():
        runs[k] = v
    return {"tables": tables, "samples_parquet": samples.getvalue(), "spec_yaml": plan.spec_yaml,
            "run_dir": str(plan.run_dir), "run_id": plan.run_id,
            "log": lines, "installed": installed, "started_at": started.isoformat(), "ended_at": ended.isoformat(),
            "telemetry_errors": result["telemetry"].get("errors", []), "gpu": result.get("gpu"),
            "failed": result.get("monitor_died")}


@dataclass
class _Job:
    point: SweepPoint
    attempt: int = 1
    tried: Set[str] = field(default_factory=set)  # node ids this point failed on


def _append(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")


def describe(sweep: SweepSpec, points: List[SweepPoint], skip: Set[str]) -> str:
    lines = [f"sweep       {sweep.name}  ({len(points)} points, {len(points) - len(skip & {p.point_id for p in points})} "
             f"to run; retries {sweep.retries}; nodes {sweep.node_kind})",
             f"axes        {', '.join(f'{k} {json.dumps(v)}' for k, v in sweep.axes.items()) or '(none)'}",
             f"output      {Path(points[0].spec.output) / sweep.name}"]
    for p in points:
        mark = "done" if p.point_id in skip else "    "
        lines.append(f"  {p.point_id}  {mark}  {p.label()}")
    return "\n".join(lines)


def prepare(sweep: SweepSpec, resume: bool = False):
    """Expand and validate every point (no export, no Ray); what resume skips."""
    points = expand(sweep)
    for p in points:
        try:
            make_plan(p.spec, export=False)
        except UserError as exc:
            raise UserError(f"{sweep.source}: point {p.label()}: {exc.where}", exc.message) from None
    root = Path(points[0].spec.output) / sweep.name
    skip = done_points(root) if resume and root.exists() else set()
    return points, root, skip


def _prepare_kinds(picked: List[SweepNode], specs: list, log: progress.Say) -> Dict[str, object]:
    """Engines built once per board kind: for every kind with more than one node, or one
    node running several points at once (several GPUs: its points would otherwise export
    and build the same files side by side), one of its nodes exports the models and builds
    the engines of every point to run; the refs of those files go to each point on the
    kind's nodes. A kind whose preparation fails falls back to each node preparing its own
    (the points then fail with the reason)."""
    from .node_run import _node_gpus

    kinds: Dict[str, List[SweepNode]] = {}
    for n in picked:
        if n.board:
            kinds.setdefault(n.board, []).append(n)
    refs = {}
    for kind, members in kinds.items():
        if (len(members) < 2 and members[0].slots < 2) or not specs:
            continue
        first = members[0]
        opts = {"resources": {SLOT: 1},
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=first.node_id, soft=False)}
        if _node_gpus(first.node_id) > 0:
            opts["num_gpus"] = 0.01
        refs[kind] = (first, _prepare_kind.options(**opts).remote(specs), _now())
    out: Dict[str, object] = {}
    for kind, (first, ref, t0) in refs.items():
        try:
            with progress.spinner(f"prepare     board {kind} on {first.name}: exports and engines for every point",
                                  log=log):
                files = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a build error, a node lost: each node tries itself
            cause = getattr(exc, "cause", None)
            log.warning(f"prepare     board {kind} on {first.name} failed ({cause if isinstance(cause, UserError) else _reason(exc)});"
                " each node prepares its own")
            continue
        out[kind] = ref
        engines = sum(1 for f in files if f.endswith(".engine"))
        onnx = sum(1 for f in files if f.endswith(".onnx"))
        log.info(f"prepare     board {kind} on {first.name}: {onnx} model(s), {engines} engine(s) in "
            f"{(_now() - t0).total_seconds():.1f} s, shared with {len(kinds[kind]) - 1} other node(s)"
            + (f" and its {first.slots} GPUs" if first.slots > 1 else ""))
    return out


def run_sweep(sweep: SweepSpec, address: Optional[str] = None, resume: bool = False, log: Optional[Log] = None,
              poll_s: float = 0.5, planned: Optional[tuple] = None) -> dict:
    """Run every (not yet finished, with ``resume``) point; returns the attempt records.
    ``planned``: what ``prepare(sweep, resume)`` returned, where the caller already has it.
    ``log``: where the progress lines go (default: the ``trt_ray_bench`` logger); a live
    line (points done, running, failed, ETA) where stderr is a terminal."""
    log = progress.say(log)
    points, root, skip = planned or prepare(sweep, resume)
    todo = deque(_Job(p) for p in points if p.point_id not in skip)
    if skip:
        log.info(f"resume      {len(points) - len(todo)} of {len(points)} points already done")
    started = connect(address)
    records: List[dict] = []

    def keep(rec: dict) -> None:  # every attempt: returned, and logged as it ends
        records.append(rec)
        try:
            _append(root / "sweep-log.jsonl", rec)
        except OSError as exc:  # the driver's disk: nothing more can be recorded, so the sweep stops here
            raise UserError("output", f"the sweep log {root / 'sweep-log.jsonl'} cannot be written "
                                      f"({exc.strerror}); {len(records)} attempt(s) ended, the last not logged: free "
                                      "space, then trb sweep --resume runs what is left") from None
    try:
        picked = sweep_nodes(sweep)
        nodes = {n.node_id: n.name for n in picked}
        slots = {n.node_id: n.slots for n in picked}
        log.info(f"nodes       {', '.join(f'{n.name} ({n.board})' if n.board else n.name for n in picked)}"
            + "".join(f"; {n.name}: {n.slots} GPUs, {n.slots} points at once" for n in picked if n.slots > 1))
        prepared = _prepare_kinds(picked, [j.point.spec for j in todo], log)
        board = {n.node_id: n.board for n in picked}
        driver = driver_identity()
        running: Dict[object, tuple] = {}  # ref -> (job, node_id, submitted)
        n_done = n_failed = 0
        total = len(todo)
        t_run = _now()
        line = progress.Line(f"sweep {sweep.name}", total=total, unit="point",
                             bar_format="{desc}  {n_fmt}/{total_fmt} points |{bar:10}| {elapsed}")
        try:
            while todo or running:
                alive = _alive_ids() & set(nodes)
                busy: Dict[str, int] = {}  # node id -> points running there
                for _, nid, _ in running.values():
                    busy[nid] = busy.get(nid, 0) + 1
                for job in list(todo):
                    # nodes with a free slot, the least loaded first (points spread over nodes)
                    free = sorted((nid for nid in nodes if nid in alive and busy.get(nid, 0) < slots[nid]),
                                  key=lambda nid: busy.get(nid, 0) / slots[nid])
                    cands = [nid for nid in free if nid not in job.tried]
                    if not cands and not [nid for nid in alive if nid not in job.tried]:
                        # every alive node already failed this point: the same node is better than none
                        cands = free
                    if not cands:
                        continue
                    nid = cands[0]
                    todo.remove(job)
                    busy[nid] = busy.get(nid, 0) + 1
                    meta = {"sweep": sweep.name, "point_id": job.point.point_id, "point": job.point.values_json,
                            "node_name": nodes[nid], "node_board": board[nid], "attempt": job.attempt}
                    ref = _run_point.options(
                        resources={SLOT: 1},
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=nid, soft=False),
                    ).remote(job.point.spec, meta, prepared.get(board[nid]), driver)
                    running[ref] = (job, nid, _now())
                    log.info(f"start       {job.point.point_id} on {nodes[nid]}  {job.point.label()}"
                        + (f"  (attempt {job.attempt})" if job.attempt > 1 else ""))
                if not running:
                    if not alive:
                        for job in todo:
                            rec = _record(sweep, job, None, "failed", "no eligible node alive", None, None, None)
                            keep(rec)
                            n_failed += 1
                        todo.clear()
                        break
                    continue
                ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
                for ref in ready:
                    job, nid, t_sub = running.pop(ref)
                    try:
                        out = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - task error, node died, ...
                        cause = getattr(exc, "cause", None)
                        reason = str(cause) if isinstance(cause, UserError) else _reason(exc)
                        status, run_dir, t0, t1 = "failed", None, t_sub.isoformat(), _now().isoformat()
                        installed, gpu = [], None
                        if not isinstance(exc, ray.exceptions.RayTaskError) and nid not in _alive_ids():
                            reason = f"node {nodes[nid]} died: {reason}"
                    else:
                        unwritten = None
                        try:
                            run_dir = write_run(Path(out["run_dir"]), out["tables"], out["spec_yaml"],
                                                out.get("samples_parquet"))
                        except OSError as exc:  # the driver's disk (full, read-only): this point is lost, not the sweep
                            unwritten = (f"its results could not be written to {out['run_dir']} ({exc.strerror}); "
                                         "nothing of it was kept")
                            run_dir = None
                        bad = out["tables"]["runs"]
                        bad = bad[bad["status"] != "ok"]
                        status = "ok" if bad.empty and not out.get("failed") and not unwritten else "failed"
                        reason = unwritten or (out.get("failed") if bad.empty else
                                               f"{bad.iloc[0]['model']}: {bad.iloc[0]['error']}")
                        t0, t1 = out["started_at"], out["ended_at"]
                        installed = out["installed"]
                        gpu = out.get("gpu")
                    rec = _record(sweep, job, nodes[nid], status, reason, t0, t1, run_dir, installed, gpu)
                    keep(rec)
                    if status == "ok":
                        n_done += 1
                    elif job.attempt <= sweep.retries:
                        todo.append(_Job(job.point, job.attempt + 1, job.tried | {nid}))
                    else:
                        n_failed += 1
                    eta = _eta(t_run, n_done + n_failed, total - n_done - n_failed)
                    (log.info if status == "ok" else log.warning)(
                        f"[{n_done}/{total} done, {len(running)} running, {n_failed} failed{eta and ', eta ' + eta}]  "
                        f"{job.point.point_id} {status} on {nodes[nid]}" + (f" GPU {gpu['index']}" if gpu else "")
                        + (f": {reason}" if reason else "")
                        + (f"  -> {run_dir}" if run_dir else ""))
                line.update(n_done + n_failed, f"running {len(running)}, failed {n_failed}"
                            + (f", eta {_eta(t_run, n_done + n_failed, total - n_done - n_failed)}"
                               if n_done + n_failed else ""))
        except UserError:  # the sweep log cannot be written (keep): the running points stop and restore first
            _stop(running)
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP
            from .. import interrupt

            interrupt.hold_further()
            stop = interrupt.why(exc)
            why = stop.name if isinstance(stop, interrupt.Stopped) else "Ctrl-C"
            log.warning(f"interrupted ({why}): stopping {len(running)} running point(s)")
            _stop(running)
            for ref, (job, nid, t_sub) in running.items():
                rec = _record(sweep, job, nodes[nid], "interrupted", why, t_sub.isoformat(), _now().isoformat(), None)
                keep(rec)
            interrupt.release()
            raise
        finally:
            line.close()
    finally:
        if started:
            ray.shutdown()
    return {"root": root, "records": records, "points": points, "skipped": skip}


def _stop(running: Dict[object, tuple]) -> None:
    """Cancel the running points (each restores its node's machine as it stops) and wait
    up to a minute for them."""
    for ref in running:
        ray.cancel(ref)
    ray.wait(list(running), num_returns=len(running), timeout=60)


def _eta(t0: _dt.datetime, finished: int, left: int) -> str:
    """The time the ``left`` points will take at the pace of the ``finished`` ones since
    ``t0`` (points run in parallel: the pace is the sweep's, not one point's); "" before
    any finished."""
    if finished <= 0:
        return ""
    if left <= 0:
        return "0 s"
    return progress.duration((_now() - t0).total_seconds() / finished * left)


def _record(sweep, job: _Job, node, status, reason, t0, t1, run_dir, installed=None, gpu=None) -> dict:
    """One attempt, as the sweep log keeps it; ``installed``: the files (models, engines)
    this point's node got from its board kind's preparation instead of making them;
    ``gpu_index`` / ``gpu_uuid``: the node's GPU it ran on (null without one)."""
    return {"sweep": sweep.name, "point_id": job.point.point_id, "point": job.point.values, "attempt": job.attempt,
            "node": node, "status": status, "reason": reason, "started_at": t0, "ended_at": t1,
            "run_dir": str(run_dir) if run_dir else None, "installed": list(installed or []),
            "gpu_index": (gpu or {}).get("index"), "gpu_uuid": (gpu or {}).get("uuid")}
