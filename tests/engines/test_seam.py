"""The backend seam: each backend module answers for itself; a library that is missing is
told apart from one that is installed but broken; nothing imports a heavy library before
it is needed.

Missing libraries are made missing for real, in a fresh interpreter: a ``sitecustomize``
put first on ``PYTHONPATH`` installs an import hook that raises ``ModuleNotFoundError``
for them (what Python raises where they are not installed). A broken TensorRT is a real
``tensorrt`` package whose import fails the way JetPack's does in a venv that cannot load
``libnvinfer`` (the message is the loader's own wording)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from trt_ray_bench import engines
from trt_ray_bench.errors import BrokenExtra, MissingExtra, lazy_import
from trt_ray_bench.spec import BACKENDS, ModelSpec

HEAVY = ("tensorrt", "torch", "ultralytics", "pynvml", "cuda", "onnx", "pycuda", "torchvision")

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""

BROKEN_TRT = """
raise ImportError("libnvinfer.so.8: cannot open shared object file: No such file or directory")
"""


def _env(tmp_path: Path, blocked=(), broken_trt=False) -> dict:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=tuple(blocked)))
    if broken_trt:
        (site / "tensorrt").mkdir(exist_ok=True)
        (site / "tensorrt" / "__init__.py").write_text(BROKEN_TRT)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([str(site), root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _py(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_every_module_imports_and_the_cli_answers_without_the_heavy_libraries(tmp_path):
    env = _env(tmp_path, HEAVY)
    p = _py("""
        import importlib, pkgutil, sys
        import trt_ray_bench
        for heavy in ("tensorrt", "torch", "ultralytics", "pynvml", "cuda", "onnx"):
            try:
                importlib.import_module(heavy)
            except ModuleNotFoundError:
                pass
            else:
                raise SystemExit(f"the blocker let {heavy} through")
        names = [m.name for m in pkgutil.walk_packages(trt_ray_bench.__path__, "trt_ray_bench.")]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorrt", "torch", "ultralytics", "pynvml", "cuda", "onnx"})
        print("modules", len(names), "heavy", loaded)
        from trt_ray_bench.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0, e.code
        assert main(["doctor"]) == 0
    """, env, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    first = p.stdout.splitlines()[0]
    assert first.startswith("modules ") and int(first.split()[1]) >= 60 and first.endswith("heavy []"), first
    assert "usage: trb" in p.stdout and "run" in p.stdout
    # doctor tells which backends cannot run here, and that they are absent (not broken)
    assert "tensorrt: not installed (optional)" in p.stdout  # an extra: not a problem, doctor exits 0
    assert "torch: not installed (optional)" in p.stdout
    assert "onnxruntime: ok" in p.stdout
    assert "Traceback" not in p.stderr


def test_lazy_import_tells_missing_from_broken(tmp_path, monkeypatch):
    with pytest.raises(MissingExtra, match=r"no_such_module_x: not installed; .* pip install 'trt_ray_bench\[x\]'"):
        lazy_import("no_such_module_x", "x", "a test")
    site = tmp_path / "site"
    (site / "broken_dep_user").mkdir(parents=True)
    # installed, but it imports something that is absent: broken, not "not installed"
    (site / "broken_dep_user" / "__init__.py").write_text("import no_such_dependency_y\n")
    (site / "broken_lib").mkdir()
    (site / "broken_lib" / "__init__.py").write_text(BROKEN_TRT)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(BrokenExtra) as e:
        lazy_import("broken_dep_user", "x", "a test")
    assert "installed but cannot be imported" in str(e.value) and "no_such_dependency_y" in str(e.value)
    with pytest.raises(BrokenExtra) as e:
        lazy_import("broken_lib", "tensorrt", "the tensorrt backend")
    msg = str(e.value)
    assert "libnvinfer.so.8: cannot open shared object file" in msg and "--system-site-packages" in msg
    assert "not installed" not in msg and "\n" not in msg


def _spec(tmp_path: Path, model: dict, **extra) -> Path:
    data = {"name": "seam", "output": str(tmp_path / "results"), "timing": {"iterations": 2, "warmup": 0},
            "telemetry": {"nvml": False}, "models": [model], **extra}
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _trb(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def _one_line_refusal(p, *expect, results: Path):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trb: error: "), p.stderr
    for e in expect:
        assert e in lines[0], (e, lines[0])
    assert p.stdout == "" and not results.exists()


def test_a_broken_tensorrt_is_one_line_with_its_real_error_before_anything_runs(tmp_path, cls_onnx):
    spec = _spec(tmp_path, {"path": str(cls_onnx), "backend": "tensorrt", "precision": "fp16"})
    p = _trb(["run", spec], _env(tmp_path, broken_trt=True), tmp_path)
    _one_line_refusal(p, "models[0].backend: tensorrt: installed but cannot be imported",
                      "libnvinfer.so.8: cannot open shared object file", "--system-site-packages",
                      results=tmp_path / "results")


def test_a_missing_backend_library_is_one_line_before_anything_runs(tmp_path, cls_onnx):
    spec = _spec(tmp_path, {"arch": "yolov8n", "task": "classify", "imgsz": 64, "backend": "torch"})
    p = _trb(["run", spec], _env(tmp_path, ("torch",)), tmp_path)
    _one_line_refusal(p, "models[0].backend: torch: not installed", "pip install 'trt_ray_bench[torch]'",
                      results=tmp_path / "results")
    # a dry run still plans, and says what a run here would lack
    p = _trb(["run", spec, "--dry-run"], _env(tmp_path, ("torch",)), tmp_path)
    assert p.returncode == 0 and "not runnable on this machine: models[0].backend: torch: not installed" in p.stdout


def test_torch_int8_is_refused_at_validation(trb, tmp_path):
    spec = _spec(tmp_path, {"arch": "yolov8n", "task": "classify", "imgsz": 64, "backend": "torch",
                            "precision": "int8"})
    code, out, err = trb("run", spec, "--dry-run")
    assert code == 2 and err.startswith("trb: error: models[0].precision: the torch backend runs fp32 or fp16")
    assert len(err.splitlines()) == 1 and not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_a_run_in_which_every_model_failed_prints_the_failures(tmp_path, cls_onnx, det_onnx):
    """A barrier that times out fails every model of the together phase: the run is
    written (its failures recorded), the table is not attempted, the failures are printed."""
    data = {"path": str(cls_onnx), "name": "cls"}
    spec = _spec(tmp_path, data, schedule="together",
                 timing={"iterations": 2, "warmup": 0, "barrier_timeout_s": 0.005})
    spec_data = yaml.safe_load(spec.read_text())
    # det warms up for a second: cls, at the barrier long before, gives up after 5 ms
    spec_data["models"].append({"path": str(det_onnx), "name": "det", "timing": {"warmup_s": 1.0}})
    spec.write_text(yaml.safe_dump(spec_data))
    p = _trb(["run", spec], dict(os.environ), tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "KeyError" not in p.stderr
    assert "no model was measured" in p.stderr
    failed = [line for line in p.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and all("did not arrive within 0.005 s" in line for line in failed)
    assert list((tmp_path / "results" / "seam").glob("*/runs.parquet"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_module_answers_the_seam_questions(backend):
    mod = engines.backend_module(backend)
    assert mod.NAME == backend
    for fn in ("available", "needs_gpu", "has_build_step", "exports_dynamic", "check", "prepare", "made_files",
               "load"):
        assert callable(getattr(mod, fn)), f"{backend}.{fn}"
    assert isinstance(mod.USES_ONNX, bool)


def test_the_seam_answers_per_model(cls_onnx):
    from trt_ray_bench.engines import resolve_model

    ort32 = resolve_model(ModelSpec(path=str(cls_onnx)), "m")
    ort16 = resolve_model(ModelSpec(path=str(cls_onnx), precision="fp16"), "m")
    ort_gpu = resolve_model(ModelSpec(path=str(cls_onnx), options={"providers": ["CUDAExecutionProvider"]}), "m")
    trt = resolve_model(ModelSpec(path=str(cls_onnx), backend="tensorrt"), "m")
    torch_cpu = resolve_model(ModelSpec(arch="yolov8n", task="classify", backend="torch",
                                        options={"device": "cpu"}), "m", export=False)
    assert [engines.needs_gpu(m) for m in (ort32, ort_gpu, trt, torch_cpu)] == [False, True, True, False]
    assert [engines.has_build_step(m) for m in (ort32, ort16, trt, torch_cpu)] == [False, True, True, False]
    assert engines.uses_onnx("onnxruntime") and engines.uses_onnx("tensorrt") and not engines.uses_onnx("torch")
    assert engines.exports_dynamic(ModelSpec(arch="yolov8n", task="detect", backend="tensorrt",
                                             options={"max_batch": 8}))
    assert not engines.exports_dynamic(ModelSpec(arch="yolov8n", task="detect"))
    assert engines.made_files(ort32) == [] and engines.made_files(torch_cpu) == []


def test_no_backend_name_is_spelled_outside_the_engines(tmp_path):
    """Adding a backend changes its module and ``spec.BACKENDS``: nothing else branches on a
    backend's name (comments and strings in user messages aside)."""
    import ast

    root = Path(engines.__file__).resolve().parents[1]
    offenders = []
    for f in root.rglob("*.py"):
        rel = f.relative_to(root).as_posix()
        if rel.startswith("engines/") or rel in ("spec/_model.py",):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Compare):
                for c in [node.left, *node.comparators]:
                    if isinstance(c, ast.Constant) and c.value in BACKENDS:
                        offenders.append(f"{rel}:{node.lineno} compares with {c.value!r}")
    assert not offenders, offenders
