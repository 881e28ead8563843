"""Leadership: leases that must never overlap, and the accounting of elections.

Theory of operation. Systems with leaders report, through the test observer, what happened in true
time; these functions take plain records so that any system can feed them:

- A lease is ``(group, holder, start_ns, end_ns)``: the holder may serve the group in [start, end).
  Leases exist so that two replicas never serve one group at once, so ``check_leases`` fails on any two
  leases of one group, held by different holders, that share an instant. Back-to-back leases (one ends
  exactly when the next starts) do not overlap; a holder overlapping itself (a renewal) is fine.
- An election is ``(group, holder, time_ns, reason, spurious)``: the candidate, when it started, why
  (``suspicion``, ``handoff``…), and whether it was spurious (a healthy leader was deposed).
- A leadership interval is ``(group, holder, start_ns, end_ns)``, ``end_ns`` None if it lasted to the
  end of the run. The time without a leader of a group is the part of [start_ns, end_ns] (the run)
  covered by none of its intervals.

Records may be tuples or dataclasses with the fields in that order (e.g. ``LeaseInterval``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.checkers.verdict import FAIL_VERDICT, PASS, CheckResult, format_time

__all__ = ["Lease", "check_leases", "election_summary", "lease_overlaps"]

_OVERLAPS_SHOWN = 10  # evidence details at most this many overlaps


@dataclass(frozen=True, slots=True)
class Lease:
    """``holder`` may serve ``group`` in [start_ns, end_ns) of true time."""

    group: Any
    holder: str
    start_ns: int
    end_ns: int | None  # None: to the end of the run (leadership intervals only)


def _fields(record: Any, count: int) -> tuple[Any, ...]:
    """A record as a tuple of ``count`` fields (tuples, lists or dataclasses)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        values = tuple(getattr(record, field.name) for field in dataclasses.fields(record))
    else:
        values = tuple(record)
    if len(values) != count:
        raise ValueError(f"expected a record of {count} fields, got {record!r}")
    return values


def _leases(records: Iterable[Any]) -> list[Lease]:
    return [Lease(*_fields(record, 4)) for record in records]


# -- leases --------------------------------------------------------------------------------------------
def lease_overlaps(intervals: Iterable[Any]) -> list[tuple[Lease, Lease]]:
    """Pairs of non-empty leases of one group, held by different holders, that share an instant."""
    by_group: dict[Any, list[Lease]] = {}
    for lease in _leases(intervals):
        if lease.end_ns is None or lease.end_ns > lease.start_ns:
            by_group.setdefault(lease.group, []).append(lease)
    overlaps: list[tuple[Lease, Lease]] = []
    for group in sorted(by_group, key=repr):
        leases = sorted(by_group[group], key=lambda lease: (lease.start_ns, lease.holder))
        for index, first in enumerate(leases):
            for second in leases[index + 1:]:
                if first.end_ns is not None and second.start_ns >= first.end_ns:
                    break
                if second.holder != first.holder:
                    overlaps.append((first, second))
    return overlaps


def check_leases(intervals: Iterable[Any], *, group_label: str = "group",
                 name: str = "leases") -> CheckResult:
    """Fail if two holders' leases of one group overlap in true time."""
    records = list(intervals)
    overlaps = lease_overlaps(records)
    metrics = {"leases": len(records), "lease_overlaps": len(overlaps)}
    if not overlaps:
        return CheckResult(name, PASS, f"no two of {len(records)} leases overlap", (), metrics)
    evidence = [_overlap_line(first, second, group_label)
                for first, second in overlaps[:_OVERLAPS_SHOWN]]
    if len(overlaps) > _OVERLAPS_SHOWN:
        evidence.append(f"... and {len(overlaps) - _OVERLAPS_SHOWN} more overlaps")
    first, second = min(overlaps, key=lambda pair: pair[1].start_ns)
    summary = (f"{len(overlaps)} overlapping leases: two replicas could serve {group_label} "
               f"{first.group!r} at once from {format_time(second.start_ns)}")
    return CheckResult(name, FAIL_VERDICT, summary, tuple(evidence), metrics, second.start_ns)


def _overlap_line(first: Lease, second: Lease, group_label: str) -> str:
    ends = [end for end in (first.end_ns, second.end_ns) if end is not None]
    until = f" to {format_time(min(ends))}" if ends else ""
    both = f"both from {format_time(second.start_ns)}{until}"
    return (f"{group_label} {first.group!r}: {first.holder} held {_span(first)} and {second.holder} "
            f"held {_span(second)}: {both}")


def _span(lease: Lease) -> str:
    end = "end of run" if lease.end_ns is None else format_time(lease.end_ns)
    return f"[{format_time(lease.start_ns)}, {end})"


# -- elections -----------------------------------------------------------------------------------------
def election_summary(elections: Iterable[Any], leadership: Iterable[Any] = (), *, start_ns: int = 0,
                     end_ns: int | None = None, groups: Iterable[Any] = ()) -> dict[str, float]:
    """Metrics: ``elections``, ``elections.spurious``, ``elections.<reason>``, and the time without a
    leader in [start_ns, end_ns] per group (``time_without_leader_s.<group>``) and summed
    (``time_without_leader_s``), for every group named in any input. ``end_ns`` defaults to the latest
    time in the input."""
    records = [_fields(record, 5) for record in elections]
    leases = _leases(leadership)
    end = _latest(records, leases, start_ns) if end_ns is None else end_ns
    metrics: dict[str, float] = {"elections": len(records),
                                 "elections.spurious": sum(bool(record[4]) for record in records)}
    for reason, count in sorted(Counter(str(record[3]) for record in records).items()):
        metrics[f"elections.{reason}"] = count
    names = {*(record[0] for record in records), *(lease.group for lease in leases), *groups}
    without = {group: _uncovered_s([lease for lease in leases if lease.group == group], start_ns, end)
               for group in sorted(names, key=repr)}
    metrics["time_without_leader_s"] = sum(without.values())
    metrics.update({f"time_without_leader_s.{group}": seconds for group, seconds in without.items()})
    return metrics


def _latest(records: list[tuple[Any, ...]], leases: list[Lease], start_ns: int) -> int:
    times = [record[2] for record in records] + [lease.start_ns for lease in leases]
    times += [lease.end_ns for lease in leases if lease.end_ns is not None]
    return max(times, default=start_ns)


def _uncovered_s(leases: list[Lease], start_ns: int, end_ns: int) -> float:
    """Seconds of [start_ns, end_ns] that no interval covers (intervals merged, then clipped)."""
    covered, reached = 0, start_ns
    for lease in sorted(leases, key=lambda lease: lease.start_ns):
        lease_end = end_ns if lease.end_ns is None else min(lease.end_ns, end_ns)
        begin = max(lease.start_ns, reached)
        if lease_end > begin:
            covered += lease_end - begin
            reached = lease_end
    return max(end_ns - start_ns - covered, 0) / 1e9
