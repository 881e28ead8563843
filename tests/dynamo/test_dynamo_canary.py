"""Canaries (M29), their alarm (M28) and the remediation it triggers (S4).

The alarm and the automation are sans-I/O and tested with fake time and a fake scheduler; the
canary program is tested in a short simulated run of the reference system.
"""

from __future__ import annotations

import pytest

from harness import Scenario, SystemSpec, Topology, run_scenario
from harness.world import NodeSpec
from systems.dynamo.canary import Alarm, CanaryMonitor, Probe, probe_key
from systems.dynamo.config import CanaryConfig, DynamoConfig
from systems.dynamo.partitioning import build_partition_map, find_partition

S = 1_000_000_000
MS = 1_000_000


def alarm(window_s: float = 5, ratio: float = 0.5, min_probes: int = 4) -> Alarm:
    return Alarm(round(window_s * S), ratio, min_probes)


def feed(target: Alarm, outcomes: str, start_s: float = 0.0, step_s: float = 0.5,
         partition: int = 0) -> list:
    """Feed probes completing every ``step_s`` from ``start_s`` (invoked 0.1 s before): ``o`` ok,
    ``x`` failed. Returns the alarm events they fired."""
    events = []
    for index, outcome in enumerate(outcomes):
        done = round((start_s + index * step_s) * S)
        event = target.observe(done, done - 100 * MS, partition, outcome == "o")
        if event is not None:
            events.append(event)
    return events


# -- the alarm -----------------------------------------------------------------------------------------
def test_the_alarm_fires_once_the_error_ratio_is_reached():
    events = feed(alarm(), "oooxxxx")
    assert len(events) == 1
    [event] = events
    # 3 failures of 6 probes in the window; the earliest failure was invoked at 1.4 s
    assert (event.probes, event.failed, event.time_ns) == (6, 3, 2500 * MS)
    assert event.onset_ns == 1_400 * MS


def test_the_alarm_needs_enough_probes_and_enough_failures():
    assert feed(alarm(min_probes=4), "xxx") == []  # three probes: too few to judge
    assert feed(alarm(ratio=0.5), "ooooooooxxxx") == []  # 4 of the last 10: below half
    assert feed(alarm(window_s=100, ratio=0.5), "oooooxxxx") == []  # 4 of 9 failed: below half


def test_old_evidence_leaves_the_window():
    # failures spread thinly: one in each run of four, never half of the last 2 s
    assert feed(alarm(window_s=2, min_probes=4), "xoooxoooxooo") == []
    # the same failures close together do fire
    assert len(feed(alarm(window_s=2, min_probes=4), "oooooxxxoooo")) == 1


def test_the_alarm_clears_and_fires_again():
    target = alarm(window_s=2, min_probes=2)
    events = feed(target, "xxxx" + "oooooooo" + "xxxx")
    assert len(events) == 2 and target.firing == {0}


def test_partitions_have_their_own_alarms():
    target = alarm()
    assert feed(target, "oooo", partition=1) == []
    assert len(feed(target, "xxxx", partition=2)) == 1
    assert target.firing == {2}


def test_ignoring_evidence_from_before_a_remediation():
    target = alarm(min_probes=4)
    assert len(feed(target, "xxxx")) == 1
    target.ignore_before(0, 2 * S)
    assert target.firing == set()
    # probes invoked before 2 s (still in flight then) complete as failures: they accuse no one
    late = [target.observe(round((2 + i * 0.2) * S), round(1.5 * S), 0, False) for i in range(5)]
    assert late == [None] * 5
    # fresh failures do
    assert len(feed(target, "xxxx", start_s=3.5)) == 1


@pytest.mark.parametrize("settings", [(0, 0.5, 1), (S, 0.0, 1), (S, 1.5, 1), (S, 0.5, 0)])
def test_bad_alarm_settings_are_refused(settings):
    with pytest.raises(ValueError):
        Alarm(*settings)


# -- the automation ------------------------------------------------------------------------------------
class FakeControlPlane:
    """True time, a scheduler and M11's switch, by hand."""

    def __init__(self, leaders: dict[int, str | None]) -> None:
        self.now = 0
        self.leaders = leaders
        self.scheduled: list[tuple[int, object]] = []
        self.switched: list[tuple[int, str, bool]] = []

    def monitor(self, remediate: bool = True, **settings) -> CanaryMonitor:
        config = CanaryConfig(enabled=True, alarm_window_s=5, alarm_min_probes=3,
                              remediation_delay_ms=500, ineligible_s=20, **settings)
        return CanaryMonitor(config, remediate, lambda: self.now, self.leaders.get,
                             lambda node, ok: self.switched.append((self.now, node, ok)),
                             lambda delay, action: self.scheduled.append((self.now + delay, action)))

    def run_until(self, time_ns: int) -> None:
        while self.scheduled and min(at for at, _ in self.scheduled) <= time_ns:
            self.scheduled.sort(key=lambda entry: entry[0])
            self.now, action = self.scheduled.pop(0)
            action()
        self.now = time_ns

    def deliver(self, monitor: CanaryMonitor, *probes: Probe) -> None:
        """Each probe reaches the monitor when it completes (due actions run first)."""
        for finished in probes:
            self.run_until(finished.completed_ns)
            monitor.record(finished)


def probe(partition: int, ok: bool, done_s: float) -> Probe:
    done = round(done_s * S)
    return Probe("canary-1", "az-a", "r1", partition, "put_item", done - 100 * MS, done, ok,
                 "" if ok else "unavailable")


def failing(partition: int, *done_s: float) -> list[Probe]:
    return [probe(partition, False, done) for done in done_s]


def test_an_alarm_makes_the_leader_ineligible_for_a_while():
    plane = FakeControlPlane({0: "s1", 1: "s4"})
    monitor = plane.monitor()
    plane.deliver(monitor, *failing(0, 10, 10.3, 10.6))
    assert monitor.alarm.events and plane.switched == []  # the automation reacts after its delay
    plane.run_until(12 * S)
    assert plane.switched == [(11_100 * MS, "s1", False)]
    plane.run_until(40 * S)
    assert plane.switched[-1] == (31_100 * MS, "s1", True)
    metrics = monitor.metrics()
    assert metrics["canary.remediations"] == 1 and metrics["canary.alarms"] == 1
    assert metrics["canary.time_to_alarm_s"] == pytest.approx(0.7)  # invoked at 9.9 s, alarm 10.6 s


def test_without_the_mitigation_the_alarm_only_pages():
    plane = FakeControlPlane({0: "s1"})
    monitor = plane.monitor(remediate=False)
    plane.deliver(monitor, *failing(0, 10, 10.3, 10.6, 10.9, 11.2, 11.5))
    plane.run_until(60 * S)
    assert plane.switched == [] and plane.scheduled == []
    assert monitor.metrics()["canary.alarms"] == 1 and monitor.metrics()["canary.remediations"] == 0


def test_an_unknown_leader_is_left_alone():
    plane = FakeControlPlane({0: None})
    monitor = plane.monitor()
    plane.deliver(monitor, *failing(0, 10, 10.3, 10.6))
    plane.run_until(60 * S)
    assert plane.switched == [] and monitor.metrics()["canary.remediations"] == 0
    assert [record.node for record in monitor.remediations] == [None]


def test_a_failed_remediation_is_followed_by_another():
    """The new leader is unreachable too: fresh failures raise the alarm again, and leadership
    moves on; the failures of probes sent before the first move accuse nobody."""
    plane = FakeControlPlane({0: "s1"})
    monitor = plane.monitor()
    plane.deliver(monitor, *failing(0, 10, 10.3, 10.6))
    plane.run_until(12 * S)  # s1 made ineligible at 11.1 s; s4 takes over
    plane.leaders[0] = "s4"
    stale = [Probe("canary-1", "az-a", "r1", 0, "put_item", round(11.0 * S), round(12.5 * S + i),
                   False, "unavailable") for i in range(4)]  # sent before 11.1 s
    plane.deliver(monitor, *stale)
    plane.run_until(14 * S)
    assert [node for _, node, ok in plane.switched if not ok] == ["s1"]
    plane.deliver(monitor, *failing(0, 14, 14.3, 14.6))
    plane.run_until(16 * S)
    assert [node for _, node, ok in plane.switched if not ok] == ["s1", "s4"]
    assert monitor.metrics()["canary.alarms"] == 2


def test_a_node_held_twice_is_released_only_by_the_last_hold():
    plane = FakeControlPlane({0: "s1", 1: "s1"})
    monitor = plane.monitor()
    plane.deliver(monitor, *failing(0, 10, 10.3, 10.6))  # held from 11.1 s to 31.1 s
    plane.deliver(monitor, *failing(1, 15, 15.3, 15.6))  # held from 16.1 s to 36.1 s
    plane.run_until(32 * S)
    assert [ok for _, _, ok in plane.switched] == [False, False]
    plane.run_until(37 * S)
    assert [ok for _, _, ok in plane.switched] == [False, False, True]


# -- probe keys and the canary program ---------------------------------------------------------------------
def test_probe_keys_hash_into_their_partition():
    partition_map = build_partition_map(12, {"az-a": ["s1", "s2"], "az-b": ["s3", "s4"],
                                             "az-c": ["s5", "s6"]})
    keys = {p: probe_key("canary-2", p, partition_map) for p in range(12)}
    assert all(find_partition(partition_map, key).partition == p for p, key in keys.items())
    assert len(set(keys.values())) == 12


def test_canaries_probe_every_partition_from_every_az_on_a_healthy_store():
    topology = Topology.from_azs({"az-a": ["s1"], "az-b": ["s2"], "az-c": ["s3"]}).with_nodes(
        NodeSpec("r1", "az-a", "router"), NodeSpec("r2", "az-b", "router"))
    config = DynamoConfig(partitions=2, canaries=CanaryConfig(enabled=True, interval_ms=500))
    scenario = Scenario(name="canaries", topology=topology, duration_s=15, heal_s=5,
                        system=SystemSpec("systems.dynamo:DynamoSystem", config))
    result = run_scenario(scenario, 1)
    assert result.passed, result.render_text()
    metrics = result.metrics
    # three canaries (one per AZ; az-c has no router, so its canary uses both): 4 endpoints x 2
    # partitions x 2 probes a second, for the ~13 s before the clients' quiet period (minus the
    # first second or two, before the partitions have leaders: those fail, and are counted)
    assert 150 <= metrics["canary.probes"] <= 4 * 2 * 2 * 15
    assert metrics["canary.availability"] >= 0.85 and metrics["canary.alarms"] <= 1
    assert metrics["availability.server_side"] >= 0.99
