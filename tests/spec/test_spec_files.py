"""Spec files as a user (or a stranger) writes them: the published JSON schema, the sweep
spec's pydantic errors in the experiment spec's one-line style, a file nested too deeply
for Python's recursion, and an ``arch`` that is a path."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import MAX_DEPTH, SweepSpec, json_schema, load_spec, load_sweep, spec_from_dict, sweep_from_dict

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "examples").glob("*/*.yaml"))


def _nested(n: int) -> str:
    return "[" * n + "]" * n


# ------------------------------------------------------------------ trb schema


def test_trb_schema_prints_the_schemas_and_they_check_real_files(trb):
    code, out, err = trb("schema")
    assert code == 0 and err == ""
    exp = json.loads(out)
    code, out, _ = trb("schema", "--sweep")
    sweep = json.loads(out)
    for schema in (exp, sweep):
        jsonschema.Draft202012Validator.check_schema(schema)
    assert exp["$schema"] == "https://json-schema.org/draft/2020-12/schema" and "models" in exp["required"]
    assert set(sweep["properties"]) == set(SweepSpec.model_fields)
    check = {False: jsonschema.Draft202012Validator(exp), True: jsonschema.Draft202012Validator(sweep)}
    assert len(EXPERIMENTS) >= 9
    for f in EXPERIMENTS:  # every shipped spec, experiment or sweep, is valid by the schema
        data = yaml.safe_load(f.read_text())
        kind = bool({"axes", "base", "base_file"} & set(data))  # a sweep: axes, or a base (a search)
        assert [e.message for e in check[kind].iter_errors(data)] == [], f
    # and what the models refuse, the schema marks: an unknown key, a wrong type, a bad value
    base = yaml.safe_load((ROOT / "examples" / "01_first_cpu_run" / "quickstart.yaml").read_text())
    for bad in ({**base, "iteratons": 5}, {**base, "timing": {"gap_s": "long"}}, {**base, "schedule": "parallel"},
                {**base, "repeats": 0}):
        assert list(check[False].iter_errors(bad)), bad
    for nodes, ok in (("all", True), (["orin1"], True), ({"board": "orin_nx"}, True), ({"board": ["a", "b"]}, True),
                      ({"name": "x"}, False), (5, False), ([], False)):
        assert check[True].is_valid({"base_file": "e.yaml", "nodes": nodes}) is ok, nodes
    assert json_schema() == exp and json_schema(sweep=True) == sweep


# ------------------------------------------------------------------ nesting


@pytest.mark.parametrize("levels", [500, 3000])
def test_a_spec_nested_too_deeply_is_one_line(tmp_path, trb, levels):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: x\nmodels: {_nested(levels)}\n")
    with pytest.raises(UserError) as err:
        load_spec(spec)
    assert str(err.value) == f"{spec}: nested too deeply (more than {MAX_DEPTH} levels)"
    code, out, err = trb("run", spec)
    assert code == 2 and err.strip().splitlines() == [f"trb: error: {spec}: nested too deeply (more than 50 levels)"]
    assert "Traceback" not in err and not (tmp_path / "results").exists()


def test_nesting_within_the_limit_reaches_validation(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: x\nmodels: {_nested(MAX_DEPTH - 1)}\n")  # the top mapping is one level
    with pytest.raises(UserError, match=r"spec.yaml: models\[0\]: Input should be a valid dictionary"):
        load_spec(spec)


def test_deep_nesting_in_a_sweep_its_base_file_and_a_set_value(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text(f"name: s\nbase: {{name: e, models: {_nested(600)}}}\naxes: {{}}\n")
    with pytest.raises(UserError, match=r"deep.yaml: nested too deeply \(more than 50 levels\)$"):
        load_sweep(deep)
    (tmp_path / "exp.yaml").write_text(f"name: e\nmodels: {_nested(600)}\n")
    (tmp_path / "sweep.yaml").write_text("name: s\nbase_file: exp.yaml\n")
    with pytest.raises(UserError) as err:
        load_sweep(tmp_path / "sweep.yaml")
    assert str(err.value) == (f"{tmp_path / 'sweep.yaml'}: base_file: {tmp_path / 'exp.yaml'}: nested too deeply "
                              f"(more than 50 levels)")
    (tmp_path / "ok.yaml").write_text("name: e\nmodels: [{arch: yolov8n, task: detect}]\n")
    with pytest.raises(UserError, match=r"--set models: nested too deeply"):
        load_spec(tmp_path / "ok.yaml", [f"models={_nested(2000)}"])
    assert load_spec(tmp_path / "ok.yaml", ["description=[not yaml"]).description == "[not yaml"  # text stays text


# ------------------------------------------------------------------ arch


@pytest.mark.parametrize("arch", ["../../tmp/evil", "models/yolov8n", "..\\evil", "yolo..v8n", " /abs", ".hidden"])
def test_an_arch_that_is_not_a_name_is_refused(arch):
    with pytest.raises(UserError) as err:
        spec_from_dict({"name": "x", "models": [{"arch": arch, "task": "classify"}]}, "spec.yaml")
    assert str(err.value) == (f"spec.yaml: models[0].arch: must be a name like yolov8n or yolo11s-seg (at most 100 "
                              f"letters, digits, '.', '_', '-'); a model file goes in 'path' (got {arch!r})")


def test_trb_run_refuses_a_path_as_arch_before_anything_is_made(tmp_path, trb):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: x\noutput: {tmp_path / 'results'}\nmodels: [{{arch: ../../tmp/evil, task: classify}}]\n")
    code, out, err = trb("run", spec)
    assert code == 2 and "models[0].arch: must be a name like yolov8n" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_names_still_allowed_and_a_default_name_must_be_one():
    s = spec_from_dict({"name": "x", "models": [{"arch": "yolo11s-seg"}, {"arch": "yolov8n.5", "task": "pose"},
                                                {"path": "a/b/my_model.v2.onnx"}]})
    assert [m.name for m in s.models] == ["yolo11s-seg", "yolov8n.5-pose", "my_model.v2"]
    with pytest.raises(UserError, match=r"models\[0\]: the model's default name 'my model' .* give 'name'"):
        spec_from_dict({"name": "x", "models": [{"path": "my model.onnx"}]}, "spec.yaml")
    assert spec_from_dict({"name": "x", "models": [{"path": "my model.onnx", "name": "mine"}]}).models[0].name == "mine"


# ------------------------------------------------------------------ the sweep spec's errors


BASE = {"name": "e", "models": [{"path": "m.onnx"}]}


@pytest.mark.parametrize("patch, says", [
    ({"repeats": 0}, "sweep.yaml: repeats: Input should be greater than or equal to 1 (got 0)"),
    ({"repeats": True}, "sweep.yaml: repeats: Input should be a valid integer (got True)"),
    ({"retries": -1}, "sweep.yaml: retries: Input should be greater than or equal to 0 (got -1)"),
    ({"nodes": 5}, "sweep.yaml: nodes: expected 'all', a list of node names or {board: KIND} (got 5)"),
    ({"nodes": "some"}, "sweep.yaml: nodes: expected 'all', a list of node names or {board: KIND} (got 'some')"),
    ({"nodes": {"board": "x", "gpu": 1}}, "sweep.yaml: nodes.gpu: unknown key (check the spelling; see the README "
                                          "for the fields)"),
    ({"nodes": {"board": ["ok", "!!"]}}, "sweep.yaml: nodes.board: expected a board kind or a list of them"),
    ({"exclude": [{}]}, "sweep.yaml: exclude[0]: expected a mapping of field -> value"),
    ({"include": "x"}, "sweep.yaml: include: Input should be a valid list (got 'x')"),
    ({"axes": {"clocks": "max"}}, "sweep.yaml: axes.clocks: expected a non-empty list of values (got 'max')"),
    ({"axes": [1]}, "sweep.yaml: axes: expected a mapping of field -> list of values"),
    ({"base": "exp.yaml"}, "sweep.yaml: base: expected an experiment spec (a mapping) (got 'exp.yaml')"),
    ({"base_file": "exp.yaml"}, "sweep.yaml: give exactly one of base (an experiment spec) or base_file (its path)"),
    ({"axis": {}}, "sweep.yaml: axis: unknown key (check the spelling; see the README for the fields)"),
    ({"base": {"models": []}}, "sweep.yaml: name: give the sweep a name (or the base spec one)"),
])
def test_sweep_errors_are_one_line_like_the_experiment_specs(patch, says):
    with pytest.raises(UserError) as err:
        sweep_from_dict({"base": BASE, **patch}, "sweep.yaml")
    assert str(err.value) == says


def test_a_sweep_validates_into_its_model(tmp_path):
    sw = sweep_from_dict({"base": BASE, "axes": {"timing.gap_s": [0, 0.1]}, "nodes": {"board": "Orin NX"},
                          "output": "out", "repeats": 3}, "s.yaml")
    assert isinstance(sw, SweepSpec) and sw.source == "s.yaml" and sw.name == "e" and sw.base["output"] == "out"
    assert sw.nodes == {"board": ["orin_nx"]} and sw.node_kind == "board:orin_nx" and sw.retries == 1
    with pytest.raises(Exception):
        sw.retries = 2  # frozen, as the experiment spec
    (tmp_path / "exp.yaml").write_text("- not a mapping\n")
    (tmp_path / "s.yaml").write_text("base_file: exp.yaml\n")
    with pytest.raises(UserError, match=r"s.yaml: base_file: .*exp.yaml: expected an experiment spec \(a mapping\)"):
        load_sweep(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("base_file: nope.yaml\n")
    with pytest.raises(UserError, match=r"s.yaml: base_file: .*nope.yaml: no such file$"):
        load_sweep(tmp_path / "s.yaml")
