"""Loading a whole results tree into pandas in one call.

Every run folder records its format version (``schema.FORMAT_VERSION``; a tree without
the marker is version 1): a version this code reads (``FIRST_FORMAT`` up to its own) is
loaded, a newer one refused in one line. A file that is not readable Parquet (empty,
truncated, something else) is one line naming it where one run was asked for; among
several runs that run is skipped, with a warning (the ``trt_ray_bench.results`` logger,
which ``trb`` prints on stderr) and its folder in ``Results.skipped``.

``Results.latest()`` is the newest *complete* run (``complete_runs``): one that measured
something and was not interrupted. A newer run left by Ctrl-C (or SIGTERM, SIGHUP), or one
whose every row failed, is passed over and the warning says which, why, and how to see it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ..progress import LOGGER
from .compare import with_row_stats
from .diagnose import diagnose
from .schema import FIRST_FORMAT, FORMAT_FILE, FORMAT_KEY, FORMAT_VERSION, TABLES

#: where ``load`` and ``Results.latest`` say what they skipped (``trb`` prints it on stderr)
log: logging.Logger = LOGGER.getChild("results")


@dataclass(frozen=True)
class Results:
    """``runs`` (one row per model, phase and repeat of each run), ``samples`` (one row
    per inference) and ``telemetry`` (long form), concatenated over every run found;
    ``skipped``: the run folders left out as unreadable (each with why); ``path``: the
    folder it was loaded from."""

    runs: pd.DataFrame
    samples: pd.DataFrame
    telemetry: pd.DataFrame
    skipped: Tuple[str, ...] = ()
    path: str = ""

    @property
    def run_ids(self) -> List[str]:
        return sorted(self.runs["run_id"].unique()) if len(self.runs) else []

    def latest(self) -> "Results":
        """The newest complete run (run ids sort by time; ``complete_runs``), else the
        newest run. Where a newer run is passed over, a warning says which and why."""
        if not len(self.runs):
            return self
        rid, note = choose_latest(self.runs, self.path)
        if note:
            log.warning(note)
        return self.only(rid)

    def only(self, run_id: str) -> "Results":
        tables = (t[t["run_id"] == run_id].reset_index(drop=True) for t in (self.runs, self.samples, self.telemetry))
        return dataclasses.replace(self, **dict(zip(("runs", "samples", "telemetry"), tables)))


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


def read_table(path: Path) -> pd.DataFrame:
    """One table of a run as pandas: a file that is not readable Parquet is ``Unreadable``
    naming it; a file whose own format marker is newer than this code is ``NewerFormat``;
    one with a marker other than its folder's (a file copied between trees) is read by
    its own."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unreadable(str(path), f"not a readable Parquet file ({_first_line(exc, path)})") from None
    marker = (table.schema.metadata or {}).get(FORMAT_KEY)
    if marker is not None:
        _version_of(marker.decode("ascii", "replace"), path)
    try:
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise Unreadable(str(path), f"not a readable Parquet file ({_first_line(exc, path)})") from None


def _read_run(d: Path, want: Dict[str, bool]) -> Dict[str, pd.DataFrame]:
    format_version(d)  # refuses a newer tree before its files are read
    out = {}
    for name in TABLES:
        f = d / f"{name}.parquet"
        if want[name] and f.is_file():
            out[name] = read_table(f)
    if "run_id" not in out["runs"].columns:
        raise Unreadable(str(d / "runs.parquet"), "not a runs table (no run_id column)")
    return out


def load(path: Union[str, Path], samples: bool = True, telemetry: bool = True) -> Results:
    """Every run under ``path`` (an experiment folder, a run folder, or a whole tree).

    One run: a file that cannot be read is a one-line ``UserError`` naming it. Several: an
    unreadable run is skipped with a warning (``Results.skipped``) and the others load; a
    run of a newer format is refused (``pip install -U trt_ray_bench``), never skipped."""
    dirs = run_dirs(path)
    if not dirs:
        raise UserError(str(path), "no runs found (expected results/<experiment>/<run_id>/runs.parquet)")
    want = {"runs": True, "samples": samples, "telemetry": telemetry}
    read: Dict[str, List[pd.DataFrame]] = {name: [] for name in TABLES}
    skipped: List[str] = []
    for d in dirs:
        try:
            tables = _read_run(d, want)
        except NewerFormat:
            raise
        except Unreadable as exc:
            if len(dirs) == 1:
                raise
            skipped.append(str(exc))
            log.warning(f"skipped run {d.name}: {exc}")
            continue
        for name, frame in tables.items():
            read[name].append(frame)
    if not read["runs"]:
        raise UserError(str(path), f"no readable run: {skipped[0]}" + (f" (and {len(skipped) - 1} more)"
                                                                        if len(skipped) > 1 else ""))
    out = {name: pd.concat(frames, ignore_index=True) if frames else TABLES[name].empty_table().to_pandas()
           for name, frames in read.items()}
    _rename_metrics(out["telemetry"])
    if samples:
        out["runs"] = _fill_stats(out["runs"], out["samples"])
        _fill_diagnostics(out["runs"], out["samples"], out["telemetry"])
    return Results(out["runs"], out["samples"], out["telemetry"], tuple(skipped), str(path))


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


def _fill_stats(runs: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Runs written before the intervals respected the dependence between inferences (no
    ``n_eff``) get their statistics computed again from their samples
    (``compare.with_row_stats``), and their diagnostics with them."""
    if not len(runs):
        return runs
    old = runs["n_eff"].isna() if "n_eff" in runs.columns else pd.Series(True, index=runs.index)
    out = with_row_stats(runs, samples)
    if old.any() and "diagnostics" in out.columns:
        out.loc[old, "diagnostics"] = None
    return out


def _fill_diagnostics(runs: pd.DataFrame, samples: pd.DataFrame, telemetry: pd.DataFrame) -> None:
    """Runs written before the ``diagnostics`` column existed get it computed here, from
    their samples and telemetry, so every loaded row has one."""
    if not len(runs):
        return
    if "diagnostics" not in runs:
        runs["diagnostics"] = None
    todo = runs["diagnostics"].isna()
    if todo.any():
        runs.loc[todo, "diagnostics"] = diagnose(runs[todo], samples, telemetry)
