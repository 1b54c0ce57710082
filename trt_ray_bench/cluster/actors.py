"""The three Ray actors of one experiment on one node. They hold state and expose a few
coarse methods; the orchestration is in ``node_run`` on the driver."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from typing import Dict, List, Optional

import numpy as np
import ray

from ..errors import UserError
from ..timing import LoopPlan, Samples, run_loop

NAMESPACE = "trb"


@ray.remote(num_cpus=0, max_concurrency=2)
class ModelActor:
    """One model: loads its engine once, then times it per phase. Threaded (2) so that
    ``stop`` reaches it while ``run_phase`` is looping."""

    def __init__(self, model, input_spec: dict):
        self.model = model
        self.input_spec = input_spec
        self.runner = None
        self.dataset = None
        self._modes: Dict[str, object] = {}
        self._stop = threading.Event()
        self._window_start: Optional[int] = None
        self._samples: Optional[Samples] = None  # the phase being timed (progress reads it)
        self._target: tuple = (None, None)  # its (iterations, duration_s)

    def load(self) -> dict:
        from ..engines import load_runner, make_inputs

        t0 = time.perf_counter()
        m = self.model
        self.runner = load_runner(m)
        self.runner.prepare(make_inputs(
            self.input_spec["kind"], m.hw, m.batch, m.task, seed=self.input_spec.get("seed", 0),
            path=self.input_spec.get("path"), limit=self.input_spec.get("limit"), dtype=m.input_dtype,
        ))
        data = (self.input_spec.get("data") or {}).get(m.name)
        if data:  # pipeline / validation modes: the labelled set, read again here on the node
            from ..validation import load_dataset

            self.dataset = load_dataset(data, m.task, limit=self.input_spec.get("data_limit"),
                                        on_bad_label=self.input_spec.get("on_bad_label", "stop"))
            from ..engines.pipeline import preload

            preload()  # here, in every model's process at once: not in its first pipeline phase
        info = dict(self.runner.describe())
        info.update(pid=os.getpid(), load_s=time.perf_counter() - t0, n_inputs=self.runner.n_inputs,
                    # the pinning, as this process sees it
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                    mps_pipe_dir=os.environ.get("CUDA_MPS_PIPE_DIRECTORY"))
        return info

    def _runner_for(self, mode: str, sync: str):
        """The runner a mode times: the engine itself, or the pipeline over the data set
        (with the metric work for ``validation``); built once per mode."""
        if mode == "inference":
            return self.runner
        if mode not in self._modes:
            from ..engines.pipeline import PipelineRunner
            from ..validation import VAL_CONF, VAL_IOU, ValidationRunner

            kw = {} if mode == "pipeline" else {"conf": VAL_CONF, "iou": VAL_IOU}
            pipe = PipelineRunner(self.runner, self.model, sync=sync, **kw)
            pipe.prepare(self.dataset.images)
            self._modes[mode] = pipe if mode == "pipeline" else ValidationRunner(pipe, self.dataset,
                                                                                 metrics=mode == "validation")
        return self._modes[mode]

    def run_phase(self, plan: LoopPlan, coordinator=None, fill: bool = False,
                  fill_timeout_s: Optional[float] = None, mode: str = "inference") -> Dict[str, np.ndarray]:
        """Warm up, (together: wait at the coordinator's barrier), time; return raw samples.
        With ``fill`` the model keeps running after its count until the coordinator stops it."""
        self._stop.clear()
        self._window_start = None
        name = self.model.name
        release = on_target = on_begin = window_start = None
        stop = None
        if coordinator is not None:
            def release() -> int:
                return ray.get(coordinator.arrive.remote(name))

            # fire and forget, both: not inside a timed span
            def on_target() -> None:
                coordinator.reached.remote(name)

            def on_begin(t_ns: int) -> None:
                coordinator.began.remote(name, t_ns)

            def window_start() -> Optional[int]:
                return self._window_start

            stop = self._stop if fill else None
        runner = self._runner_for(mode, plan.sync)
        if mode in ("validation", "without_val"):  # one pass over the set
            plan = dataclasses.replace(plan, iterations=self.dataset.n_images, duration_s=None)
        self._samples, self._target = Samples(), (plan.iterations, plan.duration_s)
        try:
            s = run_loop(runner, plan, release=release, stop=stop, on_target=on_target, max_s=fill_timeout_s,
                         on_begin=on_begin, window_start=window_start, out=self._samples)
        finally:
            self._samples = None  # not held past the phase (a long one's arrays are large)
        out = raw_samples(s)
        if self.dataset is not None and mode != "inference":
            out["data"] = {"summary": self.dataset.summary(), "n_images": self.dataset.n_images,
                           "n_labels": self.dataset.n_labels}
            result = getattr(runner, "result", None)
            metrics = result() if result is not None else None  # the mAP / top-k over the set: once
            if metrics is not None:
                out["metrics"] = metrics
        return out

    def progress(self) -> dict:
        """How far the phase being timed is: ``stage`` (idle, warmup, measure), ``n``
        (inferences: warm-up ones before measuring, measured ones after), ``elapsed_s``
        since measuring began, and the phase's ``iterations`` / ``duration_s``. Runs in
        the actor's second thread and only reads two integers of the loop (the GIL makes
        that safe); the driver asks only while it draws a live display."""
        s = self._samples  # one read: the phase may end (and drop it) meanwhile
        iterations, duration_s = self._target
        if s is None:
            return {"stage": "idle", "n": 0, "elapsed_s": 0.0, "iterations": iterations, "duration_s": duration_s}
        n, first = len(s.t_start_ns), s.measured_from
        if first < 0:
            return {"stage": "warmup", "n": n, "elapsed_s": 0.0, "iterations": iterations, "duration_s": duration_s}
        return {"stage": "measure", "n": n - first, "elapsed_s": (time.perf_counter_ns() - s.released_ns) / 1e9,
                "iterations": iterations, "duration_s": duration_s}

    def stop(self) -> None:
        self._stop.set()

    def set_window_start(self, t_ns: int) -> None:
        """The together window's start (the latest first measured start), from the coordinator."""
        self._window_start = t_ns

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None


def raw_samples(s: Samples) -> Dict[str, object]:
    """One loop's samples as the driver gets them (``node_run.build_tables`` reads them)."""
    out = {
        "t_start_ns": np.asarray(s.t_start_ns, dtype=np.int64),
        "t_end_ns": np.asarray(s.t_end_ns, dtype=np.int64),
        "enqueue_ns": np.asarray(s.enqueue_ns, dtype=np.int64),
        "warmup": np.asarray(s.warmup, dtype=bool),
        "instant_ns": s.instant_ns,
        "stages": {k: np.asarray(v, dtype=np.float64) for k, v in s.stages.items()},
        "released_ns": s.released_ns,
        "n_target": s.n_target,
        "barrier_warmup_n": s.barrier_warmup_n,
        # sync: none: the final synchronisation (end of the measured span, its wait) and
        # the measured inferences the event ring could not hold (no GPU time)
        "t_sync_end_ns": s.t_sync_end_ns,
        "sync_wait_ns": s.sync_wait_ns,
        "gpu_capacity": s.gpu_capacity,
        "gpu_missing": s.gpu_missing,
        "pid": os.getpid(),  # repeat_isolation: process shows a fresh one per repeat
    }
    if s.gpu_ms is not None:
        out["gpu_ms"] = np.asarray(s.gpu_ms, dtype=np.float64)
    if len(s.t_arrival_ns):  # an open loop: each inference's frame, its arrival, whether it found the model idle
        out.update(t_arrival_ns=np.asarray(s.t_arrival_ns, dtype=np.int64), frame=np.asarray(s.frame, dtype=np.int64),
                   idle=np.asarray(s.idle, dtype=bool), frame_from=s.frame_from, frame_end=s.frame_end)
    return out


@ray.remote(num_cpus=0)
def prepare_models(models: list, wheres: list, build: list) -> list:
    """On the node that will run them (its GPU, its TensorRT): every model's backend
    library must import here; the models at indices ``build`` get what their backend
    makes (engines, converted models), returned in that order. Every model is checked
    first (its backend, and what the node's device refuses: a DLA core it lacks, ...), so a
    refusal comes before any build. Before the node's clocks or MPS are touched."""
    from ..engines import check_on_node, prepare_model, require_backend

    for m, w in zip(models, wheres):
        require_backend(m, w)
    for i in build:
        check_on_node(models[i], wheres[i])
    return [prepare_model(models[i], wheres[i]) for i in build]


@ray.remote(num_cpus=0)
class Coordinator:
    """Barrier of a together run: when every expected model has arrived it picks one
    start instant, ``lead_s`` after the last arrival, on this node's monotonic clock
    (``perf_counter_ns``), which the models sleep then spin until. Once every model has
    begun, tells them all where the common window starts (the latest first measured
    start), so that with a fill each counts its inferences in the window; stops the fill
    once every model has done its count there. Models that die are withdrawn by the driver."""

    def __init__(self, expected: List[str], lead_s: float, timeout_s: float):
        self.expected = set(expected)
        self.lead_ns = int(lead_s * 1e9)
        self.timeout_s = timeout_s
        self.arrived: Dict[str, int] = {}
        self.reached_set: set = set()
        self.firsts: Dict[str, int] = {}  # first measured start per model
        self.window_start_ns: Optional[int] = None
        self.actors: Dict[str, object] = {}
        self.start_ns: Optional[int] = None
        self._released = asyncio.Event()
        self._stopped = False
        self.broken: Optional[str] = None

    def set_actors(self, actors: Dict[str, object]) -> None:
        self.actors = dict(actors)

    def _check(self) -> None:
        if self.start_ns is None and self.expected and self.expected <= set(self.arrived):
            self.start_ns = time.perf_counter_ns() + self.lead_ns
            self._released.set()
        if self.window_start_ns is None and self.expected and self.expected <= set(self.firsts):
            # a model withdrawn after it began may leave this later than the window: only safer
            self.window_start_ns = max(self.firsts.values())
            for actor in self.actors.values():
                actor.set_window_start.remote(self.window_start_ns)
        if not self._stopped and self.expected and self.expected <= self.reached_set:
            self._stopped = True
            for name, actor in self.actors.items():
                actor.stop.remote()

    async def arrive(self, name: str) -> int:
        if self.broken:  # a late arrival must not run "together" with nobody
            raise TimeoutError(self.broken)
        self.arrived[name] = time.perf_counter_ns()
        self._check()
        try:
            await asyncio.wait_for(self._released.wait(), self.timeout_s)
        except asyncio.TimeoutError:
            if self.start_ns is None:
                missing = sorted(self.expected - set(self.arrived))
                self.broken = (
                    f"barrier: {', '.join(missing)} did not arrive within {self.timeout_s:g} s "
                    "(timing.barrier_timeout_s)"
                )
            if self.broken:
                raise TimeoutError(self.broken) from None
        return self.start_ns

    def began(self, name: str, t_ns: int) -> None:
        self.firsts[name] = t_ns
        self._check()

    def reached(self, name: str) -> None:
        self.reached_set.add(name)
        self._check()

    def withdraw(self, name: str) -> None:
        self.expected.discard(name)
        self.actors.pop(name, None)
        self._check()

    def state(self) -> dict:
        return {"start_ns": self.start_ns, "arrived": dict(self.arrived), "reached": sorted(self.reached_set),
                "window_start_ns": self.window_start_ns}


def journal_key(uuid: Optional[str], index: Optional[int]) -> str:
    """The node journal's key for a run's machine controls: one journal per GPU (its UUID,
    else its index), ``node`` where the run leases none."""
    if uuid is None and index is None:
        return "node"
    return uuid or f"gpu{index}"


@ray.remote(num_cpus=0)
class Monitor:
    """Telemetry of the node, sampled in a thread, on the same clock as the samples; the
    node's controls (clock mode, MPS), applied and restored in this one process; and, on a
    node with GPUs, the lease of the experiment's GPU (``control.gpus``), held for this
    process's life: telemetry, clocks and MPS act on that GPU alone."""

    def __init__(self, interval_s: float, host: bool = True, sample_nvml: bool = False,
                 tegrastats: Optional[bool] = False, tegrastats_ms: int = 100, nvml: Optional[bool] = None,
                 lease: float = 0, lease_wait_s: float = 10.0, driver: Optional[dict] = None):
        """``nvml``: True requires NVML on the GPU (a UserError from ``provenance`` where
        it does not answer), None uses it where it answers (never on a Jetson, which has
        none), False never; ``sample_nvml`` says whether the driver wants it at all.
        ``tegrastats``: True runs it (absent: a warning), None runs it if this node is a
        Jetson, False never; ``tegrastats_ms`` its ``--interval``. ``lease``: the GPUs
        Ray says this node has; where there are any, take one that is free (waiting up to
        ``lease_wait_s`` for one), refused by ``provenance`` where none is. ``driver``:
        ``telemetry.foreign.driver_identity()`` of the run's driver: it and its
        descendants are ours, not foreign load."""
        from ..control import detect_platform
        from ..telemetry import Collector, HostSampler

        kind = detect_platform()["kind"]
        from ..control._paths import sysfs_path

        samplers = [HostSampler(thermal_root=sysfs_path("/"))] if host else []
        notes: List[str] = []
        self.init_error: Optional[UserError] = None
        self.lease = None
        self.lease_note: Optional[str] = None
        self.lease_wait_s = lease_wait_s
        self.board_lease = None  # where no GPU is leased but the controls change the machine (check_controls)
        self.host_gpus = 0  # the machine's GPUs, visible or not: several means a daemon per GPU for MPS
        if lease > 0:
            try:
                self._take_gpu(int(lease), lease_wait_s)
            except UserError as exc:
                self.init_error = exc
        gpu = self.lease.gpu if self.lease is not None else None
        if sample_nvml and nvml is not False and not (nvml is None and kind == "jetson") and self.init_error is None:
            from ..telemetry import NvmlSampler

            try:
                samplers.append(NvmlSampler(gpu.index, uuid=gpu.uuid) if gpu is not None else NvmlSampler(0))
            except Exception as exc:  # noqa: BLE001 - no NVML library or driver on this node
                if nvml:
                    self.init_error = UserError("telemetry.nvml", f"true, but NVML does not answer on this node "
                                                f"({exc.__class__.__name__}: {exc})")
                else:
                    notes.append(f"nvml: not sampled ({exc.__class__.__name__}: {exc})")
        if tegrastats is not False:
            from ..telemetry.tegrastats import TegrastatsSampler, wanted

            if wanted(tegrastats, kind):
                samplers.append(TegrastatsSampler(tegrastats_ms))
        from ..telemetry.foreign import ForeignSampler

        nv = next((s for s in samplers if str(getattr(s, "source", "")).startswith("nvml")), None)
        samplers.append(ForeignSampler(driver, gpu=(nv.nvml, nv.handle) if nv is not None else None))
        self.collector = Collector(samplers, interval_s)
        self.collector.errors.extend(notes)
        self.controls = None

    def _take_gpu(self, ray_gpus: int, wait_s: float) -> None:
        """This node's GPUs are those its raylet's CUDA_VISIBLE_DEVICES shows (this
        process keeps that value: RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES). Where
        neither NVML nor nvidia-smi names any although Ray counts some (``--num-gpus``
        given by hand), Ray's own GPU ids are leased, by number."""
        from ..control.gpus import GpuLease, list_gpus, ray_gpus_by_number, visible_gpus

        everything = list_gpus()
        self.host_gpus = len(everything)
        gpus = visible_gpus(gpus=everything)
        if not gpus and not everything:
            gpus = ray_gpus_by_number(ray_gpus)
            self.lease_note = "no NVML or nvidia-smi names this node's GPUs: Ray's GPU taken by its number"
        self.lease = GpuLease.acquire(gpus, wait_s=wait_s)

    def gpu(self) -> Optional[dict]:
        """The leased GPU (``index``, ``uuid``, ``name``, ``cuda_visible_devices``; and
        ``note`` where it was taken by number), None on a node without GPUs."""
        if self.lease is None:
            return None
        return {**self.lease.as_dict(), "note": self.lease_note}

    def check_controls(self, spec: dict) -> dict:
        """Refuse (UserError) what this node cannot apply; changes nothing. The clocks
        are the leased GPU's; on a machine with several GPUs MPS is that GPU's own daemon."""
        from ..control import MachineControls, MpsDaemon

        gpu = self.lease.gpu if self.lease is not None else None
        daemon = MpsDaemon(gpu.cuda_id) if gpu is not None and self.host_gpus > 1 else None
        key = journal_key(gpu.uuid, gpu.index) if gpu is not None else journal_key(None, None)
        self.controls = MachineControls.from_spec(spec, gpu.index if gpu is not None else 0, mps_daemon=daemon,
                                                  journal_key=key)
        if self.lease is None and self.controls.changes():
            self._hold_machine()
        return self.controls.check()

    def _hold_machine(self) -> None:
        """A run that leases no GPU (a Jetson whose node counts none for Ray) but changes
        the clocks, the power mode or MPS takes GPU 0's lease all the same: those settings
        are GPU 0's, and on a Jetson the whole board's, so two runs never change them at once,
        nor one under another's measurement. Refused in one line naming the setting."""
        from ..control.gpus import Gpu, GpuLease, holder_text, list_gpus, lock_dir

        c = self.controls
        where, asked = (("clocks", c.record["clocks_mode"]) if c.clocks is not None else
                        ("power_mode", c.power_mode) if c.nvpmodel is not None else ("mps", "true"))
        gpus = [g for g in list_gpus() if g.index == 0][:1] or [Gpu(0)]
        try:
            self.board_lease = GpuLease.acquire(gpus, wait_s=self.lease_wait_s)
        except UserError as exc:
            lock = lock_dir() / f"{gpus[0].key}.lock"
            if not lock.exists():  # not held: the lock folder itself failed, which the message says
                raise
            board = " (on a Jetson, the whole board's)" if c.kind == "jetson" else ""
            raise UserError(where, f"{asked}: changes GPU 0's settings{board}, which another experiment on this node "
                                   f"holds{holder_text(lock)}; waited {self.lease_wait_s:g} s for it "
                                   f"(lock {lock})") from None

    def apply_controls(self) -> dict:
        """The controls' record, and ``mps_pipe_dir``: the folder the model processes must
        be given to be this GPU's MPS clients (None: their own environment's)."""
        rec = self.controls.apply()
        rec["mps_pipe_dir"] = self.controls.daemon.client_pipe_dir
        return rec

    def restore_controls(self) -> dict:
        try:
            return self.controls.restore() if self.controls is not None else {}
        finally:
            if self.board_lease is not None:  # restored: another run may change them now
                self.board_lease.release()

    def provenance(self) -> dict:
        """The node's provenance; first call after creation, so it raises what the
        Monitor could not set up (``init_error``)."""
        if self.init_error is not None:
            raise self.init_error
        from ..control import collect_provenance

        gpu = self.lease.gpu if self.lease is not None else None
        p = collect_provenance(gpu.index if gpu is not None else 0)
        if gpu is not None and gpu.uuid and not p.get("gpu_name"):  # no NVML here: nvidia-smi named it
            p["gpu_name"] = gpu.name
        p["node_id"] = ray.get_runtime_context().get_node_id()
        return p

    def start(self) -> int:
        self.collector.start()
        return time.perf_counter_ns()

    def temperature(self) -> Optional[dict]:
        """The temperature a cooldown waits on: the leased GPU's (NVML) where it is
        sampled, else the board's hottest thermal zone (``telemetry.thermal``); ``{"c",
        "what"}``, or None where this node has neither."""
        from ..control._paths import sysfs_path
        from ..telemetry.thermal import hottest_zone

        nv = next((s for s in self.collector.samplers if str(getattr(s, "source", "")).startswith("nvml")), None)
        if nv is not None:
            c = nv.read_metric("temp_c:gpu")
            if c is not None:
                return {"c": c, "what": "GPU"}
        zone = hottest_zone(sysfs_path("/"))
        return {"c": zone[1], "what": f"thermal zone {zone[0]}"} if zone else None

    def cooldown(self, temp_c: float, timeout_s: float) -> dict:
        """Wait until ``temperature()`` is at or below ``temp_c``, at most ``timeout_s``
        (``telemetry.thermal.wait_until_cool``)."""
        from ..telemetry.thermal import wait_until_cool

        return wait_until_cool(self.temperature, temp_c, timeout_s)

    def idle(self, seconds: float) -> tuple:
        """Sample the node for ``seconds`` with nothing running (the samplers keep going):
        the idle window's start and end on the node's clock."""
        t0 = time.perf_counter_ns()
        time.sleep(seconds)
        return t0, time.perf_counter_ns()

    def oc_events(self) -> Dict[str, int]:
        """The board's over-current event counters now (Orin, Thor; empty elsewhere)."""
        from ..control._paths import sysfs_path
        from ..telemetry.thermal import oc_event_counts

        return oc_event_counts(sysfs_path("/"))

    def stop(self) -> dict:
        """Telemetry, and the GPU given back where its controls were restored (the next
        experiment may start before this process has exited; a GPU whose restore failed
        stays held until it has)."""
        rows = self.collector.stop()
        restored = self.controls is None or not any(
            w.startswith("not restored") for w in self.controls.record.get("warnings", []))
        if self.lease is not None and restored:
            self.lease.release()
        return {"rows": rows, "errors": list(self.collector.errors)}

    def __ray_shutdown__(self) -> None:
        # A graceful exit without stop() (the driver gone, the handle dropped) must not
        # leave tegrastats running; ray.kill is covered by the child's PR_SET_PDEATHSIG.
        if getattr(self, "collector", None) is not None:
            self.collector.stop()
