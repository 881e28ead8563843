"""Table-driven unit tests of the replica protocol's pieces: no simulator, no network.

Each test builds a replica (or a pure rule), feeds it ``(now_ns, input)`` and inspects the effects.
Multi-step scenarios through a fake network are in ``test_dynamo_replica_cluster.py``.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from systems.dynamo.config import Bugs, DynamoConfig, Mitigations, Timing
from systems.dynamo.effects import Note, Persist, Send, SetTimer, Truncate
from systems.dynamo.election import Lease, PeerCheck, log_is_current, may_vote_in_round
from systems.dynamo.items import Condition, ItemOperation
from systems.dynamo.messages import (
    Append,
    AppendReply,
    Heartbeat,
    LeaderCheck,
    LeaderCheckReply,
    LogEntry,
    ReplicaReply,
    ReplicaRequest,
    RequestVote,
    TimeoutNow,
    Vote,
)
from systems.dynamo.replica import Replica
from systems.dynamo.wal import (
    NO_BALLOT,
    decode_ballot_file,
    decode_wal,
    encode_ballot,
    encode_entry,
)

MS = 1_000_000
PEERS = ("a", "b", "c")


def make_config(timing: dict | None = None, mitigations: dict | None = None,
                bugs: dict | None = None) -> DynamoConfig:
    return DynamoConfig(timing=Timing(**(timing or {})), mitigations=Mitigations(**(mitigations or {})),
                        bugs=Bugs(**(bugs or {})))


def put(key: str, value: object) -> ItemOperation:
    return ItemOperation("put_item", key, item=(("v", value),))


def entry(lsn: int, ballot: tuple[int, str], operation: ItemOperation | None = None) -> LogEntry:
    return LogEntry(lsn, ballot, operation)


def wal_of(*entries: LogEntry) -> bytes:
    return b"".join(encode_entry(e) for e in entries)


def replica(name: str = "b", config: DynamoConfig | None = None, wal: bytes = b"",
            ballot_file: bytes = b"", now_ns: int = 0, eligible: bool = True) -> tuple[Replica, list]:
    r = Replica(0, name, PEERS, ("r1",), "meta", config or make_config(), random.Random(7), eligible)
    return r, r.recover(now_ns, wal, ballot_file)


def sends(effects: list, kind: type | None = None) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and (kind is None or isinstance(e.message, kind))]


def notes(effects: list, kind: str) -> list[Note]:
    return [e for e in effects if isinstance(e, Note) and e.kind == kind]


def persist_all(r: Replica, now_ns: int, effects: list) -> list:
    """Complete every Persist in ``effects`` (fsync done), returning what the replica does next."""
    out: list = []
    for effect in effects:
        if isinstance(effect, Persist):
            out += r.on_persisted(now_ns, effect.token)
    return out


# -- the WAL codec (M14, M24) ---------------------------------------------------------------------
def test_wal_round_trips_every_operation_shape():
    operations = [
        put("k", "x"),
        ItemOperation("update_item", "k", set_attributes=(("a", 1), ("b", (1, 2))),
                      add_attributes=(("n", 2.5),), condition=Condition("equals", "a", "old")),
        ItemOperation("delete_item", "k", condition=Condition("exists")),
        None,
    ]
    entries = [dataclasses.replace(entry(i + 1, (3, "a"), op), request_id=i, router="r1", checksum=99)
               for i, op in enumerate(operations)]
    decoded = decode_wal(wal_of(*entries))
    assert decoded.problem == "" and list(decoded.entries) == entries


def _damaged(kind: str) -> bytes:
    good = wal_of(entry(1, (1, "a"), put("k", 1)), entry(2, (1, "a"), put("k", 2)))
    third = encode_entry(entry(3, (1, "a"), put("k", 3)))
    if kind == "torn":
        return good + third[:-3]
    if kind == "corrupt":
        return good + third[:-2] + bytes([third[-2] ^ 0x10]) + third[-1:]
    if kind == "format":
        return good + encode_entry(dataclasses.replace(entry(3, (1, "a")), format_version=99))
    if kind == "sequence":
        return good + encode_entry(entry(4, (1, "a"), put("k", 4)))
    if kind == "garbage-header":
        return good + b"\xff\xff\xff\xff\x00\x00\x00\x00xyz"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, problem", [
    ("torn", "torn"), ("corrupt", "corrupt"), ("format", "format"), ("sequence", "sequence"),
    ("garbage-header", "torn"),
])
def test_wal_decoding_stops_at_the_first_bad_record(kind, problem):
    data = _damaged(kind)
    decoded = decode_wal(data)
    assert decoded.problem == problem
    assert [e.lsn for e in decoded.entries] == [1, 2]
    assert decoded.valid_bytes == len(wal_of(entry(1, (1, "a"), put("k", 1)),
                                             entry(2, (1, "a"), put("k", 2))))


def test_ballot_file_keeps_the_highest_intact_promise():
    data = encode_ballot((1, "a")) + encode_ballot((3, "c")) + encode_ballot((2, "b"))
    assert decode_ballot_file(data).ballot == (3, "c")
    torn = decode_ballot_file(data + encode_ballot((9, "z"))[:5])
    assert torn.ballot == (3, "c") and torn.problem == "torn" and torn.valid_bytes == len(data)


@pytest.mark.parametrize("kind", ["torn", "corrupt", "format", "sequence"])
def test_recovery_cuts_the_wal_tail_and_notes_it(kind):
    data = _damaged(kind)
    r, effects = replica(wal=data)
    valid = decode_wal(data).valid_bytes
    assert Truncate("wal/p0", valid) in effects
    assert notes(effects, "wal-tail-cut")[0].detail[:2] == ("wal/p0", kind)
    assert bool(notes(effects, "decode-failure")) == (kind == "format")
    assert r.last_lsn == 2 and r.commit_lsn == 0 and r.items == {}
    assert any(isinstance(e, SetTimer) and e.name == "suspicion" for e in effects)


def test_recovery_takes_the_promise_from_the_ballot_file_or_the_wal():
    r, _ = replica(wal=wal_of(entry(1, (4, "c"))), ballot_file=encode_ballot((2, "a")))
    assert r.ballot == (4, "c")
    r, _ = replica(wal=wal_of(entry(1, (1, "c"))), ballot_file=encode_ballot((5, "a")))
    assert r.ballot == (5, "a")


# -- pure election rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("candidate, own, current", [
    (((2, "a"), 5), ((2, "a"), 5), True),
    (((2, "a"), 6), ((2, "a"), 5), True),
    (((2, "a"), 4), ((2, "a"), 5), False),
    (((3, "a"), 1), ((2, "a"), 9), True),  # a later last ballot wins over a longer log
    (((1, "z"), 9), ((2, "a"), 1), False),
    ((NO_BALLOT, 0), (NO_BALLOT, 0), True),
])
def test_log_check(candidate, own, current):
    assert log_is_current(candidate[0], candidate[1], own[0], own[1]) is current


@pytest.mark.parametrize("requested, promised, allowed", [
    ((3, "a"), (2, "z"), True),
    ((3, "a"), (3, "a"), True),  # a repeated request
    ((3, "b"), (3, "a"), False),  # one vote per round
    ((3, "a"), (3, "b"), False),
    ((2, "z"), (3, "a"), False),
])
def test_one_vote_per_round(requested, promised, allowed):
    assert may_vote_in_round(requested, promised) is allowed


@pytest.mark.parametrize("rule, answers, timed_out, verdict", [
    ("any", {"a": True}, False, "suppress"),
    ("any", {"a": False}, False, None),
    ("any", {"a": False, "c": False}, False, "elect"),
    ("any", {"a": False, "c": True}, False, "suppress"),
    ("any", {}, True, "suppress"),  # heard by nobody: no votes would arrive either
    ("majority", {"a": True}, False, None),
    ("majority", {"a": True}, True, "suppress"),  # the silent peer abstains
    ("majority", {"a": True, "c": False}, False, "elect"),  # a tie elects
    ("majority", {"a": True, "c": True}, False, "suppress"),
    ("majority", {}, True, "suppress"),
])
def test_peer_check_rules(rule, answers, timed_out, verdict):
    check = PeerCheck(rule, peers=2)
    for responder, healthy in answers.items():
        check.record(responder, healthy)
    assert check.verdict(timed_out) == verdict


@pytest.mark.parametrize("margin_ns, until", [(150 * MS, 10 * MS + 1850 * MS), (0, 10 * MS + 2000 * MS)])
def test_lease_runs_from_the_round_send_time(margin_ns, until):
    lease = Lease(2000 * MS, margin_ns, quorum=2)
    round_ = lease.start_round(10 * MS)
    lease.start_round(500 * MS)
    assert not lease.valid(20 * MS)
    assert lease.acknowledge(round_, "b")  # the leader plus one follower: a majority of 3
    assert lease.until_ns == until and lease.valid(until - 1) and not lease.valid(until)
    assert not lease.acknowledge(round_, "c")  # no extension from the same round
    lease.release()
    assert not lease.valid(20 * MS) and not lease.acknowledge(2, "b")


# -- voting --------------------------------------------------------------------------------------------
LOG = wal_of(entry(1, (2, "a")), entry(2, (2, "a")), entry(3, (2, "a")))


@pytest.mark.parametrize("last_ballot, last_lsn, bug, granted", [
    ((2, "a"), 3, False, True),
    ((2, "a"), 5, False, True),
    ((2, "a"), 2, False, False),
    ((1, "c"), 9, False, False),
    ((2, "a"), 2, True, True),  # vote_without_log_check
    ((1, "c"), 0, True, True),
])
def test_votes_need_an_up_to_date_log(last_ballot, last_lsn, bug, granted):
    config = make_config(bugs={"vote_without_log_check": bug}, mitigations={"lease_wait": False})
    r, _ = replica(config=config, wal=LOG, ballot_file=encode_ballot((2, "a")))
    effects = r.on_message(5 * MS, "c", RequestVote(0, (3, "c"), "c", last_lsn, last_ballot))
    assert r.ballot == (3, "c")  # the later round is promised whatever the vote
    effects += persist_all(r, 6 * MS, effects)
    votes = [s.message for s in sends(effects, Vote)]
    assert votes == [Vote(0, (3, "c"), "b", granted)]


def test_a_vote_waits_for_the_durable_promise():
    config = make_config(mitigations={"lease_wait": False})
    r, _ = replica(config=config)
    effects = r.on_message(MS, "c", RequestVote(0, (1, "c"), "c", 0, NO_BALLOT))
    assert not sends(effects, Vote)
    ballot_persists = [e for e in effects if isinstance(e, Persist) and e.file == "ballot/p0"]
    assert len(ballot_persists) == 1
    assert decode_ballot_file(ballot_persists[0].data).ballot == (1, "c")
    granted = r.on_persisted(2 * MS, ballot_persists[0].token)
    assert [s.message.granted for s in sends(granted, Vote)] == [True]


def test_one_vote_per_round_refuses_a_second_candidate():
    config = make_config(mitigations={"lease_wait": False})
    r, _ = replica(config=config)
    first = r.on_message(MS, "a", RequestVote(0, (1, "a"), "a", 0, NO_BALLOT))
    persist_all(r, MS, first)
    second = r.on_message(2 * MS, "c", RequestVote(0, (1, "c"), "c", 0, NO_BALLOT))
    assert [s.message for s in sends(second, Vote)] == [Vote(0, (1, "a"), "b", False)]  # who we promised
    assert r.ballot == (1, "a")


def follow(r: Replica, now_ns: int, ballot: tuple[int, str] = (1, "a")) -> list:
    """Make ``r`` acknowledge a heartbeat of ``ballot``'s leader (rule 10's promise starts)."""
    effects = r.on_message(now_ns, ballot[1], Heartbeat(0, ballot, 0, r.last_lsn, 1))
    return effects + persist_all(r, now_ns, effects)


@pytest.mark.parametrize("lease_wait, handoff, deferred", [
    (True, False, True), (True, True, False), (False, False, False),
])
def test_votes_are_deferred_while_the_lease_promise_runs(lease_wait, handoff, deferred):
    r, _ = replica(config=make_config(mitigations={"lease_wait": lease_wait}))
    follow(r, 100 * MS)
    effects = r.on_message(200 * MS, "c", RequestVote(0, (2, "c"), "c", 0, NO_BALLOT, handoff))
    effects += persist_all(r, 200 * MS, effects)
    assert bool(sends(effects, Vote)) is not deferred
    if deferred:
        assert SetTimer("vote-deferred", 1900 * MS) in effects and notes(effects, "vote-deferred")
        later = r.on_timer(2100 * MS, "vote-deferred")
        assert [s.message.granted for s in sends(later, Vote)] == [True]


def test_a_restarted_replica_keeps_its_lease_promise_from_boot():
    r, _ = replica(ballot_file=encode_ballot((1, "a")), now_ns=50 * MS)
    effects = r.on_message(60 * MS, "c", RequestVote(0, (2, "c"), "c", 0, NO_BALLOT))
    effects += persist_all(r, 60 * MS, effects)
    assert not sends(effects, Vote)
    assert SetTimer("vote-deferred", 1990 * MS) in effects


# -- fencing (M3) and the stale-ballot bug --------------------------------------------------------------
@pytest.mark.parametrize("message_ballot, bug, accepted", [
    ((1, "a"), False, False),
    ((3, "a"), False, True),
    ((3, "c"), False, True),  # the round's leader (it beat our candidate)
    ((4, "a"), False, True),
    ((1, "a"), True, True),  # accept_stale_ballot
])
@pytest.mark.parametrize("kind", ["heartbeat", "append"])
def test_leader_messages_are_fenced_by_round(message_ballot, bug, accepted, kind):
    config = make_config(bugs={"accept_stale_ballot": bug})
    r, _ = replica(config=config, ballot_file=encode_ballot((3, "b")))
    if kind == "heartbeat":
        message = Heartbeat(0, message_ballot, 0, 0, 7)
    else:
        message = Append(0, message_ballot, 0, NO_BALLOT, (entry(1, message_ballot, put("k", 1)),), 0, 7)
    effects = r.on_message(MS, message_ballot[1], message)
    effects += persist_all(r, MS, effects)
    replies = [s.message for s in sends(effects, AppendReply)]
    assert len(replies) == 1
    if accepted:
        assert replies[0].ballot == message_ballot and replies[0].success
        assert not notes(effects, "stale-ballot-rejected")
    else:
        assert replies[0] == AppendReply(0, (3, "b"), "b", False, 0, 7)
        assert notes(effects, "stale-ballot-rejected") and r.last_lsn == 0


def test_a_leader_steps_down_when_a_reply_carries_a_later_round():
    r, _ = replica(name="a", config=make_config(mitigations={"peer_confirmation": False}))
    effects = r.on_timer(2000 * MS, "suspicion")
    assert notes(effects, "election-started")
    effects += persist_all(r, 2000 * MS, effects)
    effects = r.on_message(2001 * MS, "b", Vote(0, (1, "a"), "b", True))
    assert r.role == "leader"
    effects = r.on_message(2002 * MS, "c", AppendReply(0, (5, "c"), "c", False, 0, 1))
    assert r.role == "follower" and notes(effects, "stepped-down") and r.ballot == (5, "c")


# -- follower log handling (M6) --------------------------------------------------------------------------
def test_a_follower_cuts_a_conflicting_suffix_and_replies_after_its_fsync():
    old = [entry(1, (1, "a"), put("k", 1)), entry(2, (1, "a"), put("k", 2)), entry(3, (1, "a"), put("k", 3))]
    r, _ = replica(wal=wal_of(*old), ballot_file=encode_ballot((1, "a")))
    new = entry(2, (2, "c"), put("k", 20))
    effects = r.on_message(MS, "c", Append(0, (2, "c"), 1, (1, "a"), (new,), 0, 1))
    assert Truncate("wal/p0", len(encode_entry(old[0]))) in effects
    assert r.entries == (old[0], new)
    assert not sends(effects, AppendReply)  # not before the fsync
    replies = [s.message for s in sends(persist_all(r, 2 * MS, effects), AppendReply)]
    assert replies == [AppendReply(0, (2, "c"), "b", True, 2, 1)]


@pytest.mark.parametrize("prev_lsn, prev_ballot, hint", [
    (5, (1, "a"), 3),  # our log is shorter: resume after our last entry
    (3, (2, "z"), 2),  # a different entry at prev_lsn: back up by one
])
def test_a_follower_refuses_an_append_that_does_not_match(prev_lsn, prev_ballot, hint):
    r, _ = replica(wal=LOG, ballot_file=encode_ballot((2, "a")))
    effects = r.on_message(MS, "c", Append(0, (3, "c"), prev_lsn, prev_ballot, (), 0, 1))
    effects += persist_all(r, MS, effects)
    assert [s.message for s in sends(effects, AppendReply)] == [
        AppendReply(0, (3, "c"), "b", False, hint, 1)]
    assert r.last_lsn == 3


def test_a_follower_commits_only_what_matches_its_leader():
    stale = [entry(1, (1, "a"), put("k", 1)), entry(2, (1, "a"), put("k", "stale"))]
    r, _ = replica(wal=wal_of(*stale), ballot_file=encode_ballot((1, "a")))
    r.on_message(MS, "c", Heartbeat(0, (2, "c"), 2, 2, 1))
    assert r.commit_lsn == 0  # nothing verified against leader c yet
    r.on_message(2 * MS, "c", Append(0, (2, "c"), 1, (1, "a"), (entry(2, (2, "c"), put("k", "new")),), 2, 1))
    assert r.commit_lsn == 2 and r.items == {"k": {"v": "new"}}


def test_a_follower_behind_the_heartbeat_asks_for_catch_up():
    r, _ = replica(wal=LOG, ballot_file=encode_ballot((2, "a")))
    effects = r.on_message(MS, "a", Heartbeat(0, (2, "a"), 3, 9, 4))
    effects += persist_all(r, MS, effects)
    assert [s.message for s in sends(effects, AppendReply)] == [AppendReply(0, (2, "a"), "b", False, 3, 4)]


@pytest.mark.parametrize("version, accepted", [(1, True), (2, False)])
def test_entries_of_an_unreadable_format_are_rejected_and_counted(version, accepted):
    e = dataclasses.replace(entry(1, (1, "a"), put("k", 1)), format_version=version)
    r, _ = replica()
    effects = r.on_message(MS, "a", Append(0, (1, "a"), 0, NO_BALLOT, (e,), 0, 1))
    assert (r.last_lsn == 1) is accepted
    assert bool(notes(effects, "decode-failure")) is not accepted


# -- failure detection (M5, M10) -------------------------------------------------------------------------
def test_suspicion_fires_only_after_the_timeout_since_the_leader_was_heard():
    config = make_config(mitigations={"peer_confirmation": False}, timing={"suspicion_jitter_ms": 0})
    r, _ = replica(config=config)
    follow(r, 1000 * MS)
    early = r.on_timer(1500 * MS, "suspicion")
    assert early == [SetTimer("suspicion", 1000 * MS)] and r.role == "follower"
    late = r.on_timer(2500 * MS, "suspicion")
    assert [n.detail for n in notes(late, "election-started")] == [("suspicion", 2)]
    assert r.role == "candidate"
    assert sorted(s.destination for s in sends(late, RequestVote)) == ["a", "c"]


@pytest.mark.parametrize("rule, answers, suppressed", [
    ("any", {"a": True, "c": False}, True),
    ("majority", {"a": True, "c": False}, False),
    ("majority", {"a": True, "c": True}, True),
    ("any", {"a": False, "c": False}, False),
])
def test_peer_confirmation_suppresses_or_starts_the_election(rule, answers, suppressed):
    config = make_config(mitigations={"peer_confirmation_rule": rule})
    r, _ = replica(config=config)
    checks = r.on_timer(2000 * MS, "suspicion")
    assert sorted(s.destination for s in sends(checks, LeaderCheck)) == ["a", "c"]
    effects: list = []
    for responder, healthy in answers.items():
        effects += r.on_message(2001 * MS, responder, LeaderCheckReply(0, responder, healthy, "a", (1, "a")))
    assert bool(notes(effects, "election-suppressed")) is suppressed
    assert bool(notes(effects, "election-started")) is not suppressed
    assert r.role == ("follower" if suppressed else "candidate")


def test_a_peer_check_with_no_answers_stands_down_at_the_timeout():
    """Heard by no peer (its inbound traffic lost, S3 fault B): votes could not arrive either, so it
    stands down instead of fencing a leader the others may still hear."""
    r, _ = replica()
    r.on_timer(2000 * MS, "suspicion")
    effects = r.on_timer(2200 * MS, "peer-check")
    assert notes(effects, "election-suppressed") and r.role == "follower"
    assert not notes(effects, "election-started")


def test_a_peer_check_with_one_unhealthy_answer_elects_at_the_timeout():
    r, _ = replica()
    r.on_timer(2000 * MS, "suspicion")
    r.on_message(2100 * MS, "c", LeaderCheckReply(0, "c", False, None, NO_BALLOT))
    effects = r.on_timer(2200 * MS, "peer-check")
    assert notes(effects, "election-started") and r.role == "candidate"


@pytest.mark.parametrize("heard_ago_ms, healthy", [(100, True), (999, True), (1001, False)])
def test_peers_answer_healthy_if_they_heard_the_leader_recently(heard_ago_ms, healthy):
    r, _ = replica()
    follow(r, 1000 * MS)
    effects = r.on_message((1000 + heard_ago_ms) * MS, "c", LeaderCheck(0, "c"))
    assert [s.message.healthy for s in sends(effects, LeaderCheckReply)] == [healthy]


# -- eligibility (M11) ------------------------------------------------------------------------------------
def test_an_ineligible_replica_never_stands():
    config = make_config(mitigations={"peer_confirmation": False})
    r, _ = replica(config=config, eligible=False)
    effects = r.on_timer(5000 * MS, "suspicion")
    assert not notes(effects, "election-started") and r.role == "follower"
    follow(r, 6000 * MS)
    declined = r.on_message(6001 * MS, "a", TimeoutNow(0, (1, "a")))
    assert notes(declined, "handoff-declined")[0].detail[0] == "ineligible" and r.role == "follower"


def test_an_eligible_follower_stands_at_once_on_timeout_now():
    r, _ = replica()
    follow(r, 1000 * MS)
    effects = r.on_message(1001 * MS, "a", TimeoutNow(0, (1, "a")))
    assert [n.detail for n in notes(effects, "election-started")] == [("handoff", 2)]
    assert all(s.message.handoff for s in sends(effects, RequestVote))
    assert not any(isinstance(s.message, LeaderCheck) for s in sends(effects))


# -- requests at non-leaders (M7, M13) ---------------------------------------------------------------------
def request(operation: ItemOperation, request_id: int = 1) -> ReplicaRequest:
    return ReplicaRequest(0, request_id, operation)


@pytest.mark.parametrize("knows_leader, operation, error, hint", [
    (True, put("k", 1), "not_leader", "a"),
    (False, put("k", 1), "look_up_again", None),
    (True, ItemOperation("get_item", "k"), "not_leader", "a"),
    (False, ItemOperation("get_item", "k"), "look_up_again", None),
])
def test_misrouted_requests_are_redirected(knows_leader, operation, error, hint):
    r, _ = replica()
    if knows_leader:
        follow(r, MS)
    effects = r.on_message(2 * MS, "r1", request(operation))
    [reply] = [s.message for s in sends(effects, ReplicaReply)]
    assert (reply.ok, reply.error, reply.leader_hint) == (False, error, hint)


@pytest.mark.parametrize("bug, item", [(False, (("v", 1),)), (True, (("v", 2),))])
def test_eventually_consistent_reads_come_from_committed_state(bug, item):
    r, _ = replica(config=make_config(bugs={"ec_read_uncommitted": bug}))
    entries = (entry(1, (1, "a"), put("k", 1)), entry(2, (1, "a"), put("k", 2)))
    r.on_message(MS, "a", Append(0, (1, "a"), 0, NO_BALLOT, entries, 1, 1))
    assert r.commit_lsn == 1
    effects = r.on_message(2 * MS, "r1", request(ItemOperation("get_item", "k", consistent=False)))
    [reply] = [s.message for s in sends(effects, ReplicaReply)]
    assert reply.ok and reply.item == item


# -- taking office: the lease wait (M4) ---------------------------------------------------------------------
@pytest.mark.parametrize("lease_wait, wait_ms", [(True, 399), (False, 0)])  # elected at 2601
def test_a_new_leader_waits_until_its_own_lease_promise_has_run_out(lease_wait, wait_ms):
    config = make_config(mitigations={"peer_confirmation": False, "lease_wait": lease_wait})
    r, _ = replica(config=config)
    follow(r, 1000 * MS)  # promised old leader a: no vote for others until 3000 ms
    effects = r.on_timer(2600 * MS, "suspicion")
    effects += persist_all(r, 2600 * MS, effects)
    effects = r.on_message(2601 * MS, "c", Vote(0, (2, "b"), "c", True))
    [became] = notes(effects, "became-leader")
    assert became.detail == (2, "election", wait_ms * MS)
    effects += persist_all(r, 2602 * MS, effects)  # the leader's own no-op is durable
    effects += r.on_message(2603 * MS, "c", AppendReply(0, (2, "b"), "c", True, 1, 1))
    assert r.commit_lsn == 1
    assert r.is_serving(2700 * MS) is not lease_wait
    if lease_wait:
        assert SetTimer("lease-wait", wait_ms * MS) in effects
        assert notes(r.on_timer(3000 * MS, "lease-wait"), "serving-started")
    assert r.is_serving(4450 * MS) and not r.is_serving(4451 * MS)  # round 1 sent at 2601: + 2000 - 150


def test_an_entry_from_a_new_ballot_is_acknowledged_only_once_the_promise_is_durable():
    r, _ = replica()
    effects = r.on_message(MS, "a", Append(0, (1, "a"), 0, NO_BALLOT, (entry(1, (1, "a"), put("k", 1)),), 0, 1))
    wal = [e for e in effects if isinstance(e, Persist) and e.file == "wal/p0"]
    ballot = [e for e in effects if isinstance(e, Persist) and e.file == "ballot/p0"]
    assert len(wal) == len(ballot) == 1
    assert not sends(r.on_persisted(2 * MS, wal[0].token), AppendReply)  # WAL durable, promise not yet
    replies = sends(r.on_persisted(3 * MS, ballot[0].token), AppendReply)
    assert [s.message for s in replies] == [AppendReply(0, (1, "a"), "b", True, 1, 1)]


def test_a_durability_report_for_bytes_cut_away_is_ignored():
    old = [entry(1, (1, "a"), put("k", 1))]
    r, _ = replica(wal=wal_of(*old), ballot_file=encode_ballot((2, "c")))
    first = r.on_message(MS, "a", Append(0, (2, "c"), 1, (1, "a"), (entry(2, (2, "c"), put("k", 2)),), 0, 1))
    second = r.on_message(2 * MS, "c", Append(0, (3, "c"), 1, (1, "a"), (entry(2, (3, "c"), put("k", 3)),), 0, 2))
    assert any(isinstance(e, Truncate) for e in second)
    stale = [e for e in first if isinstance(e, Persist)][0]
    assert not sends(r.on_persisted(3 * MS, stale.token), AppendReply)  # generation 0: cut away
    replies = sends(persist_all(r, 4 * MS, second), AppendReply)
    assert [s.message.ballot for s in replies] == [(3, "c")]
