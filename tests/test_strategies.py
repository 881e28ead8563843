"""Hypothesis strategies (harness.strategies): drawn faults and scenarios are valid, readable, and
cover every fault kind in the registry, including kinds registered after the strategies were
written."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from harness import (
    FAULT_KINDS,
    Scenario,
    SystemSpec,
    Topology,
    load_scenario,
    parse_scenario,
)
from harness import faults as faults_module
from harness.faults import Fault
from harness.params import param
from harness.scenario_writer import scenario_to_yaml
from harness.strategies import (
    FaultSpace,
    Undrawable,
    config_values,
    drawable_kinds,
    fault_kinds,
    fault_profiles,
    faults,
    scenarios,
    topologies,
    valid_scenario,
)
from systems.dynamo.config import DynamoConfig

FAST = settings(max_examples=15, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
# find() without shrinking: the first example that satisfies the condition
FIRST_FOUND = settings(max_examples=50, deadline=None, database=None, phases=[Phase.generate],
                       derandomize=True, suppress_health_check=list(HealthCheck))
DYNAMO = load_scenario(ROOT / "scenarios" / "s01-leader-crash.yaml")
REGISTER = parse_scenario("""name: register
duration_s: 10
heal_s: 2
topology: {az-a: [n1], az-b: [n2], az-c: [n3]}
system: {use: "systems.register:RegisterSystem", config: {write_interval_ms: 20}}
""")
VERSIONED = Scenario(name="versioned", duration_s=30, heal_s=5,
                     topology=Topology.from_azs({"az-a": ["s1", "s2"], "az-b": ["s3"]}),
                     system=SystemSpec("deployable_system:VersionedSystem"))


def node_names(fault: Fault) -> list[str]:
    names: list[str] = []
    for item in dataclasses.fields(fault):  # type: ignore[arg-type]
        if item.metadata.get("param") is not None and item.metadata["param"].ref == "node":
            value = getattr(fault, item.name)
            names.extend(value if isinstance(value, tuple) else [value])
    return names


@FAST
@given(scenarios(DYNAMO))
def test_drawn_scenarios_round_trip_through_the_writer_and_the_loader(scenario: Scenario) -> None:
    assert parse_scenario(scenario_to_yaml(scenario)) == scenario
    space = FaultSpace.of(DYNAMO)
    allowed = set(space.nodes) | set(space.selectors) | {"*"}
    for scheduled in scenario.faults:
        assert 0 <= scheduled.at_s < scenario.duration_s
        assert set(node_names(scheduled.fault)) <= allowed
        duration = scheduled.fault.duration_s
        assert duration is None or 0 < duration <= scenario.duration_s
    # the topology, the system and the phases are the base's; the expectations are gone
    assert (scenario.topology, scenario.system.use, scenario.duration_s) == (
        DYNAMO.topology, DYNAMO.system.use, DYNAMO.duration_s)
    assert scenario.expectations == () and scenario.variants == ()
    config = scenario.system.config
    assert dataclasses.replace(config, workload=DynamoConfig().workload) == DynamoConfig()


@FAST
@given(scenarios(REGISTER, topology=topologies(), vary=None))
def test_whole_scenarios_with_drawn_topologies_round_trip(scenario: Scenario) -> None:
    assert parse_scenario(scenario_to_yaml(scenario)) == scenario
    names = {spec.name for spec in scenario.topology.nodes}
    for scheduled in scenario.faults:
        assert set(node_names(scheduled.fault)) <= names | {"*"}


def test_every_kind_in_the_registry_can_be_drawn_into_a_valid_scenario() -> None:
    space = FaultSpace.of(VERSIONED)
    assert drawable_kinds(space) == tuple(FAULT_KINDS)
    for kind, cls in FAULT_KINDS.items():
        # alone, or among faults of its own family (a rollback needs a deployment before it)
        for kinds in ((kind,), (kind, cls.family)):
            try:
                found = find(scenarios(VERSIONED, space=dataclasses.replace(space, kinds=kinds),
                                       min_faults=len(kinds), max_faults=len(kinds) + 1,
                                       random_faults=False, vary=()),
                             lambda scenario, kind=kind: any(s.fault.kind == kind
                                                             for s in scenario.faults),
                             settings=FIRST_FOUND)
            except NoSuchExample:
                continue
            assert parse_scenario(scenario_to_yaml(found)) == found
            break
        else:
            pytest.fail(f"no valid scenario with a {kind} fault was drawn")


def test_a_kind_registered_later_is_drawn_too(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Hiccup(Fault):
        kind: ClassVar[str] = "hiccup"
        family: ClassVar[str] = "process"
        node: str = param("the node that hiccups", ref="node")
        strength: int = param("how hard", 3, minimum=1, maximum=9)
        duration_s: float | None = param("how long", None, minimum=0, exclusive_minimum=True)

        def apply(self, world: Any) -> None:
            return None

    monkeypatch.setitem(faults_module.FAULT_KINDS, "hiccup", Hiccup)
    space = FaultSpace.of(REGISTER)
    assert "hiccup" in drawable_kinds(space) and "hiccup" in fault_kinds(["process"])
    drawn = find(faults(space, "hiccup"), lambda fault: fault.strength > 5, settings=FIRST_FOUND)
    assert isinstance(drawn, Hiccup) and drawn.node in space.nodes and drawn.strength <= 9


def test_a_field_nothing_says_how_to_draw_is_reported() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Mystery(Fault):
        kind: ClassVar[str] = "mystery"
        family: ClassVar[str] = "process"
        word: str = param("a word with no choices and no default")

    space = FaultSpace.of(REGISTER)
    registry = {**FAULT_KINDS, "mystery": Mystery}
    faults_module.FAULT_KINDS, saved = registry, faults_module.FAULT_KINDS
    try:
        assert "mystery" not in drawable_kinds(space)
        with pytest.raises(Undrawable, match="Mystery.word"):
            faults(space, "mystery")
        chosen = dataclasses.replace(space, choices={"mystery.word": ("boo",)})
        assert find(faults(chosen, "mystery"), lambda fault: True,
                    settings=FIRST_FOUND).word == "boo"
    finally:
        faults_module.FAULT_KINDS = saved


def test_deployment_kinds_are_not_drawn_for_a_system_without_versions() -> None:
    space = FaultSpace.of(REGISTER)
    assert "deploy" not in drawable_kinds(space) and "crash" in drawable_kinds(space)


@FAST
@given(st.data())
def test_numbers_respect_declarations_overrides_and_a_readable_grid(data: st.DataObject) -> None:
    space = FaultSpace.of(DYNAMO, bounds={"clock_drift.drift_ppm": (-1000, 1000)})
    drift = data.draw(faults(space, "clock_drift"))
    assert -1000 <= drift.drift_ppm <= 1000 and drift.drift_ppm == round(drift.drift_ppm)
    gray = data.draw(faults(space, "gray_link"))
    assert 0 <= gray.drop_probability <= 1 and 0 <= gray.corrupt_probability <= 1
    assert gray.drop_probability == round(gray.drop_probability, 2)
    slow = data.draw(faults(space, "disk_fail_slow"))
    assert 2.5 <= slow.latency_multiplier <= 40  # around its default of 10
    degrade = data.draw(faults(space, "degrade_link"))
    assert degrade.delay_ms_min <= degrade.delay_ms_max
    partition = data.draw(faults(space, "partition"))
    assert partition.side_a and not set(partition.side_a) & set(partition.side_b)
    gray_type = gray.message_type
    assert gray_type is None  # no message types in this space


@FAST
@given(st.data())
def test_config_values_draw_only_what_is_named(data: st.DataObject) -> None:
    base = DynamoConfig()
    drawn = data.draw(config_values(base, ["workload", "mitigations.lease_wait", "timing"]))
    assert drawn.bugs == base.bugs and drawn.checks == base.checks
    assert dataclasses.replace(drawn.mitigations, lease_wait=True) == base.mitigations
    assert base.workload.clients / 2 <= drawn.workload.clients <= base.workload.clients * 2
    assert drawn.timing.router_backoff_ms_min <= drawn.timing.router_backoff_ms_max


def test_profiles_drawn_are_valid_and_can_be_off() -> None:
    space = FaultSpace.of(DYNAMO)
    quiet = find(fault_profiles(space), lambda profile: profile.crash_per_minute == 0,
                 settings=FIRST_FOUND)
    assert quiet.crash_per_minute == 0
    # (more examples allowed: newer Hypothesis versions bias generation by constants collected
    # from every module imported so far, so what the first 50 examples are depends on which
    # tests ran before; about one profile in four has a rate this high)
    busy = find(fault_profiles(space), lambda profile: profile.crash_per_minute > 3,
                settings=settings(FIRST_FOUND, max_examples=1000))
    assert busy.crash_per_minute <= 6 and busy.crash_downtime_s_min <= busy.crash_downtime_s_max
    assert busy.loss_probability <= 0.1  # the harness's default bound for a profile


def test_the_loader_is_the_authority_and_repairs_are_minimal() -> None:
    from harness.deploy import Deploy, Rollback
    from harness.timeline import ScheduledFault

    script = (ScheduledFault(1, Rollback(deployment="deploy-1")),
              ScheduledFault(2, Deploy(version="v2", sample=2, fraction=0.5)))
    repaired = valid_scenario(dataclasses.replace(VERSIONED, faults=script))
    assert repaired is not None
    # the rollback named no earlier deployment: dropped; sample with fraction: sample reset
    assert [s.fault for s in repaired.faults] == [Deploy(version="v2", fraction=0.5)]


def test_unknown_kinds_and_families_are_refused() -> None:
    assert fault_kinds(["clock"]) == ("clock_skew", "clock_drift", "clock_jump")
    with pytest.raises(ValueError, match="unknown fault kind"):
        fault_kinds(["crash", "explode"])


def test_choices_narrow_fault_and_profile_fields_references_included() -> None:
    narrow = {"deploy.version": ("v2",), "random_faults.deploy_versions": ("v1",),
              "random_faults.deploy_phase": ("full",)}
    space = FaultSpace.of(VERSIONED, choices=narrow)
    deploy = find(faults(space, "deploy"), lambda fault: True, settings=FIRST_FOUND)
    assert deploy.version == "v2"
    profile = find(fault_profiles(space), lambda profile: profile.deploy_per_minute > 0,
                   settings=FIRST_FOUND)
    assert profile.deploy_versions == ("v1",) and profile.deploy_phase == "full"  # never () = all


def test_the_faults_of_a_scenario_meet_on_its_focus() -> None:
    """Every node field may also name the scenario's focus, one node or selector drawn once per
    scenario: two faults of a scenario then name a common node about twice as often."""
    from random import Random

    from harness.fuzz import draw_case

    def share_meeting(focus: bool) -> float:
        space = dataclasses.replace(FaultSpace.of(DYNAMO), focus=focus)
        strategy = scenarios(DYNAMO, space=space, min_faults=2, max_faults=4,
                             random_faults=False, vary=())
        meeting = pairs = 0
        for index in range(300):
            drawn = draw_case(strategy, Random(index))
            if drawn is None:
                continue
            targets = [set(node_names(s.fault)) - {"*"} for s in drawn[0].faults]
            for i, first in enumerate(targets):
                for second in targets[i + 1:]:
                    pairs += 1
                    meeting += bool(first & second)
        return meeting / pairs

    without, with_focus = share_meeting(False), share_meeting(True)
    assert with_focus > 1.5 * without


def test_topology_nodes_are_drawn_tier_by_tier() -> None:
    """Three routers are as likely to be hit as nine storage nodes; ``*`` is a tier of its own."""
    from collections import Counter
    from random import Random

    from harness.fuzz import draw_case
    from harness.strategies import topology_nodes

    base = load_scenario(ROOT / "benchmarks" / "bug_hunt_base.yaml")
    space = FaultSpace.of(base)
    assert [len(tier) for tier in space.tiers] == [9, 3, 3]
    strategy = topology_nodes(space, wildcard=True)
    drawn = Counter(draw_case(strategy, Random(seed))[0]  # type: ignore[index]
                    for seed in range(800))
    routers = sum(count for name, count in drawn.items() if name.startswith("router"))
    storage = sum(count for name, count in drawn.items() if name.startswith("s"))
    assert 0.18 <= routers / 800 <= 0.32 and 0.18 <= storage / 800 <= 0.32
    assert 0.18 <= drawn["*"] / 800 <= 0.32 and set(drawn) == set(space.nodes) | {"*"}


def test_a_default_the_choices_or_bounds_rule_out_is_never_drawn() -> None:
    """A field keeps its default about half the time, but not a default the space rules out:
    ``deploy.phase`` narrowed to ``read`` never draws its default ``full`` (a one-shot deploy)."""
    from random import Random

    from harness.fuzz import draw_case

    space = FaultSpace.of(VERSIONED, choices={"deploy.phase": ("read",)},
                          bounds={"gray_link.drop_probability": (0.0, 0.5)})
    def drawn(space: FaultSpace, kind: str) -> list[Any]:
        return [draw_case(faults(space, kind), Random(seed))[0]  # type: ignore[index]
                for seed in range(60)]

    assert {deploy.phase for deploy in drawn(space, "deploy")} == {"read"}
    assert max(link.drop_probability for link in drawn(space, "gray_link")) <= 0.5
    free = FaultSpace.of(VERSIONED)  # without them, the default is drawn as usual
    assert "full" in {deploy.phase for deploy in drawn(free, "deploy")}
