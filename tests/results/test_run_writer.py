"""``results.RunWriter``: a run written into a hidden folder as it goes and renamed when
complete; removed when the run stops on an exception; left hidden by a process that was
killed, and removed by the next run into the same folder (never one still being
written); and ``interrupt.deferred``, which keeps a phase's writing from being cut."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trt_ray_bench import interrupt, results
from trt_ray_bench.results import RunWriter
from trt_ray_bench.results.write import WRITING_FILE, sample_tables

KEYS = {"run_id": "r1", "model": "m", "phase": "alone", "repeat": 0, "mode": "inference", "variant": None}


def _piece(n: int, model: str = "m"):
    ts = np.arange(n, dtype=np.int64) * 1000
    return ({**KEYS, "model": model}, n, {"iteration": range(n), "warmup": np.zeros(n, bool),
                                           "in_window": np.ones(n, bool), "t_start_ns": ts, "t_end_ns": ts + 500,
                                           "host_ms": lambda lo, hi: np.full(hi - lo, 0.0005),
                                           "gpu_ms": np.where(np.arange(n) % 2 == 0, 0.25, np.nan)})


def _hidden(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_samples_per_phase_then_the_rest_then_one_rename(tmp_path):
    run = tmp_path / "exp" / "r1"
    w = RunWriter(run)
    assert not run.exists() and _hidden(run.parent) == [w.tmp.name]
    assert w.write_samples([_piece(10), _piece(5, "k")]) == 15  # one phase: one row group
    assert w.write_samples([_piece(7)]) == 7
    assert not run.exists()  # still hidden while the run goes on
    runs = pd.DataFrame({"run_id": ["r1"], "model": ["m"], "status": ["ok"]})
    assert w.finish({"runs": runs}, "name: e\n") == run
    assert _hidden(run.parent) == [] and sorted(p.name for p in run.iterdir()) == [
        "format.json", "runs.parquet", "samples.parquet", "spec.yaml"]
    f = pq.ParquetFile(run / "samples.parquet")
    assert f.metadata.num_row_groups == 2 and f.metadata.num_rows == 22
    assert pq.read_table(run / "samples.parquet").column("gpu_ms").null_count == 5 + 2 + 3  # NaN: null, as to_table
    s = results.load(run).samples
    assert s.groupby("model").size().to_dict() == {"k": 5, "m": 17} and s.variant.isna().all()


def test_a_long_phase_is_several_row_groups():
    tables = list(sample_tables([_piece(5), _piece(7)], rows=4))
    assert [t.num_rows for t in tables] == [4, 4, 4]  # across the pieces, none above the bound


def test_an_exception_removes_the_hidden_folder(tmp_path):
    run = tmp_path / "exp" / "r1"
    with pytest.raises(RuntimeError):
        with RunWriter(run) as w:
            w.write_samples([_piece(10)])
            raise RuntimeError("the run failed")
    assert not run.exists() and _hidden(run.parent) == []


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _unlocked(path: Path) -> bool:
    """Whether nobody holds ``path``'s flock (a killed process's thread group shows Z as
    soon as its first thread has gone, and holds its files until the last one has)."""
    with open(path) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
    return True


@pytest.mark.parametrize("reaped", [True, False])
def test_a_killed_run_s_folder_is_removed_by_the_next_not_a_live_one(tmp_path, reaped):
    """``reaped`` False: the killed writer stays a zombie (as where its parent died too, in a
    container whose first process reaps nothing): it has exited all the same."""
    exp = tmp_path / "exp"
    code = textwrap.dedent(f"""
        import os, sys, time
        from trt_ray_bench.results import RunWriter
        w = RunWriter(__import__("pathlib").Path({str(exp / "killed")!r}))
        print(w.tmp, flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    left = Path(p.stdout.readline().strip())
    live = RunWriter(exp / "live")  # a run of this process, still being written
    assert left.is_dir() and RunWriter(exp / "other").removed == []  # its writer still holds it
    os.kill(p.pid, signal.SIGKILL)
    if reaped:
        p.wait()
    else:  # a zombie whose threads have all exited: its lock is gone, its /proc entry is not
        t_end = time.time() + 30
        while not (_state(p.pid) == "Z" and _unlocked(left / WRITING_FILE)) and time.time() < t_end:
            time.sleep(0.05)
    assert left.is_dir() and (left / WRITING_FILE).is_file()  # what SIGKILL leaves: hidden
    assert not any(exp.glob("*/runs.parquet"))  # nothing visible
    nxt = RunWriter(exp / "next")
    assert nxt.removed == [left] and not left.exists()
    p.wait()
    assert live.tmp.is_dir() and nxt.tmp.is_dir()
    # (".other.": unfinished, of this very process, which is alive: never removed either)
    live.finish({"runs": pd.DataFrame({"run_id": ["live"]})}, "x")
    nxt.abort()
    assert _hidden(exp) == [n for n in _hidden(exp) if n.startswith(".other.")]


def test_signals_wait_for_a_deferred_step():
    order = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            order.append("finished")  # not cut short: the step completes
    assert order == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupt.deferred():  # nothing received: nothing raised
        order.append("again")
    assert order == ["finished", "again"]


def test_a_sweep_point_s_samples_made_in_memory_and_written_by_the_driver(tmp_path):
    from trt_ray_bench.results.write import SamplesBuffer

    buf = SamplesBuffer()
    assert buf.getvalue() is None  # nothing kept (timing.samples: none): an empty table is written
    buf = SamplesBuffer()
    buf.write_samples([_piece(10)])
    buf.write_samples([_piece(4, "k")])
    data = buf.getvalue()
    run = results.write_run(tmp_path / "exp" / "p1", {"runs": pd.DataFrame({"run_id": ["r1"]})}, "x", data)
    f = pq.ParquetFile(run / "samples.parquet")
    assert f.metadata.num_row_groups == 2 and f.metadata.num_rows == 14
    assert results.load(run).samples.groupby("model").size().to_dict() == {"k": 4, "m": 10}
    empty = results.write_run(tmp_path / "exp" / "p2", {"runs": pd.DataFrame({"run_id": ["r2"]})}, "x", None)
    assert pq.ParquetFile(empty / "samples.parquet").metadata.num_rows == 0
