"""Bad input is refused up front: ``trb run`` prints ONE line ``trb: error: ...`` naming
the field or file and what was expected, exits 2, measures nothing (no Ray, no
``run_plan``) and writes nothing under the output folder.

Every case starts from a spec that is valid (``test_base_spec_is_valid_*`` prove it),
changes one thing, and runs ``trb run SPEC`` for real (not ``--dry-run``): only
``run_plan`` and ``ray.init`` are replaced by tripwires, so a case that slips through
preflight fails loudly instead of starting a benchmark.
"""

from __future__ import annotations

import copy
import io
import os
import re
from pathlib import Path

import pytest
import yaml

SPEC_NAME = "badinput"


class MeasurementStarted(BaseException):
    """Raised by the tripwires: preflight let a bad input through to measurement. A
    BaseException, so that trb's handler of unexpected errors (exit 3) lets it through."""


@pytest.fixture(autouse=True)
def _tripwires(monkeypatch):
    import ray

    import trt_ray_bench.cluster as cluster

    def run_plan(plan, *a, **k):
        raise MeasurementStarted(f"run_plan called: measurement would start ({plan.run_dir})")

    def ray_init(*a, **k):
        raise MeasurementStarted("ray.init called")

    monkeypatch.setattr(cluster, "run_plan", run_plan)
    monkeypatch.setattr(ray, "init", ray_init)


# ----------------------------------------------------------------------------- helpers


def base_spec(tmp_path: Path, onnx: Path) -> dict:
    """A valid spec: one real ONNX file (1x3x64x64), small timing, output under tmp_path."""
    return {
        "name": SPEC_NAME,
        "schedule": "both",
        "repeats": 1,
        "timing": {"warmup": 0, "iterations": 2},
        "input": {"kind": "dummy", "seed": 0},
        "models": [{"name": "cls", "path": str(onnx)}],
        "output": str(tmp_path / "results"),
    }


def write(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def files_under(root: Path) -> list:
    return sorted(str(p) for p in root.rglob("*")) if root.exists() else []


def assert_nothing_written(results: Path) -> None:
    """No results: the folder does not exist, or holds no file at any depth (hidden included)."""
    if results.exists():
        written = [p for p in results.rglob("*") if not p.is_dir()]
        assert not written, f"files written under {results}: {written}"


def assert_refused(code, out, err, *expect, results: Path):
    """Exit 2, one stderr line 'trb: error: ...' containing every ``expect``
    (str: substring; re.Pattern: search), nothing on stdout (no plan, no table), nothing written."""
    assert code == 2, f"exit {code}, stderr={err!r}, stdout={out!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"expected exactly one stderr line, got {err!r}"
    line = lines[0]
    assert line.startswith("trb: error: "), line
    for e in expect:
        if isinstance(e, re.Pattern):
            assert e.search(line), f"{e.pattern!r} not in {line!r}"
        else:
            assert e in line, f"{e!r} not in {line!r}"
    assert out == "", f"something was printed before the error: {out!r}"
    assert "Traceback" not in err
    assert_nothing_written(results)


def run_refused(trb, tmp_path, data, *expect, args=()):
    spec = write(tmp_path, data)
    before = files_under(tmp_path)
    code, out, err = trb("run", spec, *args)
    assert_refused(code, out, err, *expect, results=tmp_path / "results")
    assert files_under(tmp_path) == before, "files appeared next to the spec"
    return err


def set_path(data: dict, dotted: str, value) -> dict:
    """``set_path(d, "models.0.imgsz", 128)`` on a deep copy."""
    data = copy.deepcopy(data)
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def delete_path(data: dict, dotted: str) -> dict:
    data = copy.deepcopy(data)
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    del node[parts[-1]]
    return data


def jpeg_bytes(size=(32, 24)) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    im = Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))
    b = io.BytesIO()
    im.save(b, "JPEG")
    return b.getvalue()


# ------------------------------------------------------------------ controls (valid spec)


def test_base_spec_is_valid_and_reaches_measurement(trb, tmp_path, cls_onnx):
    """Control: the base spec passes preflight, so each refusal below is due to its one change;
    and the tripwire really stops a run before anything is measured or written."""
    spec = write(tmp_path, base_spec(tmp_path, cls_onnx))
    with pytest.raises(MeasurementStarted, match="run_plan called"):
        trb("run", spec)
    assert_nothing_written(tmp_path / "results")


def test_dry_run_prints_plan_and_writes_nothing(trb, tmp_path, cls_onnx):
    spec = write(tmp_path, base_spec(tmp_path, cls_onnx))
    code, out, err = trb("run", spec, "--dry-run")
    assert code == 0, err
    assert err == ""
    results = tmp_path / "results"
    model_lines = [l for l in out.splitlines() if l.strip().startswith("cls ")]
    assert model_lines and "classify" in model_lines[0] and "64x64" in model_lines[0], out
    assert re.search(r"^\s+repeat 0\s+alone\s+cls$", out, re.M), out
    assert re.search(r"^\s+repeat 0\s+together\s+cls$", out, re.M), out
    out_line = [l for l in out.splitlines() if l.startswith("output")]
    assert len(out_line) == 1 and str(results / SPEC_NAME) in out_line[0], out
    assert "nothing written" in out
    assert not results.exists(), files_under(results)


# ------------------------------------------------------------------------ spec fields

# (id, dotted path, value, expected pieces of the error line). Each changes one field of
# the valid base spec.
FIELD_CASES = [
    # unknown keys, at each level
    ("unknown-top-key", "iteratons", 5, [re.compile(r": iteratons: unknown key")]),
    ("unknown-timing-key", "timing.iteration", 5, ["timing.iteration: unknown key"]),
    ("unknown-model-key", "models.0.imgsize", 64, ["models[0].imgsize: unknown key"]),
    ("unknown-input-key", "input.folder", "x", ["input.folder: unknown key"]),
    # wrong types
    ("iterations-str", "timing.iterations", "many", ["timing.iterations", "valid integer", "'many'"]),
    ("iterations-float", "timing.iterations", 2.5, ["timing.iterations", "valid integer"]),
    ("models-str", "models", "yolov8n", [re.compile(r": models: .*valid list")]),
    ("timing-int", "timing", 5, [re.compile(r": timing: .*valid dictionary")]),
    ("imgsz-str", "models.0.imgsz", "big", ["models[0].imgsz", "'big'"]),
    ("batch-list", "models.0.batch", [1, 2], ["models[0].batch", "valid integer"]),
    ("options-list", "models.0.options", ["threads"], ["models[0].options", "valid dictionary"]),
    ("gap-str", "timing.gap_s", "fast", ["timing.gap_s", "valid number"]),
    # zero / negative counts
    ("iterations-zero", "timing.iterations", 0, ["timing.iterations", "greater than 0", "(got 0)"]),
    ("iterations-negative", "timing.iterations", -5, ["timing.iterations", "greater than 0", "(got -5)"]),
    ("duration-zero", "timing.duration_s", 0, ["timing.duration_s", "greater than 0"]),
    ("warmup-negative", "timing.warmup", -1, ["timing.warmup", "greater than or equal to 0"]),
    ("batch-zero", "models.0.batch", 0, ["models[0].batch", "greater than or equal to 1"]),
    ("repeats-zero", "repeats", 0, [re.compile(r": repeats: .*greater than or equal to 1")]),
    ("imgsz-tiny", "models.0.imgsz", 4, ["models[0].imgsz", "at least 8 pixels"]),
    ("input-limit-zero", "input.limit", 0, ["input.limit", "greater than 0"]),
    ("idle-negative", "telemetry.idle_s", -1, ["telemetry.idle_s", "greater than or equal to 0", "(got -1)"]),
    ("cooldown-temp-negative", "timing.cooldown", {"temp_c": -5}, ["timing.cooldown.temp_c", "greater than 0",
                                                                  "(got -5)"]),
    ("cooldown-timeout-zero", "timing.cooldown", {"temp_c": 50, "timeout_s": 0},
     ["timing.cooldown.timeout_s", "greater than 0"]),
    ("cooldown-no-temp", "timing.cooldown", {"timeout_s": 60}, ["timing.cooldown.temp_c", "required"]),
    ("cooldown-unknown-key", "timing.cooldown", {"temp": 50}, ["timing.cooldown.temp: unknown key"]),
    # unknown names / choices
    ("backend-unknown", "models.0.backend", "tensorrtx",
     ["models[0].backend", "unknown backend 'tensorrtx'", "expected one of onnxruntime, tensorrt, torch"]),
    ("schedule-unknown", "schedule", "parallel", [re.compile(r": schedule: .*'alone', 'together' or 'both'")]),
    ("sync-unknown", "timing.sync", "gpu", ["timing.sync", "'device', 'stream' or 'none'"]),
    ("input-kind-unknown", "input.kind", "video", ["input.kind", "'dummy' or 'images'"]),
    ("name-with-slash", "name", "a/b", [re.compile(r": name: .*letters, digits")]),
    ("model-name-bad", "models.0.name", "my model", ["models[0]", "name 'my model'", "letters, digits"]),
    # it names the results folder: too long a name had failed after measuring ("File name too long")
    ("name-too-long", "name", "n" * 300, [re.compile(r": name: .*use at most 100 letters, digits")]),
    # not a number a spec means: it had failed mid-measurement (OverflowError) with a half-written run
    ("gap-inf", "timing.gap_s", float("inf"), ["timing.gap_s", "finite number"]),
    ("path-wrong-suffix", "models.0.path", "model.txt", ["models[0]", "expected a file ending in .onnx"]),
    ("images-without-path", "input.kind", "images", [re.compile(r": input: kind 'images' needs 'path'")]),
    ("models-empty", "models", [], [re.compile(r": models: .*at least 1 item")]),
]


@pytest.mark.parametrize("dotted,value,expect", [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES])
def test_bad_field(trb, tmp_path, cls_onnx, dotted, value, expect):
    data = set_path(base_spec(tmp_path, cls_onnx), dotted, value)
    run_refused(trb, tmp_path, data, str(tmp_path / "spec.yaml"), *expect)


@pytest.mark.parametrize("dotted,field", [
    pytest.param("timing.iterations", "timing.iterations", id="iterations-bool"),
    pytest.param("models.0.batch", "models[0].batch", id="batch-bool"),
])
def test_bool_is_not_a_count(trb, tmp_path, cls_onnx, dotted, field):
    data = set_path(base_spec(tmp_path, cls_onnx), dotted, True)
    run_refused(trb, tmp_path, data, field, "integer")


def test_unknown_task(trb, tmp_path, cls_onnx):
    data = base_spec(tmp_path, cls_onnx)
    data["models"] = [{"arch": "yolov8n", "task": "segmentation"}]
    run_refused(trb, tmp_path, data, "models[0].task", "unknown task 'segmentation'",
                "expected one of classify, detect, pose, segment, obb")


def test_arch_without_task(trb, tmp_path, cls_onnx):
    data = base_spec(tmp_path, cls_onnx)
    data["models"] = [{"arch": "yolov8n"}]
    run_refused(trb, tmp_path, data, "models[0]", "arch 'yolov8n' needs a task")


def test_iterations_and_duration(trb, tmp_path, cls_onnx):
    data = set_path(base_spec(tmp_path, cls_onnx), "timing.duration_s", 1.0)
    run_refused(trb, tmp_path, data, re.compile(r": timing: give iterations or duration_s, not both"))


def test_missing_required_name(trb, tmp_path, cls_onnx):
    data = delete_path(base_spec(tmp_path, cls_onnx), "name")
    run_refused(trb, tmp_path, data, re.compile(r": name: Field required"))


@pytest.mark.parametrize("model", [
    pytest.param({"path": "PATH", "arch": "yolov8n", "task": "classify"}, id="path-and-arch"),
    pytest.param({"task": "classify"}, id="neither-path-nor-arch"),
])
def test_model_source_exactly_one(trb, tmp_path, cls_onnx, model):
    data = base_spec(tmp_path, cls_onnx)
    data["models"] = [{k: (str(cls_onnx) if v == "PATH" else v) for k, v in model.items()}]
    run_refused(trb, tmp_path, data, "models[0]", "exactly one of 'path'", "and 'arch'")


@pytest.mark.parametrize("second", [
    pytest.param({"name": "cls"}, id="explicit-same-name"),
    pytest.param({}, id="default-name-from-same-file"),
])
def test_duplicate_model_names(trb, tmp_path, cls_onnx, second):
    data = base_spec(tmp_path, cls_onnx)
    data["models"] = [{"path": str(cls_onnx), **second}, {"path": str(cls_onnx), **second}]
    name = second.get("name", cls_onnx.stem)
    run_refused(trb, tmp_path, data, f"models[1].name '{name}' is used twice", "unique name")


# ------------------------------------------------------------------------ the spec file


def test_spec_file_missing(trb, tmp_path):
    missing = tmp_path / "nope.yaml"
    code, out, err = trb("run", missing)
    assert_refused(code, out, err, f"{missing}: no such file", results=tmp_path / "results")
    assert not missing.exists()


def test_spec_is_a_directory(trb, tmp_path):
    d = tmp_path / "dir.yaml"
    d.mkdir()
    code, out, err = trb("run", d)
    assert_refused(code, out, err, f"{d}: cannot read the spec", results=tmp_path / "results")


@pytest.mark.parametrize("text,expect", [
    pytest.param("name: x\nmodels: [ {path: a.onnx\n", [re.compile(r": line \d+: ")], id="unclosed-flow"),
    pytest.param("name: x\n  models: - a\n", [re.compile(r": line 2: ")], id="bad-indent"),
    pytest.param("name: x\nmodels:\n\t- a\n", [re.compile(r": line 3: ")], id="tab"),
    pytest.param("", ["expected a mapping of fields"], id="empty-file"),
    pytest.param("- name: x\n", ["expected a mapping of fields"], id="top-level-list"),
    pytest.param("just words\n", ["expected a mapping of fields"], id="top-level-scalar"),
    # YAML keeps the last of two equal keys: the first block's iterations would be lost silently
    pytest.param("name: x\ntiming: {iterations: 500}\nmodels: [{path: a.onnx}]\ntiming: {warmup: 1}\n",
                 ["line 4: duplicate key 'timing' (YAML would keep only the last one)"], id="duplicate-key"),
    # a few hundred bytes of aliases that stand for ten million strings (it had taken 5 GB)
    pytest.param("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdef", "bcdefg"))
        + "name: *g\n", ["its aliases expand to more than 100000 values"], id="alias-bomb"),
])
def test_spec_not_valid_yaml(trb, tmp_path, text, expect):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    code, out, err = trb("run", spec)
    assert_refused(code, out, err, f"trb: error: {spec}: ", *expect, results=tmp_path / "results")


# ---------------------------------------------------------------------------- --set


@pytest.mark.parametrize("override,expect", [
    pytest.param("timing.iterations", ["--set: 'timing.iterations': expected KEY=VALUE"], id="no-equals"),
    pytest.param("=5", ["--set", "empty path component"], id="empty-key"),
    pytest.param("timing..iterations=5", ["--set", "empty path component"], id="empty-component"),
    pytest.param("models.3.batch=2", ["--set", "'3' is not an index of a list of 1"], id="index-out-of-range"),
    pytest.param("name.x=1", ["--set", "cannot set 'x' inside a str"], id="into-scalar"),
    pytest.param("timing.iterations=0", ["timing.iterations", "greater than 0"], id="zero-iterations"),
    pytest.param("timing.iteratons=5", ["timing.iteratons: unknown key"], id="unknown-key"),
    pytest.param("models.*.backend=trt", ["models[0].backend", "unknown backend 'trt'"], id="unknown-backend"),
])
def test_bad_set_override(trb, tmp_path, cls_onnx, override, expect):
    run_refused(trb, tmp_path, base_spec(tmp_path, cls_onnx), *expect, args=("--set", override))


# -------------------------------------------------------------------------- model files


@pytest.mark.parametrize("filename,content", [
    pytest.param("model.onnx", b"this is not an onnx graph\n", id="text"),
    pytest.param("model.onnx", b"", id="empty"),
    pytest.param("model.onnx", bytes(range(256)) * 8, id="binary-garbage"),
])
def test_not_onnx(trb, tmp_path, cls_onnx, filename, content):
    f = tmp_path / filename
    f.write_bytes(content)
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.path", str(f))
    run_refused(trb, tmp_path, data, "models[0].path", str(f), "is not a model ONNX Runtime can load")


@pytest.mark.parametrize("filename", ["missing.onnx", "missing.pt", "missing.yaml"])
def test_missing_model_file(trb, tmp_path, cls_onnx, filename):
    f = tmp_path / "nowhere" / filename
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.path", str(f))
    run_refused(trb, tmp_path, data, "models[0].path", f"{f}: no such file")


def test_a_folder_as_the_model_file(trb, tmp_path, cls_onnx):
    d = tmp_path / "adir.onnx"
    d.mkdir()
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.path", str(d))
    run_refused(trb, tmp_path, data, "models[0].path", f"{d}: a folder, not a model file")


def test_not_a_pt(trb, tmp_path, cls_onnx):
    """A .pt that is not a checkpoint: refused while exporting, before anything runs."""
    pytest.importorskip("ultralytics")  # the export is Ultralytics' (Python 3.8 CI has none)
    f = tmp_path / "weights.pt"
    f.write_text("not a torch checkpoint\n")
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.path", str(f))
    data["models"][0]["task"] = "classify"
    run_refused(trb, tmp_path, data, "models[0]", str(f), "Ultralytics could not build/export it")


@pytest.mark.parametrize("field,value,expect", [
    pytest.param("imgsz", 128, ["models[0].imgsz", "the model takes input 1x3x64x64", "at 128x128"], id="imgsz-128"),
    pytest.param("imgsz", [64, 96], ["models[0].imgsz", "the model takes input 1x3x64x64", "at 64x96"], id="imgsz-64x96"),
    pytest.param("batch", 4, ["models[0].batch", "the model takes input 1x3x64x64", "not batch 4"], id="batch-4"),
    pytest.param("task", "detect", ["models[0].task", "is a classify model", "not detect"], id="task-mismatch"),
])
def test_shape_the_model_does_not_take(trb, tmp_path, cls_onnx, field, value, expect):
    data = set_path(base_spec(tmp_path, cls_onnx), f"models.0.{field}", value)
    run_refused(trb, tmp_path, data, *expect)


# The options error names the model by name ("models.cls.options"), other model errors by
# index ("models[0].options"); either names the field.
OPTIONS = re.compile(r"models(\[0\]|\.cls)\.options")


@pytest.mark.parametrize("options,expect", [
    pytest.param({"thread": 2}, ["unknown onnxruntime option(s) ['thread']", "known: "], id="unknown-option"),
    pytest.param({"graph_optimization": "max"}, ["graph_optimization", "'max'", "expected one of"], id="bad-graph-opt"),
    pytest.param({"threads": 0}, ["threads", "expected a positive integer"], id="threads-zero"),
    pytest.param({"threads": "four"}, ["threads", "expected a positive integer"], id="threads-str"),
])
def test_bad_backend_options(trb, tmp_path, cls_onnx, options, expect):
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.options", options)
    run_refused(trb, tmp_path, data, OPTIONS, *expect)


@pytest.mark.parametrize("options", [{"timing_cache": "tc.bin"}, {"workspace_gb": 2, "opt_level": 3},
                                     {"calib_images": "calib"}, {"transfers": True, "calib_cache": "c.cache"}])
def test_build_options_with_an_engine_file(trb, tmp_path, cls_onnx, options):
    """An engine file is run as it was built: a build option beside it would be ignored
    (a timing cache or a workspace the engine never saw), so it is refused, in one line
    naming the first, on the driver (no TensorRT needed to say so: here, where none is
    installed, the dry run shows it; a real run on a TensorRT node refuses the same way)."""
    engine = tmp_path / "given.engine"
    engine.write_bytes(b"not read before the refusal")
    data = base_spec(tmp_path, cls_onnx)
    data["models"] = [{"name": "cls", "path": str(engine), "backend": "tensorrt", "options": options}]
    first = sorted(set(options) - {"transfers"})[0]
    err = run_refused(trb, tmp_path, data, f"models[0].options.{first}", "given with an engine file (given.engine)",
                      "build from the ONNX to use them", args=("--dry-run",))
    assert "transfers" not in err


def test_unavailable_provider(trb, tmp_path, cls_onnx):
    data = set_path(base_spec(tmp_path, cls_onnx), "models.0.options", {"providers": ["NoSuchExecutionProvider"]})
    run_refused(trb, tmp_path, data, OPTIONS, "providers", "NoSuchExecutionProvider", "not available")


# ------------------------------------------------------------------------------ images


def images_spec(tmp_path, cls_onnx, folder) -> dict:
    data = base_spec(tmp_path, cls_onnx)
    data["input"] = {"kind": "images", "path": str(folder)}
    return data


@pytest.mark.parametrize("make,expect", [
    pytest.param(lambda d: d.mkdir(), "no images", id="empty-folder"),
    pytest.param(lambda d: (d.mkdir(), (d / "notes.txt").write_text("x"), (d / "sub").mkdir()),
                 "no images", id="no-image-files"),
    pytest.param(lambda d: None, "not a folder of images", id="missing-folder"),
    pytest.param(lambda d: d.write_bytes(jpeg_bytes()), "not a folder of images", id="a-file"),
])
def test_no_images(trb, tmp_path, cls_onnx, make, expect):
    folder = tmp_path / "imgs"
    make(folder)
    run_refused(trb, tmp_path, images_spec(tmp_path, cls_onnx, folder), f"input.path: {folder}: {expect}")


def undecodable_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(jpeg_bytes())
    bad = folder / "b_bad.jpg"
    bad.write_text("not a jpeg at all\n")
    return folder, bad


def test_undecodable_image_in_process(trb, tmp_path, cls_onnx):
    pytest.importorskip("ultralytics")  # imported in this process, as the cls_onnx fixture's export does

    folder, bad = undecodable_folder(tmp_path)
    run_refused(trb, tmp_path, images_spec(tmp_path, cls_onnx, folder), f"{bad}: cannot decode the image")


def test_truncated_jpeg(trb, tmp_path, cls_onnx):
    folder = tmp_path / "imgs"
    folder.mkdir()
    data = jpeg_bytes((256, 192))  # big enough that half of it keeps the whole header
    bad = folder / "cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    from PIL import Image

    with Image.open(bad) as im:  # the header parses: only decoding the data finds the cut
        assert im.size == (256, 192)
    run_refused(trb, tmp_path, images_spec(tmp_path, cls_onnx, folder), f"{bad}: cannot decode the image")


# --------------------------------------------------------------------- output directory


def test_output_parent_is_a_file(trb, tmp_path, cls_onnx):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    data = set_path(base_spec(tmp_path, cls_onnx), "output", str(afile / "results"))
    run_refused(trb, tmp_path, data, "output: ", str(afile / "results"), f"{afile} is not a folder")
    assert afile.read_text() == "keep me\n"


def test_output_is_a_file(trb, tmp_path, cls_onnx):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me\n")
    data = set_path(base_spec(tmp_path, cls_onnx), "output", str(afile))
    run_refused(trb, tmp_path, data, "output: ", f"{afile} is not a folder")
    assert afile.read_text() == "keep me\n"


def test_output_flag_unwritable(trb, tmp_path, cls_onnx):
    """``--output`` overrides the spec and is checked just the same."""
    afile = tmp_path / "afile"
    afile.write_text("")
    run_refused(trb, tmp_path, base_spec(tmp_path, cls_onnx), "output: ", f"{afile} is not a folder",
                args=("--output", str(afile / "out")))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through chmod 0o500")
@pytest.mark.parametrize("existing", [False, True], ids=["results-missing", "results-exists"])
def test_output_dir_not_writable(trb, tmp_path, cls_onnx, existing):
    locked = tmp_path / "locked"
    locked.mkdir()
    if existing:
        (locked / "results" / SPEC_NAME).mkdir(parents=True)
    data = set_path(base_spec(tmp_path, cls_onnx), "output", str(locked / "results"))
    spec = write(tmp_path, data)
    target = locked / "results" / SPEC_NAME if existing else locked
    target.chmod(0o500)
    try:
        code, out, err = trb("run", spec)
    finally:
        target.chmod(0o700)
    assert_refused(code, out, err, "output: ", "not writable", results=locked / "results")


# ------------------------------------------------------- the real command, in a process


@pytest.mark.parametrize("case", ["undecodable-image", "not-onnx"])
def test_real_cli_process(tmp_path, cls_onnx, case):
    """``python -m trt_ray_bench.cli`` in a fresh process: the exit status the shell sees and
    the whole of fd 2 (C++ logging of ONNX Runtime included) is the one line."""
    import subprocess
    import sys

    data = base_spec(tmp_path, cls_onnx)
    if case == "undecodable-image":
        folder, bad = undecodable_folder(tmp_path)
        data["input"] = {"kind": "images", "path": str(folder)}
        expect = f"{bad}: cannot decode the image"
    else:
        bad = tmp_path / "model.onnx"
        bad.write_text("this is not an onnx graph\n")
        data["models"][0]["path"] = str(bad)
        expect = f"models[0].path: {bad} is not a model ONNX Runtime can load"
    spec = write(tmp_path, data)
    p = subprocess.run([sys.executable, "-m", "trt_ray_bench.cli", "run", str(spec)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert_refused(p.returncode, p.stdout, p.stderr, expect, results=tmp_path / "results")


@pytest.mark.parametrize("backend, args", [
    pytest.param("onnxruntime", (), id="onnxruntime"),
    pytest.param("tensorrt", ("--dry-run",), id="tensorrt-dry-run"),  # TensorRT may not be installed here: the
])                                                                       # same preflight, as a dry run meets it
@pytest.mark.parametrize("make", [
    pytest.param(lambda d: d.mkdir(), id="empty-folder"),
    pytest.param(lambda d: (d.mkdir(), (d / "notes.txt").write_text("x"), (d / "sub").mkdir()), id="no-image-files"),
])
def test_calib_images_without_images(trb, tmp_path, cls_onnx, backend, args, make):
    """Refused in preflight (before Ray starts and before the plan is printed), not by the
    conversion or the calibrator on the node; the line names the field and the folder."""
    folder = tmp_path / "calib"
    make(folder)
    data = base_spec(tmp_path, cls_onnx)
    data["models"][0].update(backend=backend, precision="int8", options={"calib_images": str(folder)})
    err = run_refused(trb, tmp_path, data, args=args)
    assert err == (f"trb: error: models[0].options.calib_images: {folder}: no images (.jpg, .jpeg, .png, .bmp, "
                   ".webp, .tif, .tiff) in it\n")
