"""The replica protocol: one replica of one partition (M3–M7, M10, M11, M13, M14, M24), sans-I/O.

The node adapter calls it with the node's *local* clock, ``(now_ns, input)``, and carries out the effects
it returns (``effects.py``). It never reads a clock, draws randomness except from the ``rng`` it is given,
or touches a disk or a network, so unit tests drive it with no simulator.

Rules

Ballots and promises (M3)
1. A ballot is ``(round, candidate)``. At most one replica leads a round (rule 3), so a leader's
   messages are fenced by round: a Heartbeat or Append whose round is below the promised round is
   rejected ("stale-ballot-rejected") and answered with the promised ballot, which makes a deposed
   leader step down (bug ``accept_stale_ballot``: accepted). Any reply carrying a later round makes a
   leader or candidate step down.
2. A promise is written to the ballot file before anything relies on it: a vote is granted, and an
   AppendReply sent, only once the ballot file holds that round. Recovery takes the larger of the ballot
   file and the last WAL entry's ballot.
3. Votes: at most one per round; only for a candidate whose log (last ballot, last lsn) is at least as
   up to date (bug ``vote_without_log_check`` skips this); and not while this replica's lease promise to
   the old leader runs (rule 10) unless the request is a handoff. A vote that must wait is deferred
   ("vote-deferred") and granted when the promise ends. A request opening a later round is promised at
   once, even if the vote waits or is refused: from then on this replica rejects the old leader.

Failure detection and elections (M5, M10, M11)
4. The leader heartbeats every heartbeat_interval. A follower that has heard neither its leader nor a
   candidate it voted for within suspicion_timeout + jitter (redrawn each time) is a would-be candidate.
5. With peer confirmation it first asks its peers (LeaderCheck); a peer answers healthy if it heard the
   leader within peer_healthy_within (the leader answers for itself). ``PeerCheck`` applies the rule
   (any / majority; a missing answer abstains). "suppress" re-arms the timer ("election-suppressed");
   hearing the leader meanwhile ends the check the same way. Two would-be candidates checking at once
   would split the vote, so the one whose name sorts later yields to the other ("yielded").
6. A candidate takes the next round, promises its own ballot (its own vote counts once durable) and asks
   its peers; a majority elects it. If not elected by election_timeout (plus the lease, when voters may
   defer that long) it retries with the next round. Ineligible replicas never stand; they do vote.

Replication (M6)
7. The leader gives each write the next lsn, persists it, and sends Append (prev_lsn, prev_ballot) to the
   followers it believes caught up. A follower accepts if its log holds prev_lsn with prev_ballot, cuts
   a conflicting suffix (Truncate), appends, and replies success with match_lsn = prev_lsn +
   len(entries) only after its fsync. A failure carries a hint where to resume.
8. An lsn of the leader's own ballot commits once a majority holds it durably (the leader counts itself
   after its own fsync); earlier entries commit with it. Replicas apply committed entries in order, the
   leader then answers the router. Followers commit only up to the prefix verified against the current
   leader. Unacknowledged entries are resent every replication_retry from the follower's match index; a
   follower behind the heartbeat's last_lsn says so in its reply. Bugs: ``ack_before_fsync`` answers at
   append, ``ack_before_quorum`` after the leader's own fsync.

Leases (M4): why two leaders never serve at once
9. A leader serves writes and strongly consistent reads only while it holds a lease, after its no-op
   has committed and after its lease wait. Lease: once a majority (leader included) acknowledged heartbeat
   round r, it is valid until sent_at(r) + lease - drift margin, on the leader's clock.
10. A follower acknowledging a heartbeat promises to vote for no one else until ack time + lease on its
   own clock. A restarted replica that ever promised a ballot keeps that promise for a lease from boot.
11. An election quorum shares a replica V with the quorum behind the old leader's last renewal. If V is
   another voter, it voted only once its promise ran out, hence after the old lease ended (it acked no
   earlier than the round was sent; the margin covers drift), and after voting it rejects the old
   leader. If V is the new leader, it waits until its own last ack + lease: the lease wait, usually
   already over by the end of the election. lease_wait off (the un-mitigated mode): no deferral, no wait,
   leases may overlap. The drift margin is taken once, by the holder, so ``lease_ignores_drift`` removes
   the only allowance; ``stale_leader_serves`` serves after expiry.
12. Handoff (M11): an ineligible leader stops serving, releases its lease, brings its most up-to-date
   follower level and sends it TimeoutNow; that follower stands at once (handoff=True: no peer check,
   voters do not defer, no lease wait). No successor within an election timeout: the next follower.
   Without the mitigation the node keeps leading until it is stopped.

Reads and misroutes (M7, M13)
13. Eventually consistent reads: any replica, from its committed state (bug ``ec_read_uncommitted``:
   latest appended). Writes and strongly consistent reads elsewhere than at a serving leader:
   ``not_leader`` with a hint if the leader is known, else ``look_up_again``; at a leader not yet (or no
   longer) able to serve, ``no_lease``.

Durability and formats (M14, M24)
14. Recovery reads the WAL and ballot file up to the first torn, corrupt, out-of-sequence or unreadable
   record and truncates there ("wal-tail-cut"; "decode-failure" for a format). Appended entries of an
   unreadable format are rejected and counted. Message checksums and formats are the adapter's job.

Notes: election-started (reason, round), election-suppressed (why, healthy, answers), vote-deferred,
became-leader (round, how, wait_ns), serving-started, lease-renewed (local until_ns: it serves until then),
lease-lost, stepped-down, handoff-started, handoff-declined, wal-tail-cut, decode-failure,
stale-ballot-rejected, committed-entry-overwritten (only ever with planted bugs).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import CancelTimer, Effect, Note, Persist, Send, SetTimer, Truncate
from systems.dynamo.election import Lease, PeerCheck, log_is_current, may_vote_in_round, quorum_of
from systems.dynamo.items import Item, OperationResult, apply, freeze_item
from systems.dynamo.messages import (CURRENT_FORMAT, Append, AppendReply, Heartbeat, LeaderChanged,
                                     LeaderCheck, LeaderCheckReply, LogEntry, ReplicaReply,
                                     ReplicaRequest, RequestVote, TimeoutNow, Vote, checksum_of)
from systems.dynamo.wal import (NO_BALLOT, Ballot, WriteAheadLog, decode_ballot_file, decode_wal,
                                encode_ballot)

__all__ = ["Replica", "MAX_ENTRIES_PER_APPEND"]

NS_PER_MS = 1_000_000
MAX_ENTRIES_PER_APPEND = 64  # entries per Append: bounds message size during catch-up
MAX_PENDING_REPLIES = 4096  # replies waiting for an fsync; older ones are dropped (like a lost message)


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def _ns(ms: float) -> int:
    return int(ms * NS_PER_MS)


@dataclass(slots=True)
class _PendingReply:
    """An AppendReply held until the WAL is durable up to ``lsn`` and the ballot file holds ``round``."""

    lsn: int
    round: int
    send: Send


@dataclass(slots=True)
class _Term:
    """What a leader keeps for its ballot; dropped when it steps down."""

    ballot: Ballot
    lease: Lease
    serve_after_ns: int  # the lease wait ends here (rule 11)
    noop_lsn: int
    next: dict[str, int]  # follower → next lsn to send
    match: dict[str, int]  # follower → highest lsn known durable there and matching ours
    awaiting: dict[int, tuple[str, int]] = field(default_factory=dict)  # lsn → (router, request id)
    requests: dict[tuple[str, int], int] = field(default_factory=dict)  # (router, request id) → lsn
    replicate_armed: bool = False
    serving: bool = False
    reported_until_ns: int = 0
    released: bool = False  # handing over (M11)
    handoff_order: tuple[str, ...] = ()
    handoff_index: int = 0
    timeout_now_to: str | None = None

    def handoff_target(self) -> str | None:
        return self.handoff_order[self.handoff_index % len(self.handoff_order)] if self.handoff_order else None


class Replica:
    """One replica of one partition on one storage node. See the rules at the top of the module."""

    def __init__(self, partition: int, name: str, peers: tuple[str, ...], routers: tuple[str, ...],
                 metadata: str, config: DynamoConfig, rng: RandomSource, eligible: bool = True) -> None:
        self.partition = partition
        self.name = name
        self.peers = tuple(sorted(peer for peer in peers if peer != name))
        self.routers = tuple(routers)
        self.metadata = metadata
        self.config = config
        self.rng = rng
        self.eligible = eligible
        self.quorum = quorum_of(len(self.peers) + 1)
        self.wal_file = f"wal/p{partition}"
        self.ballot_file = f"ballot/p{partition}"
        self.emit_format = CURRENT_FORMAT  # M24: the format of entries and replication messages sent
        self.counts: Counter[str] = Counter()  # notes by kind, for statistics()
        timing = config.timing
        self._heartbeat_ns = _ns(timing.heartbeat_interval_ms)
        self._lease_ns = _ns(timing.lease_ms)
        self._margin_ns = 0 if config.bugs.lease_ignores_drift else _ns(timing.clock_drift_margin_ms)
        self._election_ns = _ns(timing.election_timeout_ms)
        self._retry_ns = _ns(timing.replication_retry_ms)
        self._write_checksums = config.mitigations.checksums
        self._verify_checksums = config.mitigations.checksums and not config.bugs.skip_checksum_verification
        self._effects: list[Effect] = []
        self._handlers: dict[type, Callable[[int, str, Any], None]] = {
            Heartbeat: self._on_heartbeat, Append: self._on_append, AppendReply: self._on_append_reply,
            RequestVote: self._on_request_vote, Vote: self._on_vote, LeaderCheck: self._on_leader_check,
            LeaderCheckReply: self._on_leader_check_reply, TimeoutNow: self._on_timeout_now,
            ReplicaRequest: self._on_request}
        self._timers: dict[str, Callable[[int], None]] = {
            "suspicion": self._on_suspicion, "peer-check": self._on_peer_check_timeout,
            "election": self._on_election_timeout, "vote-deferred": self._try_grant,
            "heartbeat": self._on_heartbeat_timer, "replicate": self._on_replicate_timer,
            "lease-wait": self._check_serving, "handoff": self._on_handoff_timer}
        self._reset(0)

    def _reset(self, now_ns: int) -> None:
        """Volatile state: what a crash forgets."""
        self.role = "follower"  # "follower" | "candidate" | "leader"
        self.following: Ballot | None = None  # the leader ballot this replica follows
        self.promised: Ballot = NO_BALLOT
        self.durable_round = 0  # the ballot file holds a promise of this round
        self.log = WriteAheadLog(self.wal_file, self._write_checksums)
        self.commit_lsn = 0
        self.items: dict[str, Item] = {}  # the applied (committed) state
        self.verified_lsn = 0  # our log matches the followed leader's up to here
        self.last_heard_leader_ns: int | None = None
        self.quiet_since_ns = now_ns
        self.suspicion_ns = _ns(self.config.timing.suspicion_timeout_ms)
        self.promise_until_ns = 0  # rule 10: no vote for anyone else before this
        self.pending: list[_PendingReply] = []
        self.vote_request: RequestVote | None = None
        self._deferred_ballot: Ballot | None = None  # the request a vote-deferred note was made for
        self.votes: set[str] = set()
        self.refusals: set[str] = set()
        self.candidacy_handoff = False
        self.peer_check: PeerCheck | None = None
        self.term: _Term | None = None

    # -- public API -------------------------------------------------------------------------------
    def recover(self, now_ns: int, wal: bytes, ballot_file: bytes) -> list[Effect]:
        """At every boot: rebuild from the WAL and the ballot file, cut damaged tails, arm suspicion."""
        return self._run(self._recover, now_ns, wal, ballot_file)

    def on_message(self, now_ns: int, source: str, message: Any) -> list[Effect]:
        handler = self._handlers.get(type(message))
        if handler is None or getattr(message, "partition", self.partition) != self.partition:
            return []
        return self._run(handler, now_ns, source, message)

    def on_timer(self, now_ns: int, name: str) -> list[Effect]:
        return self._run(self._timers[name], now_ns)

    def on_persisted(self, now_ns: int, token: tuple[Any, ...]) -> list[Effect]:
        """A Persist effect's data is durable. Tokens: ("wal", generation, lsn), ("ballot", round, name)."""
        return self._run(self._persisted, now_ns, token)

    def set_eligible(self, now_ns: int, eligible: bool) -> list[Effect]:
        """M11: an ineligible replica never stands; an ineligible leader hands over (if mitigated)."""
        return self._run(self._set_eligible, now_ns, eligible)

    # -- introspection ------------------------------------------------------------------------------
    @property
    def leader(self) -> str | None:
        return self.name if self.role == "leader" else (self.following[1] if self.following else None)

    @property
    def ballot(self) -> Ballot:
        return self.promised

    @property
    def last_lsn(self) -> int:
        return self.log.last_lsn

    @property
    def entries(self) -> tuple[LogEntry, ...]:
        return tuple(self.log.entries)

    def is_serving(self, now_ns: int) -> bool:
        """True if this replica is a leader that may serve writes and strongly consistent reads now."""
        return self._serving_until(now_ns) > now_ns

    def statistics(self) -> dict[str, Any]:
        return {"role": self.role, "ballot": self.promised, "commit_lsn": self.commit_lsn,
                "last_lsn": self.log.last_lsn, "durable_lsn": self.log.durable_lsn,
                "pending_replies": len(self.pending), **dict(sorted(self.counts.items()))}

    # -- effects ----------------------------------------------------------------------------------
    def _run(self, handler: Callable[..., None], *args: Any) -> list[Effect]:
        self._effects = []
        handler(*args)
        effects, self._effects = self._effects, []
        return effects

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _send(self, destination: str, message: Any) -> None:
        self._effects.append(Send(destination, message))

    def _note(self, kind: str, *detail: Any) -> None:
        self.counts[kind] += 1
        self._effects.append(Note(kind, detail))

    def _readable(self, version: int) -> bool:
        return 1 <= version <= self.config.software_version

    def _draw_suspicion(self) -> int:
        timing = self.config.timing
        return _ns(timing.suspicion_timeout_ms + self.rng.uniform(0.0, timing.suspicion_jitter_ms))

    # -- recovery (rule 14) -----------------------------------------------------------------------
    def _recover(self, now_ns: int, wal: bytes, ballot_file: bytes) -> None:
        self._reset(now_ns)
        decoded = decode_wal(wal, self._readable, self._verify_checksums)
        self.log.load(decoded)
        self._cut_tail(self.wal_file, len(wal), decoded.valid_bytes, decoded.problem)
        promise = decode_ballot_file(ballot_file, self._readable, self._verify_checksums)
        self._cut_tail(self.ballot_file, len(ballot_file), promise.valid_bytes, promise.problem)
        self.promised = max(promise.ballot, self.log.last_ballot)
        self.durable_round = self.promised[0]  # in the ballot file or in the WAL
        if self.promised > promise.ballot:
            self._emit(Persist(self.ballot_file, encode_ballot(self.promised, self._write_checksums),
                               ("ballot",) + self.promised))
        if self.promised != NO_BALLOT:
            self.promise_until_ns = now_ns + self._lease_ns  # rule 10: it may have acked just before
        self.suspicion_ns = self._draw_suspicion()
        self._emit(SetTimer("suspicion", self.suspicion_ns))

    def _cut_tail(self, file: str, size: int, valid: int, problem: str) -> None:
        if valid >= size:
            return
        self._emit(Truncate(file, valid))
        self._note("wal-tail-cut", file, problem, size - valid)
        if problem == "format":
            self._note("decode-failure", file)

    # -- durability -------------------------------------------------------------------------------
    def _persisted(self, now_ns: int, token: tuple[Any, ...]) -> None:
        if token[0] == "wal":
            if self.log.mark_durable(token[1], token[2]):
                self._flush_pending()
                self._on_own_wal_durable(now_ns)
        elif token[0] == "ballot":
            self.durable_round = max(self.durable_round, int(token[1]))
            self._flush_pending()
            self._try_grant(now_ns)
            self._check_won(now_ns)

    def _promise(self, ballot: Ballot) -> None:
        """Adopt a ballot of a later (or, from that round's leader, the same) round; persist it."""
        if ballot == self.promised:
            return
        self.promised = ballot
        self._emit(Persist(self.ballot_file, encode_ballot(ballot, self._write_checksums),
                           ("ballot",) + ballot))

    def _reply_when_durable(self, leader: str, ballot: Ballot, success: bool, lsn: int,
                            round_: int, needed_lsn: int) -> None:
        reply = AppendReply(self.partition, ballot, self.name, success, lsn, round_)
        self.pending.append(_PendingReply(needed_lsn, ballot[0], Send(leader, reply)))
        del self.pending[:-MAX_PENDING_REPLIES]
        self._flush_pending()

    def _flush_pending(self) -> None:
        waiting = []
        for pending in self.pending:
            if pending.round < self.promised[0] and not self.config.bugs.accept_stale_ballot:
                continue  # superseded: that leader has been fenced off
            if self.durable_round >= pending.round and self.log.durable_lsn >= pending.lsn:
                self._emit(pending.send)
            else:
                waiting.append(pending)
        self.pending = waiting

    # -- follower: heartbeats and appends (rules 1, 7, 8, 10) ------------------------------------------
    def _on_heartbeat(self, now_ns: int, source: str, beat: Heartbeat) -> None:
        if not self._admit(now_ns, source, beat.ballot, beat.round):
            return
        self._commit_through(now_ns, min(beat.commit_lsn, self.verified_lsn))
        behind = beat.last_lsn > self.log.last_lsn
        self._reply_when_durable(source, beat.ballot, not behind, self.log.last_lsn if behind else 0,
                                 beat.round, 0)

    def _on_append(self, now_ns: int, source: str, append: Append) -> None:
        if not self._well_formed(append) or not self._admit(now_ns, source, append.ballot, append.round):
            return
        success, lsn = self._match_and_store(append)
        if success:
            self.verified_lsn = max(self.verified_lsn, lsn)
            self._commit_through(now_ns, min(append.commit_lsn, self.verified_lsn))
        self._reply_when_durable(source, append.ballot, success, lsn, append.round,
                                 lsn if success else 0)

    def _well_formed(self, append: Append) -> bool:
        for index, entry in enumerate(append.entries):
            if not self._readable(entry.format_version):
                self._note("decode-failure", "LogEntry", entry.format_version)
                return False
            if entry.lsn != append.prev_lsn + 1 + index:
                self._note("decode-failure", "Append", "sequence")
                return False
        return True

    def _admit(self, now_ns: int, source: str, ballot: Ballot, round_: int) -> bool:
        """Rule 1 for a leader's message: follow it, or reject it as stale."""
        if ballot[0] >= self.promised[0]:
            self._follow(now_ns, ballot)
            return True
        if self.config.bugs.accept_stale_ballot:
            return True  # the planted bug: accepted without even adopting the old ballot
        self._note("stale-ballot-rejected", ballot[0], ballot[1], self.promised[0])
        self._send(source, AppendReply(self.partition, self.promised, self.name, False, 0, round_))
        return False

    def _follow(self, now_ns: int, ballot: Ballot) -> None:
        self._promise(ballot)
        if self.role != "follower" or self.following != ballot:
            self._become_follower(now_ns, ballot)
        self.last_heard_leader_ns = self.quiet_since_ns = now_ns
        self.promise_until_ns = max(self.promise_until_ns, now_ns + self._lease_ns)
        if self.peer_check is not None:
            self._end_peer_check(now_ns, "suppress", "leader-heard")

    def _become_follower(self, now_ns: int, ballot: Ballot | None) -> None:
        if self.role == "leader":
            self._step_down(now_ns)
        elif self.role == "candidate":
            self._emit(CancelTimer("election"))
        if self.peer_check is not None and ballot is None:
            self.peer_check = None
            self._emit(CancelTimer("peer-check"))
        self.role = "follower"
        self.following = ballot
        self.verified_lsn = 0

    def _adopt(self, now_ns: int, ballot: Ballot) -> None:
        """A later round exists (rule 1): promise it and stop leading, standing or following."""
        self._promise(ballot)
        if self.role != "follower" or self.following is not None:
            self._become_follower(now_ns, None)

    def _match_and_store(self, append: Append) -> tuple[bool, int]:
        """Rule 7's log check and append. (success, match_lsn) or (failure, where to resume)."""
        own = self.log.ballot_at(append.prev_lsn)
        if own is None:
            return False, self.log.last_lsn
        if own != append.prev_ballot:
            return False, append.prev_lsn - 1
        fresh: list[LogEntry] = []
        for entry in append.entries:
            existing = self.log.ballot_at(entry.lsn)
            if fresh or existing is None:
                fresh.append(entry)
            elif existing != entry.ballot:
                self._truncate_after(entry.lsn - 1)
                fresh.append(entry)
        if fresh:
            self._emit(self.log.append(fresh))
        return True, append.prev_lsn + len(append.entries)

    def _truncate_after(self, lsn: int) -> None:
        if lsn < self.commit_lsn:
            self._note("committed-entry-overwritten", lsn + 1, self.commit_lsn)
        self._emit(self.log.truncate_after(lsn))
        self.verified_lsn = min(self.verified_lsn, lsn)
        self.pending = [pending for pending in self.pending if pending.lsn <= lsn]

    # -- applying committed entries (rule 8) ---------------------------------------------------------
    def _commit_through(self, now_ns: int, lsn: int) -> None:
        lsn = min(lsn, self.log.last_lsn)
        while self.commit_lsn < lsn:
            self.commit_lsn += 1
            result = self._apply(self.log.entry(self.commit_lsn))
            if self.term is not None:
                self._answer(self.commit_lsn, result)
        if self.term is not None:
            self._check_serving(now_ns)

    def _apply(self, entry: LogEntry) -> OperationResult | None:
        operation = entry.operation
        if operation is None or not operation.is_write:
            return None
        item, result = apply(self.items.get(operation.key), operation)
        if item is None:
            self.items.pop(operation.key, None)
        else:
            self.items[operation.key] = item
        return result

    def _item_as_of(self, key: str, lsn: int) -> Item | None:
        """The item after entries up to ``lsn``, committed or not (for the planted bugs)."""
        item = self.items.get(key)
        for position in range(self.commit_lsn + 1, min(lsn, self.log.last_lsn) + 1):
            operation = self.log.entry(position).operation
            if operation is not None and operation.key == key and operation.is_write:
                item = apply(item, operation)[0]
        return item

    # -- requests from routers (rules 9, 13) --------------------------------------------------------
    def _on_request(self, now_ns: int, router: str, request: ReplicaRequest) -> None:
        operation = request.operation
        if operation.kind == "get_item" and not operation.consistent:
            visible = (self._item_as_of(operation.key, self.log.last_lsn)
                       if self.config.bugs.ec_read_uncommitted else self.items.get(operation.key))
            self._reply_router(router, request.request_id, True, item=freeze_item(visible))
            return
        refusal = self._refusal(now_ns)
        if refusal is not None:
            self._reply_router(router, request.request_id, False, error=refusal[0], hint=refusal[1])
        elif operation.kind == "get_item":
            self._reply_router(router, request.request_id, True,
                               item=freeze_item(self.items.get(operation.key)))
        else:
            self._propose(router, request)

    def _refusal(self, now_ns: int) -> tuple[str, str | None] | None:
        term = self.term
        if term is None:
            leader = self.leader
            return ("not_leader", leader) if leader is not None else ("look_up_again", None)
        if term.released:
            return "not_leader", term.handoff_target()
        return None if self.is_serving(now_ns) else ("no_lease", self.name)

    def _reply_router(self, router: str, request_id: int, ok: bool, item: Any = None,
                      error: str = "", hint: str | None = None) -> None:
        self._send(router, ReplicaReply(self.partition, request_id, ok, item, error,
                                        hint if hint is not None else self.leader, self.promised))

    # -- leader: writes and replication (rules 7, 8) -----------------------------------------------
    def _propose(self, router: str, request: ReplicaRequest) -> None:
        term = self.term
        assert term is not None
        key = (router, request.request_id)
        if key in term.requests:
            return  # a retry of a write already in the log: answered when it commits
        entry = self._new_entry(request.operation, request.request_id, router)
        term.awaiting[entry.lsn] = key
        term.requests[key] = entry.lsn
        self._leader_append(entry)
        if self.config.bugs.ack_before_fsync:
            self._answer_early(entry.lsn)

    def _new_entry(self, operation: Any, request_id: int = 0, router: str = "") -> LogEntry:
        assert self.term is not None
        entry = LogEntry(self.log.last_lsn + 1, self.term.ballot, operation, request_id, router,
                         self.emit_format)
        return dataclasses.replace(entry, checksum=checksum_of(entry))

    def _leader_append(self, entry: LogEntry) -> None:
        term = self.term
        assert term is not None
        self._emit(self.log.append([entry]))
        for follower in self.peers:
            if term.next[follower] == entry.lsn:
                self._replicate_to(follower)
        self._arm_replication()

    def _replicate_to(self, follower: str) -> None:
        term = self.term
        assert term is not None
        first = min(term.next[follower], self.log.last_lsn + 1)
        entries = self.log.slice(first, MAX_ENTRIES_PER_APPEND)
        prev_ballot = self.log.ballot_at(first - 1)
        assert prev_ballot is not None
        self._send(follower, Append(self.partition, term.ballot, first - 1, prev_ballot, entries,
                                    self.commit_lsn, term.lease.round, self.emit_format))
        term.next[follower] = first + len(entries)

    def _arm_replication(self) -> None:
        term = self.term
        if term is None or term.replicate_armed:
            return
        if any(term.match[follower] < self.log.last_lsn for follower in self.peers):
            term.replicate_armed = True
            self._emit(SetTimer("replicate", self._retry_ns))

    def _on_replicate_timer(self, now_ns: int) -> None:
        term = self.term
        if term is None:
            return
        term.replicate_armed = False
        for follower in self.peers:
            if term.match[follower] < self.log.last_lsn:
                term.next[follower] = term.match[follower] + 1
                self._replicate_to(follower)
        self._arm_replication()

    def _on_append_reply(self, now_ns: int, source: str, reply: AppendReply) -> None:
        if reply.ballot[0] > self.promised[0]:
            self._adopt(now_ns, reply.ballot)
            return
        term = self.term
        if term is None or reply.ballot != term.ballot or source not in term.match:
            return
        if reply.round and term.lease.acknowledge(reply.round, source):
            self._check_serving(now_ns)
        if reply.success:
            self._on_follower_match(now_ns, source, reply.match_lsn)
        else:
            self._on_follower_behind(source, reply.match_lsn)

    def _on_follower_match(self, now_ns: int, follower: str, lsn: int) -> None:
        term = self.term
        assert term is not None
        if lsn > term.match[follower]:
            term.match[follower] = lsn
            term.next[follower] = max(term.next[follower], lsn + 1)
            self._leader_commit(now_ns)
        if lsn > 0 and term.next[follower] <= self.log.last_lsn:
            self._replicate_to(follower)  # catching up: the next batch at once
        self._maybe_timeout_now(follower)

    def _on_follower_behind(self, follower: str, hint: int) -> None:
        term = self.term
        assert term is not None
        term.match[follower] = min(term.match[follower], hint)
        if term.next[follower] > hint + 1:
            term.next[follower] = hint + 1
            self._replicate_to(follower)

    def _on_own_wal_durable(self, now_ns: int) -> None:
        if self.term is None:
            return
        if self.config.bugs.ack_before_quorum:
            self._answer_early(self.log.durable_lsn)
        self._leader_commit(now_ns)

    def _leader_commit(self, now_ns: int) -> None:
        term = self.term
        assert term is not None
        durable = sorted([self.log.durable_lsn] + [term.match[f] for f in self.peers], reverse=True)
        lsn = durable[self.quorum - 1]
        if lsn > self.commit_lsn and self.log.ballot_at(lsn) == term.ballot:
            self._commit_through(now_ns, lsn)

    def _answer(self, lsn: int, result: OperationResult | None) -> None:
        term = self.term
        assert term is not None
        target = term.awaiting.pop(lsn, None)
        if target is None or result is None:
            return
        term.requests.pop(target, None)
        router, request_id = target
        self._reply_router(router, request_id, result.ok, item=result.item, error=result.error)

    def _answer_early(self, through_lsn: int) -> None:
        """The planted ack bugs: answer from the appended state, before the entry is committed."""
        term = self.term
        assert term is not None
        for lsn in [lsn for lsn in term.awaiting if lsn <= through_lsn]:
            operation = self.log.entry(lsn).operation
            assert operation is not None
            self._answer(lsn, apply(self._item_as_of(operation.key, lsn - 1), operation)[1])

    # -- leader: heartbeats and the lease (rules 9-11) -------------------------------------------------
    def _on_heartbeat_timer(self, now_ns: int) -> None:
        term = self.term
        if term is None:
            return
        round_ = term.lease.start_round(now_ns)
        for follower in self.peers:
            self._send(follower, Heartbeat(self.partition, term.ballot, self.commit_lsn,
                                           self.log.last_lsn, round_, self.emit_format))
        self._check_serving(now_ns)
        self._emit(SetTimer("heartbeat", self._heartbeat_ns))

    def _serving_until(self, now_ns: int) -> int:
        """The local time until which this replica serves (0: it does not)."""
        term = self.term
        if (term is None or term.released or self.commit_lsn < term.noop_lsn
                or now_ns < term.serve_after_ns):
            return 0
        if term.lease.valid(now_ns):
            return term.lease.until_ns
        if self.config.bugs.stale_leader_serves and term.lease.ever_held:
            return now_ns + 2 * self._heartbeat_ns  # the bug: until told otherwise, renewed every tick
        return 0

    def _check_serving(self, now_ns: int) -> None:
        """Report serving intervals: serving-started, lease-renewed (until), lease-lost."""
        term = self.term
        if term is None:
            return
        until = self._serving_until(now_ns)
        if until > now_ns:
            if not term.serving:
                term.serving = True
                self._note("serving-started", term.ballot[0], now_ns - term.serve_after_ns)
            if until > term.reported_until_ns:
                term.reported_until_ns = until
                self._note("lease-renewed", until)
        elif term.serving:
            term.serving = False
            self._note("lease-lost", term.reported_until_ns)

    def _step_down(self, now_ns: int) -> None:
        assert self.term is not None
        self._note("stepped-down", self.term.ballot[0], self.promised[0], self.promised[1])
        for timer in ("heartbeat", "replicate", "lease-wait", "handoff"):
            self._emit(CancelTimer(timer))
        self.term = None
        self.quiet_since_ns = now_ns
        self._emit(SetTimer("suspicion", self.suspicion_ns))

    # -- elections (rules 3-6) --------------------------------------------------------------------------
    def _on_suspicion(self, now_ns: int) -> None:
        if self.role == "leader":
            return
        deadline = self.quiet_since_ns + self.suspicion_ns
        if now_ns < deadline:
            self._emit(SetTimer("suspicion", deadline - now_ns))
            return
        self.quiet_since_ns = now_ns
        self.suspicion_ns = self._draw_suspicion()
        self._emit(SetTimer("suspicion", self.suspicion_ns))
        if (self.role == "candidate" or self.peer_check is not None or self.vote_request is not None
                or not self.eligible):
            return  # already standing or checking, backing a candidate (deferred vote), or ineligible
        if self.config.mitigations.peer_confirmation and self.peers:
            self._start_peer_check()
        else:
            self._start_election(now_ns, "suspicion")

    def _start_peer_check(self) -> None:
        self.peer_check = PeerCheck(self.config.mitigations.peer_confirmation_rule, len(self.peers))
        for peer in self.peers:
            self._send(peer, LeaderCheck(self.partition, self.name))
        self._emit(SetTimer("peer-check", _ns(self.config.timing.peer_check_timeout_ms)))

    def _on_leader_check(self, now_ns: int, source: str, check: LeaderCheck) -> None:
        if self.peer_check is not None and source < self.name:
            self._end_peer_check(now_ns, "suppress", "yielded")  # two would-be candidates: one stands
        self._send(source, LeaderCheckReply(self.partition, self.name, self._hears_leader(now_ns),
                                            self.leader, self.promised))

    def _hears_leader(self, now_ns: int) -> bool:
        if self.term is not None:
            return not self.term.released
        heard = self.last_heard_leader_ns
        return (self.following is not None and heard is not None and
                now_ns - heard <= _ns(self.config.timing.peer_healthy_within_ms))

    def _on_leader_check_reply(self, now_ns: int, source: str, reply: LeaderCheckReply) -> None:
        if self.peer_check is None or source not in self.peers:
            return
        self.peer_check.record(source, reply.healthy)
        verdict = self.peer_check.verdict(timed_out=False)
        if verdict is not None:
            self._end_peer_check(now_ns, verdict, "peers")

    def _on_peer_check_timeout(self, now_ns: int) -> None:
        if self.peer_check is not None:
            self._end_peer_check(now_ns, self.peer_check.verdict(timed_out=True), "peers")

    def _end_peer_check(self, now_ns: int, verdict: str | None, why: str) -> None:
        check, self.peer_check = self.peer_check, None
        assert check is not None
        self._emit(CancelTimer("peer-check"))
        if verdict == "suppress":
            self._note("election-suppressed", why, check.healthy, len(check.answers))
            self.quiet_since_ns = now_ns
            self._emit(SetTimer("suspicion", self.suspicion_ns))
        elif self.eligible and self.role == "follower":
            self._start_election(now_ns, "suspicion")

    def _start_election(self, now_ns: int, reason: str, handoff: bool = False) -> None:
        ballot = (self.promised[0] + 1, self.name)
        self._note("election-started", reason, ballot[0])
        self._become_follower(now_ns, None)
        self.role = "candidate"
        self.votes, self.refusals = set(), set()
        self.candidacy_handoff = handoff
        self.vote_request = None
        self.quiet_since_ns = now_ns
        self._promise(ballot)
        for peer in self.peers:
            self._send(peer, RequestVote(self.partition, ballot, self.name, self.log.last_lsn,
                                         self.log.last_ballot, handoff))
        deferral_ns = self._lease_ns if self.config.mitigations.lease_wait and not handoff else 0
        jitter_ns = _ns(self.rng.uniform(0.0, self.config.timing.suspicion_jitter_ms))
        self._emit(SetTimer("election", self._election_ns + deferral_ns + jitter_ns))
        self._check_won(now_ns)

    def _on_election_timeout(self, now_ns: int) -> None:
        if self.role != "candidate":
            return
        if self.eligible:
            self._start_election(now_ns, "retry")
        else:
            self._become_follower(now_ns, None)

    def _on_request_vote(self, now_ns: int, source: str, request: RequestVote) -> None:
        if not may_vote_in_round(request.ballot, self.promised):  # refused with what we promised
            self._send(source, Vote(self.partition, self.promised, self.name, False))
            return
        self._adopt(now_ns, request.ballot)
        if not (self.config.bugs.vote_without_log_check or log_is_current(
                request.last_ballot, request.last_lsn, self.log.last_ballot, self.log.last_lsn)):
            self._send(source, Vote(self.partition, request.ballot, self.name, False))
            return
        self.vote_request = request
        self.quiet_since_ns = now_ns  # a live candidate we back: no candidacy of our own meanwhile
        self._try_grant(now_ns)

    def _try_grant(self, now_ns: int) -> None:
        request = self.vote_request
        if request is None or request.ballot != self.promised:
            self.vote_request = None
            return
        if self.durable_round < request.ballot[0]:
            return  # granted once the promise is in the ballot file (on_persisted)
        if self.config.mitigations.lease_wait and not request.handoff and now_ns < self.promise_until_ns:
            self._emit(SetTimer("vote-deferred", self.promise_until_ns - now_ns))
            if self._deferred_ballot != request.ballot:
                self._deferred_ballot = request.ballot
                self._note("vote-deferred", request.candidate, self.promise_until_ns - now_ns)
            return
        self.vote_request = None
        self.quiet_since_ns = now_ns
        self._send(request.candidate, Vote(self.partition, request.ballot, self.name, True))

    def _on_vote(self, now_ns: int, source: str, vote: Vote) -> None:
        if vote.ballot[0] > self.promised[0]:
            self._adopt(now_ns, vote.ballot)
        elif self.role == "candidate" and vote.ballot[0] == self.promised[0] and source in self.peers:
            if vote.granted and vote.ballot == self.promised:
                self.votes.add(source)
                self._check_won(now_ns)
            elif not vote.granted and source not in self.refusals:
                self._count_refusal(source, split=vote.ballot != self.promised)

    def _count_refusal(self, voter: str, split: bool) -> None:
        """Rule 6: when the vote is split (the voter promised a rival of this round) or a majority is out
        of reach, retry after a short random backoff instead of the whole election timeout."""
        self.refusals.add(voter)
        if split or len(self.refusals) == len(self.peers) + 1 - self.quorum + 1:
            self._note("election-lost", self.promised[0], len(self.refusals))
            backoff_ms = self.rng.uniform(0.0, self.config.timing.suspicion_jitter_ms)
            self._emit(SetTimer("election", _ns(backoff_ms)))

    def _check_won(self, now_ns: int) -> None:
        if self.role != "candidate" or self.durable_round < self.promised[0]:
            return
        if len(self.votes & set(self.peers)) + 1 >= self.quorum:
            self._become_leader(now_ns)

    def _become_leader(self, now_ns: int) -> None:
        ballot = self.promised
        handoff = self.candidacy_handoff
        no_wait = handoff or not self.config.mitigations.lease_wait
        serve_after = now_ns if no_wait else max(now_ns, self.promise_until_ns)
        self._emit(CancelTimer("election"))
        self._emit(CancelTimer("suspicion"))
        self.role = "leader"
        self.following = ballot
        last = self.log.last_lsn
        self.term = _Term(ballot, Lease(self._lease_ns, self._margin_ns, self.quorum), serve_after,
                          last + 1, {f: last + 1 for f in self.peers}, {f: 0 for f in self.peers})
        self._note("became-leader", ballot[0], "handoff" if handoff else "election", serve_after - now_ns)
        self.term.lease.start_round(now_ns)
        self._leader_append(self._new_entry(None))
        self._emit(SetTimer("heartbeat", self._heartbeat_ns))
        if serve_after > now_ns:
            self._emit(SetTimer("lease-wait", serve_after - now_ns))
        if self.config.mitigations.membership_push:
            for destination in self.routers + ((self.metadata,) if self.metadata else ()):
                self._send(destination, LeaderChanged(self.partition, self.name, ballot))

    # -- handoff (rule 12) ------------------------------------------------------------------------------
    def _set_eligible(self, now_ns: int, eligible: bool) -> None:
        self.eligible = eligible
        if eligible:
            return
        if self.peer_check is not None:
            self.peer_check = None
            self._emit(CancelTimer("peer-check"))
        if self.role == "candidate":
            self._become_follower(now_ns, None)
        term = self.term
        if term is not None and self.config.mitigations.leadership_handoff and not term.released:
            term.released = True
            term.lease.release()
            self._check_serving(now_ns)
            term.handoff_order = tuple(sorted(self.peers, key=lambda f: (-term.match[f], f)))
            self._note("handoff-started", term.handoff_order[0] if term.handoff_order else "")
            self._try_handoff()

    def _try_handoff(self) -> None:
        term = self.term
        assert term is not None
        target = term.handoff_target()
        if target is None:
            return
        self._emit(SetTimer("handoff", self._election_ns))
        if term.match[target] >= self.log.last_lsn:
            self._maybe_timeout_now(target)
        else:
            term.next[target] = min(term.next[target], term.match[target] + 1)
            self._replicate_to(target)

    def _maybe_timeout_now(self, follower: str) -> None:
        term = self.term
        assert term is not None
        if (term.released and follower == term.handoff_target() and term.timeout_now_to != follower
                and term.match[follower] >= self.log.last_lsn):
            term.timeout_now_to = follower
            self._send(follower, TimeoutNow(self.partition, term.ballot))

    def _on_handoff_timer(self, now_ns: int) -> None:
        term = self.term
        if term is None or not term.released:
            return
        term.handoff_index += 1
        term.timeout_now_to = None
        self._try_handoff()

    def _on_timeout_now(self, now_ns: int, source: str, message: TimeoutNow) -> None:
        if self.role != "follower" or self.following != message.ballot or message.ballot != self.promised:
            self._note("handoff-declined", "stale", message.ballot[0])
        elif not self.eligible:
            self._note("handoff-declined", "ineligible", message.ballot[0])
        else:
            self._start_election(now_ns, "handoff", handoff=True)
