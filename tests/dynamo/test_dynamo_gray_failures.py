"""S3: a node whose inbound or outbound traffic is lost, and the elections each deserves.

The replica protocol through the fake network of ``test_dynamo_replica_cluster`` (no simulator), then
the two S3 faults whose library files have no variants, run again with peer confirmation off: a
peer check that prevented true positives too would show up there.
"""

from __future__ import annotations

import dataclasses

import pytest
from library_runs import library_scenario
from test_dynamo_replica_cluster import NAMES, Cluster, make_config

from harness import run_scenario


def cut_inbound(cluster: Cluster, node: str) -> None:
    cluster.blocked |= {(other, node) for other in NAMES if other != node}


@pytest.mark.parametrize("peer_confirmation", [True, False])
def test_a_follower_that_hears_nobody_deposes_the_leader_only_without_peer_checks(
        peer_confirmation: bool) -> None:
    cluster = Cluster(make_config(mitigations={"peer_confirmation": peer_confirmation}))
    leader = cluster.elect()
    deaf = next(name for name in NAMES if name != leader)
    cut_inbound(cluster, deaf)
    cluster.run(15000)
    started = [node for _, node, _ in cluster.noted("election-started", after_ms=3000)]
    if peer_confirmation:
        # nobody answers its check (the answers cannot reach it): it stands down, every time
        assert started == [] and cluster.leaders() == [leader]
        suppressed = cluster.noted("election-suppressed", after_ms=3000)
        assert suppressed and {node for _, node, _ in suppressed} == {deaf}
    else:
        assert deaf in started  # it stood, and its later rounds fenced the healthy leader
        assert cluster.noted("stepped-down", after_ms=3000)


def test_a_leader_that_cannot_send_is_replaced_once() -> None:
    cluster = Cluster(make_config())
    leader = cluster.elect()
    cluster.blocked |= {(leader, other) for other in NAMES if other != leader}
    cluster.run(15000)
    elected = cluster.noted("became-leader", after_ms=3000)
    assert len(elected) == 1 and elected[0][1] != leader
    assert leader not in cluster.leaders()  # it heard the new ballot and stepped down


def test_a_follower_that_cannot_send_changes_nothing() -> None:
    cluster = Cluster(make_config())
    leader = cluster.elect()
    mute = next(name for name in NAMES if name != leader)
    cluster.blocked |= {(mute, other) for other in NAMES if other != mute}
    cluster.run(15000)
    assert cluster.noted("election-started", after_ms=3000) == []
    assert cluster.leaders() == [leader] and cluster.serving() == [leader]


@pytest.mark.parametrize(("filename", "elections"), [("s03a-leader-outbound-lost.yaml", 1),
                                                      ("s03c-follower-outbound-lost.yaml", 0)])
def test_peer_confirmation_changes_nothing_for_faults_a_and_c(filename: str, elections: int) -> None:
    scenario = library_scenario(filename)
    config = scenario.system.config
    off = dataclasses.replace(config, mitigations=dataclasses.replace(
        config.mitigations, peer_confirmation=False))
    result = run_scenario(dataclasses.replace(
        scenario, system=dataclasses.replace(scenario.system, config=off)))
    assert result.passed, result.render_text()
    assert result.metrics["elections"] == elections
