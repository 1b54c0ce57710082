"""Running one experiment on one node: the driver-side orchestration of the actors."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import interrupt, progress
from ..control.gpus import ORDER, experiment_env
from ..control.nvpmodel import mode_text
from ..errors import UserError
from ..results import RunWriter
from ..results.aggregates import per_second
from ..results.diagnose import diagnose, series_diagnostics
from ..results.schema import AGGREGATES, SAMPLES
from ..results.write import sample_tables
from ..results.energy import window_energy
from ..telemetry.foreign import driver_identity
from ..telemetry.thermal import oc_delta
from ..timing import LoopPlan, common_window, open_loop_stats, summarize
from ..engines import has_build_step, kept_out_text, needs_gpu, timing_cache_text
from .actors import NAMESPACE, Coordinator, ModelActor, Monitor, journal_key, prepare_models
from .plan import Phase, Plan

Log = Callable[[str], None]
#: what a step says goes to ``log`` where a caller gives one, else to the package logger
Say = progress.Say


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
        from .join import auth_refused, token_hint

        check_address(address)
        try:
            ray.init(address=address, **kw)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError, AuthenticationError
            if auth_refused(exc):
                raise UserError("--address", token_hint(address, None)) from None
            raise UserError("--address", f"{address}: no Ray cluster answers there ({str(exc).splitlines()[0]})") from None
        interrupt.install()  # after Ray's own handlers (a stack dump on SIGTERM)
        return True
    # Actors ask for no CPU: on a 2-core board five models must still fit at once. GPUs
    # are counted by us: Ray does not see a Jetson's integrated GPU.
    from ..control import detect_gpus

    from .node import node_resources

    # address="local": always a Ray of our own, never one a `ray start` left on this machine
    # (ray.init() would attach to it, and refuse the resources we pass)
    from .join import local_token

    local_token()  # owner-only, before Ray would write ~/.ray/auth_token world-readable itself
    try:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=detect_gpus(),
                 resources=node_resources(socket.gethostname()), include_dashboard=False, **kw)
    except Exception as exc:  # noqa: BLE001 - ports taken, a broken Ray install, ...
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError("ray", f"could not start a local Ray for this run ({exc.__class__.__name__}: {first}); "
                               "to use a Ray already running here, pass its address: --address HOST:PORT") from None
    interrupt.install()  # after Ray's own handlers (a stack dump on SIGTERM)
    return True


def _loop_plans(plan: Plan) -> Dict[tuple, LoopPlan]:
    """Each model's loop per variant (``(name, variant)``; variant "" where there are
    none): the experiment's timing with the model's own overrides, then the variant's."""
    out = {}
    for ms in plan.spec.models:
        for v in plan.spec.variant_names:
            t = plan.spec.timing_for(ms, v or None)
            out[(ms.name, v)] = LoopPlan(iterations=t.iterations, duration_s=t.duration_s, warmup=t.warmup,
                                         warmup_s=t.warmup_s, gap_s=t.gap_s, sync=t.sync, gap_mode=t.gap_mode,
                                         prewarm=t.prewarm, keep_warm=t.keep_warm, start_lead_s=t.start_lead_s,
                                         arrivals=t.arrivals, rate_hz=t.rate_hz, jitter_ms=t.jitter_ms or 0.0,
                                         backlog=t.backlog)
    return out


def _seeded(lp: LoopPlan, seed: Optional[int], model: str, repeat: int) -> LoopPlan:
    """An open loop's arrival clock for ``model`` in ``repeat``: drawn from the experiment's
    seed, the model and the repeat (the models of a together phase independent of each
    other; alone and together of one repeat the same frames)."""
    if lp.arrivals == "closed":
        return lp
    return dataclasses.replace(lp, seed=f"{seed}:{model}:{repeat}")


def _node_gpus(node_id: str) -> float:
    for n in ray.nodes():
        if n.get("NodeID") == node_id:
            return float(n.get("Resources", {}).get("GPU", 0))
    return 0.0


def _prepare_on_node(plan: Plan, place, node_gpus: float, log: Say, env: Optional[Dict[str, str]] = None) -> None:
    """On the node, before anything there changes: every model's backend library imports
    there, and what a backend builds (engines, converted models) is built or checked, on
    the experiment's GPU (``env``: :func:`_pinned`). A UserError here is one line, with
    nothing measured or written."""
    gpu_models = [m.name for m in plan.models if needs_gpu(m)]
    if gpu_models and node_gpus <= 0:
        i = next(i for i, m in enumerate(plan.models) if needs_gpu(m))
        raise UserError(f"models[{i}].backend", f"{plan.models[i].backend} needs a GPU; the node running "
                        "this experiment has none (ray start --num-gpus=1 on a Jetson)")
    wanted = [(i, m) for i, m in enumerate(plan.models) if has_build_step(m)]
    if not wanted and plan.address is None:
        return  # a local run: make_plan checked the libraries in this very process's environment
    t0 = time.perf_counter()
    opts = _pinned({"scheduling_strategy": place}, env)
    what = "checking the models' libraries on the node" if not wanted else (
        f"preparing {', '.join(m.name for _, m in wanted)} (engines, conversions) on the node")
    with progress.spinner(what, log=log):
        done = _get(prepare_models.options(**opts).remote(list(plan.models), [f"models[{i}]" for i in
                                                                                range(len(plan.models))],
                                                           [i for i, _ in wanted]))
    for (i, _), m in zip(wanted, done):
        plan.models[i] = m
        e, c = m.engine or {}, m.converted or {}
        if c:
            log.info(f"convert  {m.name}: {Path(c['path']).name} ({'cached' if c.get('cached') else 'converted'}; "
                f"{c.get('converter')})")
        if e:
            log.info(engine_line(m))
    if wanted:
        log.info(f"prepared models in {time.perf_counter() - t0:.1f} s")


def engine_line(m) -> str:
    """The run log's line for a model's engine: built or cached, by which TensorRT, for
    which GPU, its typing, on a DLA core the layers that fell back to the GPU, and the
    timing cache a build read and wrote (``options.timing_cache``)."""
    e = m.engine or {}
    how = "cached" if e.get("cached") else f"built in {e.get('build_s', 0):.1f} s"
    dla = ""
    if e.get("dla_core") is not None:  # where the DLA could not run a layer, the GPU did
        layers = list(e.get("gpu_layers") or [])
        dla = (f", DLA core {e['dla_core']}, {len(layers)} layer(s) on the GPU"
               + (f": {', '.join(layers[:5])}{', ...' if len(layers) > 5 else ''}" if layers else ""))
    timing = "" if e.get("cached") else timing_cache_text(e.get("timing_cache"))
    return (f"engine   {m.name}: {Path(m.engine_path).name} ({how}, TensorRT {e.get('trt_version')}, "
            f"{e.get('gpu')}, {e.get('typing', 'weak')} typing{dla}{kept_out_text(e.get('int8_kept_out'))}{timing})")


def _reason(exc: BaseException, actor: str = "model actor") -> str:
    if isinstance(exc, ray.exceptions.RayActorError):
        return f"{actor} died (killed or crashed) during the run"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        text = str(cause).strip().splitlines()
        return f"{cause.__class__.__name__}: {text[-1] if text else ''}"[:500]
    return f"{exc.__class__.__name__}: {exc}"[:500]


#: What the node's tools need from the driver's environment. A local Ray's workers keep
#: the environment of the moment Ray started; the experiment runs on the driver's node,
#: so the nvidia-smi the user's shell finds is the one the Monitor must run. ``TRB_ROOT``,
#: ``TRB_SYSFS_ROOT`` and ``TRB_SUDO`` say where the Jetson files are and how root's
#: tools are run (``trt_ray_bench.control``); ``TRB_GPU_LOCK_DIR``, ``TRB_MPS_DIR`` and
#: ``TRB_GPU_SOURCE`` where the GPU leases and per-GPU MPS folders are, and how GPUs are
#: listed (``control.gpus``, ``control.mps``).
CONTROL_ENV = ("PATH", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY", "TRB_ROOT", "TRB_SYSFS_ROOT", "TRB_SUDO",
               "TRB_GPU_LOCK_DIR", "TRB_MPS_DIR", "TRB_GPU_SOURCE", "TRB_JOURNAL_DIR")
#: How long a new experiment waits for a GPU of its node to be given back (the previous
#: one's processes may still be exiting) before it is refused.
LEASE_WAIT_S = 10.0


def _pinned(opts: dict, env: Optional[Dict[str, str]]) -> dict:
    """Ray options of a process of the experiment, pinned to its leased GPU by ``env``
    (``control.gpus.experiment_env``: CUDA_VISIBLE_DEVICES=<UUID>, PCI order, Ray told to
    leave it alone), merged with what ``opts`` already passes.

    Such processes ask Ray for no GPU (``num_gpus=0``): the node's slots already bound its
    experiments to its GPUs, and a Ray GPU share would let Ray pick a GPU id of its own.
    Ray 2.10 (JetPack 5) then fails the actor outright when that id is not the first
    (IndexError mapping it into our one-entry CUDA_VISIBLE_DEVICES), and Ray's fractional
    bookkeeping can split one experiment's shares over two GPUs and leave the next one
    unschedulable. Ray 2.10 also sets CUDA_VISIBLE_DEVICES="" in any process that asked for
    no GPU unless RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES is set, which ``env`` does."""
    opts = dict(opts, num_gpus=0)
    if env:
        renv = dict(opts.get("runtime_env") or {})
        renv["env_vars"] = {**(renv.get("env_vars") or {}), **env}
        opts["runtime_env"] = renv
    return opts


def _get(ref, timeout: Optional[float] = None):
    """``ray.get`` that re-raises a UserError raised inside an actor as itself, so the CLI
    prints its one line (not a remote traceback) and exits 2."""
    try:
        return ray.get(ref, timeout=timeout)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(getattr(exc, "cause", None), UserError):
            raise exc.cause from None
        raise


class MonitorDied(RuntimeError):
    """The run's Monitor (telemetry, the machine's controls) died mid-run (the OOM killer)."""


def _mon(ref, timeout: Optional[float] = None):
    """``_get`` of a Monitor call: its death is ``MonitorDied``, the run's failure (its
    measured phases are written, the machine restored from its journal), not a crash."""
    try:
        return _get(ref, timeout)
    except ray.exceptions.RayActorError as exc:
        raise MonitorDied(f"the Monitor died during the run (killed or crashed): {type(exc).__name__}") from None


def _start_monitor(spec, place, node_gpus: float, driver: Optional[dict] = None):
    """The Monitor, holding the experiment's GPU where the node has GPUs, with the node's
    controls checked (UserError before anything changes); and the leased GPU or None."""
    opts = {"scheduling_strategy": place}
    tel = spec.telemetry
    # tegrastats asked for by name runs from the driver's PATH too (the one the user's
    # shell finds), like the control tools; the lease lists the GPUs with nvidia-smi
    # where NVML is missing, and must see the node's own CUDA_VISIBLE_DEVICES.
    # Always, also for `clocks: default`: the Monitor restores what a killed run left (the
    # journal where the driver's TRB_JOURNAL_DIR says) before anything is read or recorded.
    lease = node_gpus > 0
    env = {k: os.environ[k] for k in CONTROL_ENV if k in os.environ}
    if lease:
        env["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"] = ORDER["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]
    if env:
        opts["runtime_env"] = {"env_vars": env}
    nvml = tel.nvml if tel.nvml is not None else node_gpus > 0
    if nvml and node_gpus <= 0:
        raise UserError("telemetry.nvml", "true, but the node running this experiment has no GPU")
    # tegrastats None (the default) is decided in the Monitor, which knows its platform.
    monitor = Monitor.options(**opts).remote(tel.interval_s, tel.host, bool(nvml), tel.tegrastats,
                                              tel.tegrastats_interval_ms, tel.nvml, node_gpus, LEASE_WAIT_S,
                                              driver=driver or driver_identity())
    try:
        provenance = _get(monitor.provenance.remote())
        gpu = _get(monitor.gpu.remote())
        controls = _get(monitor.check_controls.remote(
            spec.model_dump(mode="json", include={"clocks", "mps", "power_mode"})))
        if spec.timing.cooldown is not None and _get(monitor.temperature.remote()) is None:
            raise UserError("timing.cooldown", "this node has no temperature to wait on: no GPU answers NVML and "
                                               "no /sys/class/thermal zone can be read")
    except BaseException:
        ray.kill(monitor)
        raise
    return monitor, provenance, controls, gpu


def _log_controls(rec: dict, log: Say) -> None:
    p = rec.get("power_mode_in_force")
    if p:
        was = rec.get("power_mode_before") or {}
        same = was.get("id") == p.get("id")
        log.info(f"power    {mode_text(p)}" + (" (already in force)" if same else f", was {mode_text(was)}"))
    f = rec.get("clocks_in_force")
    if f and "gpu_max_mhz" in f:  # a Jetson: jetson_clocks or the GPU's devfreq node
        log.info(f"clocks   {rec['clocks_mode']}: GPU {f.get('gpu_min_mhz'):g}-{f.get('gpu_max_mhz'):g} MHz "
            f"(reads {f.get('gpu_cur_mhz')} MHz)" + (f", EMC {f['emc_cur_mhz']:g} MHz" if f.get("emc_cur_mhz") else ""))
    elif f:
        mem = f.get("locked_mem_mhz")
        mem = f", memory {mem[0]} MHz" if isinstance(mem, list) else (f", memory lock {mem}" if mem else "")
        log.info(f"clocks   {rec['clocks_mode']}: graphics locked at {f['locked_gpu_mhz'][0]} MHz{mem} "
            f"(reads sm {f.get('sm_mhz')} / mem {f.get('mem_mhz')} MHz)")
    if rec.get("mps") or rec.get("mps_state") not in (None, "off"):
        log.info(f"mps      {rec.get('mps_state')}")


def _emit_left(plan: Plan, outcomes: List[dict], emit, status: str, why: str) -> None:
    """Rows for every model of every phase not run yet, ``status`` and ``why``."""
    have = {(o["phase"], o["model"]) for o in outcomes}
    for ph in plan.phases:
        left = [n for n in ph.models if (ph, n) not in have]
        if left:
            emit([{"phase": ph, "model": n, "status": status, "error": why} for n in left])


@ray.remote(num_cpus=0, max_retries=0)
def _restore_from_journal(key: str) -> List[str]:
    """On the node whose Monitor died: what its journal says to undo (its writer is gone)."""
    from ..control.journal import restore_left_behind

    return restore_left_behind(key)


def _restore_controls(monitor, controls: dict, log: Say, node_id: Optional[str] = None,
                      key: Optional[str] = None) -> dict:
    """Restore before the Monitor is killed: ``ray.kill`` ends it without exit hooks. A
    Monitor that died (the OOM killer) left its journal: a task on its node restores it."""
    try:
        after = _get(monitor.restore_controls.remote(), timeout=120)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome still gets written
        why = _reason(exc, "the Monitor") if isinstance(exc, ray.exceptions.RayActorError) else _reason(exc)
        warnings = list(controls.get("warnings", []))
        if isinstance(exc, ray.exceptions.RayActorError) and node_id and key:
            try:
                done = ray.get(_restore_from_journal.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    node_id=node_id, soft=False)).remote(key), timeout=180)
                warnings += [f"{why}; from its journal: {line}" for line in done] or [f"{why}; its journal held nothing"]
            except Exception as exc2:  # noqa: BLE001
                warnings.append(f"not restored: {why}; from its journal: {_reason(exc2)}")
        else:
            warnings.append(f"not restored: {why}")
        after = {**controls, "warnings": warnings}
    for w in after.get("warnings", []):
        if w.startswith("not restored"):
            log.warning(f"WARNING  machine controls {w}")
    return after


def execute(plan: Plan, log: Optional[Log] = None, driver: Optional[dict] = None,
            on_phase: Optional[Callable[[List[dict]], Optional[str]]] = None) -> dict:
    """Run every phase of ``plan`` on this node's actors; return the raw outcome. The
    node's controls (clock mode, MPS) are applied before the models load (MPS clients must
    start after the daemon) and restored whatever happens. ``log``: where the progress
    lines go (default: the ``trt_ray_bench`` logger).

    ``on_phase`` (``RunTables.add``): given each phase's outcomes as soon as the phase
    ends (their raw samples in ``raw``; the rows of models left out, failed or
    interrupted, too), with Ctrl-C and SIGTERM held meanwhile; it returns the phase's
    summary line. The outcomes the result keeps then have no raw samples: the driver
    holds one phase's at a time. Without it every outcome keeps them (``build_tables``)."""
    log = progress.say(log)
    node_id = ray.get_runtime_context().get_node_id()
    place = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    spec = plan.spec
    node_gpus = _node_gpus(node_id)
    # The GPU first (the Monitor leases it), then the engines are built on it.
    monitor, provenance, controls, gpu = _start_monitor(spec, place, node_gpus, driver)
    try:
        _prepare_on_node(plan, place, node_gpus, log, experiment_env(gpu["cuda_visible_devices"]) if gpu else None)
    except BaseException:
        ray.kill(monitor)
        raise
    if gpu:
        log.info(f"gpu      {gpu['index']} {gpu['uuid'] or ''} {gpu['name'] or ''}".rstrip()
            + (f" ({gpu['note']})" if gpu.get("note") else ""))
    ray.get(monitor.start.remote())
    started_at = _dt.datetime.now(_dt.timezone.utc)
    input_spec = spec.input.model_dump()
    if plan.data:
        input_spec.update(data=dict(plan.data), data_limit=spec.data.limit, on_bad_label=spec.data.on_bad_label)
    actors: Dict[str, object] = {}
    failed: Dict[str, str] = {}
    info: Dict[str, dict] = {}
    outcomes: List[dict] = []
    interrupted: Optional[BaseException] = None
    monitor_died: Optional[str] = None
    idle: Optional[tuple] = None  # the idle window (telemetry.idle_s) on the node's clock

    def emit(outs: List[dict]) -> Optional[str]:
        """A phase's outcomes: handed to ``on_phase`` and kept without their raw samples
        (both or neither: signals wait), or kept whole."""
        if on_phase is None:
            outcomes.extend(outs)
            return None
        with interrupt.deferred():
            line = on_phase(outs)
            outcomes.extend({k: v for k, v in o.items() if k != "raw"} for o in outs)
        return line

    try:
        controls = _get(monitor.apply_controls.remote())
        _log_controls(controls, log)
        # Every model process on the experiment's GPU (and its MPS daemon's client); the
        # GPU models share it (pinning, not Ray's GPU shares: _pinned says why).
        env = experiment_env(gpu["cuda_visible_devices"], controls.get("mps_pipe_dir")) if gpu else None

        loaded_for: Dict[str, int] = {}

        def start_actors(repeat: int, names: Optional[List[str]] = None) -> None:
            """A model actor per model of ``names`` (default: all; not failed so far), its
            engine loaded; its actor of an earlier repeat killed first
            (``repeat_isolation: process``)."""
            suffix = f"/r{repeat}" if repeat else ""
            starting = {}
            for m in plan.models:
                if m.name in failed or (names is not None and m.name not in names):
                    continue
                if m.name in actors:
                    ray.kill(actors.pop(m.name))
                actors[m.name] = starting[m.name] = ModelActor.options(**_pinned(
                    {"scheduling_strategy": place, "name": f"{plan.run_id}/{m.name}{suffix}"}, env)).remote(
                        m, input_spec)
                loaded_for[m.name] = repeat
            loads = {name: a.load.remote() for name, a in starting.items()}
            for name, ref in loads.items():
                try:
                    info[name] = ray.get(ref)
                    log.info(f"loaded   {name}  ({info[name]['device']}, {info[name]['load_s']:.1f} s"
                        + (f", repeat {repeat}" if repeat else "") + ")")
                except Exception as exc:  # noqa: BLE001 - recorded, the others go on
                    failed[name] = f"load: {_reason(exc)}"
                    log.error(f"FAILED   {name}: {failed[name]}")

        start_actors(0)
        if spec.telemetry.idle_s > 0:  # the baseline: the models loaded, nothing running
            with progress.spinner(f"idle     measuring the node at rest for {spec.telemetry.idle_s:g} s", log=log):
                idle = _mon(monitor.idle.remote(spec.telemetry.idle_s))
        lp = _loop_plans(plan)
        cool = spec.timing.cooldown
        for ph in plan.phases:
            stale = [n for n in ph.models if n not in failed and loaded_for.get(n) != ph.repeat]
            if spec.repeat_isolation == "process" and stale:
                start_actors(ph.repeat, stale)  # a fresh process, the engine loaded again, for every repeat
            names = [n for n in ph.models if n not in failed]
            skipped = [n for n in ph.models if n in failed]
            if skipped:
                emit([{"phase": ph, "model": n, "status": "failed", "error": failed[n]} for n in skipped])
            if not names:
                continue
            mode = f"{ph.mode} " if ph.mode != "inference" else ""
            var = f"{ph.variant} " if ph.variant else ""
            label = f"repeat {ph.repeat}  {mode}{var}{ph.phase:<8}"
            log.info(f"{label} {', '.join(names)}")
            cooled = _cooldown(monitor, cool, log) if cool is not None else None
            oc_before = _mon(monitor.oc_events.remote())
            t_phase = time.perf_counter()
            done = _run_phase(ph, names, actors, lp, spec, failed, plan.run_id, view=_PhaseView(label, names, actors))
            try:
                oc = oc_delta(oc_before, _mon(monitor.oc_events.remote()))
            except MonitorDied:  # the phase was measured: kept, then the run stops
                for o in done:
                    o.update(cooldown=cooled, oc=None)
                emit(done)
                raise
            for o in done:
                o.update(cooldown=cooled, oc=oc)
            line = emit(done)
            log.info(f"done     {label} {line if line is not None else _phase_result(done)}  "
                     f"({time.perf_counter() - t_phase:.1f} s)")
            done = []  # the phase's raw samples: not held while the next phase runs
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (interrupt.Stopped)
        interrupt.hold_further()
        interrupted = interrupt.why(exc)
        why = interrupted.name if isinstance(interrupted, interrupt.Stopped) else "Ctrl-C"
        log.warning(f"interrupted ({why}): restoring the machine and writing what was measured (a second Ctrl-C "
                    "is ignored until the machine is restored)")
        _emit_left(plan, outcomes, emit, "interrupted", why)
    except MonitorDied as exc:  # the Monitor (telemetry, the machine's controls) died
        why = monitor_died = str(exc)
        log.error(f"FAILED   {why}")
        _emit_left(plan, outcomes, emit, "failed", why)
    finally:
        for a in actors.values():  # the GPU's (and MPS's) clients go first
            ray.kill(a)
        key = journal_key(gpu.get("uuid"), gpu.get("index")) if gpu else journal_key(None, None)
        controls = _restore_controls(monitor, controls, log, node_id, key)
        try:
            telemetry = ray.get(monitor.stop.remote(), timeout=30)
        except Exception as exc:  # noqa: BLE001
            telemetry = {"rows": {}, "errors": [f"monitor: {_reason(exc, 'the Monitor')}"]}
        ray.kill(monitor)
        interrupt.release()
    return {"outcomes": outcomes, "info": info, "provenance": provenance, "telemetry": telemetry,
            "started_at": started_at, "controls": controls, "gpu": gpu, "interrupted": interrupted, "idle": idle,
            "monitor_died": monitor_died}


def _cooldown(monitor, cool, log: Say) -> dict:
    """Wait for the node to cool to ``timing.cooldown.temp_c`` (at most its ``timeout_s``)
    before a phase; what the wait found, for the phase's rows."""
    with progress.spinner(f"cooldown waiting for {cool.temp_c:g} °C (at most {cool.timeout_s:g} s)", log=log):
        got = _mon(monitor.cooldown.remote(cool.temp_c, cool.timeout_s))
    c = got.get("c")
    said = f"{got.get('what')} at {c:.0f} °C" if c is not None else "no temperature"
    if got.get("reached"):
        log.info(f"cooldown {said} after {got['waited_s']:.1f} s")
    else:
        log.warning(f"warning  cooldown: {said} after {got['waited_s']:.3g} s, above {cool.temp_c:g} °C "
                    f"(timing.cooldown.timeout_s): measuring anyway")
    return got


def _fail(name: str, exc: BaseException, failed: Dict[str, str]) -> str:
    """The reason of a failed phase; a dead actor is also left out of later phases."""
    reason = _reason(exc)
    if isinstance(exc, ray.exceptions.RayActorError):
        failed[name] = reason
    return reason


class _PhaseView:
    """The live line of one phase: each model's inferences done / its target (or seconds
    elapsed / its duration), asked of the model actors every ``progress.POLL_S``. Only
    where the display is live (stderr a terminal): a poll is a short call served by the
    actor's second thread, and where nobody watches none is made."""

    def __init__(self, label: str, names: List[str], actors):
        self.names, self.actors = list(names), actors
        self.state: Dict[str, dict] = {}
        self.finished: set = set()  # models whose phase returned
        self.line = progress.Line(" ".join(label.split()), total=100, unit="%",
                                  bar_format="{desc}  {percentage:3.0f}% |{bar:10}| {elapsed}")
        self.live = self.line.bar is not None
        self.timeout = progress.POLL_S if self.live else None

    def poll(self) -> None:
        if not self.live:
            return
        done = self.finished
        asks = {self.actors[n].progress.remote(): n for n in self.names if n not in done}
        if asks:
            ready, _ = ray.wait(list(asks), num_returns=len(asks), timeout=0.2)
            for ref in ready:
                try:
                    self.state[asks[ref]] = ray.get(ref)
                except Exception:  # noqa: BLE001 - a dead actor: its phase says so
                    pass
        parts, fractions = [], []
        for n in self.names:
            p = self.state.get(n) or {}
            if n in done:
                fractions.append(1.0)
                parts.append(f"{n} done")
            elif p.get("stage") == "measure":
                if p.get("iterations"):
                    fractions.append(min(1.0, p["n"] / p["iterations"]))
                    parts.append(f"{n} {p['n']}/{p['iterations']}")
                else:
                    dur = p.get("duration_s") or float("nan")
                    fractions.append(min(1.0, p["elapsed_s"] / dur) if dur == dur else 0.0)
                    parts.append(f"{n} {p['elapsed_s']:.0f}/{dur:g} s ({p['n']})")
            else:
                fractions.append(0.0)
                parts.append(f"{n} warm-up" + (f" {p['n']}" if p.get("n") else ""))
        self.line.update(100 * sum(fractions) / max(1, len(fractions)), "  ".join(parts))

    def wait(self, refs: list, num_returns: int = 1):
        """``ray.wait`` that redraws the line every poll while it waits."""
        while True:
            ready, rest = ray.wait(refs, num_returns=num_returns, timeout=self.timeout)
            if ready or not self.live:
                return ready, rest
            self.poll()

    def close(self) -> None:
        self.line.close()


def _phase_result(done: List[dict]) -> str:
    """``cls n 50 p50 0.58 ms; det failed: ...``: a phase's outcome, one line (the
    together ones over their common window, as the results table will have them)."""
    measured = []
    for o in done:
        if o["status"] == "ok":
            raw = o["raw"]
            w = ~raw["warmup"]
            measured.append((raw["t_start_ns"][w], raw["t_end_ns"][w]))
    win = common_window(measured) if len(measured) > 1 else None
    parts, k = [], 0
    for o in done:
        if o["status"] != "ok":
            parts.append(f"{o['model']} {o['status']}: {o.get('error')}")
            continue
        ts, te = measured[k]
        k += 1
        sel = (ts >= win[0]) & (te <= win[1]) if win else np.ones(len(ts), bool)
        ms = (te[sel] - ts[sel]) / 1e6
        parts.append(f"{o['model']}: n {len(ms)}, p50 {np.median(ms):.3g} ms" if len(ms) else f"{o['model']}: n 0")
    return "; ".join(parts)


def _run_phase(ph: Phase, names: List[str], actors, lp_all: Dict[tuple, LoopPlan], spec, failed: Dict[str, str],
               run_id: str, view: Optional[_PhaseView] = None) -> List[dict]:
    view = view or _PhaseView("", names, actors)
    try:
        return _run_phase_viewed(ph, names, actors, lp_all, spec, failed, run_id, view)
    finally:
        view.close()


def _run_phase_viewed(ph: Phase, names: List[str], actors, lp_all: Dict[tuple, LoopPlan], spec,
                      failed: Dict[str, str], run_id: str, view: _PhaseView) -> List[dict]:
    t = spec.timing
    lp = {n: _seeded(lp_all[(n, ph.variant)], t.seed, n, ph.repeat) for n in names}  # this phase's variant
    if ph.phase == "alone":
        name = names[0]
        try:
            ref = actors[name].run_phase.remote(lp[name], mode=ph.mode)
            view.wait([ref])
            raw = ray.get(ref)
            return [{"phase": ph, "model": name, "status": "ok", "raw": raw}]
        except Exception as exc:  # noqa: BLE001
            return [{"phase": ph, "model": name, "status": "failed", "error": _fail(name, exc, failed)}]
    coord = Coordinator.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
        name=f"{run_id}/coordinator",
    ).remote(names, t.start_lead_s, t.barrier_timeout_s)
    ray.get(coord.set_actors.remote({n: actors[n] for n in names}))
    fill = t.fill and all(p.iterations is not None for p in lp.values())
    if len(names) >= (os.cpu_count() or 1):  # more waiters than cores: sleep, do not spin
        lp = {n: dataclasses.replace(p, spin_s=0.0) for n, p in lp.items()}
    refs = {actors[n].run_phase.remote(lp[n], coord, fill, t.fill_timeout_s, ph.mode): n for n in names}
    out = []
    pending = list(refs)
    while pending:
        done, pending = view.wait(pending, num_returns=1)
        name = refs[done[0]]
        view.finished.add(name)
        try:
            raw = ray.get(done[0])
            out.append({"phase": ph, "model": name, "status": "ok", "raw": raw})
        except Exception as exc:  # noqa: BLE001 - a dead model must not hang the others
            out.append({"phase": ph, "model": name, "status": "failed", "error": _fail(name, exc, failed)})
            coord.withdraw.remote(name)
    ray.kill(coord)
    return out


#: per-stage GPU times a runner may report (sample columns, p50 in runs)
STAGES = ("h2d_ms", "compute_ms", "d2h_ms", "load_ms", "pre_ms", "infer_ms", "post_ms", "metrics_ms")


def _json(state: Optional[dict]) -> Optional[str]:
    return None if state is None else json.dumps(state, sort_keys=True)


def _in_force(ctl: dict) -> dict:
    """Provenance read before the controls were applied, as the run measured it: the
    power mode and GPU frequency range the controls put in force."""
    out = {}
    mode = ctl.get("power_mode_in_force")
    if mode:
        out["power_mode"] = mode_text(mode)
    clocks = ctl.get("clocks_in_force") or {}
    if clocks.get("gpu_min_mhz") is not None and clocks.get("gpu_max_mhz") is not None:
        out["gpu_freq_range_mhz"] = f"{clocks['gpu_min_mhz']:g}-{clocks['gpu_max_mhz']:g}"
    return out


class RunTables:
    """One run's tables, built phase by phase as the run goes: ``add`` takes a phase's
    outcomes as soon as it ends (``execute``'s ``on_phase``) and turns their raw samples
    into the rows' statistics, the series' diagnostics (``results.diagnose.series_diagnostics``),
    the per-second aggregates and the samples ``timing.samples`` keeps, handed to ``sink``
    (``RunWriter.write_samples``) or, without one, kept here as Arrow; the raw arrays can
    then go. ``finish`` adds what is known only at the end (the machine's controls as
    restored, the telemetry and its diagnostics) and returns the tables."""

    def __init__(self, plan: Plan, sink: Optional[Callable[[list], object]] = None):
        self.plan = plan
        self.keep = plan.spec.timing.samples
        self.sink = sink
        self._outcomes: List[dict] = []  # per row: the outcome less its raw samples
        self._measured: List[dict] = []  # per row: the columns its samples gave
        self._late: List[List[str]] = []  # per row: warnings after the diagnostics' messages
        self._series: List[List[dict]] = []  # per row: drift, warmup_short
        self._aggregates: List[pd.DataFrame] = []
        self._samples: List[pa.Table] = []  # without a sink

    def add(self, outcomes: List[dict]) -> str:
        """One phase's outcomes (``execute``'s, with their ``raw`` samples; or rows of
        models that failed or were interrupted). Returns the phase's summary line.

        The raw samples are taken out of the outcomes (``raw`` removed from each) as soon
        as the phase's samples are written, before the statistics: those need only the
        in-window latencies, and a long phase's raw arrays are most of what the driver
        holds."""
        spec, plan = self.plan.spec, self.plan
        ok = [o for o in outcomes if o["status"] == "ok"]
        spans = [_measured_span(o["raw"]) for o in ok]
        ph = outcomes[0]["phase"] if outcomes else None
        if ph is not None and ph.phase == "together":
            # the window in which every successful model was running
            win = common_window([((a,), (b,)) for a, b in (s for s in spans if s is not None)])
            firsts = [s[0] for s in spans if s is not None]
            skew = (max(firsts) - min(firsts)) / 1e3 if len(firsts) > 1 else float("nan")
        else:
            win = spans[0] if spans else None
            skew = float("nan")
        by_name = {m.name: m for m in plan.models}
        spec_models = {ms.name: ms for ms in spec.models}
        pieces, series_of = [], []
        for o in outcomes:
            meas: Dict[str, object] = {"start_skew_us": skew, **_thermal_columns(o)}
            late: List[str] = []
            series: List[dict] = []
            if o["status"] == "ok":
                m = by_name[o["model"]]
                mt = spec.timing_for(spec_models[m.name], o["phase"].variant or None)
                piece, host, gpu = self._measure(o, m, mt, win, meas, late)
                if piece is not None:
                    pieces.append(piece)
                series_of.append((meas, series, host, gpu, m.batch))
                piece = host = gpu = None  # (the piece's columns are views of the raw arrays)
            self._outcomes.append({k: v for k, v in o.items() if k != "raw"})
            self._measured.append(meas)
            self._late.append(late)
            self._series.append(series)
        if pieces:
            if self.sink is not None:
                self.sink(pieces)
            else:
                self._samples.extend(sample_tables(pieces))
        del pieces
        for o in outcomes:  # written: the raw arrays can go (the caller keeps the rest)
            o.pop("raw", None)
        conf = spec.confidence
        while series_of:  # each row's statistics and series diagnostics, one series at a time
            meas, series, host, gpu, batch = series_of.pop(0)
            meas.update(summarize(host, batch, conf).as_dict(), confidence=conf)
            series.extend(series_diagnostics(host, meas.get("warmup_n")))
            del host
            if gpu is not None:
                meas.update(summarize(gpu, batch, conf).as_dict("gpu_"))
            del gpu
        return _phase_line(outcomes, self._measured[len(self._measured) - len(outcomes):])

    def _measure(self, o: dict, m, mt, win, row: dict, late: List[str]):
        """The columns of an ok row from its raw samples (into ``row``) but its statistics,
        its late warnings, its aggregates; returns its samples as a ``write.Piece`` (None
        where none are kept) and the in-window host and GPU latencies (None without a GPU
        timer) its statistics are computed from."""
        spec, ph, raw = self.plan.spec, o["phase"], o["raw"]
        ts, te = raw["t_start_ns"], raw["t_end_ns"]
        warm = np.asarray(raw["warmup"], dtype=bool)
        measured = ~warm
        inwin = measured & (ts >= win[0]) & (te <= win[1]) if win else np.zeros(len(ts), bool)
        gpu = raw.get("gpu_ms")
        # the host latencies of the in-window inferences, the series of the row's statistics
        # (of the others only what is written, a row group at a time: a long phase's arrays
        # are most of what the driver holds)
        sel = te[inwin]
        sel -= ts[inwin]
        sel = sel / 1e6
        warm_n = int(warm.sum())
        row.update(actor_pid=raw.get("pid"), barrier_warmup_n=raw.get("barrier_warmup_n"))
        sync_end = raw.get("t_sync_end_ns")  # sync: none: the span ends at the final synchronisation
        row["throughput_ips"] = (_throughput(ts, te, m.batch, mask=inwin) if sync_end is None
                                 else _throughput(ts, te, m.batch, end_ns=sync_end, mask=measured))
        # sync: none: how long that synchronisation waited (how far the launches ran ahead),
        # and the measured inferences past the event ring (no GPU time)
        row["sync_wait_ms"] = raw["sync_wait_ns"] / 1e6 if raw.get("sync_wait_ns") is not None else np.nan
        if raw.get("gpu_missing"):
            late.append(f"{raw['gpu_missing']} of {int(measured.sum())} measured inferences have no GPU time "
                        f"(sync: none at gap 0 reads the event ring only after the phase; it held "
                        f"{raw.get('gpu_capacity')})")
        any_in = bool(inwin.any())
        for k, v in raw.get("stages", {}).items():
            if k in STAGES and any_in:
                row[k.replace("_ms", "_p50_ms")] = float(np.median(v[inwin]))
        if "data" in raw:
            row.update(n_images=raw["data"]["n_images"], n_labels=raw["data"]["n_labels"],
                       data=raw["data"]["summary"])
            if ph.mode in ("validation", "without_val"):  # one pass over the set: what was asked
                row.update(iterations=raw["data"]["n_images"], duration_s=None)
        for k, v in (raw.get("metrics") or {}).items():
            if k not in ("n_images", "n_labels"):
                row[k] = v
        if "metrics" in raw and raw["metrics"].get("n_images", 0) < raw["data"]["n_images"]:
            late.append(f"metrics cover {raw['metrics'].get('n_images')} of the "
                        f"{raw['data']['n_images']} images of the set")
        row["enqueue_mean_ms"] = float(np.mean(raw["enqueue_ns"][inwin]) / 1e6) if any_in else np.nan
        ta = raw.get("t_arrival_ns")
        if ta is not None:  # an open loop: from arrival, queue, misses, drops, the clock's own error
            # alone, every frame of the measured phase; together, those between the row's
            # first and last in-window frames
            span = (raw["frame_from"], raw["frame_end"]) if ph.phase != "together" else None
            row.update(open_loop_stats(ts[inwin], te[inwin], ta[inwin], raw["frame"][inwin], raw["idle"][inwin],
                                       mt.deadline_ms, m.batch, spec.confidence, span))
            if ph.phase != "together" and raw["frame_end"] > raw["frame_from"] and not any_in:
                row.update(frames=raw["frame_end"] - raw["frame_from"], dropped=raw["frame_end"] - raw["frame_from"])
        elif mt.deadline_ms is not None:  # closed: a frame "arrives" when it starts
            row.update(open_loop_stats(ts[inwin], te[inwin], None, None, None, mt.deadline_ms, m.batch,
                                       spec.confidence))
        row["timer"] = "cuda_event+host" if gpu is not None else "host"
        row["warmup_n"] = warm_n
        row["n_total"] = int(len(ts) - warm_n)
        first = ts[measured.argmax()] if row["n_total"] else None
        row["start_instant_ns"] = int(raw["instant_ns"])
        row["start_late_us"] = (first - raw["instant_ns"]) / 1e3 if first is not None else np.nan
        if win:
            row.update(window_start_ns=int(win[0]), window_end_ns=int(win[1]), window_s=(win[1] - win[0]) / 1e9)
        keys = {"run_id": self.plan.run_id, "model": m.name, "phase": ph.phase, "repeat": ph.repeat,
                "mode": ph.mode, "variant": ph.variant or None}
        if row["n_total"]:
            sl = _tail(warm)  # the measured inferences: the loop's tail, as views where it is one
            sl = sl if sl is not None else measured
            anchor = int(win[0]) if win else int(first)
            bins = per_second(ts[sl], te[sl], gpu[sl] if gpu is not None else None, inwin[sl], anchor)
            self._aggregates.append(pd.DataFrame({**keys, **bins}))
        return self._piece(keys, raw, warm, inwin, gpu), sel, gpu[inwin] if gpu is not None else None

    def _piece(self, keys: dict, raw: dict, warm: np.ndarray, inwin: np.ndarray, gpu: Optional[np.ndarray]):
        """The samples ``timing.samples`` keeps of one row, as a ``write.Piece``."""
        if self.keep == "none":
            return None
        ts, te, enq = raw["t_start_ns"], raw["t_end_ns"], raw["enqueue_ns"]
        stages = {k: v for k, v in raw.get("stages", {}).items() if k in STAGES}
        ta = raw.get("t_arrival_ns")
        if ta is not None:  # open loop: each inference's arrival and its wait before it started
            stages["t_arrival_ns"] = ta
            stages["queue_ms"] = _queue_ms(ts, ta)
        if self.keep == "all":
            cols = {"iteration": range(len(ts)), "warmup": warm, "in_window": inwin, "t_start_ns": ts,
                    "t_end_ns": te, "host_ms": lambda lo, hi: (te[lo:hi] - ts[lo:hi]) / 1e6,
                    "enqueue_ms": lambda lo, hi: enq[lo:hi] / 1e6, **stages}
            if gpu is not None:
                cols["gpu_ms"] = gpu
            return keys, len(ts), cols
        idx = np.flatnonzero(inwin)  # window: the inferences the statistics use
        if not len(idx):
            return None

        def pick(a: np.ndarray, scale: float = 1.0):
            return (lambda lo, hi: a[idx[lo:hi]]) if scale == 1.0 else (lambda lo, hi: a[idx[lo:hi]] / scale)

        if ta is not None:
            stages["queue_ms"] = lambda lo, hi: (ts[idx[lo:hi]] - ta[idx[lo:hi]]) / 1e6
        cols = {"iteration": idx, "t_start_ns": pick(ts), "t_end_ns": pick(te),
                "host_ms": lambda lo, hi: (te[idx[lo:hi]] - ts[idx[lo:hi]]) / 1e6,
                "enqueue_ms": pick(enq, 1e6), **{k: v if callable(v) else pick(v) for k, v in stages.items()}}
        if gpu is not None:
            cols["gpu_ms"] = pick(gpu)
        return {**keys, "warmup": False, "in_window": True}, len(idx), cols

    def finish(self, result: dict) -> Dict[str, pd.DataFrame]:
        """The runs (with the controls as restored, the diagnostics and warnings), the
        telemetry and the aggregates; and the samples where there is no ``sink``."""
        plan, spec = self.plan, self.plan.spec
        by_name = {m.name: m for m in plan.models}
        spec_models = {ms.name: ms for ms in spec.models}
        settings = _settings(spec)
        prov = dict(result["provenance"])
        if not prov.get("tensorrt_version"):  # JetPack's / an unpacked module has no pip record
            prov["tensorrt_version"] = next((m.engine["trt_version"] for m in plan.models
                                             if m.engine and m.engine.get("trt_version")), None)
        ctl = result.get("controls") or {}
        lease = result.get("gpu") or {}
        machine = {
            "clocks_mode": ctl.get("clocks_mode", "default"), "mps": ctl.get("mps", False),
            "mps_state": ctl.get("mps_state"),
            **{k: _json(ctl.get(k)) for k in ("clocks_before", "clocks_in_force", "clocks_after",
                                              "power_mode_before", "power_mode_after")},
            **_in_force(ctl),
        }
        run_rows = []
        for o, meas in zip(self._outcomes, self._measured):
            ph: Phase = o["phase"]
            m = by_name[o["model"]]
            mt = spec.timing_for(spec_models[m.name], ph.variant or None)
            info = result["info"].get(m.name, {})
            row = {
                "run_id": plan.run_id, "experiment": spec.name, "model": m.name, "phase": ph.phase,
                "repeat": ph.repeat, "mode": ph.mode,
                "status": o["status"], "error": o.get("error"), "task": m.task, "backend": m.backend,
                "device": info.get("device"), "providers": info.get("providers"), "source": m.source,
                "onnx_path": m.onnx_path, "onnx_sha256": m.sha256, "weights": m.weights,
                "imgsz_h": m.hw[0], "imgsz_w": m.hw[1], "batch": m.batch, "input_kind": spec.input.kind,
                "n_inputs": info.get("n_inputs"), "sync": mt.sync, "gap_s": mt.gap_s, "iterations": mt.iterations,
                "duration_s": mt.duration_s, "n_models": len(ph.models),
                "variant": ph.variant or None, "warmup": mt.warmup, "warmup_s": mt.warmup_s,
                "fill": mt.fill if ph.phase == "together" else None, "repeat_order": spec.repeat_order,
                **_option_columns(m.options), "settings": settings,
                "precision": m.precision, "engine_path": m.engine_path or None, "gpu": info.get("gpu"),
                # the experiment's GPU (its lease), and what the model's process was pinned to
                "gpu_index": lease.get("index"), "gpu_uuid": lease.get("uuid"),
                "cuda_visible_devices": info.get("cuda_visible_devices") if lease else None,
                **_precision_columns(m),
                "transfers": info.get("transfers"), "cuda_graph": info.get("cuda_graph"),
                "gap_mode": mt.gap_mode, "prewarm": mt.prewarm, "repeat_isolation": spec.repeat_isolation,
                "arrivals": mt.arrivals, "deadline_ms": mt.deadline_ms,
                **({"rate_hz": mt.rate_hz, "jitter_ms": mt.jitter_ms, "backlog": mt.backlog, "seed": spec.timing.seed}
                   if mt.arrivals != "closed" else {}),
                "keep_warm": mt.keep_warm if ph.phase == "together" else None,
                "actor_pid": None, "barrier_warmup_n": None, "samples_kept": self.keep,
                "started_at": result["started_at"], "spec_sha256": plan.spec_sha256, **prov, **machine,
            }
            row.update(meas)
            run_rows.append(row)
        tel = result["telemetry"].get("rows") or {}
        tel_frame = pd.DataFrame(tel) if tel else pd.DataFrame(columns=["t_ns", "source", "metric", "value", "unit"])
        tel_frame.insert(0, "run_id", plan.run_id)
        runs = pd.DataFrame(run_rows)
        if len(runs):  # the energy of each window, from the telemetry now complete
            energy = window_energy(runs, tel_frame, idle=result.get("idle"))
            for c in energy.columns:
                runs[c] = energy[c]
        # Statistics warnings, clocks, throttling, skew, window: one place (results.diagnose),
        # stored as values and, for printing, as sentences after the controls' warnings; the
        # series' part computed per phase, on every in-window inference
        runs["diagnostics"] = diagnose(runs, None, tel_frame, series=self._series) if len(runs) else []
        first = list(ctl.get("warnings", []))
        runs["warnings"] = [first + [d["message"] for d in diag] + late
                            for late, diag in zip(self._late, runs["diagnostics"])]
        aggregates = (pd.concat(self._aggregates, ignore_index=True) if self._aggregates
                      else pd.DataFrame(columns=list(AGGREGATES.names)))
        out = {"runs": runs, "telemetry": tel_frame, "aggregates": aggregates}
        if self.sink is None:
            out["samples"] = (pa.concat_tables(self._samples).to_pandas() if self._samples
                              else pd.DataFrame(columns=list(SAMPLES.names)))
        return out


def _thermal_columns(o: dict) -> dict:
    """A row's cooldown before its phase and the over-current events during it."""
    out: Dict[str, object] = {}
    cooled = o.get("cooldown")
    if cooled is not None:
        out.update(cooldown_s=float(cooled["waited_s"]), cooldown_temp_c=cooled.get("c"))
    oc = o.get("oc")
    if oc is not None and oc[0] is not None:
        out.update(oc_events=int(oc[0]), oc_events_detail=oc[1])
    return out


def _queue_ms(ts: np.ndarray, ta: np.ndarray):
    """The samples column ``queue_ms`` of rows ``lo:hi``: how long each frame waited from its
    arrival to its start."""
    return lambda lo, hi: (ts[lo:hi] - ta[lo:hi]) / 1e6


def _measured_span(raw: dict) -> Optional[tuple]:
    """(first measured start, last measured end) of one loop's samples, or None."""
    m = ~np.asarray(raw["warmup"], dtype=bool)
    if not m.any():
        return None
    ts, te = raw["t_start_ns"], raw["t_end_ns"]
    return (int(ts.min(where=m, initial=np.iinfo(np.int64).max)),
            int(te.max(where=m, initial=np.iinfo(np.int64).min)))


def _tail(warm: np.ndarray) -> Optional[slice]:
    """The measured inferences as a slice where they are the loop's tail (the warm-up
    first, as ``run_loop`` records it), else None."""
    k = int((~warm).argmax()) if len(warm) else 0
    if len(warm) and not warm[k] and not warm[k:].any():
        return slice(k, len(warm))
    return None


def _phase_line(outcomes: List[dict], rows: List[dict]) -> str:
    """``cls: n 50, p50 0.58 ms; det failed: ...``: a phase's outcome in one line, from
    its rows' statistics (together: over the common window)."""
    parts = []
    for o, r in zip(outcomes, rows):
        if o["status"] != "ok":
            parts.append(f"{o['model']} {o['status']}: {o.get('error')}")
        elif r.get("n"):
            parts.append(f"{o['model']}: n {r['n']}, p50 {r['p50_ms']:.3g} ms")
        else:
            parts.append(f"{o['model']}: n 0")
    return "; ".join(parts)


def build_tables(plan: Plan, result: dict) -> Dict[str, pd.DataFrame]:
    """Samples, runs (statistics over the right window), telemetry and aggregates of one
    run whose outcomes all kept their raw samples (``execute`` without ``on_phase``):
    ``RunTables`` given one phase at a time."""
    tables = RunTables(plan)
    group: List[dict] = []
    for o in (dict(o) for o in result["outcomes"]):  # (``add`` takes the raw samples out of what it is given)
        if group and o["phase"] != group[0]["phase"]:
            tables.add(group)
            group = []
        group.append(o)
    if group:
        tables.add(group)
    return tables.finish(result)


def _throughput(ts: np.ndarray, te: np.ndarray, batch: int, end_ns: Optional[int] = None,
                mask: Optional[np.ndarray] = None) -> float:
    """Achieved images per second over the measured span (first start to last end, or to
    ``end_ns``: with ``sync: none`` the final synchronisation, when every launched
    inference was done) of the inferences ``mask`` selects (all without): gaps,
    synchronisation and, together, the fill all count (``fps`` is latency-bound)."""
    n = len(ts) if mask is None else int(np.count_nonzero(mask))
    if n == 0:
        return float("nan")
    first = int(ts.min(where=mask, initial=np.iinfo(np.int64).max)) if mask is not None else int(ts.min())
    last = int(te.max(where=mask, initial=np.iinfo(np.int64).min)) if mask is not None else int(te.max())
    span_ns = (int(end_ns) if end_ns is not None else last) - first
    return n * batch * 1e9 / span_ns if span_ns > 0 else float("nan")


#: spec fields that do not change what is measured: a run of the same settings under another
#: name, output folder, description, level or number of repeats measures the same condition
_NOT_SETTINGS = ("name", "description", "output", "confidence", "repeats")
#: nor does which samples a run keeps (``timing.samples``: its statistics are of every inference),
#: nor the arrival clock's seed (runs of other seeds are repeats of one condition: its column is ``seed``)
_NOT_TIMING_SETTINGS = ("samples", "seed")


def _settings(spec) -> str:
    """The resolved spec as one canonical JSON string, less ``_NOT_SETTINGS``: runs whose
    ``settings`` differ are different conditions (``results.compare``)."""
    exclude = {k: True for k in _NOT_SETTINGS}
    exclude["timing"] = {k: True for k in _NOT_TIMING_SETTINGS}
    return json.dumps(spec.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":"))


def _option_columns(options: dict) -> dict:
    """The model's backend options as a canonical JSON string, and the ones that change
    latency most as columns of their own (ONNX Runtime's ``threads``, TensorRT's ``opt_level``)."""
    opts = dict(options or {})

    def num(k):
        v = opts.get(k)
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return {"options": json.dumps(opts, sort_keys=True, default=str) if opts else None,
            "threads": num("threads"), "opt_level": num("opt_level")}


def _precision_columns(m) -> dict:
    """How the model got its precision: converted (by what, from which calibration set),
    and for engines the typing TensorRT built with."""
    c, e = m.converted or {}, m.engine or {}
    dla = e.get("dla_core")
    return {"typing": e.get("typing"), "dla_core": dla,
            "dla_gpu_layers": list(e.get("gpu_layers") or []) if dla is not None else None,
            "converter": c.get("converter"), "converted_sha256": c.get("sha256"),
            "calib_sha256": c.get("calib_sha256")}


def run_plan(plan: Plan, log: Optional[Log] = None) -> dict:
    """Connect (or start) Ray, execute, write the run as it goes: a hidden folder opened
    with the first phase's samples (a run refused on the node creates nothing), each
    phase's samples appended as it ends, the rest at the end, then renamed
    into place (``results.RunWriter``); an exception on the way removes the folder.
    Returns the run's folder and its runs, telemetry and aggregates tables (the samples
    are in the folder). ``log``: where the progress lines go (default: the
    ``trt_ray_bench`` logger)."""
    log = progress.say(log)
    started = connect(plan.address)
    try:
        t0 = time.perf_counter()
        writer = RunWriter(plan.run_dir, lazy=True)  # opened by the first phase's samples (or the end)
        try:
            tables = RunTables(plan, sink=writer.write_samples)
            result = execute(plan, log, on_phase=tables.add)
            out = tables.finish(result)
            path = writer.finish(out, plan.spec_yaml)
        except BaseException:
            writer.abort()
            raise
        for d in writer.removed:
            log.info(f"removed  {d}: an unfinished run's hidden folder, its process gone")
        log.info(f"wrote    {path}  ({time.perf_counter() - t0:.1f} s)")
        for e in result["telemetry"].get("errors", []):
            log.warning(f"warning  telemetry: {e}")
        if result.get("interrupted") is not None:  # written, restored: now the caller stops too
            raise result["interrupted"]
        return {"run_dir": path, "tables": out, "failed": result.get("monitor_died")}
    finally:
        if started:
            ray.shutdown()
