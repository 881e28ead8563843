"""Healing a replication group (M9, S7): failure detection, spares, log replicas, full rebuilds.

The group's configurations and why changing them is safe are in ``group.py``; this module decides
*which* change to make and carries it out. Sans-I/O like the rest of the replica: a mixin of
``Replica``, whose state it uses (``group``, ``term``, ``log``…).

The leader's side
1. The leader hears from each member through its AppendReplies (and ReplicaReady). A member it has
   not heard for ``healing.replica_failed_after_s`` is *failed*. A new leader starts every member's
   clock when it takes office, and a member's when it joins.
2. At every heartbeat, a leader whose no-op has committed and whose log holds no uncommitted
   configuration (group rule 4) plans at most one change (``plan_change``), first that applies:
   a. more than three voters: remove one, never itself: a failed storage replica, else a failed log
      replica, else a log replica, else a storage replica that shares its AZ with another voter;
   b. a log replica ready as a storage replica becomes one (same voters: no quorum changes);
   c. a failed learner is removed (and its node not tried again by this leader);
   d. a learner that is caught up (durable up to the commit point) and heard within three
      heartbeats, and ready, becomes a voter: a storage replica if fewer than three healthy storage
      replicas remain, or, with ``mitigations.log_replicas``, a log replica if fewer than three
      healthy voters remain;
   e. learners beyond what is missing are removed, the latest first;
   f. if healthy voters plus learners are fewer than three, a spare becomes a learner: a storage
      node outside the group, in an AZ where no healthy member is (the failed member's first), nodes
      of role ``spare`` first, then spread by a hash of partition and node.
   Changes of the voters (a, d) come at least a lease apart, and not within a lease of taking
   office: every lease still running was then granted by a majority of the current configuration or
   the one before, and every election quorum of the next one meets it (group rule 3).
3. Learners get Heartbeats and Appends like voters; their acknowledgements count for neither the
   quorum nor the lease. Until a learner answers, each heartbeat also sends it ``InstallReplica``.

The new replica's side
4. A storage node that hosts no replica of the partition creates one, empty, when ``InstallReplica``
   arrives (the node adapter). It learns that it is a learner from the configuration entries of the
   log the leader then sends it.
5. From the moment its configuration makes it a learner (or a log replica, after a restart) it is
   *copying*: ``healing.log_replica_copy_s`` later (with the mitigation) it is ready as a log
   replica, ``healing.storage_rebuild_s`` later as a storage replica. The durations stand for the
   copies of the recent WAL and of the whole partition; the log itself arrives through ordinary
   Appends. A restart starts the copy again. While its configuration does not yet reflect what it
   is ready for, it answers each heartbeat with ``ReplicaReady``.
6. Log replicas and learners never stand for election (log replicas vote) and refuse eventually
   consistent reads (``not_leader``, with the leader as a hint): a log replica stands for one with
   the recent WAL only and no items. (The model still sends it the whole log and applies it in
   memory, which costs nothing here; what it may do is what a log replica may do.)

Notes: config-proposed (reason, epoch, storage, log, learners), config-committed (epoch, storage,
log, learners; by the leader that sees it commit), quorum-commit (lsn, epoch: every commit, for the
observer's quorum oracle), copy-started (kind), replica-ready (kind).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from systems.dynamo.effects import CancelTimer, SetTimer
from systems.dynamo.group import LEARNER, LOG, STORAGE, GroupConfig
from systems.dynamo.messages import CURRENT_FORMAT, LogEntry, checksum_of, corrupt

if TYPE_CHECKING:
    from systems.dynamo.leadership import Term

__all__ = ["Cluster", "Healing", "InstallReplica", "ReplicaReady", "TARGET_VOTERS", "plan_change",
           "rank_spares"]

TARGET_VOTERS = 3  # M2: three replicas in three AZs
FRESH_HEARTBEATS = 3  # a learner heard within this many heartbeats may become a voter


# -- messages --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InstallReplica:
    """Leader → spare storage node: host a replica of this partition (it is a learner now)."""

    partition: int
    ballot: tuple[int, str]
    leader: str
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaReady:
    """New replica → leader: my copy is done; I can be a replica of this kind ("log" | "storage")."""

    partition: int
    ballot: tuple[int, str]  # the leader ballot the replica follows
    replica: str
    kind: str
    format_version: int = CURRENT_FORMAT
    checksum: int = 0


for _message in (InstallReplica, ReplicaReady):
    _message.corrupted = corrupt  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Cluster:
    """What a leader knows of the storage fleet, to pick spares: every storage node's AZ, and which
    nodes were provisioned as spares (role ``spare``: no replica at the start)."""

    az_of: Mapping[str, str]
    spares: frozenset[str] = frozenset()


# -- the pure rules ------------------------------------------------------------------------------------
def rank_spares(partition: int, group: GroupConfig, failed: frozenset[str], tried: set[str],
                cluster: Cluster) -> list[str]:
    """Rule 2f: storage nodes that may join the group, best first."""
    az_of = cluster.az_of
    used = {az_of.get(name) for name in group.members if name not in failed}
    lost = {az_of.get(name) for name in group.members if name in failed}
    candidates = [name for name in sorted(az_of) if name not in group.members
                  and name not in tried and az_of[name] not in used]
    return sorted(candidates, key=lambda name: (az_of[name] not in lost, name not in cluster.spares,
                                                _spread(partition, name), name))


def _spread(partition: int, node: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{partition}/{node}".encode()).digest()[:4], "big")


def plan_change(group: GroupConfig, leader: str, *, failed: frozenset[str], fresh: frozenset[str],
                ready: Mapping[str, str], spares: Sequence[str], log_replicas: bool,
                voters_may_change: bool, az_of: Mapping[str, str],
                target: int = TARGET_VOTERS) -> tuple[GroupConfig, str] | None:
    """Rule 2: the one change to make now, with its reason, or None. Pure: the leader supplies who
    failed, who is fresh (heard lately and caught up), what each member reported ready for, and the
    ranked spares."""
    storage, log, learners = group.storage, group.log, group.learners
    healthy_storage = [name for name in storage if name not in failed]
    healthy_log = [name for name in log if name not in failed]
    live_learners = [name for name in learners if name not in failed]
    missing = target - len(healthy_storage) - len(healthy_log)
    if len(group.voters) > target and voters_may_change:  # a
        victim = _surplus_voter(group, leader, failed, az_of)
        if victim is not None:
            return (group.next(storage=_without(storage, victim), log=_without(log, victim)),
                    f"remove {victim}")
    for name in log:  # b
        if name not in failed and ready.get(name) == STORAGE:
            return (group.next(storage=storage + (name,), log=_without(log, name)),
                    f"{name} is a storage replica")
    for name in learners:  # c
        if name in failed:
            return group.next(learners=_without(learners, name)), f"learner {name} failed"
    for name in learners:  # d
        if name not in fresh or not voters_may_change:
            continue
        if ready.get(name) == STORAGE and len(healthy_storage) < target:
            return (group.next(storage=storage + (name,), learners=_without(learners, name)),
                    f"{name} joins as a storage replica")
        if (log_replicas and ready.get(name) in (LOG, STORAGE)
                and len(healthy_storage) + len(healthy_log) < target):
            return (group.next(log=log + (name,), learners=_without(learners, name)),
                    f"{name} joins as a log replica")
    if len(live_learners) > max(missing, 0):  # e
        name = live_learners[-1]
        return group.next(learners=_without(learners, name)), f"learner {name} not needed"
    if missing > len(live_learners) and spares:  # f
        return group.next(learners=learners + (spares[0],)), f"{spares[0]} joins as a learner"
    return None


def _surplus_voter(group: GroupConfig, leader: str, failed: frozenset[str],
                   az_of: Mapping[str, str]) -> str | None:
    others_storage = [name for name in group.storage if name != leader]
    others_log = [name for name in group.log if name != leader]
    for candidates in ([n for n in others_storage if n in failed], [n for n in others_log if n in failed],
                       others_log):
        if candidates:
            return candidates[0]
    azs = [az_of.get(name) for name in group.voters]
    shared = [name for name in others_storage if azs.count(az_of.get(name)) > 1]
    return shared[0] if shared else None


def _without(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(other for other in names if other != name)


# -- the replica's side --------------------------------------------------------------------------------
class Healing:
    """Group bookkeeping, the leader's healing and a new replica's copy, mixed into ``Replica``."""

    # Attributes used here are defined by Replica (name, partition, config, group, term, log, …).
    term: Term | None
    group: GroupConfig

    # -- which configuration is in force (group rule 2) ---------------------------------------------
    def _set_group(self, now_ns: int, group: GroupConfig, lsn: int) -> None:
        old, self.group, self.group_lsn = self.group, group, lsn
        self.peers = tuple(sorted(name for name in group.voters if name != self.name))
        self.quorum = group.quorum
        term = self.term
        if term is not None:
            targets = self._targets()
            for name in targets:
                if name not in term.next:
                    term.next[name] = self.log.last_lsn + 1
                    term.match[name] = 0
                    term.heard[name] = now_ns
            for name in [name for name in term.next if name not in targets]:
                for table in (term.next, term.match, term.heard, term.ready):
                    table.pop(name, None)
            term.lease.quorum = self.quorum
            if set(old.voters) != set(group.voters):
                term.voters_changed_ns = now_ns
        self._copy_for_kind()

    def _targets(self) -> tuple[str, ...]:
        """Whom a leader replicates to: every member but itself, voters and learners."""
        return tuple(sorted(name for name in self.group.members if name != self.name))

    def _groups_loaded(self, now_ns: int) -> None:
        self._group_entries = [(entry.lsn, entry.config) for entry in self.log.entries
                               if entry.config is not None]
        self._group_from_log(now_ns)

    def _groups_appended(self, now_ns: int, entries: Sequence[LogEntry]) -> None:
        added = [(entry.lsn, entry.config) for entry in entries if entry.config is not None]
        if added:
            self._group_entries.extend(added)
            self._group_from_log(now_ns)

    def _groups_truncated(self, now_ns: int, lsn: int) -> None:
        if self._group_entries and self._group_entries[-1][0] > lsn:
            self._group_entries = [(at, group) for at, group in self._group_entries if at <= lsn]
            self._group_from_log(now_ns)

    def _group_from_log(self, now_ns: int) -> None:
        lsn, group = self._group_entries[-1] if self._group_entries else (0, self.bootstrap_group)
        if group != self.group or lsn != self.group_lsn:
            self._set_group(now_ns, group, lsn)

    def committed_group(self) -> GroupConfig:
        """The latest configuration whose entry this replica knows to be committed."""
        for lsn, group in reversed(self._group_entries):
            if lsn <= self.commit_lsn:
                return group
        return self.bootstrap_group

    def _note_group_committed(self) -> None:
        """A leader notes each configuration it sees commit (once per epoch)."""
        if (self.term is not None and self.group_lsn and self.commit_lsn >= self.group_lsn
                and self.term.noted_epoch < self.group.epoch):
            self.term.noted_epoch = self.group.epoch
            group = self.group
            self._note("config-committed", group.epoch, group.storage, group.log, group.learners)

    # -- the leader: detection and planning (rules 1-3) -----------------------------------------------
    def _heal(self, now_ns: int) -> None:
        term = self.term
        if (term is None or term.released or self.commit_lsn < term.noop_lsn
                or self.group_lsn > self.commit_lsn):
            return
        healing = self.config.healing
        failed_after = round(healing.replica_failed_after_s * 1e9)
        fresh_within = FRESH_HEARTBEATS * self._heartbeat_ns
        others = self._targets()
        failed = frozenset(name for name in others if now_ns - term.heard[name] >= failed_after)
        if not failed and self.group.members == self.group.storage and \
                len(self.group.storage) == TARGET_VOTERS:
            return  # the usual case: three healthy storage replicas, nothing to plan
        fresh = frozenset(name for name in others if now_ns - term.heard[name] <= fresh_within
                          and term.match[name] >= self.commit_lsn)
        spares = (rank_spares(self.partition, self.group, failed, term.tried, self.cluster)
                  if self.cluster is not None else [])
        plan = plan_change(self.group, self.name, failed=failed, fresh=fresh, ready=term.ready,
                           spares=spares, log_replicas=self.config.mitigations.log_replicas,
                           voters_may_change=now_ns - term.voters_changed_ns >= self._lease_ns,
                           az_of=self.cluster.az_of if self.cluster is not None else {})
        if plan is None:
            return
        group, reason = plan
        for name in self.group.learners:
            if name in failed and name not in group.members:
                term.tried.add(name)
        self._propose_group(now_ns, group, reason)

    def _propose_group(self, now_ns: int, group: GroupConfig, reason: str) -> None:
        term = self.term
        assert term is not None
        old = self.group
        entry = LogEntry(self.log.last_lsn + 1, term.ballot, None, format_version=self.emit_format,
                         config=group)
        entry = dataclasses.replace(entry, checksum=checksum_of(entry))
        self._note("config-proposed", reason, group.epoch, group.storage, group.log, group.learners)
        self._leader_append(entry)
        self._groups_appended(now_ns, [entry])
        for name in group.learners:
            if name not in old.members:
                self._send(name, InstallReplica(self.partition, term.ballot, self.name))
                self._replicate_to(name)
        self._arm_replication()

    def _install_learners(self) -> None:
        """Rule 3: every heartbeat, ``InstallReplica`` to each learner not heard in this term."""
        term = self.term
        assert term is not None
        for name in self.group.learners:
            if name not in term.replied:
                self._send(name, InstallReplica(self.partition, term.ballot, self.name))

    def _on_replica_ready(self, now_ns: int, source: str, message: ReplicaReady) -> None:
        term = self.term
        if term is None or message.ballot != term.ballot or source not in term.heard:
            return
        term.heard[source] = now_ns
        if message.kind == STORAGE or term.ready.get(source) != STORAGE:
            term.ready[source] = message.kind
        self._heal(now_ns)

    # -- the new replica: copying and reporting (rules 4-6) -------------------------------------------
    def _copy_for_kind(self) -> None:
        kind = self.group.kind_of(self.name)
        healing = self.config.healing
        if kind in (LEARNER, LOG) and not self.copying:
            self.copying = True
            self._note("copy-started", kind)
            if kind == LEARNER and self.config.mitigations.log_replicas:
                self._emit(SetTimer("copy-log", round(healing.log_replica_copy_s * 1e9)))
            self._emit(SetTimer("copy-storage", round(healing.storage_rebuild_s * 1e9)))
        elif kind not in (LEARNER, LOG) and self.copying:
            self.copying = False
            self._emit(CancelTimer("copy-log"))
            self._emit(CancelTimer("copy-storage"))

    def _on_copy_log(self, now_ns: int) -> None:
        self._copied(LOG)

    def _on_copy_storage(self, now_ns: int) -> None:
        self._copied(STORAGE)

    def _copied(self, kind: str) -> None:
        if not self.copying:
            return
        self.ready_kinds.add(kind)
        self._note("replica-ready", kind)
        self._report_ready()

    def _report_ready(self) -> None:
        """Rule 5: tell the leader what this replica is ready to be, until the group says it is."""
        kind = self.group.kind_of(self.name)
        if kind is None or self.following is None or not self.ready_kinds:
            return
        best = STORAGE if STORAGE in self.ready_kinds else LOG
        if kind == STORAGE or (best == LOG and kind == LOG):
            return
        self._send(self.following[1], ReplicaReady(self.partition, self.following, self.name, best))

    def serves_reads(self) -> bool:
        """Rule 6: only storage replicas (and replicas outside any group they know of) serve reads."""
        return self.group.kind_of(self.name) not in (LOG, LEARNER)

    def _may_stand(self) -> bool:
        """Only an eligible storage replica of the group stands for election (M8, M11)."""
        return self.eligible and self.name in self.group.storage

    def _stat_kind(self) -> str:
        return self.group.kind_of(self.name) or "outside"
