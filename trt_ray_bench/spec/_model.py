"""The experiment spec: typed, validated values. Every field a user can write is here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

#: Ultralytics task names, with the short names the users write.
TASKS = ("classify", "detect", "pose", "segment", "obb")
TASK_ALIASES = {"cls": "classify", "seg": "segment", "det": "detect"}
#: Ultralytics yaml suffix of each task: yolov8n-cls.yaml, yolov8n.yaml, ...
TASK_SUFFIX = {"classify": "-cls", "detect": "", "pose": "-pose", "segment": "-seg", "obb": "-obb"}
#: The input size each task is usually trained and run at.
DEFAULT_IMGSZ = {"classify": 224, "detect": 640, "pose": 640, "segment": 640, "obb": 1024}
#: Backends with an engine in ``trt_ray_bench.engines`` (one module each).
BACKENDS = ("onnxruntime", "tensorrt", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
MODEL_SUFFIXES = (".onnx", ".pt", ".yaml", ".yml", ".engine", ".plan")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # names files and folders: at most 100


#: the longest a spec's time may be (s): a week's soak; a larger one is a typo, and a float
#: past what the clocks count in would fail mid-measurement
MAX_S = 7 * 86400.0
#: the slowest open loop (Hz): one frame in 1000 s
MIN_RATE_HZ = 1e-3


class _Strict(BaseModel):
    # inf and nan are no number a spec means: refused with the field's name, before anything runs
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


def _task(v: Optional[str]) -> Optional[str]:
    if v is None:
        return None
    v = TASK_ALIASES.get(str(v).lower(), str(v).lower())
    if v not in TASKS:
        raise ValueError(f"unknown task {v!r}, expected one of {', '.join(TASKS)} (or cls, seg)")
    return v


class TimingOverride(_Strict):
    """Per-model changes to ``timing`` (e.g. the same model with and without warm-up or
    sync, or at several gaps, in one ``schedule: alone`` experiment)."""

    warmup: Optional[StrictInt] = Field(None, ge=0)
    warmup_s: Optional[float] = Field(None, ge=0, le=MAX_S)
    iterations: Optional[StrictInt] = Field(None, gt=0)
    duration_s: Optional[float] = Field(None, gt=0, le=MAX_S)
    gap_s: Optional[float] = Field(None, ge=0, le=3600)
    sync: Optional[Literal["device", "stream", "none"]] = None
    gap_mode: Optional[Literal["sleep", "spin"]] = None
    prewarm: Optional[Literal["none", "poke", "dummy"]] = None
    arrivals: Optional[Literal["closed", "periodic", "poisson"]] = None
    rate_hz: Optional[float] = Field(None, ge=MIN_RATE_HZ, le=1e6)
    jitter_ms: Optional[float] = Field(None, ge=0)
    backlog: Optional[Literal["queue", "drop"]] = None
    deadline_ms: Optional[float] = Field(None, gt=0, le=MAX_S * 1e3)


#: the timing fields of an open loop, a model's own where it sets them (``TimingOverride``)
OPEN_LOOP_FIELDS = ("arrivals", "rate_hz", "jitter_ms", "backlog", "deadline_ms")


class ModelSpec(_Strict):
    """One model: where it comes from, how it is run."""

    name: Optional[str] = None
    path: Optional[str] = Field(None, description=".onnx, Ultralytics .pt or model .yaml")
    arch: Optional[str] = Field(None, description="Ultralytics architecture, e.g. yolov8n")
    task: Optional[str] = None
    imgsz: Optional[Union[StrictInt, Tuple[StrictInt, StrictInt]]] = None
    batch: StrictInt = Field(1, ge=1)
    backend: str = "onnxruntime"
    precision: Literal["fp32", "fp16", "int8"] = Field("fp32", description="numeric precision: builder flags or a converted model (tensorrt), a converted model (onnxruntime), the module's dtype (torch: fp32, fp16); an Ultralytics .engine's own, from its metadata, where not given")
    options: Dict[str, Any] = Field(default_factory=dict, description="backend options")
    timing: Optional[TimingOverride] = Field(None, description="per-model changes to the experiment's timing")

    @field_validator("task", mode="before")
    @classmethod
    def _t(cls, v):
        return _task(v)

    @field_validator("arch")
    @classmethod
    def _arch(cls, v):
        # it names the model (``yolov8n-cls``), whose name names files and folders: a path
        # here (``../../tmp/evil``) would name one outside them
        if v is not None and (not _NAME.match(v.strip()) or ".." in v):
            raise ValueError("must be a name like yolov8n or yolo11s-seg (at most 100 letters, digits, '.', '_', "
                             "'-'); a model file goes in 'path'")
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v):
        if v not in BACKENDS:
            raise ValueError(f"unknown backend {v!r}, expected one of {', '.join(BACKENDS)}")
        return v

    @field_validator("imgsz")
    @classmethod
    def _imgsz(cls, v):
        if v is None:
            return v
        dims = (v, v) if isinstance(v, int) else tuple(v)
        if any(d < 8 for d in dims):
            raise ValueError("must be at least 8 pixels")
        return v

    @model_validator(mode="after")
    def _source(self):
        if (self.path is None) == (self.arch is None):
            raise ValueError("give exactly one of 'path' (a model file) and 'arch' (e.g. yolov8n)")
        if self.path is not None and not self.path.lower().endswith(MODEL_SUFFIXES):
            raise ValueError(f"path {self.path!r}: expected a file ending in {', '.join(MODEL_SUFFIXES)}")
        if self.arch is not None:
            arch, task = split_arch(self.arch)
            if task and self.task and task != self.task:
                raise ValueError(f"arch {self.arch!r} is a {task} model but task is {self.task!r}")
            if not (task or self.task):
                raise ValueError(f"arch {self.arch!r} needs a task ({', '.join(TASKS)})")
            object.__setattr__(self, "arch", arch)
            object.__setattr__(self, "task", self.task or task)
        if self.path is not None and self.path.lower().endswith((".engine", ".plan")) and self.backend != "tensorrt":
            raise ValueError(f"path {self.path!r} is a TensorRT engine: backend must be tensorrt")
        if self.name is not None and not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r:.60}: use at most 100 letters, digits, '.', '_', '-'")
        if self.name is None:
            name = self.default_name()
            if not _NAME.match(name):
                raise ValueError(f"the model's default name {name!r} (from its file's name) is not a name: give "
                                 f"'name' (at most 100 letters, digits, '.', '_', '-')")
            object.__setattr__(self, "name", name)
        return self

    def default_name(self) -> str:
        if self.arch is not None:
            return self.arch + TASK_SUFFIX[self.task]
        return Path(self.path).stem

    @property
    def hw(self) -> Optional[Tuple[int, int]]:
        if self.imgsz is None:
            return None
        return (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else tuple(self.imgsz)


def split_arch(arch: str) -> Tuple[str, Optional[str]]:
    """``yolov8n-seg`` -> (``yolov8n``, ``segment``); ``yolov8n`` -> (``yolov8n``, None)."""
    a = arch.strip()
    if a.endswith((".yaml", ".yml", ".pt")):
        raise ValueError(f"arch {arch!r} is a file: use 'path' for files")
    for task, suffix in TASK_SUFFIX.items():
        if suffix and a.endswith(suffix):
            return a[: -len(suffix)], task
    return a, None


class CooldownSpec(_Strict):
    """Wait before each phase until the GPU (or, without NVML, the board's hottest thermal
    zone) is at or below ``temp_c``; give up after ``timeout_s`` and measure anyway (the
    runs columns ``cooldown_s`` and ``cooldown_temp_c`` record it, the ``cooldown_timeout``
    diagnostic flags a phase that began hotter)."""

    temp_c: float = Field(gt=0, le=150, description="the temperature (°C) each phase waits for: the GPU's (NVML), "
                          "else the board's hottest thermal zone")
    timeout_s: float = Field(600.0, gt=0, le=86400, description="the longest wait before a phase; past it the "
                             "phase runs and "
                             "the row says how hot it began")


class TimingSpec(_Strict):
    """The measurement loop (see ``trt_ray_bench.timing.run_loop``)."""

    warmup: StrictInt = Field(10, ge=0, description="warm-up iterations before every phase")
    warmup_s: float = Field(0.0, ge=0, le=MAX_S, description="and/or warm up for at least this long")
    iterations: Optional[StrictInt] = Field(None, gt=0)
    duration_s: Optional[float] = Field(None, gt=0, le=MAX_S)
    gap_s: float = Field(0.0, ge=0, le=3600, description="sleep between inferences (changes GPU clocks)")
    sync: Literal["device", "stream", "none"] = "device"
    gap_mode: Literal["sleep", "spin"] = Field("sleep", description="how the host waits out gap_s: sleep (the OS "
                                               "wakes it) or spin (busy-wait: no wake-up latency)")
    prewarm: Literal["none", "poke", "dummy"] = Field("none", description="just before each timed inference, untimed: "
                                                      "poke (a tiny GPU operation) or dummy (one inference)")
    keep_warm: bool = Field(True, description="together: keep running untimed inferences while waiting at the "
                            "barrier, until just before the start instant (false: idle there)")
    fill: bool = Field(True, description="together: keep every model running until all reached their count")
    arrivals: Literal["closed", "periodic", "poisson"] = Field(
        "closed", description="closed: the next inference starts when the previous one ended (plus gap_s); "
        "periodic: frames arrive every 1/rate_hz (a camera); poisson: at random, rate_hz on average (requests). "
        "An open loop (periodic, poisson) times each frame from its arrival too: a slow inference delays the "
        "frames behind it")
    rate_hz: Optional[float] = Field(None, ge=MIN_RATE_HZ, le=1e6, description="open loop: frames per second "
                                     "(needed by periodic "
                                     "and poisson; refused with closed)")
    jitter_ms: Optional[float] = Field(None, ge=0, description="periodic: each arrival moved by a uniform draw "
                                       "in [-jitter_ms, +jitter_ms] (below half the period)")
    seed: Optional[StrictInt] = Field(None, ge=0, description="open loop: the seed of the arrival clock (poisson "
                                      "gaps, periodic jitter); drawn and recorded (runs column seed, spec.yaml) "
                                      "where not given. Model M in repeat r draws from (seed, M, r)")
    backlog: Literal["queue", "drop"] = Field(
        "queue", description="open loop, a frame that arrives while the model is busy: queue (served in turn, "
        "late) or drop (when the model is free it serves the newest frame arrived; the older ones are skipped "
        "and counted in dropped)")
    deadline_ms: Optional[float] = Field(None, gt=0, le=MAX_S * 1e3, description="each frame's result is due this "
                                         "long after "
                                         "its arrival (closed: after its start): runs columns deadline_miss and "
                                         "its interval")
    start_lead_s: float = Field(0.05, ge=0.001, le=10, description="coordinator: start instant this far after the last arrival")
    barrier_timeout_s: float = Field(300.0, gt=0, le=MAX_S, description="give up waiting for models to load/warm up")
    fill_timeout_s: float = Field(600.0, gt=0, le=MAX_S, description="together: longest a model keeps filling for "
                                  "the others")
    cooldown: Optional[CooldownSpec] = Field(
        None, description="before each phase and repeat, wait until the GPU (or the board's hottest thermal zone) "
        "is at or below temp_c, at most timeout_s: {temp_c: 50, timeout_s: 300}")
    samples: Literal["all", "window", "none"] = Field(
        "all", description="which inferences samples.parquet keeps: all (every one, warm-up included), window "
        "(only the in-window ones the row's statistics use) or none (a soak: only the row's statistics, computed "
        "from every inference first). The per-second aggregates (count, median, max) are kept in every case; the "
        "whole experiment, not per model (runs column samples_kept)")

    @model_validator(mode="after")
    def _count(self):
        if self.iterations is not None and self.duration_s is not None:
            raise ValueError("give iterations or duration_s, not both")
        if self.iterations is None and self.duration_s is None:
            object.__setattr__(self, "iterations", 100)
        return self


def _open_loop_problem(t: TimingSpec) -> Optional[Tuple[Tuple[str, ...], str]]:
    """(the fields that clash, the one to name first; why) where a resolved timing's arrival
    fields do not fit together."""
    open_loop = t.arrivals != "closed"
    if open_loop and t.gap_s > 0:
        return ("gap_s", "arrivals"), (f"{t.gap_s:g} s with arrivals {t.arrivals}: a gap is for closed-loop arrivals (with "
                         "arrivals the rate sets the pace); leave gap_s out")
    if open_loop and t.rate_hz is None:
        return ("arrivals", "rate_hz"), f"{t.arrivals} needs timing.rate_hz, the frames per second (above 0)"
    if not open_loop and t.rate_hz is not None:
        return ("rate_hz", "arrivals"), "set with arrivals closed (back to back): set timing.arrivals to periodic or poisson"
    if t.jitter_ms is not None and t.arrivals != "periodic":
        return ("jitter_ms", "arrivals"), f"only for arrivals periodic (arrivals is {t.arrivals})"
    if t.jitter_ms is not None and t.jitter_ms * 2 >= 1000.0 / t.rate_hz:
        return ("jitter_ms", "rate_hz"), (f"jitter_ms {t.jitter_ms:g} ms: must be below half the period ({500.0 / t.rate_hz:g} ms at "
                             f"{t.rate_hz:g} Hz), so the frames stay in order")
    if not open_loop and t.backlog != "queue":
        return ("backlog", "arrivals"), f"{t.backlog} is for arrivals periodic or poisson (a closed loop has no backlog)"
    return None


class InputSpec(_Strict):
    """What is fed to the models: one fixed random tensor, or real images from a folder."""

    kind: Literal["dummy", "images"] = "dummy"
    seed: StrictInt = 0
    path: Optional[str] = None
    limit: Optional[StrictInt] = Field(None, gt=0, description="use at most this many images")

    @model_validator(mode="after")
    def _path(self):
        if self.kind == "images" and not self.path:
            raise ValueError("kind 'images' needs 'path', a folder of images")
        if self.kind == "dummy" and self.path:
            raise ValueError("'path' is only for kind 'images'")
        return self


class VariantSpec(_Strict):
    """A timing variant run by every model in its own process (``variants``): each model
    runs every variant in the same process, so their differences are measured within one
    process and the noise between processes cancels in them (see ``results.verdict``)."""

    name: str = Field(description="names the variant (the runs column ``variant``)")
    timing: TimingOverride = Field(default_factory=TimingOverride, description="changes to the model's timing")

    @field_validator("name")
    @classmethod
    def _vname(cls, v):
        if not _NAME.match(v):
            raise ValueError(f"{v!r:.60}: use at most 100 letters, digits, '.', '_', '-'")
        return v


#: What is timed per model: the bare engine on prepared tensors (``inference``), the whole
#: Ultralytics pipeline per image (``pipeline``: load, preprocess, infer, postprocess),
#: the pipeline over a labelled set with the task's metrics (``validation``), or the same
#: without the metric work (``without_val``, the users' "Validation-WithoutVal").
MODES = ("inference", "pipeline", "validation", "without_val")


class DataSpec(_Strict):
    """A labelled data set for the pipeline / validation modes."""

    path: Optional[str] = Field(None, description="Ultralytics data yaml, or a folder of class folders (classify)")
    synthetic: Optional[StrictInt] = Field(None, gt=0, description="generate this many images per model instead")
    limit: Optional[StrictInt] = Field(None, gt=0, description="use the first N images")
    on_bad_label: Literal["stop", "skip"] = "stop"

    @model_validator(mode="after")
    def _one(self):
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'path' (a data yaml or class folders) and 'synthetic' (a count)")
        return self


class TelemetrySpec(_Strict):
    host: bool = Field(True, description="CPU and memory of the node via psutil")
    nvml: Optional[bool] = Field(None, description="NVIDIA GPU via NVML; default: where a GPU answers")
    interval_s: float = Field(0.1, ge=0.001, le=60)
    tegrastats: Optional[bool] = Field(None, description="Jetson: run tegrastats; default: on a Jetson")
    tegrastats_interval_ms: StrictInt = Field(100, ge=10, le=60000)
    idle_s: float = Field(0.0, ge=0, le=3600, description="before the first phase, sample the node this long with "
                          "nothing running: the runs' idle_power_w and energy_above_idle_j (0: no idle measurement)")


class ClockSpec(_Strict):
    """A fixed clock: the GPU (SM) clock, and optionally the memory clock, in MHz."""

    gpu_mhz: StrictInt = Field(gt=0)
    mem_mhz: Optional[StrictInt] = Field(None, gt=0)


#: ``default`` leaves the clocks alone, ``max`` locks the highest supported ones.
Clocks = Union[Literal["default", "max"], ClockSpec]


class ExperimentSpec(_Strict):
    """A whole experiment: models, how they are scheduled and timed, where results go."""

    name: str
    description: str = ""
    models: List[ModelSpec] = Field(min_length=1)
    schedule: Literal["alone", "together", "both"] = "both"
    modes: List[Literal["inference", "pipeline", "validation", "without_val"]] = Field(
        default_factory=lambda: ["inference"], min_length=1,
        description="what is timed, each mode run through the whole schedule")
    data: Optional[DataSpec] = None
    repeats: StrictInt = Field(1, ge=1)
    repeat_isolation: Literal["actor", "process"] = Field(
        "actor", description="actor: every repeat in the same model actor; process: a fresh actor (the engine "
        "loaded again) for every repeat")
    repeat_order: Literal["interleaved", "grouped"] = Field(
        "interleaved", description="interleaved: every repeat runs all phases in turn (a, b, c, a, b, c), so a drift "
        "spreads over every condition; grouped: each model's repeats one after another (a, a, b, b), then together")
    variants: List[VariantSpec] = Field(
        default_factory=list, description="timing variants every model runs, each in the model's own process")
    timing: TimingSpec = Field(default_factory=TimingSpec)
    input: InputSpec = Field(default_factory=InputSpec)
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec)
    clocks: Clocks = Field("default", description="GPU clock mode during the run; restored afterwards")
    mps: bool = Field(False, description="run under the CUDA MPS daemon (started and stopped if not running)")
    power_mode: Optional[StrictInt] = Field(None, ge=0, description="Jetson: nvpmodel mode during the run; restored afterwards")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="level of every interval (a row's, under the dependence "
                              "between its inferences; a condition's, across its processes) and of the comparisons' "
                              "significance")
    output: str = "results"

    @field_validator("clocks", mode="before")
    @classmethod
    def _clocks(cls, v):
        if isinstance(v, str) and v not in ("default", "max"):
            raise ValueError(f"{v!r}: expected default, max or {{gpu_mhz: N}} / {{gpu_mhz: N, mem_mhz: M}}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not _NAME.match(v):
            raise ValueError(f"{v!r:.60}: use at most 100 letters, digits, '.', '_', '-' (it names a folder)")
        return v

    @model_validator(mode="after")
    def _data(self):
        if len(set(self.modes)) != len(self.modes):
            raise ValueError(f"modes {self.modes}: each mode once")
        needs = [m for m in self.modes if m != "inference"]
        if needs and self.data is None:
            raise ValueError(f"modes {needs} need 'data' (path: a data yaml or class folders, or synthetic: N)")
        if needs and any(self.timing_for(m, v).sync == "none" for m in self.models for v in self.variant_names):
            raise ValueError(f"modes {needs} read every prediction, so they wait for it: sync device or stream")
        return self

    @model_validator(mode="after")
    def _arrivals(self):
        """The open-loop fields, as each model (and variant) resolves them: one line
        naming the field that set the value refused."""
        for i, m in enumerate(self.models):
            for v in self.variant_names:
                problem = _open_loop_problem(self.timing_for(m, v or None))
                if problem:
                    fields, msg = problem
                    if fields == ("rate_hz", "arrivals") and self._level(i, v, "arrivals") > self._level(i, v, "rate_hz"):
                        continue  # a model (or variant) made closed: the rate it inherits is not its own
                    raise ValueError(f"{self._where(i, v, fields)}: {msg}")
        return self

    def _level(self, i: int, variant: str, field: str) -> int:
        """Where ``field`` is set for model ``i``: 2 its variant, 1 the model, 0 the experiment."""
        if any(v.name == variant and getattr(v.timing, field, None) is not None for v in self.variants):
            return 2
        m = self.models[i]
        return 1 if m.timing is not None and getattr(m.timing, field, None) is not None else 0

    def _where(self, i: int, variant: str, fields: Tuple[str, ...]) -> str:
        """The most specific place (a variant's, the model's, the experiment's timing) that
        sets one of ``fields`` (the first where two are as specific) for model ``i``."""
        for j, v in enumerate(self.variants):
            for f in fields:
                if v.name == variant and getattr(v.timing, f, None) is not None:
                    return f"variants[{j}].timing.{f}"
        m = self.models[i]
        for f in fields:
            if m.timing is not None and getattr(m.timing, f, None) is not None:
                return f"models[{i}].timing.{f}"
        return f"timing.{fields[0]}"

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for i, m in enumerate(self.models):
            if m.name in seen:
                raise ValueError(f"models[{i}].name {m.name!r} is used twice; give each model a unique name")
            seen.add(m.name)
        names = set()
        for i, v in enumerate(self.variants):
            if v.name in names:
                raise ValueError(f"variants[{i}].name {v.name!r} is used twice; give each variant a unique name")
            names.add(v.name)
        return self

    def timing_for(self, model: "ModelSpec", variant: Optional[str] = None) -> TimingSpec:
        """The experiment's timing with the model's overrides applied, then the variant's."""
        t = self.timing
        overrides = [model.timing] + [v.timing for v in self.variants if variant and v.name == variant]
        for o in overrides:
            if o is None:
                continue
            over = o.model_dump(exclude_none=True)
            if "iterations" in over:
                over.setdefault("duration_s", None)
            if "duration_s" in over:
                over.setdefault("iterations", None)
            t = t.model_copy(update=over)
        return t

    @property
    def variant_names(self) -> List[str]:
        """The variants' names, or ``[""]`` (no variant) where there are none."""
        return [v.name for v in self.variants] or [""]

    @property
    def phases(self) -> Tuple[str, ...]:
        return ("alone", "together") if self.schedule == "both" else (self.schedule,)
