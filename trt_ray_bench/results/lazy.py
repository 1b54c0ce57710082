"""The tables ``results.load`` leaves on disk until they are asked for: ``samples`` and
``telemetry`` are read on first access (``Results.samples``: every column, as before),
or a runs row at a time and only the columns asked for (``Results.iter_samples``,
``Results.samples_for``: ``results.scan``). What older trees lack (statistics with their
intervals, diagnostics) is computed again from each row's own samples, one row at a time
(``fill``): never more than one row's samples in memory, only the columns needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import UserError
from . import scan
from ._keys import SAMPLE_KEYS, row_keys
from .compare import apply_row_stats, in_window, row_stats, stats_todo
from .diagnose import CODES, diagnose
from .schema import TABLES

#: the samples' columns a row's statistics are computed from (``compare.row_stats``)
STATS_COLUMNS = ("in_window", "warmup", "host_ms", "gpu_ms")
#: and those its diagnostics need besides (``diagnose``: the latency series in time order,
#: the span of the measured inferences where a row has no window)
DIAGNOSE_COLUMNS = STATS_COLUMNS + ("t_start_ns", "t_end_ns", "iteration")
#: the diagnostics computed from a row's samples (with its runs row); the others come
#: from the runs table and the telemetry (``fill``)
SAMPLE_CODES = frozenset(("cv", "drift", "few_samples", "autocorrelated", "warmup_short", "start_skew",
                          "short_window"))


class Gone(UserError):
    """A run's file that was there when the results were loaded is not there any more."""


def _keys_by_row(rows: pd.DataFrame) -> Dict[scan.Key, List[object]]:
    out: Dict[scan.Key, List[object]] = {}
    for label, key in zip(rows.index, row_keys(rows).itertuples(index=False, name=None)):
        out.setdefault(scan.key_of(key), []).append(label)
    return out


class TableFiles:
    """One table (``samples`` or ``telemetry``) of the runs loaded, left on disk: its
    files in load order, each with the run ids of its run folder; ``run_ids`` the runs
    kept (``only``; None: all). ``reader(path, columns)`` reads one file whole into pandas
    (``load.read_table``), ``post`` is applied to what it reads (metrics renamed)."""

    def __init__(self, name: str, files: Sequence[Tuple[Path, FrozenSet[str]]],
                 reader: Callable[[Path, Optional[List[str]]], pd.DataFrame],
                 post: Optional[Callable[[pd.DataFrame], None]] = None, run_ids: Optional[FrozenSet[str]] = None,
                 cache: Optional[Dict[Path, scan.FileIndex]] = None):
        self.name = name
        self.files = tuple((Path(p), frozenset(ids)) for p, ids in files)
        self.reader = reader
        self.post = post
        self.run_ids = run_ids
        self._index: Dict[Path, scan.FileIndex] = {} if cache is None else cache

    def __repr__(self) -> str:
        return f"<{self.name}: {len(self.files)} file(s) not read yet>"

    def only(self, *run_ids: str) -> "TableFiles":
        """The files of these runs: their rows only."""
        files = [(p, ids) for p, ids in self.files if ids & set(run_ids)]
        return TableFiles(self.name, files, self.reader, self.post, frozenset(run_ids), self._index)

    def _there(self, path: Path) -> None:
        if not path.is_file():
            raise Gone(str(path), "is not there any more: it was when the results were loaded (results.load); "
                                  "load them again")

    def read(self, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """The table of the runs kept, every column or only ``columns`` (those a file lacks
        left out), in load order: one file at a time."""
        frames = []
        for path, _ in self.files:
            self._there(path)
            cols = None
            if columns is not None:
                try:
                    have = set(pq.read_schema(path).names)
                except Exception as exc:  # noqa: BLE001 - Arrow's errors, named as load names them
                    raise scan.unreadable(path, exc) from None
                cols = [c for c in dict.fromkeys(list(columns) + (["run_id"] if self.run_ids is not None else []))
                        if c in have]
            frame = self.reader(path, cols)
            if self.run_ids is not None and "run_id" in frame.columns:
                frame = frame[frame["run_id"].isin(self.run_ids)]
                if columns is not None and "run_id" not in columns:
                    frame = frame.drop(columns="run_id")
            frames.append(frame)
        if frames:
            out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        else:
            out = TABLES[self.name].empty_table().to_pandas()
            if columns is not None:
                out = out[[c for c in columns if c in out.columns]]
        if self.post is not None:
            self.post(out)
        return out

    def index(self, path: Path) -> scan.FileIndex:
        """Where each row's samples are in ``path`` (``scan.index_file``), read once (again
        where the file changed since)."""
        self._there(path)
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        idx = self._index.get(path)
        if idx is None or getattr(idx, "stamp", None) != stamp:
            idx = scan.index_file(path)
            idx.stamp = stamp
            self._index[path] = idx
        return idx

    def count(self) -> int:
        """How many rows the table has for the runs kept, from the files' footers where a
        file holds only those runs, else from their key columns."""
        n = 0
        for path, ids in self.files:
            self._there(path)
            if self.run_ids is None or ids <= self.run_ids and self._one_run(path):
                try:
                    n += pq.ParquetFile(path).metadata.num_rows
                except Exception as exc:  # noqa: BLE001 - Arrow's errors, named as load names them
                    raise scan.unreadable(path, exc) from None
            else:
                n += sum(s.n for rid, s in self.index(path).runs().items() if rid in self.run_ids)
        return n

    def _one_run(self, path: Path) -> bool:
        """Every row group's ``run_id`` statistics say one run id, one of those kept."""
        try:
            md = pq.ParquetFile(path).metadata
            j = md.schema.to_arrow_schema().get_field_index("run_id")
            if j < 0:
                return False
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(j).statistics
                if st is None or not st.has_min_max or st.min != st.max or st.null_count or st.min not in self.run_ids:
                    return False
            return True
        except Exception:  # noqa: BLE001 - counted from the keys instead
            return False

    def iter_rows(self, rows: pd.DataFrame, columns: Sequence[str]) -> Iterator[Tuple[object, pd.DataFrame]]:
        """Per runs row of ``rows`` (its label), its samples' ``columns`` (those the files
        have), one row at a time, in file order; rows without samples are not given."""
        wanted = _keys_by_row(rows)
        if self.run_ids is not None:
            wanted = {k: v for k, v in wanted.items() if k[0] in self.run_ids}
        where: Dict[scan.Key, List[Path]] = {}
        for path, ids in self.files:
            for k in wanted:
                if k[0] in ids:
                    where.setdefault(k, []).append(path)
        split = {k for k, ps in where.items() if len(ps) > 1}  # one run id in two folders: joined at the end
        held: Dict[scan.Key, List[pd.DataFrame]] = {}
        for path, ids in self.files:
            keys = [k for k in wanted if k[0] in ids]
            if not keys:
                continue
            for key, table in scan.iter_file_rows(self.index(path), keys, columns):
                frame = table.to_pandas()
                del table
                if key in split:
                    held.setdefault(key, []).append(frame)
                    continue
                for label in wanted[key]:
                    yield label, frame
        for key, frames in held.items():
            frame = pd.concat(frames, ignore_index=True)
            for label in wanted[key]:
                yield label, frame

    def row_info(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per runs row (same index): ``n`` samples, ``order`` (of its first sample across
        the files, in load order), ``t_min`` / ``t_max`` (first and last ``t_start_ns``)."""
        out = pd.DataFrame({"n": 0, "order": np.nan, "t_min": np.nan, "t_max": np.nan}, index=rows.index)
        wanted = _keys_by_row(rows)
        for f, (path, ids) in enumerate(self.files):
            if not any(k[0] in ids for k in wanted):
                continue
            spans = self.index(path).spans
            for k, labels in wanted.items():
                s = spans.get(k)
                if s is None or k[0] not in ids or (self.run_ids is not None and k[0] not in self.run_ids):
                    continue
                for lb in labels:
                    out.at[lb, "n"] += s.n
                    if np.isnan(out.at[lb, "order"]):
                        out.at[lb, "order"] = float(f) * 2.0 ** 40 + s.first
                    for c, v, pick in (("t_min", s.t_min, min), ("t_max", s.t_max, max)):
                        if v is not None:
                            out.at[lb, c] = v if np.isnan(out.at[lb, c]) else pick(out.at[lb, c], v)
        return out

    def run_info(self) -> pd.DataFrame:
        """Per run id with samples (in order of appearance): ``n`` (every sample of it,
        whichever row), ``t_min`` / ``t_max`` (``t_start_ns``)."""
        out: Dict[str, dict] = {}
        for path, ids in self.files:
            for rid, s in self.index(path).runs().items():
                if self.run_ids is not None and rid not in self.run_ids:
                    continue
                r = out.setdefault(rid, {"run_id": rid, "n": 0, "t_min": s.t_min, "t_max": s.t_max})
                r["n"] += s.n
                if s.t_min is not None:
                    r["t_min"] = s.t_min if r["t_min"] is None else min(r["t_min"], s.t_min)
                    r["t_max"] = s.t_max if r["t_max"] is None else max(r["t_max"], s.t_max)
        return pd.DataFrame(list(out.values()), columns=["run_id", "n", "t_min", "t_max"])


class FrameRows:
    """``TableFiles``' row-wise reading over samples already in memory (a ``Results``
    made of DataFrames, or whose samples were read)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._groups: Optional[Dict[scan.Key, np.ndarray]] = None

    def groups(self) -> Dict[scan.Key, np.ndarray]:
        if self._groups is None:
            f = self.frame
            keys = [scan.key_of(k) for k in row_keys(f).itertuples(index=False, name=None)] if len(f) else []
            idx: Dict[scan.Key, List[int]] = {}
            for i, k in enumerate(keys):
                idx.setdefault(k, []).append(i)
            self._groups = {k: np.asarray(v, np.int64) for k, v in idx.items()}
        return self._groups

    def count(self) -> int:
        return len(self.frame)

    def iter_rows(self, rows: pd.DataFrame, columns: Sequence[str]) -> Iterator[Tuple[object, pd.DataFrame]]:
        cols = [c for c in dict.fromkeys(columns) if c in self.frame.columns]
        groups = self.groups()
        for key, labels in _keys_by_row(rows).items():
            pos = groups.get(key)
            if pos is None:
                continue
            frame = self.frame.iloc[pos][cols].reset_index(drop=True)
            for label in labels:
                yield label, frame

    def row_info(self, rows: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"n": 0, "order": np.nan, "t_min": np.nan, "t_max": np.nan}, index=rows.index)
        groups = self.groups()
        t = self.frame["t_start_ns"] if "t_start_ns" in self.frame.columns else None
        for key, labels in _keys_by_row(rows).items():
            pos = groups.get(key)
            if pos is None:
                continue
            ts = t.iloc[pos].dropna() if t is not None else pd.Series(dtype=float)
            for lb in labels:
                out.loc[lb, ["n", "order"]] = [len(pos), float(pos[0])]
                if len(ts):
                    out.loc[lb, ["t_min", "t_max"]] = [ts.min(), ts.max()]
        return out

    def run_info(self) -> pd.DataFrame:
        f = self.frame
        if not len(f) or "run_id" not in f.columns:
            return pd.DataFrame(columns=["run_id", "n", "t_min", "t_max"])
        rid = f["run_id"].astype(object).where(f["run_id"].notna(), "")
        t = f["t_start_ns"] if "t_start_ns" in f.columns else pd.Series(np.nan, index=f.index)
        g = t.groupby(rid, sort=False)
        return pd.DataFrame({"run_id": list(g.groups), "n": g.size().to_numpy(), "t_min": g.min().to_numpy(),
                             "t_max": g.max().to_numpy()})


#: samples held at once by ``fill`` to diagnose several rows in one call (one row's, where
#: a row has more)
FILL_BATCH = 500_000


def _span(frame: pd.DataFrame) -> Tuple[float, float]:
    """The span of a row's measured inferences (``_keys.row_windows``' fallback)."""
    if "t_start_ns" not in frame.columns or "t_end_ns" not in frame.columns or not len(frame):
        return np.nan, np.nan
    m = frame.loc[in_window(frame)]
    if not len(m):
        return np.nan, np.nan
    return float(m["t_start_ns"].min()), float(m["t_end_ns"].max())


def fill(runs: pd.DataFrame, source, telemetry: Callable[[], Optional[pd.DataFrame]],
         aggregates: Optional[pd.DataFrame] = None, diagnostics: bool = True, stats: bool = True) -> pd.DataFrame:
    """``runs`` with what older trees lack computed again from each row's samples (read
    a row at a time from ``source``, a ``TableFiles`` or ``FrameRows``, None for none; only
    the columns needed): with ``stats`` the statistics of rows without ``n_eff`` (``compare.row_stats``:
    a row whose samples are not there keeps its points and loses its intervals), and with
    ``diagnostics`` the diagnostics of rows without them (those whose statistics were
    computed again included): their samples' part (``SAMPLE_CODES``) a few rows at a time
    (``FILL_BATCH`` samples), the runs table's and the telemetry's (``telemetry()``, asked
    for only here) at the end. The same values as ``compare.with_row_stats`` and
    ``diagnose`` over whole tables; a copy where anything changed."""
    if not len(runs):
        return runs
    redo = stats
    stats = stats_todo(runs) if redo else pd.Series(False, index=runs.index)
    old = runs["n_eff"].isna() if "n_eff" in runs.columns else pd.Series(True, index=runs.index)
    if not redo:
        old = pd.Series(False, index=runs.index)
    if diagnostics:
        diag = (runs["diagnostics"].isna() | old) if "diagnostics" in runs.columns else pd.Series(True, index=runs.index)
    else:
        diag = pd.Series(False, index=runs.index)
    if not (stats.any() or diag.any()):
        return runs
    found: Dict[object, Dict[str, float]] = {}
    series: Dict[object, List[dict]] = {}  # per row, its diagnostics of SAMPLE_CODES
    spans: Dict[object, Tuple[float, float]] = {}  # per row, its measured inferences' span
    pending: List[Tuple[object, pd.DataFrame]] = []
    held = [0]

    def flush() -> None:  # the samples' part of the diagnostics of the rows held
        if not pending:
            return
        labels = [lb for lb, _ in pending]
        rows = runs.loc[labels]
        todo = stats.loc[labels]
        if todo.any():
            rows = apply_row_stats(rows, todo, {lb: found[lb] for lb in labels if lb in found})
        frames, seen = [], set()
        for lb, f in pending:
            if id(f) in seen:  # two runs rows of the same keys share their samples
                continue
            seen.add(id(f))
            r = rows.loc[lb]
            frames.append(f.assign(**{k: r[k] for k in SAMPLE_KEYS if k in rows.columns and k not in f.columns}))
        d = diagnose(rows, pd.concat(frames, ignore_index=True), None, aggregates)
        for lb in labels:
            series[lb] = [x for x in d.loc[lb] if x["code"] in SAMPLE_CODES]
        pending.clear()
        held[0] = 0

    # a row that is not ok, or measured nothing, is diagnosed from its runs row alone
    ok = runs["status"] == "ok" if "status" in runs.columns else pd.Series(True, index=runs.index)
    n = pd.to_numeric(runs["n"], errors="coerce") if "n" in runs.columns else pd.Series(np.nan, index=runs.index)
    diag_read = diag & ok & ~(n == 0)
    cols = DIAGNOSE_COLUMNS if diag_read.any() else STATS_COLUMNS
    if source is not None and (stats | diag_read).any():
        for label, frame in source.iter_rows(runs.loc[stats | diag_read], cols):
            if stats[label] and len(frame):
                st = row_stats(runs.loc[label], frame.loc[in_window(frame)])
                if st is not None:
                    found[label] = st
            if diag_read[label]:
                spans[label] = _span(frame)
                if held[0] + len(frame) > FILL_BATCH:
                    flush()
                pending.append((label, frame))
                held[0] += len(frame)
            del frame
        flush()
    out = apply_row_stats(runs, stats, found) if stats.any() else runs.copy()
    if old.any() and "diagnostics" in out.columns:
        out.loc[old, "diagnostics"] = None
    if not diagnostics:
        return out
    if "diagnostics" not in out.columns:
        out["diagnostics"] = None
    todo = out["diagnostics"].isna()
    if not todo.any():
        return out
    rows = out[todo].copy()
    for c in ("window_start_ns", "window_end_ns"):
        if c not in rows.columns:
            rows[c] = np.nan
    missing = pd.to_numeric(rows["window_start_ns"], errors="coerce").isna() | \
        pd.to_numeric(rows["window_end_ns"], errors="coerce").isna()
    for label in rows.index[missing]:  # as ``_keys.row_windows`` takes them: the measured inferences' span
        rows.at[label, "window_start_ns"], rows.at[label, "window_end_ns"] = spans.get(label, (np.nan, np.nan))
    # the runs table's and the telemetry's part (none for rows not ok: the telemetry unread)
    others = diagnose(rows, None, telemetry() if ok[todo].any() else None, aggregates)
    bare = [lb for lb in rows.index if lb not in series]  # no samples: what its runs row (and aggregates) say
    if bare:
        d = diagnose(out.loc[bare], None, None, aggregates)
        for lb in bare:
            series[lb] = [x for x in d.loc[lb] if x["code"] in SAMPLE_CODES]
    order = {c: i for i, c in enumerate(CODES)}
    lists = []
    for label in rows.index:
        both = series[label] + [x for x in others.loc[label] if x["code"] not in SAMPLE_CODES]
        lists.append(sorted(both, key=lambda x: order.get(x["code"], len(order))))
    out.loc[todo, "diagnostics"] = pd.Series(lists, index=rows.index, dtype=object)
    return out
