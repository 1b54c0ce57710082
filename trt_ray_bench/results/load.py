"""Loading a whole results tree into pandas in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

import pandas as pd
import pyarrow.parquet as pq

from ..errors import UserError
from .schema import TABLES


@dataclass(frozen=True)
class Results:
    """``runs`` (one row per model, phase and repeat of each run), ``samples`` (one row
    per inference) and ``telemetry`` (long form), concatenated over every run found."""

    runs: pd.DataFrame
    samples: pd.DataFrame
    telemetry: pd.DataFrame

    @property
    def run_ids(self) -> List[str]:
        return sorted(self.runs["run_id"].unique()) if len(self.runs) else []

    def latest(self) -> "Results":
        """Only the newest run (run ids sort by time)."""
        if not len(self.runs):
            return self
        rid = self.run_ids[-1]
        return self.only(rid)

    def only(self, run_id: str) -> "Results":
        return Results(*(t[t["run_id"] == run_id].reset_index(drop=True) for t in (self.runs, self.samples, self.telemetry)))


def run_dirs(path: Union[str, Path]) -> List[Path]:
    """Complete run folders (those with ``runs.parquet``) under ``path``, by name."""
    p = Path(path)
    if not p.exists():
        raise UserError(str(path), "no such results folder")
    found = [f.parent for f in p.rglob("runs.parquet") if not any(part.startswith(".") for part in f.parent.relative_to(p).parts)]
    if (p / "runs.parquet").is_file():
        found.append(p)
    return sorted(set(found), key=lambda d: d.name)


def load(path: Union[str, Path], samples: bool = True, telemetry: bool = True) -> Results:
    """Every run under ``path`` (an experiment folder, a run folder, or a whole tree)."""
    dirs = run_dirs(path)
    if not dirs:
        raise UserError(str(path), "no runs found (expected results/<experiment>/<run_id>/runs.parquet)")
    want = {"runs": True, "samples": samples, "telemetry": telemetry}
    out = {}
    for name, schema in TABLES.items():
        frames = [pq.read_table(d / f"{name}.parquet").to_pandas() for d in dirs if want[name] and (d / f"{name}.parquet").is_file()]
        out[name] = pd.concat(frames, ignore_index=True) if frames else schema.empty_table().to_pandas()
    _rename_metrics(out["telemetry"])
    if samples:
        out["runs"] = _fill_stats(out["runs"], out["samples"])
        _fill_diagnostics(out["runs"], out["samples"], out["telemetry"])
    return Results(out["runs"], out["samples"], out["telemetry"])


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
    from .compare import with_row_stats

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
    from .diagnose import diagnose

    if not len(runs):
        return
    if "diagnostics" not in runs:
        runs["diagnostics"] = None
    todo = runs["diagnostics"].isna()
    if todo.any():
        runs.loc[todo, "diagnostics"] = diagnose(runs[todo], samples, telemetry)
