"""The results format: its version recorded in every tree written, both versions read
(the checked-in H100 trees are format 1, ``tests/data/format2`` is format 2), a newer one
refused in one line; unreadable Parquet files named (one run) or skipped with a warning
(several); and which run ``latest()`` / ``trb compare DIR`` shows after an interrupted one.
Every file here is real Parquet written by ``write_run`` or by a real run, then damaged
the way a disk or a copy damages it."""

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import results
from trt_ray_bench.errors import UserError
from trt_ray_bench.results.load import choose_latest, complete_runs, format_version, run_state
from trt_ray_bench.results.schema import FORMAT_KEY, FORMAT_VERSION

DATA = Path(__file__).resolve().parents[1] / "data"
V1 = DATA / "h100" / "gpu_alone_together"
V2 = DATA / "format2" / "format2_cpu"
V2_DONE, V2_STOPPED = "20261205-001019-3b90ef", "20261205-001114-625820"


def _runs(run_id, statuses):
    """Rows of one run: ``statuses`` is (model, phase, status) per row."""
    rows = []
    for model, phase, status in statuses:
        ok = status == "ok"
        rows.append({"run_id": run_id, "experiment": "e", "model": model, "phase": phase, "repeat": 0,
                     "status": status, "n": 10 if ok else 0, "mean_ms": 1.0 if ok else None,
                     "p50_ms": 1.0 if ok else None, "p99_ms": 2.0 if ok else None, "warnings": [],
                     "error": None if ok else ("Ctrl-C" if status == "interrupted" else "actor died")})
    return pd.DataFrame(rows)


def _samples(run_id):
    return pd.DataFrame({"run_id": run_id, "model": "m", "phase": "alone", "repeat": 0, "iteration": [0, 1, 2],
                         "warmup": [True, False, False], "in_window": [False, True, True],
                         "t_start_ns": [100, 200, 300], "t_end_ns": [150, 250, 350], "host_ms": [0.05] * 3})


def _telemetry(run_id):
    return pd.DataFrame({"run_id": run_id, "t_ns": [90, 190], "source": "host", "metric": "cpu_util_pct",
                         "value": [10.0, 50.0], "unit": "%"})


OK = [("m", "alone", "ok"), ("m", "together", "ok")]


def _write(root, run_id, statuses=OK):
    return results.write_run(Path(root) / "e" / run_id, {"runs": _runs(run_id, statuses), "samples": _samples(run_id),
                                                         "telemetry": _telemetry(run_id)}, "name: e\n")


class _Said(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def said():
    """What ``results`` logs (its logger: ``trt_ray_bench.results``), whatever the CLI's
    configuration of the package logger (which does not propagate to the root)."""
    h = _Said()
    logger = logging.getLogger("trt_ray_bench.results")
    logger.addHandler(h)
    yield h
    logger.removeHandler(h)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# ------------------------------------------------------------------ versions


def test_a_written_tree_records_its_format_in_every_file(tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    assert json.loads((d / "format.json").read_text())["format"] == FORMAT_VERSION == 2
    for name in ("runs", "samples", "telemetry"):
        assert pq.read_schema(d / f"{name}.parquet").metadata[FORMAT_KEY] == b"2", name
    assert format_version(d) == 2
    assert len(results.load(d).runs) == 2


def test_both_versions_load_and_compare(tmp_path):
    """Format 1 (no marker: the H100 trees) and format 2 (a real CPU run), alone and in one
    load (a tree holding both), with the columns each version has."""
    assert not any(V1.rglob("format.json")) and format_version(next(V1.iterdir())) == 1
    assert {format_version(d) for d in V2.iterdir()} == {2}
    old = results.load(V1)
    assert len(old.runs) == 20 and old.runs["n_eff"].notna().any()  # computed again from the samples
    assert "sync_wait_ms" not in pq.read_schema(next(V1.iterdir()) / "runs.parquet").names  # a newer column it lacks
    new = results.load(V2)
    assert new.run_ids == [V2_DONE, V2_STOPPED] and set(new.runs.backend) == {"onnxruntime"}
    assert "sync_wait_ms" in new.runs.columns and new.runs["n_eff"].notna().any()
    table = results.alone_vs_together(new.only(V2_DONE).runs, samples=new.only(V2_DONE).samples)
    assert list(table.model) == ["cls-a", "cls-b"] and (table["together_p50_ms"] > 0).all()
    both = tmp_path / "both"
    shutil.copytree(V1, both / "h100")
    shutil.copytree(V2, both / "cpu")
    mixed = results.load(both, samples=False, telemetry=False)
    assert len(mixed.run_ids) == 4 and set(mixed.runs.backend) == {"tensorrt", "onnxruntime"}
    assert mixed.runs.loc[mixed.runs.backend == "tensorrt", "sync_wait_ms"].isna().all()


def test_trb_compare_and_report_on_both_versions(trb, tmp_path):
    for tree, models in ((V1, "yolov8n"), (V2, "cls-a")):
        code, out, err = trb("compare", tree, "--all")
        assert code == 0 and models in out and "Traceback" not in err, err
    code, out, err = trb("report", V2, "--out", tmp_path / "v2.md")
    assert code == 0 and (tmp_path / "v2.md").is_file(), err
    text = (tmp_path / "v2.md").read_text()
    assert "cls-a" in text and V2_DONE in text and "interrupted" in text


def test_a_newer_format_is_refused_in_one_line(tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    (d / "format.json").write_text('{"format": 3}')
    msg = (f"{d / 'format.json'}: was written by a newer trt_ray_bench (format 3); this one reads formats 1-2: "
           f"pip install -U trt_ray_bench")
    with pytest.raises(UserError) as err:
        results.load(d)
    assert str(err.value) == msg
    _write(tmp_path, "20260102-000000-bbbbbb")  # another run beside it: still refused, never skipped
    with pytest.raises(UserError, match="format 3"):
        results.load(tmp_path)
    # a file of a newer format copied into a tree of this one: its own marker says so
    (d / "format.json").unlink()
    t = pq.read_table(d / "samples.parquet")
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, FORMAT_KEY: b"3"}), d / "samples.parquet")
    with pytest.raises(UserError) as err:
        results.load(d)
    assert str(err.value).startswith(f"{d / 'samples.parquet'}: was written by a newer trt_ray_bench (format 3)")
    assert results.load(d, samples=False).run_ids == ["20260101-000000-aaaaaa"]  # the file not read: not refused


def test_trb_compare_says_a_newer_tree_needs_an_upgrade(trb, tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    (d / "format.json").write_text('{"format": 7, "written_by": "trt_ray_bench 9.0"}')
    code, out, err = trb("compare", d)
    assert code == 2 and err.strip().splitlines() == [
        f"trb: error: {d / 'format.json'}: was written by a newer trt_ray_bench (format 7); this one reads "
        f"formats 1-2: pip install -U trt_ray_bench"]


# ------------------------------------------------------------------ unreadable files


@pytest.mark.parametrize("table", ["runs", "samples", "telemetry"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "not_parquet", "footer_cut"])
def test_one_unreadable_run_is_one_line_naming_the_file(tmp_path, table, damage):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    f = d / f"{table}.parquet"
    if damage == "truncated":
        _truncate(f, 0.5)
    elif damage == "empty":
        f.write_bytes(b"")
    elif damage == "not_parquet":
        f.write_text("run_id,model\nr,m\n")
    else:
        _truncate(f, 0.98)  # only the footer's last bytes gone
    with pytest.raises(UserError) as err:
        results.load(d)
    text = str(err.value)
    assert text.startswith(f"{f}: not a readable Parquet file (") and "\n" not in text, text
    assert text.count(str(f)) == 1  # Arrow's own copy of the path is left out


def test_a_damaged_run_among_several_is_skipped_with_a_warning(tmp_path, said):
    good = _write(tmp_path, "20260101-000000-aaaaaa")
    bad = _write(tmp_path, "20260102-000000-bbbbbb")
    later = _write(tmp_path, "20260103-000000-cccccc")
    _truncate(bad / "samples.parquet")
    r = results.load(tmp_path)
    assert r.run_ids == [good.name, later.name] and len(r.samples) == 6
    assert r.skipped == (f"{bad / 'samples.parquet'}: not a readable Parquet file ({r.skipped[0].split('(', 1)[1]}",)
    assert said.messages == [f"skipped run {bad.name}: {r.skipped[0]}"]
    # without the samples, that file is not read: the run loads
    assert len(results.load(tmp_path, samples=False).run_ids) == 3
    # every run damaged: one line naming the first and how many more
    for d in (good, later):
        (d / "runs.parquet").write_bytes(b"")
    with pytest.raises(UserError, match=r": no readable run: .*runs.parquet: not a readable Parquet file .*\(and 2 more\)$"):
        results.load(tmp_path)


def test_trb_compare_all_and_report_skip_a_damaged_run(trb, tmp_path):
    good = _write(tmp_path, "20260101-000000-aaaaaa")
    bad = _write(tmp_path, "20260102-000000-bbbbbb")
    (bad / "runs.parquet").write_bytes(b"PAR1")  # the magic bytes and nothing else
    code, out, err = trb("compare", tmp_path / "e", "--all")
    assert code == 0 and good.name in out and bad.name not in out
    assert f"skipped run {bad.name}: {bad / 'runs.parquet'}: not a readable Parquet file" in err
    code, out, err = trb("compare", bad)  # that run alone: refused, naming the file
    assert code == 2 and err.startswith(f"trb: error: {bad / 'runs.parquet'}: not a readable Parquet file")
    code, out, err = trb("report", tmp_path / "e", "--out", tmp_path / "r.md")
    assert code == 0 and f"skipped run {bad.name}" in err
    assert good.name in (tmp_path / "r.md").read_text()


def test_a_damaged_format_record_is_named(tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    for text, says in (("{\"format\": ", "not a readable format record (JSONDecodeError)"),
                       ('{"format": "two"}', "format version 'two' is not a number"),
                       ('{"version": 2}', 'expected {"format": N}')):
        (d / "format.json").write_text(text)
        with pytest.raises(UserError) as err:
            results.load(d)
        assert str(err.value) == f"{d / 'format.json'}: {says}"


def test_a_parquet_file_of_something_else_is_named(tmp_path):
    d = _write(tmp_path, "20260101-000000-aaaaaa")
    pq.write_table(pa.table({"x": [1, 2]}), d / "runs.parquet")
    with pytest.raises(UserError, match=r"runs.parquet: not a runs table \(no run_id column\)"):
        results.load(d)


# ------------------------------------------------------------------ the latest run


def test_latest_passes_over_an_interrupted_or_empty_run(tmp_path, said):
    a, b, c = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"
    _write(tmp_path, a)
    _write(tmp_path, b, [("m", "alone", "ok"), ("m", "together", "interrupted"), ("n", "alone", "interrupted")])
    _write(tmp_path, c, [("m", "alone", "failed"), ("m", "together", "failed")])
    r = results.load(tmp_path / "e", samples=False, telemetry=False)
    state = run_state(r.runs)
    assert state.loc[b, ["rows", "ok", "interrupted", "signal", "complete"]].tolist() == [3, 1, 2, "Ctrl-C", False]
    assert state.loc[c, ["failed", "complete"]].tolist() == [2, False] and complete_runs(r.runs) == [a]
    latest = r.latest()
    assert latest.run_ids == [a]
    assert said.messages == [
        f"showing run {a}, the newest complete one; the later run {b} was interrupted (Ctrl-C) with 1 of 3 rows "
        f"measured; the later run {c} measured nothing (2 of 2 rows failed): trb compare {tmp_path / 'e'} --run {c} "
        f"to see it"]
    assert choose_latest(r.only(a).runs) == (a, None)  # the newest is complete: nothing to say
    only_b = r.only(b)
    assert choose_latest(only_b.runs) == (b, None)  # one run, interrupted: it is what there is
    # no complete run at all: the newest, said so
    rid, note = choose_latest(r.runs[r.runs.run_id != a])
    assert rid == c and "no run under here is complete" in note


def test_trb_compare_shows_the_last_complete_run_of_a_real_interrupted_tree(trb):
    """The checked-in tree: a complete run, then one stopped by SIGTERM in its second phase."""
    code, out, err = trb("compare", V2)
    assert code == 0 and f"runs: {V2_DONE}" in out and V2_STOPPED not in out
    assert (f"showing run {V2_DONE}, the newest complete one; the later run {V2_STOPPED} was interrupted (SIGTERM) "
            f"with 1 of 8 rows measured: trb compare {V2} --run {V2_STOPPED} to see it") in err
    code, out, err = trb("compare", V2, "--run", V2_STOPPED)
    assert code == 0 and f"runs: {V2_STOPPED}" in out and "interrupted" in out and "showing run" not in err
