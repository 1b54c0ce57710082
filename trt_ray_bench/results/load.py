"""Loading a whole results tree into pandas in one call.

Every run folder records its format version (``schema.FORMAT_VERSION``; a tree without
the marker is version 1): a version this code reads (``FIRST_FORMAT`` up to its own) is
loaded, a newer one refused in one line. A file that is not readable Parquet (empty,
truncated, something else) is one line naming it where one run was asked for; among
several runs that run is skipped, with a warning (the ``trt_ray_bench.results`` logger,
which ``trb`` prints on stderr) and its folder in ``Results.skipped``.

``samples`` and ``telemetry`` are read when first asked for (``results.lazy``): a load reads
the runs (and checks that the other files are readable Parquet of a format it knows);
``Results.iter_samples`` and ``Results.samples_for`` read only the columns asked for, a
runs row at a time. Trees written before the statistics and diagnostics of today are
completed on load from each row's own samples, one row at a time (``Results.filled``).

``Results.latest()`` is the newest *complete* run (``complete_runs``): one that measured
something and was not interrupted. A newer run left by Ctrl-C (or SIGTERM, SIGHUP), or one
whose every row failed, is passed over and the warning says which, why, and how to see it.

Several trees load as one (``load([tree_a, tree_b])``): their runs side by side, each run
once however many of the trees hold it, ``latest()`` the newest complete run of each tree.
Rows of different trees pool only where they agree on every condition
(``compare.CONDITION_COLUMNS``: the software generation included), so two boards'
generations stay apart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ..progress import LOGGER
from .lazy import FrameRows, TableFiles, fill as fill_rows
from .schema import FIRST_FORMAT, FORMAT_FILE, FORMAT_KEY, FORMAT_VERSION, TABLES

#: where ``load`` and ``Results.latest`` say what they skipped (``trb`` prints it on stderr)
log: logging.Logger = LOGGER.getChild("results")


class _Lazy:
    """A table of ``Results`` that may still be on disk (a ``lazy.TableFiles``): read
    whole on first access, then kept; None reads as the table's empty frame."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the dataclass field's default
        value = obj.__dict__.get(self.name)
        if isinstance(value, TableFiles):
            value = value.read()
        elif value is None:
            value = TABLES[self.name].empty_table().to_pandas()
        else:
            return value
        obj.__dict__[self.name] = value
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True, eq=False, repr=False)
class Results:
    """``runs`` (one row per model, phase and repeat of each run), ``samples`` (one row
    per inference) and ``telemetry`` (long form), concatenated over every run found;
    ``skipped``: the run folders left out as unreadable (each with why); ``path``: the
    folder it was loaded from; ``aggregates``: per row and second, the count, median and
    slowest latency (``results.aggregates``; empty for runs written before it existed).

    ``samples`` and ``telemetry`` are read from their files on first access (whole, as
    DataFrames), then kept; ``iter_samples`` and ``samples_for`` read only the columns
    asked for, a runs row at a time, and keep nothing. ``dataclasses.replace`` reads
    those it is not given."""

    runs: pd.DataFrame
    samples: pd.DataFrame = _Lazy()  # type: ignore[assignment]
    telemetry: pd.DataFrame = _Lazy()  # type: ignore[assignment]
    skipped: Tuple[str, ...] = ()
    path: str = ""
    aggregates: pd.DataFrame = dataclasses.field(default_factory=lambda: TABLES["aggregates"].empty_table().to_pandas())
    #: the trees loaded (``load`` of several paths), each with the run ids found in it
    trees: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

    def __repr__(self) -> str:
        tables = ", ".join(f"{name}={self._raw(name)!r}" if isinstance(self._raw(name), TableFiles)
                           else f"{name}=<{len(getattr(self, name))} rows>" for name in ("samples", "telemetry"))
        return f"Results({len(self.runs)} runs rows, {tables}, skipped={len(self.skipped)}, path={self.path!r})"

    def _raw(self, name: str):
        """A lazy table as held: a DataFrame, its ``TableFiles`` (not read yet), or None."""
        return self.__dict__.get(name)

    @property
    def run_ids(self) -> List[str]:
        return sorted(self.runs["run_id"].unique()) if len(self.runs) else []

    def latest(self) -> "Results":
        """The newest complete run (run ids sort by time; ``complete_runs``), else the
        newest run; of several trees (``trees``), that of each tree. Where a newer run is
        passed over, a warning says which and why."""
        if not len(self.runs):
            return self
        if len(self.trees) < 2:
            rid, note = choose_latest(self.runs, self.path)
            if note:
                log.warning(note)
            return self.only(rid)
        chosen = []
        for tree, ids in self.trees:
            rows = self.runs[self.runs["run_id"].isin(ids)]
            if not len(rows):
                continue
            rid, note = choose_latest(rows, tree)
            if note:
                log.warning(note)
            chosen.append(rid)
        return self.only(*dict.fromkeys(chosen))

    def only(self, *run_ids: str) -> "Results":
        """The rows of these runs (one or more run ids); their samples and telemetry still
        unread if they were."""
        keep = list(run_ids)
        tables = {"runs": self.runs[self.runs["run_id"].isin(keep)].reset_index(drop=True)}
        for name in ("samples", "telemetry"):
            t = self._raw(name)
            if isinstance(t, TableFiles):
                tables[name] = t.only(*keep)
            elif t is None:
                tables[name] = None
            else:
                tables[name] = t[t["run_id"].isin(keep)].reset_index(drop=True)
        agg = self.aggregates
        tables["aggregates"] = agg[agg["run_id"].isin(keep)].reset_index(drop=True) if "run_id" in agg else agg
        tables["trees"] = tuple((tree, tuple(i for i in ids if i in keep)) for tree, ids in self.trees
                                if any(i in keep for i in ids))
        return dataclasses.replace(self, **tables)

    def _rows(self):
        """Row-wise reading of the samples: from their files where not read, else from the
        frame in memory; None where there are none to read (``load(samples=False)``)."""
        t = self._raw("samples")
        if isinstance(t, TableFiles):
            return t
        if t is None:
            return None
        return FrameRows(t)

    @property
    def n_samples(self) -> int:
        """How many samples the runs have (``len(samples)``) without reading them: from
        the files' footers (from their key columns where a file holds other runs too)."""
        rows = self._rows()
        return 0 if rows is None else rows.count()

    def iter_samples(self, columns: Optional[Sequence[str]] = None,
                     rows: Optional[pd.DataFrame] = None) -> Iterator[Tuple[object, pd.DataFrame]]:
        """Per runs row (of ``rows``, default ``runs``; its label), that row's samples: only
        ``columns`` (default every column; those a tree lacks left out), in the order they
        were recorded, one row's at a time, read from disk where they were not read
        already. Rows without samples are not given::

            for label, s in r.iter_samples(["host_ms", "in_window"]):
                print(r.runs.at[label, "model"], s.loc[s.in_window, "host_ms"].median())
        """
        source = self._rows()
        if source is None:
            return iter(())
        rows = self.runs if rows is None else rows
        cols = list(columns) if columns is not None else list(TABLES["samples"].names)
        return source.iter_rows(rows, cols)

    def samples_for(self, rows: Optional[pd.DataFrame] = None,
                    columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """The samples of the runs rows ``rows`` (default every row), only ``columns``
        (default every column), as one DataFrame: read a row at a time, so only what is
        returned is held. ``r.samples_for(columns=["run_id", "model", "host_ms"])`` reads
        three columns of every sample, ``r.samples_for(r.runs[r.runs.phase == "alone"])``
        the alone rows' samples."""
        t = self._raw("samples")
        if rows is None and isinstance(t, TableFiles):  # every sample: the files' columns as they are
            return t.read(columns)
        cols = list(columns) if columns is not None else list(TABLES["samples"].names)
        if rows is None and isinstance(t, pd.DataFrame):
            return t[[c for c in cols if c in t.columns]].copy()
        frames = [f for _, f in self.iter_samples(cols, rows)]
        if not frames:
            empty = TABLES["samples"].empty_table().to_pandas()
            return empty[[c for c in cols if c in empty.columns]]
        return pd.concat(frames, ignore_index=True)

    def samples_index(self, rows: Optional[pd.DataFrame] = None) -> pd.DataFrame:
        """Per runs row (of ``rows``, default ``runs``; same index), where its samples are,
        from their key columns and start times only: ``n`` (how many), ``order`` (of its
        first sample, across the files in load order), ``t_min`` / ``t_max`` (the first and
        last ``t_start_ns``); 0 and NaN for a row without samples."""
        rows = self.runs if rows is None else rows
        source = self._rows()
        if source is None:
            return pd.DataFrame({"n": 0, "order": np.nan, "t_min": np.nan, "t_max": np.nan}, index=rows.index)
        return source.row_info(rows)

    def samples_per_run(self) -> pd.DataFrame:
        """Per run id with samples, in the order they were recorded: ``run_id``, ``n`` (its
        samples, whichever row they are of), ``t_min`` / ``t_max`` (``t_start_ns``)."""
        source = self._rows()
        return pd.DataFrame(columns=["run_id", "n", "t_min", "t_max"]) if source is None else source.run_info()

    def with_runs(self, runs: pd.DataFrame) -> "Results":
        """These results with another runs table (rows of these runs, changed), the samples
        and telemetry as they are (unread where they were)."""
        return dataclasses.replace(self, runs=runs, samples=self._raw("samples"), telemetry=self._raw("telemetry"),
                                   aggregates=self.aggregates)

    def filled(self, diagnostics: bool = True, stats: bool = True) -> "Results":
        """The runs with what trees written by older versions lack computed again from
        each row's samples, one row at a time (``lazy.fill``): the statistics of rows
        without ``n_eff`` (``stats``) and the diagnostics of rows without them
        (``diagnostics``), from the samples and the telemetry. ``load`` does it unless
        told not to."""
        source = self._rows()
        runs = fill_rows(self.runs, source, lambda: self.telemetry, self.aggregates, diagnostics, stats)
        return self if runs is self.runs else self.with_runs(runs)


def run_state(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run (index ``run_id``, in run-id order): ``rows``, ``ok``, ``failed``,
    ``interrupted`` (row counts by status), ``signal`` (what stopped an interrupted one:
    ``Ctrl-C``, ``SIGTERM``, ``SIGHUP``) and ``complete``: measured something (an ok row)
    and not interrupted. A run of only failed rows is complete but shows nothing."""
    status = runs["status"].astype(object) if "status" in runs.columns else pd.Series("ok", index=runs.index)
    err = runs["error"].astype(object) if "error" in runs.columns else pd.Series(None, index=runs.index)
    out = []
    for rid, idx in runs.groupby("run_id", sort=True).groups.items():
        st = status.loc[idx]
        stopped = err.loc[idx][st == "interrupted"].dropna()
        n_int = int((st == "interrupted").sum())
        out.append({"run_id": rid, "rows": len(idx), "ok": int((st == "ok").sum()), "failed": int((st == "failed").sum()),
                    "interrupted": n_int, "signal": str(stopped.iloc[0]) if len(stopped) else ("" if not n_int else "?")})
    state = pd.DataFrame(out, columns=["run_id", "rows", "ok", "failed", "interrupted", "signal"]).set_index("run_id")
    state["complete"] = (state["interrupted"] == 0) & (state["ok"] > 0)
    return state


def complete_runs(runs: pd.DataFrame) -> List[str]:
    """The run ids of complete runs (``run_state``), oldest first."""
    state = run_state(runs)
    return list(state.index[state["complete"]])


def _why_not(row: pd.Series) -> str:
    measured = f"{row['ok']} of {row['rows']} rows measured"
    if row["interrupted"]:
        return f"was interrupted ({row['signal']}) with {measured}"
    return f"measured nothing ({row['failed']} of {row['rows']} rows failed)"


def choose_latest(runs: pd.DataFrame, path: str = "") -> Tuple[str, Optional[str]]:
    """The run ``latest`` shows and, where a newer run was passed over, the sentence that
    says so: ``showing run X; the later run Y was interrupted (Ctrl-C) with 2 of 10 rows
    measured: trb compare DIR --run Y to see it``. Without a complete run: the newest."""
    state = run_state(runs)
    newest = str(state.index[-1])
    done = list(state.index[state["complete"]])
    if not done:
        return newest, None if len(state) == 1 else (
            f"showing run {newest}, the newest: no run under {path or 'here'} is complete (each was interrupted or "
            f"measured nothing)")
    rid = str(done[-1])
    later = state.loc[state.index > rid]
    if not len(later):
        return rid, None
    where = path or "DIR"
    parts = [f"the later run {r} {_why_not(row)}" for r, row in later.iterrows()]
    see = str(later.index[-1])
    return rid, (f"showing run {rid}, the newest complete one; {'; '.join(parts)}: "
                 f"trb compare {where} --run {see} to see it")


def run_dirs(path: Union[str, Path]) -> List[Path]:
    """Complete run folders (those with ``runs.parquet``) under ``path``, by name."""
    p = Path(path)
    if not p.exists():
        raise UserError(str(path), "no such results folder")
    found = [f.parent for f in p.rglob("runs.parquet") if not any(part.startswith(".") for part in f.parent.relative_to(p).parts)]
    if (p / "runs.parquet").is_file():
        found.append(p)
    return sorted(set(found), key=lambda d: d.name)


class Unreadable(UserError):
    """A run's file cannot be read: not Parquet (empty, truncated, another format), or
    not what this code reads (``NewerFormat``)."""


class NewerFormat(UserError):
    """A tree written by a newer trt_ray_bench: a version of the format this one does not
    know. Never skipped: the fix is to upgrade."""


def _newer(where: Union[str, Path], version: int) -> NewerFormat:
    return NewerFormat(str(where), f"was written by a newer trt_ray_bench (format {version}); this one reads "
                                   f"formats {FIRST_FORMAT}-{FORMAT_VERSION}: pip install -U trt_ray_bench")


def _version_of(text, where: Path) -> int:
    try:
        version = int(text)
    except (TypeError, ValueError):
        raise Unreadable(str(where), f"format version {text!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise _newer(where, version)
    if version < FIRST_FORMAT:
        raise Unreadable(str(where), f"format version {version} was never written")
    return version


def format_version(run_dir: Union[str, Path]) -> int:
    """The format version of a run folder: its ``format.json``, else 1 (written before
    the version was recorded). Raises ``NewerFormat`` for a version newer than this
    code's, ``Unreadable`` for a ``format.json`` that is not one."""
    f = Path(run_dir) / FORMAT_FILE
    if not f.is_file():
        return 1
    try:
        record = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Unreadable(str(f), f"not a readable format record ({exc.__class__.__name__})") from None
    if not isinstance(record, dict) or "format" not in record:
        raise Unreadable(str(f), 'expected {"format": N}')
    return _version_of(record["format"], f)


def _first_line(exc: BaseException, path: Path) -> str:
    """Arrow's reason in one line, after the last mention of the file (``Could not open
    Parquet input source '<path>': ``; pyarrow 17 says more before it)."""
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return text.rsplit(f"'{path}': ", 1)[-1][:200]


def read_table(path: Path, columns: Optional[List[str]] = None) -> pd.DataFrame:
    """One table of a run as pandas (only ``columns`` where given): a file that is not
    readable Parquet is ``Unreadable`` naming it; a file whose own format marker is newer
    than this code is ``NewerFormat``; one with a marker other than its folder's (a file
    copied between trees) is read by its own."""
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unreadable(str(path), f"not a readable Parquet file ({_first_line(exc, path)})") from None
    marker = (table.schema.metadata or {}).get(FORMAT_KEY)
    if marker is not None:
        _version_of(marker.decode("ascii", "replace"), path)
    try:
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unreadable(str(path), f"not a readable Parquet file ({_first_line(exc, path)})") from None


def check_table(path: Path) -> None:
    """Refuse a table without reading it: its footer must be readable Parquet
    (``Unreadable``) and its format marker one this code reads (``NewerFormat``)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unreadable(str(path), f"not a readable Parquet file ({_first_line(exc, path)})") from None
    marker = (schema.metadata or {}).get(FORMAT_KEY)
    if marker is not None:
        _version_of(marker.decode("ascii", "replace"), path)


#: the tables ``load`` leaves on disk until asked for (``Results.samples``, ``.telemetry``)
LAZY = ("samples", "telemetry")


def _read_run(d: Path, want: Dict[str, bool], columns: Optional[List[str]] = None) -> Dict[str, object]:
    """The tables of one run folder: the runs (only ``columns`` where given) and the
    other eager tables read, the ``LAZY`` ones checked (``check_table``) and given as
    their path."""
    format_version(d)  # refuses a newer tree before its files are read
    out: Dict[str, object] = {}
    for name in TABLES:
        f = d / f"{name}.parquet"
        if want.get(name) and f.is_file():
            if name in LAZY:
                check_table(f)
                out[name] = f
            elif name == "runs" and columns is not None:
                check_table(f)
                have = pq.read_schema(f).names
                out[name] = read_table(f, [c for c in dict.fromkeys(["run_id", *columns]) if c in have])
            else:
                out[name] = read_table(f)
    if "run_id" not in out["runs"].columns:
        raise Unreadable(str(d / "runs.parquet"), "not a runs table (no run_id column)")
    return out


def _paths(path) -> List[Union[str, Path]]:
    """``load``'s ``path`` as a list: one path, or a list / tuple of them."""
    if isinstance(path, (str, Path)):
        return [path]
    paths = list(path)
    if not paths:
        raise UserError("path", "no results folder given")
    return paths


def load(path: Union[str, Path, Sequence[Union[str, Path]]], samples: bool = True, telemetry: bool = True,
         aggregates: bool = True, fill: bool = True, columns: Optional[Sequence[str]] = None) -> Results:
    """Every run under ``path`` (an experiment folder, a run folder, or a whole tree), or
    under each of a list of them (``load(["results", "/mnt/orin/results"])``: each run
    once, ``Results.trees`` saying which tree held which runs).

    The runs are read; ``samples`` and ``telemetry`` (False: none) are read when first
    asked for (``Results.samples``), or a row and a few columns at a time
    (``Results.iter_samples``, ``samples_for``). ``fill``: rows of trees written by older
    versions get their statistics and diagnostics computed again from their samples, a
    row at a time (``Results.filled``; needs ``samples``). ``columns``: only these columns
    of the runs table (and ``run_id``), nothing filled.

    One run: a file that cannot be read is a one-line ``UserError`` naming it. Several: an
    unreadable run is skipped with a warning (``Results.skipped``) and the others load; a
    run of a newer format is refused (``pip install -U trt_ray_bench``), never skipped.
    A file found unreadable only when read later (or gone since) is then one line naming it."""
    paths = _paths(path)
    dirs, tree_of = [], {}
    for p in paths:
        found = run_dirs(p)
        if not found:
            raise UserError(str(p), "no runs found (expected results/<experiment>/<run_id>/runs.parquet)")
        for d in found:
            if d.resolve() not in tree_of:  # a run folder inside two of the trees given: once
                tree_of[d.resolve()] = str(p)
                dirs.append(d)
    label = str(paths[0]) if len(paths) == 1 else ", ".join(map(str, paths))
    want = {"runs": True, "samples": samples, "telemetry": telemetry, "aggregates": aggregates}
    read: Dict[str, List] = {name: [] for name in TABLES}
    skipped: List[str] = []
    seen: Dict[str, str] = {}
    trees: Dict[str, List[str]] = {str(p): [] for p in paths}
    for d in dirs:
        try:
            tables = _read_run(d, want, None if columns is None else list(columns))
        except NewerFormat:
            raise
        except Unreadable as exc:
            if len(dirs) == 1:
                raise
            skipped.append(str(exc))
            log.warning(f"skipped run {d.name}: {exc}")
            continue
        ids = frozenset(str(v) for v in tables["runs"]["run_id"].dropna().unique())
        again = sorted(i for i in ids if i in seen)
        if again:  # the same run copied into two trees: its rows would count twice
            log.warning(f"skipped {d}: run {again[0]} was read already, from {seen[again[0]]}")
            continue
        seen.update((i, str(d)) for i in ids)
        trees[tree_of[d.resolve()]].extend(sorted(ids))
        for name, frame in tables.items():
            read[name].append((frame, ids) if name in LAZY else frame)
    if not read["runs"]:
        raise UserError(label, f"no readable run: {skipped[0]}" + (f" (and {len(skipped) - 1} more)"
                                                                   if len(skipped) > 1 else ""))
    out = {name: pd.concat(frames, ignore_index=True) if frames else TABLES[name].empty_table().to_pandas()
           for name, frames in read.items() if name not in LAZY}
    cache: Dict[Path, object] = {}
    lazy = {name: TableFiles(name, read[name], read_table, _rename_metrics if name == "telemetry" else None,
                             cache=cache) if want[name] else None for name in LAZY}
    res = Results(out["runs"], lazy["samples"], lazy["telemetry"], tuple(skipped), label, out["aggregates"],
                  tuple((t, tuple(ids)) for t, ids in trees.items()) if len(paths) > 1 else ())
    return res.filled() if samples and fill and columns is None else res


#: Metrics stored under an older name: values in MiB (2**20 bytes) once named ``_mb`` with
#: unit ``MB`` (psutil's and NVML's bytes / 2**20; tegrastats' "MB", which are MiB)
RENAMED_METRICS = {f"{m}_mb": f"{m}_mib" for m in (
    "ram_used", "ram_total", "mem_used", "swap_used", "swap_total", "swap_cached", "ram_lfb_size")}


def _rename_metrics(telemetry: pd.DataFrame) -> None:
    """Telemetry written before a metric was renamed (``RENAMED_METRICS``) read under its
    current name and unit, in place."""
    if not len(telemetry) or "metric" not in telemetry.columns:
        return
    old = telemetry["metric"].isin(list(RENAMED_METRICS))
    if old.any():
        for c in ("metric", "unit"):  # a categorical column would refuse the new names
            if c in telemetry.columns and isinstance(telemetry[c].dtype, pd.CategoricalDtype):
                telemetry[c] = telemetry[c].astype(object)
        telemetry.loc[old, "metric"] = telemetry.loc[old, "metric"].map(RENAMED_METRICS)
        if "unit" in telemetry.columns:
            telemetry.loc[old, "unit"] = "MiB"
