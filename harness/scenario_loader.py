"""YAML scenarios: text or file → a validated ``Scenario``, and a ``Scenario`` back to YAML.

Theory of operation. The text is composed into PyYAML nodes (no Python object is ever constructed
from it) and read section by section with a ``NodeReader`` (``harness.yaml_nodes``), which types
each value by the dataclass field it fills and locates every error: file, line, column, field path,
the bad value and what is allowed. The header (name, seed, phases) comes first, then the topology,
whose node and AZ names every later section may refer to; then the network, disk, system, scripted
faults, random faults, limits, expectations and variants. Nothing is accepted silently: unknown keys, duplicate keys,
ambiguous YAML 1.1 spellings, references to unknown nodes and faults outside the fault phase are all
errors.

The format::

    name: register-primary-crash          # required
    description: |                        # optional
      The story ...
    seed: 7                               # default seed (int >= 0; default 0)
    duration_s: 30                        # fault phase length, > 0 (default 60)
    heal_s: 10                            # heal phase length, >= 0 (default 30)
    topology:                             # required: AZ name -> its nodes, in order
      az-a: [n1, {name: c1, role: client}] # a node is a name (role "server") or {name, role}
      az-b: [n2]
    network: {delay_ms_min: 1, delay_ms_max: 5}  # fields of harness.network.LinkConfig
    disk: {fsync_latency_ms: 2}                  # fields of harness.disk.DiskConfig
    system:                                      # required
      use: systems.register:RegisterSystem       # "module:Class", imported to validate it
      config: {ack_before_fsync: false}          # the class's nested Config dataclass, else a dict
    faults:                                      # scripted faults: at_s plus one fault kind
      - {at_s: 5, crash: {node: n1, duration_s: 3}}
    random_faults: {crash_per_minute: 2}         # fields of FaultProfile
    limits: {max_steps: 1000000}                 # fields of RunLimits
    expect:                                      # judged after the run (harness.expectations)
      - stale_reads == 0                         # <metric> <op> <number>, op: == != < <= > >=
      - latency_ms.put_item.p99 <= 50            # metric names as in Result.metrics, dots allowed
      - check linearizability passes             # check <name> passes|fails
    variants:                                    # optional: run these instead, from the same seed
      buggy:                                     # name: lower-case letters, digits and dashes
        system: {config: {ack_before_fsync: true}}   # deep-merged into system.config
        expect: [check lost-acknowledged-write fails, stale_reads >= 1]   # added to expect
      fixed:
        system: {config: {ack_before_fsync: false}}
        expect: [stale_reads == 0]
        faults: []                                    # optional: replaces the scripted faults

Expectations are parsed by ``harness.expectations.parse_expectation`` (a tokenizer, never ``eval``);
a malformed one is an error located at the offending word, with the grammar. The same expectation
twice (in ``expect`` and a variant's ``expect`` included) is an error. Each variant may change
``system.config``: its mapping is merged key by key into the scenario's (nested mappings merged,
anything else replaced) and the result validated exactly like the scenario's own config, errors
located in the variant. A variant may also bring its own ``faults`` list, which replaces the
scenario's scripted faults (a deployment plan, say: one-shot in one variant, read-then-write in the
other). ``Scenario.variant(name)`` gives one variant as a plain scenario.

Deployments (``deploy``, ``rollback``; ``harness.deploy``) are checked as a script: the system must
declare versions, the version and roles must be its own, a rollback must name an earlier deployment
and a phase ``write`` must come after a deployment of a version that reads its format.

When the system class has a ``Config`` dataclass, ``system.config`` is validated against it and the
system receives an instance, built from its defaults when ``config`` is absent. ``scenario_to_yaml``
(``harness.scenario_writer``, re-exported here) writes this format back, leaving out every value
equal to its default, so that ``parse_scenario(scenario_to_yaml(s))`` equals ``s`` (apart from
``source`` and the ``variant_name`` that ``Scenario.variant`` sets) for any scenario the format can
express: topology nodes grouped by AZ, a system config that is a dataclass or a dict with string
keys, and variants whose configs differ from the scenario's by changed or added keys (a variant is
written as its differences; one with no ``system`` keeps the scenario's config).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NoReturn

from yaml.nodes import MappingNode, Node, ScalarNode

from harness.disk import DiskConfig
from harness.deploy import script_problems, system_versions
from harness.errors import ScenarioError
from harness.expectations import Expectation, ExpectationError, parse_expectation
from harness.faults import FAULT_KINDS, Fault, GrayLinkFault, Partition
from harness.network import LinkConfig
from harness.params import param
from harness.scenario import VARIANT_NAME, RunLimits, Scenario, SystemSpec, Variant
from harness.scenario_writer import scenario_to_yaml
from harness.system import resolve_system_class
from harness.timeline import FaultProfile, ScheduledFault
from harness.world import NodeSpec, Topology
from harness.yaml_nodes import Entries, NodeReader, compose, describe_node, join_path

__all__ = ["load_scenario", "parse_scenario", "scenario_to_yaml"]

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Scenario)}
_SECTIONS = ("name", "description", "seed", "duration_s", "heal_s", "topology", "network", "disk",
             "system", "faults", "random_faults", "limits", "expect", "variants")
_REQUIRED = ("name", "topology", "system")
_WILDCARDS: dict[type, tuple[str, ...]] = {GrayLinkFault: ("source", "destination")}


@dataclasses.dataclass(frozen=True, slots=True)
class _Header:
    """The scalar top-level keys of a scenario."""

    name: str = param("the scenario's name, shown in reports")
    description: str = param("the failure story the scenario tells", _DEFAULTS["description"])
    seed: int = param("the seed used when none is given on the command line", _DEFAULTS["seed"],
                      minimum=0)
    duration_s: float = param("length of the fault phase", _DEFAULTS["duration_s"], minimum=0,
                              exclusive_minimum=True)
    heal_s: float = param("length of the heal phase", _DEFAULTS["heal_s"], minimum=0)


@dataclasses.dataclass(frozen=True, slots=True)
class _NodeEntry:
    """A node of the topology written as a mapping."""

    name: str = param("the node's unique name")
    role: str = param("free-form role; systems tell servers from clients by it", "server")


# -- reading ---------------------------------------------------------------------------------------
def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario file at ``path``; every problem is a ``ScenarioError``."""
    filename = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ScenarioError("no such scenario file", file=filename) from None
    except OSError as error:
        raise ScenarioError(f"cannot read the scenario file: {error.strerror or error}",
                            file=filename) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ScenarioError(f"not UTF-8 text (byte {data[error.start]:#04x} at offset "
                            f"{error.start}); save the file as UTF-8", file=filename,
                            line=line) from None
    return dataclasses.replace(parse_scenario(text, filename), source=filename)


def parse_scenario(text: str, filename: str = "<string>") -> Scenario:
    """Validate scenario YAML ``text``; ``filename`` is only used in error messages."""
    root = compose(text, filename)
    if root is None:
        raise ScenarioError("the scenario is empty; it needs at least: " + ", ".join(_REQUIRED),
                            file=filename, line=1)
    reader = NodeReader(filename, wildcards=_WILDCARDS)
    if not isinstance(root, MappingNode):
        reader.fail(root, "", f"the top level must be a mapping of {', '.join(_SECTIONS)}; got "
                              f"{describe_node(root)}")
    entries = reader.mapping(root, "")
    reader.reject_unknown(entries, _SECTIONS, "")
    _require(reader, entries, root)
    return _read_sections(reader, entries, root)


def _require(reader: NodeReader, entries: Entries, root: Node) -> None:
    for name in _REQUIRED:
        if name not in entries:
            reader.fail(root, name, f"missing required key {name!r}; a scenario needs "
                                    f"{', '.join(_REQUIRED)}")


def _read_sections(reader: NodeReader, entries: Entries, root: Node) -> Scenario:
    header_names = [field.name for field in dataclasses.fields(_Header)]
    header = reader.build_from(_Header, {k: v for k, v in entries.items() if k in header_names},
                               root, "")
    if not header.name.strip():
        reader.fail(entries["name"][1], "name", "the name must not be blank")
    topology = _read_topology(reader, entries["topology"][1])
    system_reader = reader.with_refs({"node": [spec.name for spec in topology.nodes],
                                      "az": topology.azs()})
    system, base_config = _read_system(system_reader, entries["system"][1])
    selectors = sorted(getattr(resolve_system_class(system.use), "NODE_SELECTORS", {}))
    reader = reader.with_refs({"node": [spec.name for spec in topology.nodes],
                               "az": topology.azs(), "node-selector": selectors})

    def section(key: str, cls: type, default: Any) -> Any:
        return reader.build(cls, entries[key][1], key) if key in entries else default

    seen: dict[str, Node] = {}  # expectation text -> where it was first written
    expectations = (_read_expectations(reader, entries["expect"][1], "expect", seen)
                    if "expect" in entries else ())
    faults = _read_faults(reader, entries, header.duration_s)
    _check_deployments(reader, entries.get("faults"), faults, system, "faults")
    random_faults = section("random_faults", FaultProfile, None)
    _check_profile(reader, entries.get("random_faults"), random_faults, system)
    variants = (_read_variants(system_reader, entries["variants"][1], system, base_config, seen,
                               (reader, header.duration_s))
                if "variants" in entries else ())
    return Scenario(
        name=header.name, description=header.description, seed=header.seed,
        duration_s=header.duration_s, heal_s=header.heal_s, topology=topology,
        system=system,
        link=section("network", LinkConfig, LinkConfig()),
        disk=section("disk", DiskConfig, DiskConfig()),
        faults=faults, random_faults=random_faults,
        limits=section("limits", RunLimits, RunLimits()),
        expectations=expectations, variants=variants)


def _read_topology(reader: NodeReader, node: Node) -> Topology:
    azs = reader.mapping(node, "topology")
    if not azs:
        reader.fail(node, "topology", "the topology has no availability zone; write "
                                      "`az-name: [node, ...]` for each")
    specs: list[NodeSpec] = []
    seen: dict[str, Node] = {}
    for az, (key, value) in azs.items():
        path = join_path("topology", az)
        if not az.strip():
            reader.fail(key, path, "an availability zone's name must not be blank")
        items = reader.sequence(value, path)
        if not items:
            reader.fail(value, path, f"the availability zone {az!r} has no nodes")
        for index, item in enumerate(items):
            spec, name_node = _read_node(reader, item, f"{path}[{index}]", az)
            if spec.name in seen:
                reader.fail(name_node, f"{path}[{index}]", f"duplicate node name {spec.name!r} "
                            f"(first at line {seen[spec.name].start_mark.line + 1})")
            seen[spec.name] = name_node
            specs.append(spec)
    return Topology(tuple(specs))


def _read_node(reader: NodeReader, item: Node, path: str, az: str) -> tuple[NodeSpec, Node]:
    if isinstance(item, MappingNode):
        entry = reader.build(_NodeEntry, item, path)
        name_node = reader.mapping(item, path)["name"][1]
    else:
        entry, name_node = _NodeEntry(reader.string(item, path)), item
    if not entry.name.strip() or entry.name == "*":
        reader.fail(name_node, path, f"{describe_node(name_node)} is not a usable node name "
                                     f"(blank names and '*' are reserved)")
    return NodeSpec(entry.name, az, entry.role), name_node


def _read_system(reader: NodeReader, node: Node) -> tuple[SystemSpec, Node | None]:
    """The system, and the node of its config (None when absent) for the variants to merge into."""
    entries = reader.mapping(node, "system")
    reader.reject_unknown(entries, ("use", "config"), "system")
    if "use" not in entries:
        reader.fail(node, "system.use", "missing required key 'use' (the system's class, "
                                        "as 'package.module:ClassName')")
    use_node = entries["use"][1]
    use = reader.string(use_node, "system.use")
    system_class = _import_system(reader, use, use_node)
    config_node = entries["config"][1] if "config" in entries else None
    return SystemSpec(use, _read_config(reader, system_class, config_node, node,
                                        "system.config")), config_node


def _read_config(reader: NodeReader, system_class: type, config_node: Node | None, anchor: Node,
                 path: str) -> Any:
    """The class's ``Config`` dataclass built from ``config_node`` (its defaults when None), else
    plain data; ``anchor`` locates errors about a config that is absent."""
    config_class = getattr(system_class, "Config", None)
    if isinstance(config_class, type) and dataclasses.is_dataclass(config_class):
        config_entries = reader.mapping(config_node, path) if config_node else {}
        return reader.build_from(config_class, config_entries, config_node or anchor, path)
    return reader.plain_data(config_node, path) if config_node else None


def _import_system(reader: NodeReader, use: str, node: Node) -> type:
    try:
        return resolve_system_class(use)
    except ValueError as error:
        reader.fail(node, "system.use", f"{error}")
    except Exception as error:  # the module itself failed while importing: the user's code
        reader.fail(node, "system.use", f"importing {use!r} failed: "
                                        f"{type(error).__name__}: {error}")


def _read_faults(reader: NodeReader, entries: Entries, duration_s: float) -> tuple[
        ScheduledFault, ...]:
    if "faults" not in entries:
        return ()
    return _read_fault_list(reader, entries["faults"][1], "faults", duration_s)


def _read_fault_list(reader: NodeReader, node: Node, path: str, duration_s: float) -> tuple[
        ScheduledFault, ...]:
    items = reader.sequence(node, path)
    return tuple(_read_fault(reader, item, f"{path}[{index}]", duration_s)
                 for index, item in enumerate(items))


def _check_deployments(reader: NodeReader, entry: tuple[Node, Node] | None,
                       faults: tuple[ScheduledFault, ...], system: SystemSpec, path: str) -> None:
    """The script's deployments make sense for the system (``harness.deploy.script_problems``);
    the first problem is an error located at the field it is about."""
    system_class = resolve_system_class(system.use)
    initial = getattr(system_class, "initial_versions", None)
    problems = script_problems(list(faults), system_class,
                               tuple(initial(system.config)) if callable(initial) else ())
    if not problems or entry is None:
        return
    index, name, message = min(problems)
    item = reader.sequence(entry[1], path)[index]
    item_path = f"{path}[{index}]"
    kind = faults[index].fault.kind
    body = reader.mapping(reader.mapping(item, item_path)[kind][1], join_path(item_path, kind))
    where = body[name][1] if name in body else reader.mapping(item, item_path)[kind][0]
    field_path = join_path(item_path, kind)
    reader.fail(where, join_path(field_path, name) if name else field_path, message)


def _check_profile(reader: NodeReader, entry: tuple[Node, Node] | None,
                   profile: FaultProfile | None, system: SystemSpec) -> None:
    """Drawn deployments need a system with versions, and versions it declares."""
    if profile is None or entry is None:
        return
    versions = system_versions(resolve_system_class(system.use))
    body = reader.mapping(entry[1], "random_faults")
    if profile.deploy_per_minute > 0 and versions is None:
        reader.fail(body["deploy_per_minute"][1], "random_faults.deploy_per_minute",
                    f"the system under test ({system.use}) declares no VERSIONS, so it cannot be "
                    f"deployed; leave deploy_per_minute at 0")
    for index, name in enumerate(profile.deploy_versions):
        if versions is not None and name not in versions:
            reader.fail(body["deploy_versions"][1].value[index],
                        f"random_faults.deploy_versions[{index}]",
                        f"{name!r} is not a version of {system.use}; versions: "
                        f"{', '.join(versions)}")


def _read_fault(reader: NodeReader, node: Node, path: str, duration_s: float) -> ScheduledFault:
    entries = reader.mapping(node, path)
    reader.reject_unknown(entries, ["at_s", *FAULT_KINDS], path)
    if "at_s" not in entries:
        reader.fail(node, join_path(path, "at_s"), "missing required key 'at_s' (when the fault "
                    f"strikes, in seconds: >= 0 and < {duration_s:g}, the fault phase)")
    at_node = entries["at_s"][1]
    at_s = reader.number(at_node, join_path(path, "at_s"))
    if not 0 <= at_s < duration_s:
        reader.fail(at_node, join_path(path, "at_s"), f"{describe_node(at_node)} is outside the "
                    f"fault phase; allowed: >= 0 and < {duration_s:g} (duration_s)")
    kinds = [name for name in entries if name != "at_s"]
    if len(kinds) != 1:
        found = f"{len(kinds)} ({', '.join(kinds)})" if kinds else "none"
        reader.fail(node, path, f"a fault entry names exactly one fault kind, found {found}; "
                                f"kinds: {', '.join(FAULT_KINDS)}")
    kind = kinds[0]
    return ScheduledFault(at_s, _read_fault_body(reader, kind, entries[kind][1],
                                                 join_path(path, kind)))


def _read_fault_body(reader: NodeReader, kind: str, node: Node, path: str) -> Fault:
    cls = FAULT_KINDS[kind]
    entries = reader.mapping(node, path)
    duration = {field.name: field for field in dataclasses.fields(cls)}.get("duration_s")
    if "duration_s" in entries and duration is not None and "param" not in duration.metadata:
        reader.fail(entries["duration_s"][0], join_path(path, "duration_s"),
                    f"{kind} takes no duration_s: it is instantaneous or runs its own course")
    fault = reader.build_from(cls, entries, node, path)
    if isinstance(fault, Partition):
        both = sorted(set(fault.side_a) & set(fault.side_b))
        if both:
            reader.fail(node, path, f"node(s) {', '.join(both)} on both sides of the partition; "
                                    f"side_a and side_b must not overlap")
    return fault


# -- expectations and variants ----------------------------------------------------------------------
def _read_expectations(reader: NodeReader, node: Node, path: str,
                       seen: dict[str, Node]) -> tuple[Expectation, ...]:
    """The list of expectations at ``node``; ``seen`` (text -> node) refuses repeats across lists."""
    expectations = []
    for index, item in enumerate(reader.sequence(node, path)):
        item_path = f"{path}[{index}]"
        text = reader.string(item, item_path)
        try:
            expectation = parse_expectation(text)
        except ExpectationError as error:
            _fail_in_text(reader, item, item_path, error.column,
                          f"bad expectation {text.strip()!r}: {error}")
        first = seen.get(expectation.text)
        if first is not None:
            reader.fail(item, item_path, f"the expectation {expectation.text!r} is already written "
                                         f"at line {first.start_mark.line + 1}; write it once")
        seen[expectation.text] = item
        expectations.append(expectation)
    return tuple(expectations)


def _fail_in_text(reader: NodeReader, node: Node, path: str, offset: int,
                  message: str) -> NoReturn:
    """Fail at ``offset`` within a one-line scalar's text (at the scalar itself otherwise)."""
    mark = node.start_mark
    column = mark.column + 1
    if isinstance(node, ScalarNode) and node.end_mark.line == mark.line and node.style in (
            None, "'", '"'):
        column += offset + (0 if node.style is None else 1)
    raise ScenarioError(message, file=reader.filename, line=mark.line + 1, column=column,
                        field=path)


def _read_variants(reader: NodeReader, node: Node, system: SystemSpec, base_config: Node | None,
                   seen: dict[str, Node], faults: tuple[NodeReader, float]) -> tuple[Variant, ...]:
    """``faults``: the reader that knows node selectors, and the fault phase's length, for the
    variants' own fault lists."""
    _refuse_duplicate_variants(reader, node)
    entries = reader.mapping(node, "variants")
    if not entries:
        reader.fail(node, "variants", "no variants: name at least one (`variants: {name: {system: "
                                      "{config: {...}}, expect: [...]}}`) or leave the section out")
    return tuple(_read_variant(reader, name, key, value, system, base_config, dict(seen), faults)
                 for name, (key, value) in entries.items())


def _refuse_duplicate_variants(reader: NodeReader, node: Node) -> None:
    first: dict[str, Node] = {}
    for key, _ in node.value if isinstance(node, MappingNode) else ():
        if isinstance(key, ScalarNode) and key.value in first:
            reader.fail(key, join_path("variants", key.value), f"duplicate variant {key.value!r}: "
                        f"first at line {first[key.value].start_mark.line + 1}, again at line "
                        f"{key.start_mark.line + 1}; each variant needs its own name")
        first.setdefault(key.value, key)


def _read_variant(reader: NodeReader, name: str, key: Node, node: Node, system: SystemSpec,
                  base_config: Node | None, seen: dict[str, Node],
                  fault_context: tuple[NodeReader, float]) -> Variant:
    path = join_path("variants", name)
    system_class = resolve_system_class(system.use)
    if not VARIANT_NAME.match(name):
        reader.fail(key, path, f"{name!r} is not a usable variant name; allowed: lower-case "
                               f"letters, digits and single dashes (e.g. mitigation-off)")
    entries = reader.mapping(node, path)
    reader.reject_unknown(entries, ("system", "faults", "expect"), path)
    config = None
    if "system" in entries:
        system_path = join_path(path, "system")
        system_entries = reader.mapping(entries["system"][1], system_path)
        if "use" in system_entries:
            reader.fail(system_entries["use"][0], join_path(system_path, "use"),
                        "a variant runs the scenario's own system; it may change only its config")
        reader.reject_unknown(system_entries, ("config",), system_path)
        if "config" in system_entries:
            override = system_entries["config"][1]
            config_path = join_path(system_path, "config")
            reader.mapping(override, config_path)  # a variant's config is a mapping of changes
            merged = _merge(reader, base_config, override, config_path)
            config = _read_config(reader, system_class, merged, override, config_path)
    expectations = (_read_expectations(reader, entries["expect"][1], join_path(path, "expect"),
                                       seen) if "expect" in entries else ())
    faults = None
    if "faults" in entries:  # the variant's own fault script, in place of the scenario's
        fault_reader, duration_s = fault_context
        faults_path = join_path(path, "faults")
        faults = _read_fault_list(fault_reader, entries["faults"][1], faults_path, duration_s)
        spec = system if config is None else SystemSpec(system.use, config)
        _check_deployments(fault_reader, entries["faults"], faults, spec, faults_path)
    return Variant(name, config, expectations, faults)


def _merge(reader: NodeReader, base: Node | None, override: Node, path: str) -> Node:
    """``override`` laid over ``base``: mappings merged key by key, recursively; anything else in
    ``override`` replaces what ``base`` has. Keys keep their own nodes, so errors point at the
    variant's lines for what it changed."""
    if not isinstance(base, MappingNode) or not isinstance(override, MappingNode):
        return override
    merged = dict(reader.mapping(base, path))
    for name, (key, value) in reader.mapping(override, path).items():
        old = merged.get(name)
        merged[name] = (key, _merge(reader, old[1], value, join_path(path, name)) if old else value)
    return MappingNode(override.tag, list(merged.values()), override.start_mark, override.end_mark,
                       flow_style=override.flow_style)
