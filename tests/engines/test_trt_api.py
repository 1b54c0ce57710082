"""The TensorRT build and run code held against each version's published Python API, on a
CPU: 8.5 (JetPack 5), 8.6 (JetPack 6.0, the lent GPU machine), 10.0, 10.13 (JetPack 7) and
11.4 (``pip install tensorrt`` on desktops).

This is a stand-in by necessity: no TensorRT 10 or 11 can run here (nor on the lent GPU
machine, which has 8.6 only; tests/gpu runs that one for real). The API of each version is
built from what is published about it:

- 10.13: the ``tensorrt-stubs`` 10.13.0.35.1 type stubs (vendored in data/, MIT);
- 11.4: those stubs minus the names 11.x removed (data/tensorrt11_removed.txt, with its
  sources: NVIDIA's 10.x-to-11.x migration guide, the 11.x API pages, Ultralytics' exporter);
- 8.5, 8.6, 10.0: the stubs minus the names added after each (data/tensorrt85_absent.txt,
  with the version that added each and its source).

From the stubs' AST a stand-in ``tensorrt`` module is made per version: its classes, enum
members, methods, properties and attributes are exactly the version's, and anything else
raises ``AttributeError`` as pybind11 objects do (also on assignment). Calls return
stand-ins of the annotated return type; the few that must mean something behave like
TensorRT enough to drive the real code: the parser reads the real ONNX file, a strongly
typed network refuses builder precision flags, a weak network from a Q/DQ ONNX needs the
INT8 flag, 8.x refuses a network without EXPLICIT_BATCH, the builder calls the calibrator
back, and the serialized "engine" carries the network's inputs and outputs so that
deserialization, the runner and ``prepare`` of an engine file work on it. DLA: the builder
counts ``Sim.dla_cores`` cores (0, as on every desktop GPU, unless a test gives it some), a
DLA build needs FP16 or INT8 and refuses layers the DLA cannot run (only ``Conv`` here)
without ``GPU_FALLBACK``, and a DLA engine loads only on a runtime set to its core. The
timing cache: a build adds an entry per layer (its op, input shape and precision) to the
cache set on its config; a cache serializes to a header (TensorRT version, GPU) and its
entries; ``combine`` merges two of one version; a cache of another TensorRT version (or
bytes that are none) is not created (an error logged, None returned), and one of another
GPU is refused by ``set_timing_cache(cache, ignore_mismatch=False)``, which returns False
(TensorRT's docstring: "A failure will be reported if the CUDA device property in the
provided cache is different from current environment"; "returns: A BOOL indicating whether
the operation is done successfully").

The REAL code runs through it (``build_engine`` for fp32/fp16/int8 x weak/strong x
converted or not, engine deserialization, ``prepare`` of an engine file without imgsz,
``TensorRTRunner`` with ``run_loop`` and a stand-in CUDA facade, ``doctor_lines``), and
every name it touches on each version is recorded. The test fails if an AttributeError
escapes on any version, if a version's outcome is not the expected one (11.x refuses
weak typing in one line and builds strong; 8.x refuses strong typing, 8.5 refuses
opt_level; 10.x builds everything), or if the recorded table of TensorRT calls x versions
differs from the one in data/README.md (``python tests/engines/test_trt_api.py`` rewrites
it there).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import gzip
import json
import re
import sys
import threading
import types
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
STUBS = DATA / "tensorrt-stubs-10.13"
README = DATA / "README.md"
VERSIONS = ("8.5.2.2", "8.6.1.6", "10.0.1.6", "10.13.0.35", "11.4.0.10")
ENGINE_MAGIC = b"TRT-STAND-IN\n"
TIMING_MAGIC = b"TRT-STAND-IN-TIMING-CACHE\n"
DEVICE_MEMORY = 4096
GPU = "Stand-in Orin"


def vt(version: str) -> Tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


# =====================================================================================
# The published API: the stubs' AST, and the version lists
# =====================================================================================

@dataclasses.dataclass
class Member:
    kind: str  # method | property | attr | enum | class
    returns: str = ""  # the annotation, dotted
    settable: bool = False
    value: int = 0


@dataclasses.dataclass
class StubClass:
    name: str  # qualified: "ILogger.Severity"
    bases: List[str]
    members: Dict[str, Member]
    is_enum: bool


def _dotted(node) -> str:
    if node is None:
        return ""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    return ""


def _classvar_type(node) -> str:
    """``typing.ClassVar[X.Y]`` -> "X.Y"."""
    inner = node.slice
    if isinstance(inner, ast.Index):  # Python 3.8
        inner = inner.value
    return _dotted(inner)


_DEF = re.compile(r"^(\s*)def (\w+)\(.*\)((?:\s*->\s*.+?)?):\s*$", re.M)
_VALUE = re.compile(r"# value = <[\w.]+: (-?\d+)>")


def _parse_class(node: ast.ClassDef, prefix: str, lines: List[str], out: Dict[str, StubClass]) -> None:
    qual = f"{prefix}{node.name}"
    members: Dict[str, Member] = {}
    is_enum = False
    for item in node.body:
        if isinstance(item, ast.ClassDef):
            _parse_class(item, f"{qual}.", lines, out)
            members[item.name] = Member("class", returns=f"{qual}.{item.name}")
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            name = item.target.id
            if _dotted(item.annotation) == "typing.ClassVar":
                if name == "__members__":
                    is_enum = True
                    continue
                m = _VALUE.search(lines[item.lineno - 1])
                members[name] = Member("enum", returns=_classvar_type(item.annotation), value=int(m.group(1)) if m else 0)
            else:
                members[name] = Member("attr", returns=_dotted(item.annotation), settable=True)
        elif isinstance(item, ast.FunctionDef):
            decorators = [_dotted(d) for d in item.decorator_list]
            if any(d.endswith(".setter") for d in decorators):
                if item.name in members:
                    members[item.name].settable = True
            elif "property" in decorators:
                members[item.name] = Member("property", returns=_dotted(item.returns))
            elif item.name not in members:  # the first of typing.overload's variants
                members[item.name] = Member("method", returns=_dotted(item.returns))
    bases = [_dotted(b) for b in node.bases]
    out[qual] = StubClass(qual, bases, members, is_enum)


def _read_stub(name: str) -> str:
    return gzip.decompress((STUBS / name).read_bytes()).decode("utf-8")


def parse_api() -> Tuple[Dict[str, StubClass], List[str], Dict[str, Member]]:
    """(classes by qualified name, the module's exported names, module-level values)."""
    src = _read_stub("tensorrt_bindings.tensorrt.pyi.gz")
    # the stubs are generated and not all valid Python (a default before a non-default
    # argument): only names and return annotations matter here, so signatures go
    src = _DEF.sub(r"\1def \2(*a, **k)\3:", src)
    lines = src.splitlines()
    classes: Dict[str, StubClass] = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.ClassDef):
            _parse_class(node, "", lines, classes)
    init = _read_stub("tensorrt.__init__.pyi.gz")
    exported: List[str] = []
    values: Dict[str, Member] = {}
    for node in ast.parse(init).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            exported = [ast.literal_eval(e) for e in node.value.elts]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            m = _VALUE.search(init.splitlines()[node.lineno - 1])
            values[node.target.id] = Member("enum", returns=_dotted(node.annotation).split(".")[-1],
                                            value=int(m.group(1)) if m else 0)
    return classes, exported, values


def read_list(name: str) -> List[Tuple[str, str]]:
    """(name, rest of the line) of a data list, comments and blank lines skipped."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parts = line.split(None, 1)
            out.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return out


#: every public name of the real module, recorded from its x86 wheel (record_trt_names.py)
RECORDED = {(8, 5): "tensorrt-8.5.3.1-names.txt", (8, 6): "tensorrt-8.6.0-names.txt"}


def recorded_names(version: str) -> Optional[Set[str]]:
    """The names the real ``tensorrt`` of ``version``'s minor release has, or None (not recorded)."""
    file = RECORDED.get(vt(version)[:2])
    return None if file is None else {name for name, _ in read_list(file)}


def stub_names(api=None) -> Set[str]:
    """Every name of the 10.13 stubs: the module's, each class's and its members'."""
    classes, exported, _ = api or API()
    names = set(exported) | set(classes)
    for qual, c in classes.items():
        names |= {f"{qual}.{m}" for m in c.members if not _is_dunder(m)}
    return names


def absent_names(version: str) -> Set[str]:
    """The names of the 10.13 stubs that ``version`` does not have: for 8.5 and 8.6, every one
    the real module's record lacks; for 10.0 the names added later (tensorrt85_absent.txt);
    for 11 the removals (tensorrt11_removed.txt)."""
    v = vt(version)
    if v[0] >= 11:
        return {name for name, _ in read_list("tensorrt11_removed.txt")}
    absent = set()
    for name, rest in read_list("tensorrt85_absent.txt"):
        if vt(rest.split()[0]) > v:
            absent.add(name)
    real = recorded_names(version)
    if real is not None:
        absent |= {name for name in stub_names() if name not in real}
    return absent


# =====================================================================================
# The stand-in module
# =====================================================================================

class Record:
    """What the code touched on one version: names found, names looked up but absent."""

    def __init__(self):
        self.used: Set[str] = set()
        self.missing: Set[str] = set()
        self._quiet = 0

    @contextlib.contextmanager
    def quiet(self):
        """The stand-in's own calls into the code's objects (TensorRT calling back) are not
        the code's use of the API."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def use(self, name: str) -> None:
        if not self._quiet:
            self.used.add(name)

    def miss(self, name: str) -> None:
        if not self._quiet:
            self.missing.add(name)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class _Meta(type):
    """Class-level lookups (``trt.BuilderFlag.FP16``, ``trt.ILogger.Severity``) recorded;
    absent ones raise AttributeError like a pybind11 class."""

    def __getattribute__(cls, name):
        get = type.__getattribute__
        try:
            value = get(cls, name)
        except AttributeError:
            if not _is_dunder(name) and name in get(cls, "_s_all_"):
                get(cls, "_s_record_").miss(f"{get(cls, '_s_name_')}.{name}")
            raise
        if not _is_dunder(name) and name in get(cls, "_s_members_"):
            get(cls, "_s_record_").use(f"{get(cls, '_s_name_')}.{name}")
        return value


class _Obj(metaclass=_Meta):
    """An instance of a stand-in class: its version's members only (get and set)."""

    _s_name_ = "object"
    _s_members_: Dict[str, Member] = {}
    _s_all_: Dict[str, Member] = {}
    _s_record_ = Record()
    _s_exact_ = False

    def __init__(self, *args, **kwargs):
        object.__setattr__(self, "_s_args", args)
        object.__setattr__(self, "_s_values", {})

    def __getattribute__(self, name):
        cls = type(self)
        try:
            value = object.__getattribute__(self, name)
        except AttributeError:
            if not _is_dunder(name) and name in _stub_all(cls):
                _owner(cls, name, missing=True)
            raise
        if not _is_dunder(name) and not name.startswith("_s_"):
            _owner(cls, name)
        return value

    def __setattr__(self, name, value):
        cls = type(self)
        if name.startswith("_s_"):
            return object.__setattr__(self, name, value)
        member = _member(cls, name)
        if member is not None and member.settable:
            _owner(cls, name)
            self._s_values[name] = value
            return None
        if name in _stub_all(cls) or type.__getattribute__(cls, "__dict__").get("_s_exact_", False):
            _owner(cls, name, missing=True)
            raise AttributeError(f"'{type.__getattribute__(cls, '_s_name_')}' object has no attribute '{name}'")
        return object.__setattr__(self, name, value)  # the code's own subclass (a logger, a calibrator)


def _stub_classes(cls):
    return [c for c in type.__getattribute__(cls, "__mro__") if isinstance(c, _Meta) and c is not _Obj
            and "_s_name_" in type.__getattribute__(c, "__dict__")]


def _stub_all(cls) -> Set[str]:
    out: Set[str] = set()
    for c in _stub_classes(cls):
        out |= set(type.__getattribute__(c, "_s_all_"))
    return out


def _member(cls, name) -> Optional[Member]:
    for c in _stub_classes(cls):
        m = type.__getattribute__(c, "_s_members_").get(name)
        if m is not None:
            return m
    return None


def _owner(cls, name, missing=False) -> None:
    """Record ``name`` under the stub class that declares it (the first in the MRO)."""
    for c in _stub_classes(cls):
        get = lambda a: type.__getattribute__(c, a)  # noqa: E731
        if name in get("_s_all_"):
            rec = get("_s_record_")
            (rec.miss if missing or name not in get("_s_members_") else rec.use)(f"{get('_s_name_')}.{name}")
            return


class _Trt(types.ModuleType):
    """The module: its version's names only; lookups recorded."""

    def __getattribute__(self, name):
        get = object.__getattribute__
        try:
            value = get(self, name)
        except AttributeError:
            if name in get(self, "_s_all_names"):
                get(self, "_s_record").miss(name)
            raise
        if not _is_dunder(name) and not name.startswith("_s_"):
            get(self, "_s_record").use(name)
        return value


def make_trt(version: str, api=None) -> _Trt:
    """The stand-in ``tensorrt`` of ``version``."""
    classes, exported, values = api or API()
    absent = absent_names(version)
    record = Record()
    mod = _Trt("tensorrt")
    object.__setattr__(mod, "_s_record", record)
    object.__setattr__(mod, "_s_all_names", set(exported) | set(classes))
    object.__setattr__(mod, "_s_version", vt(version))
    built: Dict[str, type] = {}
    sim = Sim(mod, record)
    object.__setattr__(mod, "_s_sim", sim)

    def build(qual: str):
        if qual in built:
            return built[qual]
        stub = classes[qual]
        bases = tuple(build(b) for b in stub.bases if b in classes and b not in absent) or (_Obj,)
        if stub.is_enum:
            bases = (int,)
        kept = {n: m for n, m in stub.members.items() if f"{qual}.{n}" not in absent and not (
            _is_dunder(n) and n != "__init__")}
        ns = {"_s_name_": qual, "_s_members_": kept, "_s_all_": {n: m for n, m in stub.members.items()
                                                                 if not _is_dunder(n)},
              "_s_record_": record, "_s_exact_": True, "__module__": "tensorrt"}
        for name, m in kept.items():
            if m.kind == "method" and not stub.is_enum:
                ns[name] = _method(sim, qual, name, m)
            elif m.kind in ("property", "attr"):
                ns[name] = _property(sim, qual, name, m)
        cls = _Meta(qual.split(".")[-1], bases, ns) if not stub.is_enum else _Meta(qual.split(".")[-1], (int,), ns)
        built[qual] = cls
        for name, m in kept.items():
            if m.kind == "class":
                type.__setattr__(cls, name, build(m.returns))
        return cls

    for qual in classes:
        if qual.split(".")[0] not in absent and qual not in absent:
            build(qual)
    for qual, cls in built.items():  # enum members, once their classes exist
        for name, m in classes[qual].members.items():
            if m.kind == "enum" and f"{qual}.{name}" not in absent:
                kind = built.get(m.returns, cls)
                member = int.__new__(kind, m.value) if issubclass(kind, int) else kind()
                type.__setattr__(cls, name, member)
    object.__setattr__(mod, "_s_classes", built)
    for name in exported:
        if name in absent:
            continue
        if name in built:
            object.__setattr__(mod, name, built[name])
        elif name in values:
            dt = built["DataType"]
            object.__setattr__(mod, name, int.__new__(dt, values[name].value))
    object.__setattr__(mod, "__version__", version)
    object.__setattr__(mod, "nptype", sim.nptype)
    return mod


_API = None


def API():
    global _API
    if _API is None:
        _API = parse_api()
    return _API


def _default(sim: "Sim", ann: str):
    last = ann.split(".")[-1]
    if last in ("bool",):
        return True
    if last in ("int",):
        return 0
    if last == "float":
        return 0.0
    if last == "str":
        return ""
    cls = sim.classes().get(ann) or sim.classes().get(last)
    if cls is None:
        return None
    if issubclass(cls, int):
        return int.__new__(cls, 0)
    return cls()


def _method(sim, qual, name, m):
    def method(self, *args, **kwargs):
        fn = getattr(sim, f"{qual.replace('.', '_')}__{name}", None)
        if fn is not None:
            return fn(self, *args, **kwargs)
        if name == "__init__":
            return _Obj.__init__(self, *args, **kwargs)
        return _default(sim, m.returns)
    method.__name__ = name
    return method


def _property(sim, qual, name, m):
    def fget(self):
        values = object.__getattribute__(self, "_s_values")
        if name in values:
            return values[name]
        fn = getattr(sim, f"{qual.replace('.', '_')}__{name}", None)
        return fn(self) if fn is not None else _default(sim, m.returns)
    return property(fget)


# -------------------------------------------------------------------- the behaviour
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
       "UINT8": np.uint8, "INT64": np.int64}
_ONNX_TYPES = {1: "FLOAT", 10: "HALF", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL"}


class Sim:
    """What the stand-in does where a call must mean something (``Class__member``)."""

    def __init__(self, mod, record: Record):
        self.mod, self.record = mod, record
        self.networks: List[dict] = []  # per create_network: flags, strong
        self.builds: List[dict] = []  # per build: flags set, calibrated, strong
        self.dla_cores = 0  # what Builder/Runtime.num_DLA_cores count: 0 on a desktop GPU
        self.device = GPU  # the GPU a timing cache is recorded on, and checked against
        self.during_build = None  # called inside each build (a test's barrier)
        self.fail_build: Optional[str] = None  # a build that times its layers, then fails with this error

    def classes(self) -> Dict[str, type]:
        return object.__getattribute__(self.mod, "_s_classes")

    def major(self) -> int:
        return object.__getattribute__(self.mod, "_s_version")[0]

    def enum(self, qual: str, member: str):
        with self.record.quiet():
            return getattr(self.classes()[qual], member)

    def nptype(self, dt):
        """As the real ``tensorrt.nptype``: 8.5's builds its dict on each call with ``np.bool``
        for BOOL, an alias numpy 1.24 to 1.26 lack (numpy 2 has it again): there it fails for
        every type (seen on TensorRT 8.5.3.1 with numpy 1.24.4, JetPack 5's Python 3.8)."""
        mapping = dict(_NP)
        if object.__getattribute__(self.mod, "_s_version")[:2] < (8, 6):
            mapping["BOOL"] = np.bool  # noqa: NPY001 - the real 8.5's lookup, on purpose
        return mapping[self.name_of("DataType", dt)]

    def name_of(self, qual: str, value) -> str:
        stub = API()[0][qual]
        return next(n for n, m in stub.members.items() if m.kind == "enum" and m.value == int(value))

    # ---- builder
    def Builder____init__(self, obj, logger):
        assert isinstance(logger, self.classes()["ILogger"]), "Builder needs an ILogger"
        _Obj.__init__(obj, logger)

    def Builder__create_network(self, obj, flags=0):
        flags = int(flags)
        if self.major() < 10:
            # TensorRT 8.x: the ONNX parser needs an explicit-batch network
            assert flags & (1 << 0), f"TensorRT {self.major()}.x: create_network without EXPLICIT_BATCH"
        strong = self.major() >= 11 or (self.major() == 10 and bool(flags & (1 << 1)))
        net = self.classes()["INetworkDefinition"]()
        net._s_info = {"flags": flags, "strong": strong, "inputs": [], "outputs": [], "qdq": False}
        self.networks.append(net._s_info)
        return net

    def Builder__num_DLA_cores(self, obj):
        return self.dla_cores

    def Runtime__num_DLA_cores(self, obj):
        return self.dla_cores

    def IBuilderConfig__can_run_on_DLA(self, obj, layer):
        assert isinstance(layer, self.classes()["ILayer"])
        return layer._s_layer[1] == "Conv"  # the stand-in's DLA runs convolutions only

    def INetworkDefinition__num_layers(self, obj):
        return len(obj._s_info["layers"])

    def INetworkDefinition__get_layer(self, obj, i):
        made = obj._s_info.setdefault("layer_objects", {})  # one object per layer: what is set on it stays
        if i not in made:
            made[i] = self.classes()["ILayer"]()
            made[i]._s_layer = obj._s_info["layers"][i]
            made[i]._s_outputs = {o[0] for o in obj._s_info["outputs"]}
        return made[i]

    def ILayer__name(self, obj):
        return obj._s_layer[0]

    #: the layer types of the ONNX operators the parser meets in a YOLO export (others: ELEMENTWISE)
    _LAYER_TYPES = {"Conv": "CONVOLUTION", "Sigmoid": "ACTIVATION", "Relu": "ACTIVATION", "Concat": "CONCATENATION",
                    "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Softmax": "SOFTMAX", "MaxPool": "POOLING",
                    "Split": "SLICE", "Slice": "SLICE", "Resize": "RESIZE", "Gemm": "MATRIX_MULTIPLY",
                    "MatMul": "MATRIX_MULTIPLY", "Constant": "CONSTANT", "Flatten": "SHUFFLE"}

    def ILayer__type(self, obj):
        return self.enum("LayerType", self._LAYER_TYPES.get(obj._s_layer[1], "ELEMENTWISE"))

    def ILayer__num_outputs(self, obj):
        return len(obj._s_layer[2])

    def ILayer__get_output(self, obj, index):
        assert 0 <= index < len(obj._s_layer[2])
        t = self.classes()["ITensor"]()
        name, dtype = obj._s_layer[2][index]
        t._s_io = [name, [], dtype]
        t._s_network_output = name in obj._s_outputs
        return t

    def ILayer__set_output_type(self, obj, index, dtype):
        assert isinstance(dtype, self.classes()["DataType"]) and 0 <= index < len(obj._s_layer[2])
        obj._s_values.setdefault("_output_types", {})[index] = self.name_of("DataType", dtype)

    def ITensor__dtype(self, obj):
        return self.enum("DataType", obj._s_io[2])

    def ITensor__is_network_output(self, obj):
        return getattr(obj, "_s_network_output", False)

    def _constraints(self, network) -> Dict[str, str]:
        """The layers' precision constraints a build sees: ``{name: DataType}``; each layer's
        output type must agree with its precision."""
        out = {}
        for layer in network._s_info.get("layer_objects", {}).values():
            values = object.__getattribute__(layer, "_s_values")
            if "precision" in values:
                dtype = self.name_of("DataType", values["precision"])
                want = {j: dtype for j in range(len(layer._s_layer[2]))}
                assert values.get("_output_types") == want, f"{layer._s_layer[0]}: output type not {dtype}"
                out[layer._s_layer[0]] = dtype
        return out

    def Builder__create_builder_config(self, obj):
        cfg = self.classes()["IBuilderConfig"]()
        cfg._s_flags, cfg._s_profiles, cfg._s_calib_profile = set(), [], None
        cfg._s_logger, cfg._s_timing = obj._s_args[0], None
        return cfg

    # ---- the timing cache
    def version(self) -> str:
        return object.__getattribute__(self.mod, "__version__")

    def _timing_cache(self, trt_version: str, device: str, entries=()):
        cache = self.classes()["ITimingCache"]()
        cache._s_header, cache._s_entries = {"trt": trt_version, "device": device}, set(entries)
        return cache

    def IBuilderConfig__create_timing_cache(self, obj, serialized_timing_cache):
        data = bytes(serialized_timing_cache)
        if not data:
            return self._timing_cache(self.version(), self.device)
        try:
            assert data.startswith(TIMING_MAGIC)
            saved = json.loads(data[len(TIMING_MAGIC):].decode())
        except (AssertionError, ValueError):
            self._log_to(obj._s_logger, "timing cache: magic tag does not match")
            return None
        if saved["trt"] != self.version():
            self._log_to(obj._s_logger, f"timing cache: version tag does not match ({saved['trt']})")
            return None
        return self._timing_cache(saved["trt"], saved["device"], saved["entries"])

    def IBuilderConfig__set_timing_cache(self, obj, cache, ignore_mismatch):
        assert isinstance(cache, self.classes()["ITimingCache"]) and isinstance(ignore_mismatch, bool)
        if cache._s_header["device"] != self.device and not ignore_mismatch:
            self._log_to(obj._s_logger, f"timing cache: recorded on {cache._s_header['device']}, not {self.device}")
            return False
        obj._s_timing = cache
        return True

    def IBuilderConfig__get_timing_cache(self, obj):
        return obj._s_timing

    def ITimingCache__serialize(self, obj):
        return TIMING_MAGIC + json.dumps({**obj._s_header, "entries": sorted(obj._s_entries)}).encode()

    def ITimingCache__combine(self, obj, input_cache, ignore_mismatch):
        assert isinstance(input_cache, self.classes()["ITimingCache"]) and isinstance(ignore_mismatch, bool)
        theirs = input_cache._s_header
        if theirs["trt"] != obj._s_header["trt"] or (theirs["device"] != obj._s_header["device"]
                                                     and not ignore_mismatch):
            return False
        obj._s_entries |= input_cache._s_entries
        return True

    def ITimingCache__reset(self, obj):
        obj._s_entries.clear()
        return True

    def _time_layers(self, config, info, flags) -> Tuple[int, int]:
        """What a build does with its config's timing cache: each layer's timing found there
        or measured and added. (found, measured)."""
        cache = config._s_timing
        if cache is None:
            return 0, 0
        precision = "+".join(sorted(flags & {"FP16", "INT8"})) or ("strong" if info["strong"] else "fp32")
        shape = "x".join(str(d) for d in info["inputs"][0][1]) if info["inputs"] else ""
        keys = {f"{op}:{shape}:{precision}" for _, op, _ in info.get("layers", [])}
        found = keys & cache._s_entries
        cache._s_entries |= keys
        return len(found), len(keys - found)

    def Builder__create_optimization_profile(self, obj):
        profile = self.classes()["IOptimizationProfile"]()
        profile._s_shapes = {}
        return profile

    def IOptimizationProfile__set_shape(self, obj, name, min, opt, max):  # noqa: A002 - TensorRT's names
        obj._s_shapes[name] = [list(min), list(opt), list(max)]

    def IBuilderConfig__add_optimization_profile(self, obj, profile):
        obj._s_profiles.append(profile)
        return len(obj._s_profiles) - 1

    def IBuilderConfig__set_calibration_profile(self, obj, profile):
        obj._s_calib_profile = profile
        return True

    def Builder__build_serialized_network(self, obj, network, config):
        info, flags = network._s_info, {self.name_of("BuilderFlag", f) for f in config._s_flags}
        values = object.__getattribute__(config, "_s_values")
        calibrator = values.get("int8_calibrator")
        precision_flags = flags & {"FP16", "INT8", "BF16", "FP8", "INT4", "FP4"}
        if info["strong"] and precision_flags:
            self._log(obj, f"strongly typed network: precision flags {sorted(precision_flags)} are not allowed")
            return None
        if info["qdq"] and not info["strong"] and "INT8" not in flags:
            self._log(obj, "the network has Q/DQ layers: the INT8 flag is needed (weakly typed)")
            return None
        dynamic = any(d < 0 for _, dims, _ in info["inputs"] for d in dims)
        if dynamic and not config._s_profiles:
            self._log(obj, "the network has dynamic inputs, but no optimization profile")
            return None
        dla = values.get("default_device_type")
        dla = dla is not None and self.name_of("DeviceType", dla) == "DLA"
        if dla:
            core = values.get("DLA_core", 0)
            if not (flags & {"FP16", "INT8"}) and not info["strong"]:
                self._log(obj, "DLA runs FP16 or INT8 only")
                return None
            if core >= self.dla_cores:
                self._log(obj, f"DLA core {core} does not exist")
                return None
            off = [name for name, op, _ in info["layers"] if op != "Conv"]
            if off and "GPU_FALLBACK" not in flags:
                self._log(obj, f"layers cannot run on DLA without GPU fallback: {off}")
                return None
        if calibrator is not None:
            assert "INT8" in flags, "a calibrator without the INT8 flag"
            assert isinstance(calibrator, self.classes()["IInt8Calibrator"])
            if dynamic and config._s_calib_profile is None and self.major() < 10:
                self._log(obj, "calibrating a dynamic network needs a calibration profile")
                return None
            self._calibrate(calibrator, info)
        if self.during_build is not None:
            self.during_build()
        found, measured = self._time_layers(config, info, flags)
        constraints = self._constraints(network)
        assert not constraints or "OBEY_PRECISION_CONSTRAINTS" in flags, "layer precisions without the flag to obey"
        if self.fail_build:
            self._log(obj, self.fail_build)
            return None
        algo = next((a for a in ("IInt8MinMaxCalibrator", "IInt8EntropyCalibrator2")
                     if calibrator is not None and isinstance(calibrator, self.classes()[a])), None)
        self.builds.append({"flags": sorted(flags), "calibrated": calibrator is not None, "calibrator": algo,
                            "strong": info["strong"],
                            "network_flags": info["flags"],
                            "profiles": [s for p in config._s_profiles for s in p._s_shapes.values()],
                            "dla_core": values.get("DLA_core") if dla else None,
                            "timings_found": found, "timings_measured": measured, "constraints": constraints})
        return ENGINE_MAGIC + json.dumps({"inputs": info["inputs"], "outputs": info["outputs"],
                                          "dla_core": values.get("DLA_core") if dla else None}).encode()

    def _calibrate(self, cal, info) -> None:
        """TensorRT calling the calibrator back, as the builder does: scales the cache holds
        are used as they are (no batch asked, nothing written), where another algorithm
        wrote them, TensorRT calibrates again ("Calibration table does not match calibrator
        algorithm type")."""
        header = "TRT-{}00-".format("".join(self.version().split(".")[:2])) + (
            "MinMaxCalibration" if isinstance(cal, self.classes()["IInt8MinMaxCalibrator"]) else "EntropyCalibration2")
        with self.record.quiet():
            batch = cal.get_batch_size()
            cached = cal.read_calibration_cache()
            if cached and bytes(cached).split(b"\n")[0].endswith(header.split("-", 2)[2].encode()):
                return
            names = [info["inputs"][0][0]]
            n = 0
            while cal.get_batch(names) is not None and n < 100:
                n += 1
            assert n > 0, "the calibrator gave no batch"
            cal.write_calibration_cache(header.encode() + b"\nstand-in: 3f800000")
            assert batch >= 1

    def _log(self, builder, msg: str) -> None:
        self._log_to(builder._s_args[0], msg)

    def _log_to(self, logger, msg: str) -> None:
        with self.record.quiet():
            logger.log(self.enum("ILogger.Severity", "ERROR"), msg)

    def IBuilderConfig__set_flag(self, obj, flag):
        assert isinstance(flag, self.classes()["BuilderFlag"])
        obj._s_flags.add(int(flag))

    def IBuilderConfig__set_tactic_sources(self, obj, sources):
        assert isinstance(sources, int) and not isinstance(sources, bool)
        return True

    def IBuilderConfig__set_memory_pool_limit(self, obj, pool, size):
        assert isinstance(pool, self.classes()["MemoryPoolType"]) and int(size) > 0

    # ---- the parser reads the real ONNX
    def OnnxParser____init__(self, obj, network, logger):
        _Obj.__init__(obj, network, logger)

    def OnnxParser__parse(self, obj, data):
        import onnx

        info = obj._s_args[0]._s_info
        try:
            model = onnx.load_from_string(bytes(data))
        except Exception as exc:  # noqa: BLE001 - the parser reports, it does not raise
            obj._s_errors = [f"stand-in parser: {exc.__class__.__name__}"]
            return False
        g = model.graph
        inits = {i.name for i in g.initializer}

        def io(v):
            dims = [d.dim_value if d.dim_value > 0 else -1 for d in v.type.tensor_type.shape.dim]
            return [v.name, dims, _ONNX_TYPES.get(v.type.tensor_type.elem_type, "FLOAT")]

        info["inputs"] = [io(v) for v in g.input if v.name not in inits]
        info["outputs"] = [io(v) for v in g.output]
        info["qdq"] = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node)
        # a layer per node: (name, operator, its outputs as (tensor, data type)); the types from
        # ONNX's shape inference (a shape computation's are integers, as in the real network)
        types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
        try:
            types.update((v.name, v.type.tensor_type.elem_type)
                         for v in onnx.shape_inference.infer_shapes(model).graph.value_info)
        except Exception:  # noqa: BLE001 - a model ONNX cannot infer keeps float outputs
            pass
        info["layers"] = [(n.name or f"{n.op_type}_{i}", n.op_type,
                           [(o, _ONNX_TYPES.get(types.get(o, 1), "FLOAT")) for o in n.output])
                          for i, n in enumerate(g.node)]
        return True

    def OnnxParser__num_errors(self, obj):
        return len(getattr(obj, "_s_errors", []))

    def OnnxParser__get_error(self, obj, i):
        return obj._s_errors[i]

    def INetworkDefinition__get_input(self, obj, i):
        t = self.classes()["ITensor"]()
        t._s_io = obj._s_info["inputs"][i]
        return t

    def INetworkDefinition__num_inputs(self, obj):
        return len(obj._s_info["inputs"])

    def ITensor__name(self, obj):
        return obj._s_io[0]

    def ITensor__shape(self, obj):
        return tuple(obj._s_io[1])

    # ---- runtime, engine, context
    def Runtime____init__(self, obj, logger):
        assert isinstance(logger, self.classes()["ILogger"]), "Runtime needs an ILogger"
        _Obj.__init__(obj, logger)

    def Runtime__deserialize_cuda_engine(self, obj, data):
        data = bytes(data)
        if not data.startswith(ENGINE_MAGIC):
            with self.record.quiet():
                obj._s_args[0].log(self.enum("ILogger.Severity", "ERROR"), "magic tag does not match")
            return None
        eng = self.classes()["ICudaEngine"]()
        eng._s_io = json.loads(data[len(ENGINE_MAGIC):].decode())
        core = eng._s_io.get("dla_core")
        if core is not None and object.__getattribute__(obj, "_s_values").get("DLA_core") != core:
            with self.record.quiet():
                obj._s_args[0].log(self.enum("ILogger.Severity", "ERROR"), f"built for DLA core {core}: set DLA_core")
            return None
        return eng

    def _io(self, engine) -> List[list]:
        return engine._s_io["inputs"] + engine._s_io["outputs"]

    def ICudaEngine__num_io_tensors(self, obj):
        return len(self._io(obj))

    def ICudaEngine__get_tensor_name(self, obj, i):
        return self._io(obj)[i][0]

    def _tensor(self, engine, name):
        return next(t for t in self._io(engine) if t[0] == name)

    def ICudaEngine__get_tensor_mode(self, obj, name):
        inputs = {t[0] for t in obj._s_io["inputs"]}
        return self.enum("TensorIOMode", "INPUT" if name in inputs else "OUTPUT")

    def ICudaEngine__get_tensor_shape(self, obj, name):
        return tuple(self._tensor(obj, name)[1])

    def ICudaEngine__get_tensor_dtype(self, obj, name):
        return self.enum("DataType", self._tensor(obj, name)[2])

    def ICudaEngine__device_memory_size_v2(self, obj):
        return DEVICE_MEMORY

    def ICudaEngine__device_memory_size(self, obj):
        return DEVICE_MEMORY

    def ICudaEngine__create_execution_context(self, obj):
        ctx = self.classes()["IExecutionContext"]()
        ctx._s_engine, ctx._s_shapes, ctx._s_addr = obj, {}, {}
        return ctx

    def IExecutionContext__set_input_shape(self, obj, name, shape):
        obj._s_shapes[name] = tuple(shape)
        return True

    def IExecutionContext__get_tensor_shape(self, obj, name):
        shape = list(self._tensor(obj._s_engine, name)[1])
        batch = next(iter(obj._s_shapes.values()), (1,))[0]
        return tuple(batch if (i == 0 and d < 0) else d for i, d in enumerate(shape))

    def IExecutionContext__set_tensor_address(self, obj, name, ptr):
        assert isinstance(ptr, int) and ptr != 0
        obj._s_addr[name] = ptr
        return True

    def IExecutionContext__execute_async_v3(self, obj, stream):
        names = {t[0] for t in self._io(obj._s_engine)}
        assert set(obj._s_addr) == names, f"tensor addresses missing: {names - set(obj._s_addr)}"
        assert set(obj._s_shapes) == {t[0] for t in obj._s_engine._s_io["inputs"]}, "input shape not set"
        return True


# =====================================================================================
# A stand-in CUDA facade (the real ones need a GPU)
# =====================================================================================

class FakeCuda:
    """The facade's methods over host memory; GPU times are made up (0.5 ms)."""

    name = "stand-in"
    version = "0"
    supports_graphs = True

    def __init__(self, sync_wait="auto", cc=(8, 7)):
        self._cc = cc
        self._next = 0x1000
        self.bound: Set[int] = set()

    def bind(self) -> None:
        self.bound.add(threading.get_ident())

    def device_count(self) -> int:
        return 1

    def device_name(self, device: int = 0) -> str:
        return GPU

    def compute_capability(self, device: int = 0):
        return self._cc

    def runtime_version(self) -> str:
        return "12.6"

    def driver_version(self) -> str:
        return "12.6"

    def malloc(self, nbytes: int) -> int:
        self._next += max(256, nbytes)
        return self._next

    def free(self, ptr: int) -> None:
        pass

    def host_array(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def htod(self, dst, src, stream) -> None:
        assert isinstance(dst, int) and src.flags.c_contiguous

    def dtoh(self, dst, src, stream) -> None:
        assert isinstance(src, int)

    def memset(self, ptr, value, nbytes, stream) -> None:
        assert isinstance(ptr, int) and nbytes > 0

    def stream(self) -> int:
        return 7

    def event(self):
        return object()

    def record(self, ev, stream) -> None:
        pass

    def elapsed_ms(self, a, b) -> float:
        return 0.5

    def sync_stream(self, stream) -> None:
        pass

    def sync_device(self) -> None:
        pass

    def capture(self, stream, fn):
        fn()
        return object()

    def launch(self, graph_exec, stream) -> None:
        pass

    def close(self) -> None:
        pass


# =====================================================================================
# Models, ONNX files, the exercise
# =====================================================================================

def tiny_onnx(path: Path, precision: str = "fp32", hw=(32, 32), dynamic: bool = False,
              conv_name: str = "/model.0/cv3.0/cv3.0.2/Conv") -> Path:
    """A real 1-conv ONNX: fp32, mixed fp16 (Casts to float16 around the conv, float32 IO),
    or Q/DQ int8 (QuantizeLinear/DequantizeLinear on the input and the weight). The conv is
    named as Ultralytics' exporter names a detection head's output convolution, which INT8
    by the calibrator keeps in FP16 (``_trt_api.keep_head_out_of_int8``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    nodes = []
    x, weight = "images", "w"
    if precision == "int8":
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["images", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                  helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
                  helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"])]
        x, weight = "xd", "wd"
    if precision == "fp16":
        inits = [numpy_helper.from_array(w.astype(np.float16), "w")]
        nodes.append(helper.make_node("Cast", ["images"], ["x16"], to=TensorProto.FLOAT16))
        x = "x16"
    conv_out = "y16" if precision == "fp16" else "output0"
    nodes.append(helper.make_node("Conv", [x, weight], [conv_out], name=conv_name, pads=[1, 1, 1, 1]))
    if precision == "fp16":
        nodes.append(helper.make_node("Cast", ["y16"], ["output0"], to=TensorProto.FLOAT))
    n = "N" if dynamic else 1
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [n, 3, hw[0], hw[1]])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [n, 4, hw[0], hw[1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def timing_cache_bytes(version: str, device: str = GPU, entries=()) -> bytes:
    """A timing cache file as the stand-in of ``version`` on ``device`` writes it."""
    return TIMING_MAGIC + json.dumps({"trt": version, "device": device, "entries": sorted(entries)}).encode()


def timing_entries(path: Path) -> Set[str]:
    """The entries of a timing cache file the stand-in wrote."""
    data = Path(path).read_bytes()
    assert data.startswith(TIMING_MAGIC), data[:40]
    return set(json.loads(data[len(TIMING_MAGIC):].decode())["entries"])


def calib_folder(path: Path, n: int = 2) -> Path:
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((40, 48, 3), 40 * i, np.uint8)).save(path / f"{i}.png")
    return path


def resolved(onnx_path: Path, precision="fp32", hw=(32, 32), **options):
    from trt_ray_bench.models import ResolvedModel

    return ResolvedModel(name="m", task="detect", onnx_path=str(onnx_path), sha256="", weights="random",
                         source=str(onnx_path), hw=hw, batch=1, backend="tensorrt", options=options,
                         precision=precision)


@contextlib.contextmanager
def standin(version: str, cc=(8, 7)):
    """``tensorrt`` is the stand-in of ``version``; the CUDA facade is ``FakeCuda``, and
    the CUDA binding counts as installed (it need not be, here: CI's core venvs lack it)."""
    from trt_ray_bench.engines import _cuda

    trt = make_trt(version)
    saved, saved_load, saved_binding = sys.modules.get("tensorrt"), _cuda.load, _cuda.import_binding
    sys.modules["tensorrt"] = trt
    _cuda.load = lambda sync_wait="auto": FakeCuda(sync_wait, cc)
    _cuda.import_binding = lambda: "cuda-python"
    try:
        yield trt
    finally:
        _cuda.load, _cuda.import_binding = saved_load, saved_binding
        if saved is None:
            sys.modules.pop("tensorrt", None)
        else:
            sys.modules["tensorrt"] = saved


#: (label, precision, typing, the ONNX it is built from, opt_level, dynamic batch)
BUILDS = [
    ("fp32 weak", "fp32", "weak", "fp32", None, False),
    ("fp16 weak (flag)", "fp16", "weak", "fp32", None, False),
    ("int8 weak (calibrator)", "int8", "weak", "fp32", None, False),
    ("fp16 weak + converted", "fp16", "weak", "fp16", None, False),
    ("int8 weak + converted (Q/DQ)", "int8", "weak", "int8", None, False),
    ("fp32 strong", "fp32", "strong", "fp32", None, False),
    ("fp16 strong + converted", "fp16", "strong", "fp16", None, False),
    ("int8 strong + converted (Q/DQ)", "int8", "strong", "int8", None, False),
    ("fp16 weak, opt_level 0", "fp16", "weak", "fp32", 0, False),
    ("fp32 strong, opt_level 0", "fp32", "strong", "fp32", 0, False),
    ("int8 weak (calibrator), dynamic batch", "int8", "weak", "fp32", None, True),
    ("int8 strong + converted, dynamic batch", "int8", "strong", "int8", None, True),
]


#: (label, precision, the ONNX it is built from, DLA cores the builder counts, options)
DLA_BUILDS = [
    ("fp16 on DLA 1, GPU fallback", "fp16", "fp16", 2, {"dla_core": 1, "gpu_fallback": True}),
    ("fp16 on DLA 0, no fallback", "fp16", "fp16", 2, {"dla_core": 0}),
    ("fp16 on DLA 0, no DLA here", "fp16", "fp16", 0, {"dla_core": 0}),
    ("fp16 on DLA 2 of 2", "fp16", "fp16", 2, {"dla_core": 2, "gpu_fallback": True}),
    ("fp32 on DLA 0", "fp32", "fp32", 2, {"dla_core": 0}),
]
DLA_OUTCOMES = {"fp16 on DLA 1, GPU fallback": "built", "fp16 on DLA 0, no fallback": "refused: options.gpu_fallback",
                "fp16 on DLA 0, no DLA here": "refused: options.dla_core", "fp16 on DLA 2 of 2": "refused: options.dla_core",
                "fp32 on DLA 0": "refused: options.dla_core"}


def expected_typing(version: str) -> str:
    return "strong" if vt(version)[0] >= 11 else "weak"


def expected_outcome(version: str, typing: str, opt_level) -> str:
    v = vt(version)
    if typing == "weak" and v[0] >= 11:
        return "refused: options.typing"
    if typing == "strong" and v[0] < 10:
        return "refused: options.typing"
    if opt_level is not None and v < (8, 6):
        return "refused: options.opt_level"
    return "built"


@dataclasses.dataclass
class Exercise:
    version: str
    record: Record
    outcomes: Dict[str, str]
    messages: Dict[str, str]
    builds: Dict[str, dict]
    infos: Dict[str, dict]
    errors: List[str]


def _attempt(ex: Exercise, label: str, fn):
    """Run ``fn``; a UserError is an outcome, anything else (AttributeError first) an error."""
    from trt_ray_bench.errors import UserError

    try:
        return fn()
    except UserError as exc:
        ex.outcomes[label] = f"refused: {exc.where.split('.', 1)[1] if '.' in exc.where else exc.where}"
        ex.messages[label] = str(exc)
    except Exception as exc:  # noqa: BLE001 - what the test is for: nothing else may escape
        ex.errors.append(f"{label}: {exc.__class__.__name__}: {exc}")
    return None


def exercise(version: str, tmp: Path) -> Exercise:
    """Drive the real build, load and run code through the stand-in of ``version``."""
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine
    from trt_ray_bench.timing import LoopPlan, run_loop

    ex = Exercise(version, Record(), {}, {}, {}, {}, [])
    tmp.mkdir(parents=True, exist_ok=True)
    onnx = {p: tiny_onnx(tmp / f"tiny-{p}.onnx", p) for p in ("fp32", "fp16", "int8")}
    onnx.update({f"{p}-dynamic": tiny_onnx(tmp / f"tiny-{p}-dynamic.onnx", p, dynamic=True) for p in ("fp32", "int8")})
    images = calib_folder(tmp / "calib")
    with standin(version) as trt:
        ex.record = object.__getattribute__(trt, "_s_record")
        sim = object.__getattribute__(trt, "_s_sim")
        for label, precision, typing, carried, opt_level, dynamic in BUILDS:
            src = onnx[carried + ("-dynamic" if dynamic else "")]
            converted = None if carried == "fp32" else {"path": str(src), "precision": carried,
                                                        "converter": "stand-in", "converter_version": "0"}
            opts = BuildOptions(precision=precision, typing=typing, opt_level=opt_level, tactics="none",
                                max_batch=4 if dynamic else None,
                                onnx_precision=carried, calib_images=str(images) if precision == "int8" else None,
                                calib_cache=str(tmp / f"{label}.cache") if precision == "int8" else None,
                                timing_cache=str(tmp / "timing.cache"))
            n = len(sim.builds)
            info = _attempt(ex, label, lambda: build_engine(src, opts, "Stand-in Orin", out=tmp / "engines",
                                                            where="models[0]", hw=(32, 32), cc=(8, 7),
                                                            converted=converted))
            if info is not None:
                ex.outcomes[label] = "built"
                ex.infos[label] = dataclasses.asdict(info)
                ex.builds[label] = sim.builds[n] if len(sim.builds) > n else {}
        for label, precision, carried, cores, options in DLA_BUILDS:
            sim.dla_cores = cores
            src = onnx[carried]
            converted = None if carried == "fp32" else {"path": str(src), "precision": carried,
                                                        "converter": "stand-in", "converter_version": "0"}
            opts = BuildOptions(precision=precision, onnx_precision=carried, dla_core=options["dla_core"],
                                gpu_fallback=options.get("gpu_fallback", False))
            n = len(sim.builds)
            info = _attempt(ex, label, lambda: build_engine(src, opts, "Stand-in Orin", out=tmp / "engines",
                                                            where="models[0]", hw=(32, 32), cc=(8, 7),
                                                            converted=converted))
            if info is not None:
                ex.outcomes[label] = "built"
                ex.infos[label] = dataclasses.asdict(info)
                ex.builds[label] = sim.builds[n] if len(sim.builds) > n else {}
                model = dataclasses.replace(resolved(src, precision, **options), engine_path=info.path,
                                            engine=ex.infos[label])
                _attempt(ex, f"run {label}", lambda: _run(backend, model, run_loop, LoopPlan))
        sim.dla_cores = 0
        # another build wrote the timing cache while this one built: both builds' timings are kept
        timing = tmp / "timing.cache"
        if timing.is_file():
            sim.during_build = lambda: timing.write_bytes(timing_cache_bytes(version, GPU, ["Elsewhere:1:fp32"]))
            opts = BuildOptions(precision="fp32", tactics="none", opt_level=None, max_batch=4,
                                timing_cache=str(timing))
            info = _attempt(ex, "timing cache merged", lambda: build_engine(
                onnx["fp32-dynamic"], opts, GPU, out=tmp / "engines", where="models[0]", hw=(32, 32), cc=(8, 7)))
            sim.during_build = None
            if info is not None:
                ex.outcomes["timing cache merged"] = sorted(timing_entries(timing))
        built = [label for label, outcome in ex.outcomes.items() if outcome == "built" and "DLA" not in label]
        for label in built[:1]:  # load and run one engine, then an engine file without imgsz
            path = Path(ex.infos[label]["path"])
            for options in ({}, {"transfers": False, "cuda_graph": True}):
                model = dataclasses.replace(resolved(onnx["fp32"], **options), engine_path=str(path),
                                            engine=ex.infos[label])
                _attempt(ex, f"run {options or 'transfers'}", lambda: _run(backend, model, run_loop, LoopPlan))
            given = tmp / "given.engine"
            given.write_bytes(path.read_bytes())
            model = dataclasses.replace(resolved(given, hw=(0, 0)), onnx_path="")
            prepared = _attempt(ex, "engine file without imgsz", lambda: backend.prepare(model, "models[0]"))
            if prepared is not None:
                ex.outcomes["engine file without imgsz"] = f"hw {prepared.hw[0]}x{prepared.hw[1]}"
                ex.infos["engine file without imgsz"] = prepared.engine
        lines = _attempt(ex, "doctor", backend.doctor_lines)
        ex.outcomes["doctor"] = "; ".join(lines or [])
    return ex


def _run(backend, model, run_loop, LoopPlan) -> None:
    runner = backend.load(model)
    runner.prepare([np.zeros((1, 3, 32, 32), np.float32)])
    s = run_loop(runner, LoopPlan(iterations=5, warmup=2))
    assert len(s.gpu_ms) == 7 and set(s.gpu_ms) == {0.5}
    outs = runner.run_array(np.zeros((1, 3, 32, 32), np.float32)) if runner.transfers else []
    assert all(o.shape == (1, 4, 32, 32) for o in outs)
    runner.close()


_EXERCISES: Dict[str, Exercise] = {}


@pytest.fixture(scope="module")
def exercised(tmp_path_factory):
    pytest.importorskip("onnx")

    def get(version: str) -> Exercise:
        if version not in _EXERCISES:
            _EXERCISES[version] = exercise(version, tmp_path_factory.mktemp(f"trt{version}"))
        return _EXERCISES[version]
    return get


# =====================================================================================
# The tests
# =====================================================================================

def test_the_version_lists_name_what_the_stubs_have():
    """A misspelt name in a list would silently remove nothing."""
    classes, exported, _ = API()
    names = set(exported) | set(classes)
    for c in classes.values():
        names |= {f"{c.name}.{m}" for m in c.members}
    for file in ("tensorrt11_removed.txt", "tensorrt85_absent.txt"):
        unknown = [n for n, _ in read_list(file) if n not in names]
        assert not unknown, f"{file}: not in the 10.13 stubs: {unknown}"
    for name, rest in read_list("tensorrt85_absent.txt"):
        assert re.match(r"\d+\.\d+\s", rest), f"tensorrt85_absent.txt: {name} needs the version that added it"


@pytest.mark.parametrize("version", ["8.5.2.2", "8.6.1.6"])
def test_the_8x_stand_ins_have_only_what_the_real_module_has(version):
    """The 8.5 and 8.6 stand-ins are the stubs less every name the real module lacks, as
    recorded from its wheel; the hand-kept list of names added since 8.5 agrees with both."""
    v = vt(version)
    file = DATA / RECORDED[v[:2]]
    assert file.read_text().startswith(f"# The public names of tensorrt {v[0]}.{v[1]}.")
    real = recorded_names(version)
    for name, rest in read_list("tensorrt85_absent.txt"):
        assert (name in real) == (vt(rest.split()[0]) <= v), (file.name, name, rest)
    t = make_trt(version)
    assert hasattr(t, "ICastLayer") == (v >= (8, 6))  # a layer 8.6 added: absent from the 8.5 list
    assert not hasattr(t, "IProgressMonitor") and not hasattr(t, "int64")
    assert hasattr(t.IBuilderConfig, "set_tactic_sources") and hasattr(t.ILogger.Severity, "ERROR")
    assert not (absent_names(version) & real)


def test_the_stand_in_has_exactly_its_versions_names():
    t11, t85, t10 = make_trt("11.4.0"), make_trt("8.5.2"), make_trt("10.13.0")
    assert int(t10.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) == 0
    assert int(t10.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1
    with pytest.raises(AttributeError):
        t11.BuilderFlag.FP16
    with pytest.raises(AttributeError):
        t11.IInt8EntropyCalibrator2
    with pytest.raises(AttributeError):
        t11.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    assert t11.BuilderFlag.REFIT is not None
    logger = type("L", (t11.ILogger,), {"log": lambda self, s, m: None})()
    builder = t11.Builder(logger)
    assert not hasattr(builder, "platform_has_fast_fp16")
    config = builder.create_builder_config()
    with pytest.raises(AttributeError):
        config.int8_calibrator = None
    config.builder_optimization_level = 0  # 11 kept it
    with pytest.raises(AttributeError):
        t85.Builder(type("L", (t85.ILogger,), {})()).create_builder_config().builder_optimization_level = 0
    with pytest.raises(AttributeError):
        t85.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    engine = t85.Runtime(type("L", (t85.ILogger,), {})()).deserialize_cuda_engine(
        ENGINE_MAGIC + b'{"inputs": [], "outputs": []}')
    assert hasattr(engine, "device_memory_size") and not hasattr(engine, "device_memory_size_v2")


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_tensors_are_read_without_tensorrts_nptype_on_numpy_1_24(version, monkeypatch):
    """An engine's inputs and outputs are read (dtype names included) on every version with
    numpy 1.24 to 1.26, where TensorRT 8.5's ``nptype`` fails (its ``np.bool``): numpy 2's alias
    is removed here to be that numpy whatever numpy runs the test."""
    from trt_ray_bench.engines._trt_build import engine_facts
    from trt_ray_bench.errors import UserError

    monkeypatch.delattr(np, "bool", raising=False)
    trt = make_trt(version)
    if vt(version)[:2] < (8, 6):
        with pytest.raises(AttributeError):
            trt.nptype(trt.DataType.FLOAT)  # the stand-in fails as the real 8.5 does
    io = {"inputs": [["images", [1, 3, 32, 32], "HALF"]],
          "outputs": [["output0", [1, 84, 21], "FLOAT"], ["mask", [1, 21], "BOOL"], ["ids", [1, 21], "INT32"]]}
    runtime = trt.Runtime(type("L", (trt.ILogger,), {"log": lambda self, s, m: None})())
    facts = engine_facts(trt, runtime, ENGINE_MAGIC + json.dumps(io).encode())
    assert facts["inputs"] == [("images", [1, 3, 32, 32], "float16")]
    assert facts["outputs"] == [("output0", [1, 84, 21], "float32"), ("mask", [1, 21], "bool"),
                                ("ids", [1, 21], "int32")]
    assert [np.dtype(t[2]) for t in facts["outputs"]] == [np.float32, np.bool_, np.int32]
    if hasattr(trt.DataType, "BF16"):  # from 9.0: a type numpy has not is refused in one line
        io["outputs"].append(["logits", [1, 10], "BF16"])
        with pytest.raises(UserError, match=r"^models\[0\]\.path: the engine's tensor logits is of type .*BF16"):
            engine_facts(trt, runtime, ENGINE_MAGIC + json.dumps(io).encode(), "models[0].path")


@pytest.mark.parametrize("version", VERSIONS)
def test_build_and_run_on_each_version(exercised, version):
    ex = exercised(version)
    assert not ex.errors, f"TensorRT {version}: " + "\n".join(ex.errors)
    for label, precision, typing, carried, opt_level, dynamic in BUILDS:
        assert ex.outcomes[label] == expected_outcome(version, typing, opt_level), (version, label, ex.messages)
        if label in ex.messages:
            msg = ex.messages[label]
            assert "\n" not in msg and msg.startswith("models[0].options.")
        if ex.outcomes[label] != "built":
            continue
        build, info = ex.builds[label], ex.infos[label]
        major = vt(version)[0]
        want_net = 1 if major < 10 else (2 if (typing == "strong" and major == 10) else 0)
        assert build["network_flags"] == want_net, (label, build)
        calibrated = typing == "weak" and precision == "int8" and carried == "fp32"
        if typing == "weak":
            want = {"fp32": [], "fp16": ["FP16"], "int8": ["FP16", "INT8"]}[precision]
            # the calibrator's build keeps the head's output conv (the tiny model's one conv) in FP16
            assert build["flags"] == sorted(want + ["OBEY_PRECISION_CONSTRAINTS"] * calibrated), (label, build)
        else:
            assert build["flags"] == [], (label, build)
        assert build["calibrated"] == calibrated
        assert build["constraints"] == ({"/model.0/cv3.0/cv3.0.2/Conv": "HALF"} if calibrated else {}), (label, build)
        assert info["typing"] == typing and info["device_memory_bytes"] == DEVICE_MEMORY
        assert (info["converted"] is None) == (carried == "fp32")
        assert [list(t) for t in info["inputs"]] == [["images", [-1 if dynamic else 1, 3, 32, 32], "float32"]]
        assert build["profiles"] == ([[[1, 3, 32, 32], [1, 3, 32, 32], [4, 3, 32, 32]]] if dynamic else [])
        timing = info["timing_cache"]  # one file for every build of the version: made by the first, read by the rest
        assert timing["path"].endswith("timing.cache") and timing["bytes_after"] >= timing["bytes_before"], timing
        assert timing["existed"] == (timing["bytes_before"] > 0) and build["timings_found"] + build[
            "timings_measured"] > 0, (label, timing, build)
    merged = ex.outcomes["timing cache merged"]  # every build's timings, and those another build wrote meanwhile
    assert "Elsewhere:1:fp32" in merged and "Conv:-1x3x32x32:" + ("strong" if vt(version)[0] >= 11 else "fp32") \
        in merged and any(e.startswith("Conv:1x3x32x32:") for e in merged), merged
    assert ex.outcomes["engine file without imgsz"] == "hw 32x32"
    assert ex.infos["engine file without imgsz"]["given"]
    assert f"{version} (default typing: {expected_typing(version)})" in ex.outcomes["doctor"]
    assert "compute capability 8.7" in ex.outcomes["doctor"]


@pytest.mark.parametrize("version", VERSIONS)
def test_dla_on_each_version(exercised, version):
    """options.dla_core / gpu_fallback: built for the core asked with the fallback flag,
    the layers that went to the GPU listed, loaded on a runtime set to that core; refused in
    one line where the builder has no such core or the DLA cannot run every layer."""
    ex = exercised(version)
    assert not ex.errors, f"TensorRT {version}: " + "\n".join(ex.errors)
    for label, *_ in DLA_BUILDS:
        assert ex.outcomes[label] == DLA_OUTCOMES[label], (version, label, ex.messages.get(label))
    build, info = ex.builds["fp16 on DLA 1, GPU fallback"], ex.infos["fp16 on DLA 1, GPU fallback"]
    assert build["dla_core"] == 1 and "GPU_FALLBACK" in build["flags"]
    assert info["dla_core"] == 1 and info["gpu_layers"] == ["Cast_0", "Cast_2"]  # the casts around the conv
    from types import SimpleNamespace

    from trt_ray_bench.cluster.node_run import engine_line

    line = engine_line(SimpleNamespace(name="m", engine=info, engine_path="/c/m-fp16.engine"))
    assert line.startswith("engine   m: m-fp16.engine (") and line.endswith(
        "typing, DLA core 1, 2 layer(s) on the GPU: Cast_0, Cast_2)"), line  # the run's log says where it ran
    assert "run fp16 on DLA 1, GPU fallback" not in ex.outcomes  # the engine ran, on a runtime set to core 1
    assert ex.messages["fp16 on DLA 0, no DLA here"] == (
        "models[0].options.dla_core: 0: Stand-in Orin has no DLA (TensorRT's builder counts 0 DLA cores; Jetson "
        "AGX Xavier, Xavier NX and AGX Orin have 2)")
    assert ex.messages["fp16 on DLA 2 of 2"] == "models[0].options.dla_core: 2: Stand-in Orin has DLA cores 0 to 1 only"
    assert ex.messages["fp16 on DLA 0, no fallback"] == (
        "models[0].options.gpu_fallback: false, but 2 of 3 layers cannot run on DLA core 0 (Cast_0, Cast_2): "
        "gpu_fallback: true runs them on the GPU")
    assert ex.messages["fp32 on DLA 0"].startswith("models[0].options.dla_core: 0: a DLA runs FP16 or INT8 only")
    for name in ("Builder.num_DLA_cores", "IBuilderConfig.DLA_core", "IBuilderConfig.default_device_type",
                 "IBuilderConfig.can_run_on_DLA", "BuilderFlag.GPU_FALLBACK", "Runtime.DLA_core"):
        assert name in ex.record.used, (version, name)


def test_dla_options_are_checked_on_the_driver_and_key_the_engine_cache(tmp_path):
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.engines._trt_build import BuildOptions
    from trt_ray_bench.errors import UserError

    onnx = tiny_onnx(tmp_path / "m.onnx")
    for options, says in [({"dla_core": -1}, r"options.dla_core: -1, expected a DLA core number"),
                          ({"dla_core": True}, r"options.dla_core: True, expected a DLA core number"),
                          ({"dla_core": 0, "gpu_fallback": "yes"}, r"options.gpu_fallback: 'yes', expected true"),
                          ({"gpu_fallback": True}, r"options.gpu_fallback: true needs options.dla_core"),
                          ({"dla_core": 0}, r"options.dla_core: 0: a DLA runs FP16 or INT8 only")]:
        with pytest.raises(UserError, match=r"^models\[0\]\." + says):
            backend.check(resolved(onnx, "fp32", **options), "models[0]")
    gpu = BuildOptions(precision="fp16")
    assert "dla_core" not in gpu.key()  # engines built for the GPU keep their cache keys
    assert BuildOptions(precision="fp16", dla_core=0).key() != BuildOptions(precision="fp16", dla_core=1).key()
    assert BuildOptions(precision="fp16", dla_core=0).key() != BuildOptions(precision="fp16", dla_core=0,
                                                                            gpu_fallback=True).key()


def test_numeric_build_options_are_checked_on_the_driver(tmp_path):
    """A string or a non-finite number where a number belongs is one line naming the option,
    before anything (it had ended in an internal error, or failed on the node mid-run)."""
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    onnx = tiny_onnx(tmp_path / "m.onnx")
    for options, says in [({"workspace_gb": "abc"}, r"options.workspace_gb: 'abc', expected a positive size in GB"),
                          ({"workspace_gb": float("nan")}, r"options.workspace_gb: nan, expected a positive size"),
                          ({"workspace_gb": 0}, r"options.workspace_gb: 0, expected a positive size"),
                          ({"max_batch": "abc"}, r"options.max_batch: 'abc', expected the largest batch"),
                          ({"max_batch": [1]}, r"options.max_batch: \[1\], expected the largest batch"),
                          ({"opt_level": "abc"}, r"options.opt_level: 'abc', expected an optimization level, 0 to 5"),
                          ({"opt_level": 99}, r"options.opt_level: 99, expected an optimization level, 0 to 5"),
                          ({"opt_level": True}, r"options.opt_level: True, expected an optimization level"),
                          ({"calib_images": ["a"]}, r"options.calib_images: \['a'\], expected a path")]:
        with pytest.raises(UserError, match=r"^models\[0\]\." + says):
            backend.check(resolved(onnx, "fp16", **options), "models[0]")
    backend.check(resolved(onnx, "fp16", workspace_gb=2, opt_level=3, max_batch=4), "models[0]")  # fine


def test_a_dla_core_the_node_lacks_is_refused_before_any_model_is_built(tmp_path, monkeypatch):
    """A run's models are checked on the node first (``prepare_models``): the GPU model
    listed before a DLA one is not built when the node has no DLA (a desktop GPU)."""
    pytest.importorskip("onnx")
    from trt_ray_bench.cluster.actors import prepare_models
    from trt_ray_bench.errors import UserError

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))
    onnx = tiny_onnx(tmp_path / "m.onnx")
    models = [resolved(onnx, "fp16"), resolved(onnx, "fp16", dla_core=0, gpu_fallback=True)]
    with standin("8.5.2.2") as trt:
        with pytest.raises(UserError) as e:
            prepare_models._function(models, ["models[0]", "models[1]"], [0, 1])
        builds = object.__getattribute__(trt, "_s_sim").builds
    assert str(e.value).startswith("models[1].options.dla_core: 0: Stand-in Orin has no DLA")
    assert builds == [] and not (tmp_path / "cache" / "engines").exists()
    with standin("8.5.2.2") as trt:  # without the DLA model, the same GPU model builds
        done = prepare_models._function(models[:1], ["models[0]"], [0])
        assert len(object.__getattribute__(trt, "_s_sim").builds) == 1 and Path(done[0].engine_path).is_file()


def test_refusals_say_why_in_one_line(exercised):
    on11 = exercised("11.4.0.10").messages["fp16 weak (flag)"]
    assert on11.startswith("models[0].options.typing: weak: TensorRT 11.4.0.10 has no weak typing")
    on8 = exercised("8.6.1.6").messages["fp16 strong + converted"]
    assert on8 == ("models[0].options.typing: strong: TensorRT 8.x has no strongly typed networks (10.0+); "
                   "use typing: weak with convert: true")
    assert exercised("8.5.2.2").messages["fp16 weak, opt_level 0"].startswith(
        "models[0].options.opt_level: needs TensorRT >= 8.6")


def test_the_code_uses_no_name_its_version_lacks(exercised):
    """The heart of it: on each version, every name the code found exists there, and the
    names it looked up without finding were gated (the run went on)."""
    for version in VERSIONS:
        ex = exercised(version)
        absent = absent_names(version)
        assert not (ex.record.used & absent), (version, ex.record.used & absent)
        major = vt(version)[0]
        used = ex.record.used
        assert ("NetworkDefinitionCreationFlag.EXPLICIT_BATCH" in used) == (major < 10)
        assert not any(n.startswith("Builder.platform_has") for n in used)
        assert not any(n.startswith("TacticSource.") for n in used)
        assert ("ICudaEngine.device_memory_size_v2" in used) == (vt(version) >= (10, 1))


def version_table(exs: List[Exercise]) -> str:
    """TensorRT call x version: used / gated (looked up, absent, not called) / not used."""
    rows = sorted(set().union(*(e.record.used | e.record.missing for e in exs)))
    versions = " | ".join(".".join(e.version.split(".")[:2]) for e in exs)
    lines = [f"| TensorRT call | {versions} |", "|---|" + "---|" * len(exs)]
    for r in rows:
        cells = ["used" if r in e.record.used else "gated" if r in e.record.missing else "—" for e in exs]
        lines.append(f"| `{r}` | " + " | ".join(cells) + " |")
    lines += ["", f"| build (build_engine) | {versions} |", "|---|" + "---|" * len(exs)]
    for label, *_ in BUILDS + DLA_BUILDS:
        lines.append(f"| {label} | " + " | ".join(e.outcomes[label] for e in exs) + " |")
    return "\n".join(lines)


_BEGIN, _END = "<!-- version table: begin -->", "<!-- version table: end -->"


def test_the_version_table_in_the_readme_is_current(exercised):
    table = version_table([exercised(v) for v in VERSIONS])
    text = README.read_text()
    have = text.split(_BEGIN, 1)[1].split(_END, 1)[0].strip()
    assert have == table, "data/README.md's table is stale: python tests/engines/test_trt_api.py rewrites it\n" + table


# -------------------------------------------------------------------- the driver's checks
def test_check_refuses_unknown_typing_and_convert(tmp_path):
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    m = resolved(tiny_onnx(tmp_path / "m.onnx"), "fp16", typing="medium")
    with pytest.raises(UserError, match=r"models\[0\].options.typing: 'medium', expected weak or strong"):
        backend.check(m, "models[0]")
    m = resolved(tmp_path / "m.onnx", "fp16", convert="sometimes")
    with pytest.raises(UserError, match=r"models\[0\].options.convert: 'sometimes', expected auto, true or false"):
        backend.check(m, "models[0]")
    for options in ({"typing": "strong"}, {"convert": True}, {"typing": "strong", "convert": False}):
        backend.check(resolved(tmp_path / "m.onnx", "fp32", **options), "models[0]")  # fp32: a no-op


def test_check_int8_calibration_data_by_route(tmp_path):
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    pytest.importorskip("onnx")
    src, qdq = tiny_onnx(tmp_path / "m.onnx"), tiny_onnx(tmp_path / "q.onnx", "int8")
    images = str(calib_folder(tmp_path / "calib"))
    with pytest.raises(UserError, match=r"options.calib_cache: int8 needs a calibration cache"):
        backend.check(resolved(src, "int8", calib_images=images, typing="weak"), "models[0]")  # the calibrator
    with pytest.raises(UserError, match=r"precision: int8 needs calibration data"):
        backend.check(resolved(src, "int8"), "models[0]")
    # the typing is the node's TensorRT's: 11.x converts (images only), below 11 prepare asks for the cache
    backend.check(resolved(src, "int8", calib_images=images), "models[0]")
    backend.check(resolved(src, "int8", calib_images=images, convert=True), "models[0]")  # Q/DQ: images only
    backend.check(resolved(src, "int8", calib_images=images, typing="strong"), "models[0]")
    with pytest.raises(UserError, match=r"options.calib_images: int8 by conversion"):
        backend.check(resolved(src, "int8", typing="strong"), "models[0]")
    backend.check(resolved(qdq, "int8"), "models[0]")  # a Q/DQ ONNX carries its scales
    backend.check(resolved(qdq, "int8", convert=False, typing="strong"), "models[0]")
    with pytest.raises(UserError, match=r"options.convert: false builds the ONNX as given, which carries fp32"):
        backend.check(resolved(src, "fp16", convert=False, typing="strong"), "models[0]")


def test_gpu_precision_from_the_compute_capability():
    from trt_ray_bench.engines._trt_api import precision_problem

    assert precision_problem((6, 1), "fp16") and precision_problem((5, 0), "fp16")
    assert precision_problem((5, 3), "int8") and precision_problem((6, 2), "int8")  # Nano, TX2
    for cc in ((5, 3), (6, 0), (6, 2), (7, 2), (8, 7), (9, 0)):  # Nano, P100, TX2, Xavier, Orin, H100
        assert precision_problem(cc, "fp16") is None
    for cc in ((6, 1), (7, 0), (7, 2), (8, 7), (9, 0)):
        assert precision_problem(cc, "int8") is None


def test_a_gpu_without_fast_fp16_is_refused(tmp_path):
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine
    from trt_ray_bench.errors import UserError

    pytest.importorskip("onnx")
    src = tiny_onnx(tmp_path / "m.onnx")
    with standin("8.6.1.6", cc=(6, 1)):
        with pytest.raises(UserError, match=r"models\[0\].precision: GTX 1080 \(sm 6.1 has no fast FP16\)"):
            build_engine(src, BuildOptions(precision="fp16"), "GTX 1080", out=tmp_path, where="models[0]", cc=(6, 1))


# -------------------------------------------------------------------- prepare, with the real converter
def test_prepare_converts_where_the_typing_asks(tmp_path, monkeypatch):
    """prepare's route on each side of the version line, with the real converter: 11.x
    converts for strong typing by default; 8.6 builds the Q/DQ conversion with the INT8
    flag and no calibrator (weak + convert: true); 10.13 keeps weak typing by default."""
    pytest.importorskip("onnx")
    convert = pytest.importorskip("trt_ray_bench.models._convert")
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))
    src = tiny_onnx(tmp_path / "m.onnx", hw=(32, 32))
    images = str(calib_folder(tmp_path / "calib", 4))
    with standin("11.4.0.10") as trt:
        m = backend.prepare(resolved(src, "fp16", tactics="none"), "models[0]")
        sim = object.__getattribute__(trt, "_s_sim")
        assert m.engine["typing"] == "strong" and sim.builds[-1]["flags"] == []
        assert m.converted["precision"] == "fp16" and convert.onnx_precision(m.converted["path"]) == "fp16"
        assert m.engine["converted"]["sha256"] == m.converted["sha256"]
        assert str(m.converted["path"]) in backend.made_files(m) and m.engine_path in backend.made_files(m)
    with standin("8.6.1.6") as trt:
        m = backend.prepare(resolved(src, "int8", tactics="none", convert=True, calib_images=images), "models[0]")
        build = object.__getattribute__(trt, "_s_sim").builds[-1]
        assert m.engine["typing"] == "weak" and build["flags"] == ["FP16", "INT8"] and not build["calibrated"]
        assert m.converted["precision"] == "int8"
        with pytest.raises(UserError, match=r"options.calib_cache: int8 needs a calibration cache file path"):
            backend.prepare(resolved(src, "int8", calib_images=images), "models[0]")  # weak by default on 8.x
    with standin("10.13.0.35") as trt:
        m = backend.prepare(resolved(src, "fp16", tactics="none"), "models[0]")
        assert m.engine["typing"] == "weak" and m.converted is None
        assert object.__getattribute__(trt, "_s_sim").builds[-1]["flags"] == ["FP16"]


# -------------------------------------------------------------------- the CUDA facades
def _public(cls) -> Set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_the_cuda_facades_have_the_same_methods():
    from trt_ray_bench.engines._cuda import CudaPython, PyCuda

    # ``version`` (and the binding's module) are set per instance by the real ones
    assert _public(CudaPython) == _public(PyCuda) == _public(FakeCuda) - {"version"}


class _FakePyCudaDriver(types.ModuleType):
    """pycuda.driver's calls that the facade makes, with its per-thread context rule: a
    call in a thread where no context is current fails, as the driver API does."""

    class Error(Exception):
        pass

    def __init__(self):
        super().__init__("pycuda.driver")
        self.local = threading.local()
        self.pushes: List[int] = []
        drv = self

        class Context:
            def push(self):
                drv.local.current = self
                drv.pushes.append(threading.get_ident())

            @staticmethod
            def synchronize():
                drv.need()

        class Device:
            def __init__(self, i):
                pass

            @staticmethod
            def count():
                return 1

            def name(self):
                return "Fake Orin"

            def compute_capability(self):
                return (8, 7)

            def retain_primary_context(self):
                return Context()

        class Stream:
            def __init__(self, flags=0):
                drv.need()
                self.handle = 99

            def synchronize(self):
                drv.need()

        class Event:
            def __init__(self):
                drv.need()

            def record(self, stream):
                drv.need()

            def synchronize(self):
                drv.need()

            def time_till(self, other):
                drv.need()
                return 0.25

        self.Context, self.Device, self.Stream, self.Event = Context, Device, Stream, Event

    def need(self):
        if getattr(self.local, "current", None) is None:
            raise self.Error("cuCtx: invalid device context (no context current in this thread)")

    def init(self):
        pass

    def get_version(self):
        return (12, 2, 0)

    def get_driver_version(self):
        return 12060

    def mem_alloc(self, n):
        self.need()
        return 0x5000 + n

    def pagelocked_empty(self, shape, dtype):
        self.need()
        return np.zeros(shape, dtype)

    def memcpy_htod_async(self, dst, src, stream):
        self.need()

    def memcpy_dtoh_async(self, dst, src, stream):
        self.need()

    def memset_d8_async(self, dst, value, n, stream):
        self.need()


def _runner_over_fake_pycuda(drv, tmp_path, monkeypatch):
    """(runner, model): a TensorRT runner of a tiny engine through the real pycuda facade,
    over ``drv`` (a stand-in ``pycuda.driver``) and the 8.6 stand-in ``tensorrt``."""
    from trt_ray_bench.engines import _cuda
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine

    pkg = types.ModuleType("pycuda")
    pkg.VERSION_TEXT, pkg.driver = "2026.1", drv
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    monkeypatch.setattr(_cuda, "_set_primary_flags", lambda device, flags: None)
    monkeypatch.setenv("TRB_CUDA", "pycuda")
    src = tiny_onnx(tmp_path / "m.onnx")
    with standin("8.6.1.6"):
        info = build_engine(src, BuildOptions(tactics="none"), "Fake Orin", out=tmp_path, where="models[0]")
    monkeypatch.setitem(sys.modules, "tensorrt", make_trt("8.6.1.6"))  # and the real facade, over the fake driver
    model = dataclasses.replace(resolved(src), engine_path=info.path, engine=dataclasses.asdict(info))
    return backend.load(model), model


def test_pycuda_facade_in_a_threaded_actor(tmp_path, monkeypatch):
    """Ray's threaded actor: the runner is built in one thread and timed in another. The
    pycuda facade makes the primary context current once per thread (not per call), and
    describe() says it ran through pycuda; a CUDA graph is refused in one line."""
    pytest.importorskip("onnx")
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError
    from trt_ray_bench.timing import LoopPlan, run_loop

    drv = _FakePyCudaDriver()
    runner, model = _runner_over_fake_pycuda(drv, tmp_path, monkeypatch)
    assert runner.describe()["providers"].endswith("via pycuda")
    out = {}

    def timed():
        runner.prepare([np.zeros((1, 3, 32, 32), np.float32)])
        out["s"] = run_loop(runner, LoopPlan(iterations=50, warmup=5))
        runner.close()
    t = threading.Thread(target=timed)
    t.start()
    t.join()
    assert len(out["s"].gpu_ms) == 55 and set(out["s"].gpu_ms) == {0.25}
    assert len(drv.pushes) == 2 and drv.pushes[0] != drv.pushes[1]  # once per thread, not per call
    graph = dataclasses.replace(model, options={"cuda_graph": True, "transfers": False})
    with pytest.raises(UserError, match=r"options.cuda_graph: needs cuda-python"):
        backend.load(graph)
    with pytest.raises(UserError, match=r"options.cuda_graph: needs cuda-python"):
        backend.check(graph, "models[0]")
    lines = backend.doctor_lines()
    assert any("pycuda 2026.1" in line for line in lines) and any("compute capability 8.7" in line
                                                                  for line in lines)


def test_trb_cuda_must_name_a_binding(monkeypatch):
    from trt_ray_bench.engines import _cuda
    from trt_ray_bench.errors import UserError

    monkeypatch.setenv("TRB_CUDA", "cupy")
    with pytest.raises(UserError, match="TRB_CUDA: 'cupy', expected one of auto, cuda-python, pycuda"):
        _cuda.load()


class _RefusingRuntime(types.ModuleType):
    """cuda-python's runtime where pycuda made the primary context current first: its
    cudaSetDeviceFlags fails (on an H100 with cuda-python 12.3 and driver 580 it named the
    error "unrecognized error code"); every call returns ``(err, *values)`` as the real one."""

    def __init__(self):
        super().__init__("cuda.cudart")
        self.flags: List[int] = []

    def cudaSetDeviceFlags(self, flags):
        self.flags.append(flags)
        self.last = 999
        return (999,)

    def cudaGetLastError(self):
        err, self.last = self.last, 0
        return (err,)

    @staticmethod
    def cudaGetErrorString(err):
        return (0, b"unrecognized error code")


def test_cuda_python_after_pycuda_keeps_the_contexts_flags_for_auto_only(monkeypatch):
    """A process where pycuda made the primary context current before cuda-python's facade
    loaded (two bindings in one process): the runtime refuses to set how host threads wait.
    auto keeps the context's flags and loads, as the pycuda facade does; a mode asked for is
    a one-line error, not a run under another mode than the one recorded."""
    from trt_ray_bench.engines import _cuda

    rt = _RefusingRuntime()
    monkeypatch.setattr(_cuda, "_cuda_python_runtime", lambda: rt)
    assert _cuda.CudaPython("auto").rt is rt and rt.flags == [0] and rt.last == 0  # and the error cleared
    with pytest.raises(_cuda.CudaError) as e:
        _cuda.CudaPython("spin")
    assert str(e.value) == ("cudaSetDeviceFlags(spin) returned unrecognized error code: the primary context is "
                            "already active with other flags (set options.sync_wait the same for every model)")
    assert rt.flags == [0, 1]


def test_ultralytics_engine_header_is_split():
    from trt_ray_bench.engines._trt_build import split_ultralytics_header

    meta = json.dumps({"task": "detect", "imgsz": [640, 640]}).encode()
    data = len(meta).to_bytes(4, "little", signed=True) + meta + b"ftrt-engine"
    assert split_ultralytics_header(data) == ({"task": "detect", "imgsz": [640, 640]}, b"ftrt-engine")
    assert split_ultralytics_header(b"ftrt-bare-engine-bytes") == (None, b"ftrt-bare-engine-bytes")


if __name__ == "__main__":  # rewrite data/README.md's version table
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        table = version_table([exercise(v, Path(d) / v) for v in VERSIONS])
    text = README.read_text()
    head, rest = text.split(_BEGIN, 1)
    README.write_text(f"{head}{_BEGIN}\n{table}\n{_END}{rest.split(_END, 1)[1]}")
    print(table)


def test_tensorrt_runner_makes_no_event_in_a_timed_span_and_recycles_them(tmp_path, monkeypatch):
    """Issue 14 (a): the real TensorRT runner over the real pycuda facade (a stand-in
    driver that stamps every cudaEventCreate). A duration_s run of thousands of
    inferences, far past any reserve: no event is created between t0 and t2 of any
    inference, the run holds a fixed ring of events (memory flat), every inference has
    its GPU time, and poke() is a memset on the runner's stream."""
    pytest.importorskip("onnx")
    import time as _time

    from trt_ray_bench.timing import EVENT_RING, LoopPlan, run_loop

    drv = _FakePyCudaDriver()
    made: List[int] = []
    memsets: List[int] = []

    class StampedEvent(drv.Event):
        def __init__(self):
            made.append(_time.perf_counter_ns())
            super().__init__()

    drv.Event = StampedEvent
    drv.memset_d8_async = lambda dst, value, n, stream: memsets.append(n)
    runner, _ = _runner_over_fake_pycuda(drv, tmp_path, monkeypatch)
    runner.prepare([np.zeros((1, 3, 32, 32), np.float32)])
    s = run_loop(runner, LoopPlan(iterations=None, duration_s=0.6, warmup=5, prewarm="poke"))
    n = len(s)
    assert n > 2 * EVENT_RING, f"only {n} inferences: the test needs more than the ring"
    spans = sorted(zip(s.t_start_ns, s.t_end_ns))
    inside = [t for t in made if any(a <= t <= b for a, b in spans)]
    assert not inside, f"{len(inside)} events created inside timed spans"
    assert len(made) == EVENT_RING * 4  # transfers on: 4 events a slot, made once
    assert len(s.gpu_ms) == n and set(s.gpu_ms) == {0.25}
    assert set(s.stages) == {"h2d_ms", "compute_ms", "d2h_ms"} and all(len(v) == n for v in s.stages.values())
    assert memsets == [4] * n  # one 4-byte poke before every inference
    s2 = run_loop(runner, LoopPlan(iterations=3 * EVENT_RING, warmup=0))  # a second loop: the same ring
    assert len(s2.gpu_ms) == 3 * EVENT_RING and len(made) == EVENT_RING * 4
    runner.close()


def test_tensorrt_runner_with_sync_none_is_never_waited_for_inside_the_stretch(tmp_path, monkeypatch):
    """``sync: none`` at gap 0, the real TensorRT runner over the real pycuda facade (a
    stand-in driver that stamps every wait: event synchronize / elapsed time, stream and
    context synchronize): nothing waits between the first and the last measured
    inference; the context is synchronised once after the warm-up and once after the
    phase. The ring (its cap lowered to 1024 here) holds 1024 of the 1100 measured
    inferences; the rest record no events and have NaN GPU and stage times."""
    pytest.importorskip("onnx")
    import time as _time

    from trt_ray_bench.timing import LoopPlan, _events, run_loop

    monkeypatch.setattr(_events, "EVENT_RING_MAX", 1024)
    drv = _FakePyCudaDriver()
    waits: List[int] = []
    drains: List[int] = []
    records: List[int] = []

    class StampedEvent(drv.Event):
        def record(self, stream):
            records.append(_time.perf_counter_ns())
            super().record(stream)

        def synchronize(self):
            waits.append(_time.perf_counter_ns())
            super().synchronize()

        def time_till(self, other):
            waits.append(_time.perf_counter_ns())
            return super().time_till(other)

    class StampedStream(drv.Stream):
        def synchronize(self):
            waits.append(_time.perf_counter_ns())
            super().synchronize()

    drv.Event, drv.Stream = StampedEvent, StampedStream
    drv.Context.synchronize = staticmethod(lambda: drains.append(_time.perf_counter_ns()))
    runner, _ = _runner_over_fake_pycuda(drv, tmp_path, monkeypatch)
    runner.prepare([np.zeros((1, 3, 32, 32), np.float32)])
    n_records = len(records)
    s = run_loop(runner, LoopPlan(iterations=1100, warmup=5, sync="none"))
    w = 5
    lo, hi = s.t_start_ns[w], s.t_end_ns[-1]
    assert waits and not [t for t in waits if lo <= t <= hi]
    assert len(drains) == 2 and drains[0] < lo and hi < drains[1] <= s.t_sync_end_ns
    g = np.asarray(s.gpu_ms)
    assert len(g) == w + 1100 and (g[:w + 1024] == 0.25).all() and np.isnan(g[w + 1024:]).all()
    assert s.gpu_capacity == 1024 and s.gpu_missing == 76
    assert set(s.stages) == {"h2d_ms", "compute_ms", "d2h_ms"}
    assert all(np.isnan(np.asarray(v)[w + 1024:]).all() and len(v) == len(g) for v in s.stages.values())
    assert len(records) - n_records == 4 * (w + 1024)  # transfers on: 4 events an inference with a slot
    runner.close()


@pytest.mark.parametrize("version", ["8.5", "10.13"])
def test_an_int8_calibrator_engine_is_cached_from_its_second_run(tmp_path, version):
    """The first build calibrates and writes the scales to ``calib_cache``; every later run
    finds that file, so the engine is stored under the key that names it. Keyed by the file's
    absence instead, the second run built the engine again (minutes a build on TensorRT 8.5)."""
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine

    onnx = tiny_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "m.calib"
    opts = BuildOptions(precision="int8", typing="weak", tactics="none", calib_images=str(calib_folder(tmp_path / "c")),
                        calib_cache=str(cache))
    with standin(version) as trt:
        builds = object.__getattribute__(trt, "_s_sim").builds

        def build():
            return build_engine(onnx, opts, "Stand-in Orin", out=tmp_path / "engines", where="models[0]", hw=(32, 32),
                                cc=(8, 7))

        first = build()
        assert cache.is_file() and not first.cached and len(builds) == 1 and builds[0]["calibrated"]
        for _ in range(2):
            again = build()
            assert again.cached and again.path == first.path and len(builds) == 1
        cache.write_bytes(b"TRT-8502-MinMaxCalibration\nother: 3f000000")  # another calibration: another engine
        other = build()
        assert not other.cached and other.path != first.path and len(builds) == 2
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == sorted(
        [Path(first.path).name, Path(first.path).with_suffix(".json").name,
         Path(other.path).name, Path(other.path).with_suffix(".json").name])  # no temporary file left


@pytest.mark.parametrize("version", ["8.5", "10.13"])
def test_the_calibrator_is_min_max_unless_entropy_is_asked(tmp_path, version):
    """``options.calibrator``: TensorRT's min-max calibrator by default (Ultralytics'
    exporter's), its entropy calibrator (trtexec's) on request; another engine each (the
    key names it), the key of an uncalibrated engine as it was. A calibration cache holding
    the other algorithm's scales (its first line names it, as TensorRT writes it: trtexec's
    ``TRT-8601-EntropyCalibration2``) is refused in one line before the build: TensorRT
    would calibrate again and overwrite the file. A name TensorRT has no calibrator for is
    refused in one line."""
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine, check_build_options
    from trt_ray_bench.errors import UserError

    onnx = tiny_onnx(tmp_path / "m.onnx")
    base = dict(precision="int8", typing="weak", tactics="none", calib_images=str(calib_folder(tmp_path / "c")),
                calib_cache=str(tmp_path / "minmax.calib"))
    with standin(version) as trt:
        builds = _sim(trt).builds

        def build(**o):
            return build_engine(onnx, BuildOptions(**{**base, **o}), GPU, out=tmp_path / "engines", where="models[0]",
                                hw=(32, 32), cc=(8, 7))

        minmax = build()
        assert builds[-1]["calibrator"] == "IInt8MinMaxCalibrator" and minmax.options["calibrator"] == "minmax"
        assert (tmp_path / "minmax.calib").read_bytes().split(b"\n")[0].endswith(b"-MinMaxCalibration")
        with pytest.raises(UserError) as e:
            build(calibrator="entropy")
        assert str(e.value) == (f"models[0].options.calib_cache: {tmp_path / 'minmax.calib'} holds the minmax "
                                "calibrator's scales, and options.calibrator is entropy: give calibrator: minmax to "
                                "use them, or another calib_cache") and len(builds) == 1
        entropy = build(calibrator="entropy", calib_cache=str(tmp_path / "entropy.calib"))
        assert builds[-1]["calibrator"] == "IInt8EntropyCalibrator2" and entropy.path != minmax.path
        assert build(calibrator="entropy", calib_cache=str(tmp_path / "entropy.calib")).cached and len(builds) == 2
    trtexec = tmp_path / "trtexec.calib"
    trtexec.write_bytes(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\n")
    with pytest.raises(UserError, match=r"holds the entropy calibrator's scales, and options.calibrator is minmax: "
                                        r"give calibrator: entropy"):
        check_build_options(BuildOptions(**{**base, "calib_cache": str(trtexec)}), "models[0]")
    check_build_options(BuildOptions(**{**base, "calib_cache": str(trtexec), "calibrator": "entropy"}), "models[0]")
    trtexec.write_bytes(b"TRT-8601-LegacyCalibration\nimages: 3c010a14\n")
    with pytest.raises(UserError, match=r"holds the IInt8LegacyCalibrator calibrator's scales, and options.calibrator "
                                        r"is minmax: trt_ray_bench builds with none of that kind \(minmax or entropy\): "
                                        r"give another calib_cache$"):
        check_build_options(BuildOptions(**{**base, "calib_cache": str(trtexec)}), "models[0]")
    assert "calibrator" not in BuildOptions(precision="fp16").key()
    assert "calibrator" not in BuildOptions(precision="int8", typing="weak", onnx_precision="int8").key()
    for bad in ("kl", ["minmax"]):
        with pytest.raises(UserError) as e:
            check_build_options(BuildOptions(**{**base, "calibrator": bad}), "models[0]")
        assert str(e.value) == f"models[0].options.calibrator: {bad!r}, expected minmax or entropy"


#: the detection head of a yolov8n export (``/model.22/``): its Sigmoid layers (the SiLUs'
#: and the class scores') and its output convolutions (box and class branches of each
#: scale) and DFL, as the parser names them after the ONNX nodes
_HEAD_FP32 = {f"/model.22/cv{b}.{s}/cv{b}.{s}.{i}/act/Sigmoid" for b in (2, 3) for s in range(3) for i in (0, 1)} | {
    "/model.22/Sigmoid"}
#: the head's decoding, from the output convolutions to the output (not its shape arithmetic,
#: ``/model.22/Mul``, nor its constants)
_HEAD_DECODE = {f"/model.22/{n}" for n in (
    "Reshape", "Reshape_1", "Reshape_2", "Reshape_3", "Reshape_4", "Reshape_5", "Concat", "Concat_1", "dfl/Reshape",
    "dfl/Transpose", "dfl/Softmax", "dfl/Reshape_1", "Slice", "Slice_1", "Sub", "Add_1", "Add_2", "Sub_1", "Div_1",
    "Concat_2", "Mul_2", "Concat_3")}
_HEAD_FP16 = {f"/model.22/cv{b}.{s}/cv{b}.{s}.2/Conv" for b in (2, 3) for s in range(3)} | {"/model.22/dfl/conv/Conv"}


@pytest.mark.parametrize("version", [v for v in VERSIONS if int(v.split(".")[0]) < 11])
def test_int8_by_the_calibrator_keeps_the_detection_head_out_of_int8(tmp_path, det_onnx, cls_onnx, version):
    """On a real yolov8n detect export parsed layer by layer: INT8 by the calibrator keeps
    the head's Sigmoid layers (the class scores) in FP32 and its output convolutions and DFL
    in FP16 (Ultralytics' rule), and its decoding up to the output in FP32, each layer's output
    type too, under OBEY_PRECISION_CONSTRAINTS (the stand-in builder refuses constraints
    without it); the engine's record lists them, and its key is not the key of an engine
    built before the rule. The layers are those ``_int8_head.head_rule`` names on the ONNX
    (``tests/engines/test_int8_head.py`` measures them on ONNX Runtime's INT8). An FP16 build
    and INT8 from a Q/DQ ONNX constrain nothing. A classifier's head (``/model.9/``) keeps
    its SiLU's Sigmoid, its Flatten and its Softmax (the output)."""
    from trt_ray_bench.engines._trt_build import BuildOptions

    calib = str(calib_folder(tmp_path / "c"))
    with standin(version) as trt:
        builds = _sim(trt).builds
        e = _build(det_onnx, tmp_path / "e", precision="int8", typing="weak", calib_images=calib,
                   calib_cache=str(tmp_path / "det.calib"))
        want = {**{n: "FLOAT" for n in _HEAD_FP32 | _HEAD_DECODE}, **{n: "HALF" for n in _HEAD_FP16}}
        assert builds[-1]["calibrated"] and builds[-1]["constraints"] == want
        assert "OBEY_PRECISION_CONSTRAINTS" in builds[-1]["flags"]
        assert sorted(e.int8_kept_out) == sorted(f"{n}: {'fp32' if d == 'FLOAT' else 'fp16'}" for n, d in want.items())
        assert e.options["int8_head"] == ("ultralytics head: sigmoid fp32, output convolutions and dfl fp16; "
                                          "its decoding and the layers writing the outputs fp32")
        _build(det_onnx, tmp_path / "e", precision="fp16", typing="weak")
        _build(det_onnx, tmp_path / "e", precision="int8", typing="weak", onnx_precision="int8")  # Q/DQ: no calibrator
        assert [b["constraints"] for b in builds[-2:]] == [{}, {}] and not builds[-1]["calibrated"]
        assert all("OBEY_PRECISION_CONSTRAINTS" not in b["flags"] for b in builds[-2:])
        _build(cls_onnx, tmp_path / "e", precision="int8", typing="weak", calib_images=calib,
               calib_cache=str(tmp_path / "cls.calib"))
        assert builds[-1]["constraints"] == {"/model.9/conv/act/Sigmoid": "FLOAT", "/model.9/Flatten": "FLOAT",
                                             "/model.9/Softmax": "FLOAT"}
    from types import SimpleNamespace

    from trt_ray_bench.cluster.node_run import engine_line

    line = engine_line(SimpleNamespace(name="det", engine=dataclasses.asdict(e), engine_path=e.path))
    assert ", 42 head layer(s) kept out of INT8 (35 in FP32, 7 in FP16)" in line, line
    # the key of a calibrated engine names the rule; the keys of the others are as they were
    assert "int8_head" not in BuildOptions(precision="fp16").key()
    assert "int8_head" not in BuildOptions(precision="int8", typing="weak", onnx_precision="int8").key()


def test_a_network_without_module_names_is_left_as_it_is(tmp_path):
    """An ONNX whose layers are not named ``/model.N/...`` (not Ultralytics'): no head is
    known, so nothing is constrained, and the builder flag to obey is not set."""
    with standin("8.5.2.2") as trt:
        e = _build(tiny_onnx(tmp_path / "m.onnx", conv_name="conv"), tmp_path / "e", precision="int8", typing="weak",
                   calib_images=str(calib_folder(tmp_path / "c")), calib_cache=str(tmp_path / "m.calib"))
        assert _sim(trt).builds[-1]["constraints"] == {} and e.int8_kept_out == []
        assert "OBEY_PRECISION_CONSTRAINTS" not in _sim(trt).builds[-1]["flags"]


# -------------------------------------------------------------------- the timing cache (options.timing_cache)
def _sim(trt) -> Sim:
    return object.__getattribute__(trt, "_s_sim")


def _build(src: Path, out: Path, **options):
    """``build_engine`` as a run's model calls it, for the stand-in GPU."""
    from trt_ray_bench.engines._trt_build import BuildOptions, build_engine

    return build_engine(src, BuildOptions(**{"tactics": "none", **options}), GPU, out=out, where="models[0]",
                        hw=(32, 32), cc=(8, 7))


@pytest.mark.parametrize("version", VERSIONS)
def test_timing_cache_is_made_by_the_first_build_and_read_by_the_next(tmp_path, monkeypatch, version):
    """A study's FP32 then FP16 build of one model, through ``prepare`` (the FP16 ONNX is
    converted first on 11.x): the first build makes the file (``~`` expanded), the second
    reads it and adds its own timings; each engine's record says so."""
    pytest.importorskip("onnx")
    pytest.importorskip("trt_ray_bench.models._convert")
    from trt_ray_bench.engines import tensorrt as backend

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    with standin(version) as trt:
        builds = _sim(trt).builds
        first = backend.prepare(resolved(src, "fp32", tactics="none", timing_cache="~/timing.cache"), "models[0]")
        timed = timing_entries(file)
        second = backend.prepare(resolved(src, "fp16", tactics="none", timing_cache="~/timing.cache"), "models[0]")
    a, b = first.engine["timing_cache"], second.engine["timing_cache"]
    assert a == {"path": str(file), "existed": False, "bytes_before": 0, "bytes_after": len(timing_cache_bytes(
        version, GPU, timed))} and timed and builds[0]["timings_measured"] == len(timed)
    assert b["existed"] and b["bytes_before"] == a["bytes_after"] and b["bytes_after"] >= b["bytes_before"]
    assert b["bytes_after"] == file.stat().st_size and timing_entries(file) > timed  # both builds' timings
    assert json.loads(Path(second.engine_path).with_suffix(".json").read_text())["timing_cache"] == b
    assert "timing_cache" not in first.engine["options"]
    from types import SimpleNamespace

    from trt_ray_bench.cluster.node_run import engine_line

    line = engine_line(SimpleNamespace(name="m", engine=second.engine, engine_path=second.engine_path))
    assert line.endswith(f"typing, timing cache timing.cache (read {b['bytes_before']} bytes, wrote "
                         f"{b['bytes_after']}))"), line


@pytest.mark.parametrize("version", VERSIONS)
def test_timing_cache_is_not_part_of_the_engine_cache_key(tmp_path, version):
    """The same engine is wanted with or without a timing cache: an engine built without one
    is found in the cache by a build that names one (and used as is: the file is not made),
    and the other way round."""
    pytest.importorskip("onnx")
    from trt_ray_bench.engines._trt_build import BuildOptions

    assert BuildOptions(precision="fp16", timing_cache="t.cache").key() == BuildOptions(precision="fp16").key()
    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    with standin(version) as trt:
        builds = _sim(trt).builds
        plain = _build(src, tmp_path / "a")
        again = _build(src, tmp_path / "a", timing_cache=str(file))
        assert again.cached and again.path == plain.path and len(builds) == 1 and not file.exists()
        made = _build(src, tmp_path / "b", timing_cache=str(file))
        assert not made.cached and Path(made.path).name == Path(plain.path).name and file.is_file()
        assert _build(src, tmp_path / "b").cached and len(builds) == 2


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("other", ["another GPU", "another TensorRT", "not a timing cache"])
def test_a_timing_cache_this_tensorrt_refuses_is_one_line_before_building(tmp_path, version, other):
    """A file written on another GPU (``set_timing_cache`` returns False), by another
    TensorRT version or not a timing cache at all (none is created): refused in one line
    naming the option and the file, before the build; nothing built, the file untouched."""
    pytest.importorskip("onnx")
    from trt_ray_bench.errors import UserError

    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    file.write_bytes({"another GPU": timing_cache_bytes(version, "Jetson AGX Xavier", ["Conv:1x3x32x32:fp32"]),
                      "another TensorRT": timing_cache_bytes("7.1.3.0", GPU, ["Conv:1x3x32x32:fp32"]),
                      "not a timing cache": b"\x00" * 64}[other])
    before = file.read_bytes()
    with standin(version) as trt:
        with pytest.raises(UserError) as e:
            _build(src, tmp_path / "engines", timing_cache=str(file))
        assert _sim(trt).builds == []
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"models[0].options.timing_cache: {file} was written by another GPU "
                                              f"or TensorRT version, or is no timing cache (TensorRT {version} on {GPU}"
                                              " refuses it: timing cache: "), msg
    assert msg.endswith("): delete it or name another file"), msg
    assert file.read_bytes() == before and not (tmp_path / "engines").exists()
    assert not file.with_name("timing.cache.lock").exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_failed_build_leaves_the_timing_cache_as_it_was(tmp_path, version):
    """TensorRT timed the layers (its cache in memory grew), then the build failed: the file
    keeps what the last successful build wrote."""
    pytest.importorskip("onnx")
    from trt_ray_bench.errors import UserError

    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    with standin(version) as trt:
        _build(src, tmp_path / "engines", timing_cache=str(file))
        before = file.read_bytes()
        _sim(trt).fail_build = "out of device memory"
        with pytest.raises(UserError, match="TensorRT could not build an engine: out of device memory"):
            _build(tiny_onnx(tmp_path / "m48.onnx", hw=(48, 48)), tmp_path / "engines", timing_cache=str(file),
                   max_batch=2)
    assert file.read_bytes() == before


@pytest.mark.parametrize("version", VERSIONS)
def test_a_timing_cache_that_cannot_be_written_keeps_the_engine(tmp_path, monkeypatch, version):
    """The disk refuses the timing cache's write after the build: one line naming the option
    and the file, and the engine just built is kept (the next run finds it, nothing rebuilt)."""
    import errno

    pytest.importorskip("onnx")
    from trt_ray_bench.engines import _trt_timing_cache
    from trt_ray_bench.errors import UserError

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    with standin(version) as trt:
        with monkeypatch.context() as m:
            m.setattr(_trt_timing_cache, "write_atomic", full)
            with pytest.raises(UserError) as e:
                _build(src, tmp_path / "engines", timing_cache=str(file))
        assert str(e.value) == f"models[0].options.timing_cache: {file} cannot be written (No space left on device)"
        again = _build(src, tmp_path / "engines", timing_cache=str(file))
        assert again.cached and len(_sim(trt).builds) == 1 and not file.exists()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_bad_timing_cache_path_is_one_line_before_building(tmp_path, version):
    """Not a path, a folder, a file in a folder that does not exist: one line naming the
    option, on the driver (``check``) and on the node (``prepare``) before any build."""
    pytest.importorskip("onnx")
    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    src = tiny_onnx(tmp_path / "m.onnx")
    (tmp_path / "cache.d").mkdir()
    cases = [(str(tmp_path / "missing" / "t.cache"), f"{tmp_path / 'missing' / 't.cache'}: no such folder "
              f"{tmp_path / 'missing'}, expected a file path"),
             (str(tmp_path / "cache.d"), f"{tmp_path / 'cache.d'} is a folder, expected a file path"),
             (5, "5, expected a file path"), ("", "'', expected a file path"),
             (["t.cache"], "['t.cache'], expected a file path")]
    with standin(version) as trt:
        for value, says in cases:
            model = resolved(src, "fp16", tactics="none", timing_cache=value)
            for step in (backend.check, backend.prepare):
                with pytest.raises(UserError) as e:
                    step(model, "models[1]")
                assert str(e.value).startswith("models[1].options.timing_cache: " + says), str(e.value)
                assert "\n" not in str(e.value)
        assert _sim(trt).builds == []
    backend.check(resolved(src, "fp16", timing_cache=str(tmp_path / "new.cache")), "models[1]")  # made by the build


def test_a_timing_cache_folder_that_cannot_be_written_is_refused(tmp_path):
    import os

    from trt_ray_bench.engines import tensorrt as backend
    from trt_ray_bench.errors import UserError

    if os.geteuid() == 0:
        pytest.skip("root writes any folder")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match=r"^models\[0\]\.options\.timing_cache: .*: the folder .* cannot be "
                                            r"written"):
            backend.check(resolved(tmp_path / "m.onnx", "fp16", timing_cache=str(folder / "t.cache")), "models[0]")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("version", VERSIONS)
def test_two_builds_at_once_keep_both_builds_timings(tmp_path, version):
    """Two builds (threads, as sweep points on one node are processes) with one timing cache
    file, both reading it before either writes: the second to write merges what the first
    wrote (under the file's lock), so the file holds both builds' timings."""
    pytest.importorskip("onnx")
    file = tmp_path / "timing.cache"
    sources = {hw: tiny_onnx(tmp_path / f"m{hw}.onnx", hw=(hw, hw)) for hw in (32, 48)}
    barrier = threading.Barrier(2, timeout=30)
    infos, errors = {}, []

    def build(hw):
        try:
            infos[hw] = _build(sources[hw], tmp_path / f"engines{hw}", timing_cache=str(file))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            barrier.abort()

    with standin(version) as trt:
        _sim(trt).during_build = barrier.wait  # both have read the file (not there yet) before either writes
        threads = [threading.Thread(target=build, args=(hw,)) for hw in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    shapes = {e.split(":")[1] for e in timing_entries(file)}
    assert shapes == {"1x3x32x32", "1x3x48x48"}, timing_entries(file)
    records = sorted((i.timing_cache for i in infos.values()), key=lambda r: r["bytes_after"])
    assert [r["existed"] for r in records] == [False, False] and records[-1]["bytes_after"] == file.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir() if "timing" in p.name) == ["timing.cache", "timing.cache.lock"]


def test_trb_engine_build_takes_a_timing_cache(tmp_path, monkeypatch, capsys):
    """``trb engine build --timing-cache FILE``: the build's line says what it read and wrote;
    a bad path is one line naming the flag, exit 2."""
    pytest.importorskip("onnx")
    from trt_ray_bench.cli import main

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))
    src, file = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "timing.cache"
    with standin("8.5.2.2"):
        for precision, says in (("fp32", "new"), ("fp16", "read ")):
            assert main(["engine", "build", str(src), "--precision", precision, "--tactics", "none",
                         "--timing-cache", str(file)]) == 0
            out = capsys.readouterr().out
            assert f"weak typing; timing cache timing.cache ({says}" in out and out.rstrip().endswith(
                f"wrote {file.stat().st_size}))"), out
        assert main(["engine", "build", str(src), "--timing-cache", str(tmp_path / "no" / "t.cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"trb: error: --timing-cache: {tmp_path / 'no' / 't.cache'}: no such folder") and \
        "\n" not in err, err


def test_trb_engine_build_takes_a_calibrator(tmp_path, monkeypatch, capsys):
    """``trb engine build --calibrator entropy``: the calibrator the build hands TensorRT is the
    one asked for (min-max without the flag); an unknown name is argparse's one line, exit 2."""
    pytest.importorskip("onnx")
    from trt_ray_bench.cli import main

    monkeypatch.setenv("TRB_CACHE_DIR", str(tmp_path / "cache"))
    src, images = tiny_onnx(tmp_path / "m.onnx"), str(calib_folder(tmp_path / "c"))
    with standin("8.5.2.2") as trt:
        for flag, want in (([], "IInt8MinMaxCalibrator"), (["--calibrator", "entropy"], "IInt8EntropyCalibrator2")):
            assert main(["engine", "build", str(src), "--precision", "int8", "--tactics", "none", "--typing", "weak",
                         "--calib-images", images, "--calib-cache", str(tmp_path / f"{want}.calib"), *flag]) == 0
            assert _sim(trt).builds[-1]["calibrator"] == want
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["engine", "build", str(src), "--calibrator", "kl"])
    assert e.value.code == 2 and "--calibrator: invalid choice: 'kl'" in capsys.readouterr().err
