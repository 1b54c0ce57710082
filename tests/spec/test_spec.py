import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import apply_overrides, load_spec, spec_from_dict, spec_to_yaml

BASE = {"name": "exp", "models": [{"arch": "yolov8n", "task": "cls"}, {"path": "m.onnx", "name": "mine"}]}


def test_defaults_aliases_and_names():
    s = spec_from_dict(BASE)
    cls, mine = s.models
    assert (cls.arch, cls.task, cls.name) == ("yolov8n", "classify", "yolov8n-cls")
    assert mine.name == "mine" and mine.backend == "onnxruntime" and mine.batch == 1
    assert s.timing.iterations == 100 and s.timing.duration_s is None
    assert s.phases == ("alone", "together")
    assert spec_from_dict({**BASE, "schedule": "together"}).phases == ("together",)


def test_arch_with_task_suffix():
    s = spec_from_dict({"name": "e", "models": [{"arch": "yolov8n-seg"}]})
    assert (s.models[0].arch, s.models[0].task, s.models[0].name) == ("yolov8n", "segment", "yolov8n-seg")
    with pytest.raises(UserError, match=r"models\[0\].*segment model but task is 'detect'"):
        spec_from_dict({"name": "e", "models": [{"arch": "yolov8n-seg", "task": "detect"}]})


def test_overrides_set_nested_list_and_wildcard():
    d = apply_overrides(BASE, ["timing.iterations=50", "models.1.batch=4", "models.*.backend=onnxruntime",
                               "input.kind=images", "timing.gap_s=0.1"])
    assert d["timing"] == {"iterations": 50, "gap_s": 0.1}
    assert d["models"][1]["batch"] == 4
    assert all(m["backend"] == "onnxruntime" for m in d["models"])
    assert "timing" not in BASE  # the original is untouched
    with pytest.raises(UserError, match="KEY=VALUE"):
        apply_overrides(BASE, ["timing.iterations"])
    with pytest.raises(UserError, match="not an index"):
        apply_overrides(BASE, ["models.7.batch=2"])


def test_load_spec_file_and_yaml_roundtrip(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("name: e\nmodels:\n  - {arch: yolov8n, task: detect, imgsz: 320}\ntiming: {duration_s: 2}\n")
    s = load_spec(p, ["timing.warmup=0"])
    assert s.timing.duration_s == 2 and s.timing.iterations is None and s.timing.warmup == 0
    again = tmp_path / "again.yaml"
    again.write_text(spec_to_yaml(s))
    assert load_spec(again) == s


@pytest.mark.parametrize(
    "patch, where",
    [
        ({"timing": {"iterations": 10, "duration_s": 1}}, "timing"),
        ({"timing": {"sync": "cuda"}}, "timing.sync"),
        ({"input": {"kind": "images"}}, "input"),
        ({"schedule": "parallel"}, "schedule"),
        ({"repeats": 0}, "repeats"),
        ({"name": "a/b"}, "name"),
        ({"models": []}, "models"),
    ],
)
def test_errors_name_the_field(patch, where):
    with pytest.raises(UserError) as e:
        spec_from_dict({**BASE, **patch}, "x.yaml")
    assert str(e.value).startswith(f"x.yaml: {where}")
    assert "\n" not in str(e.value)
