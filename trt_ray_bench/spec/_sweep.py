"""Sweep specs: one experiment spec (``base``) and axes of values, expanded into points.

A point is the base with one value of each axis applied (``apply_overrides``) and
validated; every point is validated here, before anything runs. See README "Sweeps"."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from ..errors import UserError
from ._load import apply_overrides, spec_from_dict, spec_to_yaml
from ._model import ExperimentSpec

_KEYS = {"name", "base", "base_file", "axes", "exclude", "include", "nodes", "repeats", "retries", "output"}


@dataclass(frozen=True)
class SweepPoint:
    """One point: its axis values (``{"timing.gap_s": 0.05}``), the resolved spec, and
    its identity (a hash of the resolved spec and the node kind)."""

    index: int
    values: Dict[str, Any]
    spec: ExperimentSpec
    spec_yaml: str
    point_id: str

    @property
    def values_json(self) -> str:
        return json.dumps(self.values, sort_keys=True)

    def label(self) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in self.values.items()) or "(base)"


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict
    axes: Dict[str, List[Any]]
    exclude: List[Dict[str, Any]] = field(default_factory=list)
    include: List[Dict[str, Any]] = field(default_factory=list)
    #: ``"all"``, a list of node names (``trb_node_<name>``), or ``{"board": [kinds]}``
    #: (``trb_board_<kind>``, slugged: ``trb node start --board``)
    nodes: Union[str, List[str], Dict[str, List[str]]] = "all"
    repeats: Optional[int] = None
    retries: int = 1
    source: str = "sweep"

    @property
    def node_kind(self) -> str:
        """The node selector, in words: part of every point's identity."""
        if self.nodes == "all":
            return "all"
        if isinstance(self.nodes, dict):
            return "board:" + ",".join(sorted(self.nodes["board"]))
        return "names:" + ",".join(sorted(self.nodes))


def load_sweep(path: Union[str, Path]) -> SweepSpec:
    """Read a sweep YAML; raises a one-line ``UserError`` naming the file and field."""
    path = Path(path)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(source, f"cannot read the sweep ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise UserError(source, f"{line}{getattr(exc, 'problem', None) or 'invalid YAML'}") from None
    return sweep_from_dict(data, source, base_dir=path.parent)


def _assignments(value: Any, where: str, source: str) -> List[Dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, dict) and a for a in value):
        raise UserError(f"{source}: {where}", "expected a list of mappings of field -> value")
    return [dict(a) for a in value]


def sweep_from_dict(data: Any, source: str = "sweep", base_dir: Union[str, Path] = ".") -> SweepSpec:
    if not isinstance(data, dict):
        raise UserError(source, "expected a mapping (base or base_file, axes, nodes, ...)")
    extra = sorted(set(data) - _KEYS)
    if extra:
        raise UserError(f"{source}: {extra[0]}", f"unknown key (expected {', '.join(sorted(_KEYS))})")
    if ("base" in data) == ("base_file" in data):
        raise UserError(source, "give exactly one of base (an experiment spec) or base_file (its path)")
    if "base" in data:
        base = data["base"]
        if not isinstance(base, dict):
            raise UserError(f"{source}: base", "expected an experiment spec (a mapping)")
    else:
        bpath = Path(base_dir) / str(data["base_file"])
        try:
            base = yaml.safe_load(bpath.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{source}: base_file", f"{bpath}: cannot read it ({exc.__class__.__name__})") from None
        if not isinstance(base, dict):
            raise UserError(f"{source}: base_file", f"{bpath}: expected an experiment spec (a mapping)")
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise UserError(f"{source}: axes", "expected a mapping of field -> list of values")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise UserError(f"{source}: axes.{k}", "expected a non-empty list of values")
    nodes = _nodes(data.get("nodes", "all"), source)
    repeats, retries = data.get("repeats"), data.get("retries", 1)
    for key, v, lo in (("repeats", repeats, 1), ("retries", retries, 0)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
            raise UserError(f"{source}: {key}", f"expected an integer >= {lo} (got {v!r})")
    base = dict(base)
    if data.get("output") is not None:
        base["output"] = str(data["output"])
    name = data.get("name") or base.get("name")
    if not name:
        raise UserError(f"{source}: name", "give the sweep a name (or the base spec one)")
    return SweepSpec(name=str(name), base=base, axes={str(k): list(v) for k, v in axes.items()},
                     exclude=_assignments(data.get("exclude"), "exclude", source),
                     include=_assignments(data.get("include"), "include", source),
                     nodes=nodes, repeats=repeats, retries=retries, source=source)


def _nodes(nodes: Any, source: str):
    """``all`` | [names] | {board: kind or [kinds]} (kinds slugged as nodes advertise them)."""
    from ..control.platform import slug

    if isinstance(nodes, dict):
        extra = sorted(set(nodes) - {"board"})
        if extra:
            raise UserError(f"{source}: nodes.{extra[0]}", "unknown key (expected board)")
        kinds = nodes.get("board")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not (isinstance(kinds, list) and kinds and all(isinstance(k, str) and slug(k) for k in kinds)):
            raise UserError(f"{source}: nodes.board", f"expected a board kind or a list of them (got {kinds!r})")
        return {"board": sorted({slug(k) for k in kinds})}
    if not (nodes == "all" or (isinstance(nodes, list) and nodes and all(isinstance(n, str) for n in nodes))):
        raise UserError(f"{source}: nodes", f"expected 'all', a list of node names or {{board: KIND}} (got {nodes!r})")
    return nodes


def _matches(values: Dict[str, Any], partial: Dict[str, Any]) -> bool:
    return all(k in values and values[k] == v for k, v in partial.items())


def _resolve(sweep: SweepSpec, values: Dict[str, Any], where: str) -> ExperimentSpec:
    fixed = {"name": sweep.name}
    if sweep.repeats is not None:
        fixed["repeats"] = sweep.repeats
    items = {**values, **fixed}
    data = apply_overrides(sweep.base, [f"{k}={json.dumps(v)}" for k, v in items.items()], f"{sweep.source}: {where}")
    return spec_from_dict(data, f"{sweep.source}: {where}")


def _check_fields(sweep: SweepSpec) -> None:
    """An axis (or exclude/include key) naming no field of the spec: one line, naming it."""
    fields = dict.fromkeys(list(sweep.axes) + [k for a in sweep.exclude + sweep.include for k in a])
    for f in fields:
        probe = {f: (sweep.axes.get(f) or [None])[0]}
        try:
            _resolve(sweep, probe, f"axes.{f}")
        except UserError as exc:
            if "unknown key" in exc.message or "is not an index" in exc.message or "cannot set" in exc.message:
                raise UserError(f"{sweep.source}: axes.{f}", "not a field of the experiment spec "
                                f"({exc.where.split(': ', 1)[-1]}: {exc.message})") from None


def expand(sweep: SweepSpec) -> List[SweepPoint]:
    """Every point of the sweep, validated: the axes' cartesian product less ``exclude``
    (a partial assignment drops every point it matches), plus ``include`` (extra points,
    applied to the base alone). Raises ``UserError`` before anything runs."""
    _check_fields(sweep)
    keys = list(sweep.axes)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(sweep.axes[k] for k in keys))]
    combos = [c for c in combos if not any(_matches(c, e) for e in sweep.exclude)]
    for inc in sweep.include:
        if inc not in combos:
            combos.append(inc)
    if not combos:
        raise UserError(f"{sweep.source}: exclude", "excludes every point of the sweep; nothing to run")
    points, seen = [], {}
    for i, values in enumerate(combos):
        where = "point " + (", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()) or "(base)")
        spec = _resolve(sweep, values, where)
        text = spec_to_yaml(spec)
        pid = hashlib.sha256(f"{text}\nnode_kind: {sweep.node_kind}\n".encode()).hexdigest()[:16]
        if pid in seen:  # two assignments that resolve to the same experiment: run it once
            continue
        seen[pid] = i
        points.append(SweepPoint(index=len(points), values=values, spec=spec, spec_yaml=text, point_id=pid))
    return points
