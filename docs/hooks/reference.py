"""The reference pages, written from the code at build time (an mkdocs hook).

Each ``*_page()`` function returns a page's markdown from the package itself: the CLI
from ``trt_ray_bench.cli.build_parser()``, the experiment spec from its pydantic models'
JSON schema, the sweep spec's keys from ``spec._sweep``, the results columns from
``results/schema.py`` (types from the Arrow schemas, words from its comments or from
``COLUMN_TEXT`` below), the diagnostics from ``results.diagnose``, the environment
variables from every ``os.environ`` read under ``trt_ray_bench/``, the exit codes, and
every one-line refusal (``UserError``) and ``doctor`` FIX line.

Where the code has no words for something (a spec field without a ``description``, a
column without a comment), the words are in the tables below, and a generator raises
``MissingText`` when something new in the code has none: the strict docs build, and
``tests/test_docs.py``, then fail and say what to describe. Text for a thing the code no
longer has is an error too, so this file cannot describe what is gone.

Nothing here imports mkdocs except ``on_files``: the tests call the generators directly.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import re
import tokenize
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "trt_ray_bench"


class MissingText(RuntimeError):
    """Something in the code has no words in the reference (or words for what is gone)."""


# ====================================================================== helpers
def _cell(text) -> str:
    """A markdown table cell: one line, pipes escaped, and ``<`` / ``>`` outside code spans
    escaped (``trb_node_<name>`` would otherwise be read as an HTML tag and vanish)."""
    s = " ".join(str(text).split())
    parts = re.split(r"(`+[^`]*`+)", s)
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
                   for p in parts)


def _code(text) -> str:
    s = str(text)
    tick = "``" if "`" in s else "`"
    pad = " " if "`" in s else ""
    return f"{tick}{pad}{s}{pad}{tick}"


def _table(header: List[str], rows: Iterable[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return "\n".join(out)


def _check_cover(kind: str, have: Iterable[str], text: Dict[str, str]) -> None:
    have = set(have)
    missing = sorted(k for k in have if k not in text)
    stale = sorted(k for k in text if k not in have)
    problems = []
    if missing:
        problems.append(f"{kind} without words in docs/hooks/reference.py: {', '.join(missing)}")
    if stale:
        problems.append(f"{kind} described in docs/hooks/reference.py but gone from the code: {', '.join(stale)}")
    if problems:
        raise MissingText("; ".join(problems))


GENERATED_NOTE = ("<!-- generated from the code by docs/hooks/reference.py at build time: edit the code "
                  "(or that file's words), not this page -->\n\n")


# ====================================================================== CLI
def _walk_parsers(parser: argparse.ArgumentParser, prefix: str):
    """(command words, parser, help) for every command and subcommand, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                words = f"{prefix} {name}".strip()
                yield words, sub, helps.get(name) or ""
                yield from _walk_parsers(sub, words)


def _is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def cli_commands() -> List[Tuple[str, argparse.ArgumentParser, str]]:
    from trt_ray_bench.cli import build_parser

    return list(_walk_parsers(build_parser(), "trb"))


def _arg_rows(parser: argparse.ArgumentParser) -> List[List[str]]:
    fmt = parser._get_formatter()
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if a.nargs == argparse.REMAINDER:
            name = f"-- {(a.metavar or a.dest).upper().replace('_', ' ')}"
            names = _code("-- ...")
        elif a.option_strings:
            meta = ""
            if a.nargs != 0:
                meta = " " + (a.metavar if isinstance(a.metavar, str) else
                              "{" + ",".join(map(str, a.choices)) + "}" if a.choices else a.dest.upper())
            names = ", ".join(_code(o + meta) for o in a.option_strings)
            name = a.option_strings[0]
        else:
            names = _code(a.metavar or a.dest)
            name = a.dest
        del name
        help_text = fmt._expand_help(a) if a.help and a.help is not argparse.SUPPRESS else ""
        default = ""
        if a.option_strings and a.nargs != 0 and a.default not in (None, argparse.SUPPRESS):
            default = _code(a.default)
        choices = ", ".join(_code(c) for c in a.choices) if a.choices and not isinstance(a.metavar, str) else ""
        if a.required and a.option_strings:
            help_text = "required. " + help_text
        if a.nargs == "+" or a.nargs == "*" or isinstance(a, argparse._AppendAction):
            help_text += " (may be given several times)"
        rows.append([names, help_text or "", choices, default])
    return rows


def cli_page() -> str:
    from trt_ray_bench.cli import build_parser

    top = build_parser()
    out = ["# Command line: `trb`\n", GENERATED_NOTE,
           f"{top.description}\n",
           "Every command prints a mistake in its input as one line, `trb: error: WHERE: WHAT`, and exits 2 "
           "before anything runs (see [exit codes](exit-codes.md) and the [refusals](messages.md)).\n",
           "| command | what it does |", "|---|---|"]
    cmds = cli_commands()
    for words, sub, help_text in cmds:
        if _is_group(sub):
            continue
        anchor = words.replace(" ", "-")
        out.append(f"| [{_cell(words)}](#{anchor}) | {_cell(help_text)} |")
    out.append("")
    top_rows = _arg_rows(top)
    if top_rows:
        out.append("Options before the command (`-q` and `-v` go after it too):\n")
        out.append(_table(["argument", "what", "choices", "default"], top_rows))
        out.append("")
    for words, sub, help_text in cmds:
        if _is_group(sub):
            continue
        anchor = words.replace(" ", "-")
        out.append(f"## {words} {{#{anchor}}}\n")
        if help_text:
            out.append(help_text[0].upper() + help_text[1:] + ".\n")
        usage = sub.format_usage().strip()
        usage = re.sub(r"\s+", " ", usage.replace("usage: ", ""))
        out.append(f"```text\n{usage}\n```\n")
        rows = _arg_rows(sub)
        if rows:
            out.append(_table(["argument", "what", "choices", "default"], rows))
            out.append("")
    return "\n".join(out)


# ====================================================================== experiment spec
#: words for spec fields whose pydantic ``Field`` has no ``description``. Keys are the
#: field's path as written in a spec (``models[].task``).
SPEC_TEXT: Dict[str, str] = {
    "name": "names the experiment and its results folder (`OUTPUT/NAME/RUN_ID/`): letters, digits, `.`, `_`, `-`",
    "description": "free text, kept with the resolved spec",
    "models": "the models (at least one), each run alone and/or together",
    "models[].name": "names the model in every table (default: `arch` plus the task's suffix, e.g. `yolov8n-seg`, "
                     "or the file's stem); unique within the experiment",
    "models[].task": "`classify`, `detect`, `pose`, `segment` or `obb` (`cls`, `seg`, `det` too); with `arch`, "
                     "also given by a suffix (`yolov8n-seg`); with `path`, read from the model where it says",
    "models[].imgsz": "input size: an integer (square) or `[h, w]`; default: the task's usual size "
                      "(classify 224, detect / pose / segment 640, obb 1024), or the model's own input",
    "models[].batch": "images per inference",
    "models[].backend": "`onnxruntime`, `tensorrt` or `torch` (see [backend options](#backend-options))",
    "schedule": "`alone`: each model by itself, one after another; `together`: all at once from one start "
                "instant; `both`: alone, then together",
    "data": "the labelled set of the `pipeline`, `validation` and `without_val` modes",
    "data.on_bad_label": "`stop`: a malformed label line refuses the run (naming `file:line`); `skip`: the image "
                         "is left out and counted",
    "repeats": "how many times the schedule is run (3 or more for a verdict between conditions)",
    "timing": "the measurement loop",
    "timing.iterations": "measured inferences per model and phase (default 100 where `duration_s` is not given)",
    "timing.duration_s": "measure for this long instead of a count (give one of `iterations` and `duration_s`)",
    "timing.sync": "`device` (cudaDeviceSynchronize), `stream` (the engine's stream) or `none` (the launch only; "
                   "one wait ends the phase)",
    "models[].timing.warmup": "this model's `timing.warmup`",
    "models[].timing.warmup_s": "this model's `timing.warmup_s`",
    "models[].timing.iterations": "this model's `timing.iterations`",
    "models[].timing.duration_s": "this model's `timing.duration_s`",
    "models[].timing.gap_s": "this model's `timing.gap_s`",
    "models[].timing.sync": "this model's `timing.sync`",
    "models[].timing.gap_mode": "this model's `timing.gap_mode`",
    "models[].timing.prewarm": "this model's `timing.prewarm`",
    "models[].timing.arrivals": "this model's `timing.arrivals`",
    "models[].timing.rate_hz": "this model's `timing.rate_hz`",
    "models[].timing.jitter_ms": "this model's `timing.jitter_ms`",
    "models[].timing.backlog": "this model's `timing.backlog`",
    "models[].timing.deadline_ms": "this model's `timing.deadline_ms`",
    "variants[].timing.warmup": "the variant's `timing.warmup`",
    "variants[].timing.warmup_s": "the variant's `timing.warmup_s`",
    "variants[].timing.iterations": "the variant's `timing.iterations`",
    "variants[].timing.duration_s": "the variant's `timing.duration_s`",
    "variants[].timing.gap_s": "the variant's `timing.gap_s`",
    "variants[].timing.sync": "the variant's `timing.sync`",
    "variants[].timing.gap_mode": "the variant's `timing.gap_mode`",
    "variants[].timing.prewarm": "the variant's `timing.prewarm`",
    "variants[].timing.arrivals": "the variant's `timing.arrivals`",
    "variants[].timing.rate_hz": "the variant's `timing.rate_hz`",
    "variants[].timing.jitter_ms": "the variant's `timing.jitter_ms`",
    "variants[].timing.backlog": "the variant's `timing.backlog`",
    "variants[].timing.deadline_ms": "the variant's `timing.deadline_ms`",
    "input": "what is fed to the models in the `inference` mode",
    "input.kind": "`dummy`: one fixed random tensor; `images`: the images of `path`, preprocessed like "
                  "Ultralytics (letterbox; resize and centre crop for classify)",
    "input.seed": "the random tensor's seed",
    "input.path": "`kind: images`: a folder of images",
    "telemetry": "what the node's Monitor samples during the run",
    "telemetry.interval_s": "polling period of the host and NVML samplers",
    "telemetry.tegrastats_interval_ms": "`tegrastats --interval`",
    "clocks.gpu_mhz": "lock the GPU (SM) clock at this frequency (one the GPU supports)",
    "clocks.mem_mhz": "and the memory clock (desktop GPUs only; refused on a Jetson)",
    "output": "the results root: a run is written to `OUTPUT/NAME/RUN_ID/`",
}

#: each backend's ``options`` (the ``_KNOWN`` set of its module in ``trt_ray_bench/engines``)
OPTION_TEXT: Dict[str, Dict[str, str]] = {
    "onnxruntime": {
        "providers": "execution providers in order, e.g. `[CUDAExecutionProvider, CPUExecutionProvider]` "
                     "(default: the CUDA provider where installed, else the CPU)",
        "threads": "intra-op threads (default: ONNX Runtime's, one per core)",
        "graph_optimization": "`all` (default), `extended`, `basic` or `disable`",
        "calib_images": "int8: a folder of images like the model's input, to calibrate the Q/DQ model on",
    },
    "tensorrt": {
        "transfers": "`true` (default): pinned host buffers copied in and out, timed as `h2d_ms`, `compute_ms`, "
                     "`d2h_ms`; `false`: device buffers only (trtexec's `--noDataTransfers`)",
        "cuda_graph": "launch a captured CUDA graph instead of `execute_async_v3` (needs cuda-python)",
        "sync_wait": "how the host waits for the GPU: `auto`, `spin`, `yield` or `block` (trtexec's "
                     "`--useSpinWait` is `spin`)",
        "workspace_gb": "the builder's workspace limit in GB (default 4)",
        "opt_level": "the builder's optimization level, 0-5 (TensorRT 8.6 and later)",
        "max_batch": "a dynamic-batch ONNX: the optimization profile (1, `batch`, `max_batch`)",
        "tactics": "`none`: no cuBLAS / cuDNN tactics (for a TensorRT without those libraries)",
        "typing": "`weak`: the builder's precision flags (TensorRT 8.5-10.x; the default below 11); `strong`: the "
                  "precision is in the ONNX (TensorRT 10 and later; the only choice on 11)",
        "convert": "`auto` (default): convert the ONNX to the precision first where the typing needs it; `true`: "
                   "always (with weak typing, TensorRT 8.x's route from a Q/DQ or mixed-precision ONNX); `false`: never",
        "calib_images": "int8: a folder of calibration images (the calibrator, or the Q/DQ conversion)",
        "calib_cache": "int8 with the calibrator: the file that keeps its scales (read if present, else written). "
                       "The calibrator's build keeps an Ultralytics head out of INT8 (its Sigmoid layers, its "
                       "decoding and the layers writing its outputs in FP32, its output and DFL convolutions in "
                       "FP16); the engine's `.json` lists them (`int8_kept_out`), and the run log's engine line "
                       "counts them",
        "calibrator": "int8 with the calibrator: `minmax` (default; TensorRT's min-max calibrator, as Ultralytics' "
                      "exporter) or `entropy` (its entropy calibrator, trtexec's), which clips the rare large "
                      "activations a detector's class scores come from. Part of the engine cache's key. A "
                      "`calib_cache` holding the other calibrator's scales is refused before the build",
        "dla_core": "build for and run on this DLA core of a Jetson (Xavier, Orin: 0 or 1; trtexec's `--useDLACore`), "
                    "FP16 or INT8 only; refused where TensorRT counts no such core (every desktop GPU)",
        "gpu_fallback": "with `dla_core`: the layers the DLA cannot run go to the GPU (`--allowGPUFallback`; runs "
                        "column `dla_gpu_layers`); `false` (default) refuses an engine that needs it",
        "timing_cache": "a file for TensorRT's timing cache (trtexec's `--timingCacheFile`; `~` expanded, a relative "
                        "path is the current folder's): made by the first build, read and added to by every later "
                        "one, so that other precisions of a model reuse its layers' timings (another input size "
                        "is new). Not part of "
                        "the engine cache's key; each engine's `.json` records its `timing_cache` (whether the file "
                        "existed, its bytes before and after). `opt_level: 0` does not use it",
    },
    "torch": {
        "device": "`auto` (default: the GPU where there is one), `cuda` or `cpu`",
        "cuda_graph": "replay a captured CUDA graph instead of running the module eagerly",
    },
}

#: the sweep spec's keys (``spec._sweep._KEYS``)
SWEEP_TEXT: Dict[str, str] = {
    "name": "names the sweep and its results folder (default: the base's name)",
    "base": "the experiment spec every point starts from, inline (give `base` or `base_file`)",
    "base_file": "or its path, relative to the sweep file",
    "axes": "dotted spec fields (as `--set` takes them) and their values; the points are their cartesian product",
    "exclude": "partial assignments: every point they match is dropped",
    "include": "extra points, each applied to the base alone",
    "nodes": "`all` (every alive node with a `trb_slot`), a list of node names, or `{board: KIND}` / "
             "`{board: [KIND, ...]}` (the `trb_board_<kind>` of `trb node start`)",
    "repeats": "sets every point's `repeats`",
    "retries": "a failed point is run again on another eligible node this many times (default 1)",
    "output": "the results root (sets the base's `output`)",
}


def _resolve_ref(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        return schema["$defs"][ref.split("/")[-1]]
    return node


def _type_text(schema: dict, node: dict) -> str:
    if "anyOf" in node:
        parts = [_type_text(schema, n) for n in node["anyOf"] if n.get("type") != "null"]
        return " or ".join(dict.fromkeys(parts))
    if "$ref" in node:
        return "mapping"
    if "enum" in node:
        return " | ".join(_code(v) for v in node["enum"])
    if "const" in node:
        return _code(node["const"])
    t = node.get("type")
    if t == "array":
        if "prefixItems" in node:
            return "[" + ", ".join(_type_text(schema, n) for n in node["prefixItems"]) + "]"
        item = node.get("items", {})
        return f"list of {_type_text(schema, _resolve_ref(schema, item)) if '$ref' not in item else 'mappings'}"
    if t == "object":
        return "mapping"
    return {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean"}.get(t, str(t))


def _bounds(node: dict) -> str:
    nodes = [node] + [n for n in node.get("anyOf", []) if n.get("type") != "null"]
    out = []
    for n in nodes:
        if "prefixItems" in n:  # a fixed-length pair: its type says so
            continue
        for key, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
                         ("minItems", "at least")):
            if key in n:
                out.append(f"{sym} {n[key]}" if key != "minItems" else f"at least {n[key]} item(s)")
    return ", ".join(dict.fromkeys(out))


def _default(value) -> str:
    if value is None:
        return "not set"
    if value == "":
        return '`""`'
    return _code(value if isinstance(value, str) else json.dumps(value))


def spec_fields() -> List[dict]:
    """Every field a user can write in an experiment spec, depth first, with its type,
    default, bounds and words (``path``, ``type``, ``default``, ``bounds``, ``text``)."""
    from trt_ray_bench.spec import BACKENDS, ExperimentSpec

    schema = ExperimentSpec.model_json_schema()
    rows: List[dict] = []

    def walk(model: dict, prefix: str) -> None:
        required = set(model.get("required", []))
        for name, node in model.get("properties", {}).items():
            path = f"{prefix}{name}"
            sub = None
            target = node
            for n in [node] + node.get("anyOf", []):
                if "$ref" in n:
                    sub = _resolve_ref(schema, n)
                elif n.get("type") == "array" and "$ref" in n.get("items", {}):
                    sub = _resolve_ref(schema, n["items"])
                    path_list = path + "[]"
            ty = _type_text(schema, target)
            if path.endswith("backend"):
                ty = " | ".join(_code(b) for b in BACKENDS)
            default = ""
            if name in required:
                default = "required"
            elif "default" in node:
                default = _default(node["default"])
            elif sub is not None and node.get("type") != "array":
                default = "(its fields' defaults)"
            text = node.get("description") or SPEC_TEXT.get(path) or ""
            if sub is not None and node.get("type") == "array":
                text = text or (sub.get("description") or "")
                rows.append({"path": path, "type": ty, "default": default, "bounds": _bounds(node), "text": text})
                walk(sub, path_list + ".")
                continue
            if sub is not None and "anyOf" in node and any(n.get("type") not in ("null", None) for n in node["anyOf"]):
                # a union of a value and a mapping (clocks: default | max | {gpu_mhz, mem_mhz})
                rows.append({"path": path, "type": ty.replace("mapping", "{" + ", ".join(sub["properties"]) + "}"),
                             "default": default, "bounds": _bounds(node), "text": text})
                walk(sub, path + ".")
                continue
            if sub is not None:
                text = text or (sub.get("description") or "")
                rows.append({"path": path, "type": "mapping", "default": default, "bounds": "", "text": text})
                walk(sub, path + ".")
                continue
            rows.append({"path": path, "type": ty, "default": default, "bounds": _bounds(node), "text": text})

    walk(schema, "")
    # SPEC_TEXT words only where the code has none; a key naming no field is stale
    paths = {r["path"] for r in rows}
    stale = sorted(k for k in SPEC_TEXT if k not in paths)
    missing = sorted(r["path"] for r in rows if not r["text"])
    if stale or missing:
        raise MissingText("; ".join(filter(None, [
            f"spec fields without words (a Field description, or SPEC_TEXT in docs/hooks/reference.py): "
            f"{', '.join(missing)}" if missing else "",
            f"SPEC_TEXT names fields the spec no longer has: {', '.join(stale)}" if stale else ""])))
    return rows


def backend_options() -> Dict[str, List[str]]:
    from trt_ray_bench.engines import backend_module
    from trt_ray_bench.spec import BACKENDS

    return {b: sorted(backend_module(b)._KNOWN) for b in BACKENDS}


def sweep_rows() -> List[List[str]]:
    """[key, type, default, words] of every key of a sweep spec: from ``SweepSpec``'s JSON
    schema where it is a pydantic model (its ``description``s, else ``SWEEP_TEXT``), else
    from the keys ``sweep_from_dict`` accepts."""
    from trt_ray_bench.spec import _sweep

    model = getattr(_sweep, "SweepSpec", None)
    if hasattr(model, "model_json_schema"):
        schema = model.model_json_schema()
        rows = []
        for name, node in schema["properties"].items():
            default = ("required" if name in schema.get("required", []) else
                       _default(node["default"]) if "default" in node else "")
            rows.append([name, _type_text(schema, node), default, node.get("description") or SWEEP_TEXT.get(name, "")])
    else:
        rows = [[k, "", "", SWEEP_TEXT.get(k, "")] for k in sorted(_sweep._KEYS)]
    keys = {r[0] for r in rows}
    missing = sorted(r[0] for r in rows if not r[3])
    stale = sorted(k for k in SWEEP_TEXT if k not in keys)
    if missing or stale:
        raise MissingText("; ".join(filter(None, [
            f"sweep keys without words (a Field description, or SWEEP_TEXT): {', '.join(missing)}" if missing else "",
            f"SWEEP_TEXT names keys the sweep spec no longer has: {', '.join(stale)}" if stale else ""])))
    return rows


def sweep_keys() -> List[str]:
    return [r[0] for r in sweep_rows()]


def spec_page() -> str:
    rows = spec_fields()
    out = ["# Experiment and sweep specs\n", GENERATED_NOTE,
           "An experiment spec is a YAML mapping; every field below, with its type, default and bounds. "
           "Unknown keys are refused, each mistake in one line naming the file and the field "
           "(`spec.yaml: models[0].imgsz: ...`), before anything runs. Any field can be changed on the command "
           "line: `--set timing.iterations=50`, `--set models.0.batch=4`, `--set models.*.options.threads=1` "
           "(values are read as YAML). An editor that reads JSON Schema (the YAML language server) can check a "
           "spec against [experiment.schema.json](experiment.schema.json).\n",
           "## Experiment spec\n",
           _table(["field", "type", "default", "bounds", "what"],
                  [[_code(r["path"]), r["type"], r["default"], r["bounds"], r["text"]] for r in rows]),
           "",
           "`models[].timing` and `variants[].timing` change the experiment's `timing` for one model or one "
           "variant (the model's first, then the variant's); their fields are the subset listed.\n",
           "## Backend options {#backend-options}\n",
           "`models[].options` is a mapping checked by the model's backend; an option it does not know is "
           "refused, naming the ones it knows.\n"]
    opts = backend_options()
    _check_cover("backends", opts, OPTION_TEXT)
    for backend, known in opts.items():
        _check_cover(f"{backend} options", known, OPTION_TEXT[backend])
        out.append(f"### {backend}\n")
        out.append(_table(["option", "what"], [[_code(k), OPTION_TEXT[backend][k]] for k in known]))
        out.append("")
        if backend == "tensorrt":
            from trt_ray_bench.engines import backend_module

            trt = backend_module(backend)
            taken = ", ".join(_code(k) for k in sorted(trt._RUN | trt._FOR_ENGINE_FILES))
            out.append(f"An `.engine` file given as `path` is run as it was built: beside it only {taken} are "
                       "taken, and a build option is refused in one line.\n")
    out += ["## Sweep spec {#sweep-spec}\n",
            "A sweep is one experiment spec (`base` or `base_file`) and axes of values; each point of their "
            "product, less `exclude`, plus `include`, is one experiment. Every point is resolved and validated "
            "before anything runs. See [the sweeps guide](../guides/sweeps.md).\n",
            _table(["key", "type", "default", "what"], [[_code(k), t, d, w] for k, t, d, w in sweep_rows()]), ""]
    return "\n".join(out)


def spec_schema_json() -> str:
    from trt_ray_bench.spec import ExperimentSpec

    return json.dumps(ExperimentSpec.model_json_schema(), indent=2) + "\n"


# ====================================================================== results columns
#: words for columns that ``results/schema.py`` gives no comment of their own
COLUMN_TEXT: Dict[str, str] = {
    # runs: identity
    "run_id": "the run's folder name: `YYYYMMDD-HHMMSS-xxxxxx` (UTC)",
    "experiment": "the spec's `name`",
    "model": "the model's `name`",
    "phase": "`alone` or `together`",
    "repeat": "0, 1, ... (`repeats`)",
    "mode": "`inference`, `pipeline`, `validation` or `without_val`",
    "status": "`ok`, `failed` (the reason in `error`) or `interrupted`",
    "error": "why the row failed or was interrupted (null when ok)",
    # the model
    "task": "`classify`, `detect`, `pose`, `segment` or `obb`",
    "backend": "`onnxruntime`, `tensorrt` or `torch`",
    "device": "where the model ran: `cpu` or `cuda`",
    "providers": "ONNX Runtime's execution providers, or the CUDA binding that ran (`cuda-python`, `pycuda`)",
    "source": "where the model came from: the `arch` or the file given",
    "onnx_path": "the ONNX file that was run or built from",
    "onnx_sha256": "its SHA-256",
    "weights": "`random` (built from Ultralytics' yaml) or `trained`",
    "imgsz_h": "input height", "imgsz_w": "input width", "batch": "images per inference",
    "input_kind": "`dummy` or `images`", "n_inputs": "distinct inputs cycled through",
    "precision": "`fp32`, `fp16` or `int8`",
    "engine_path": "the TensorRT engine file (tensorrt)",
    "gpu": "the GPU the model ran on, by name (null on the CPU)",
    "transfers": "tensorrt: host-device copies timed as stages", "cuda_graph": "a captured CUDA graph was replayed",
    "sync": "`device`, `stream` or `none`", "gap_s": "seconds between inferences",
    "warmup_n": "warm-up inferences that ran before the phase",
    "iterations": "measured inferences asked for (in `validation` and `without_val` rows: the images of the pass)",
    "duration_s": "measured seconds asked for", "n_models": "models in the phase",
    "calib_sha256": "the calibration set's hash (file names and contents)",
    "window_start_ns": "the together window's start (the latest first start), node monotonic clock",
    "window_end_ns": "its end (the earliest last end)", "window_s": "its length in seconds",
    "start_skew_us": "together: spread of the models' first timed inferences",
    "start_instant_ns": "together: the instant the coordinator chose",
    "start_late_us": "together: how late this model's first inference started after the instant",
    "n_total": "measured inferences, in and out of the window",
    "timer": "the row's latency clock: host `perf_counter_ns`; GPU time from CUDA events where `gpu_*` is filled",
    "enqueue_mean_ms": "mean time until the launch returned",
    "h2d_p50_ms": "tensorrt with transfers: median host-to-device copy", "compute_p50_ms": "median engine time",
    "d2h_p50_ms": "median device-to-host copy",
    "load_p50_ms": "pipeline: median image load (imread)", "pre_p50_ms": "median preprocessing",
    "infer_p50_ms": "median inference (the backend with its sync)", "post_p50_ms": "median postprocessing (NMS, scaling)",
    "metrics_p50_ms": "validation: median metric work per image", "n_images": "images in the pass",
    "n_labels": "labels in the pass", "data": "the data set (its path, or `synthetic: N`)",
    "top1": "classify: top-1 accuracy", "top5": "classify: top-5 accuracy",
    "map50": "detect / obb: mAP at IoU 0.5", "map50_95": "detect / obb: mAP at IoU 0.5:0.95",
    "box_map50": "pose / segment: box mAP50", "box_map50_95": "pose / segment: box mAP50-95",
    "mask_map50": "segment: mask mAP50", "mask_map50_95": "segment: mask mAP50-95",
    "pose_map50": "pose: keypoint mAP50", "pose_map50_95": "pose: keypoint mAP50-95",
    "warnings": "sentences: the diagnostics' messages and anything else the run noticed",
    "diagnostics": "a list of `{code, message}` (see [diagnostics](diagnostics.md))",
    "started_at": "when the row's phase started (UTC)",
    "os": "the operating system", "machine": "the CPU architecture (`x86_64`, `aarch64`)",
    "cpu_model": "the CPU's name", "cpu_count": "logical CPUs", "host": "the node's host name",
    "node_id": "the Ray node", "platform": "`jetson`, `dgpu` or `cpu`", "board": "the Jetson's model (device tree)",
    "gpu_name": "the leased GPU's name", "gpu_driver": "the NVIDIA driver's version",
    "python_version": "Python", "trb_version": "trt_ray_bench", "ray_version": "Ray",
    "onnxruntime_version": "ONNX Runtime", "numpy_version": "numpy", "ultralytics_version": "Ultralytics",
    "tensorrt_version": "TensorRT", "torch_version": "torch",
    "spec_sha256": "the resolved spec's hash",
    "actor_pid": "the process id of the model's actor for this row (a new one per repeat under "
                 "`repeat_isolation: process`)",
    "repeat_order": "`interleaved` or `grouped`",
    # samples
    "iteration": "the inference's index within its phase (warm-up included)",
    "warmup": "runs: the warm-up count asked for; samples: the inference was a warm-up",
    "in_window": "the inference started inside the together window (alone: every measured one)",
    "t_start_ns": "start, node monotonic clock (`perf_counter_ns`)", "t_end_ns": "end, same clock",
    "host_ms": "host wall time of the inference (t0 to t2: launch and sync)",
    "enqueue_ms": "until the launch returned (t0 to t1)",
    "gpu_ms": "GPU time between two CUDA events around the work (NaN without events)",
    "h2d_ms": "tensorrt with transfers: the host-to-device copy", "compute_ms": "the engine",
    "d2h_ms": "the device-to-host copy",
    "load_ms": "pipeline: image load", "pre_ms": "preprocessing", "infer_ms": "inference with its sync",
    "post_ms": "postprocessing", "metrics_ms": "validation: the metric work for this image",
    # telemetry
    "t_ns": "the reading's time, node monotonic clock (the end of its averaging period)",
    "metric": "what was read (`gpu_freq_mhz`, `power_mw:gpu`, `cpu0_util_pct`, ...; see the "
              "[telemetry concepts](../concepts/telemetry.md))",
    "value": "the reading", "unit": "its unit (`MHz`, `%`, `mW`, `MiB`, `C`, ...)",
}


def _schema_comments(per_table: Optional[Dict[Tuple[str, str], str]] = None) -> Dict[str, str]:
    """Column name -> the comment in ``results/schema.py`` written for it: a comment
    block describes the code line right after it (a ``#:`` block, the constant it
    precedes: every name in it). ``per_table``, where given, gets each comment written
    inside a table's schema (``NAME = pa.schema(``) under (``NAME``, column)."""
    src = (PKG / "results" / "schema.py").read_text(encoding="utf-8")
    lines = src.splitlines()
    out: Dict[str, str] = {}
    block: List[str] = []
    constant_block: Optional[str] = None
    table: Optional[str] = None
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Z_]+)\s*=\s*pa\.schema\(", line)
        if m:
            table = m.group(1)
        elif line and not line[0].isspace() and not line.startswith(("#", ")", "]")):
            table = None
        s = line.strip()
        if s.startswith("#:"):
            block.append(s[2:].strip())
            constant_block = "pending"
            continue
        if s.startswith("#"):
            block.append(s[1:].strip())
            continue
        if not s:
            block, constant_block = [], None
            continue
        text = " ".join(block)
        if constant_block == "pending" and re.match(r"^[A-Z_]+\s*=", s):
            # the whole constant: up to its closing bracket
            j, depth, body = i, 0, []
            while j < len(lines):
                body.append(lines[j])
                depth += lines[j].count("[") + lines[j].count("(") - lines[j].count("]") - lines[j].count(")")
                if depth <= 0 and j > i or (depth <= 0 and lines[j].rstrip().endswith(("]", ")"))):
                    break
                j += 1
            for name in re.findall(r"[\"']([a-z][a-z0-9_]*)[\"']", "\n".join(body)):
                out.setdefault(name, text)
        elif block:
            for name in re.findall(r"\(\s*[\"']([a-z][a-z0-9_]*)[\"']\s*,\s*pa\.", s):
                out.setdefault(name, text)
                if per_table is not None and table is not None:
                    per_table.setdefault((table, name), text)
        block, constant_block = [], None
    return out


def results_columns() -> Dict[str, List[Tuple[str, str, str]]]:
    """Per table (runs, samples, telemetry, aggregates): (column, Arrow type, words). A
    column another table has too gets its own table's schema comment where it has one."""
    from trt_ray_bench.results import schema

    own: Dict[Tuple[str, str], str] = {}
    comments = _schema_comments(own)
    stats = set(schema.STAT_FIELDS)
    out: Dict[str, List[Tuple[str, str, str]]] = {}
    used = set()
    seen: set = set()
    for table, arrow in schema.TABLES.items():
        rows = []
        for f in arrow:
            name = f.name
            if name in seen and (table.upper(), name) in own:
                rows.append((name, str(f.type), own[(table.upper(), name)]))
                continue
            text = COLUMN_TEXT.get(name)
            if text is not None:
                used.add(name)
            if name.startswith("gpu_") and name[4:] in stats and text is None:
                text = f"the same as `{name[4:]}`, of the GPU time (CUDA events)"
            elif name in stats and text is None:
                text = _STAT_TEXT.get(name)
            if text is None:
                text = comments.get(name)
            rows.append((name, str(f.type), text or ""))
        seen.update(f.name for f in arrow)
        out[table] = rows
    missing = sorted({c for rows in out.values() for c, _, t in rows if not t})
    all_cols = {c for rows in out.values() for c, _, _ in rows}
    stale = sorted(k for k in COLUMN_TEXT if k not in all_cols)
    if missing or stale:
        raise MissingText("; ".join(filter(None, [
            f"results columns without words (a comment in results/schema.py, or COLUMN_TEXT in "
            f"docs/hooks/reference.py): {', '.join(missing)}" if missing else "",
            f"COLUMN_TEXT names columns the schema no longer has: {', '.join(stale)}" if stale else ""])))
    return out


#: the statistics of a row (``STAT_FIELDS``), host latency of its measured inferences
_STAT_TEXT = {
    "n": "measured inferences (together: those in the window)", "mean_ms": "mean latency, ms per batch",
    "std_ms": "standard deviation", "min_ms": "fastest", "p50_ms": "median", "p90_ms": "90th percentile "
    "(NaN below 36 inferences at 95 %)", "p95_ms": "95th percentile (NaN below 72)", "p99_ms": "99th percentile "
    "(NaN below 368)", "max_ms": "slowest", "fps": "latency-bound rate: batch × 1000 / mean (not what was achieved: "
    "see `throughput_ips`)", "cv": "standard deviation / mean",
    "p50_ci_lo_ms": "the median's interval, low end (at `confidence`; NaN where the row is too short for its "
    "dependence)", "p50_ci_hi_ms": "the median's interval, high end", "mean_ci_lo_ms": "the mean's interval, low end",
    "mean_ci_hi_ms": "the mean's interval, high end",
    "n_eff": "effective sample size of the median (n / the integrated autocorrelation time)",
    "n_eff_mean": "effective sample size of the mean", "acf1": "lag-1 autocorrelation of the latencies",
    "block_ratio": "spread of the medians of 10 consecutive blocks over that of the same values shuffled",
}


def results_page() -> str:
    cols = results_columns()
    out = ["# Results: the four tables\n", GENERATED_NOTE,
           "A run is a folder `OUTPUT/EXPERIMENT/RUN_ID/` holding `spec.yaml` (the resolved spec, after "
           "`--set`) and four Parquet files: `runs.parquet` (one row per model, phase, mode, variant and "
           "repeat), `samples.parquet` (one row per inference, warm-up included and flagged; which ones are "
           "kept is the spec's `timing.samples`: the runs column `samples_kept`), `telemetry.parquet` (long "
           "form: one reading per row) and `aggregates.parquet` (per runs row and second: count, median and "
           "slowest latency, kept whatever the samples are). The schemas are declared once, in "
           "`trt_ray_bench/results/schema.py`; `trt_ray_bench.results.load` reads any tree of runs into pandas "
           "(see [pandas analysis](../guides/pandas-analysis.md)). A run is written into a hidden folder and "
           "renamed when complete: a crash never leaves half a run. Its samples go there as each phase ends "
           "(row groups of their own, at most 262,144 rows each), so the driver holds one phase's at a time; "
           "a hidden folder left by a killed run is removed by the next run into the same experiment folder "
           "(see [the timing loop](../concepts/timing-loop.md#long-runs-which-samples-are-kept)).\n",
           "Times are milliseconds (`_ms`), microseconds (`_us`), nanoseconds of the node's monotonic clock "
           "(`_ns`, `CLOCK_MONOTONIC`, the clock of every sample and telemetry reading) or seconds (`_s`); "
           "memory is MiB (2^20 bytes).\n"]
    for table in ("runs", "samples", "telemetry", "aggregates"):
        out.append(f"## {table}\n")
        if table == "aggregates":
            out.append("Per runs row and per second of its measured inferences (binned by their start from the "
                       "row's window start; a row shorter than a second has one bin; a second without an "
                       "inference has no row), whatever `timing.samples` keeps: drift and throttling stay visible "
                       "in a soak that keeps no samples. Each value is a real percentile of that second's "
                       "inferences, never an average of percentiles; join the telemetry on `t_ns` (the same "
                       "clock). Runs written before this table existed have none (an empty table on load).\n")
        out.append(_table(["column", "type", "what"], [[_code(c), _code(t), w] for c, t, w in cols[table]]))
        out.append("")
    return "\n".join(out)


# ====================================================================== diagnostics
DIAGNOSTIC_TEXT: Dict[str, str] = {
    "cv": "latency is unstable: its standard deviation is a large share of its mean",
    "drift": "the median of the second half of the measured inferences differs from the first half's, beyond "
             "the noise of either",
    "few_samples": "too few inferences for a distribution-free interval of a percentile: that percentile is "
                   "not given (NaN)",
    "autocorrelated": "consecutive inferences are dependent: the row is worth `n_eff` independent ones (its "
                      "intervals account for it, or are not given); says how long a run would give one, and when "
                      "a slower wander (the medians of consecutive tenths) exceeds what the intervals allow for",
    "warmup_short": "latency was still falling when measuring began: more warm-up",
    "clock_changed": "the GPU (SM) clock moved inside the window",
    "throttle": "NVML clock-event reasons were active (named; `sync_boost` and `display_clock_setting` do not "
                "count), or the board counted over-current events during the phase (`oc_events`, Orin and Thor)",
    "start_skew": "the models of a together phase began more than one of the row's median inferences apart",
    "short_window": "the together window was shorter than asked",
    "repeat_spread": "the repeats of one model, mode and phase disagree by more than the threshold",
    "cooldown_timeout": "the phase began above `timing.cooldown.temp_c`: its cooldown gave up after `timeout_s` "
                        "(the row's `cooldown_temp_c` says how hot)",
    "telemetry_coarse": "the window is shorter than the period an averaged telemetry reading covers (NVML's "
                        "1-s power): that quantity has no value in the window",
    "foreign_load": "the machine was shared during the window: other processes' CPU time, another trb run, or "
                    "another process on the experiment's GPU (each named)",
    "dla_idle": "a model built for a DLA core (`options.dla_core`) ran while tegrastats saw that core off in "
                "every reading of the window: its inferences ran elsewhere",
}


def _thresholds_with_comments() -> List[Tuple[str, object, str]]:
    from trt_ray_bench.results.diagnose import THRESHOLDS

    src = (PKG / "results" / "diagnose.py").read_text(encoding="utf-8")
    start = src.index("THRESHOLDS")
    body = src[start:src.index("\n}\n", start)]
    comments: Dict[str, str] = {}
    block: List[str] = []
    for line in body.splitlines()[1:]:
        s = line.strip()
        if s.startswith("#"):
            block.append(s[1:].strip())
            continue
        m = re.match(r"[\"']([a-z0-9_]+)[\"']\s*:", s)
        if m:
            comments[m.group(1)] = " ".join(block) if block else comments.get("_last", "")
            if block:
                comments["_last"] = " ".join(block)
            block = []
    return [(k, v, comments.get(k, "")) for k, v in THRESHOLDS.items()]


def diagnostics_page() -> str:
    from trt_ray_bench.results.diagnose import CODES

    _check_cover("diagnostic codes", CODES, DIAGNOSTIC_TEXT)
    out = ["# Diagnostics\n", GENERATED_NOTE,
           "Every ok row of `runs` carries `diagnostics`, a list of `{code, message}` that a careful engineer "
           "would raise about it; the messages are also in `warnings`, which `trb run` prints, and in the "
           "report. Each latency is the host latency of the row's measured (in-window) inferences. Trees "
           "written before a diagnostic existed get it computed on load. "
           "How to act on each: [troubleshooting](../troubleshooting.md#diagnostics).\n",
           _table(["code", "fires when"], [[_code(c), DIAGNOSTIC_TEXT[c]] for c in CODES]), "",
           "## Thresholds\n",
           "`trt_ray_bench.results.diagnose.THRESHOLDS`, with the code's own words:\n",
           _table(["key", "value", "meaning"],
                  [[_code(k), _code(v), c] for k, v, c in _thresholds_with_comments()]), ""]
    return "\n".join(out)


# ====================================================================== environment
#: every environment variable the package reads (or sets for its children), by name
ENV_TEXT: Dict[str, str] = {
    "TRB_CACHE_DIR": "where exported and converted models and built engines are kept (default "
                     "`~/.cache/trt_ray_bench`); a sweep installs a board kind's files into each node's",
    "TRB_CUDA": "the CUDA binding: `auto` (default: cuda-python, else pycuda), `cuda-python` or `pycuda`",
    "TRB_JOURNAL_DIR": "the node's journal of machine changes (default `/var/tmp/trt_ray_bench/journal`)",
    "TRB_GPU_LOCK_DIR": "the per-GPU lease files (default `/tmp/trb-gpu-locks`, shared by every user of the machine)",
    "TRB_MPS_DIR": "pipe and log folders of a per-GPU MPS daemon (default `/tmp/trb-mps`)",
    "TRB_GPU_SOURCE": "list the machine's GPUs from `nvml` or `nvidia-smi` only (default: NVML, else nvidia-smi)",
    "TRB_SUDO": "`always`: run the machine controls through `sudo -n` even as root (default `auto`: only when not root)",
    "TRB_ROOT": "read the system's files (`/etc/nv_tegra_release`, `/etc/nvpmodel.conf`, ...) under this folder "
                "instead of `/` (for tests and for diagnosing a copied board image)",
    "TRB_SYSFS_ROOT": "read the GPU's devfreq node, the thermal zones (`timing.cooldown`) and the over-current "
                      "counters (`oc_events`) under this folder (default: `TRB_ROOT`, else `/`)",
    "CUDA_VISIBLE_DEVICES": "the GPUs a node offers (indices or `GPU-` UUIDs, as CUDA reads them; MIG instances "
                            "are refused); trb sets it to the leased GPU's UUID for the experiment's processes",
    "CUDA_DEVICE_ORDER": "set to `PCI_BUS_ID` for the experiment's processes, so CUDA numbers GPUs as nvidia-smi does",
    "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "set to `1` for the experiment's processes, so Ray leaves "
                                                   "their `CUDA_VISIBLE_DEVICES` alone",
    "CUDA_MPS_PIPE_DIRECTORY": "the MPS daemon's pipe folder; set for the clients of a per-GPU daemon",
    "CUDA_MPS_LOG_DIRECTORY": "the MPS daemon's log folder",
    "RAY_AUTH_MODE": "set to `token` for the nodes and clients of a cluster with token authentication (Ray 2.52+)",
    "RAY_AUTH_TOKEN_PATH": "the cluster's token file (default `~/.ray/auth_token`); `--token-file` overrides it",
    "RAY_AUTH_TOKEN": "a token given by value: cleared where trb hands Ray the token as a file",
    "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL": "Ray's own: how closely the Python of a node must match the head's "
                                              "(`patch` by default, `minor`); `trb node start` checks the same",
    "YOLO_VERBOSE": "set to `False` (where unset) while exporting, to quiet Ultralytics",
    "TRB_LOG_DIR": "where an internal error's traceback is written (default: `logs/` in the cache folder, "
                   "`$TRB_CACHE_DIR` or `~/.cache/trt_ray_bench`)",
    "TMPDIR": "where an internal error's traceback goes when the log folder cannot be written (default `/tmp`)",
    "TRB_PROGRESS": "`0` (or `no`, `off`, `false`): no live progress line on a terminal, plain lines only",
    "TERM": "`dumb`: no live progress line",
    "COLUMNS": "the width `trb run` fits its table to (default: the terminal's; a pipe gets the whole table)",
    "PATH": "where `nvidia-smi`, `tegrastats`, `jetson_clocks`, `nvpmodel` and `ray` are found; the node's "
            "Monitor gets the driver's",
}

#: read by the test suite only (the contributors' [testing](../contributing/testing.md) page)
TEST_ENV_TEXT: Dict[str, str] = {
    "TRB_TEST_CACHE": "keep the suite's model exports in this folder between runs",
    "TRB_TEST_NEED_EXPORTS": "a missing export fails instead of skipping (CI's Python 3.8 run, which cannot export)",
    "TRB_OTHER_RAY_BIN": "the `ray` of another generation's venv, for the mixed-generation join test",
    "TRB_UPDATE_GOLDEN": "rewrite tests/data/golden (what `trb compare` and `trb report` print for tests/data) "
                         "from today's output, after a change meant to change it",
    "TRB_STANDIN_*": "steer the stand-in tools (`nvidia-smi`, `tegrastats`, `sudo`, ...) the tests put on `PATH`",
}

_ENV_NAME = re.compile(r"^(TRB_[A-Z0-9_]+|CUDA_[A-Z_]+|RAY_[A-Z_]+|YOLO_[A-Z_]+|PATH)$")


def env_names(folder: Path = PKG) -> Dict[str, List[str]]:
    """Every environment variable named in the code under ``folder``: string constants that
    look like one (``TRB_*``, ``CUDA_*``, ``RAY_*``) and the keys of ``os.environ`` reads.
    Name -> the modules that name it."""
    found: Dict[str, List[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = str(path.relative_to(ROOT))
        consts = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for t in node.targets:
                    if isinstance(t, ast.Name) and isinstance(node.value.value, str):
                        consts[t.id] = node.value.value
        for node in ast.walk(tree):
            names: List[str] = []
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENV_NAME.match(node.value):
                if node.value.startswith("TRB_") or node.value in ENV_TEXT or node.value in TEST_ENV_TEXT:
                    names.append(node.value)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop"):
                base = node.func.value
                if (isinstance(base, ast.Attribute) and base.attr == "environ") and node.args:
                    a = node.args[0]
                    if isinstance(a, ast.Constant) and isinstance(a.value, str):
                        names.append(a.value)
                    elif isinstance(a, ast.Name) and a.id in consts:
                        names.append(consts[a.id])
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
                s = node.slice
                if isinstance(s, ast.Constant) and isinstance(s.value, str):
                    names.append(s.value)
            for n in names:
                found.setdefault(n, [])
                if rel not in found[n]:
                    found[n].append(rel)
    # a docstring mention (``TRB_CUDA=auto``) is a constant too, but not of the whole string
    for path in sorted(folder.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        for n in re.findall(r"\bTRB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")):
            found.setdefault(n, [])
            if rel not in found[n]:
                found[n].append(rel)
    return found


def environment_page() -> str:
    names = env_names()
    # environ keys the package reads whatever their name (os.environ[k] over a loop) are
    # named in its constants; the table must cover every TRB_ one and every one it reads
    have = set(names)
    missing = sorted(n for n in have if n not in ENV_TEXT)
    stale = sorted(n for n in ENV_TEXT if n not in have)
    if missing or stale:
        raise MissingText("; ".join(filter(None, [
            f"environment variables without words (ENV_TEXT in docs/hooks/reference.py): {', '.join(missing)}"
            if missing else "",
            f"ENV_TEXT names variables the code no longer reads: {', '.join(stale)}" if stale else ""])))
    tests = env_names(ROOT / "tests")
    test_names = sorted({("TRB_STANDIN_*" if n.startswith("TRB_STANDIN_") else n) for n in tests
                         if n.startswith("TRB_") and n not in ENV_TEXT})
    _check_cover("test-only environment variables", test_names, TEST_ENV_TEXT)
    trb = sorted(n for n in names if n.startswith("TRB_"))
    other = sorted(n for n in names if not n.startswith("TRB_"))
    rows = lambda ns: [[_code(n), ENV_TEXT[n], ", ".join(_code(m.replace("trt_ray_bench/", "")) for m in names[n])]
                       for n in ns]
    return "\n".join([
        "# Environment variables\n", GENERATED_NOTE,
        "Every environment variable trt_ray_bench reads, or sets for the processes it starts. The node's "
        "Monitor (which applies the machine controls) runs with the driver's values of `PATH` and of the "
        "`TRB_*` control variables, whatever environment the node's Ray was started with.\n",
        "## trt_ray_bench's own\n", _table(["variable", "what", "read in"], rows(trb)), "",
        "## CUDA's, Ray's and others\n", _table(["variable", "what", "read or set in"], rows(other)), "",
        "## The test suite's\n",
        "Read by `tests/` only (see [testing](../contributing/testing.md)).\n",
        _table(["variable", "what"], [[_code(n), TEST_ENV_TEXT[n]] for n in test_names]), ""])


# ====================================================================== exit codes
#: what ``trb`` returns where the code declares no table of its own (``main`` in cli.py
#: and ``interrupt.Stopped.exit_code``); replaced by the code's own table once it has one
_EXIT_FALLBACK = [
    ("0", "success (for `trb run` / `trb sweep`: every model or point measured ok)"),
    ("1", "`trb run`: a model failed (its row is `status: failed`, the reason in `error`); `trb sweep`: a point "
          "failed after its retries"),
    ("2", "a mistake in the input (spec, file, flag, a missing or broken library, a machine that cannot do what "
          "the spec asks): one line `trb: error: ...`, nothing measured, nothing written, the machine unchanged; "
          "also argparse's own usage errors"),
    ("128 + N", "stopped by signal N (SIGINT 130, SIGTERM 143, SIGHUP 129): the machine restored, what was "
                "measured written, the rest `status: interrupted`"),
    ("130", "Ctrl-C outside a run"),
]


def exit_codes() -> Tuple[List[Tuple[str, str, str]], str]:
    """(code, name, meaning) rows and where they come from: an ``IntEnum`` whose name
    says exit (``ExitCode``), ``EXIT_*`` constants, or an ``EXIT_CODES`` mapping, in
    ``trt_ray_bench.errors`` or ``trt_ray_bench.cli``, with their comments or docstrings;
    else the behaviour of ``cli.main`` as it stands."""
    import enum
    import importlib

    for modname in ("trt_ray_bench.errors", "trt_ray_bench.cli"):
        mod = importlib.import_module(modname)
        src = inspect.getsource(mod)
        comments = _member_comments(src)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, enum.IntEnum) and "exit" in name.lower() \
                    and obj.__module__ == modname:
                rows = []
                for member in obj:
                    doc = comments.get(member.name) or (member.__doc__ if member.__doc__ != obj.__doc__ else "") or ""
                    rows.append((str(int(member)), member.name, doc))
                return rows, f"`{modname}.{name}`"
        table = getattr(mod, "EXIT_CODES", None)
        if isinstance(table, dict) and table:
            table = list(table.items())
        if isinstance(table, (list, tuple)) and table and all(len(r) == 2 for r in table):
            return [(str(k), "", str(v)) for k, v in table], f"`{modname}.EXIT_CODES`"
        consts = [(n, v) for n, v in vars(mod).items() if n.startswith("EXIT_") and isinstance(v, int)]
        if consts:
            return ([(str(v), n, comments.get(n, "")) for n, v in sorted(consts, key=lambda x: x[1])],
                    f"the `EXIT_*` constants of `{modname}`")
    return [(c, "", m) for c, m in _EXIT_FALLBACK], "`trt_ray_bench.cli.main`"


def _member_comments(src: str) -> Dict[str, str]:
    """NAME -> the ``#:`` / ``#`` comment on the lines before ``NAME = ...`` or on its line."""
    out: Dict[str, str] = {}
    block: List[str] = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("#"):
            block.append(s.lstrip("#:").strip())
            continue
        m = re.match(r"([A-Z][A-Z0-9_]*)\s*(?::[^=]+)?=", s)
        if m:
            tail = s.split("#", 1)[1].strip() if "#" in s else ""
            out[m.group(1)] = " ".join(block + ([tail] if tail else []))
        block = []
    return out


def exit_codes_page() -> str:
    rows, where = exit_codes()
    has_names = any(n for _, n, _ in rows)
    header = ["code", "name", "meaning"] if has_names else ["code", "meaning"]
    body = [[_code(c), _code(n), m] if has_names else [_code(c), m] for c, n, m in rows]
    return "\n".join([
        "# Exit codes\n", GENERATED_NOTE,
        f"What `trb` returns, from {where}. Scripts and CI can tell a measurement that failed from a mistake in "
        "its input, and a run someone stopped from both.\n",
        _table(header, body), "",
        "A mistake in the input is always one line on stderr, `trb: error: WHERE: WHAT`, where WHERE names the "
        "file and field (`spec.yaml: models[0].imgsz`), the flag (`--output`) or the library "
        "(`tensorrt`). Every such line the code can print: [refusals](messages.md).\n"])


# ====================================================================== refusals and FIX lines
def _template(node: ast.AST) -> Optional[str]:
    """A message expression as text: f-string holes as ``<name>``; None where it is not a string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(str(v.value))
            elif isinstance(v, ast.FormattedValue):
                out.append(f"<{_hole(v.value)}>")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _template(node.left), _template(node.right)
        if a is not None or b is not None:
            return (a or "<…>") + (b or "<…>")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _template(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
        return "<…>"
    if isinstance(node, ast.IfExp):
        a, b = _template(node.body), _template(node.orelse)
        return a if a is not None else b
    return None


def _hole(expr: ast.AST) -> str:
    if isinstance(expr, ast.Name):
        return expr.id.strip("_")
    if isinstance(expr, ast.Attribute):
        return expr.attr.strip("_")
    if isinstance(expr, ast.Subscript):
        s = expr.slice
        if isinstance(s, ast.Constant):
            return str(s.value)
        return _hole(expr.value)
    if isinstance(expr, ast.Call):
        return _hole(expr.func)
    return "…"


_ERROR_TYPES = {"UserError", "MissingExtra", "BrokenExtra"}


def refusals() -> Dict[str, List[Tuple[str, str]]]:
    """Module -> (where, message) of every ``UserError`` (or subclass) the package raises,
    as templates: ``<name>`` marks what the message fills in."""
    out: Dict[str, List[Tuple[str, str]]] = {}
    subclasses = set(_ERROR_TYPES)
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id in subclasses
                                                      for b in node.bases):
                subclasses.add(node.name)
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(PKG)).replace(".py", "").replace("/", ".")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = []
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name == "ValueError" and rel.startswith("spec."):
                # the spec's validators: pydantic turns them into the same one line
                msg = _template(node.args[0]) if node.args else None
                if msg is not None:
                    found.append((node.lineno, "<field>", msg))
                continue
            if name not in subclasses or name in ("MissingExtra", "BrokenExtra"):
                continue
            if len(node.args) >= 2:
                where, msg = _template(node.args[0]), _template(node.args[1])
            elif len(node.args) == 1:
                where, msg = "", _template(node.args[0])
            else:
                continue
            if msg is None:
                continue
            found.append((node.lineno, where or "", msg))
        if found:
            seen = set()
            rows = []
            for _, w, m in sorted(found):
                if (w, m) not in seen:
                    seen.add((w, m))
                    rows.append((w, m))
            out[rel] = rows
    return out


def fix_lines() -> List[Tuple[str, str]]:
    """(module, template) of every ``FIX:`` line ``trb doctor`` can print."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = str(path.relative_to(PKG))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if isinstance(node, (ast.JoinedStr, ast.Constant)) and id(node) not in parts:
                t = _template(node)
                if t and t.startswith("FIX:") and len(t) > 4:
                    out.append((rel, t))
    return sorted(set(out), key=lambda x: (x[0], x[1]))


def fix_key(template: str) -> str:
    """The longest fixed stretch of a FIX line (what the troubleshooting page must quote)."""
    parts = re.split(r"<[^>]*>", template[len("FIX:"):])
    return max((p.strip(" :;,.()") for p in parts), key=len)


def messages_page() -> str:
    ref = refusals()
    n = sum(len(v) for v in ref.values())
    out = ["# Refusals: every one-line error\n", GENERATED_NOTE,
           f"The {n} messages `trb` can refuse with, by the module that raises them. Each is printed as "
           "`trb: error: WHERE: WHAT` and exits 2 (`<name>` marks what the message fills in: a field, a file, "
           "a value). Search this page for the words of your error; the [troubleshooting](../troubleshooting.md) "
           "page explains the common ones. A library that is missing prints `<module>: not installed; <what> "
           "needs it: pip install 'trt_ray_bench[<extra>]'` (on a Jetson: JetPack's package); one that is "
           "installed but cannot load prints `installed but cannot be imported (<the error>) ... Fix: ...`.\n"]
    for mod, rows in ref.items():
        out.append(f"## {mod}\n")
        out.append(_table(["where", "message"], [[_code(w) if w else "", m] for w, m in rows]))
        out.append("")
    out.append("## trb doctor's FIX lines\n")
    out.append(_table(["module", "line"], [[_code(m), t] for m, t in fix_lines()]))
    out.append("")
    return "\n".join(out)


# ====================================================================== module index
def modules_page() -> str:
    """Every module of the package with the first sentence of its docstring."""
    rows = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = doc.strip().split("\n\n")[0].replace("\n", " ")
        rows.append([_code(f"trt_ray_bench/{rel}"), first])
    return "\n".join(["# Module index\n", GENERATED_NOTE,
                      "Every module of the package, with the first paragraph of its docstring: a file's name "
                      "says its one concern (see [architecture](architecture.md)).\n",
                      _table(["module", "what it owns"], rows), ""])


# ====================================================================== the pages and the hook
PAGES = {
    "reference/cli.md": cli_page,
    "reference/spec.md": spec_page,
    "reference/experiment.schema.json": spec_schema_json,
    "reference/results.md": results_page,
    "reference/diagnostics.md": diagnostics_page,
    "reference/environment.md": environment_page,
    "reference/exit-codes.md": exit_codes_page,
    "reference/messages.md": messages_page,
    "contributing/modules.md": modules_page,
}


def _examples_files() -> Dict[str, str]:
    """examples/NN_name/* as pages and files of the site (examples/NN_name/README.md is
    that folder's page), and the repository's CHANGELOG.md as changelog.md."""
    out: Dict[str, str] = {}
    ex = ROOT / "examples"
    for folder in sorted(p for p in ex.iterdir() if p.is_dir() and re.match(r"\d\d_", p.name)):
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix in (".md", ".yaml", ".yml", ".py"):
                # the READMEs link into docs/ as the repository lays it out; on the site
                # the examples sit beside the docs' pages
                out[f"examples/{folder.name}/{f.name}"] = f.read_text(encoding="utf-8").replace("](../../docs/", "](../../")
    if (ex / "README.md").is_file():
        out["examples/README.md"] = (ex / "README.md").read_text(encoding="utf-8").replace("](../docs/", "](../")
    out["changelog.md"] = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return out


def on_files(files, config):  # mkdocs hook
    from mkdocs.structure.files import File

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    for uri, text in _examples_files().items():
        files.append(File.generated(config, uri, content=text))
    return files
