"""What the test observer saw: protocol notes stamped with true time, turned into metrics.

Replicas report elections, leadership and leases as ``Note`` effects in their own (local-clock)
terms. The observer, which sits outside the system under test, stamps each with the simulation's true
time, converts lease deadlines from the replica's clock to true time, and keeps them. From that record:

- elections, by reason (``suspicion``, ``handoff``, ``retry``…), and leadership changes; the first
  elections of a partition that never had a leader count apart, as ``initial``;
- spurious elections: an election that started while another replica of the partition held a valid
  lease (a healthy leader was being deposed: S2, S5);
- lease intervals in true time, which the ``leases`` checker reads for overlaps (two replicas of one
  partition serving at once: S6);
- time without a leader: summed over partitions, the time in which no replica held a lease;
- membership (S20): when each storage node left service (its membership lease ran out) and came
  back, in true time; a node that crashes meanwhile is counted as down, not out of service.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness import World
from systems.dynamo.effects import Note

__all__ = ["Observations", "LeaseInterval", "ElectionRecord"]


@dataclass(frozen=True, slots=True)
class LeaseInterval:
    """A leader's lease in true time: it may serve in [start_ns, end_ns)."""

    partition: int
    node: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class ElectionRecord:
    partition: int
    node: str  # the candidate
    time_ns: int
    reason: str
    spurious: bool  # another replica held a valid lease when it started


@dataclass(slots=True)
class Observations:
    """Notes from every replica, in true time. The system's ``observe`` callback feeds ``record``."""

    world: World
    notes: list[tuple[int, str, Any, str, tuple[Any, ...]]] = field(default_factory=list)
    leases: dict[tuple[int, str], list[LeaseInterval]] = field(default_factory=lambda: defaultdict(list))
    elections: list[ElectionRecord] = field(default_factory=list)
    leaders: list[tuple[int, int, str]] = field(default_factory=list)  # (time, partition, node)
    # node → [start, end) intervals out of service; end None while it lasts
    out_of_service: dict[str, list[list[int | None]]] = field(
        default_factory=lambda: defaultdict(list))

    def record(self, node: str, key: Any, note: Note) -> None:
        now = self.world.kernel.now_ns
        self.notes.append((now, node, key, note.kind, note.detail))
        self.world.kernel.trace.record((now, node, "note", (note.kind, key) + tuple(note.detail)))
        if not isinstance(key, int):
            if note.kind in ("left-service", "rejoined-service"):
                self._membership(node, now, note.kind == "left-service")
            return
        if note.kind == "lease-renewed":
            self._lease(key, node, now, int(note.detail[0]))
        elif note.kind in ("lease-lost", "stepped-down"):
            self._end_lease(key, node, now)
        elif note.kind == "election-started":
            reason = str(note.detail[0]) if note.detail else "unknown"
            if not any(partition == key for partition, _ in self.leases):
                reason = "initial"  # no leader ever held a lease: bootstrapping, not a failover
            spurious = any(self.holds_lease(key, other, now) for other in self._replicas_of(key)
                           if other != node)
            self.elections.append(ElectionRecord(key, node, now, reason, spurious))
        elif note.kind == "became-leader":
            self.leaders.append((now, key, node))

    # -- leases ---------------------------------------------------------------------------------
    def _lease(self, partition: int, node: str, now: int, local_until_ns: int) -> None:
        end = self.world.node(node).clock.true_at(local_until_ns)
        intervals = self.leases[(partition, node)]
        if intervals and intervals[-1].end_ns >= now:  # a renewal extends the current lease
            last = intervals[-1]
            intervals[-1] = LeaseInterval(partition, node, last.start_ns, max(last.end_ns, end))
        elif end > now:
            intervals.append(LeaseInterval(partition, node, now, end))

    def _end_lease(self, partition: int, node: str, now: int) -> None:
        intervals = self.leases.get((partition, node))
        if intervals and intervals[-1].end_ns > now:
            last = intervals[-1]
            intervals[-1] = LeaseInterval(partition, node, last.start_ns, now)

    def holds_lease(self, partition: int, node: str, at_ns: int) -> bool:
        return any(i.start_ns <= at_ns < i.end_ns for i in self.leases.get((partition, node), ()))

    def serving_intervals(self) -> dict[int, list[LeaseInterval]]:
        """Per partition, the leases cut short where their holder was down (a dead leader's lease
        may not have expired, but nobody is serving under it)."""
        by_partition: dict[int, list[LeaseInterval]] = defaultdict(list)
        for (partition, node), intervals in sorted(self.leases.items()):
            outages = self.world.node(node).outages
            for interval in intervals:
                end = interval.end_ns
                for down, _ in outages:
                    if interval.start_ns <= down < end:  # type: ignore[operator]
                        end = down  # type: ignore[assignment]
                by_partition[partition].append(LeaseInterval(partition, node, interval.start_ns, end))
        return by_partition

    def _replicas_of(self, partition: int) -> list[str]:
        return sorted({node for (p, node) in self.leases if p == partition})

    # -- membership (S20) -----------------------------------------------------------------------
    def _membership(self, node: str, now: int, left: bool) -> None:
        intervals = self.out_of_service[node]
        if left:
            intervals.append([now, None])
        elif intervals and intervals[-1][1] is None:
            intervals[-1][1] = now

    def out_of_service_intervals(self) -> list[tuple[str, int, int]]:
        """(node, start, end) in true time, each cut short where the node went down, and ended at
        the current time if it still lasts."""
        end_of_run = self.world.kernel.now_ns
        cut: list[tuple[str, int, int]] = []
        for node, intervals in sorted(self.out_of_service.items()):
            outages = self.world.node(node).outages
            for start, end in intervals:
                assert start is not None
                stop = end_of_run if end is None else end
                for down, _ in outages:
                    if start <= down < stop:  # type: ignore[operator]
                        stop = down  # type: ignore[assignment]
                cut.append((node, start, stop))
        return cut

    def membership_metrics(self) -> dict[str, float]:
        """Peak number of storage nodes out of service at once, node-seconds out of service, and
        how many are out of service when the run ends."""
        intervals = self.out_of_service_intervals()
        events = sorted([(start, 1) for _, start, _ in intervals] +
                        [(end, -1) for _, _, end in intervals])  # an end sorts before a start
        peak = current = 0
        for _, change in events:
            current += change
            peak = max(peak, current)
        now = self.world.kernel.now_ns
        still_out = {node for node, runs in self.out_of_service.items()  # not cut by an outage
                     if runs and runs[-1][1] is None and (node, runs[-1][0], now) in intervals}
        return {"membership.out_of_service_peak_nodes": peak,
                "membership.out_of_service_node_s": round(
                    sum(end - start for _, start, end in intervals) / 1e9, 6),
                "membership.out_of_service_at_end": len(still_out)}

    # -- metrics --------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        reasons: dict[str, int] = defaultdict(int)
        for election in self.elections:
            reasons[election.reason] += 1
        metrics: dict[str, float] = {
            "elections": sum(e.reason != "initial" for e in self.elections),
            "elections.spurious": sum(e.spurious for e in self.elections),
            "leadership_changes": len(self.leaders),
        }
        for reason in sorted(reasons):
            metrics[f"elections.{reason}"] = reasons[reason]
        metrics["time_without_leader_s"] = round(self.time_without_leader_ns() / 1e9, 6)
        metrics.update(self.membership_metrics())
        return metrics

    def ready_ns(self, partitions: int) -> int:
        """When the table became ready: every one of ``partitions`` had had a leader holding a
        lease (DynamoDB's ACTIVE). 0 if some partition never had one, so that its unavailability
        counts from the start."""
        first: dict[int, int] = {}
        for (partition, _), intervals in self.leases.items():
            for interval in intervals:
                first[partition] = min(first.get(partition, interval.start_ns), interval.start_ns)
        if len(first) < partitions:
            return 0
        return max(first.values(), default=0)

    def time_without_leader_ns(self) -> int:
        """Summed over partitions: time in which no live replica held a lease (could serve), from the
        partition's first lease to the end of the run (bootstrapping is not counted)."""
        end = self.world.kernel.now_ns
        total = 0
        for intervals in self.serving_intervals().values():
            intervals.sort(key=lambda interval: interval.start_ns)
            reached = intervals[0].start_ns
            for interval in intervals:
                if interval.start_ns > reached:
                    total += interval.start_ns - reached
                reached = max(reached, min(interval.end_ns, end))
            total += max(end - reached, 0)
        return total
