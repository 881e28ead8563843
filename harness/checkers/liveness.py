"""Liveness: while the cluster should be healthy, operations keep completing.

Theory of operation. From ``healthy_from_ns`` (faults stopped, the heal phase began) to ``end_ns`` the
service must make progress: no stretch longer than ``max_quiet_s`` may pass without an ``ok``
completion. The stretches are the gaps between consecutive ``ok`` completions in that window, plus the
gap from ``healthy_from_ns`` to the first one and from the last one to ``end_ns`` (so a service that
never recovers fails, and so does one that stops again). A gap only counts if it is *longer* than the
bound. Each quiet gap is reported with its reason, what the clients saw in it: how many operations were
invoked during the gap and how they ended (``fail``/``info`` by error, still ``open``, or ``ok`` at
the gap's end or later). The violation's time is the moment a gap grew past the bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from dataclasses import dataclass

from harness.checkers.convergence import time_to_recover
from harness.checkers.verdict import (FAIL_VERDICT, PASS, CheckResult, HistoryLike, format_time,
                                      operations_of)
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
    """Every gap between ``ok`` completions in [start_ns, end_ns], the ends included, in time order."""
    oks = sorted(operation.completed_ns for operation in operations
                 if operation.completion == OK and operation.completed_ns is not None
                 and start_ns <= operation.completed_ns <= end_ns)
    bounds = [start_ns, *oks, end_ns]
    return [QuietGap(first, second) for first, second in pairwise(bounds) if second > first]


def check_liveness(history: HistoryLike, *, healthy_from_ns: int, end_ns: int, max_quiet_s: float,
                   name: str = "liveness") -> CheckResult:
    """Fail if, in [healthy_from_ns, end_ns], more than ``max_quiet_s`` pass without an ``ok``."""
    if end_ns < healthy_from_ns:
        raise ValueError(f"end_ns ({end_ns}) is before healthy_from_ns ({healthy_from_ns})")
    if max_quiet_s <= 0:
        raise ValueError(f"max_quiet_s must be positive, got {max_quiet_s}")
    operations = operations_of(history)
    gaps = quiet_gaps(operations, healthy_from_ns, end_ns)
    too_long = [gap for gap in gaps if gap.length_s > max_quiet_s]
    metrics = _metrics(operations, gaps, too_long, healthy_from_ns)
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
