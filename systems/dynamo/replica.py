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
   (any / majority; a missing answer abstains; no answer at all stands down). "suppress" re-arms the timer ("election-suppressed");
   hearing the leader meanwhile ends the check the same way. Two would-be candidates checking at once
   would split the vote, so the one whose name sorts later yields to the other ("yielded").
6. A candidate takes the next round, promises its own ballot (its own vote counts once durable) and asks
   its peers; a majority elects it. If not elected by election_timeout (plus the lease, when voters may
   defer that long) it retries with the next round; after a split vote (a voter promised a rival of the
   same round) it retries after a short random backoff. Ineligible replicas never stand; they do vote.

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

The group and its changes (M8, M9)
15. "The peers" and "a majority" above are those of the replication group's configuration in force:
   the latest one in the log, else the partition map's (``group.py``). Only its storage replicas stand
   for election (M11's ineligible ones not even they); its log replicas vote, acknowledge and count
   toward the quorum; learners receive heartbeats and appends but count for nothing. A replica
   outside the group whose log is behind is refused a vote without its round being adopted.
   Replacing failed members is ``healing.py``'s (the leader's plan, a new replica's copy).

Notes: election-started (reason: suspicion | retry | handoff, round), election-suppressed (why,
healthy, answers), election-lost, vote-deferred, became-leader (round, how, wait_ns), serving-started,
lease-renewed (local until_ns: it serves until then), lease-lost, stepped-down, handoff-started,
handoff-declined, wal-tail-cut, decode-failure, stale-ballot-rejected, committed-entry-overwritten (only
ever with planted bugs).

Code: this module holds the state, recovery, the follower's side and applying; ``election.py`` rules
3-6 and 10; ``leadership.py`` rules 7-9 and 11-13 on the leader's side; ``healing.py`` rule 15's
membership changes; ``wal.py`` the record codec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import (
    CancelTimer,
    Effect,
    Note,
    Persist,
    Send,
    SetTimer,
    Truncate,
)
from systems.dynamo.election import Elections, PeerCheck, ms_to_ns
from systems.dynamo.group import GroupConfig
from systems.dynamo.healing import Cluster, Healing, ReplicaReady
from systems.dynamo.items import Item, OperationResult, apply
from systems.dynamo.leadership import MAX_ENTRIES_PER_APPEND, Leadership, Term
from systems.dynamo.messages import (
    CURRENT_FORMAT,
    Append,
    AppendReply,
    Heartbeat,
    LeaderCheck,
    LeaderCheckReply,
    LogEntry,
    ReplicaRequest,
    RequestVote,
    TimeoutNow,
    Vote,
)
from systems.dynamo.versions import CompactAppend, unpack_append
from systems.dynamo.wal import (
    NO_BALLOT,
    Ballot,
    WriteAheadLog,
    decode_ballot_file,
    decode_wal,
    encode_ballot,
)

__all__ = ["MAX_ENTRIES_PER_APPEND", "Replica"]

MAX_PENDING_REPLIES = 4096  # replies waiting for an fsync; older ones are dropped (like a lost message)


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(slots=True)
class _PendingReply:
    """An AppendReply held until the WAL is durable up to ``lsn`` and the ballot file holds ``round``."""

    lsn: int
    round: int
    send: Send


class Replica(Elections, Leadership, Healing):
    """One replica of one partition on one storage node. See the rules at the top of the module."""

    def __init__(self, partition: int, name: str, peers: tuple[str, ...], routers: tuple[str, ...],
                 metadata: str, config: DynamoConfig, rng: RandomSource, eligible: bool = True, *,
                 member: bool = True, cluster: Cluster | None = None,
                 reads_format: int = CURRENT_FORMAT, emit_format: int = CURRENT_FORMAT) -> None:
        """``peers``: the partition map's replicas (this one may be among them). ``member``: this
        replica is one of them from the start; a replica built later on a spare is not, and learns
        its place from the log (``group.py``). ``cluster``: the storage fleet, to pick spares."""
        self.partition = partition
        self.name = name
        placement = tuple(sorted(set(peers) | {name})) if member else tuple(
            sorted(peer for peer in peers if peer != name))
        self.bootstrap_group = GroupConfig(0, placement)
        self.cluster = cluster
        self.routers = tuple(routers)
        self.metadata = metadata
        self.config = config
        self.rng = rng
        self.eligible = eligible
        self.wal_file = f"wal/p{partition}"
        self.ballot_file = f"ballot/p{partition}"
        self.emit_format = emit_format  # M24: the format of entries and replication messages sent
        self.reads_format = reads_format  # M24: the newest format this node's version decodes
        self.counts: Counter[str] = Counter()  # notes by kind, for statistics()
        timing = config.timing
        self._heartbeat_ns = ms_to_ns(timing.heartbeat_interval_ms)
        self._lease_ns = ms_to_ns(timing.lease_ms)
        self._margin_ns = 0 if config.bugs.lease_ignores_drift else ms_to_ns(timing.clock_drift_margin_ms)
        self._election_ns = ms_to_ns(timing.election_timeout_ms)
        self._retry_ns = ms_to_ns(timing.replication_retry_ms)
        self._write_checksums = config.mitigations.checksums
        self._verify_checksums = config.mitigations.checksums and not config.bugs.skip_checksum_verification
        self._effects: list[Effect] = []
        self._handlers: dict[type, Callable[[int, str, Any], None]] = {
            Heartbeat: self._on_heartbeat, Append: self._on_append, AppendReply: self._on_append_reply,
            RequestVote: self._on_request_vote, Vote: self._on_vote, LeaderCheck: self._on_leader_check,
            LeaderCheckReply: self._on_leader_check_reply, TimeoutNow: self._on_timeout_now,
            ReplicaRequest: self._on_request, ReplicaReady: self._on_replica_ready,
            CompactAppend: self._on_compact_append}
        self._timers: dict[str, Callable[[int], None]] = {
            "suspicion": self._on_suspicion, "peer-check": self._on_peer_check_timeout,
            "election": self._on_election_timeout, "vote-deferred": self._try_grant,
            "heartbeat": self._on_heartbeat_timer, "replicate": self._on_replicate_timer,
            "lease-wait": self._check_serving, "handoff": self._on_handoff_timer,
            "copy-log": self._on_copy_log, "copy-storage": self._on_copy_storage}
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
        # (router, request id) → result, for every applied write: a router retries a write with the
        # same id, and a retry must be answered, never applied a second time (see ``_apply``).
        self.applied_requests: dict[tuple[str, int], OperationResult | None] = {}
        self.verified_lsn = 0  # our log matches the followed leader's up to here
        self.last_heard_leader_ns: int | None = None
        self.quiet_since_ns = now_ns
        self.suspicion_ns = ms_to_ns(self.config.timing.suspicion_timeout_ms)
        self.promise_until_ns = 0  # rule 10: no vote for anyone else before this
        self.pending: list[_PendingReply] = []
        self.vote_request: RequestVote | None = None
        self._deferred_ballot: Ballot | None = None  # the request a vote-deferred note was made for
        self.votes: set[str] = set()
        self.split_vote = False  # a rival holds this round: retry soon (rule 6)
        self.candidacy_handoff = False
        self.peer_check: PeerCheck | None = None
        self.term: Term | None = None
        # The replication group (group.py): the latest configuration in the log, else the map's.
        self._group_entries: list[tuple[int, GroupConfig]] = []  # (lsn, configuration) in the log
        self.group = self.bootstrap_group
        self.group_lsn = 0  # where the configuration in force sits in the log (0: the map's)
        self.peers = tuple(sorted(name for name in self.group.voters if name != self.name))
        self.quorum = self.group.quorum
        self.copying = False  # building this replica (healing.py rule 5)
        self.ready_kinds: set[str] = set()

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
        return {"role": self.role, "kind": self._stat_kind(), "epoch": self.group.epoch,
                "ballot": self.promised, "commit_lsn": self.commit_lsn,
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
        return 1 <= version <= self.reads_format

    def _draw_suspicion(self) -> int:
        timing = self.config.timing
        return ms_to_ns(timing.suspicion_timeout_ms + self.rng.uniform(0.0, timing.suspicion_jitter_ms))

    # -- recovery (rule 14) -----------------------------------------------------------------------
    def _recover(self, now_ns: int, wal: bytes, ballot_file: bytes) -> None:
        self._reset(now_ns)
        decoded = decode_wal(wal, self._readable, self._verify_checksums)
        self.log.load(decoded)
        self._groups_loaded(now_ns)
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
        reply = AppendReply(self.partition, ballot, self.name, success, lsn, round_,
                            self.emit_format)
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
        if self.ready_kinds:
            self._report_ready()  # healing.py rule 5: until the group reflects it

    def _on_append(self, now_ns: int, source: str, append: Append) -> None:
        if not self._well_formed(append) or not self._admit(now_ns, source, append.ballot, append.round):
            return
        success, lsn = self._match_and_store(now_ns, append)
        if success:
            self.verified_lsn = max(self.verified_lsn, lsn)
            self._commit_through(now_ns, min(append.commit_lsn, self.verified_lsn))
        self._reply_when_durable(source, append.ballot, success, lsn, append.round,
                                 lsn if success else 0)

    def _on_compact_append(self, now_ns: int, source: str, message: CompactAppend) -> None:
        """v2's replication message (``versions.py``): its entries travel as WAL records."""
        append = unpack_append(message, self._readable, self._verify_checksums)
        if isinstance(append, str):
            self._note("decode-failure", "CompactAppend", append)
            return
        self._on_append(now_ns, source, append)

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
        if self.config.bugs.accept_stale_ballot and self.term is None:
            return True  # the planted bug: a follower accepts without even adopting the old ballot
        self._note("stale-ballot-rejected", ballot[0], ballot[1], self.promised[0])
        self._send(source, AppendReply(self.partition, self.promised, self.name, False, 0, round_,
                                       self.emit_format))
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

    def _match_and_store(self, now_ns: int, append: Append) -> tuple[bool, int]:
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
                self._truncate_after(now_ns, entry.lsn - 1)
                fresh.append(entry)
        if fresh:
            self._emit(self.log.append(fresh))
            self._groups_appended(now_ns, fresh)
        return True, append.prev_lsn + len(append.entries)

    def _truncate_after(self, now_ns: int, lsn: int) -> None:
        if lsn < self.commit_lsn:
            self._note("committed-entry-overwritten", lsn + 1, self.commit_lsn)
        self._emit(self.log.truncate_after(lsn))
        self._groups_truncated(now_ns, lsn)
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
            self._note_group_committed()
            self._check_serving(now_ns)

    def _apply(self, entry: LogEntry) -> OperationResult | None:
        operation = entry.operation
        if operation is None or not operation.is_write:
            return None
        request = (entry.router, entry.request_id) if entry.request_id else None
        if request is not None and request in self.applied_requests:
            return self.applied_requests[request]  # a retry logged twice: applied once, answered alike
        item, result = apply(self.items.get(operation.key), operation)
        if item is None:
            self.items.pop(operation.key, None)
        else:
            self.items[operation.key] = item
        if request is not None:
            self.applied_requests[request] = result
        return result

    def _item_as_of(self, key: str, lsn: int) -> Item | None:
        """The item after entries up to ``lsn``, committed or not (for the planted bugs)."""
        item = self.items.get(key)
        for position in range(self.commit_lsn + 1, min(lsn, self.log.last_lsn) + 1):
            operation = self.log.entry(position).operation
            if operation is not None and operation.key == key and operation.is_write:
                item = apply(item, operation)[0]
        return item
