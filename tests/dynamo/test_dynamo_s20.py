"""S20, synchronized membership re-requests (the 2015 event): the membership agent driven directly,
then the scenario's variants from one seed.

The unit tests call ``MembershipAgent`` with ``(now_ns, input)`` and inspect its effects: no
simulator. The scenario tests run ``scenarios/s20-membership-storm.yaml``: without retry jitter a
2 s blip leaves the fleet out of service for good; with it (or with a longer timeout) the fleet
recovers within seconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from harness import Result, load_scenario
from harness.simulation import Simulation
from systems.dynamo.config import DynamoConfig, Mitigations, Timing
from systems.dynamo.effects import CancelTimer, Note, Send, SetTimer
from systems.dynamo.membership import FETCH_TIMER, LEASE_TIMER, TIMEOUT_TIMER, MembershipAgent
from systems.dynamo.messages import MapReply, MapRequest, PartitionEntry

MS = 1_000_000
S = 1_000_000_000
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "s20-membership-storm.yaml"
MAP = (PartitionEntry(0, 0, 50, ("s1", "s2", "s3")), PartitionEntry(1, 50, 100, ("s2", "s3", "s4")))
BLIP_END_S = 12.0  # the scenario's partition: 10 s to 12 s
Run = tuple[Result, Simulation]


# -- helpers ---------------------------------------------------------------------------------------
def make_agent(jitter: bool = True, seed: int = 1, name: str = "s1",
               hosted: tuple[int, ...] = (0,)) -> MembershipAgent:
    config = DynamoConfig(timing=Timing(membership_refresh_s=10, membership_timeout_ms=500,
                                        membership_lease_s=30, membership_retry_ms=100,
                                        membership_backoff_ms_max=5000),
                          mitigations=Mitigations(membership_retry_jitter=jitter))
    return MembershipAgent(name, "metadata", hosted, config, random.Random(seed))


def timer(effects: list[Any], name: str) -> SetTimer:
    (found,) = [e for e in effects if isinstance(e, SetTimer) and e.name == name]
    return found


def fetch(agent: MembershipAgent, now_ns: int) -> MapRequest:
    effects = agent.on_timer(now_ns, FETCH_TIMER)
    (send,) = [e for e in effects if isinstance(e, Send)]
    assert send.destination == "metadata" and isinstance(send.message, MapRequest)
    assert timer(effects, TIMEOUT_TIMER).delay_ns == 500 * MS
    return send.message


def notes(effects: list[Any]) -> list[str]:
    return [e.kind for e in effects if isinstance(e, Note)]


def retry_delays(agent: MembershipAgent, failures: int) -> list[int]:
    """Fail ``failures`` fetches in a row by timeout; the wait chosen after each."""
    delays, now = [], 0
    for _ in range(failures):
        fetch(agent, now)
        now += 500 * MS
        delays.append(timer(agent.on_timer(now, TIMEOUT_TIMER), FETCH_TIMER).delay_ns)
        now += delays[-1]
    return delays


# -- the agent, sans-I/O ---------------------------------------------------------------------------
def test_a_node_boots_in_service_and_fetches_the_whole_map_within_its_first_period() -> None:
    agent = make_agent()
    effects = agent.start(0)
    assert timer(effects, LEASE_TIMER).delay_ns == 30 * S
    assert 0 <= timer(effects, FETCH_TIMER).delay_ns < 10 * S
    assert agent.in_service(0) and agent.in_service(30 * S - 1)
    assert fetch(agent, S).partition is None  # the whole map: the large reply


def test_a_successful_fetch_renews_the_lease_and_schedules_the_next_refresh() -> None:
    agent = make_agent()
    agent.start(0)
    request = fetch(agent, 5 * S)
    effects = agent.on_message(5 * S + 40 * MS, "metadata", MapReply(request.request_id, True, MAP))
    assert CancelTimer(TIMEOUT_TIMER) in effects
    assert timer(effects, LEASE_TIMER).delay_ns == 30 * S
    assert timer(effects, FETCH_TIMER).delay_ns == 10 * S
    assert agent.in_service(35 * S)  # the lease runs from the reply, not from boot


def test_when_the_lease_runs_out_the_node_leaves_service_until_a_fetch_succeeds() -> None:
    agent = make_agent()
    agent.start(0)
    for second in range(1, 30):  # every fetch of the lease times out
        fetch(agent, second * S)
        agent.on_timer(second * S + 500 * MS, TIMEOUT_TIMER)
    assert agent.in_service(30 * S - 1)
    assert notes(agent.on_timer(30 * S, LEASE_TIMER)) == ["left-service"]
    assert not agent.in_service(30 * S) and not agent.in_service(40 * S)
    assert agent.statistics()["left_service"] == 1
    request = fetch(agent, 41 * S)
    effects = agent.on_message(41 * S, "metadata", MapReply(request.request_id, True, MAP))
    assert notes(effects) == ["rejoined-service"]
    assert agent.in_service(41 * S) and agent.statistics()["in_service"]


def test_without_jitter_every_node_retries_at_the_same_fixed_interval() -> None:
    first, second = make_agent(jitter=False, seed=1), make_agent(jitter=False, seed=2, name="s2")
    assert retry_delays(first, 6) == retry_delays(second, 6) == [100 * MS] * 6  # lockstep


def test_with_jitter_retries_back_off_exponentially_with_full_jitter() -> None:
    first, second = make_agent(seed=1), make_agent(seed=2, name="s2")
    delays = retry_delays(first, 10)
    for failures, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(5000, 100 * 2 ** (failures - 1)) * MS
    assert delays != retry_delays(second, 10)  # the fleet spreads out
    assert sum(delays[5:]) > sum(delays[:5])  # and slows down
    assert first.retry_delay_ms(1000) <= 5000  # capped, however long the failures last


def test_rejections_late_replies_and_maps_without_the_node_are_failures() -> None:
    agent = make_agent(jitter=False)
    agent.start(0)
    old = fetch(agent, S)
    agent.on_timer(S + 500 * MS, TIMEOUT_TIMER)  # gave up on it
    assert agent.on_message(S + 600 * MS, "metadata", MapReply(old.request_id, True, MAP)) == []
    rejected = fetch(agent, 2 * S)
    effects = agent.on_message(2 * S, "metadata", MapReply(rejected.request_id, False))
    assert timer(effects, FETCH_TIMER).delay_ns == 100 * MS
    stranger = make_agent(jitter=False, name="s9")
    stranger.start(0)
    request = fetch(stranger, S)
    stranger.on_message(S, "metadata", MapReply(request.request_id, True, MAP))
    assert agent.statistics()["late_replies"] == 1 and agent.statistics()["rejections"] == 1
    assert stranger.statistics()["unconfirmed"] == 1 and stranger.failures == 1


# -- the scenario ----------------------------------------------------------------------------------
def run_variant(name: str) -> Run:
    simulation = Simulation(load_scenario(SCENARIO).variant(name), 1)
    return simulation.run(), simulation


def success_ratio(simulation: Simulation, from_s: float, to_s: float) -> float:
    operations = [op for op in simulation.system.history.operations()
                  if from_s * S <= op.invoked_ns < to_s * S]
    assert operations, f"no operations invoked in [{from_s}, {to_s}) s"
    return sum(op.completion == "ok" for op in operations) / len(operations)


def membership_notes(simulation: Simulation, kind: str) -> list[tuple[float, str]]:
    return [(time / S, node) for time, node, key, note_kind, _ in
            simulation.system.observations.notes if key == "membership" and note_kind == kind]


@pytest.fixture(scope="module")
def without_jitter() -> Run:
    return run_variant("mitigation-off")


@pytest.fixture(scope="module")
def with_jitter() -> Run:
    return run_variant("mitigation-on")


def test_s20_without_jitter_the_bad_state_outlasts_the_blip(without_jitter: Run) -> None:
    result, simulation = without_jitter
    assert result.passed, result.render_text()  # its expectations, liveness failing among them
    verdicts = {check.name: check.verdict for check in result.checks}
    assert verdicts["liveness"] == "fail"
    left = membership_notes(simulation, "left-service")
    assert len({node for _, node in left}) == 15 and min(time for time, _ in left) > BLIP_END_S
    assert membership_notes(simulation, "rejoined-service") == []  # nobody ever comes back
    assert result.metrics["membership.out_of_service_at_end"] == 15
    assert success_ratio(simulation, 30.0, 40.0) < 0.05  # the last 10 s before the quiet period
    assert result.metrics["membership.refusals"] > 100  # replicas refused clients
    assert result.metrics["membership.late_replies"] > 100  # the service worked for nobody


def test_s20_with_jitter_the_fleet_recovers_within_seconds(with_jitter: Run) -> None:
    result, simulation = with_jitter
    assert result.passed, result.render_text()
    assert all(check.verdict == "pass" for check in result.checks), result.render_text()
    failed = membership_notes(simulation, "membership-fetch-failed")
    assert failed and max(time for time, _ in failed) < BLIP_END_S + 5.0
    assert result.metrics["membership.out_of_service_at_end"] == 0
    assert result.metrics["membership.out_of_service_node_s"] < 10
    assert success_ratio(simulation, 30.0, 40.0) > 0.8


def test_s20_the_same_seed_with_and_without_jitter(without_jitter: Run, with_jitter: Run) -> None:
    (off, _), (on, _) = without_jitter, with_jitter
    assert off.metrics["membership.requests"] > 20 * on.metrics["membership.requests"]
    assert off.metrics["availability.min_window_success_ratio"] < 0.1
    assert on.metrics["availability.min_window_success_ratio"] > 0.8


def test_s20_a_timeout_longer_than_a_full_queue_avoids_the_storm_without_jitter() -> None:
    result, _ = run_variant("longer-timeout")
    assert result.passed, result.render_text()
    assert result.metrics["membership.out_of_service_peak_nodes"] == 0
    assert result.metrics["membership.late_replies"] == 0
