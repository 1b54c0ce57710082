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
    if samples:
        _fill_diagnostics(out["runs"], out["samples"], out["telemetry"])
    return Results(out["runs"], out["samples"], out["telemetry"])


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
