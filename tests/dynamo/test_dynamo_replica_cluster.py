"""Multi-step replica scenarios through a tiny fake network (h11 style): no simulator.

``Cluster`` joins three replicas of one partition. It carries Send effects with a fixed latency (or
drops them on blocked links), completes Persist effects after a fixed fsync latency (or holds them),
fires timers on each node's local clock (which may run at its own rate), and models a crash as losing
everything not yet fsynced. After every event it checks the lease safety oracle: at most one replica
may serve at any instant.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

import pytest

from systems.dynamo.config import Bugs, DynamoConfig, Mitigations, Timing
from systems.dynamo.effects import CancelTimer, Note, Persist, Send, SetTimer, Truncate
from systems.dynamo.items import ItemOperation
from systems.dynamo.messages import (
    Heartbeat,
    LeaderChanged,
    ReplicaReply,
    ReplicaRequest,
)
from systems.dynamo.replica import Replica

MS = 1_000_000
NAMES = ("a", "b", "c")


def make_config(timing: dict | None = None, mitigations: dict | None = None,
                bugs: dict | None = None) -> DynamoConfig:
    return DynamoConfig(timing=Timing(**(timing or {})), mitigations=Mitigations(**(mitigations or {})),
                        bugs=Bugs(**(bugs or {})))


def put(key: str, value: object) -> ItemOperation:
    return ItemOperation("put_item", key, item=(("v", value),))


def get(key: str, consistent: bool = True) -> ItemOperation:
    return ItemOperation("get_item", key, consistent=consistent)


class Cluster:
    """Three replicas, a fake network, fake disks and fake clocks. Times are true nanoseconds."""

    def __init__(self, config: DynamoConfig | None = None, ineligible: tuple[str, ...] = (),
                 rates: dict[str, float] | None = None, latency_ms: float = 1.0,
                 fsync_ms: float = 2.0, seed: int = 1) -> None:
        self.config = config or make_config()
        self.seed = seed
        self.now = 0
        self.latency = int(latency_ms * MS)
        self.fsync = int(fsync_ms * MS)
        self.clocks = {name: (0, 0, 1.0) for name in NAMES}  # (true base, local base, rate)
        for name, rate in (rates or {}).items():
            self.clocks[name] = (0, 0, rate)
        self.eligible = {name: name not in ineligible for name in NAMES}
        self.queue: list[tuple[int, int, str, str, Any]] = []
        self.sequence = 0
        self.files: dict[str, dict[str, bytes]] = {name: {} for name in NAMES}  # page cache
        self.durable: dict[str, dict[str, bytes]] = {name: {} for name in NAMES}  # platter
        self.timers: dict[str, dict[str, int]] = {name: {} for name in NAMES}
        self.incarnation = {name: 0 for name in NAMES}
        self.down: set[str] = set()
        self.blocked: set[tuple[str, str]] = set()  # (source, destination): everything dropped
        self.blocked_heartbeats: set[tuple[str, str]] = set()
        self.held: set[str] = set()  # nodes whose fsyncs do not complete until released
        self.held_fsyncs: list[tuple[str, int, str, Any]] = []
        self.outbox: list[tuple[int, str, str, Any]] = []  # to routers and metadata
        self.notes: list[tuple[int, str, Note]] = []
        self.overlaps: list[tuple[int, tuple[str, ...]]] = []
        self.replicas: dict[str, Replica] = {}
        for name in NAMES:
            self.boot(name)

    # -- clocks, nodes ------------------------------------------------------------------------
    def local(self, name: str) -> int:
        true_base, local_base, rate = self.clocks[name]
        return local_base + int((self.now - true_base) * rate)

    def set_rate(self, name: str, rate: float) -> None:
        """From now on the node's clock runs at ``rate`` (it never jumps)."""
        self.clocks[name] = (self.now, self.local(name), rate)

    def boot(self, name: str) -> None:
        self.incarnation[name] += 1
        self.timers[name] = {}
        self.files[name] = dict(self.durable[name])
        rng = random.Random(f"{self.seed}/{name}/{self.incarnation[name]}")
        replica = Replica(0, name, NAMES, ("r1",), "meta", self.config, rng, self.eligible[name])
        self.replicas[name] = replica
        files = self.files[name]
        self.apply(name, replica.recover(self.local(name), files.get("wal/p0", b""),
                                         files.get("ballot/p0", b"")))

    def crash(self, name: str) -> None:
        self.down.add(name)
        self.incarnation[name] += 1  # pending fsyncs and timers die with the incarnation
        self.held_fsyncs = [held for held in self.held_fsyncs if held[0] != name]

    def restart(self, name: str) -> None:
        self.down.discard(name)
        self.boot(name)

    def set_eligible(self, name: str, eligible: bool) -> None:
        self.eligible[name] = eligible
        self.apply(name, self.replicas[name].set_eligible(self.local(name), eligible))

    # -- effects ----------------------------------------------------------------------------------
    def push(self, at: int, kind: str, node: str, payload: Any) -> None:
        heapq.heappush(self.queue, (at, self.sequence, kind, node, payload))
        self.sequence += 1

    def apply(self, name: str, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.send(name, effect.destination, effect.message)
            elif isinstance(effect, Persist):
                files = self.files[name]
                files[effect.file] = files.get(effect.file, b"") + effect.data
                self.push(self.now + self.fsync, "fsync", name,
                          (self.incarnation[name], effect.file, effect.token))
            elif isinstance(effect, Truncate):
                for image in (self.files[name], self.durable[name]):
                    image[effect.file] = image.get(effect.file, b"")[:effect.length]
            elif isinstance(effect, SetTimer):
                delay = math.ceil(effect.delay_ns / self.clocks[name][2])
                self.timers[name][effect.name] = self.sequence
                self.push(self.now + delay, "timer", name,
                          (self.incarnation[name], effect.name, self.sequence))
            elif isinstance(effect, CancelTimer):
                self.timers[name].pop(effect.name, None)
            elif isinstance(effect, Note):
                self.notes.append((self.now, name, effect))
            else:
                raise TypeError(f"unexpected effect {effect!r}")

    def send(self, source: str, destination: str, message: Any) -> None:
        if destination not in self.replicas:
            self.outbox.append((self.now, source, destination, message))
        elif (source, destination) in self.blocked or isinstance(message, Heartbeat) and (source, destination) in self.blocked_heartbeats:
            return
        else:
            self.push(self.now + self.latency, "deliver", destination, (source, message))

    # -- the event loop ---------------------------------------------------------------------------
    def run(self, until_ms: float, probe_ms: float = 5.0) -> None:
        until = int(until_ms * MS)
        probe = self.now + int(probe_ms * MS)
        while probe <= until:
            self.push(probe, "probe", "", None)
            probe += int(probe_ms * MS)
        while self.queue and self.queue[0][0] <= until:
            at, _, kind, name, payload = heapq.heappop(self.queue)
            self.now = at
            self.dispatch(kind, name, payload)
            self.check_leases()
        self.now = until

    def dispatch(self, kind: str, name: str, payload: Any) -> None:
        if kind == "probe" or name in self.down:
            return
        replica = self.replicas[name]
        if kind == "deliver":
            source, message = payload
            self.apply(name, replica.on_message(self.local(name), source, message))
        elif kind == "timer":
            incarnation, timer, sequence = payload
            if incarnation == self.incarnation[name] and self.timers[name].get(timer) == sequence:
                del self.timers[name][timer]
                self.apply(name, replica.on_timer(self.local(name), timer))
        elif kind == "fsync":
            incarnation, file, token = payload
            if incarnation != self.incarnation[name]:
                return
            if name in self.held:
                self.held_fsyncs.append((name, incarnation, file, token))
                return
            self.durable[name][file] = self.files[name].get(file, b"")
            self.apply(name, replica.on_persisted(self.local(name), token))

    def release(self, name: str) -> None:
        """Let a node's held fsyncs complete now."""
        self.held.discard(name)
        held, self.held_fsyncs = self.held_fsyncs, []
        for node, incarnation, file, token in held:
            self.dispatch("fsync", node, (incarnation, file, token))

    def check_leases(self) -> None:
        serving = tuple(n for n in NAMES if n not in self.down and self.replicas[n].is_serving(self.local(n)))
        if len(serving) > 1:
            self.overlaps.append((self.now, serving))

    # -- clients and observations ------------------------------------------------------------------
    def request(self, name: str, operation: ItemOperation, request_id: int) -> None:
        self.push(self.now + self.latency, "deliver", name,
                  ("r1", ReplicaRequest(0, request_id, operation)))

    def replies(self, request_id: int) -> list[ReplicaReply]:
        return [m for _, _, _, m in self.outbox if isinstance(m, ReplicaReply) and m.request_id == request_id]

    def leaders(self) -> list[str]:
        return [n for n in NAMES if n not in self.down and self.replicas[n].role == "leader"]

    def serving(self) -> list[str]:
        return [n for n in NAMES if n not in self.down and self.replicas[n].is_serving(self.local(n))]

    def noted(self, kind: str, after_ms: float = 0) -> list[tuple[int, str, Note]]:
        return [(t, n, note) for t, n, note in self.notes if note.kind == kind and t >= after_ms * MS]

    def elect(self, until_ms: float = 3000) -> str:
        self.run(until_ms)
        [leader] = self.serving()
        return leader


# -- elections and replication -------------------------------------------------------------------------
def test_a_fresh_group_elects_exactly_one_leader_and_pushes_it():
    cluster = Cluster()
    leader = cluster.elect()
    assert len(cluster.noted("became-leader")) == 1 and cluster.leaders() == [leader]
    for name in NAMES:
        assert cluster.replicas[name].leader == leader
    pushed = {(dest, m.leader) for _, _, dest, m in cluster.outbox if isinstance(m, LeaderChanged)}
    assert pushed == {("r1", leader), ("meta", leader)}
    assert cluster.overlaps == []


def test_writes_commit_on_every_replica_and_answer_once():
    cluster = Cluster()
    leader = cluster.elect()
    for i in range(5):
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.request(leader, ItemOperation("put_item", "k0", item=(("v", 9),),
                                          condition=__import__("systems.dynamo.items", fromlist=["Condition"])
                                          .Condition("not_exists")), 99)
    cluster.run(4000)
    assert all([(r.ok, r.error) for r in cluster.replies(i)] == [(True, "")] for i in range(5))
    assert [(r.ok, r.error) for r in cluster.replies(99)] == [(False, "condition_failed")]
    items = {f"k{i}": {"v": i} for i in range(5)}
    for name in NAMES:
        assert cluster.replicas[name].items == items
        assert cluster.replicas[name].commit_lsn == cluster.replicas[leader].last_lsn
    cluster.request(leader, get("k3"), 100)
    cluster.run(4100)
    assert cluster.replies(100)[0].item == (("v", 3),)


@pytest.mark.parametrize("lease_wait", [True, False])
def test_leader_crash_causes_one_election_and_loses_no_acknowledged_write(lease_wait):
    cluster = Cluster(make_config(mitigations={"lease_wait": lease_wait}))
    leader = cluster.elect()
    for i in range(5):
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.run(3100)
    assert all(cluster.replies(i) for i in range(5))
    cluster.crash(leader)
    cluster.run(9000)
    elections = cluster.noted("election-started", after_ms=3100)
    assert [note.detail[0] for _, _, note in elections] == ["suspicion"]
    [new] = cluster.serving()
    assert new != leader
    old_until = max(note.detail[0] for _, n, note in cluster.noted("lease-renewed") if n == leader)
    [(started, _, _)] = [s for s in cluster.noted("serving-started") if s[1] == new]
    if lease_wait:  # the new leader serves only after the old lease (last renewal) has run out
        assert started >= old_until
    else:  # nothing waited: voters granted at once and the new leader did not wait
        assert not cluster.noted("vote-deferred")
        assert [note.detail[2] for _, n, note in cluster.noted("became-leader", 3100)] == [0]
    assert cluster.replicas[new].items == {f"k{i}": {"v": i} for i in range(5)}
    assert cluster.overlaps == []  # the old leader is down: nobody serves beside the new one


def test_a_lagging_follower_catches_up_in_batches():
    cluster = Cluster()
    leader = cluster.elect()
    lagging = next(n for n in NAMES if n != leader)
    cluster.blocked.add((leader, lagging))
    for i in range(150):  # more than one Append batch
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.run(3200)
    assert all(cluster.replies(i) for i in range(150))  # the other follower makes the quorum
    assert cluster.replicas[lagging].last_lsn < 10
    cluster.blocked.clear()
    cluster.run(4500)
    assert cluster.replicas[lagging].entries == cluster.replicas[leader].entries
    assert cluster.replicas[lagging].items == cluster.replicas[leader].items


def test_a_restarted_follower_recovers_its_wal_then_catches_up():
    cluster = Cluster()
    leader = cluster.elect()
    follower = [n for n in NAMES if n != leader][1]
    for i in range(10):
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.run(3100)
    cluster.crash(follower)
    for i in range(10, 20):
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.run(3300)
    cluster.restart(follower)
    assert cluster.replicas[follower].last_lsn == 11  # the no-op and ten writes, from its WAL
    cluster.run(5000)
    assert cluster.replicas[follower].items == {f"k{i}": {"v": i} for i in range(20)}
    assert cluster.replicas[leader].role == "leader"  # the restart did not depose anyone


# -- write acknowledgement (M6) and its planted bugs -----------------------------------------------------
@pytest.mark.parametrize("bug, held, acked", [
    (None, "followers", False),
    (None, "one-follower", True),
    (None, "leader", True),  # two followers are a majority without the leader's own fsync
    ("ack_before_quorum", "followers", True),
    ("ack_before_quorum", "all", False),
    ("ack_before_fsync", "all", True),
])
def test_writes_are_acknowledged_only_once_a_quorum_persisted_them(bug, held, acked):
    cluster = Cluster(make_config(bugs={bug: True} if bug else {}))
    leader = cluster.elect()
    followers = [n for n in NAMES if n != leader]
    cluster.held |= {"followers": set(followers), "one-follower": {followers[0]}, "leader": {leader},
                     "all": set(NAMES)}[held]
    cluster.request(leader, put("k", 1), 1)
    cluster.run(3100)
    assert bool(cluster.replies(1)) is acked
    for name in NAMES:
        cluster.release(name)
    cluster.run(3200)
    assert [r.ok for r in cluster.replies(1)] == [True]


@pytest.mark.parametrize("bug, item", [(False, None), (True, (("v", 1),))])
def test_eventually_consistent_reads_do_not_see_uncommitted_writes(bug, item):
    cluster = Cluster(make_config(bugs={"ec_read_uncommitted": bug}))
    leader = cluster.elect()
    cluster.held |= {n for n in NAMES if n != leader}
    cluster.request(leader, put("k", 1), 1)
    cluster.run(3050)
    cluster.request(leader, get("k", consistent=False), 2)
    cluster.run(3100)
    assert not cluster.replies(1)
    assert [(r.ok, r.item) for r in cluster.replies(2)] == [(True, item)]


# -- leases (M4) -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bug", [False, True])
def test_an_isolated_leader_stops_serving_when_its_lease_runs_out(bug):
    cluster = Cluster(make_config(bugs={"stale_leader_serves": bug}))
    leader = cluster.elect()
    for other in NAMES:
        if other != leader:
            cluster.blocked |= {(leader, other), (other, leader)}
    cluster.request(leader, get("k"), 1)
    cluster.run(3100)
    assert [r.ok for r in cluster.replies(1)] == [True]
    cluster.run(6000)
    cluster.request(leader, get("k"), 2)
    cluster.run(6100)
    [reply] = cluster.replies(2)
    assert reply.ok is bug and (bug or reply.error == "no_lease")
    assert bool(cluster.overlaps) is bug  # with the bug the old leader serves beside the new one
    lost = [n for _, n, note in cluster.noted("lease-lost") if n == leader]
    assert bool(lost) is not bug


def isolate_leader_from_one_follower(mitigations: dict) -> tuple[Cluster, str, str]:
    """S2/S6 shape: the leader and one follower lose each other completely; the other link is fine."""
    cluster = Cluster(make_config(mitigations={"peer_confirmation": False} | mitigations))
    leader = cluster.elect()
    cut = next(n for n in NAMES if n != leader)
    cluster.blocked |= {(leader, cut), (cut, leader)}
    cluster.run(9000)  # the two cut-off replicas keep deposing each other: no peer check
    return cluster, leader, cut


@pytest.mark.parametrize("lease_wait", [True, False])
def test_the_lease_wait_is_what_prevents_two_leaders_serving(lease_wait):
    cluster, _, cut = isolate_leader_from_one_follower({"lease_wait": lease_wait})
    first_successor = cluster.noted("became-leader", after_ms=3000)[0][1]
    assert first_successor == cut  # the cut-off follower deposed the healthy leader
    assert bool(cluster.overlaps) is not lease_wait
    if lease_wait:
        assert cluster.noted("vote-deferred")


def test_peer_confirmation_keeps_a_gray_link_from_deposing_the_leader():
    config = make_config()
    cluster = Cluster(config)
    leader = cluster.elect()
    follower = next(n for n in NAMES if n != leader)
    cluster.blocked_heartbeats.add((leader, follower))
    cluster.run(12000)
    assert cluster.leaders() == [leader] and cluster.noted("election-started", after_ms=3000) == []
    assert cluster.noted("election-suppressed", after_ms=3000)


def test_without_peer_confirmation_a_gray_link_causes_spurious_elections():
    cluster = Cluster(make_config(mitigations={"peer_confirmation": False}))
    leader = cluster.elect()
    follower = next(n for n in NAMES if n != leader)
    cluster.blocked_heartbeats.add((leader, follower))
    cluster.run(12000)
    assert cluster.noted("election-started", after_ms=3000)
    assert cluster.overlaps == []


@pytest.mark.parametrize("bug", [False, True])
def test_the_drift_margin_covers_a_slow_leader_clock(bug):
    """The leader's clock runs 5% slow. With the margin (150 ms of 2 s) its lease still ends before the
    followers' promises; without it (``lease_ignores_drift``) the leases overlap."""
    config = make_config(bugs={"lease_ignores_drift": bug})
    cluster = Cluster(config)
    leader = cluster.elect()
    cluster.set_rate(leader, 0.95)
    cluster.run(4000)
    for other in NAMES:  # the leader is cut off from its peers, not from clients
        if other != leader:
            cluster.blocked |= {(leader, other), (other, leader)}
    cluster.run(10000, probe_ms=1.0)
    assert len([n for n in NAMES if cluster.replicas[n].role == "leader"]) == 2
    assert bool(cluster.overlaps) is bug


# -- handoff (M11) -----------------------------------------------------------------------------------------
def test_handoff_elects_a_successor_at_once_without_a_lease_wait():
    cluster = Cluster()
    leader = cluster.elect()
    for i in range(3):
        cluster.request(leader, put(f"k{i}", i), i)
    cluster.run(3050)
    cluster.set_eligible(leader, False)
    cluster.request(leader, put("late", 1), 50)
    cluster.run(3100)
    [successor] = cluster.serving()
    assert successor != leader and cluster.replicas[leader].role == "follower"
    [(_, _, became)] = [b for b in cluster.noted("became-leader", after_ms=3050)]
    assert became.detail[1:] == ("handoff", 0)
    assert [note.detail[0] for _, _, note in cluster.noted("election-started", after_ms=3050)] == ["handoff"]
    assert [(r.ok, r.error, r.leader_hint) for r in cluster.replies(50)] == [(False, "not_leader", successor)]
    assert cluster.replicas[successor].items == {f"k{i}": {"v": i} for i in range(3)}
    assert cluster.overlaps == []


def test_without_the_handoff_mitigation_an_ineligible_leader_keeps_leading():
    cluster = Cluster(make_config(mitigations={"leadership_handoff": False}))
    leader = cluster.elect()
    cluster.set_eligible(leader, False)
    cluster.run(8000)
    assert cluster.serving() == [leader] and cluster.noted("election-started", after_ms=3000) == []


def test_ineligible_replicas_never_stand_even_when_the_leader_is_gone():
    cluster = Cluster()
    leader = cluster.elect()
    for other in NAMES:
        if other != leader:
            cluster.set_eligible(other, False)
    cluster.crash(leader)
    cluster.run(15000)
    assert cluster.leaders() == [] and cluster.noted("election-started", after_ms=3000) == []


# -- fencing (M3) ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bug", [False, True])
def test_a_deposed_leader_cannot_overwrite_committed_entries(bug):
    """The old leader, cut off, keeps resending an uncommitted write. Once its messages get through
    again (the replies still do not), followers must fence it off; with ``accept_stale_ballot`` they
    let it cut committed entries out of their logs."""
    cluster = Cluster(make_config(bugs={"accept_stale_ballot": bug}))
    old = cluster.elect()
    others = [n for n in NAMES if n != old]
    cluster.blocked |= {(old, n) for n in others} | {(n, old) for n in others}
    cluster.request(old, put("x", "lost"), 1)
    cluster.run(9000)
    [new] = [n for n in others if cluster.replicas[n].role == "leader"]
    cluster.request(new, put("y", "kept"), 2)
    cluster.run(9100)
    assert [r.ok for r in cluster.replies(2)] == [True]
    cluster.blocked -= {(old, n) for n in others}  # the old leader's messages flow again
    cluster.run(9600)
    follower = next(n for n in others if n != new)
    overwritten = {n for _, n, _ in cluster.noted("committed-entry-overwritten")}
    assert overwritten == ({follower} if bug else set())  # (the new leader repairs it, again and again)
    rejected = [n for _, n, _ in cluster.noted("stale-ballot-rejected", after_ms=9100)]
    assert (follower in rejected) is not bug
    if not bug:
        assert cluster.replicas[follower].entries == cluster.replicas[new].entries
