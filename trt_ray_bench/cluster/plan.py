"""The plan of one experiment: what runs where, in what order, written where.
Preflight checks live here too: everything that can be refused is refused before Ray
starts or a single inference is timed."""

from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..control.gpus import visible_gpus
from ..control.journal import left_behind
from ..control.machine import MachineControls, clocks_text
from ..control.platform import detect_platform, driver_text
from ..engines import check_model, needs_gpu, require_backend, resolve_model
from ..errors import UserError
from ..models import ResolvedModel, cache_dir, inspect_onnx
from ..models._inputs import list_images, open_image
from ..results import check_writable
from ..spec import ExperimentSpec, spec_to_yaml


@dataclass(frozen=True)
class Phase:
    repeat: int
    phase: str  # alone | together
    models: Tuple[str, ...]
    mode: str = "inference"  # inference | pipeline | validation | without_val
    variant: str = ""  # the timing variant (spec ``variants``), "" where there are none


@dataclass
class Plan:
    spec: ExperimentSpec
    run_id: str
    run_dir: Path
    models: List[ResolvedModel]
    phases: List[Phase]
    spec_yaml: str
    spec_sha256: str
    address: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    #: pipeline / validation modes: each model's data set (a data yaml or class folders)
    data: Dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        s = self.spec
        t = s.timing
        count = f"{t.iterations} iterations" if t.iterations else f"{t.duration_s:g} s"
        lines = [
            f"experiment  {s.name}  (run {self.run_id})",
            f"ray         {self.address or 'local (started for this run, this machine)'}",
            f"node        the driver's node{'' if self.address else ' (local)'}",
            f"timing      warm-up {t.warmup} it{f' + {t.warmup_s:g} s' if t.warmup_s else ''}, {count}, "
            f"gap {t.gap_s:g} s, sync {t.sync}" + _arrivals_text(t)
            + (", together fills until all finish" if t.fill and t.iterations else ""),
            f"input       {s.input.kind}" + (f" from {s.input.path}" if s.input.path else f" (seed {s.input.seed})"),
            f"machine     clocks {clocks_text(s.clocks)}, mps {'on' if s.mps else 'off'}"
            + (f", power mode {s.power_mode}" if s.power_mode is not None else "")
            + ("  (checked on the node; applied before the models load, restored after)"
               if s.clocks != "default" or s.mps or s.power_mode is not None else ""),
            "models",
        ]
        for m in self.models:
            src = m.onnx_path or (m.source if m.source.lower().endswith((".engine", ".plan", ".onnx"))
                                  else f"{m.source} -> ONNX (exported on first use, cached)")
            prec = f" {m.precision}"
            size = f"{m.hw[0]}x{m.hw[1]}" if m.hw_known else "size from the engine"
            t = s.timing_for(next(ms for ms in s.models if ms.name == m.name))  # before the variants
            own = "" if t == s.timing else (f"  [timing: warm-up {t.warmup}, gap {t.gap_s:g} s, sync {t.sync}"
                                            f"{_arrivals_text(t)}]")
            lines.append(
                f"  {m.name:<16} {m.task or '?':<8} {m.backend + prec:<17} {size} b{m.batch}  "
                f"weights {m.weights:<7} {src}{own}"
            )
        for v in s.variants:
            t = v.timing.model_dump(exclude_none=True)
            lines.append(f"  variant {v.name}: " + (", ".join(f"{k} {x}" for k, x in t.items()) or "the model's timing"))
        lines.append(f"phases      ({s.repeat_order} repeats, {s.repeat_isolation} isolation)" if s.repeats > 1
                     else "phases")
        width = max((len(p.variant) for p in self.phases), default=0)
        for p in self.phases:
            mode = f"{p.mode:<12}" if len(s.modes) > 1 or p.mode != "inference" else ""
            var = f"{p.variant:<{width}}  " if width else ""
            lines.append(f"  repeat {p.repeat}  {mode}{var}{p.phase:<8}  {', '.join(p.models)}")
        lines.append(f"output      {self.run_dir}")
        lines.extend(f"note        {n}" for n in self.notes)
        return "\n".join(lines)


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def phases_of(spec: ExperimentSpec, names: List[str]) -> List[Phase]:
    """Every phase in the order it runs. ``interleaved`` (default): repeat by repeat, each
    running every mode, variant and phase (alone a, b, c, then together), so a drift of the
    machine spreads over all conditions; ``grouped``: each model's alone repeats one after
    another (a, a, b, b), then the together repeats."""
    variants = spec.variant_names
    if spec.repeat_order == "interleaved":
        out = []
        for r in range(spec.repeats):
            for mode in spec.modes:
                for v in variants:
                    for ph in spec.phases:
                        if ph == "alone":
                            out.extend(Phase(r, "alone", (n,), mode, v) for n in names)
                        else:
                            out.append(Phase(r, "together", tuple(names), mode, v))
        return out
    out = []
    if "alone" in spec.phases:
        out = [Phase(r, "alone", (n,), mode, v) for n in names for r in range(spec.repeats)
               for mode in spec.modes for v in variants]
    if "together" in spec.phases:
        out += [Phase(r, "together", tuple(names), mode, v) for r in range(spec.repeats)
                for mode in spec.modes for v in variants]
    return out


def make_plan(spec: ExperimentSpec, address: Optional[str] = None, export: bool = True) -> Plan:
    """Validate everything about ``spec`` that can be checked here; export models if
    ``export`` (a dry run does not). Raises ``UserError`` before anything is measured."""
    out_root = Path(spec.output) / spec.name
    check_writable(out_root, "output")
    if spec.input.kind == "images":
        files = list_images(spec.input.path, spec.input.limit)
        _verify_images(files)
    missing = []
    if address is None:  # the models run here: their libraries must import here
        for exc in refusals_here(spec):  # before Ray starts, not in the Monitor after it
            if export:
                raise exc
            missing.append(str(exc))
        for i, m in enumerate(spec.models):
            try:
                require_backend(m, f"models[{i}]")
            except UserError as exc:
                if export:
                    raise
                missing.append(str(exc))  # a dry run plans anywhere; it says what a run here lacks
    models = []
    for i, m in enumerate(spec.models):
        r = resolve_model(m, f"models[{i}]", export=export)
        check_model(r, f"models[{i}]")
        models.append(r)
    spec = with_seed(spec)
    yaml_text = spec_to_yaml(spec)
    run_id = new_run_id()
    plan = Plan(
        spec=spec, run_id=run_id, run_dir=out_root / run_id, models=models,
        phases=phases_of(spec, [m.name for m in models]), spec_yaml=yaml_text,
        spec_sha256=hashlib.sha256(yaml_text.encode()).hexdigest(), address=address,
    )
    if any(mode != "inference" for mode in spec.modes):
        _check_data(plan, export)
    plan.notes.extend(f"not runnable on this machine: {m}" for m in dict.fromkeys(missing))
    random = [m.name for m in models if m.weights == "random"]
    if random:
        plan.notes.append(f"random weights (built from Ultralytics yaml): {', '.join(random)}; "
                          "latency is representative, predictions are not")
    return plan


def with_seed(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with ``timing.seed`` drawn where an open loop needs one and none is given:
    kept in the resolved spec (``spec.yaml``, so the run can be replayed) and in the runs
    column ``seed``."""
    if spec.timing.seed is not None or not any(spec.timing_for(m, v or None).arrivals != "closed"
                                               for m in spec.models for v in spec.variant_names):
        return spec
    return spec.model_copy(update={"timing": spec.timing.model_copy(update={"seed": secrets.randbelow(2 ** 31)})})


def _arrivals_text(t) -> str:
    """``, arrivals periodic 30 Hz (queue), deadline 33 ms``: an open loop's timing in words."""
    out = ""
    if t.arrivals != "closed":
        out += f", arrivals {t.arrivals} {t.rate_hz:g} Hz ({t.backlog}" + (
            f", jitter {t.jitter_ms:g} ms" if t.jitter_ms else "") + ")"
    if t.deadline_ms is not None:
        out += f", deadline {t.deadline_ms:g} ms"
    return out


def refusals_here(spec: ExperimentSpec) -> List[UserError]:
    """What this machine refuses for a run of ``spec`` here, known before Ray starts: a
    model that needs a GPU where the NVIDIA driver does not answer (``driver_problem``),
    a node journal that cannot be read (the run's Monitor would refuse it too; readable
    journals of killed runs are restored there, not refused), and a clock, MPS or power
    mode this machine cannot give (``MachineControls.check``). Reads only."""
    out: List[UserError] = []
    gpu = [i for i, m in enumerate(spec.models) if needs_gpu(m)]
    problem = detect_platform().get("driver") if gpu else None
    if problem:
        m = spec.models[gpu[0]]
        out.append(UserError(f"models[{gpu[0]}].backend", f"{m.backend} needs a GPU here: {driver_text(problem)}"))
    try:
        left_behind()  # raises for a journal that cannot be read (or a folder that cannot be listed)
    except UserError as exc:
        out.append(exc)
    if not out and (spec.clocks != "default" or spec.mps or spec.power_mode is not None):
        # Reads only: what the run's Monitor would refuse after Ray and the plan. On a host
        # of several GPUs the run's GPU is known only once it is leased: the node checks it.
        gpus = visible_gpus()
        if len(gpus) <= 1:
            try:
                MachineControls.from_spec(spec, gpu_index=gpus[0].index if gpus else 0).check()
            except UserError as exc:
                out.append(exc)
    return out


def not_runnable_here(specs: List[ExperimentSpec]) -> List[str]:
    """What running these experiments on this machine lacks: one line per distinct reason
    (a backend library missing or broken here, a clock / power / MPS mode this machine
    refuses; checked, nothing changed), for a dry run of a sweep; [] if none."""
    lacks: List[str] = []
    for spec in specs:
        lacks.extend(str(exc) for exc in refusals_here(spec))
        for m in spec.models:
            try:
                require_backend(m)
            except UserError as exc:
                lacks.append(exc.message)
        try:
            MachineControls.from_spec(spec).check()  # reads only: the refusal a run would meet first
        except UserError as exc:
            lacks.append(str(exc))
    return [f"not runnable on this machine: {x}" for x in dict.fromkeys(lacks)]


def _check_data(plan: Plan, make: bool) -> None:
    """Each model's data set read and checked here (labels, classes, images), so that a
    bad set is refused before anything runs; synthetic sets are generated (cached)."""
    from ..validation import load_dataset, make_synthetic

    d = plan.spec.data
    for i, m in enumerate(plan.models):
        where = f"models[{i}]"
        if m.batch != 1:
            raise UserError(f"{where}.batch", "the pipeline and validation modes run one image per inference: batch 1")
        if not m.task:
            raise UserError(f"{where}.task", "needed by the pipeline and validation modes")
        if not m.hw_known:
            raise UserError(f"{where}.imgsz", "needed by the pipeline and validation modes for an engine file "
                            "(the data is prepared at the model's size before the engine is read)")
        if d.synthetic and not make:
            plan.notes.append(f"data for {m.name}: {d.synthetic} synthetic {m.task} images (made on first use)")
            continue
        nc, kpt_shape = _model_head(m)  # reads the export once
        if d.synthetic:
            folder = cache_dir() / "synthetic" / f"{m.task}-n{d.synthetic}-{m.hw[0]}x{m.hw[1]}-c{min(3, nc or 3)}-k{kpt_shape[0]}"
            marker = folder / "trb-data-path.txt"
            if marker.is_file():
                path = marker.read_text().strip()
            else:  # as many classes and keypoints as the model predicts (up to 3 classes)
                path = str(make_synthetic(m.task, folder, n=d.synthetic, imgsz=m.hw, nc=min(3, nc or 3),
                                          kpt_shape=kpt_shape))
                marker.write_text(path)
        else:
            path = d.path
        try:
            ds = load_dataset(path, m.task, limit=d.limit, on_bad_label=d.on_bad_label)
        except UserError as exc:
            raise UserError(exc.where, f"{exc.message} (for {where}, a {m.task} model)") from None
        if nc and len(ds.names) > nc:
            raise UserError("data", f"{path} has {len(ds.names)} classes; {m.name} predicts {nc}")
        plan.data[m.name] = str(path)
        plan.notes.append(f"data for {m.name}: {ds.summary()}")


def _model_head(m) -> Tuple[int, Tuple[int, int]]:
    """How many classes and keypoints the model predicts, from its export's metadata
    (0 classes: unknown; (5, 3) keypoints where it says none)."""
    if not m.onnx_path:
        return 0, (5, 3)
    import ast

    try:
        meta = inspect_onnx(Path(m.onnx_path), "model")["meta"]
        kpt = ast.literal_eval(meta["kpt_shape"]) if meta.get("kpt_shape") else (5, 3)
        return len(ast.literal_eval(meta.get("names", "{}"))), (int(kpt[0]), int(kpt[1]))
    except Exception:  # noqa: BLE001
        return 0, (5, 3)


def _verify_images(files) -> None:
    """Decode every image once (``verify()`` alone does not decode JPEG data), so a bad
    file is refused here rather than inside a model actor mid-run."""
    for f in files:
        try:
            with open_image(f) as im:
                im.load()
        except Exception as exc:  # PIL raises many kinds; plugins (ultralytics' HEIF hook) more
            raise UserError(str(f), f"cannot decode the image ({exc.__class__.__name__})") from None
