"""The durability window (S7, M9): how many durable copies each partition had, and when; the quorum
oracle. Kept by the test observer, in true time, outside the system under test.

What it records:
- each partition's committed configurations (``config-committed`` notes of its leaders; the
  partition map's at time 0), deduplicated by epoch;
- when each storage node started hosting each partition's replica (at every boot, and when a spare
  took one on); a node hosts it until its next outage (a crash, a power loss, a wipe);
- every commit a leader made (``quorum-commit``): at that instant the observer counts the voters of
  the leader's configuration whose WAL durably holds that entry (same lsn, same ballot). Fewer than
  a majority is a commit without a quorum: a write acknowledged on fewer copies than the protocol
  promises (M6; S8's invariant; the planted bug ``log_replica_counted_twice``).

Metrics (summed over partitions where a sum makes sense):
- ``time_under_3_copies_s`` / ``time_under_2_copies_s``: time during which fewer than 3 (2) voters
  of the committed configuration were up and hosting the partition: durable copies of new writes;
- ``write_unavailable_after_second_fault_s``: write unavailability of a partition (the availability
  checker's intervals) from the moment a second distinct voter of it went down;
- ``log_replica_join_s`` / ``storage_rebuild_s``: the longest time from a replica joining as a
  learner to counting as a log replica / as a full storage replica (only when one did);
- ``healing.*``: configuration changes, replicas added, log replicas, storage rebuilds, voters
  removed, rebuilds still running at the end;
- ``commits_without_quorum`` (and ``commits_checked``): the quorum oracle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.checkers import unavailability_intervals
from harness.checkers.verdict import operations_of
from systems.dynamo.effects import Note
from systems.dynamo.group import GroupConfig
from systems.dynamo.messages import PartitionEntry

if TYPE_CHECKING:
    from harness import World
    from harness.history import History
    from systems.dynamo.replica import Replica

__all__ = ["DurabilityWindow", "QuorumViolation"]


@dataclass(frozen=True, slots=True)
class QuorumViolation:
    """A commit the leader made while fewer than a majority of voters durably held the entry."""

    time_ns: int
    partition: int
    leader: str
    lsn: int
    holders: tuple[str, ...]
    voters: tuple[str, ...]


class DurabilityWindow:
    """See the module docstring. ``replica_of(node, partition)``: that node's latest incarnation's
    replica of the partition, or None."""

    def __init__(self, world: World, partition_map: Sequence[PartitionEntry],
                 replica_of: Callable[[str, int], Replica | None]) -> None:
        self.world = world
        self.replica_of = replica_of
        self.groups: dict[int, list[tuple[int, GroupConfig]]] = {
            entry.partition: [(0, GroupConfig(0, tuple(sorted(entry.replicas))))]
            for entry in partition_map}
        self.hosting: dict[tuple[int, str], list[int]] = defaultdict(list)  # → start times
        self.commits_checked = 0
        self.violations: list[QuorumViolation] = []
        self.reasons: dict[tuple[int, int], str] = {}  # (partition, epoch) → why it was proposed

    # -- recording ------------------------------------------------------------------------------
    def hosting_started(self, node: str, partition: int) -> None:
        self.hosting[(partition, node)].append(self.world.kernel.now_ns)

    def record(self, node: str, key: Any, note: Note) -> None:
        if not isinstance(key, int):
            return
        if note.kind == "quorum-commit":
            self._check_quorum(node, key, int(note.detail[0]))
        elif note.kind == "config-proposed":
            self.reasons.setdefault((key, int(note.detail[1])), str(note.detail[0]))
        elif note.kind == "config-committed":
            epoch, storage, log, learners = note.detail
            history = self.groups.setdefault(key, [])
            if not history or epoch > history[-1][1].epoch:
                history.append((self.world.kernel.now_ns,
                                GroupConfig(int(epoch), tuple(storage), tuple(log), tuple(learners))))

    def _check_quorum(self, leader: str, partition: int, lsn: int) -> None:
        replica = self.replica_of(leader, partition)
        if replica is None:
            return
        self.commits_checked += 1
        group, ballot = replica.group, replica.log.ballot_at(lsn)
        holders = tuple(voter for voter in group.voters if self._holds(voter, partition, lsn, ballot))
        if len(holders) < group.quorum:
            self.violations.append(QuorumViolation(self.world.kernel.now_ns, partition, leader, lsn,
                                                   holders, group.voters))

    def _holds(self, node: str, partition: int, lsn: int, ballot: Any) -> bool:
        replica = self.replica_of(node, partition)
        return (replica is not None and replica.log.durable_lsn >= lsn
                and replica.log.ballot_at(lsn) == ballot)

    # -- copies over time -----------------------------------------------------------------------
    def _live_hosting(self, partition: int, node: str, end_ns: int) -> list[tuple[int, int]]:
        """[start, end) intervals in which ``node`` was up and hosted the partition's replica."""
        downs = sorted(down for down, _ in self.world.node(node).outages if down is not None)
        intervals = []
        for start in self.hosting.get((partition, node), ()):
            stop = next((down for down in downs if down >= start), end_ns)
            if stop > start:
                intervals.append((start, min(stop, end_ns)))
        return intervals

    def copies_timeline(self, partition: int, end_ns: int) -> list[tuple[int, int, int]]:
        """(start, end, copies): voters of the committed configuration up and hosting, piecewise."""
        groups = self.groups.get(partition, [])
        if not groups:
            return []
        nodes = sorted({name for _, group in groups for name in group.voters})
        live = {node: self._live_hosting(partition, node, end_ns) for node in nodes}
        cuts = {0, end_ns} | {at for at, _ in groups}
        cuts |= {edge for spans in live.values() for span in spans for edge in span}
        times = sorted(at for at in cuts if 0 <= at <= end_ns)
        pieces = []
        for start, stop in zip(times, times[1:]):
            group = _group_at(groups, start)
            copies = sum(any(a <= start < b for a, b in live[voter]) for voter in group.voters)
            pieces.append((start, stop, copies))
        return pieces

    def time_under(self, copies: int, end_ns: int) -> float:
        """Seconds, summed over partitions, with fewer than ``copies`` durable copies."""
        total = sum(stop - start for partition in self.groups
                    for start, stop, held in self.copies_timeline(partition, end_ns) if held < copies)
        return round(total / 1e9, 6)

    def second_fault_ns(self, partition: int) -> int | None:
        """When a second distinct voter of the partition (of the configuration then) went down."""
        groups = self.groups.get(partition, [])
        losses: dict[str, int] = {}
        for node in sorted({name for _, group in groups for name in group.voters}):
            for down, _ in self.world.node(node).outages:
                if down is not None and node in _group_at(groups, down).voters:
                    losses[node] = down
                    break
        times = sorted(losses.values())
        return times[1] if len(times) > 1 else None

    def changes(self) -> list[tuple[int, int, str]]:
        """(partition, true time, what changed) for each committed configuration, for the report."""
        return [(partition, at, f"epoch {group.epoch}: "
                 f"{self.reasons.get((partition, group.epoch), 'configuration changed')}")
                for partition, groups in sorted(self.groups.items()) for at, group in groups[1:]]

    def degraded(self, end_ns: int) -> list[tuple[int, int, int, int]]:
        """(partition, start, end, copies) for each stretch with fewer than three durable copies."""
        return [(partition, start, stop, copies) for partition in sorted(self.groups)
                for start, stop, copies in self.copies_timeline(partition, end_ns) if copies < 3]

    # -- metrics ----------------------------------------------------------------------------------
    def metrics(self, history: History, partition_of: Callable[[Any], int]) -> dict[str, float]:
        end_ns = self.world.kernel.now_ns
        metrics: dict[str, float] = {
            "time_under_3_copies_s": self.time_under(3, end_ns),
            "time_under_2_copies_s": self.time_under(2, end_ns),
            "write_unavailable_after_second_fault_s": self._unavailable_after_second_fault(
                history, partition_of),
            "commits_checked": self.commits_checked,
            "commits_without_quorum": len(self.violations),
        }
        metrics.update(self._healing_metrics())
        return metrics

    def _unavailable_after_second_fault(self, history: History,
                                        partition_of: Callable[[Any], int]) -> float:
        operations = operations_of(history)
        if not operations:
            return 0.0
        end = max(max(op.invoked_ns, op.completed_ns or 0) for op in operations)
        total = 0
        for interval in unavailability_intervals(operations, kind="write", group_of=partition_of,
                                                 end_ns=end):
            second = self.second_fault_ns(interval.group)
            if second is not None:
                total += max(0, interval.end_ns - max(interval.start_ns, second))
        return round(total / 1e9, 6)

    def _healing_metrics(self) -> dict[str, float]:
        changes = added = log_replicas = rebuilt = removed = pending = 0
        log_join: list[int] = []
        rebuild: list[int] = []
        for groups in self.groups.values():
            changes += len(groups) - 1
            first = groups[0][1]
            joined: dict[str, int] = {}  # learner → when it first appeared as one
            seen_log: set[str] = set()
            seen_storage: set[str] = set(first.storage)
            for at, group in groups[1:]:
                for name in group.learners:
                    joined.setdefault(name, at)
                for name in group.log:
                    if name not in seen_log and name in joined:
                        log_join.append(at - joined[name])
                    seen_log.add(name)
                for name in group.storage:
                    if name not in seen_storage and name in joined:
                        rebuild.append(at - joined[name])
                    seen_storage.add(name)
            added += len(seen_storage - set(first.storage)) + len(seen_log - seen_storage)
            log_replicas += len(seen_log)
            rebuilt += len(seen_storage - set(first.storage))
            voters_ever = {name for _, group in groups for name in group.voters}
            removed += len(voters_ever - set(groups[-1][1].voters))
            last = groups[-1][1]
            pending += len(last.log) + len(last.learners)
        metrics: dict[str, float] = {
            "healing.config_changes": changes, "healing.replicas_added": added,
            "healing.log_replicas_added": log_replicas, "healing.storage_rebuilds": rebuilt,
            "healing.voters_removed": removed, "healing.rebuilds_pending": pending}
        if log_join:
            metrics["log_replica_join_s"] = round(max(log_join) / 1e9, 6)
        if rebuild:
            metrics["storage_rebuild_s"] = round(max(rebuild) / 1e9, 6)
        return metrics


def _group_at(groups: list[tuple[int, GroupConfig]], at_ns: int) -> GroupConfig:
    current = groups[0][1]
    for start, group in groups:
        if start > at_ns:
            break
        current = group
    return current
