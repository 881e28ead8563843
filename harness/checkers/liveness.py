"""Liveness: while the cluster should be healthy, operations keep completing.

Theory of operation. From ``healthy_from_ns`` (faults stopped, the heal phase began) to ``end_ns`` the
service must make progress: no stretch longer than ``max_quiet_s`` may pass with operations asked
of it and no ``ok`` completion. The stretches lie between consecutive ``ok`` completions in that
window, plus from ``healthy_from_ns`` to the first one and from the last one to ``end_ns`` (so a
service that never recovers fails, and so does one that stops again); each starts at the first
invocation inside it, since time in which nobody asked anything proves nothing. A gap only counts if
it is *longer* than the bound. Each quiet gap is reported with its reason, what the clients saw in it: how many operations were
invoked during the gap and how they ended (``fail``/``info`` by error, still ``open``, or ``ok`` at
the gap's end or later). The violation's time is the moment a gap grew past the bound.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import pairwise
from dataclasses import dataclass
from typing import Any

from harness.checkers.convergence import time_to_recover
from harness.checkers.verdict import (FAIL_VERDICT, PASS, CheckResult, HistoryLike, answered,
                                      format_time, operations_of)
from harness.history import OK, Operation

__all__ = ["QuietGap", "check_liveness", "quiet_gaps"]

_GAPS_SHOWN = 10  # evidence details at most this many gaps


@dataclass(frozen=True, slots=True)
class QuietGap:
    """A stretch of true time with no ``ok`` completion."""

    start_ns: int
    end_ns: int

    @property
    def length_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def quiet_gaps(operations: Sequence[Operation], start_ns: int, end_ns: int) -> list[QuietGap]:
    """Every stretch of unanswered demand in [start_ns, end_ns], in time order.

    Between two consecutive answers (``ok``, or a compare or condition that failed: the service
    answered) or a window end, the stretch starts when the first operation invoked in that interval
    was invoked: time in which nobody asked anything is not a failure to make progress, however long.
    """
    oks = sorted(operation.completed_ns for operation in operations
                 if answered(operation) and operation.completed_ns is not None
                 and start_ns <= operation.completed_ns <= end_ns)
    invocations = sorted(operation.invoked_ns for operation in operations)
    gaps = []
    for first, second in pairwise([start_ns, *oks, end_ns]):
        index = bisect.bisect_left(invocations, first)
        if index < len(invocations) and invocations[index] < second:
            gaps.append(QuietGap(invocations[index], second))
    return gaps


def check_liveness(history: HistoryLike, *, healthy_from_ns: int, end_ns: int, max_quiet_s: float,
                   group_of: Callable[[Operation], Any] | None = None,
                   name: str = "liveness") -> CheckResult:
    """Fail if, in [healthy_from_ns, end_ns], more than ``max_quiet_s`` pass without an ``ok``.

    With ``group_of`` (operation → group, e.g. its key's partition, or the partition and whether it
    writes), progress is required of every group that clients asked something of in the window,
    each on its own: one partition stuck while the others serve is a liveness failure too.
    """
    if end_ns < healthy_from_ns:
        raise ValueError(f"end_ns ({end_ns}) is before healthy_from_ns ({healthy_from_ns})")
    if max_quiet_s <= 0:
        raise ValueError(f"max_quiet_s must be positive, got {max_quiet_s}")
    operations = operations_of(history)
    gaps = quiet_gaps(operations, healthy_from_ns, end_ns)
    too_long = [gap for gap in gaps if gap.length_s > max_quiet_s]
    metrics = _metrics(operations, gaps, too_long, healthy_from_ns)
    if group_of is not None and not too_long:
        return _check_groups(operations, group_of, healthy_from_ns, end_ns, max_quiet_s, name,
                             metrics)
    if not too_long:
        return CheckResult(name, PASS, f"an operation completed at least every {max_quiet_s} s from "
                           f"{format_time(healthy_from_ns)} to {format_time(end_ns)}", (), metrics)
    evidence = [_gap_line(gap, operations, max_quiet_s) for gap in too_long[:_GAPS_SHOWN]]
    if len(too_long) > _GAPS_SHOWN:
        evidence.append(f"... and {len(too_long) - _GAPS_SHOWN} more quiet gaps")
    first = too_long[0]
    summary = (f"no progress for {first.length_s:.3f} s (more than {max_quiet_s} s) from "
               f"{format_time(first.start_ns)} while the cluster should be healthy")
    return CheckResult(name, FAIL_VERDICT, summary, tuple(evidence), metrics,
                       first.start_ns + round(max_quiet_s * 1e9))


def _check_groups(operations: Sequence[Operation], group_of: Callable[[Operation], Any],
                  healthy_from_ns: int, end_ns: int, max_quiet_s: float, name: str,
                  metrics: dict[str, float]) -> CheckResult:
    by_group: dict[Any, list[Operation]] = defaultdict(list)
    for operation in operations:
        by_group[group_of(operation)].append(operation)
    stuck: list[tuple[Any, QuietGap]] = []
    for group in sorted(by_group, key=repr):
        group_operations = by_group[group]
        if not any(healthy_from_ns <= op.invoked_ns <= end_ns for op in group_operations):
            continue  # nobody asked anything of this group while healthy: nothing to judge
        stuck.extend((group, gap) for gap in quiet_gaps(group_operations, healthy_from_ns, end_ns)
                     if gap.length_s > max_quiet_s)
    metrics["stuck_groups"] = len({group for group, _ in stuck})
    if not stuck:
        return CheckResult(name, PASS, f"every group made progress at least every {max_quiet_s} s "
                           f"from {format_time(healthy_from_ns)} to {format_time(end_ns)}", (),
                           metrics)
    evidence = [f"group {group!r}: " + _gap_line(gap, by_group[group], max_quiet_s)
                for group, gap in stuck[:_GAPS_SHOWN]]
    group, first = stuck[0]
    summary = (f"group {group!r} made no progress for {first.length_s:.3f} s (more than "
               f"{max_quiet_s} s) from {format_time(first.start_ns)} while the cluster should be "
               f"healthy")
    return CheckResult(name, FAIL_VERDICT, summary, tuple(evidence), metrics,
                       first.start_ns + round(max_quiet_s * 1e9))


def _metrics(operations: Sequence[Operation], gaps: list[QuietGap], too_long: list[QuietGap],
             healthy_from_ns: int) -> dict[str, float]:
    metrics = {"longest_quiet_s": max((gap.length_s for gap in gaps), default=0.0),
               "quiet_gaps": len(too_long)}
    recovered = time_to_recover(operations, healthy_from_ns)
    if recovered is not None:  # never recovered: no number (the evidence says so)
        metrics["time_to_recover_s"] = recovered
    return metrics


def _gap_line(gap: QuietGap, operations: Sequence[Operation], max_quiet_s: float) -> str:
    attempted = [operation for operation in operations
                 if gap.start_ns <= operation.invoked_ns < gap.end_ns]
    outcomes = Counter(_outcome(operation) for operation in attempted)
    how = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    return (f"quiet from {format_time(gap.start_ns)} to {format_time(gap.end_ns)} "
            f"({gap.length_s:.3f} s > {max_quiet_s} s): {len(attempted)} operations invoked in it"
            + (f": {how}" if how else ""))


def _outcome(operation: Operation) -> str:
    """``info (timeout)``, ``fail (not-leader)``, ``open``, or ``ok at its end or later``."""
    if operation.completion is None:
        return "open"
    if operation.completion == OK:
        return "ok at its end or later"
    return f"{operation.completion} ({operation.error})" if operation.error else operation.completion
