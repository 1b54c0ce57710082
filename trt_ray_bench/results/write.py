"""Atomic writing of one run: everything goes to a hidden temporary folder that is
renamed into place when complete, so a crash never leaves a half-written run. A run's
samples go there phase by phase as they are measured (``RunWriter``); a batch of tables
at once through ``write_run``."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import UserError
from .schema import FORMAT_FILE, FORMAT_KEY, FORMAT_VERSION, SAMPLES, TABLES


def check_writable(root: Path, where: str = "output") -> None:
    """Refuse an output folder we cannot create or write, before anything is measured.
    Permissions do not tell (root may write anywhere but /proc): a probe folder of a
    unique name is made and removed in the deepest folder that exists. Nothing of the
    output's own path is created, so runs that check the same tree at once (a sweep's
    points) never see each other's probes."""
    root = Path(root)
    probe, top = root, None
    while not probe.exists():
        top = probe
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(where, f"{root}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(where, f"{root}: {probe} is not writable")
    try:
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".trb-probe-"))
    except OSError as exc:
        if top is not None:
            raise UserError(where, f"{root}: cannot create {top} ({exc.strerror or exc})") from None
        raise UserError(where, f"{root} is not writable ({exc.strerror or exc})") from None


def to_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """``frame`` in the table's schema: columns it lacks become nulls of the right type,
    columns the schema does not know are an error (a typo must not vanish silently). The
    schema's metadata records the format version (``schema.FORMAT_KEY``)."""
    schema = TABLES[name]
    extra = set(frame.columns) - set(schema.names)
    if extra:
        raise ValueError(f"{name}: columns not in the schema: {sorted(extra)}")
    arrays = [
        pa.array(frame[f.name], type=f.type, from_pandas=True) if f.name in frame.columns else pa.nulls(len(frame), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=_with_format(schema))


def write_run(run_dir: Path, tables: Dict[str, pd.DataFrame], spec_yaml: str,
              samples_parquet: Optional[bytes] = None) -> Path:
    """Write ``spec.yaml``, ``format.json`` (the format version, ``schema.FORMAT_VERSION``)
    and ``<table>.parquet`` files into ``run_dir`` atomically (a ``RunWriter`` given every
    table at once); ``samples_parquet``: the samples as a Parquet file made already
    (``SamplesBuffer``), instead of a ``samples`` table."""
    writer = RunWriter(run_dir)
    try:
        if samples_parquet is not None:
            writer.put_samples(samples_parquet)
        return writer.finish(tables, spec_yaml)
    except BaseException:
        writer.abort()
        raise


#: Rows of ``samples.parquet`` per row group, at most. A run writes each phase's samples as
#: that phase ends, in row groups of its own (one per phase up to this many inferences);
#: the driver holds one row group's Arrow columns at a time.
ROW_GROUP_ROWS = 1 << 18

#: In a run's hidden folder while it is written: a file the writing process holds locked
#: (``flock``) and that names it (``host pid``). A hidden folder whose lock nobody holds was
#: left by a process that has gone (SIGKILL, a crash, power loss): the next run writing
#: into the same experiment folder removes it (``remove_abandoned``).
WRITING_FILE = ".writing"

#: a column of the samples: one array of the piece's length, a ``range`` (the iteration
#: numbers), or a function of ``(lo, hi)`` giving that slice (computed one row group at a time)
Column = Union[np.ndarray, range, Callable[[int, int], np.ndarray]]
#: one model's samples of a phase: the columns that have one value (run_id, model, ...),
#: the number of rows, and the columns that vary
Piece = Tuple[Dict[str, object], int, Dict[str, Column]]


def _column(values: Column, lo: int, hi: int) -> np.ndarray:
    if isinstance(values, range):
        return np.arange(values.start + lo, values.start + hi, dtype=np.int64)
    if callable(values):
        return values(lo, hi)
    return values[lo:hi]


def sample_tables(pieces: Iterable[Piece], rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """One phase's samples (``pieces``, one per model) as Arrow tables of the samples
    schema of at most ``rows`` rows each (a table may span pieces): each is one row
    group. NaN in a float column is null, as ``to_table`` writes it."""
    schema = _with_format(SAMPLES)
    batches: List[pa.RecordBatch] = []
    held = 0
    nulls: Dict[tuple, pa.Array] = {}  # one null column per type and length: immutable, shared
    for consts, n, arrays in pieces:
        lo = 0
        while lo < n:
            hi = min(n, lo + rows - held)
            cols = []
            for f in schema:
                if f.name in arrays:
                    cols.append(pa.array(_column(arrays[f.name], lo, hi), type=f.type, from_pandas=True))
                elif consts.get(f.name) is not None:
                    cols.append(pa.repeat(pa.scalar(consts[f.name], type=f.type), hi - lo))
                else:
                    k = (str(f.type), hi - lo)
                    if k not in nulls:
                        nulls[k] = pa.nulls(hi - lo, f.type)
                    cols.append(nulls[k])
            batches.append(pa.RecordBatch.from_arrays(cols, schema=schema))
            del cols
            held += hi - lo
            lo = hi
            if held >= rows:
                yield pa.Table.from_batches(batches, schema=schema)
                batches, held = [], 0
    if batches:
        yield pa.Table.from_batches(batches, schema=schema)


def _with_format(schema: pa.Schema) -> pa.Schema:
    meta = dict(schema.metadata or {})
    meta[FORMAT_KEY] = str(FORMAT_VERSION).encode()
    return schema.with_metadata(meta)


def _lock(path: Path, create: bool):
    """The open, ``flock``-ed file at ``path``, or None where another process holds it."""
    f = open(path, "a+" if create else "r+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def remove_abandoned(folder: Path) -> List[Path]:
    """Remove the hidden folders of runs that were being written into ``folder`` by a
    process that has gone (their ``WRITING_FILE`` is not locked by anybody); never one of a
    run still being written (here or on another machine sharing the folder). Returns what
    was removed."""
    gone = []
    try:
        candidates = [d for d in Path(folder).iterdir() if d.name.startswith(".") and d.name.endswith(".tmp")]
    except OSError:
        return gone
    for d in candidates:
        mark = d / WRITING_FILE
        if not mark.is_file():
            continue
        try:
            who = mark.read_text().split()
        except OSError:
            continue
        if len(who) == 2 and who[0] == socket.gethostname() and who[1].isdigit() and _alive(int(who[1])):
            continue  # a process of this machine still writing (its lock may be one only the OS sees)
        f = None
        try:
            f = _lock(mark, create=False)
            if f is None:
                continue
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                gone.append(d)
        except OSError:
            continue
        finally:
            if f is not None:
                f.close()
    return gone


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs here: a zombie (killed, not yet reaped: in a container whose first
    process reaps nothing, for good) writes nothing more."""
    from ..control.journal import EXITED, process_state

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return process_state(pid) not in EXITED


class RunWriter:
    """One run written as it is measured, atomically: a hidden folder next to where the run
    will land (``.<run_id>.XXXX.tmp``), opened when the run starts (``lazy``: when its
    first samples or its end come, so that a run refused before measuring creates
    nothing); each phase's samples appended as Parquet row groups as the phase ends
    (``write_samples``); the other tables, ``spec.yaml`` and ``format.json`` at the end
    (``finish``), then one rename. ``abort`` removes the folder (an exception that stops
    the run). A process killed meanwhile leaves the hidden folder, which no reader lists,
    and the next run into the same experiment folder removes it (``removed``: what this
    one removed when it opened)."""

    def __init__(self, run_dir: Path, lazy: bool = False):
        self.run_dir = Path(run_dir)
        self.tmp: Optional[Path] = None
        self.removed: List[Path] = []
        self._mark = None
        self._samples: Optional[pq.ParquetWriter] = None
        #: what ``write_samples`` wrote so far: row groups and rows
        self.row_groups = 0
        self.n_samples = 0
        self.done = False
        self._put = False
        if not lazy:
            self.open()

    def open(self) -> Path:
        """Make the hidden folder (once), removing the abandoned ones beside it; returns it."""
        if self.tmp is not None:
            return self.tmp
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        self.removed = remove_abandoned(self.run_dir.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.run_dir.name}.", suffix=".tmp", dir=self.run_dir.parent))
        try:
            self._mark = _lock(tmp / WRITING_FILE, create=True)
            if self._mark is not None:
                self._mark.write(f"{socket.gethostname()} {os.getpid()}\n")
                self._mark.flush()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.tmp = tmp
        return tmp

    def write_samples(self, pieces: Iterable[Piece]) -> int:
        """Append one phase's samples (``pieces``: one per model) to ``samples.parquet``,
        in row groups of their own (``ROW_GROUP_ROWS`` at most); returns the rows written."""
        return _append(self, pieces, lambda schema: pq.ParquetWriter(self.open() / "samples.parquet", schema))

    def put_samples(self, data: bytes) -> None:
        """``samples.parquet`` as a whole file made elsewhere (``SamplesBuffer.getvalue``)."""
        if self._samples is not None or self._put:
            raise ValueError("samples: written already")
        (self.open() / "samples.parquet").write_bytes(data)
        self._put = True

    def finish(self, tables: Dict[str, pd.DataFrame], spec_yaml: str) -> Path:
        """Write ``tables`` (every table but the samples ``write_samples`` wrote; a table
        the run has none of is written empty), ``spec.yaml`` and ``format.json``, and rename
        the folder into place; returns the run's folder."""
        if (self._samples is not None or self._put) and "samples" in tables:
            raise ValueError("samples: written per phase already, and given again at the end")
        tmp = self.open()
        (tmp / "spec.yaml").write_text(spec_yaml)
        (tmp / FORMAT_FILE).write_text(json.dumps({"format": FORMAT_VERSION, "written_by": f"trt_ray_bench {__version__}"})
                                       + "\n")
        for name, frame in tables.items():
            pq.write_table(to_table(name, frame), tmp / f"{name}.parquet")
        if self._samples is not None:
            self._samples.close()
            self._samples = None
        elif "samples" not in tables and not self._put:
            pq.write_table(to_table("samples", pd.DataFrame()), tmp / "samples.parquet")
        os.chmod(tmp, 0o755)
        os.rename(tmp, self.run_dir)
        self.done = True
        self._release(self.run_dir / WRITING_FILE)
        return self.run_dir

    def abort(self) -> None:
        """Remove the hidden folder and all it holds (nothing of a finished run)."""
        if self.done or self.tmp is None:
            return
        if self._samples is not None:
            try:
                self._samples.close()
            except Exception:  # noqa: BLE001 - removed anyway
                pass
            self._samples = None
        self._release(None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _release(self, mark: Optional[Path]) -> None:
        if mark is not None:
            try:
                mark.unlink()
            except OSError:
                pass
        if self._mark is not None:
            self._mark.close()
            self._mark = None

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            self.abort()


def _append(owner, pieces: Iterable[Piece], make: Callable[[pa.Schema], pq.ParquetWriter]) -> int:
    """One phase's samples appended to ``owner._samples`` (made by ``make`` at the first)."""
    n = 0
    for table in sample_tables(pieces):
        if owner._samples is None:
            owner._samples = make(table.schema)
        owner._samples.write_table(table, row_group_size=ROW_GROUP_ROWS)
        owner.row_groups += 1
        n += table.num_rows
    owner.n_samples += n
    return n


class SamplesBuffer:
    """A run's ``samples.parquet`` made in memory phase by phase, where the run's folder is
    written by another process (a sweep point, whose tables go to the sweep's driver):
    ``write_samples`` as ``RunWriter``'s (the compressed file grows, not a table of every
    sample), ``getvalue`` the file's bytes, or None where nothing was written."""

    def __init__(self):
        self._sink = pa.BufferOutputStream()
        self._samples: Optional[pq.ParquetWriter] = None
        self.row_groups = 0
        self.n_samples = 0

    def write_samples(self, pieces: Iterable[Piece]) -> int:
        return _append(self, pieces, lambda schema: pq.ParquetWriter(self._sink, schema))

    def getvalue(self) -> Optional[bytes]:
        if self._samples is None:
            return None
        self._samples.close()
        self._samples = None
        return self._sink.getvalue().to_pybytes()
