"""Deployments as faults (harness/deploy.py, harness/rollout.py), against a tiny deployable system."""

from __future__ import annotations

import pytest
from deployable_system import VersionedSystem, deployable_world

from harness import ScenarioError, ScheduledFault, World, parse_scenario, run_scenario
from harness.deploy import Deploy, DeploymentRefused, Rollback
from harness.rollout import deployment_metrics, deployments_of
from harness.scenario_loader import scenario_to_yaml
from harness.timeline import FaultProfile, FaultTimeline, expand_profile

SECOND = 1_000_000_000
FIXTURE = "deployable_system:VersionedSystem"


def strike(world: World, timeline: FaultTimeline, at_s: float, fault: object) -> None:
    timeline.schedule(ScheduledFault(at_s, fault))  # type: ignore[arg-type]


def boots_of(system: VersionedSystem, version: str) -> list[str]:
    return [node for _, node, v, _ in system.boots if v == version]


# -- rollout shapes ----------------------------------------------------------------------------------
def test_a_rolling_deploy_restarts_nodes_batch_by_batch_into_the_new_version() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 1.0, Deploy(version="v2", roles=("storage",), batch_size=2,
                                        downtime_s=1.0, bake_s=2.0, handoff=False))
    world.kernel.run(until_ns=30 * SECOND)
    rollout = deployments_of(world).rollouts["deploy-1"]
    assert [b.nodes for b in rollout.batches] == [["s1", "s2"], ["s3", "s4"], ["s5", "s6"]]
    boots = [(t // SECOND, node) for t, node, v, _ in system.boots if v == "v2"]
    assert boots == [(2, "s1"), (2, "s2"), (5, "s3"), (5, "s4"), (8, "s5"), (8, "s6")]
    assert rollout.state == "done" and all(system.installed[n] == ("v2", True)
                                           for n in ("s1", "s3", "s6"))
    assert system.installed["r1"] == ("v1", False)  # routers were not selected
    metrics = deployment_metrics(world)
    assert metrics["deploy.deploy-1.share_of_fleet"] == 1.0
    assert metrics["deploy.deploy-1.duration_s"] == pytest.approx(9.0)


def test_stateful_batches_never_span_two_availability_zones() -> None:
    world, _, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", batch_size=3, downtime_s=0.1))
    world.kernel.run(until_ns=1 * SECOND)
    batches = [b.nodes for b in deployments_of(world).rollouts["deploy-1"].batches]
    assert batches == [["r1", "r2"], ["s1", "s2"], ["s3", "s4"], ["s5", "s6"]]  # stateless first


def test_canary_then_the_rest_and_all_at_once() -> None:
    world, _, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="c", roles=("storage",),
                                        strategy="canary", canary_size=1, batch_size=2))
    strike(world, timeline, 0.0, Deploy(version="v2", name="a", roles=("router",),
                                        strategy="all_at_once"))
    world.kernel.run(until_ns=1 * SECOND)
    rollouts = deployments_of(world).rollouts
    assert [b.nodes for b in rollouts["c"].batches] == [["s1"], ["s2"], ["s3", "s4"], ["s5", "s6"]]
    assert [b.nodes for b in rollouts["a"].batches] == [["r1", "r2"]]


def test_selection_by_name_az_fraction_and_seed_drawn_sample() -> None:
    world, _, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="named", nodes=("s4", "s1")))
    strike(world, timeline, 0.0, Deploy(version="v2", name="az", azs=("az-b",)))
    strike(world, timeline, 0.0, Deploy(version="v2", name="half", roles=("storage",),
                                        fraction=0.5))
    strike(world, timeline, 0.0, Deploy(version="v2", name="drawn", sample=3))
    world.kernel.run(until_ns=1)
    chosen = {name: [n for b in r.batches for n in b.nodes]
              for name, r in deployments_of(world).rollouts.items()}
    assert chosen["named"] == ["s1", "s4"]
    assert chosen["az"] == ["r2", "s3", "s4"]
    assert chosen["half"] == ["s1", "s2", "s3"]
    assert len(chosen["drawn"]) == 3

    def drawn(seed: int) -> list[str]:
        other, _, line = deployable_world(seed)
        strike(other, line, 0.0, Deploy(version="v2", name="drawn", sample=3))
        other.kernel.run(until_ns=1)
        return [n for b in deployments_of(other).rollouts["drawn"].batches for n in b.nodes]

    assert drawn(1) == chosen["drawn"] and {tuple(drawn(s)) for s in range(1, 8)} != {
        tuple(chosen["drawn"])}


def test_handoff_waits_until_the_node_is_ready_to_stop() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 1.0, Deploy(version="v2", nodes=("s1",), downtime_s=1.0))
    world.kernel.run(until_ns=5 * SECOND)
    assert system.draining == {} and system.eligible_again[0][1] == "s1"
    assert [(t, n) for t, n, v, _ in system.boots if v == "v2"] == [(round(2.2 * SECOND), "s1")]
    assert world.node("s1").outages == [[round(1.2 * SECOND), round(2.2 * SECOND)]]


# -- read then write (M25) ---------------------------------------------------------------------------
def test_phase_w_is_refused_while_a_node_cannot_read_and_says_which() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="r", phase="read", nodes=("s1", "s2"),
                                        strategy="all_at_once", downtime_s=0.1))
    strike(world, timeline, 1.0, Deploy(version="v2", name="w", phase="write"))
    world.kernel.run(until_ns=2 * SECOND)
    assert "w" not in deployments_of(world).rollouts
    (skipped,) = [entry for entry in timeline.log if entry.kind == "deploy" and
                  entry.description.startswith("skipped")]
    assert "r1 runs v1" in skipped.description and "cannot read format 2" in skipped.description
    assert "s1 runs" not in skipped.description
    assert system.installed["s1"] == ("v2", False)  # phase R: installed, not emitting
    assert deployment_metrics(world)["deploy.refusals"] == 1


def test_phase_w_is_judged_on_what_runs_not_on_what_is_installed() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="r", phase="read",
                                        strategy="all_at_once", downtime_s=0.1))
    strike(world, timeline, 0.1, Deploy(version="v2", name="w", phase="write"))  # mid-handoff
    world.kernel.run(until_ns=1 * SECOND)
    assert system.installed["s1"] == ("v2", False)
    (refused,) = [entry for entry in timeline.log if entry.description.startswith("skipped")]
    assert "s1 runs v1" in refused.description


def test_phase_w_after_phase_r_everywhere_switches_flags_without_restarts() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="r", phase="read",
                                        strategy="all_at_once", downtime_s=0.1))
    strike(world, timeline, 1.0, Deploy(version="v2", name="w", phase="write", batch_size=4))
    world.kernel.run(until_ns=3 * SECOND)
    boots = len(system.boots)
    assert deployments_of(world).rollouts["w"].state == "done"
    assert all(system.installed[n] == ("v2", True) for n in world.node_names())
    assert len(system.boots) == boots == 16  # 8 first boots, 8 for phase R, none for W
    assert [n for t, n, on in system.flags if on] == ["r1", "r2", "s1", "s2", "s3", "s4", "s5",
                                                      "s6"]


# -- rollback --------------------------------------------------------------------------------------
def test_an_alarm_during_the_canary_bake_rolls_back_automatically() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 1.0, Deploy(version="v3-bad", name="bad", roles=("storage",),
                                        strategy="canary", bake_s=5, downtime_s=0.5, handoff=False,
                                        alarm_error_rate=0.05))
    world.kernel.run(until_ns=20 * SECOND)
    rollout = deployments_of(world).rollouts["bad"]
    assert rollout.state == "rolled-back" and rollout.hit == {"s1"}
    assert system.installed["s1"] == ("v1", False) and boots_of(system, "v3-bad") == ["s1"]
    metrics = deployment_metrics(world)
    assert metrics["deploy.bad.share_of_fleet"] == round(1 / 6, 4)
    assert metrics["deploy.bad.time_to_alarm_s"] == pytest.approx(1.0)  # 0.5 down, first check
    assert metrics["deploy.bad.time_to_roll_back_s"] == pytest.approx(0.5)  # one restart
    assert any("alarm: error rate 50.0%" in text for _, text in rollout.events)


def test_a_scripted_rollback_of_a_finished_deploy_restores_versions_and_flags() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", name="r", phase="read",
                                        strategy="all_at_once", downtime_s=0.1))
    strike(world, timeline, 1.0, Deploy(version="v2", name="w", phase="write",
                                        strategy="all_at_once"))
    strike(world, timeline, 2.0, Rollback(deployment="w"))
    strike(world, timeline, 3.0, Rollback(deployment="r"))
    world.kernel.run(until_ns=2.5 * SECOND)
    assert all(system.installed[n] == ("v2", False) for n in world.node_names())
    boots = len(system.boots)
    world.kernel.run(until_ns=10 * SECOND)
    assert all(system.installed[n] == ("v1", False) for n in world.node_names())
    assert len(system.boots) == boots + 8  # the W rollback restarted nothing; the R one, all


def test_a_rollback_of_an_unknown_deployment_is_refused() -> None:
    world, _, timeline = deployable_world()
    strike(world, timeline, 0.0, Rollback(deployment="nope"))
    world.kernel.run(until_ns=1)
    assert "no such deployment has started" in timeline.log[0].description


def test_the_heal_phase_stops_a_rollout_where_it_is() -> None:
    world, system, timeline = deployable_world()
    strike(world, timeline, 0.0, Deploy(version="v2", roles=("storage",), bake_s=10))
    world.kernel.run(until_ns=5 * SECOND)
    timeline.undo_all()
    world.kernel.run(until_ns=60 * SECOND)
    rollout = deployments_of(world).rollouts["deploy-1"]
    assert rollout.state == "stopped" and boots_of(system, "v2") == ["s1"]  # a partial deploy


def test_direct_python_api_raises_refusals() -> None:
    world, _, _ = deployable_world()
    with pytest.raises(DeploymentRefused, match="no such deployment"):
        deployments_of(world).rollback("x", "test")


# -- scenarios and profiles ----------------------------------------------------------------------------
SCENARIO = f"""
name: deploys
duration_s: 20
heal_s: 1
topology:
  az-a: [s1, s2]
  az-b: [s3, {{name: r1, role: router}}]
system: {{use: "{FIXTURE}"}}
faults:
  - {{at_s: 1, deploy: {{version: v2, name: up, phase: read, strategy: all_at_once}}}}
  - {{at_s: 5, deploy: {{version: v2, name: w, phase: write}}}}
  - {{at_s: 9, rollback: {{deployment: w}}}}
variants:
  scripted:
    expect: [deploy.up.completed == 1]
  one-shot:
    faults:
      - {{at_s: 1, deploy: {{version: v2, name: up}}}}
    expect: [deploy.up.nodes == 4]
"""


def test_a_scenario_scripts_deployments_and_a_variant_brings_its_own() -> None:
    scenario = parse_scenario(SCENARIO)
    assert parse_scenario(scenario_to_yaml(scenario)) == scenario
    scripted = run_scenario(scenario.variant("scripted"))
    assert scripted.passed, scripted.render_text()
    assert scripted.metrics["deploy.w.rolled_back"] == 1
    one_shot = run_scenario(scenario.variant("one-shot"))
    assert one_shot.passed and "deploy.w.rolled_back" not in one_shot.metrics


@pytest.mark.parametrize(("fault", "where", "words"), [
    ("{at_s: 1, deploy: {version: v9}}", "faults[0].deploy.version",
     "'v9' is not a version of VersionedSystem; versions: v1, v2, v3-bad"),
    ("{at_s: 1, deploy: {version: v2, strategy: blue_green}}", "faults[0].deploy.strategy",
     "allowed: one of 'all_at_once', 'rolling', 'canary'"),
    ("{at_s: 1, deploy: {version: v2, batch_size: 0}}", "faults[0].deploy.batch_size",
     "0 is not allowed; allowed: >= 1"),
    ("{at_s: 1, deploy: {version: v2, phase: write}}", "faults[0].deploy.phase",
     "comes before any deployment of a version that reads format 2"),
    ("{at_s: 1, deploy: {version: v2, roles: [db]}}", "faults[0].deploy.roles",
     "'db' is not a role VersionedSystem deploys to; roles: storage, router"),
    ("{at_s: 1, deploy: {version: v2, fraction: 0.5, sample: 2}}", "faults[0].deploy.sample",
     "give fraction or sample, not both"),
    ("{at_s: 1, deploy: {version: v2, alarm_error_rate: 0.1}}", "faults[0].deploy.bake_s",
     "give bake_s > 0"),
    ("{at_s: 1, rollback: {deployment: up}}", "faults[0].rollback.deployment",
     "'up' names no earlier deployment"),
    ("{at_s: 1, deploy: {version: v2, nodes: [s7]}}", "faults[0].deploy.nodes[0]",
     "'s7' is not a node in the topology"),
])
def test_bad_deployments_name_file_line_field_value_and_what_is_allowed(
        fault: str, where: str, words: str) -> None:
    text = SCENARIO.split("faults:")[0] + f"faults:\n  - {fault}\n"
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text, "d.yaml")
    message = str(error.value)
    assert message.startswith("d.yaml:10:") and where in message and words in message, message


def test_a_system_without_versions_cannot_be_deployed() -> None:
    text = SCENARIO.split("faults:")[0].replace(FIXTURE, "systems.register:RegisterSystem")
    with pytest.raises(ScenarioError, match="declares no VERSIONS"):
        parse_scenario(text + "faults:\n  - {at_s: 1, deploy: {version: v2}}\n")
    with pytest.raises(ScenarioError, match="random_faults.deploy_per_minute"):
        parse_scenario(text + "random_faults: {deploy_per_minute: 1}\n")


def test_random_profiles_draw_partial_deploys_and_rollbacks_from_the_seed() -> None:
    world, _, _ = deployable_world()
    profile = FaultProfile(deploy_per_minute=6, deploy_fraction_max=0.5,
                           deploy_rollback_probability=0.5, crash_per_minute=3)
    from harness.rng import Rng

    drawn = expand_profile(profile, world, Rng(3), 0.0, 60.0)
    deploys = [s.fault for s in drawn if isinstance(s.fault, Deploy)]
    assert deploys and all(1 <= d.sample <= 4 and d.phase == "read" for d in deploys)
    assert any(isinstance(s.fault, Rollback) for s in drawn)
    assert drawn == expand_profile(profile, world, Rng(3), 0.0, 60.0)
    crashes = [s for s in drawn if s.fault.kind == "crash"]
    alone = expand_profile(FaultProfile(crash_per_minute=3), world, Rng(3), 0.0, 60.0)
    assert crashes == alone  # drawing deploys shifts no other family
