"""YAML to a validated spec, with ``--set a.b=c`` overrides; errors name the field.

Every user-facing spec error is one line, ``file: field: message``: pydantic's errors go
through ``format_validation_error`` (the experiment spec and the sweep spec alike), YAML
through ``read_yaml`` (a syntax error with its line; a document nested deeper than
``MAX_DEPTH``, which would exhaust Python's recursion, refused before it is built)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, List, Optional, Union

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
    """The first error, in one line (``source: field: message (and N more)``); an unknown
    key first where there is one: a misspelt key is also a missing one, and the unknown
    spelling is what to fix."""
    errors = exc.errors()
    first = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
    where = _loc(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return UserError(f"{source}: {where}" if where else source, _message(first) + more)


#: how deep a spec's collections may nest (a real spec: under 10; PyYAML's composer and
#: pydantic recurse once per level, and a few hundred levels exhaust Python's stack)
MAX_DEPTH = 50


def _too_deep(text: str) -> bool:
    """Whether the YAML nests collections deeper than ``MAX_DEPTH``, read from the
    parser's events (which do not recurse), before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return False


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    line = f"line {mark.line + 1}: " if mark is not None else ""
    return f"{line}{getattr(exc, 'problem', None) or 'invalid YAML'}"


#: the most values a document may stand for once its aliases are expanded (a spec has hundreds)
MAX_EXPANDED = 100_000


def _graph_problem(text: str) -> Optional[str]:
    """A mapping that gives one key twice (YAML keeps the last, silently dropping the
    first: ``timing:`` twice), or aliases that expand past ``MAX_EXPANDED`` values (a
    few hundred bytes can stand for billions), in words; None where neither."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sizes: dict = {}

    def walk(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # (a recursive alias counts once)
        n = 1
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise _Duplicate(f"line {k.start_mark.line + 1}: duplicate key {k.value!r} (YAML would keep "
                                         "only the last one)")
                    seen.add(k.value)
                n += walk(k) + walk(v)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(walk(v) for v in node.value)
        sizes[id(node)] = n
        return n

    try:
        if root is not None and walk(root) > MAX_EXPANDED:
            return f"its aliases expand to more than {MAX_EXPANDED} values"
    except _Duplicate as exc:
        return str(exc)
    return None


class _Duplicate(Exception):
    pass


def read_yaml(text: str, source: str) -> Any:
    """``text`` parsed (safe YAML); a syntax error, a document nested deeper than
    ``MAX_DEPTH``, a key given twice in one mapping or aliases that expand past
    ``MAX_EXPANDED`` values is a one-line ``UserError`` naming ``source``."""
    try:
        if _too_deep(text):
            raise UserError(source, f"nested too deeply (more than {MAX_DEPTH} levels)")
        problem = _graph_problem(text)
        if problem:
            raise UserError(source, problem)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(source, _yaml_error(exc)) from None


def read_yaml_file(path: Union[str, Path], what: str = "the spec", source: Optional[str] = None) -> Any:
    """A YAML file parsed (``read_yaml``); a missing or unreadable file is one line."""
    source = source or str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise UserError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(source, f"cannot read {what} ({exc.__class__.__name__})") from None
    return read_yaml(text, source)


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
            value = read_yaml(raw, f"{source} {key.strip()}") if raw != "" else None
        except UserError as exc:
            if "nested too deeply" in exc.message:
                raise
            value = raw  # not YAML: the text itself
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
    source = str(path)
    data = read_yaml_file(path, "the spec")
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
