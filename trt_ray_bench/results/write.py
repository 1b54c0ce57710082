"""Atomic writing of one run: everything goes to a hidden temporary folder that is
renamed into place when complete, so a crash never leaves a half-written run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__
from ..errors import UserError
from .schema import FORMAT_FILE, FORMAT_KEY, FORMAT_VERSION, TABLES


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
    meta = dict(schema.metadata or {})
    meta[FORMAT_KEY] = str(FORMAT_VERSION).encode()
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(meta))


def write_run(run_dir: Path, tables: Dict[str, pd.DataFrame], spec_yaml: str) -> Path:
    """Write ``spec.yaml``, ``format.json`` (the format version, ``schema.FORMAT_VERSION``)
    and ``<table>.parquet`` files into ``run_dir`` atomically."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
    try:
        (tmp / "spec.yaml").write_text(spec_yaml)
        (tmp / FORMAT_FILE).write_text(json.dumps({"format": FORMAT_VERSION, "written_by": f"trt_ray_bench {__version__}"})
                                       + "\n")
        for name, frame in tables.items():
            pq.write_table(to_table(name, frame), tmp / f"{name}.parquet")
        os.chmod(tmp, 0o755)
        os.rename(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run_dir
