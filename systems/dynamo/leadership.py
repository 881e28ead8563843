"""The leader's half of the replica protocol: serving requests, replication, the lease, handoff.

Rules 7-9 and 11-13 of ``replica.py``, whose module docstring is the protocol's one description. The
state lives on the ``Replica``; ``Leadership`` only groups the leader's handlers so that each file stays
readable in one sitting (a mixin, not an extension point). ``Term`` is what a leader keeps for its
ballot and drops when it steps down.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from systems.dynamo.effects import CancelTimer, SetTimer
from systems.dynamo.election import Ballot, Lease
from systems.dynamo.items import OperationResult, apply, freeze_item
from systems.dynamo.messages import (
    Append,
    AppendReply,
    Heartbeat,
    LeaderChanged,
    LogEntry,
    ReplicaReply,
    ReplicaRequest,
    TimeoutNow,
    checksum_of,
)
from systems.dynamo.versions import pack_append
from systems.dynamo.wal import COMPACT_FORMAT

__all__ = ["MAX_ENTRIES_PER_APPEND", "Leadership", "Term"]

MAX_ENTRIES_PER_APPEND = 64  # entries per Append: bounds message size during catch-up


@dataclass(slots=True)
class Term:
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
    # Healing (healing.py): member → local time last heard; member → kind it is ready for; spares
    # that failed as learners; members that answered this term; when the voters last changed.
    heard: dict[str, int] = field(default_factory=dict)
    ready: dict[str, str] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    replied: set[str] = field(default_factory=set)
    voters_changed_ns: int = 0
    noted_epoch: int = 0  # the last configuration this leader noted as committed

    def handoff_target(self) -> str | None:
        if not self.handoff_order:
            return None
        return self.handoff_order[self.handoff_index % len(self.handoff_order)]


class Leadership:
    """The leader's handlers, mixed into ``Replica`` (see its rules 7-9, 11-13)."""

    # Attributes and helpers used here are defined by Replica: partition, name, peers, config, log,
    # term, promised, commit_lsn, items, _send, _emit, _note, _commit_through, _item_as_of, ….
    term: Term | None

    # -- requests from routers (rules 9, 13) --------------------------------------------------------
    def _on_request(self, now_ns: int, router: str, request: ReplicaRequest) -> None:
        operation = request.operation
        if operation.kind == "get_item" and not operation.consistent and not self.serves_reads():
            self._reply_router(router, request.request_id, False, error="not_leader")  # M8
            return
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

    # -- taking office (rules 8, 11) ----------------------------------------------------------------
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
        targets = self._targets()
        self.term = Term(ballot, Lease(self._lease_ns, self._margin_ns, self.quorum), serve_after,
                         last + 1, {f: last + 1 for f in targets}, {f: 0 for f in targets},
                         heard={f: now_ns for f in targets}, voters_changed_ns=now_ns)
        self._note("became-leader", ballot[0], "handoff" if handoff else "election", serve_after - now_ns)
        self.term.lease.start_round(now_ns)
        self._leader_append(self._new_entry(None))
        self._emit(SetTimer("heartbeat", self._heartbeat_ns))
        if serve_after > now_ns:
            self._emit(SetTimer("lease-wait", serve_after - now_ns))
        if self.config.mitigations.membership_push:
            for destination in self.routers + ((self.metadata,) if self.metadata else ()):
                self._send(destination, LeaderChanged(self.partition, self.name, ballot))

    # -- leader: writes and replication (rules 7, 8) -----------------------------------------------
    def _propose(self, router: str, request: ReplicaRequest) -> None:
        term = self.term
        assert term is not None
        key = (router, request.request_id)
        if key in term.requests:
            return  # a retry of a write already in the log: answered when it commits
        if key in self.applied_requests:  # a retry of a write already applied: answer, don't reapply
            result = self.applied_requests[key]
            if result is not None:
                self._reply_router(router, request.request_id, result.ok, item=result.item,
                                   error=result.error)
            return
        logged = self._logged_uncommitted(key)
        if logged is not None:  # in the log from an earlier term: answered when it commits
            term.awaiting[logged] = key
            term.requests[key] = logged
            return
        entry = self._new_entry(request.operation, request.request_id, router)
        term.awaiting[entry.lsn] = key
        term.requests[key] = entry.lsn
        self._leader_append(entry)
        if self.config.bugs.ack_before_fsync:
            self._answer_early(entry.lsn)

    def _logged_uncommitted(self, key: tuple[str, int]) -> int | None:
        router, request_id = key
        for lsn in range(self.commit_lsn + 1, self.log.last_lsn + 1):
            entry = self.log.entry(lsn)
            if entry.request_id == request_id and entry.router == router:
                return lsn
        return None

    def _new_entry(self, operation: Any, request_id: int = 0, router: str = "") -> LogEntry:
        assert self.term is not None
        entry = LogEntry(self.log.last_lsn + 1, self.term.ballot, operation, request_id, router,
                         self.emit_format)
        return dataclasses.replace(entry, checksum=checksum_of(entry))

    def _leader_append(self, entry: LogEntry) -> None:
        term = self.term
        assert term is not None
        self._emit(self.log.append([entry]))
        for follower in self._targets():
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
        append = Append(self.partition, term.ballot, first - 1, prev_ballot, entries,
                        self.commit_lsn, term.lease.round, self.emit_format)
        if self.emit_format >= COMPACT_FORMAT:  # v2 emitting its format: the new message (M24)
            self._send(follower, pack_append(append, self.config.mitigations.checksums))
        else:
            self._send(follower, append)
        term.next[follower] = first + len(entries)

    def _arm_replication(self) -> None:
        term = self.term
        if term is None or term.replicate_armed:
            return
        if any(term.match[follower] < self.log.last_lsn for follower in self._targets()):
            term.replicate_armed = True
            self._emit(SetTimer("replicate", self._retry_ns))

    def _on_replicate_timer(self, now_ns: int) -> None:
        term = self.term
        if term is None:
            return
        term.replicate_armed = False
        for follower in self._targets():
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
        term.heard[source] = now_ns
        term.replied.add(source)
        if reply.round and source in self.peers and term.lease.acknowledge(reply.round, source):
            self._check_serving(now_ns)  # only voters renew the lease; learners do not count
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
        durable = [self.log.durable_lsn] + [term.match[f] for f in self.peers]
        if self.config.bugs.log_replica_counted_twice:  # the planted bug: log replicas count twice
            durable += [term.match[f] for f in self.peers if f in self.group.log]
        lsn = sorted(durable, reverse=True)[self.quorum - 1]
        if lsn > self.commit_lsn and self.log.ballot_at(lsn) == term.ballot:
            self._note("quorum-commit", lsn, self.group.epoch)  # for the observer's quorum oracle
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
        for follower in self._targets():
            self._send(follower, Heartbeat(self.partition, term.ballot, self.commit_lsn,
                                           self.log.last_lsn, round_, self.emit_format))
        self._check_serving(now_ns)
        self._emit(SetTimer("heartbeat", self._heartbeat_ns))
        self._install_learners()
        self._heal(now_ns)

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
            successors = [f for f in self.peers if f in self.group.storage]  # log replicas never lead
            term.handoff_order = tuple(sorted(successors, key=lambda f: (-term.match[f], f)))
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
