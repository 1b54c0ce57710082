"""Sweep specs: one experiment spec (``base``) and axes of values, expanded into points.

The file is validated by a pydantic model (``SweepSpec``), as the experiment spec is, its
errors in the same one line (``file: field: message``). A point is the base with one
value of each axis applied (``apply_overrides``) and validated; every point is validated
here, before anything runs. See README "Sweeps"."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictInt, TypeAdapter,
                      ValidationError, WithJsonSchema, field_validator, model_validator)
from typing_extensions import Annotated, Literal, TypedDict

from ..errors import UserError
from ._load import apply_overrides, format_validation_error, read_yaml_file, spec_from_dict, spec_to_yaml
from ._model import ExperimentSpec

def slug(name: str) -> str:
    """A board kind as nodes advertise it (``trb_board_<kind>``) and a sweep's ``nodes:
    {board: ...}`` selects it: ``NVIDIA Jetson AGX Orin Developer Kit`` ->
    ``nvidia_jetson_agx_orin_developer_kit``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


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


def _kinds(v: Any) -> List[str]:
    kinds = [v] if isinstance(v, str) else v
    if not (isinstance(kinds, list) and kinds and all(isinstance(k, str) and slug(k) for k in kinds)):
        raise ValueError("expected a board kind or a list of them")
    return sorted({slug(k) for k in kinds})


class BoardSelector(TypedDict):
    """nodes: {board: KIND} or {board: [KIND, ...]}: every alive node of those kinds."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    board: Annotated[List[str], BeforeValidator(_kinds), WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
        "description": "a board kind as `trb node start --board` names it (slugged), or a list of them"})]


_BOARD = TypeAdapter(BoardSelector)


def _values(v: Any) -> Any:
    if not isinstance(v, list) or not v:
        raise ValueError("expected a non-empty list of values")
    return v


def _assignment(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        raise ValueError("expected a mapping of field -> value")
    return v


def _mapping(v: Any) -> Any:
    if not isinstance(v, dict):
        raise ValueError("expected an experiment spec (a mapping)")
    return v


#: ``search.until``: ``<runs column> <op> <number or runs column>``
_UNTIL = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(<=|<|>=|>)\s*([a-z][a-z0-9_]*|[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


class SearchSpec(BaseModel):
    """The highest rate that meets a criterion, by bisection: each model alone, then all
    models together at the ratio of their own ``timing.rate_hz``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    field: Literal["timing.rate_hz"] = Field("timing.rate_hz", description="the field searched: timing.rate_hz "
                                             "(frames per second of an open loop)")
    until: str = Field("p99_from_arrival_ms <= deadline_ms", description="what a rate must meet, in every row "
                       "(each model, each repeat) of its probe: a runs column, <=, <, >= or >, and a number or "
                       "another runs column (e.g. deadline_miss <= 0.01 under backlog: drop)")
    low: float = Field(ge=1e-3, description="the lowest rate tried, Hz")
    high: float = Field(gt=0, le=1e6, description="the highest rate tried, Hz")
    resolution: float = Field(gt=0, description="stop when the bracket [meets, fails] is this narrow, Hz")
    repeats: StrictInt = Field(2, ge=1, description="repeats of every probe (its experiment's repeats); a rate "
                               "meets only if all of them do")
    together: bool = Field(True, description="also search the models together, their rates in the ratio of their "
                           "timing.rate_hz (the largest one is the rate searched)")

    @field_validator("until")
    @classmethod
    def _until(cls, v):
        if not _UNTIL.match(v):
            raise ValueError(f"{v!r}: expected COLUMN OP VALUE, e.g. 'p99_from_arrival_ms <= deadline_ms' "
                             "(OP: <=, <, >=, >; VALUE: a number or a runs column)")
        return v

    @model_validator(mode="after")
    def _bracket(self):
        if self.high <= self.low:
            raise ValueError(f"high {self.high:g} must be above low {self.low:g}")
        if self.resolution < (self.high - self.low) / 2 ** 20:  # a bisection of at most 20 steps
            floor = (self.high - self.low) / 2 ** 20
            raise ValueError(f"resolution {self.resolution:g} is finer than a 20-step bisection of "
                             f"[{self.low:g}, {self.high:g}] can reach: at least {floor:.3g}")
        return self

    def criterion(self):
        """(column, operator, number or column) of ``until``."""
        col, op, rhs = _UNTIL.match(self.until).groups()
        return col, op, (rhs if rhs[0].isalpha() else float(rhs))


class SweepSpec(BaseModel):
    """A sweep: one experiment spec (base, or base_file) and axes of values; each point of
    their product is one experiment, run one per GPU across the nodes."""

    # After ``sweep_from_dict``: ``base`` is the experiment spec (``base_file`` read),
    # ``name`` is set, and ``source`` names the file in errors.

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              title="trt_ray_bench sweep spec")

    name: Optional[str] = Field(None, description="names the results folder, results/<name>/<run_id>/ "
                                "(default: the base's name)")
    base: Optional[Annotated[Dict[str, Any], BeforeValidator(_mapping)]] = Field(
        None, description="an experiment spec, inline (its schema: `trb schema`)")
    base_file: Optional[str] = Field(None, description="or the experiment spec's file, relative to the sweep's")
    axes: Dict[str, Annotated[List[Any], BeforeValidator(_values)]] = Field(
        default_factory=dict, description="dotted spec fields (as --set) -> their values: every point of the "
        "cartesian product is one experiment")
    exclude: List[Annotated[Dict[str, Any], BeforeValidator(_assignment)]] = Field(
        default_factory=list, description="partial assignments (field -> value): every point they match is dropped")
    include: List[Annotated[Dict[str, Any], BeforeValidator(_assignment)]] = Field(
        default_factory=list, description="extra points, each applied to the base alone")
    #: ``"all"``, a list of node names (``trb_node_<name>``), or ``{"board": [kinds]}``
    #: (``trb_board_<kind>``, slugged: ``trb node start --board``)
    nodes: Union[Literal["all"], Annotated[List[str], Field(min_length=1)], BoardSelector] = Field(
        "all", description="all: every alive node with a trb_slot; a list of node names; or {board: KIND}")
    repeats: Optional[StrictInt] = Field(None, ge=1, description="sets every point's `repeats`")
    retries: StrictInt = Field(1, ge=0, description="a failed point is run again on another node this many times")
    output: Optional[str] = Field(None, description="results root (default: the base's `output`)")
    search: Optional[SearchSpec] = Field(None, description="instead of axes: the highest timing.rate_hz meeting "
                                         "`until`, per model alone and for the models together, by bisection "
                                         "(keys: field, until, low, high, resolution, repeats, together); run "
                                         "here, one probe after another")

    _source: str = PrivateAttr("sweep")

    @field_validator("exclude", "include", mode="before")
    @classmethod
    def _none_is_empty(cls, v):
        return [] if v is None else v

    @field_validator("axes", mode="before")
    @classmethod
    def _axes(cls, v):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("expected a mapping of field -> list of values")
        return {str(k): x for k, x in v.items()}

    @field_validator("nodes", mode="wrap")
    @classmethod
    def _nodes(cls, v, handler):
        """``all`` | [names] | {board: kind or [kinds]}: the shape picks the form, so an
        error names what is wrong in it (``nodes.board``), not every form it is not."""
        if isinstance(v, dict):
            return dict(_BOARD.validate_python(v))
        if v == "all" or (isinstance(v, list) and v and all(isinstance(n, str) for n in v)):
            return handler(v)
        raise ValueError("expected 'all', a list of node names or {board: KIND}")

    @model_validator(mode="after")
    def _one_base(self):
        if (self.base is None) == (self.base_file is None):
            raise ValueError("give exactly one of base (an experiment spec) or base_file (its path)")
        if self.search is not None and (self.axes or self.include or self.exclude):
            raise ValueError("search: a search finds its own rates; give search or axes / include / exclude, not both")
        return self

    @property
    def source(self) -> str:
        """The sweep's file (or what stands for it), as errors name it."""
        return self._source

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
    data = read_yaml_file(path, "the sweep")
    return sweep_from_dict(data, str(path), base_dir=path.parent)


def sweep_from_dict(data: Any, source: str = "sweep", base_dir: Union[str, Path] = ".") -> SweepSpec:
    """Validate a sweep (``SweepSpec``, errors in one line as the experiment spec's:
    ``source: field: message``), read its ``base_file``, and name it."""
    if not isinstance(data, dict):
        raise UserError(source, "expected a mapping (base or base_file, axes, nodes, ...)")
    try:
        sweep = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None
    base = sweep.base
    if base is None:
        bpath = Path(base_dir) / str(sweep.base_file)
        base = read_yaml_file(bpath, "the base spec", f"{source}: base_file: {bpath}")
        if not isinstance(base, dict):
            raise UserError(f"{source}: base_file", f"{bpath}: expected an experiment spec (a mapping)")
    base = dict(base)
    if sweep.output is not None:
        base["output"] = sweep.output
    name = sweep.name or base.get("name")
    if not name:
        raise UserError(f"{source}: name", "give the sweep a name (or the base spec one)")
    out = sweep.model_copy(update={"base": base, "name": str(name)})
    out._source = source
    return out


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
