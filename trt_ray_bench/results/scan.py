"""Reading a table of samples one runs row at a time: only the columns asked for, only
the row groups that hold the rows asked for, and never more in memory than the rows not
yet complete (with samples written row by row, as every writer writes them: one).

Two passes over a file. ``index_file`` reads the key columns (``_keys.SAMPLE_KEYS``, as
dictionary indices: no string is decoded) and ``t_start_ns``, a batch at a time (not
even those of a row group whose footer statistics say it holds one row), and
records where each row's samples are: how many, the positions of the first and the
last, the row groups that hold them, their first and last start. ``iter_file_rows`` then
reads the value columns asked for from those row groups only, a batch at a time, and
hands each row's samples over as soon as the batch holding its last one is read: with
rows written one after another (a model's samples of a phase together, as every writer
writes them) one row and one batch are held; rows interleaved are held until complete.

The engine is pyarrow, already a dependency: its Parquet reader projects columns, reads
chosen row groups, decodes a batch at a time and keeps strings as dictionary indices,
which is all this needs; the per-row work after it is numpy. DuckDB and Polars were
weighed: both have wheels for Python 3.8 on aarch64 (``pip download --only-binary=:all:
--platform manylinux2014_aarch64 --python-version 38``: duckdb 1.2.2, 19 MB; polars
0.19.12, the last for manylinux2014, 26 MB), but they would add a large second engine on
the Jetsons for reads pyarrow already does in one pass, and the statistics themselves
(``timing._stats``) are numpy either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from ._keys import SAMPLE_KEYS

#: rows decoded at a time
BATCH_ROWS = 1 << 16

#: A row's ``SAMPLE_KEYS`` values as ``_keys.row_keys`` compares them (``key_of``)
Key = Tuple[object, ...]


def norm(v) -> object:
    """One key value as ``_keys.row_keys`` compares it: None and NaN are ``""``, numpy
    scalars Python ones (``0`` and ``0.0`` are one key, as in a dict)."""
    if v is None:
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return ""
    if v is pd.NA or v is pd.NaT:
        return ""
    return v


def key_of(values: Sequence[object]) -> Key:
    return tuple(norm(v) for v in values)


def unreadable(path: Path, exc: BaseException) -> UserError:
    """The one line that names a file Arrow could not read, with Arrow's reason."""
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return UserError(str(path), f"not a readable Parquet file ({text.rsplit(repr(str(path)) + ': ', 1)[-1][:200]})")


@dataclass
class Span:
    """Where one row's samples are in a file."""

    n: int = 0
    #: the positions of its first and last samples in the file
    first: int = -1
    last: int = -1
    #: the row groups holding some of them, ascending
    groups: List[int] = field(default_factory=list)
    #: the first and last ``t_start_ns`` among them (None where the file has none)
    t_min: Optional[int] = None
    t_max: Optional[int] = None


@dataclass
class FileIndex:
    """``index_file``'s record of one file: its rows, its columns, its length."""

    path: Path
    n: int
    columns: Tuple[str, ...]
    spans: Dict[Key, Span]

    def runs(self) -> Dict[str, Span]:
        """Per run id (``""`` for none), the span of all its samples, in order of appearance."""
        out: Dict[str, Span] = {}
        for key, s in sorted(self.spans.items(), key=lambda kv: kv[1].first):
            r = out.setdefault(str(key[0]), Span(first=s.first))
            r.n += s.n
            r.last = max(r.last, s.last)
            r.groups = sorted(set(r.groups) | set(s.groups))
            if s.t_min is not None:
                r.t_min = s.t_min if r.t_min is None else min(r.t_min, s.t_min)
                r.t_max = s.t_max if r.t_max is None else max(r.t_max, s.t_max)
        return out


def _open(path: Path) -> Tuple[pq.ParquetFile, pa.Schema]:
    try:
        schema = pq.read_schema(path)
        strings = [k for k in SAMPLE_KEYS if k in schema.names
                   and (pa.types.is_string(schema.field(k).type) or pa.types.is_large_string(schema.field(k).type))]
        return pq.ParquetFile(path, read_dictionary=strings), schema
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(path, exc) from None


def _batch_keys(batch: pa.RecordBatch, present: Sequence[str]) -> Tuple[np.ndarray, List[Key]]:
    """Per sample of ``batch``, the number of its key in the list returned (every key of
    ``SAMPLE_KEYS``, normalised; ``""`` for a column the file lacks)."""
    n = batch.num_rows
    digits = []  # (position in SAMPLE_KEYS, codes + 1 (0: null), values (index 0: null))
    for j, k in enumerate(SAMPLE_KEYS):
        if k not in present:
            continue
        arr = batch.column(batch.schema.get_field_index(k))
        if pa.types.is_null(arr.type):
            continue
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        idx = arr.indices
        if idx.null_count:
            idx = pc.fill_null(idx, pa.scalar(-1, idx.type))
        codes = idx.to_numpy(zero_copy_only=False).astype(np.int64) + 1
        digits.append((j, codes, [""] + [norm(v) for v in arr.dictionary.to_pylist()]))
    size = 1
    for _, _, vals in digits:
        size *= len(vals)
    blank = [""] * len(SAMPLE_KEYS)
    if not digits or n == 0:
        return np.zeros(n, np.int64), [tuple(blank)]
    if size < 2 ** 62:
        comb = np.zeros(n, np.int64)
        for _, codes, vals in digits:
            comb = comb * len(vals) + codes
        if comb.min() == comb.max():
            uniq, inverse = comb[:1], np.zeros(n, np.int64)
        else:
            uniq, inverse = np.unique(comb, return_inverse=True)
        rows = []
        for u in uniq.tolist():
            parts = []
            for _, _, vals in reversed(digits):
                u, d = divmod(u, len(vals))
                parts.append(d)
            rows.append(parts[::-1])
    else:  # too many distinct values to number them in one integer
        stacked = np.stack([codes for _, codes, _ in digits], axis=1)
        uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
        rows = uniq.tolist()
    keys = []
    for r in rows:
        key = list(blank)
        for (j, _, vals), d in zip(digits, r):
            key[j] = vals[d]
        keys.append(tuple(key))
    return np.asarray(inverse, np.int64).reshape(-1), keys


def _times(batch: pa.RecordBatch) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """``t_start_ns`` of a batch as int64 and where it is valid (None: the batch has none)."""
    if "t_start_ns" not in batch.schema.names:
        return None, None
    arr = batch.column(batch.schema.get_field_index("t_start_ns"))
    if pa.types.is_null(arr.type):
        return None, None
    valid = None
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        arr = pc.fill_null(arr, 0)
    return arr.to_numpy(zero_copy_only=False).astype(np.int64), valid


def _one_key(rg, schema: pa.Schema, present: Sequence[str]):
    """``(key, rows, first start, last start)`` of a row group whose statistics say it
    holds one row's samples (every key column one value, or only nulls), else None."""
    n = rg.num_rows
    if n == 0:
        return None
    names = [rg.column(i).path_in_schema for i in range(rg.num_columns)]
    key = [""] * len(SAMPLE_KEYS)
    for k in present:
        st = rg.column(names.index(k)).statistics if k in names else None
        if st is None:
            return None
        if st.null_count == n:
            continue
        if st.null_count or not st.has_min_max or st.min != st.max:
            return None
        key[SAMPLE_KEYS.index(k)] = norm(st.min)
    lo = hi = None
    if "t_start_ns" in names:
        st = rg.column(names.index("t_start_ns")).statistics
        if st is None or not st.has_min_max:
            return None
        lo, hi = int(st.min), int(st.max)
    return tuple(key), n, lo, hi


def index_file(path: Path) -> FileIndex:
    """Where each row's samples are in the samples file ``path`` (module doc): the key
    columns and ``t_start_ns`` are read, nothing else."""
    pf, schema = _open(path)
    present = [k for k in SAMPLE_KEYS if k in schema.names]
    cols = present + (["t_start_ns"] if "t_start_ns" in schema.names else [])
    spans: Dict[Key, Span] = {}
    pos = 0
    try:
        for g in range(pf.num_row_groups):
            one = _one_key(pf.metadata.row_group(g), schema, present)
            if one is not None:  # the row group holds one row's samples: its footer says all
                key, n, lo, hi = one
                s = spans.setdefault(key, Span(first=pos))
                s.n += n
                s.last = pos + n - 1
                s.groups.append(g)
                if lo is not None:
                    s.t_min = lo if s.t_min is None else min(s.t_min, lo)
                    s.t_max = hi if s.t_max is None else max(s.t_max, hi)
                pos += n
                continue
            if not cols:
                n = pf.metadata.row_group(g).num_rows
                s = spans.setdefault(tuple([""] * len(SAMPLE_KEYS)), Span(first=pos))
                s.n += n
                s.last = pos + n - 1
                s.groups.append(g)
                pos += n
                continue
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[g], columns=cols):
                inv, keys = _batch_keys(batch, present)
                counts = np.bincount(inv, minlength=len(keys))
                if len(keys) == 1:
                    firsts, lasts = [0], [batch.num_rows - 1]
                else:
                    firsts = np.unique(inv, return_index=True)[1].tolist()
                    lasts = (len(inv) - 1 - np.unique(inv[::-1], return_index=True)[1]).tolist()
                t, valid = _times(batch)
                for i, key in enumerate(keys):
                    s = spans.setdefault(key, Span())
                    if s.first < 0:
                        s.first = pos + int(firsts[i])
                    s.last = pos + int(lasts[i])
                    s.n += int(counts[i])
                    if not s.groups or s.groups[-1] != g:
                        s.groups.append(g)
                    if t is not None:
                        sel = None if len(keys) == 1 else inv == i
                        if valid is not None:
                            sel = valid if sel is None else sel & valid
                        ts = t if sel is None else t[sel]
                        if ts.size:
                            lo, hi = int(ts.min()), int(ts.max())
                            s.t_min = lo if s.t_min is None else min(s.t_min, lo)
                            s.t_max = hi if s.t_max is None else max(s.t_max, hi)
                pos += batch.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(path, exc) from None
    return FileIndex(Path(path), pos, tuple(schema.names), spans)


def _plain(table: pa.Table) -> pa.Table:
    """Key columns read as dictionaries, back to their values (as ``pq.read_table`` gives)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            col = table.column(i)
            table = table.set_column(i, f.name, pa.chunked_array([c.dictionary_decode() for c in col.chunks],
                                                                 type=f.type.value_type))
    return table


def iter_file_rows(index: FileIndex, wanted: Collection[Key], columns: Sequence[str]) -> Iterator[Tuple[Key, pa.Table]]:
    """The samples of each row of ``wanted`` found in the file ``index`` describes: only
    ``columns`` (those the file has), in file order, each row as soon as the batch holding
    its last sample is read. Rows without a sample there are not given."""
    path = index.path
    spans = {k: index.spans[k] for k in wanted if k in index.spans}
    if not spans:
        return
    cols = [c for c in dict.fromkeys(columns) if c in index.columns]
    present = [k for k in SAMPLE_KEYS if k in index.columns]
    done = sorted(spans, key=lambda k: spans[k].last)  # the order rows complete in
    groups = sorted({g for s in spans.values() for g in s.groups})
    pf, _ = _open(path)
    md = pf.metadata
    starts = np.concatenate(([0], np.cumsum([md.row_group(g).num_rows for g in range(md.num_row_groups)])))
    read = list(dict.fromkeys(present + cols)) or None
    pieces: Dict[Key, List[pa.Table]] = {}
    empty: Optional[pa.Table] = None
    nxt = 0
    try:
        for g in groups:
            pos = int(starts[g])
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[g], columns=read):
                inv, keys = _batch_keys(batch, present)
                tab = pa.Table.from_batches([batch]).select(cols)
                if empty is None:
                    empty = tab.schema.empty_table()
                ids: Dict[Key, List[int]] = {}
                for i, key in enumerate(keys):
                    if key in spans:
                        ids.setdefault(key, []).append(i)
                for key, which in ids.items():
                    if len(keys) == 1:
                        part = tab
                    else:
                        at = np.flatnonzero(inv == which[0]) if len(which) == 1 else np.flatnonzero(np.isin(inv, which))
                        if at[-1] - at[0] + 1 == len(at):  # contiguous: a zero-copy slice
                            part = tab.slice(int(at[0]), len(at))
                        else:
                            part = tab.take(pa.array(at))
                    pieces.setdefault(key, []).append(part)
                del tab, batch
                pos += len(inv)
                while nxt < len(done) and spans[done[nxt]].last < pos:
                    key = done[nxt]
                    nxt += 1
                    parts = pieces.pop(key, [])
                    yield key, _plain(pa.concat_tables(parts) if parts else empty)
                    del parts
        for key in done[nxt:]:  # (none: every row's last sample is in a row group read)
            parts = pieces.pop(key, [])
            if parts:
                yield key, _plain(pa.concat_tables(parts))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise unreadable(path, exc) from None
