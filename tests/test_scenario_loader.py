"""The scenario loader: valid YAML becomes a Scenario; any bad input, a located ScenarioError."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.disk import DiskConfig
from harness.errors import ScenarioError
from harness.faults import FAULT_KINDS, Crash, GrayLinkFault, IsolateAz, Partition
from harness.network import LinkConfig
from harness.scenario import RunLimits, Scenario, SystemSpec
from harness.scenario_loader import load_scenario, parse_scenario, scenario_to_yaml
from harness.timeline import FaultProfile, ScheduledFault
from harness.world import NodeSpec, Topology
try:  # ``python -m pytest`` puts the project on sys.path; plain ``pytest`` only ``tests/``
    from tests.fixtures_system import EchoConfig
except ImportError:
    from fixtures_system import EchoConfig  # type: ignore[no-redef]

FIXTURES = EchoConfig.__module__  # the module name the loader must import to find the same class
ECHO_SYSTEM = f"system: {{use: '{FIXTURES}:EchoSystem'}}\n"

# Six lines: whatever a test appends starts at line 7.
BASE = f"""\
name: t
topology:
  az-a: [n1, n2]
  az-b: [n3]
system:
  use: {FIXTURES}:EchoSystem
"""

FULL = """\
name: register-primary-crash
description: |
  The primary crashes.
  The backups must not lose acknowledged writes.
seed: 7
duration_s: 30
heal_s: 10
topology:
  az-a: [n1, {name: c1, role: client}]
  az-b: [n2]
  az-c: [n3]
network: {delay_ms_min: 1, delay_ms_max: 5}
disk: {fsync_latency_ms: 3}
system:
  use: FIXTURES:EchoSystem
  config: {verbose: true, leader: n2, weights: [1, 2.5], mode: safe}
faults:
  - {at_s: 5, crash: {node: n1, duration_s: 3}}
  - {at_s: 6.5, gray_link: {source: n1, destination: "*", message_type: heartbeat}}
  - {at_s: 7, partition: {side_a: [n1], side_b: [n2, n3]}}
  - {at_s: 8, isolate_az: {az: az-c, duration_s: 1e1}}
random_faults: {crash_per_minute: 2, crash_downtime_s_max: 4, nodes: [n2, n3]}
limits: {max_steps: 1_000_000}
""".replace("FIXTURES", FIXTURES)


def error_of(text: str, filename: str = "scenario.yaml") -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, filename)
    return str(info.value)


def with_config(config: str) -> str:
    """BASE with a system config on line 7."""
    return BASE + f"  config: {config}\n"


# -- valid input ----------------------------------------------------------------------------------
def test_full_scenario_is_read() -> None:
    scenario = parse_scenario(FULL)
    assert scenario.name == "register-primary-crash"
    assert scenario.description.startswith("The primary crashes.\n")
    assert (scenario.seed, scenario.duration_s, scenario.heal_s) == (7, 30.0, 10.0)
    assert scenario.topology.nodes[1] == NodeSpec("c1", "az-a", "client")
    assert scenario.topology.azs() == ["az-a", "az-b", "az-c"]
    assert scenario.link == LinkConfig(delay_ms_min=1.0, delay_ms_max=5.0)
    assert scenario.disk == DiskConfig(fsync_latency_ms=3.0)
    assert scenario.system == SystemSpec(f"{FIXTURES}:EchoSystem", EchoConfig(
        verbose=True, leader="n2", weights=(1.0, 2.5), mode="safe"))
    assert scenario.faults[0] == ScheduledFault(5.0, Crash(node="n1", duration_s=3.0))
    assert scenario.faults[1].fault == GrayLinkFault(source="n1", destination="*",
                                                     message_type="heartbeat")
    assert scenario.faults[2].fault == Partition(side_a=("n1",), side_b=("n2", "n3"))
    assert scenario.faults[3] == ScheduledFault(8.0, IsolateAz(az="az-c", duration_s=10.0))
    assert scenario.random_faults == FaultProfile(crash_per_minute=2, crash_downtime_s_max=4,
                                                  nodes=("n2", "n3"))
    assert scenario.limits == RunLimits(max_steps=1_000_000)
    assert scenario.source is None


def test_minimal_scenario_takes_the_defaults() -> None:
    scenario = parse_scenario(BASE)
    assert scenario == Scenario(name="t", topology=Topology.from_azs({"az-a": ["n1", "n2"],
                                                                      "az-b": ["n3"]}),
                                system=SystemSpec(f"{FIXTURES}:EchoSystem", EchoConfig()))


def test_names_that_look_like_yaml_11_booleans_or_numbers_are_strings() -> None:
    scenario = parse_scenario("name: off\ntopology:\n  yes: [off, no, 010, 1e3, 'null']\n"
                              + ECHO_SYSTEM + "faults: [{at_s: 0, crash: {node: no}}]\n")
    assert scenario.name == "off"
    assert [spec.name for spec in scenario.topology.nodes] == ["off", "no", "010", "1e3", "null"]
    assert scenario.topology.azs() == ["yes"]
    assert scenario.faults[0].fault == Crash(node="no")


@pytest.mark.parametrize(("text", "expected"), [
    ("1_000", 1000.0), ("1e3", 1000.0), ("2.5", 2.5), (".5", 0.5), ("1.0e-05", 1e-05), ("+3", 3.0),
])
def test_number_spellings(text: str, expected: float) -> None:
    assert parse_scenario(BASE + f"duration_s: {text}\n").duration_s == expected


def test_null_for_an_optional_field() -> None:
    scenario = parse_scenario(BASE + "faults:\n  - {at_s: 1, crash: {node: n1, duration_s: ~}}\n"
                                     "  - {at_s: 1, pause: {node: n1, duration_s: null}}\n")
    assert scenario.faults[0].fault == Crash(node="n1", duration_s=None)
    assert scenario.faults[1].fault.duration_s is None


def test_explicit_str_tag_acts_as_quotes() -> None:
    assert parse_scenario(with_config("{greeting: !!str 010}")).system.config.greeting == "010"


def test_system_without_config_class_gets_plain_data() -> None:
    text = BASE.replace("EchoSystem", "PlainSystem") + (
        "  config: {a: 1, b: [x, 2.5, true], c: null, d: {e: 'on'}}\n")
    config = parse_scenario(text).system.config
    assert config == {"a": 1, "b": ["x", 2.5, True], "c": None, "d": {"e": "on"}}
    assert parse_scenario(BASE.replace("EchoSystem", "PlainSystem")).system.config is None


def test_load_scenario_records_its_source(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(FULL, encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.source == str(path)
    assert dataclasses.replace(scenario, source=None) == parse_scenario(FULL)


# -- round trip ------------------------------------------------------------------------------------
def round_trip(scenario: Scenario) -> None:
    text = scenario_to_yaml(scenario)
    assert parse_scenario(text) == dataclasses.replace(scenario, source=None), text


def test_round_trip_full() -> None:
    round_trip(parse_scenario(FULL))


def test_round_trip_minimal_output_leaves_out_defaults() -> None:
    scenario = parse_scenario(BASE)
    text = scenario_to_yaml(scenario)
    assert "network" not in text and "limits" not in text and "faults" not in text
    round_trip(scenario)


def test_round_trip_every_fault_kind_and_tricky_strings() -> None:
    bodies = {kind: _minimal_body(kind) for kind in FAULT_KINDS}
    faults = tuple(ScheduledFault(float(index), FAULT_KINDS[kind](**body))
                   for index, (kind, body) in enumerate(bodies.items()))
    scenario = Scenario(
        name="off", description="line one\nline two: 010\n",
        topology=Topology((NodeSpec("off", "yes"), NodeSpec("010", "yes", "client"),
                           NodeSpec("1e3", "no"))),
        system=SystemSpec(f"{FIXTURES}:PlainSystem",
                          {"x": "on", "y": [1, 2.5, None], "z": {"w": "010"}}),
        duration_s=1e-5 * 10_000_000, heal_s=0.0, link=LinkConfig(loss_probability=1e-7),
        faults=faults, random_faults=FaultProfile(), limits=RunLimits(max_steps=7), seed=3)
    round_trip(scenario)


def _minimal_body(kind: str) -> dict[str, object]:
    names = {field.name for field in dataclasses.fields(FAULT_KINDS[kind])}
    body: dict[str, object] = {}
    for name, value in (("node", "off"), ("az", "no"), ("source", "off"), ("destination", "*"),
                        ("side_a", ("off",)), ("sources", ("off",)), ("destinations", ("010",)),
                        ("nodes", ("off", "010")), ("offset_ms", -2.5), ("drift_ppm", 10.0),
                        ("by_ms", 0.001), ("version", "v1"), ("name", "off"),
                        ("deployment", "off")):
        if name in names:
            body[name] = value
    if kind == "degrade_link":
        body["destination"] = "010"
    return body


def test_round_trip_echo_config() -> None:
    round_trip(parse_scenario(with_config("{greeting: 'yes', replicas: 9, timeout_ms: 0.5}")))


# -- YAML 1.1 surprises and scalar typing ----------------------------------------------------------
@pytest.mark.parametrize("spelling", ["off", "On", "yes", "NO", "y", "n"])
def test_yaml_11_boolean_spelling_for_a_bool(spelling: str) -> None:
    message = error_of(with_config(f"{{verbose: {spelling}}}"))
    assert "scenario.yaml:7:" in message
    assert "system.config.verbose" in message
    assert spelling in message and "write true or false" in message


def test_leading_zero_is_ambiguous_octal() -> None:
    message = error_of(with_config("{replicas: 010}"))
    assert "scenario.yaml:7:" in message
    assert "system.config.replicas" in message
    assert "010" in message and "leading zero" in message


@pytest.mark.parametrize("spelling", ["0x10", "0o10", "0b1"])
def test_radix_forms_refused(spelling: str) -> None:
    message = error_of(BASE + f"seed: {spelling}\n")
    assert "scenario.yaml:7:7:" in message and "seed:" in message
    assert spelling in message and "decimal" in message


@pytest.mark.parametrize(("value", "words"), [
    ("'5'", "quoted string '5'"), ("true", "boolean-like true"), ("1.5", "expected an integer"),
    ("1e3", "expected an integer"), ("five", "expected an integer"), ("", "an empty value"),
    ("[1]", "a list"), ("1:30", "expected an integer"),
])
def test_bad_integers(value: str, words: str) -> None:
    message = error_of(BASE + f"seed: {value}\n")
    assert "scenario.yaml:7:" in message and "seed:" in message and words in message


@pytest.mark.parametrize("value", [".inf", "-.Inf", ".nan", "1e999"])
def test_non_finite_numbers_refused(value: str) -> None:
    message = error_of(BASE + f"duration_s: {value}\n")
    assert "scenario.yaml:7:13:" in message and "finite" in message and value in message


def test_a_bool_is_not_a_number() -> None:
    message = error_of(BASE + "limits: {max_steps: true}\n")
    assert "scenario.yaml:7:21: limits.max_steps:" in message and "true" in message


def test_quoted_true_is_not_a_bool() -> None:
    message = error_of(with_config("{verbose: 'true'}"))
    assert "scenario.yaml:7:" in message and "'true'" in message and "true or false" in message


def test_plain_config_refuses_ambiguous_scalars() -> None:
    base = BASE.replace("EchoSystem", "PlainSystem")
    assert "write true or false" in error_of(base + "  config: {flag: off}\n")
    assert "leading zero" in error_of(base + "  config: {mode: 0755}\n")
    assert "finite" in error_of(base + "  config: {limit: .inf}\n")
    assert "quote it if you mean a string" in error_of(base + "  config: {at: 1:30}\n")


def test_control_character_is_located() -> None:
    message = error_of(BASE + "description: \x07\n")
    assert "scenario.yaml:7:" in message and "not allowed" in message


# -- tags, duplicates, structure -------------------------------------------------------------------
def test_python_tag_rejected() -> None:
    message = error_of(BASE + "description: !!python/object/apply:os.system ['echo hi']\n")
    assert "scenario.yaml:7:14:" in message
    assert "!!python/object/apply:os.system" in message and "not allowed" in message


def test_custom_tag_rejected() -> None:
    assert "!secret" in error_of(BASE + "description: !secret x\n")


def test_duplicate_key_names_both_lines() -> None:
    message = error_of(BASE + "seed: 1\nseed: 2\n")
    assert "scenario.yaml:8:1: seed:" in message
    assert "first at line 7" in message and "again at line 8" in message


def test_duplicate_key_in_a_nested_mapping() -> None:
    message = error_of(BASE + "network:\n  delay_ms_max: 2\n  delay_ms_max: 3\n")
    assert "scenario.yaml:9:3: network.delay_ms_max:" in message and "line 8" in message


def test_duplicate_node_names() -> None:
    message = error_of("name: t\ntopology:\n  az-a: [n1]\n  az-b: [n2, {name: n1}]\n"
                       + ECHO_SYSTEM)
    assert "scenario.yaml:4:" in message and "topology.az-b[1]" in message
    assert "duplicate node name 'n1'" in message and "line 3" in message


def test_duplicate_az_names() -> None:
    message = error_of("name: t\ntopology:\n  az-a: [n1]\n  az-a: [n2]\n"
                       + ECHO_SYSTEM)
    assert "scenario.yaml:4:3:" in message and "duplicate key 'az-a'" in message


@pytest.mark.parametrize(("topology", "words"), [
    ("{}", "no availability zone"), ("{az-a: []}", "has no nodes"),
    ("{az-a: n1}", "expected a list"),
    ("{az-a: ['*']}", "'*'"), ("{az-a: [{role: client}]}", "missing required key 'name'"),
    ("{az-a: [{name: n1, rol: client}]}", "did you mean 'role'"),
])
def test_bad_topologies(topology: str, words: str) -> None:
    message = error_of(f"name: t\ntopology: {topology}\n"
                       + ECHO_SYSTEM)
    assert "scenario.yaml:2:" in message and "topology" in message and words in message


def test_unknown_top_level_key_with_suggestion() -> None:
    message = error_of(BASE + "fualts: []\n")
    assert "scenario.yaml:7:1: fualts:" in message
    assert "did you mean 'faults'" in message and "allowed keys: name, description" in message


def test_unknown_field_with_suggestion() -> None:
    message = error_of(BASE + "network: {delay_min: 3}\n")
    assert "scenario.yaml:7:11: network.delay_min:" in message
    assert "did you mean 'delay_ms_min'" in message and "loss_probability" in message


@pytest.mark.parametrize(("text", "key"), [
    ("topology: {az-a: [n1]}\n" + ECHO_SYSTEM, "name"),
    ("name: t\n" + ECHO_SYSTEM, "topology"),
    ("name: t\ntopology: {az-a: [n1]}\n", "system"),
])
def test_missing_required_section(text: str, key: str) -> None:
    message = error_of(text)
    assert "scenario.yaml:1:1:" in message and f"missing required key {key!r}" in message


def test_section_of_the_wrong_shape() -> None:
    message = error_of(BASE + "network: [1, 2]\n")
    assert "scenario.yaml:7:10: network:" in message and "expected a mapping" in message


# -- bounds, choices, semantic checks --------------------------------------------------------------
def test_duration_must_be_positive() -> None:
    message = error_of(BASE + "duration_s: 0\n")
    assert "scenario.yaml:7:13: duration_s:" in message and "allowed: > 0" in message


def test_probability_above_one() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, gray_link: {source: n1, destination: n2, "
                              "drop_probability: 1.5}}]\n")
    assert "scenario.yaml:7:" in message and "faults[0].gray_link.drop_probability" in message
    assert "1.5" in message and ">= 0 and <= 1" in message


def test_choice_in_a_config() -> None:
    message = error_of(with_config("{mode: slow}"))
    assert "system.config.mode" in message and "slow" in message and "'fast', 'safe'" in message


def test_bound_on_each_tuple_item() -> None:
    message = error_of(with_config("{weights: [1, -2]}"))
    assert "scenario.yaml:7:" in message and "system.config.weights[1]" in message
    assert "-2" in message and ">= 0" in message


def test_min_greater_than_max_in_the_profile() -> None:
    message = error_of(BASE + "random_faults:\n  pause_ms_min: 500\n  pause_ms_max: 100\n")
    assert "scenario.yaml:8:" in message and "random_faults.pause_ms_min" in message
    assert "(500) is greater than pause_ms_max (100)" in message


def test_post_init_error_becomes_a_located_scenario_error() -> None:
    message = error_of(BASE + "network: {delay_ms_min: 9, delay_ms_max: 2}\n")
    assert "scenario.yaml:7:42: network.delay_ms_max: invalid LinkConfig:" in message
    assert "2" in message and ">= delay_ms_min (9" in message


def test_link_choice_checked_by_post_init() -> None:
    message = error_of(BASE + "network: {delay_distribution: gaussian}\n")
    assert "scenario.yaml:7:" in message and "gaussian" in message and "uniform" in message


def test_partition_with_a_node_on_both_sides() -> None:
    message = error_of(BASE + "faults:\n  - at_s: 1\n    partition: {side_a: [n1, n2], "
                              "side_b: [n2, n3]}\n")
    assert "scenario.yaml:9:16: faults[0].partition:" in message and "n2 on both sides" in message


def test_required_node_list_must_not_be_empty() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, swizzle_clog: {nodes: []}}]\n")
    assert "faults[0].swizzle_clog.nodes" in message and "at least one node" in message


def test_a_list_field_given_a_scalar() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, partition: {side_a: n1}}]\n")
    assert "faults[0].partition.side_a" in message and "expected a list" in message


def test_instantaneous_fault_takes_no_duration() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, restart: {node: n1, duration_s: 3}}]\n")
    assert "scenario.yaml:7:" in message and "faults[0].restart.duration_s" in message
    assert "restart takes no duration_s" in message


# -- faults and references -------------------------------------------------------------------------
def test_unknown_fault_kind_with_suggestion() -> None:
    message = error_of(BASE + "faults:\n  - {at_s: 1, crsh: {node: n1}}\n")
    assert "scenario.yaml:8:15: faults[0].crsh:" in message
    assert "did you mean 'crash'" in message and "gray_link" in message and "clock_jump" in message


@pytest.mark.parametrize(("entry", "words"), [
    ("{at_s: 1}", "found none"),
    ("{at_s: 1, crash: {node: n1}, pause: {node: n2}}", "2 (crash, pause)"),
])
def test_fault_entry_with_zero_or_two_kinds(entry: str, words: str) -> None:
    message = error_of(BASE + f"faults:\n  - {entry}\n")
    assert "scenario.yaml:8:5: faults[0]:" in message and words in message and "crash" in message


def test_fault_without_at_s() -> None:
    message = error_of(BASE + "faults:\n  - crash: {node: n1}\n")
    assert "scenario.yaml:8:5: faults[0].at_s:" in message
    assert "missing required key 'at_s'" in message


def test_fault_without_its_required_field() -> None:
    message = error_of(BASE + "faults:\n  - {at_s: 1, crash: {duration_s: 2}}\n")
    assert "scenario.yaml:8:22: faults[0].crash.node:" in message
    assert "missing required key 'node'" in message


def test_unknown_node_reference() -> None:
    message = error_of(BASE + "faults:\n  - {at_s: 1, crash: {node: n9}}\n")
    assert "scenario.yaml:8:29: faults[0].crash.node:" in message
    assert "'n9' is not a node in the topology" in message and "known nodes: n1, n2, n3" in message


def test_unknown_node_reference_inside_a_list() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, partition: {side_a: [n1, nn2]}}]\n")
    assert "faults[0].partition.side_a" in message and "'nn2'" in message
    assert "did you mean 'n2'" in message


def test_unknown_az_reference() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, isolate_az: {az: az-z}}]\n")
    assert "scenario.yaml:7:" in message and "faults[0].isolate_az.az" in message
    assert "'az-z' is not a az in the topology" in message and "az-a, az-b" in message


def test_wildcard_only_where_allowed() -> None:
    message = error_of(BASE + "faults: [{at_s: 1, crash: {node: '*'}}]\n")
    assert "faults[0].crash.node" in message and "'*'" in message


def test_reference_in_a_system_config_and_profile() -> None:
    assert "known nodes: n1, n2, n3" in error_of(with_config("{leader: n7}"))
    message = error_of(BASE + "random_faults: {nodes: [n1, x]}\n")
    assert "random_faults.nodes" in message and "'x'" in message


@pytest.mark.parametrize(("at", "column"), [("30", 12), ("-1", 12), ("31.5", 12)])
def test_at_s_outside_the_fault_phase(at: str, column: int) -> None:
    message = error_of(BASE + f"duration_s: 30\nfaults:\n  - {{at_s: {at}, crash: {{node: n1}}}}\n")
    assert f"scenario.yaml:9:{column}: faults[0].at_s:" in message
    assert at in message and "allowed: >= 0 and < 30" in message


def test_fault_duration_may_extend_past_the_phase() -> None:
    scenario = parse_scenario(BASE + "duration_s: 10\nfaults: [{at_s: 9, crash: {node: n1, "
                                     "duration_s: 100}}]\n")
    assert scenario.faults[0].fault.duration_s == 100.0


# -- system ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("use", "words"), [
    ("no_such_module_xyz:Thing", "cannot import module 'no_such_module_xyz'"),
    (f"{FIXTURES}:Nope", "has no class 'Nope'"),
    (FIXTURES, "expected 'package.module:ClassName'"),
])
def test_bad_system_use(use: str, words: str) -> None:
    message = error_of(BASE.replace(f"{FIXTURES}:EchoSystem", f"'{use}'"))
    assert "scenario.yaml:6:8: system.use:" in message and words in message


def test_unknown_system_key() -> None:
    message = error_of(BASE + "  confg: {}\n")
    assert "scenario.yaml:7:3: system.confg:" in message and "did you mean 'config'" in message


def test_unknown_config_field() -> None:
    message = error_of(with_config("{replica: 3}"))
    assert "system.config.replica" in message and "did you mean 'replicas'" in message


# -- files and documents ---------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ScenarioError, match="no such scenario file") as info:
        load_scenario(path)
    assert str(path) in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\n")
    with pytest.raises(ScenarioError, match="not UTF-8") as info:
        load_scenario(path)
    assert f"{path}:2:" in str(info.value)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path)


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_scenario(text: str) -> None:
    assert "scenario.yaml:1: the scenario is empty" in error_of(text)


@pytest.mark.parametrize(("text", "words"), [("- a\n- b\n", "a list"),
                                              ("just text\n", "just text")])
def test_top_level_not_a_mapping(text: str, words: str) -> None:
    message = error_of(text)
    assert "scenario.yaml:1:1:" in message and "top level must be a mapping" in message
    assert words in message


def test_yaml_syntax_error_is_located() -> None:
    message = error_of(BASE + "network: {delay_ms_min: 1\nseed: 3\n")
    assert message.startswith("scenario.yaml:8:") and "YAML syntax error" in message


def test_bad_indentation_is_located() -> None:
    message = error_of("name: t\n  seed: 3\n")
    assert message.startswith("scenario.yaml:2:") and "YAML syntax error" in message


def test_two_documents_refused() -> None:
    message = error_of(BASE + "---\nname: u\n")
    assert "scenario.yaml:7:" in message and "single document" in message


def test_merge_keys_refused() -> None:
    message = error_of(BASE + "network:\n  <<: {delay_ms_min: 1}\n")
    assert "scenario.yaml:8:3:" in message and "merge keys" in message


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    message = error_of(with_config("[" * 5000 + "]" * 5000))
    assert message.startswith("scenario.yaml") and "nested too deeply" in message
