"""``trb``: thin commands over the library. User mistakes print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from .errors import UserError


def _cmd_run(a) -> int:
    from .cluster import make_plan, run_plan
    from .spec import load_spec

    spec = load_spec(a.spec, a.set or [])
    if a.output:
        from .results import check_writable

        check_writable(Path(a.output) / spec.name, "--output")
        spec = spec.model_copy(update={"output": a.output})
    if a.address:
        _join(a)  # before exporting anything
    plan = make_plan(spec, address=a.address, export=not a.dry_run)
    print(plan.describe())
    if a.dry_run:
        print("dry run: nothing measured, nothing written")
        return 0
    out = run_plan(plan)
    runs = out["tables"]["runs"]
    bad = runs[runs["status"] != "ok"]
    from .results import alone_vs_together, render

    if len(bad) == len(runs):
        print(f"no model was measured: every run failed ({out['run_dir']} records why)")
    elif set(runs["phase"]) == {"alone", "together"}:
        print(render(alone_vs_together(runs)))
    elif "variant" in runs.columns and runs["variant"].nunique() > 1:
        from .results import by_condition

        print(render(by_condition(runs, "variant")))
    else:
        cols = ["model", "phase", "repeat", "status", "n", "mean_ms", "p50_ms", "p99_ms", "fps"]
        print(render(runs.reindex(columns=cols)))
    for _, r in runs.iterrows():
        var = f" {r['variant']}" if isinstance(r.get("variant"), str) else ""
        for w in r["warnings"]:
            print(f"warning  {r['model']}{var} {r['phase']} r{r['repeat']}: {w}")
    if len(bad):
        for _, r in bad.iterrows():
            print(f"FAILED   {r['model']} {r['phase']} r{r['repeat']}: {r['error']}", file=sys.stderr)
        return 1
    return 0


def _join(a) -> None:
    """``--address``: a cluster answers there, and this driver carries its token."""
    from .cluster.join import client_auth
    from .cluster.node_run import check_address

    check_address(a.address)
    client_auth(a.address, a.token_file)


def _cmd_compare(a) -> int:
    from .results import alone_vs_together, confidence_of, load, render

    # samples too: repeats are pooled from their inferences, never by averaging percentiles
    res = load(a.dir, samples=True, telemetry=False)
    if a.run:
        if a.run not in res.run_ids:
            raise UserError("--run", f"{a.run!r} not found under {a.dir} (have {', '.join(res.run_ids)})")
        res = res.only(a.run)
    elif not a.all:
        res = res.latest()
    if a.by == "gap":  # the seed 001 attribution study: every run under DIR (its sweep's points)
        from .results.attribution import attribute

        table, cause = attribute(load(a.dir, samples=False, telemetry=False).runs if not a.run else res.runs)
        print(render(table, a.format) if len(table) else "")
        print(cause)
        return 0
    if a.by == "mode":
        from .results import by_mode

        table = by_mode(res.runs, samples=res.samples)
        note = "ms per image (host) of each mode and phase; % vs inference alone; metrics of the last run"
    elif a.by == "stage":
        from .results import stages

        table = stages(res.runs, samples=res.samples)
        note = ("p50 ms per image of each stage, their sum, the measured p50 per image (host) and the GPU time; "
                "vs_first: the p50 against the model's first row")
    elif a.by not in ("phase", "mode", "stage", "gap"):
        from .results import by_condition

        table = by_condition(res.runs, a.by, a.baseline, samples=res.samples)
        note = f"host ms per batch; each {a.by} against {a.baseline or 'the first'}"
    elif a.baseline:
        from .results import versus

        table = versus(res.runs, a.baseline, samples=res.samples)
        note = (f"speedup = mean of {a.baseline} / mean of the row; host ms per batch, gpu_p50 from CUDA events; "
                f"fps: latency-bound (batch x 1000 / mean)")
    else:
        table = alone_vs_together(res.runs, samples=res.samples)
        note = "latency: host ms per batch; Δ = together vs alone"
    if a.format == "md":
        conf = confidence_of(res.runs)
        print(f"runs: {', '.join(res.run_ids)}   {note}\n"
              f"Δ [lo, hi]: the ratio of the two conditions' p50s (geometric means over their runs) and its "
              f"{conf * 100:g} % interval; verdict: slower / faster when the interval excludes 0, not shown when "
              f"it does not (detectable: the difference the runs could have shown), —: the runs cannot tell "
              f"(reason below); a condition's p50 CI: across its runs, or one run's own\n")
    print(render(table, a.format))
    return 0


def _cmd_report(a) -> int:
    from .report import build_report, figures_dir

    out = build_report(a.dir, a.out, a.format)
    n = len(list(figures_dir(out).glob("*.png")))
    print(f"{out}  ({n} figure{'s' if n != 1 else ''} in {figures_dir(out)})")
    return 0


def _cmd_models_make(a) -> int:
    from .models import export_onnx, yaml_name
    from .spec import DEFAULT_IMGSZ, split_arch

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
                               out=Path(a.out) if a.out else None)
    print(f"{path}  ({'cached' if cached else 'exported'}; random weights: built from {yaml_name(arch, task)})")
    return 0


def _cmd_models_convert(a) -> int:
    from .models import ResolvedModel, convert_model, resolve_model
    from .spec import ModelSpec

    try:
        spec = ModelSpec(path=a.model, task=a.task, imgsz=a.imgsz)
    except ValueError as exc:
        raise UserError(a.model, str(exc).splitlines()[-1].strip()) from None
    if not a.model.lower().endswith(".onnx"):
        raise UserError(a.model, "expected an .onnx file")
    m: ResolvedModel = resolve_model(spec, "model")
    out = Path(a.out) if a.out else None
    c = convert_model(m.onnx_path, a.precision, hw=m.hw, task=m.task, calib_images=a.calib_images, where="model",
                      out=out)
    print(f"{c['path']}  ({'cached' if c.get('cached') else 'converted in %.1f s' % c.get('convert_s', 0)}; "
          f"{c['converter']})")
    return 0


def _cmd_engine_build(a) -> int:
    """The same path as a run's models (``tensorrt.prepare``): conversion where the typing
    asks for it, the engine cache, one-line refusals naming the flag."""
    import shutil

    from .engines import check_model, prepare_model, require_backend
    from .models import resolve_model
    from .spec import ModelSpec

    onnx = Path(a.model)
    if not onnx.is_file():
        raise UserError(a.model, "no such file")
    if onnx.suffix.lower() != ".onnx":
        raise UserError(a.model, "expected an .onnx file")
    flags = {"workspace_gb": a.workspace_gb, "opt_level": a.opt_level, "max_batch": a.max_batch,
             "tactics": a.tactics, "calib_images": a.calib_images, "calib_cache": a.calib_cache,
             "typing": a.typing, "convert": {"true": True, "false": False}.get(a.convert, a.convert)}
    options = {k: v for k, v in flags.items() if v is not None}
    spec = ModelSpec(path=str(onnx), backend="tensorrt", precision=a.precision, batch=a.batch, options=options)
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
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        for f in (path, path.with_suffix(".json")):
            shutil.copy2(f, out / f.name)
        path = out / path.name
    how = "cached" if e.get("cached") else f"built in {e.get('build_s', 0):.1f} s"
    made = f"; from {Path(c['path']).name} ({c['converter']})" if c else ""
    print(f"{path}  ({how}; TensorRT {e['trt_version']}, {e['gpu']}, {a.precision}, {e.get('typing')} typing{made})")
    return 0


def _cmd_tegrastats(a) -> int:
    from .telemetry.tegrastats import read_log

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
    print(f"host         {p['host']}  {p['os']}  {p['machine']}")
    print(f"cpu          {p['cpu_model']}  x{p['cpu_count']}")
    print(f"python       {p['python_version']}")
    print(f"ray          {p['ray_version'] or 'MISSING (pip install ray)'}")
    for name, v in backend_versions().items():
        print(f"{name:<12} {v}")
    from .control.doctor import backend_lines, doctor_lines, journal_lines

    for line in backend_lines() + doctor_lines() + journal_lines(restore=a.restore):
        print(line)
    return 0


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
    if a.address:
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
    from .spec import load_sweep

    sweep = load_sweep(a.spec)
    if a.address:
        _join(a)
    ready = prepare(sweep, a.resume)  # expand and validate every point once
    points, _, skip = ready
    print(describe(sweep, points, skip))
    if a.dry_run:
        from .cluster.plan import not_runnable_here

        for note in [] if a.address else not_runnable_here([p.spec for p in points]):  # --address: the nodes run it
            print(f"note        {note} (without --address the points run here)")
        print("dry run: nothing measured, nothing written")
        return 0
    out = run_sweep(sweep, address=a.address, resume=a.resume, planned=ready)
    final = {r["point_id"]: r for r in out["records"]}  # each point's last attempt
    bad = [r for r in final.values() if r["status"] != "ok"]
    print(f"sweep {sweep.name}: {len(final) - len(bad)} ok, {len(bad)} failed, {len(out['skipped'])} skipped; "
          f"{out['root']}")
    for r in bad:
        print(f"FAILED   {r['point_id']} on {r['node']}: {r['reason']}", file=sys.stderr)
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="trb", description="Inference latency, alone and together, measured honestly.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run an experiment spec")
    r.add_argument("spec", help="experiment YAML")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field, e.g. timing.iterations=50")
    r.add_argument("--dry-run", action="store_true", help="validate and print the plan; measure nothing")
    r.add_argument("--address", help="join this Ray cluster (default: start a local one)")
    r.add_argument("--output", help="results root (overrides the spec's output)")
    r.add_argument("--token-file", help="with --address: the cluster's Ray token file (default: $RAY_AUTH_TOKEN_PATH "
                   "or ~/.ray/auth_token, where it exists)")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("compare", help="alone vs together table of a results folder")
    c.add_argument("dir")
    c.add_argument("--format", choices=("md", "csv"), default="md")
    c.add_argument("--by", default="phase", metavar="{phase,mode,stage,gap,variant,COLUMN}",
                   help="mode: inference vs pipeline vs validation vs without_val, alone and together; "
                   "stage: where each pipeline / validation row's time goes (load, pre, infer, post, metrics); "
                   "gap: the gap attribution study, naming the cause of the slowdown after a gap; "
                   "variant (or any runs column, e.g. gap_s, clocks_mode): each value against --baseline "
                   "(default: the first)")
    c.add_argument("--baseline", metavar="MODEL", help="per-model statistics and speedup over this model "
                   "(the TensorRT-vs-X table) instead of alone vs together")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--run", help="this run id (default: the latest)")
    g.add_argument("--all", action="store_true", help="every run found: runs of the same condition are its repeats")
    c.set_defaults(func=_cmd_compare)

    rp = sub.add_parser("report", help="one self-contained HTML page (or markdown) of a run, experiment or sweep")
    rp.add_argument("dir", help="results folder: a run, an experiment of several runs, or a sweep")
    rp.add_argument("--out", metavar="FILE", help="default: DIR/report.html (.md: the markdown variant)")
    # checked by the command, not by argparse, so a bad value is one line like every other error
    rp.add_argument("--format", metavar="html|md", help="default: from --out's suffix, else html")
    rp.set_defaults(func=_cmd_report)

    m = sub.add_parser("models", help="model files")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    mk = msub.add_parser("make", help="build a YOLO model from Ultralytics' yaml and export ONNX (random weights)")
    mk.add_argument("--arch", required=True, help="e.g. yolov8n, yolo11s")
    mk.add_argument("--task", help="classify|detect|pose|segment|obb (or cls, seg)")
    mk.add_argument("--imgsz", type=int, help="input size (default: the task's usual one)")
    mk.add_argument("--batch", type=int, default=1)
    mk.add_argument("--out", help="folder (default: the cache)")
    mk.set_defaults(func=_cmd_models_make)

    cv = msub.add_parser("convert", help="fp16 (mixed precision, FP32 inputs/outputs) or int8 (Q/DQ, calibrated) "
                         "ONNX from an fp32 ONNX: what TensorRT 11 builds, and ONNX Runtime runs")
    cv.add_argument("model", help="MODEL.onnx")
    cv.add_argument("--precision", choices=("fp16", "int8"), required=True)
    cv.add_argument("--calib-images", help="folder of images like the model's input (int8: needed; fp16: the "
                    "reference run that finds values fp16 cannot hold)")
    cv.add_argument("--task", help="classify|detect|pose|segment|obb (default: the model's metadata)")
    cv.add_argument("--imgsz", type=int, help="input size (default: the model's metadata or input shape)")
    cv.add_argument("--out", help="folder (default: the cache, beside the exports)")
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
    eb.add_argument("--typing", choices=("weak", "strong"), help="weak: builder precision flags (TensorRT < 11); "
                    "strong: the precision is in the ONNX (TensorRT >= 10); default: weak below 11, strong from 11")
    eb.add_argument("--convert", choices=("auto", "true", "false"), help="convert the ONNX to the precision first "
                    "(mixed-precision fp16 / Q/DQ int8); auto: for strong typing")
    eb.add_argument("--out", help="folder (default: the engine cache)")
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
    ns.add_argument("--node-ip", help="this board's address on the lab network (Ray binds to it)")
    ns.add_argument("--name", help="node name for trb_node_<name> (default: hostname)")
    ns.add_argument("--num-gpus", type=int, help="default: detected (1 on a Jetson)")
    ns.add_argument("--board", help="board kind for trb_board_<kind>, what a sweep's nodes: {board: ...} "
                    "selects (default: the Jetson model or GPU name, e.g. nvidia_jetson_agx_orin_developer_kit)")
    ns.add_argument("--port", type=int, default=6379)
    ns.add_argument("--auth", choices=("token", "none"), default="token",
                    help="Ray token authentication (Ray 2.52+): the head makes the token file if there is none, "
                    "the other nodes need a copy of it (default: token)")
    ns.add_argument("--token-file", help="the token file (default: $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
    ns.add_argument("--dry-run", action="store_true", help="print the command only")
    ns.add_argument("ray_args", nargs=argparse.REMAINDER, help="after --: more `ray start` arguments")
    ns.set_defaults(func=_cmd_node_start)

    sw = sub.add_parser("sweep", help="run a sweep spec (axes of values over a base experiment) across nodes")
    sw.add_argument("spec", help="sweep YAML")
    sw.add_argument("--address", help="join this Ray cluster (default: start a local one)")
    sw.add_argument("--resume", action="store_true", help="skip points already finished ok in the results tree")
    sw.add_argument("--token-file", help="with --address: the cluster's Ray token file (default: $RAY_AUTH_TOKEN_PATH "
                    "or ~/.ray/auth_token, where it exists)")
    sw.add_argument("--dry-run", action="store_true", help="validate every point and list them; run nothing")
    sw.set_defaults(func=_cmd_sweep)

    d = sub.add_parser("doctor", help="what this machine offers")
    d.add_argument("--restore", action="store_true", help="put back the clocks / power mode / MPS a killed run left "
                   "changed on this node (its journal)")
    d.set_defaults(func=_cmd_doctor)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    from .interrupt import Stopped, install, why

    args = build_parser().parse_args(argv)
    install()  # SIGTERM / SIGHUP: like Ctrl-C (restored, written, one line)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"trb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (Ray's ray.get re-raises them plain)
        stop = why(exc)
        if isinstance(stop, Stopped):
            print(f"trb: stopped by {stop.name}", file=sys.stderr)
            return stop.exit_code
        print("trb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
