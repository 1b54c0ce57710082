"""``trb``: thin commands over the library.

Tables and results go to stdout, everything else (progress, warnings, errors) to stderr
through the package logger (``trt_ray_bench.progress``). A user mistake is one line and
exit 2; every exit status is in ``errors.EXIT_CODES`` (``trb --help`` lists them)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import List, Optional

from .errors import EXIT_CODES, EXIT_DOCTOR, EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UserError


def _not_empty(a, *names: str) -> None:
    """``--output ''`` (and every other path option given empty) is refused, not read as
    the current folder or the default."""
    for name in names:
        v = getattr(a, name.lstrip("-").replace("-", "_"), None)
        if v is not None and not str(v).strip():
            raise UserError(name, "empty: give a path (leave the option out for the default)")


def _spec_kind(path: str, command: str) -> None:
    """``trb run`` given a sweep spec, or ``trb sweep`` an experiment: one line naming the
    command that runs it. A file that does not read as a mapping is left to the loader."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except Exception:  # noqa: BLE001 - the spec loaders say what is wrong with it
        return
    if not isinstance(data, dict):
        return
    sweep = "axes" in data or "base" in data or "base_file" in data
    if command == "run" and sweep:
        has = "axes" if "axes" in data else "base" if "base" in data else "base_file"
        raise UserError("", f"{path} is a sweep spec (it has {has}): run it with trb sweep {path}")
    if command == "sweep" and not sweep and "models" in data:
        raise UserError("", f"{path} is an experiment spec (it has models, no axes): run it with trb run {path}")


def _cmd_run(a) -> int:
    from .cluster import make_plan, run_plan
    from .progress import LOGGER
    from .spec import load_spec

    _not_empty(a, "--output")
    _spec_kind(a.spec, "run")
    spec = load_spec(a.spec, a.set or [])
    if a.output:
        from .results import check_writable

        check_writable(Path(a.output) / spec.name, "--output")
        spec = spec.model_copy(update={"output": a.output})
    if a.address and not a.dry_run:
        _join(a)  # before exporting anything
    plan = make_plan(spec, address=a.address, export=not a.dry_run)
    if a.dry_run:
        unchecked = _not_checked(a.address, run=True)
        if a.json:
            from .results.terminal import dumps

            print(dumps({"dry_run": True, "experiment": spec.name, "run_id": plan.run_id, "run_dir": str(plan.run_dir),
                         "models": [m.name for m in plan.models],
                         "phases": [{"repeat": p.repeat, "phase": p.phase, "mode": p.mode, "variant": p.variant or None,
                                     "models": list(p.models)} for p in plan.phases],
                         "notes": plan.notes, "not_checked": unchecked}))
            return EXIT_OK
        print(plan.describe())
        for line in unchecked:
            print(f"not checked {line}")
        print("dry run: nothing measured, nothing written")
        return EXIT_OK
    LOGGER.info(plan.describe())
    out = run_plan(plan)
    return _run_summary(a, out)


def _not_checked(address: Optional[str], run: bool) -> List[str]:
    """What a dry run leaves to the run (it contacts nothing and makes nothing)."""
    out = []
    if address:
        out.append(f"the cluster at {address} (a dry run contacts nothing): that it answers, its token, and that "
                   "its nodes have the models' libraries")
    if run:
        out.append("exports and engine builds (made on the run's first use) and the machine controls (clocks, "
                   "power mode, MPS: checked on the node before anything changes)")
    return out


def _run_table(runs):
    """The table a run ends with: alone vs together, each variant against the first, or
    one row per phase; None where nothing was measured."""
    from .results import alone_vs_together

    if (runs["status"] != "ok").all():
        return None
    if set(runs["phase"]) == {"alone", "together"}:
        return alone_vs_together(runs)
    if "variant" in runs.columns and runs["variant"].nunique() > 1:
        from .results import by_condition

        return by_condition(runs, "variant")
    return runs.reindex(columns=["model", "phase", "repeat", "status", "n", "mean_ms", "p50_ms", "p99_ms", "fps"])


def _run_summary(a, out) -> int:
    """The end of ``trb run``: the table on stdout, fitted to the terminal (or the run as
    JSON with ``--json``); the warnings counted by kind on stderr (each message with
    ``-v``), the failures one line each; exit 1 if a model failed."""
    from . import progress
    from .results import render
    from .results.terminal import dumps, fit_table, run_summary, terminal_width, warnings_summary

    runs = out["tables"]["runs"]
    bad = runs[runs["status"] != "ok"]
    code = EXIT_FAILED if len(bad) or out.get("failed") else EXIT_OK
    table = _run_table(runs)
    if a.json:
        print(dumps(run_summary(out, table, code)))
    elif table is None:
        progress.LOGGER.error(f"no model was measured: every run failed ({out['run_dir']} records why)")
    else:  # a terminal: aligned, fitted to it; a pipe or a file: the markdown trb compare prints
        width = terminal_width()
        print(render(table) if width is None else fit_table(table, None if a.wide else width))
    if progress.verbosity() > 0:
        for _, r in runs.iterrows():
            var = f" {r['variant']}" if isinstance(r.get("variant"), str) else ""
            for w in r["warnings"]:
                progress.LOGGER.warning(f"warning  {r['model']}{var} {r['phase']} r{r['repeat']}: {w}")
    else:
        summary = warnings_summary(runs, out["run_dir"])
        if summary:
            progress.LOGGER.warning(summary)
    for _, r in bad.iterrows():
        progress.LOGGER.error(f"FAILED   {r['model']} {r['phase']} r{r['repeat']}: {r['error']}")
    if out.get("failed"):
        progress.LOGGER.error(f"FAILED   {out['failed']} (the phases measured before are written)")
    return code


def _join(a) -> None:
    """``--address``: a cluster answers there, and this driver carries its token."""
    from .cluster.join import client_auth
    from .cluster.node_run import check_address

    check_address(a.address)
    client_auth(a.address, a.token_file)


def _selected(res, a):
    """The runs ``--run`` names, every run with ``--all``, else the latest of each tree."""
    if a.run:
        if a.run not in res.run_ids:
            raise UserError("--run", f"{a.run!r} not found under {', '.join(a.dir)} (have {', '.join(res.run_ids)})")
        return res.only(a.run)
    return res if a.all else res.latest()


def _cmd_compare(a) -> int:
    import pandas as pd

    from .results import alone_vs_together, confidence_of, load, render

    if a.json:
        if a.format not in (None, "json"):
            raise UserError("--json", f"conflicts with --format {a.format} (--json is --format json)")
        a.format = "json"
    a.format = a.format or "md"
    dirs = a.dir if len(a.dir) > 1 else a.dir[0]  # several trees load as one (results.load([...]))
    if a.baseline and a.by in ("mode", "stage", "gap"):
        raise UserError("--baseline", f"not used by --by {a.by}: --baseline names the baseline model (alone vs "
                        "together per model) or, with --by COLUMN, the baseline value of that column")
    # the runs carry their statistics; the samples (left on disk) are read only for rows of
    # trees written before the intervals respected the dependence between inferences: a row,
    # and its host / GPU times, at a time (Results.filled), for the runs shown only
    res = _selected(load(dirs, samples=True, telemetry=False, fill=False), a)
    if a.by == "gap":  # the seed 001 attribution study: every run under DIR (its sweep's points)
        from .results.attribution import attribute

        table, cause = attribute(load(dirs, samples=False, telemetry=False).runs if not a.run
                                 else res.filled(diagnostics=False).runs)
        if a.format == "json":
            _print_json_table(table, a, res, cause=cause)
            return EXIT_OK
        print(render(table, a.format) if len(table) else "")
        print(cause)
        return EXIT_OK
    res = res.filled(diagnostics=False)
    if a.by == "mode":
        from .results import by_mode

        table = by_mode(res.runs)
        note = "ms per image (host) of each mode and phase; % vs inference alone; metrics of the last run"
    elif a.by == "stage":
        from .results import stages

        table = stages(res.runs)
        note = ("p50 ms per image of each stage, their sum, the measured p50 per image (host) and the GPU time; "
                "vs_first: the p50 against the model's first row")
    elif a.by == "precision":
        from .results import by_precision

        table = by_precision(res.runs, a.baseline)
        note = (f"per network: each precision against {a.baseline or 'fp32'} (speedup: its p50 over the row's); "
                "host ms per batch; energy mJ per inference where measured; accuracy where validation ran")
    elif a.by not in ("phase", "mode", "stage", "gap"):
        from .results import by_condition

        table = by_condition(res.runs, a.by, a.baseline)
        note = f"host ms per batch; each {a.by} against {a.baseline or 'the first'}"
    elif a.baseline:
        from .results import versus

        table = versus(res.runs, a.baseline)
        note = (f"speedup = p50 of {a.baseline} / p50 of the row; host ms per batch, gpu_p50 from CUDA events; "
                f"fps: latency-bound (batch x 1000 / mean)")
    else:
        table = alone_vs_together(res.runs)
        note = "latency: host ms per batch; Δ = together vs alone"
    energy_cols = [c for c in table.columns if str(c).endswith(("mj_per_inf", "inf_per_j"))]
    if any(pd.to_numeric(table[c], errors="coerce").notna().any() for c in energy_cols):
        note += ("; mj_per_inf / inf_per_j: energy per inference and inferences per joule (together: the window's "
                 "energy over every model's inferences)")
    elif "energy_why" in res.runs.columns:  # no energy anywhere: say why once, not a column of —
        why = [w for w in dict.fromkeys(res.runs["energy_why"].dropna().astype(str)) if w]
        if why:
            note += f"; no energy per inference: {why[0]}"
    if a.format == "json":
        _print_json_table(table, a, res, note=note)
        return EXIT_OK
    if a.format == "md":
        conf = confidence_of(res.runs)
        print(f"runs: {', '.join(res.run_ids)}   {note}\n"
              f"Δ [lo, hi]: the ratio of the two conditions' {'means' if a.by == 'mode' else 'p50s'} "
              f"(geometric means over their runs) and its "
              f"{conf * 100:g} % interval; verdict: slower / faster when the interval excludes 0, not shown when "
              f"it does not (detectable: the difference the runs could have shown), —: the runs cannot tell "
              f"(reason below); a condition's p50 CI: across its runs, or one run's own\n")
    print(render(table, a.format))
    return EXIT_OK


def _print_json_table(table, a, res, **more) -> None:
    """``trb compare --format json``: the table's every column (the verdicts, their
    intervals and reasons included) as records, NaN as null, with what it compared."""
    from .results.terminal import dumps, records
    from .results import confidence_of

    print(dumps({"runs": list(res.run_ids), "by": a.by, "baseline": a.baseline,
                 "confidence": confidence_of(res.runs) if len(res.runs) else None, **more,
                 "rows": records(table)}))


def _cmd_explain(a) -> int:
    from .results import load
    from .results.explain import explain

    res = _selected(load(a.dir if len(a.dir) > 1 else a.dir[0], samples=True, telemetry=True, fill=False), a)
    from .results.compare import check_by

    runs = res.runs
    check_by(runs[runs["status"] == "ok"] if "status" in runs.columns else runs, a.by)
    res = res.filled(diagnostics=False)
    try:
        lines = explain(res.runs, res.telemetry, a.by, a.baseline, a.metric)
    except UserError as exc:  # its fields are the command's options
        raise UserError(f"--{exc.where}", exc.message) from None
    if a.json:
        from .results.terminal import dumps

        print(dumps({"runs": list(res.run_ids), "by": a.by, "metric": a.metric, "sentences": lines}))
        return EXIT_OK
    print("\n".join(lines) if lines else f"no two ok rows of one model differ in {a.by} here")
    return EXIT_OK


def _cmd_report(a) -> int:
    from .report import build_report, figures_dir

    _not_empty(a, "--out")
    out = build_report(a.dir, a.out, a.format, baseline=a.baseline)
    n = len(list(figures_dir(out).glob("*.png")))
    print(f"{out}  ({n} figure{'s' if n != 1 else ''} in {figures_dir(out)})")
    return 0


def _cmd_models_make(a) -> int:
    from .models import export_onnx, yaml_name
    from .spec import DEFAULT_IMGSZ, split_arch

    _not_empty(a, "--out-dir")
    if a.imgsz is not None and a.imgsz < 8:
        raise UserError("--imgsz", f"{a.imgsz}: must be at least 8 pixels (leave it out for the task's usual size)")
    if a.batch < 1:
        raise UserError("--batch", f"{a.batch}: must be 1 or more")
    if a.out_dir and Path(a.out_dir).exists() and not Path(a.out_dir).is_dir():
        raise UserError("--out-dir", f"{a.out_dir} is a file: expected a folder")
    arch, task_in_arch = split_arch(a.arch)
    from .spec._model import _task

    try:
        task = _task(a.task) or task_in_arch
    except ValueError as exc:
        raise UserError("--task", str(exc)) from None
    if task is None:
        raise UserError("--task", "needed (classify, detect, pose, segment, obb)")
    imgsz = a.imgsz or DEFAULT_IMGSZ[task]
    path, cached = export_onnx(yaml_name(arch, task), task, (imgsz, imgsz), a.batch,
                               out=Path(a.out_dir) if a.out_dir else None)
    print(f"{path}  ({'cached' if cached else 'exported'}; random weights: built from {yaml_name(arch, task)})")
    return 0


def _cmd_models_convert(a) -> int:
    from .engines import resolve_model
    from .models import ResolvedModel, convert_model

    _not_empty(a, "--out-dir")
    _onnx_file(a.model)
    spec = _model_spec(a.model, path=a.model, task=a.task, imgsz=a.imgsz)
    m: ResolvedModel = resolve_model(spec, "model")
    out = Path(a.out_dir) if a.out_dir else None
    c = convert_model(m.onnx_path, a.precision, hw=m.hw, task=m.task, calib_images=a.calib_images, where="model",
                      out=out)
    print(f"{c['path']}  ({'cached' if c.get('cached') else 'converted in %.1f s' % c.get('convert_s', 0)}; "
          f"{c['converter']})")
    return 0


def _onnx_file(name: str) -> Path:
    """The MODEL.onnx argument: a file that exists, named .onnx; one line otherwise."""
    path = Path(name)
    if not path.is_file():
        raise UserError(name, "no such file" if not path.exists() else "not a file (expected MODEL.onnx)")
    if path.suffix.lower() != ".onnx":
        raise UserError(name, f"expected an .onnx file (a model exported to ONNX: trb models make, or Ultralytics' "
                              f"export), not {path.suffix or 'a file without a suffix'}")
    return path


def _model_spec(source: str, **fields):
    """A ModelSpec from command-line flags: a refusal is one line naming the file and
    the flag (never pydantic's text and link)."""
    from pydantic import ValidationError

    from .spec import ModelSpec
    from .spec._load import format_validation_error

    try:
        return ModelSpec(**fields)
    except ValidationError as exc:
        err = format_validation_error(exc, "model")
        field = err.where.split(": ", 1)[-1].split(".")[-1]
        flag = "--" + field.replace("_", "-") if field in fields or field in ("precision", "batch", "imgsz") else ""
        raise UserError(f"{source}: {flag}" if flag else source, err.message) from None


def _cmd_engine_build(a) -> int:
    """The same path as a run's models (``tensorrt.prepare``): conversion where the typing
    asks for it, the engine cache, one-line refusals naming the flag."""
    import shutil

    from .engines import check_model, kept_out_text, prepare_model, require_backend, resolve_model, timing_cache_text

    _not_empty(a, "--out-dir", "--timing-cache")
    onnx = _onnx_file(a.model)
    flags = {"workspace_gb": a.workspace_gb, "opt_level": a.opt_level, "max_batch": a.max_batch,
             "tactics": a.tactics, "calib_images": a.calib_images, "calib_cache": a.calib_cache,
             "calibrator": a.calibrator,
             "typing": a.typing, "convert": {"true": True, "false": False}.get(a.convert, a.convert),
             "timing_cache": a.timing_cache}
    options = {k: v for k, v in flags.items() if v is not None}
    spec = _model_spec(a.model, path=str(onnx), backend="tensorrt", precision=a.precision, batch=a.batch,
                       options=options)
    try:
        require_backend(spec, "engine build")
        m = resolve_model(spec, "model")
        check_model(m, "model")
        m = prepare_model(m, "model")
    except UserError as exc:  # name the flag, not the spec field
        name = exc.where.split(".")[-1]
        if name in flags or name in ("precision", "batch"):
            raise UserError("--" + name.replace("_", "-"), exc.message) from None
        raise
    e, c = m.engine, m.converted
    path = Path(m.engine_path)
    if a.out_dir:
        out = Path(a.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for f in (path, path.with_suffix(".json")):
            shutil.copy2(f, out / f.name)
        path = out / path.name
    how = "cached" if e.get("cached") else f"built in {e.get('build_s', 0):.1f} s"
    made = f"; from {Path(c['path']).name} ({c['converter']})" if c else ""
    timing = "" if e.get("cached") else timing_cache_text(e.get("timing_cache")).replace(",", ";", 1)
    kept = kept_out_text(e.get("int8_kept_out")).replace(",", ";", 1)
    print(f"{path}  ({how}; TensorRT {e['trt_version']}, {e['gpu']}, {a.precision}, {e.get('typing')} typing{made}"
          f"{kept}{timing})")
    return 0


def _cmd_tegrastats(a) -> int:
    from .telemetry.tegrastats import read_log

    _not_empty(a, "--out")
    out = Path(a.out) if a.out else None
    kind = out.suffix.lower() if out else ""
    if out is not None and kind not in (".parquet", ".csv"):
        what = f"unknown suffix {out.suffix!r}" if out.suffix else "no suffix"
        raise UserError("--out", f"{a.out}: {what}, expected .parquet or .csv")
    if a.interval_ms is not None and not a.interval_ms > 0:
        raise UserError("--interval-ms", f"{a.interval_ms:g}: expected a period above 0 ms")
    df = read_log(a.logfile, interval_ms=a.interval_ms)
    if df.empty:
        raise UserError(a.logfile, "no tegrastats line in it (expected lines like "
                                   "'RAM 1923/3964MB ... GR3D_FREQ 0%@76 ...')")
    unknown = df.attrs.get("unknown_tokens") or {}
    if unknown:
        example = max(unknown, key=unknown.get)
        print(f"trb: note: {sum(unknown.values())} unknown tokens left out of the table (e.g. {example!r})",
              file=sys.stderr)
    if out is None:
        try:
            df.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # `trb tegrastats LOG | head`: the reader had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    try:
        if kind == ".parquet":
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, index=False)
    except OSError as exc:
        raise UserError("--out", f"{a.out}: cannot write it ({exc.strerror or exc})") from None
    print(f"{out}  ({len(df)} rows, {df.attrs.get('lines', 0)} lines)")
    return 0


def _cmd_doctor(a) -> int:
    from .control import collect_provenance
    from .engines import backend_versions

    p = collect_provenance()
    lines = [f"host         {p['host']}  {p['os']}  {p['machine']}",
             f"cpu          {p['cpu_model']}  x{p['cpu_count']}",
             f"python       {p['python_version']}",
             f"ray          {p['ray_version'] or 'MISSING (pip install ray)'}"]
    versions = backend_versions()
    lines += [f"{name:<12} {v}" for name, v in versions.items()]
    from .control.doctor import doctor_lines, journal_lines
    from .engines import backend_lines

    # a journal --restore could not put back stays a FIX line: exit 4 like every other
    lines += backend_lines() + doctor_lines() + journal_lines(restore=a.restore)
    problems = [x for x in lines if _problem(x)]
    code = EXIT_DOCTOR if problems else EXIT_OK
    if a.json:
        from . import __version__
        from .results.terminal import dumps

        checks = [{"label": x[:13].strip(), "text": x[13:].strip(),
                   "status": _problem(x) or "ok"} for x in lines]
        print(dumps({"trb_version": __version__, "host": p["host"], "os": p["os"], "machine": p["machine"],
                     "cpu_model": p["cpu_model"], "cpu_count": p["cpu_count"], "python_version": p["python_version"],
                     "ray_version": p["ray_version"], "versions": versions, "checks": checks,
                     "problems": [c for c in checks if c["status"] != "ok"], "exit_code": code}))
    else:
        for line in lines:
            print(line)
    return code


def _problem(line: str) -> Optional[str]:
    """``fix``, ``missing`` or ``broken`` for a doctor line that asks the user to act
    (``FIX:``, ``MISSING``, ``BROKEN``), else None."""
    import re

    m = re.search(r"\b(FIX:|MISSING\b|BROKEN\b)", line)
    return m.group(1).rstrip(":").lower() if m else None


def _cmd_node_start(a) -> int:
    """``ray start`` for this node: versions checked against the head's first, the token
    given to Ray as a file (environment, never argv)."""
    import subprocess

    from .cluster.join import head_env, join_env
    from .cluster.node import ray_start_argv

    argv = ray_start_argv(a.head, a.address, a.node_ip, a.name, a.num_gpus, a.port, a.board)
    argv += [x for x in (a.ray_args or []) if x != "--"]  # e.g. the launcher's --autoscaling-config
    from .control.journal import describe, left_behind

    for j in left_behind():  # a node that joins a lab must not carry a killed run's clock lock
        raise UserError("node start", f"a run killed on this node left it changed: {describe(j)}; restore it "
                                      "first: trb doctor --restore")
    if a.address and a.dry_run:  # contacts nothing: says what it did not check
        from .cluster.join import check_token_mode, token_path

        if a.token_file:  # a file here: its mode is checked all the same
            check_token_mode(token_path(a.token_file), "--token-file")
        env, note = {}, (f"not checked (a dry run contacts nothing): that a head answers at {a.address}, its Ray and "
                         f"Python versions, and whether it requires a token (then {token_path(a.token_file)} is used)")
    elif a.address:
        from .cluster.node_run import check_address

        check_address(a.address)
        env, note = join_env(a.address, a.token_file, a.auth)  # versions checked: one line, nothing started
    else:
        env, note = head_env(a.token_file, a.auth, make=not a.dry_run)
    print(" ".join(argv))
    print(f"# {note}")
    if a.dry_run:
        return 0
    here = Path(sys.executable).with_name("ray")  # this environment's Ray (a venv not activated), else PATH's
    run_argv = [str(here)] + argv[1:] if here.is_file() else argv
    try:
        return subprocess.run(run_argv, env={**os.environ, **env}).returncode
    except FileNotFoundError:
        raise UserError("ray", "the ray command is not on PATH (pip install ray)") from None


def _cmd_sweep(a) -> int:
    from .cluster.sweep import describe, prepare, run_sweep
    from .progress import LOGGER
    from .spec import load_sweep

    _not_empty(a, "--output")
    _spec_kind(a.spec, "sweep")
    sweep = _sweep_overrides(load_sweep(a.spec), a.set or [], a.output)
    if sweep.search is not None:
        return _search(a, sweep)
    if a.address and not a.dry_run:
        _join(a)
    ready = prepare(sweep, a.resume)  # expand and validate every point once
    points, _, skip = ready
    if a.dry_run:
        from .cluster.plan import not_runnable_here

        print(describe(sweep, points, skip))
        for note in [] if a.address else not_runnable_here([p.spec for p in points]):  # --address: the nodes run it
            print(f"note        {note} (without --address the points run here)")
        for line in _not_checked(a.address, run=False):
            print(f"not checked {line}")
        print("dry run: nothing measured, nothing written")
        return EXIT_OK
    LOGGER.info(describe(sweep, points, skip))
    out = run_sweep(sweep, address=a.address, resume=a.resume, planned=ready)
    final = {r["point_id"]: r for r in out["records"]}  # each point's last attempt
    bad = [r for r in final.values() if r["status"] != "ok"]
    print(f"sweep {sweep.name}: {len(final) - len(bad)} ok, {len(bad)} failed, {len(out['skipped'])} skipped; "
          f"{out['root']}")
    for r in bad:
        LOGGER.error(f"FAILED   {r['point_id']} on {r['node']}: {r['reason']}")
    return EXIT_FAILED if bad else EXIT_OK


def _search(a, sweep) -> int:
    """``trb sweep`` of a spec with ``search``: the highest rate per model alone and together,
    one probe after another here; the table on stdout, written beside the probes' runs."""
    from .cluster.search import check_search, describe_search, run_search
    from .progress import LOGGER
    from .results import render

    if a.resume:
        raise UserError("--resume", "a search runs its probes afresh (each depends on the last); leave --resume out")
    base = check_search(sweep)
    if a.dry_run:
        print(describe_search(sweep, base))
        for line in _not_checked(a.address, run=True):
            print(f"not checked {line}")
        print("dry run: nothing measured, nothing written")
        return EXIT_OK
    if a.address:
        _join(a)
    LOGGER.info(describe_search(sweep, base))
    out = run_search(sweep, address=a.address)
    print(render(out["table"]))
    print(f"search {sweep.name}: {len(out['probes'])} probes; {out['root'] / 'search.parquet'}, "
          f"{out['root'] / 'search.csv'}")
    return EXIT_OK


def _sweep_overrides(sweep, sets: List[str], output: Optional[str]):
    """``trb sweep --set K=V --output DIR``: applied to the base experiment of every
    point (as ``trb run --set`` to its spec). A key the sweep sets itself (an axis, an
    exclude / include key, its name, its repeats) is refused: the sweep would overwrite it."""
    import dataclasses

    from .spec._load import apply_overrides

    if not sets and not output:
        return sweep
    own = set(sweep.axes) | {k for a in sweep.exclude + sweep.include for k in a} | {"name"}
    if sweep.repeats is not None:
        own.add("repeats")
    for item in sets:
        key = item.split("=", 1)[0].strip()
        for k in own:
            if key == k or key.startswith(k + ".") or k.startswith(key + "."):
                what = ("the sweep's name" if k == "name" else "the sweep's repeats" if k == "repeats"
                        else f"an axis of the sweep ({k})" if k in sweep.axes else f"set by the sweep's exclude / "
                        f"include ({k})")
                raise UserError("--set", f"{key}: {what} sets it in every point; change it in {sweep.source}")
    base = apply_overrides(sweep.base, sets, "--set")
    update = {"base": base}
    if output:
        from .results import check_writable

        check_writable(Path(output) / sweep.name, "--output")
        base["output"] = update["output"] = output
    if not hasattr(sweep, "model_copy"):  # a dataclass
        return dataclasses.replace(sweep, **{k: v for k, v in update.items() if hasattr(sweep, k)})
    out = sweep.model_copy(update=update)
    if out.source != sweep.source:
        out._source = sweep.source  # noqa: SLF001 - where errors name the sweep file
    return out


class _Parser(argparse.ArgumentParser):
    """argparse with a usage mistake in one line, like every other refusal (``--help``
    has the rest); exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _epilog() -> str:
    import textwrap

    width = max(len(c) for c, _ in EXIT_CODES)
    codes = "\n".join(textwrap.fill(w, 78, initial_indent=f"  {c:<{width}}  ", subsequent_indent=" " * (width + 4))
                      for c, w in EXIT_CODES)
    paras = [
        "output: tables and results on stdout; progress, warnings and errors on stderr (a live display where "
        "stderr is a terminal; -q: warnings only; -v: every warning and debug lines)",
        "environment: TRB_CACHE_DIR (exports, engines; default ~/.cache/trt_ray_bench), TRB_LOG_DIR (internal "
        "error logs; default $TRB_CACHE_DIR/logs), TRB_PROGRESS=0 (no live display), COLUMNS (the width "
        "trb run fits its table to)",
        "shell completion: eval \"$(trb completion bash)\" (or zsh) in your shell's rc file",
    ]
    return f"exit status:\n{codes}\n\n" + "\n\n".join(textwrap.fill(x, 78) for x in paras)


def _add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-q / -v on ``parser`` and on every subcommand under it, so they go before or after
    the command (``trb -v run x.yaml`` = ``trb run x.yaml -v``)."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="warnings and errors only (no progress)")
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="every warning message, and debug lines")
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its subcommands there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in dict.fromkeys(action.choices.values()):
                _add_verbosity(child)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = _Parser(prog="trb", description="Inference latency, alone and together, measured honestly.",
                 epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"trb {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run an experiment spec")
    r.add_argument("spec", help="experiment YAML")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field, e.g. timing.iterations=50")
    r.add_argument("--dry-run", action="store_true", help="validate and print the plan; measure nothing")
    r.add_argument("--address", help="join this Ray cluster (default: start a local one)")
    r.add_argument("--output", help="results root (overrides the spec's output)")
    r.add_argument("--token-file", help="with --address: the cluster's Ray token file (default: $RAY_AUTH_TOKEN_PATH "
                   "or ~/.ray/auth_token, where it exists)")
    r.add_argument("--json", action="store_true", help="the final summary as JSON on stdout (run folder, each row's "
                   "status, n, p50 and its interval, the table with its verdicts, the warnings counted)")
    r.add_argument("--wide", action="store_true", help="every column of the final table, however wide the terminal")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compare", help="alone vs together table of a results folder")
    c.add_argument("dir", nargs="+", metavar="DIR", help="results folder; several: their runs side by side (by "
                   "default the latest complete run of each), rows of different software generations kept apart")
    c.add_argument("--format", choices=("md", "csv", "json"), help="md (default), csv (every column) or json "
                   "(every column as records, NaN as null)")
    c.add_argument("--json", action="store_true", help="the same as --format json")
    c.add_argument("--by", default="phase", metavar="{phase,mode,stage,gap,precision,variant,COLUMN}",
                   help="mode: inference vs pipeline vs validation vs without_val, alone and together; "
                   "precision: per network, FP32 / FP16 / INT8 p50, speedup and verdict against --baseline "
                   "(default fp32), energy per inference, accuracy and its change where validation ran; "
                   "stage: where each pipeline / validation row's time goes (load, pre, infer, post, metrics); "
                   "gap: the gap attribution study, naming the cause of the slowdown after a gap; "
                   "variant (or any runs column, e.g. gap_s, clocks_mode): each value against --baseline "
                   "(default: the first)")
    c.add_argument("--baseline", metavar="MODEL|VALUE", help="per-model statistics and speedup over this model "
                   "(the TensorRT-vs-X table) instead of alone vs together; with --by COLUMN, the value of that "
                   "column the others are compared with (default: the first); refused with --by mode, stage, gap")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--run", help="this run id (default: the latest)")
    g.add_argument("--all", action="store_true", help="every run found: runs of the same condition are its repeats")
    c.set_defaults(func=_cmd_compare)

    x = sub.add_parser("explain", help="one sentence per pair of rows that differ in --by: the latency change, the "
                       "verdict over the runs, and what the two windows' telemetry and energy say")
    x.add_argument("dir", nargs="+", metavar="DIR", help="results folder; several: their runs together")
    x.add_argument("--by", default="phase", metavar="COLUMN", help="the runs column the pairs differ in: phase "
                   "(together vs alone, the default), mode, variant, gap_s, clocks_mode, precision, ...")
    x.add_argument("--baseline", metavar="VALUE", help="the value of --by the others are set against (default: "
                   "alone for phase, else the smallest)")
    x.add_argument("--metric", default="p50_ms", choices=("p50_ms", "mean_ms", "gpu_p50_ms", "gpu_mean_ms"),
                   help="the latency compared (default p50_ms)")
    x.add_argument("--json", action="store_true", help="the sentences as JSON, with the runs they are of")
    gx = x.add_mutually_exclusive_group()
    gx.add_argument("--run", help="this run id (default: the latest)")
    gx.add_argument("--all", action="store_true", help="every run found: runs of the same condition are its repeats")
    x.set_defaults(func=_cmd_explain)

    rp = sub.add_parser("report", help="one self-contained HTML page (or markdown) of a run, experiment or sweep")
    rp.add_argument("dir", help="results folder: a run, an experiment of several runs, or a sweep")
    rp.add_argument("--out", metavar="FILE", help="default: DIR/report.html (.md: the markdown variant)")
    # checked by the command, not by argparse, so a bad value is one line like every other error
    rp.add_argument("--format", metavar="html|md", help="default: from --out's suffix, else html")
    rp.add_argument("--baseline", metavar="MODEL", help="the per-model table's speedup and verdicts against this "
                    "model (default: against the first model only where the models are variants of one model)")
    rp.set_defaults(func=_cmd_report)

    m = sub.add_parser("models", help="model files")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    mk = msub.add_parser("make", help="build a YOLO model from Ultralytics' yaml and export ONNX (random weights)")
    mk.add_argument("--arch", required=True, help="e.g. yolov8n, yolo11s")
    mk.add_argument("--task", help="classify|detect|pose|segment|obb (or cls, seg)")
    mk.add_argument("--imgsz", type=int, help="input size (default: the task's usual one)")
    mk.add_argument("--batch", type=int, default=1)
    mk.add_argument("--out-dir", metavar="DIR", help="folder to write the ONNX to (default: the cache)")
    mk.set_defaults(func=_cmd_models_make)

    cv = msub.add_parser("convert", help="fp16 (mixed precision, FP32 inputs/outputs) or int8 (Q/DQ, calibrated) "
                         "ONNX from an fp32 ONNX: what TensorRT 11 builds, and ONNX Runtime runs")
    cv.add_argument("model", help="MODEL.onnx")
    cv.add_argument("--precision", choices=("fp16", "int8"), required=True)
    cv.add_argument("--calib-images", help="folder of images like the model's input (int8: needed; fp16: the "
                    "reference run that finds values fp16 cannot hold)")
    cv.add_argument("--task", help="classify|detect|pose|segment|obb (default: the model's metadata)")
    cv.add_argument("--imgsz", type=int, help="input size (default: the model's metadata or input shape)")
    cv.add_argument("--out-dir", metavar="DIR", help="folder to write the converted ONNX to (default: the cache, "
                    "beside the exports)")
    cv.set_defaults(func=_cmd_models_convert)

    e = sub.add_parser("engine", help="TensorRT engines")
    esub = e.add_subparsers(dest="engine_cmd", required=True)
    eb = esub.add_parser("build", help="build (or find in the cache) a TensorRT engine from an ONNX file")
    eb.add_argument("model", help="MODEL.onnx")
    eb.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    eb.add_argument("--workspace-gb", type=float, default=4.0)
    eb.add_argument("--opt-level", type=int, help="builder optimization level 0-5 (TensorRT >= 8.6)")
    eb.add_argument("--batch", type=int, default=1)
    eb.add_argument("--max-batch", type=int, help="dynamic-batch ONNX: optimization profile (1, batch, max)")
    eb.add_argument("--tactics", choices=("default", "none"), default="default",
                    help="none: no cuBLAS/cuDNN tactics")
    eb.add_argument("--calib-images", help="int8: folder of calibration images")
    eb.add_argument("--calib-cache", help="int8: calibration cache file (read if present, else written)")
    eb.add_argument("--calibrator", choices=("minmax", "entropy"), help="int8 by TensorRT's calibrator: minmax "
                    "(the default, as Ultralytics' exporter) or entropy (trtexec's)")
    eb.add_argument("--timing-cache", metavar="FILE", help="TensorRT's timing cache file (trtexec's "
                    "--timingCacheFile): created by the first build, read and updated by later ones")
    eb.add_argument("--typing", choices=("weak", "strong"), help="weak: builder precision flags (TensorRT < 11); "
                    "strong: the precision is in the ONNX (TensorRT >= 10); default: weak below 11, strong from 11")
    eb.add_argument("--convert", choices=("auto", "true", "false"), help="convert the ONNX to the precision first "
                    "(mixed-precision fp16 / Q/DQ int8); auto: for strong typing")
    eb.add_argument("--out-dir", metavar="DIR", help="folder to copy the engine (and its .json) to (default: "
                    "the engine cache only)")
    eb.set_defaults(func=_cmd_engine_build)

    t = sub.add_parser("tegrastats", help="a `tegrastats --logfile` log as the long-form telemetry table")
    t.add_argument("logfile", help="the log tegrastats wrote")
    t.add_argument("--out", metavar="FILE", help="FILE.parquet or FILE.csv (default: CSV on stdout)")
    t.add_argument("--interval-ms", type=float, metavar="MS", help="the --interval the log was written with: the "
                   "period the loads (%%) average, in avg_s (default: measured from the lines' timestamps)")
    t.set_defaults(func=_cmd_tegrastats)

    n = sub.add_parser("node", help="this board in the lab's Ray cluster")
    nsub = n.add_subparsers(dest="node_cmd", required=True)
    ns = nsub.add_parser("start", help="ray start with the GPU count and resources this project needs "
                         "(Ray does not see a Jetson's GPU by itself)")
    g = ns.add_mutually_exclusive_group(required=True)
    g.add_argument("--head", action="store_true", help="start the cluster here")
    g.add_argument("--address", help="join the head at HOST:PORT")
    ns.add_argument("--node-ip", help="this board's address on the lab network: the one Ray gives the cluster (its "
                    "servers listen on every interface: firewall the board to the lab)")
    ns.add_argument("--name", help="node name for trb_node_<name> (default: hostname)")
    ns.add_argument("--num-gpus", type=int, help="default: detected (1 on a Jetson)")
    ns.add_argument("--board", help="board kind for trb_board_<kind>, what a sweep's nodes: {board: ...} "
                    "selects (default: the Jetson model or GPU name, e.g. nvidia_jetson_agx_orin_developer_kit)")
    ns.add_argument("--port", type=int, default=6379)
    ns.add_argument("--auth", choices=("token", "none"), default="token",
                    help="Ray token authentication (Ray 2.52+): the head makes the token file if there is none, "
                    "the other nodes need a copy of it (default: token)")
    ns.add_argument("--token-file", help="the token file (default: $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
    ns.add_argument("--dry-run", action="store_true", help="print the command only; contacts nothing (with "
                    "--address: says what it did not check)")
    ns.add_argument("ray_args", nargs=argparse.REMAINDER, help="after --: more `ray start` arguments")
    ns.set_defaults(func=_cmd_node_start)

    sw = sub.add_parser("sweep", help="run a sweep spec (axes of values over a base experiment) across nodes, or "
                        "its search (the highest rate meeting a deadline, alone and together)")
    sw.add_argument("spec", help="sweep YAML")
    sw.add_argument("--address", help="join this Ray cluster (default: start a local one)")
    sw.add_argument("--resume", action="store_true", help="skip points already finished ok in the results tree")
    sw.add_argument("--token-file", help="with --address: the cluster's Ray token file (default: $RAY_AUTH_TOKEN_PATH "
                    "or ~/.ray/auth_token, where it exists)")
    sw.add_argument("--dry-run", action="store_true", help="validate every point and list them; run nothing, "
                    "contact nothing")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of the base experiment "
                    "of every point, e.g. timing.iterations=50 (not an axis: the sweep sets those)")
    sw.add_argument("--output", help="results root (overrides the sweep's output and its base's)")
    sw.set_defaults(func=_cmd_sweep)

    d = sub.add_parser("doctor", help="what this machine offers")
    d.add_argument("--restore", action="store_true", help="put back the clocks / power mode / MPS a killed run left "
                   "changed on this node (its journal)")
    d.add_argument("--json", action="store_true", help="the report as JSON on stdout: versions, every check with "
                   "its status (ok, fix, missing, broken)")
    d.set_defaults(func=_cmd_doctor)

    co = sub.add_parser("completion", help="print a shell completion script: eval \"$(trb completion bash)\"")
    co.add_argument("shell", metavar="bash|zsh", help="the shell to complete in")
    co.set_defaults(func=_cmd_completion)

    sc = sub.add_parser("schema", help="the experiment spec's JSON schema, for editors: trb schema > "
                        "trb-spec.schema.json, then '# yaml-language-server: $schema=trb-spec.schema.json' "
                        "atop a spec file")
    sc.add_argument("--sweep", action="store_true", help="the sweep spec's schema instead")
    sc.set_defaults(func=_cmd_schema)
    _add_verbosity(ap, top=True)
    return ap


def _cmd_completion(a) -> int:
    from ._completion import script

    if a.shell not in ("bash", "zsh"):
        raise UserError("completion", f"{a.shell!r}: expected bash or zsh")
    print(script(build_parser(), a.shell), end="")
    return EXIT_OK


def _cmd_schema(a) -> int:
    """The JSON schema of the spec files (``spec/_schema.py`` says how an editor uses it)."""
    import json

    from .spec import json_schema

    print(json.dumps(json_schema(sweep=a.sweep), indent=2))
    return EXIT_OK


def log_dir() -> Path:
    """Where an internal error's traceback is written: ``$TRB_LOG_DIR``, else the logs
    folder of trb's cache (``$TRB_CACHE_DIR`` or ``~/.cache/trt_ray_bench``)."""
    if os.environ.get("TRB_LOG_DIR"):
        return Path(os.environ["TRB_LOG_DIR"]).expanduser()
    cache = os.environ.get("TRB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trt_ray_bench")
    return Path(cache) / "logs"


def _crash_log(text: str, argv: List[str]) -> Optional[Path]:
    """The traceback, with the command and versions, in a new file only the user can
    read (0600); None where it cannot be written."""
    import datetime as _dt
    import platform

    from . import __version__

    head = (f"trb {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
            f"command: trb {' '.join(argv)}\ncwd: {os.getcwd()}\n"
            f"time: {_dt.datetime.now(_dt.timezone.utc).isoformat()}\n\n")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for folder in (log_dir(), Path(os.environ.get("TMPDIR") or "/tmp")):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        for n in range(100):  # a second one in the same second: -1, -2, ...
            path = folder / f"trb-{stamp}-{os.getpid()}{f'-{n}' if n else ''}.log"
            try:
                fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError:
                break
            with os.fdopen(fd, "w") as f:
                f.write(head + text)
            return path
    return None


def internal_error(exc: BaseException, argv: List[str]) -> int:
    """An exception nobody expected (a bug): one line naming its type, its message and the
    log file with the whole traceback (printed too with -v, or where no file can be
    written); exit 3."""
    import traceback

    from . import progress

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    path = _crash_log(text, argv)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    where = f"full traceback: {path}" if path else "traceback below"
    print(f"trb: internal error: {type(exc).__name__}: {first} ({where})", file=sys.stderr)
    if path is None or progress.verbosity() > 0:
        sys.stderr.write(text)
    return EXIT_INTERNAL


def main(argv: Optional[List[str]] = None) -> int:
    from . import progress
    from .interrupt import Stopped, install, why

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quiet and args.verbose:
        print("trb: error: -q and -v: give one of them (see trb --help)", file=sys.stderr)
        return EXIT_USAGE
    progress.configure(args.verbose - args.quiet)
    if args.verbose:
        import platform

        from . import __version__

        progress.LOGGER.debug(f"trb {__version__}, Python {platform.python_version()}: trb {' '.join(argv)}"
                              f"{'; live display' if progress.live() else ''}")
    install()  # SIGTERM / SIGHUP: like Ctrl-C (restored, written, one line)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"trb: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (Ray's ray.get re-raises them plain)
        stop = why(exc)
        if isinstance(stop, Stopped):
            print(f"trb: stopped by {stop.name}", file=sys.stderr)
            return stop.exit_code
        print("trb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trb compare DIR | head`: the reader had enough
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 128 + 13  # SIGPIPE
    except OSError as exc:
        if exc.errno not in _MACHINE_ERRNOS:
            return internal_error(exc, argv)
        # the machine's, not a bug: a full disk, a read-only or foreign folder (the run's writer
        # has removed what it had begun, and the machine was restored on the way out)
        print(f"trb: error: {exc.filename or 'a file'}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback in a file
        return internal_error(exc, argv)


#: errors of the machine's files that no code of trb causes (``main`` says them in one line)
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EMFILE,
                   errno.ENFILE}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
