"""The open-loop timing fields: what fits together, refused in one line naming the field
(before anything is measured), and the seed drawn and kept where none is given."""

import pytest

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import spec_from_dict


def _spec(timing=None, model_timing=None, variants=None):
    m = {"arch": "yolov8n", "task": "classify", "imgsz": 64}
    if model_timing is not None:
        m["timing"] = model_timing
    d = {"name": "t", "models": [m, {"arch": "yolov8n", "task": "detect", "imgsz": 96}], "timing": timing or {}}
    if variants:
        d["variants"] = variants
    return spec_from_dict(d, "spec.yaml")


@pytest.mark.parametrize("timing, model_timing, where, says", [
    ({"arrivals": "periodic", "rate_hz": 30, "gap_s": 0.05}, None, "timing.gap_s", "closed-loop"),
    ({"arrivals": "periodic", "rate_hz": 30}, {"gap_s": 0.01}, "models[0].timing.gap_s", "closed-loop"),
    ({"arrivals": "poisson"}, None, "timing.arrivals", "needs timing.rate_hz"),
    ({"rate_hz": 30}, None, "timing.rate_hz", "closed"),
    ({"arrivals": "periodic", "rate_hz": 0}, None, "timing.rate_hz", "greater than or equal to 0.001"),
    ({"arrivals": "periodic", "rate_hz": -5}, None, "timing.rate_hz", "greater than or equal to 0.001"),
    # no number a spec means: refused before anything runs (they had failed mid-measurement)
    ({"arrivals": "periodic", "rate_hz": float("inf")}, None, "timing.rate_hz", "finite number"),
    ({"gap_s": float("inf")}, None, "timing.gap_s", "finite number"),
    ({"gap_s": 1e12}, None, "timing.gap_s", "less than or equal to 3600"),
    ({"iterations": None, "duration_s": float("inf")}, None, "timing.duration_s", "finite number"),
    ({"warmup_s": float("inf")}, None, "timing.warmup_s", "finite number"),
    ({"cooldown": {"temp_c": 50, "timeout_s": float("inf")}}, None, "timing.cooldown.timeout_s", "finite number"),
    ({"arrivals": "poisson", "rate_hz": 30, "jitter_ms": 1}, None, "timing.jitter_ms", "only for arrivals periodic"),
    ({"jitter_ms": 1}, None, "timing.jitter_ms", "only for arrivals periodic"),
    ({"arrivals": "periodic", "rate_hz": 100, "jitter_ms": 5}, None, "timing.jitter_ms", "half the period"),
    ({"deadline_ms": 0}, None, "timing.deadline_ms", "greater than 0"),
    ({"arrivals": "periodic", "rate_hz": 30, "deadline_ms": -1}, None, "timing.deadline_ms", "greater than 0"),
    ({"backlog": "drop"}, None, "timing.backlog", "arrivals periodic or poisson"),
    ({"arrivals": "closed"}, {"rate_hz": 30}, "models[0].timing.rate_hz", "closed"),
])
def test_what_does_not_fit_is_one_line_naming_the_field(timing, model_timing, where, says):
    with pytest.raises(UserError) as e:
        _spec(timing, model_timing)
    text = str(e.value)
    assert "\n" not in text and text.startswith("spec.yaml: ")
    assert where in text and says in text, text


def test_a_variant_that_adds_a_gap_is_named():
    with pytest.raises(UserError, match=r"variants\[0\]\.timing\.gap_s"):
        _spec({"arrivals": "periodic", "rate_hz": 30}, variants=[{"name": "g", "timing": {"gap_s": 0.1}}])


def test_open_loop_fields_resolve_per_model():
    s = _spec({"arrivals": "periodic", "rate_hz": 30, "deadline_ms": 33},
              {"rate_hz": 60, "backlog": "drop", "jitter_ms": 2})
    cls, det = s.models
    a, b = s.timing_for(cls), s.timing_for(det)
    assert (a.rate_hz, a.backlog, a.jitter_ms, a.deadline_ms) == (60, "drop", 2, 33)
    assert (b.rate_hz, b.backlog, b.jitter_ms, b.deadline_ms) == (30, "queue", None, 33)
    # a model made closed does not inherit the experiment's rate
    assert _spec({"arrivals": "periodic", "rate_hz": 30}, {"arrivals": "closed"}).models[0].timing.arrivals == "closed"
    # a closed loop may have a deadline: its misses are of the service time
    assert _spec({"deadline_ms": 5}).timing.deadline_ms == 5


def test_a_seed_is_drawn_and_kept_where_an_open_loop_needs_one(tmp_path):
    from trt_ray_bench.cluster.plan import with_seed
    from trt_ray_bench.spec import spec_to_yaml

    s = _spec({"arrivals": "poisson", "rate_hz": 50})
    assert s.timing.seed is None
    drawn = with_seed(s)
    assert isinstance(drawn.timing.seed, int) and f"seed: {drawn.timing.seed}" in spec_to_yaml(drawn)
    given = _spec({"arrivals": "poisson", "rate_hz": 50, "seed": 7})
    assert with_seed(given).timing.seed == 7
    closed = _spec()
    assert with_seed(closed).timing.seed is None
