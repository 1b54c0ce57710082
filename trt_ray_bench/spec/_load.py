"""YAML to a validated spec, with ``--set a.b=c`` overrides; errors name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, List, Union

import yaml
from pydantic import ValidationError

from ..errors import UserError
from ._model import ExperimentSpec


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: dict) -> str:
    kind, msg = err.get("type", ""), err.get("msg", "")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README for the fields)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "input" in err and kind not in ("missing",) and not isinstance(err["input"], (dict, list)):
        return f"{msg} (got {err['input']!r})"
    return msg


def format_validation_error(exc: ValidationError, source: str) -> UserError:
    errors = exc.errors()
    first = errors[0]
    where = _loc(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return UserError(f"{source}: {where}" if where else source, _message(first) + more)


def apply_overrides(data: dict, overrides: Iterable[str], source: str = "--set") -> dict:
    """``timing.iterations=50``, ``models.0.batch=2``, ``models.*.backend=onnxruntime``.

    Values are parsed as YAML scalars/flow collections (``50`` -> int, ``[1,2]`` -> list).
    """
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UserError(source, f"{item!r}: expected KEY=VALUE, e.g. timing.iterations=50")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        if not all(parts):
            raise UserError(source, f"{key!r}: empty path component")
        _set(data, parts, value, key, source)
    return data


def _set(node: Any, parts: List[str], value: Any, key: str, source: str) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if head == "*":
            targets = list(range(len(node)))
        elif head.lstrip("-").isdigit() and -len(node) <= int(head) < len(node):
            targets = [int(head)]
        else:
            raise UserError(source, f"{key}: {head!r} is not an index of a list of {len(node)}")
        for i in targets:
            if rest:
                _set(node[i], rest, value, key, source)
            else:
                node[i] = value
        return
    if not isinstance(node, dict):
        raise UserError(source, f"{key}: cannot set {head!r} inside a {type(node).__name__}")
    if not rest:
        node[head] = value
        return
    child = node.setdefault(head, {})
    if child is None:
        child = node[head] = {}
    _set(child, rest, value, key, source)


def load_spec(path: Union[str, Path], overrides: Iterable[str] = ()) -> ExperimentSpec:
    """Read and validate an experiment YAML; raises ``UserError`` naming file and field."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(source, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UserError(source, f"cannot read the spec ({exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(source, f"{line}{problem}") from None
    if not isinstance(data, dict):
        raise UserError(source, "expected a mapping of fields (name, models, timing, ...)")
    data = apply_overrides(data, overrides)
    return spec_from_dict(data, source)


def spec_from_dict(data: dict, source: str = "spec") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None


def spec_to_yaml(spec: ExperimentSpec) -> str:
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
