"""Hypothesis strategies for Graylink's data: faults, fault timelines, random fault profiles,
system configurations (workloads, mitigations, knobs) and whole scenarios.

Theory of operation. Nothing here is written per fault kind. Every value is derived from the same
declarations the scenario loader checks: a fault's fields (``harness.faults.FAULT_KINDS``, read when
a strategy is built, so a kind registered later is drawn too), their types and their ``param(...)``
specs (bounds, choices, ``ref="node"``/``"az"``). Numbers come from a readable grid (at most a few
hundred steps between the bounds, so a drawn value is ``2.5``, not ``2.4999713``), and shrink towards
the bound nearest zero. Where a declaration gives no bound, one is derived:

- a configuration knob ranges over [value / 2, value * 2] of its value in the base scenario (a
  workload stays a workload of that size; a mix of ratios stays a mix), within its declared bounds;
- a fault field declared with both bounds ranges over them (a probability over [0, 1]), unless it
  has a non-zero default and a wide range: then [default / 4, default * 4], within the bounds;
- otherwise its unit, read from its name, sets the span: ``*_s`` the run's fault phase, ``*_ms``
  5000, ``*_ppm`` 100000, ``*_per_minute`` 6, ``*_bytes`` 4096, probabilities and ratios 1;
- ``FaultSpace.bounds`` (``{"clock_drift.drift_ppm": (-50000, 50000)}``: ``kind.field``,
  ``random_faults.field`` or a bare field name) overrides both. A system states the faults it is
  built to survive in an optional ``FUZZ_BOUNDS`` class attribute of the same shape (a lease
  tolerates so much clock drift, no more); ``FaultSpace.of`` reads it.
- ``FaultSpace.choices`` (``{"deploy.version": ("v1", "v2")}``) narrows any field to values,
  references included; a system may say the same in ``FUZZ_CHOICES``.

A fault field with a default keeps it about half the time (and shrinks to it): a drawn fault
varies a few of its parameters at a time. Node fields draw from the topology's nodes, from node
selectors (``leader(0)``), which the system resolves when the fault strikes, and from the
scenario's focus, one node or selector drawn once per scenario (``focus_target``), a third of the
time each, so that a scenario's faults often meet on one node; a topology node is drawn tier by
tier (its role first: three routers are as likely as nine storage nodes), with ``"*"`` as a tier
of its own where the loader allows it; a list of nodes is, as often as not, a role group
(``follower(0), follower(0, 1)``: all the followers of partition 0). A fault's optional
fields without a natural range (``bit_rot.path``, ``offset_bytes``) stay at their default (the seed
chooses), and a gray link's ``message_type`` is one of ``FaultSpace.message_types`` (the fuzzer
fills them from a baseline run) or None. Every drawn scenario is valid: ``scenario_to_yaml`` writes
it and ``parse_scenario`` reads the same scenario back (``valid_scenario``; ``tests/test_strategies.py``
checks).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from harness import faults as _faults
from harness.params import spec_of
from harness.scenario import Scenario
from harness.timeline import FaultProfile, ScheduledFault
from harness.world import NodeSpec, Topology

__all__ = [
    "FaultSpace", "Undrawable", "config_values", "default_selectors", "drawable_kinds",
    "fault_kinds", "fault_profiles", "focus_target",
    "fault_timelines", "faults", "node_targets", "scenarios", "scheduled_faults", "topologies",
    "topology_nodes",
    "valid_scenario", "workloads",
]

SearchStrategy = st.SearchStrategy

# Spans for fields that declare no bound and have no default to scale, by the unit in their name.
_UNIT_SPANS: tuple[tuple[str, float], ...] = (
    ("_per_minute", 6.0), ("_ppm", 100_000.0), ("_ms", 5000.0), ("_bytes", 4096.0),
    ("probability", 1.0), ("_ratio", 1.0), ("duty", 1.0),
)
_DEFAULT_SPAN = 100.0
# Values of references other than node and AZ, from the system class: ref → attribute whose keys
# are the allowed names (a ``deploy``'s ``version``).
SYSTEM_REFS: dict[str, str] = {"version": "VERSIONS"}
# Fields whose declarations give no values, with values from the system class (``deploy.roles``).
SYSTEM_CHOICES: dict[str, str] = {"roles": "DEPLOY_ROLES"}
# Fields that name something another fault creates: a rollback names an earlier deployment by the
# name it was given. A drawn name that names nothing yet is repaired away (see ``valid_scenario``).
FIELD_CHOICES: dict[str, tuple[Any, ...]] = {"deploy.name": ("", "deploy-1", "deploy-2"),
                                             "rollback.deployment": ("deploy-1", "deploy-2")}
# Harness-wide defaults for the random profile: a profile may draw many faults, so its rates and
# baseline loss stay moderate unless a system or the caller says otherwise.
PROFILE_BOUNDS: dict[str, tuple[float, float]] = {
    "random_faults.loss_probability": (0.0, 0.1),
}


# -- the space faults are drawn from ------------------------------------------------------------------
@dataclass(frozen=True)
class FaultSpace:
    """What faults may target and how large they may be.

    ``nodes`` and ``azs`` are names from the topology; ``selectors`` are node selectors the system
    resolves when the fault strikes (``leader(0)``); ``roles`` are the topology's roles (for a
    field named ``role``); ``message_types`` what a gray link's ``message_type`` may name.
    ``kinds`` limits the kinds drawn (YAML names or family names such as ``network``); None means
    every kind in ``FAULT_KINDS``. ``bounds`` overrides numeric ranges and ``choices`` the values of
    any field: ``"kind.field"``, ``"random_faults.field"`` or ``"field"`` → (low, high) or values.
    ``refs`` are the names other references take (``"version"`` → the system's versions).
    """

    nodes: tuple[str, ...]
    azs: tuple[str, ...]
    duration_s: float = 60.0
    selectors: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    message_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] | None = None
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # other refs: "version" → …
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # "kind.field" → values
    narrowed: frozenset[str] = frozenset()  # choices keys that narrow a field: never its "all" ()
    focus: bool = True  # node fields also draw the scenario's one focal node (``node_targets``)
    tiers: tuple[tuple[str, ...], ...] = ()  # the nodes by role (``node_targets``); () = one tier

    @classmethod
    def of(cls, scenario: Scenario, *, system_class: type | None = None,
           selectors: Sequence[str] | None = None, message_types: Sequence[str] = (),
           kinds: Sequence[str] | None = None,
           bounds: Mapping[str, tuple[float, float]] | None = None,
           choices: Mapping[str, Sequence[Any]] | None = None) -> FaultSpace:
        """The space of a scenario: its topology, its fault phase, its system's selectors,
        ``FUZZ_BOUNDS`` and ``FUZZ_CHOICES``; ``bounds`` and ``choices`` given here win over the
        system's. ``choices`` narrows a field to values (``{"deploy.version": ["v1", "v2"]}``),
        references included; a narrowed list field is never drawn empty (empty often means all)."""
        if system_class is None:
            from harness.system import resolve_system_class

            system_class = resolve_system_class(scenario.system.use)
        topology = scenario.topology
        merged = {**PROFILE_BOUNDS, **dict(getattr(system_class, "FUZZ_BOUNDS", {}) or {}),
                  **dict(bounds or {})}
        refs = {ref: tuple(getattr(system_class, attribute)) for ref, attribute in
                SYSTEM_REFS.items() if getattr(system_class, attribute, None)}
        values = dict(FIELD_CHOICES)
        for name, attribute in SYSTEM_CHOICES.items():
            if getattr(system_class, attribute, None):
                values[name] = tuple(getattr(system_class, attribute))
        narrowing = {**dict(getattr(system_class, "FUZZ_CHOICES", {}) or {}), **dict(choices or {})}
        values.update({name: tuple(items) for name, items in narrowing.items()})
        return cls(nodes=tuple(spec.name for spec in topology.nodes), azs=tuple(topology.azs()),
                   duration_s=scenario.duration_s,
                   selectors=tuple(default_selectors(system_class) if selectors is None
                                   else selectors),
                   roles=tuple(dict.fromkeys(spec.role for spec in topology.nodes)),
                   tiers=tuple(tuple(spec.name for spec in topology.nodes if spec.role == role)
                               for role in dict.fromkeys(spec.role for spec in topology.nodes)),
                   message_types=tuple(message_types),
                   kinds=None if kinds is None else tuple(kinds), bounds=merged, refs=refs,
                   choices=values, narrowed=frozenset(narrowing))

    def kind_names(self) -> tuple[str, ...]:
        """The kinds this space draws: those asked for (all by default) that can be drawn here."""
        return tuple(kind for kind in fault_kinds(self.kinds)
                     if _kind_strategy(self, kind) is not None)


def fault_kinds(names: Iterable[str] | None = None) -> tuple[str, ...]:
    """The kinds ``names`` means (kinds or family names), in ``FAULT_KINDS`` order; all if None.
    Read at call time: kinds registered after import are included."""
    registry = _faults.FAULT_KINDS
    if names is None:
        return tuple(registry)
    wanted = set(names)
    families = {cls.family for cls in registry.values()}
    unknown = sorted(wanted - set(registry) - families)
    if unknown:
        raise ValueError(f"unknown fault kind(s) or family(ies): {', '.join(unknown)}; kinds: "
                         f"{', '.join(registry)}; families: {', '.join(sorted(families))}")
    return tuple(kind for kind, cls in registry.items() if kind in wanted or cls.family in wanted)


def default_selectors(system_class: type | None, arguments: Sequence[str] = ("0", "0, 1")
                      ) -> list[str]:
    """``kind(argument)`` for each selector kind the system declares in ``NODE_SELECTORS``."""
    kinds = sorted(getattr(system_class, "NODE_SELECTORS", {}) or {})
    return [f"{kind}({argument})" for kind in kinds for argument in arguments]


def _role_groups(space: FaultSpace) -> list[tuple[str, ...]]:
    """Selectors of one kind and first argument, as a group: ``(follower(0), follower(0, 1))``,
    the followers of partition 0. A list of nodes is drawn as such a group as often as freely,
    so that a fault cuts a leader from *all* its followers often enough to matter."""
    groups: dict[str, list[str]] = {}
    for selector in space.selectors:
        kind, _, argument = selector.partition("(")
        groups.setdefault(f"{kind}({argument.split(',')[0].rstrip(')')}", []).append(selector)
    return [tuple(group) for group in groups.values() if len(group) > 1]


def node_targets(space: FaultSpace, *, wildcard: bool = False) -> SearchStrategy[str]:
    """A node a fault may name: as often a selector (shrinking to the first) as a node (or ``*``),
    and, with ``space.focus``, as often again the scenario's focus (``focus_target``).
    Selectors name roles (the leader, its followers), so faults drawn with them meet: a partition
    between ``leader(0)`` and ``follower(0)`` is drawn far more often than between two nodes that
    happen to be the leader and a follower of one partition. A node is drawn tier by tier
    (``topology_nodes``)."""
    groups = [st.sampled_from(list(space.selectors))] if space.selectors else []
    if space.nodes:
        groups.append(topology_nodes(space, wildcard=wildcard))
    if not groups:
        raise ValueError("the fault space names no node: the topology is empty")
    if space.focus:
        groups.append(focus_target(space))
    return st.one_of(groups)


def topology_nodes(space: FaultSpace, *, wildcard: bool = False) -> SearchStrategy[str]:
    """A node of the topology, its tier first (its role: every tier as likely as any other,
    whatever its size), then a node of it; with ``wildcard``, ``*`` (every node) is a tier of
    its own. The nine storage nodes of the reference cluster would otherwise crowd out its
    three routers: the client-facing path would be hit one time in five, not one in three."""
    tiers = [tuple(tier) for tier in space.tiers if tier] or [tuple(space.nodes)]
    if wildcard:
        tiers.append(("*",))
    # (a flatmap, not a one_of: Hypothesis flattens a one_of nested in another, which would give
    # each tier the weight of a selector in ``node_targets``)
    return st.sampled_from(tiers).flatmap(st.sampled_from)


def focus_target(space: FaultSpace) -> SearchStrategy[str]:
    """The scenario's focal node: a node or selector drawn once per test case (``st.shared``) that
    every node field of every fault of the case may also name. Failures need faults that meet:
    the leader whose clock drifts and that is then cut off, the node whose disk tears writes and
    that then crashes. Drawn independently, two node fields of a scenario name the same node about
    one time in thirteen (9 storage nodes and the reference system's 6 selectors); with a focus,
    about one time in six, while every field still ranges over every node."""
    everything = [st.sampled_from(list(space.selectors))] if space.selectors else []
    if space.nodes:
        everything.append(topology_nodes(space))
    return st.shared(st.one_of(everything),
                     key=f"graylink-focus:{','.join(space.selectors)}:{','.join(space.nodes)}")


# -- numbers ----------------------------------------------------------------------------------------
def _grid(low: float, high: float, *, integer: bool, exclusive_low: float | None = None
          ) -> SearchStrategy[Any]:
    """Readable numbers in [low, high]: integers, or multiples of a round step (>= 100 steps)."""
    if integer:
        low_i, high_i = math.ceil(low), math.floor(high)
        if exclusive_low is not None and low_i <= exclusive_low:
            low_i = math.floor(exclusive_low) + 1
        return st.integers(low_i, max(low_i, high_i))
    span = high - low
    if span <= 0:
        return st.just(float(low))
    step = 10.0 ** math.floor(math.log10(span / 100))
    digits = max(0, -math.floor(math.log10(step)))
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    if exclusive_low is not None and first * step <= exclusive_low + step / 2:
        first = math.floor(exclusive_low / step + 1e-9) + 1
    last = max(first, last)
    return st.integers(first, last).map(lambda i: float(round(i * step, digits)))


def _unit_span(name: str, duration_s: float | None) -> float:
    if name.endswith(("_s", "_s_min", "_s_max")):
        return duration_s if duration_s else 60.0
    for suffix, span in _UNIT_SPANS:
        if suffix in name:
            return span
    return _DEFAULT_SPAN


def _numeric_range(name: str, spec: Any, center: float | None, duration_s: float | None,
                   override: tuple[float, float] | None, *, knob: bool) -> tuple[float, float]:
    """The range a number is drawn from (see the module's docstring)."""
    if override is not None:
        return override
    declared_low, declared_high = spec.minimum, spec.maximum
    bounded = declared_low is not None and declared_high is not None
    if knob and center is not None and center != 0:
        low, high = sorted((center / 2, center * 2))
    elif center is not None and center != 0 and not (bounded and declared_high - declared_low <= 1):
        low, high = sorted((center / 4, center * 4))
    elif bounded:
        low, high = declared_low, declared_high
    else:
        span = _unit_span(name, duration_s)
        if declared_low is not None:
            low, high = declared_low, declared_low + span
        elif declared_high is not None:
            low, high = declared_high - span, declared_high
        else:
            low, high = -span, span
    if declared_low is not None:
        low = max(low, declared_low)
    if declared_high is not None:
        high = min(high, declared_high)
    if duration_s is not None and name.endswith("_s"):  # nothing outlasts the fault phase
        high = min(high, duration_s)
    return low, max(low, high)


# -- dataclass fields, generically --------------------------------------------------------------------
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_of(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _has_default(item: dataclasses.Field[Any]) -> bool:
    return item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


@dataclass(frozen=True)
class _Context:
    """Where a field is drawn: for a fault (``space``), a profile or a configuration."""

    space: FaultSpace | None
    prefix: str  # "crash", "random_faults" or "" (configuration)
    duration_s: float | None  # clips *_s fields of faults and profiles
    wildcards: tuple[str, ...] = ()
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class Undrawable(ValueError):
    """A field (so its fault kind) that cannot be drawn in this space, e.g. a deployment's version
    for a system that declares no versions."""


def _choices_for(space: FaultSpace | None, keys: tuple[str, ...], ref: str | None,
                 wildcard: bool) -> tuple[SearchStrategy[Any], int, bool] | None:
    """The values a field names (a strategy, how many there are, and whether they narrow it), or
    None if it names nothing: the space's ``choices``, nodes and selectors, AZs, or a system's
    names (``refs``)."""
    if space is None:
        return None
    for key in keys:
        if key in space.choices:
            values = list(space.choices[key])
            return ((st.sampled_from(values) if values else st.nothing()), len(values),
                    key in space.narrowed)
    if ref == "node":
        count = len(space.nodes) + len(space.selectors)
        return (node_targets(space, wildcard=wildcard) if count else st.nothing()), count, False
    if ref is not None:
        values = list(space.azs if ref == "az" else space.refs.get(ref, ()))
        return (st.sampled_from(values) if values else st.nothing()), len(values), False
    return None


def _field_strategy(cls: type, item: dataclasses.Field[Any], context: _Context,
                    base: Any = dataclasses.MISSING) -> SearchStrategy[Any]:
    """A strategy for one field of ``cls`` (``base``: the value it has now, for configurations)."""
    hint, nullable = _optional_of(_hints(cls)[item.name])
    spec = spec_of(item)
    name = item.name
    default = _default(item) if _has_default(item) else dataclasses.MISSING
    keys = (f"{context.prefix}.{name}", name) if context.prefix else (name,)
    space = context.space
    is_tuple = typing.get_origin(hint) is tuple
    choices = _choices_for(space, keys, spec.ref, name in context.wildcards)
    if choices is not None:
        if not choices[1]:  # the values it must name do not exist here (no versions declared)
            if default is not dataclasses.MISSING:
                return st.just(default)
            raise Undrawable(f"{cls.__name__}.{name}: nothing to name here (no {spec.ref or name})")
        values, count, narrowed = choices
        if is_tuple:
            required = default is dataclasses.MISSING or narrowed
            lists = st.lists(values, min_size=1 if required else 0, max_size=min(3, count),
                             unique=True).map(tuple)
            groups = _role_groups(space) if spec.ref == "node" and space is not None else []
            return st.one_of(lists, st.sampled_from(groups)) if groups else lists
        return values
    if base is not dataclasses.MISSING and spec.ref is not None:
        return st.just(base)  # a configuration's node reference stays as it is
    if is_tuple and default is not dataclasses.MISSING:
        return st.just(default)  # a list of values nothing above says how to draw
    if spec.choices is not None:
        return st.sampled_from(spec.choices)
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if hint is bool:
        return st.booleans()
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        inner = base if base is not dataclasses.MISSING else (
            default if default is not dataclasses.MISSING else None)
        if inner is None:
            return st.just(None)
        return config_values(inner, bounds=context.bounds)
    if hint in (int, float):
        if nullable and space is not None and name != "duration_s":
            return st.just(default if default is not dataclasses.MISSING else None)
        if nullable and base is not dataclasses.MISSING and base is None:
            return st.just(None)  # an optional knob that is off stays off
        center = base if base is not dataclasses.MISSING else (
            default if default is not dataclasses.MISSING else None)
        override = None
        for key in keys:
            if key in context.bounds:
                override = tuple(map(float, context.bounds[key]))
                break
        low, high = _numeric_range(name, spec, center if isinstance(center, (int, float))
                                   else None, context.duration_s, override,  # type: ignore[arg-type]
                                   knob=base is not dataclasses.MISSING)
        exclusive = spec.minimum if spec.exclusive_minimum else None
        numbers = _grid(low, high, integer=hint is int, exclusive_low=exclusive)
        return st.one_of(st.none(), numbers) if nullable else numbers
    if hint is str:
        if name == "message_type" and space is not None and space.message_types:
            return st.one_of(st.none(), st.sampled_from(space.message_types)) if nullable \
                else st.sampled_from(space.message_types)
        if name in ("role", "roles") and space is not None and space.roles:
            return st.sampled_from(space.roles)
        if default is not dataclasses.MISSING:
            return st.just(default)
        if base is not dataclasses.MISSING:
            return st.just(base)
    if default is not dataclasses.MISSING:
        return st.just(default)  # e.g. an optional path: the seed chooses
    if base is not dataclasses.MISSING:
        return st.just(base)
    raise Undrawable(f"cannot draw {cls.__name__}.{name} ({hint}): declare choices, bounds or a "
                     f"default with param(...), or give FaultSpace.choices a value for it")


def _fix_pairs(instance: Any) -> Any:
    """Order every ``x_min``/``x_max`` pair, as the loader demands."""
    changes: dict[str, Any] = {}
    names = {item.name for item in dataclasses.fields(instance)}
    for low_name in names:
        if not low_name.endswith("_min") or low_name[:-4] + "_max" not in names:
            continue
        high_name = low_name[:-4] + "_max"
        low, high = getattr(instance, low_name), getattr(instance, high_name)
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            changes[low_name], changes[high_name] = high, low
    return dataclasses.replace(instance, **changes) if changes else instance


def _disjoint(instance: Any) -> Any:
    """Optional node lists drop the nodes an earlier list names (a partition's sides must not
    overlap)."""
    seen: set[str] = set()
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        if spec_of(item).ref != "node" or not isinstance(value, tuple):
            continue
        if _has_default(item):
            kept = tuple(name for name in value if name not in seen)
            if kept != value:
                changes[item.name] = kept
            value = kept
        seen.update(value)
    return dataclasses.replace(instance, **changes) if changes else instance


# -- faults -----------------------------------------------------------------------------------------
def faults(space: FaultSpace, kind: str | None = None) -> SearchStrategy[_faults.Fault]:
    """One fault of ``kind``, or of any kind the space draws (shrinking towards the first)."""
    if kind is not None:
        strategy = _kind_strategy(space, kind)
        if strategy is None:
            raise Undrawable(_undrawable_reason(space, kind))
        return strategy
    kinds = space.kind_names()
    if not kinds:
        asked = ", ".join(fault_kinds(space.kinds))
        raise ValueError(f"no fault kind can be drawn in this space (asked for: {asked})")
    return st.one_of([faults(space, name) for name in kinds])


def drawable_kinds(space: FaultSpace) -> tuple[str, ...]:
    """Every kind of ``FAULT_KINDS`` (whatever ``space.kinds`` says) that can be drawn in the space."""
    return tuple(kind for kind in _faults.FAULT_KINDS if _kind_strategy(space, kind) is not None)


def _kind_strategy(space: FaultSpace, kind: str) -> SearchStrategy[_faults.Fault] | None:
    try:
        return _build_kind(space, kind)
    except Undrawable:
        return None


def _undrawable_reason(space: FaultSpace, kind: str) -> str:
    try:
        _build_kind(space, kind)
    except Undrawable as error:
        return f"the fault kind {kind!r} cannot be drawn here: {error}"
    return ""


def _build_kind(space: FaultSpace, kind: str) -> SearchStrategy[_faults.Fault]:
    cls = _faults.FAULT_KINDS[kind]
    from harness.scenario_loader import _WILDCARDS  # the fields that also accept "*"

    context = _Context(space, kind, space.duration_s, _WILDCARDS.get(cls, ()), space.bounds)
    fields = {item.name: _or_default(item, _field_strategy(cls, item, context), space, kind)
              for item in dataclasses.fields(cls) if item.init and _drawn(cls, item)}
    return st.fixed_dictionaries(fields).map(lambda values: _disjoint(_fix_pairs(cls(**values))))


def _or_default(item: dataclasses.Field[Any], strategy: SearchStrategy[Any],
                space: FaultSpace | None = None, kind: str = "") -> SearchStrategy[Any]:
    """A field with a default keeps it about half the time (and shrinks to it): a drawn fault
    varies a few of its parameters, not all at once, so a gray link that only corrupts, or only
    flaps, is drawn as often as one that does everything. Not a default the space rules out: one
    outside the field's ``bounds``, or not among the values its ``choices`` narrow it to (a
    deploy's default phase ``full`` where the choices say ``read`` only)."""
    if not _has_default(item) or not _default_allowed(item, space, kind):
        return strategy
    return st.one_of(st.just(_default(item)), strategy)


def _default_allowed(item: dataclasses.Field[Any], space: FaultSpace | None, kind: str) -> bool:
    if space is None:
        return True
    default = _default(item)
    for key in (f"{kind}.{item.name}", item.name):
        if key in space.narrowed and key in space.choices:
            allowed = space.choices[key]
            values = default if isinstance(default, tuple) else (default,)
            return bool(values) and all(value in allowed for value in values)
        if key in space.bounds and isinstance(default, (int, float)) and \
                not isinstance(default, bool):
            low, high = space.bounds[key]
            return low <= default <= high
    return True


def _drawn(cls: type, item: dataclasses.Field[Any]) -> bool:
    """A field the YAML format lets a scenario set: ``duration_s`` only where it is a param."""
    return not (item.name == "duration_s" and "param" not in item.metadata)


def scheduled_faults(space: FaultSpace) -> SearchStrategy[ScheduledFault]:
    """A fault at a time within the fault phase, to a tenth of a second."""
    last = max(0, math.ceil(space.duration_s * 10) - 1)
    times = st.integers(0, last).map(lambda tenth: tenth / 10)
    return st.builds(ScheduledFault, times, faults(space))


def fault_timelines(space: FaultSpace, *, min_faults: int = 0, max_faults: int = 4
                    ) -> SearchStrategy[tuple[ScheduledFault, ...]]:
    """Scripted faults, sorted by time (shrinks by dropping faults, then simplifying them)."""
    return st.lists(scheduled_faults(space), min_size=min_faults, max_size=max_faults).map(
        lambda items: tuple(sorted(items, key=lambda scheduled: scheduled.at_s)))


def fault_profiles(space: FaultSpace) -> SearchStrategy[FaultProfile]:
    """A random fault profile (rates and ranges) whose targets are the space's nodes."""
    context = _Context(space, "random_faults", space.duration_s, bounds=space.bounds)
    strategies: dict[str, SearchStrategy[Any]] = {}
    for item in dataclasses.fields(FaultProfile):
        if item.name == "nodes":
            strategies[item.name] = st.one_of(st.just(()), st.lists(
                st.sampled_from(space.nodes), min_size=1, max_size=len(space.nodes),
                unique=True).map(lambda names: tuple(sorted(names))))
        elif item.name.endswith(("_per_minute", "_max")) and item.default == 0:
            # a rate, or a spread that is off by default (initial skew, drift): off as often as
            # on, and shrinking to off
            strategies[item.name] = st.one_of(st.just(item.default),
                                              _field_strategy(FaultProfile, item, context))
        else:
            strategies[item.name] = _field_strategy(FaultProfile, item, context)
    return st.fixed_dictionaries(strategies).map(lambda values: _fix_pairs(FaultProfile(**values)))


# -- configurations -----------------------------------------------------------------------------------
def config_values(base: Any, vary: Iterable[str] | None = None, *,
                  bounds: Mapping[str, tuple[float, float]] | None = None) -> SearchStrategy[Any]:
    """``base`` (a frozen dataclass instance, such as a system's ``Config``) with the fields named by
    ``vary`` drawn: dotted paths (``workload``, ``timing.lease_ms``), a nested dataclass drawn
    whole; None draws every field. Numbers range around their base value (see the module's
    docstring); booleans and choices over all their values; the rest keeps the base value."""
    if not (dataclasses.is_dataclass(base) and not isinstance(base, type)):
        raise TypeError(f"config_values needs a dataclass instance, got {type(base).__name__}")
    paths = None if vary is None else [tuple(path.split(".")) for path in vary]
    if paths is not None:
        known = {item.name for item in dataclasses.fields(base)}
        unknown = sorted({path[0] for path in paths} - known)
        if unknown:
            raise ValueError(f"{type(base).__name__} has no field(s) {', '.join(unknown)}; its "
                             f"fields: {', '.join(sorted(known))}")
    return _config(base, paths, dict(bounds or {}), "")


def _config(base: Any, paths: list[tuple[str, ...]] | None, bounds: dict[str, tuple[float, float]],
            prefix: str) -> SearchStrategy[Any]:
    cls = type(base)
    strategies: dict[str, SearchStrategy[Any]] = {}
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        value = getattr(base, item.name)
        whole = paths is None or any(path == (item.name,) for path in paths)
        deeper = [] if paths is None else [path[1:] for path in paths
                                           if len(path) > 1 and path[0] == item.name]
        key = f"{prefix}{item.name}"
        if whole:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                strategies[item.name] = _config(value, None, bounds, key + ".")
            else:
                context = _Context(None, prefix.rstrip("."), None, bounds=bounds)
                strategies[item.name] = _field_strategy(cls, item, context, value)
        elif deeper and dataclasses.is_dataclass(value):
            strategies[item.name] = _config(value, deeper, bounds, key + ".")
    if not strategies:
        return st.just(base)
    return st.fixed_dictionaries(strategies).map(
        lambda values: _fix_pairs(dataclasses.replace(base, **values)))


def workloads(base: Any) -> SearchStrategy[Any]:
    """Every field of a workload dataclass (e.g. the reference system's ``WorkloadConfig()``)
    drawn around its value in ``base``."""
    return config_values(base)


# -- topologies and scenarios ---------------------------------------------------------------------------
def topologies(*, max_azs: int = 3, max_nodes_per_az: int = 3,
               roles: Sequence[str] = ("server",)) -> SearchStrategy[Topology]:
    """Small topologies: AZs ``az-a``…, nodes ``n1``… numbered across AZs."""
    layouts = st.lists(st.lists(st.sampled_from(list(roles)), min_size=1,
                                max_size=max_nodes_per_az), min_size=1, max_size=max_azs)

    def build(layout: list[list[str]]) -> Topology:
        specs, number = [], 0
        for index, az_roles in enumerate(layout):
            for role in az_roles:
                number += 1
                specs.append(NodeSpec(f"n{number}", f"az-{chr(ord('a') + index)}", role))
        return Topology(tuple(specs))

    return layouts.map(build)


def scenarios(base: Scenario, *, space: FaultSpace | None = None,
              vary: Iterable[str] | None = ("workload",), min_faults: int = 0,
              max_faults: int = 4,
              random_faults: bool = True, keep_faults: bool = False,
              keep_expectations: bool = False,
              topology: SearchStrategy[Topology] | None = None) -> SearchStrategy[Scenario]:
    """Scenarios around ``base``: its system, network, disk, phases and limits; scripted faults
    (and, if ``random_faults``, maybe a random profile) drawn from ``space`` (default: the base's);
    the ``vary`` fields of its system's config drawn (those the config has; a config that is not a
    dataclass stays as it is). Expectations and variants are dropped: a fuzzed run is judged by
    its checkers (``keep_expectations`` keeps the base's own: invariants such as
    ``lost_acknowledged_writes == 0``). ``keep_faults`` keeps the base's own scripted faults too.
    With ``topology``, the topology is drawn too (and the space follows it)."""
    if topology is not None:
        return topology.flatmap(lambda drawn: scenarios(
            dataclasses.replace(base, topology=drawn, faults=(), random_faults=None),
            vary=vary, min_faults=min_faults, max_faults=max_faults, random_faults=random_faults,
            keep_expectations=keep_expectations,
            space=None if space is None else dataclasses.replace(
                space, nodes=tuple(spec.name for spec in drawn.nodes),
                azs=tuple(drawn.azs()))))
    space = space if space is not None else FaultSpace.of(base)
    config = base.system.config
    if dataclasses.is_dataclass(config) and not isinstance(config, type) and vary is not None:
        names = {item.name for item in dataclasses.fields(config)}
        wanted = [path for path in vary if path.split(".")[0] in names]
        configs: SearchStrategy[Any] = (config_values(config, wanted) if wanted
                                        else st.just(config))
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        configs = config_values(config)
    else:
        configs = st.just(config)
    profiles = st.one_of(st.none(), fault_profiles(space)) if random_faults else st.just(None)
    kept = base.faults if keep_faults else ()

    def build(drawn: tuple[tuple[ScheduledFault, ...], FaultProfile | None, Any]) -> Scenario:
        timeline, profile, drawn_config = drawn
        return dataclasses.replace(
            base, faults=tuple(sorted(kept + timeline, key=lambda s: s.at_s)),
            random_faults=profile, system=dataclasses.replace(base.system, config=drawn_config),
            expectations=base.expectations if keep_expectations else (), variants=(),
            variant_name=None, source=None)

    timelines = fault_timelines(space, min_faults=min_faults, max_faults=max_faults)
    return st.tuples(timelines, profiles, configs).map(
        build).map(valid_scenario).filter(lambda scenario: scenario is not None)


_FAULT_PATH = re.compile(r"faults\[(\d+)\](?:\.[a-z_]+(?:\.([a-z_]+))?)?")
_PROFILE_PATH = re.compile(r"random_faults\.([a-z_]+)")


def valid_scenario(scenario: Scenario) -> Scenario | None:
    """``scenario`` as the loader accepts it. The loader is the authority on what a scenario may
    say, beyond each field's declaration (a rollback must name an earlier deployment, a partition's
    sides must not overlap…): a fault field it refuses goes back to its default, or the fault is
    dropped; a refused field of the random profile goes back to its default, or the profile is
    dropped. None if it refuses anything else."""
    from harness.errors import ScenarioError
    from harness.scenario_loader import parse_scenario
    from harness.scenario_writer import scenario_to_yaml

    for _ in range(len(scenario.faults) * 4 + 20):
        try:
            parse_scenario(scenario_to_yaml(scenario))
        except ScenarioError as error:
            repaired = _repair(scenario, error.field or "")
            if repaired is None or repaired == scenario:
                return None
            scenario = repaired
        else:
            return scenario
    return None


def _repair(scenario: Scenario, path: str) -> Scenario | None:
    fault = _FAULT_PATH.match(path)
    if fault is not None:
        index, name = int(fault.group(1)), fault.group(2)
        faults = list(scenario.faults)
        if index >= len(faults):
            return None
        scheduled = faults[index]
        simpler = _field_default(scheduled.fault, name)
        if simpler is None:
            del faults[index]
        else:
            faults[index] = ScheduledFault(scheduled.at_s, simpler)
        return dataclasses.replace(scenario, faults=tuple(faults))
    profile = _PROFILE_PATH.match(path)
    if profile is not None and scenario.random_faults is not None:
        simpler = _field_default(scenario.random_faults, profile.group(1))
        return dataclasses.replace(scenario, random_faults=simpler)
    return None


def _field_default(instance: Any, name: str | None) -> Any:
    """``instance`` with field ``name`` back to its default, or None if that changes nothing."""
    for item in dataclasses.fields(instance):
        if item.name == name and _has_default(item) and getattr(instance, name) != _default(item):
            return dataclasses.replace(instance, **{name: _default(item)})
    return None
