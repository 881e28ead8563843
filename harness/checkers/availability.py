"""Availability: how often, and how fast, the service answered; when each group could not serve.

Theory of operation. An operation *succeeded* if the service answered it: ``ok``, or a ``fail`` that
reports a false condition (``verdict.answered``: a rejected conditional write is an answer). Any other
``fail``, an ``info`` and an operation still open count as failures. Only operations invoked in
[start_ns, end_ns] count, each at its invocation time (when the client asked).

- Success ratio per window: the run is cut into windows of ``window_s`` (300 s, as DynamoDB measures
  its availability) from ``start_ns``; each window's ratio is successes / attempts among the
  operations invoked in it. Windows nobody asked anything in have no ratio.
- Unavailability intervals, per group (``group_of(key)``: a partition, say; one group ``all`` by
  default), separately for all operations, writes and reads: a maximal interval that starts when a
  failed operation is invoked after the group's last success and ends when the next success completes
  (or at ``end_ns``). A success counts at its completion (the service demonstrably answered then), a
  failure at its invocation (the request the service did not serve was made then). Intervals of zero
  length are dropped. Totals (``unavailable_s``, ``write_unavailable_s``, ``read_unavailable_s``)
  are summed over groups (two partitions down for 10 s: 20 s); ``longest_unavailable_s``,
  ``longest_write_unavailable_s`` and ``longest_read_unavailable_s`` are the longest single interval
  (how long any one group could not serve: what a bound on failover time is about).
- Latency percentiles (nearest rank: p50, p99, max, in milliseconds) of the answered operations, per
  ``f``, reads split into ``/strong`` and ``/eventual`` when their argument says ``consistent``.

The verdict is ``pass`` unless a bound is given and broken: a window's ratio below
``min_success_ratio``, or an unavailability interval (of any kind) longer than ``max_unavailable_s``.
With a bound but no operation to measure it on, the verdict is ``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checkers.verdict import (FAIL_VERDICT, PASS, READ_OPERATIONS, UNKNOWN_OUTCOME,
                                      WRITE_OPERATIONS, CheckResult, HistoryLike, answered,
                                      format_time, operations_of)
from harness.history import Operation

__all__ = ["UnavailableInterval", "Window", "check_availability", "latency_percentiles_ms",
           "success_windows", "unavailability_intervals"]

KINDS = ("all", "write", "read")
_PERCENTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
_INTERVALS_SHOWN = 10  # evidence lists at most this many intervals, longest first


@dataclass(frozen=True, slots=True)
class Window:
    """The operations invoked in [start_ns, end_ns) and how many of them the service answered."""

    start_ns: int
    end_ns: int
    attempts: int
    successes: int

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None


@dataclass(frozen=True, slots=True)
class UnavailableInterval:
    """A stretch in which one group served no operation of one kind (all | write | read)."""

    group: Any
    kind: str
    start_ns: int
    end_ns: int
    failures: int  # failed or unknown operations in it

    @property
    def length_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def check_availability(history: HistoryLike, *, window_s: float = 300.0,
                 group_of: Callable[[Any], Any] | None = None, start_ns: int = 0,
                 end_ns: int | None = None, max_unavailable_s: float | None = None,
                 min_success_ratio: float | None = None, name: str = "availability") -> CheckResult:
    """Success ratios per window, unavailability intervals per group, latency percentiles; fail only
    if a given bound is broken."""
    operations = operations_of(history)
    end = max(_end_of(operations), start_ns) if end_ns is None else end_ns
    if end < start_ns:
        raise ValueError(f"end_ns ({end}) is before start_ns ({start_ns})")
    counted = [operation for operation in operations if start_ns <= operation.invoked_ns <= end]
    windows = success_windows(counted, window_s=window_s, start_ns=start_ns, end_ns=end)
    intervals = [interval for kind in KINDS
                 for interval in unavailability_intervals(counted, kind=kind, group_of=group_of,
                                                          end_ns=end)]
    metrics = _metrics(counted, windows, intervals)
    metrics["availability.from_s"] = start_ns / 1e9  # operations invoked before are not counted
    problems = sorted(_broken_bounds(windows, intervals, max_unavailable_s, min_success_ratio),
                      key=lambda problem: problem[1])
    within = [interval for interval in intervals
              if max_unavailable_s is None or interval.length_s <= max_unavailable_s]
    evidence = tuple(line for line, _ in problems) + _interval_lines(within)
    if problems:
        return CheckResult(name, FAIL_VERDICT, problems[0][0], evidence, metrics, problems[0][1])
    if not counted and (max_unavailable_s is not None or min_success_ratio is not None):
        return CheckResult(name, UNKNOWN_OUTCOME, "no operation to measure availability on", (),
                           metrics)
    return CheckResult(name, PASS, _summary(metrics, window_s), evidence, metrics)


def _end_of(operations: Sequence[Operation]) -> int:
    return max((max(operation.invoked_ns, operation.completed_ns or 0) for operation in operations),
               default=0)


# -- windows -------------------------------------------------------------------------------------------
def success_windows(operations: Sequence[Operation], *, window_s: float = 300.0, start_ns: int = 0,
                    end_ns: int) -> list[Window]:
    """The windows from ``start_ns`` to ``end_ns`` (the last one may be shorter), by invocation time."""
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    width = round(window_s * 1e9)
    count = max(1, math.ceil((end_ns - start_ns) / width))
    attempts, successes = [0] * count, [0] * count
    for operation in operations:
        if start_ns <= operation.invoked_ns <= end_ns:
            index = min((operation.invoked_ns - start_ns) // width, count - 1)
            attempts[index] += 1
            successes[index] += answered(operation)
    return [Window(start_ns + index * width, min(start_ns + (index + 1) * width, end_ns),
                   attempts[index], successes[index]) for index in range(count)]


# -- unavailability ------------------------------------------------------------------------------------
def unavailability_intervals(operations: Sequence[Operation], *, kind: str = "all",
                             group_of: Callable[[Any], Any] | None = None,
                             end_ns: int) -> list[UnavailableInterval]:
    """The unavailability intervals of each group for operations of ``kind``, by group then time."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {KINDS}, got {kind!r}")
    events: dict[Any, list[tuple[int, int]]] = {}  # group → (time, 0 success | 1 failure)
    for operation in operations:
        if _of_kind(operation, kind):
            group = "all" if group_of is None else group_of(operation.key)
            events.setdefault(group, []).append(_event(operation))
    return [interval for group in sorted(events, key=repr)
            for interval in _intervals(group, kind, sorted(events[group]), end_ns)]


def _of_kind(operation: Operation, kind: str) -> bool:
    if kind == "write":
        return operation.f in WRITE_OPERATIONS
    return kind == "all" or operation.f in READ_OPERATIONS


def _event(operation: Operation) -> tuple[int, int]:
    """A success at its completion, a failure at its invocation (at one instant, successes first)."""
    if answered(operation) and operation.completed_ns is not None:
        return operation.completed_ns, 0
    return operation.invoked_ns, 1


def _intervals(group: Any, kind: str, events: list[tuple[int, int]],
               end_ns: int) -> list[UnavailableInterval]:
    intervals: list[UnavailableInterval] = []
    start, failures = None, 0
    for time_ns, failed in events:
        if failed:
            start, failures = (time_ns if start is None else start), failures + 1
        elif start is not None:
            intervals.append(UnavailableInterval(group, kind, start, min(time_ns, end_ns), failures))
            start, failures = None, 0
    if start is not None:
        intervals.append(UnavailableInterval(group, kind, start, end_ns, failures))
    return [interval for interval in intervals if interval.end_ns > interval.start_ns]


# -- latency -------------------------------------------------------------------------------------------
def latency_percentiles_ms(operations: Sequence[Operation]) -> dict[str, dict[str, float]]:
    """label → {p50, p99, max} in milliseconds, over answered operations (nearest rank)."""
    latencies: dict[str, list[int]] = {}
    for operation in operations:
        if answered(operation) and operation.completed_ns is not None:
            latencies.setdefault(_label(operation), []).append(
                operation.completed_ns - operation.invoked_ns)
    return {label: {name: _nearest_rank(sorted(values), fraction) / 1e6
                    for name, fraction in _PERCENTILES}
            for label, values in sorted(latencies.items())}


def _label(operation: Operation) -> str:
    argument = operation.argument
    if isinstance(argument, dict) and "consistent" in argument:
        return f"{operation.f}/{'strong' if argument['consistent'] else 'eventual'}"
    return operation.f


def _nearest_rank(values: list[int], fraction: float) -> int:
    return values[min(max(1, math.ceil(fraction * len(values))), len(values)) - 1]


# -- verdict and metrics -------------------------------------------------------------------------------
def _broken_bounds(windows: list[Window], intervals: list[UnavailableInterval],
                   max_unavailable_s: float | None,
                   min_success_ratio: float | None) -> list[tuple[str, int]]:
    """(evidence line, time of the violation) for each bound broken."""
    problems: list[tuple[str, int]] = []
    if min_success_ratio is not None:
        problems += [((f"success ratio {window.successes}/{window.attempts} = "
                      f"{window.success_ratio:.4f} < {min_success_ratio} in the window "
                      f"{format_time(window.start_ns)} to {format_time(window.end_ns)}"),
                      window.start_ns) for window in windows
                     if window.attempts and window.successes < min_success_ratio * window.attempts]
    if max_unavailable_s is not None:
        problems += [(f"{_describe(interval)} > {max_unavailable_s} s",
                      interval.start_ns + round(max_unavailable_s * 1e9))
                     for interval in intervals if interval.length_s > max_unavailable_s]
    return problems


def _interval_lines(intervals: list[UnavailableInterval]) -> tuple[str, ...]:
    longest = sorted(intervals, key=lambda interval: (-(interval.end_ns - interval.start_ns),
                                                      interval.start_ns, interval.kind))
    lines = [_describe(interval) for interval in longest[:_INTERVALS_SHOWN]]
    if len(longest) > _INTERVALS_SHOWN:
        lines.append(f"... and {len(longest) - _INTERVALS_SHOWN} shorter unavailability intervals")
    return tuple(lines)


def _describe(interval: UnavailableInterval) -> str:
    what = {"all": "unavailable", "write": "unavailable for writes", "read": "unavailable for reads"}
    return (f"group {interval.group!r} {what[interval.kind]} from {format_time(interval.start_ns)} to "
            f"{format_time(interval.end_ns)} ({interval.length_s:.3f} s, {interval.failures} failed "
            f"or unknown operations)")


def _metrics(operations: Sequence[Operation], windows: list[Window],
             intervals: list[UnavailableInterval]) -> dict[str, float]:
    successes = sum(answered(operation) for operation in operations)
    ratios = [window.success_ratio for window in windows if window.success_ratio is not None]
    metrics: dict[str, float] = {"availability.operations": len(operations),
                                 "availability.successes": successes,
                                 "availability.windows": len(ratios)}
    if operations:
        metrics["availability.success_ratio"] = successes / len(operations)
        metrics["availability.min_window_success_ratio"] = min(ratios)
    for kind, prefix in (("all", ""), ("write", "write_"), ("read", "read_")):
        metrics[f"{prefix}unavailable_s"] = sum(interval.length_s for interval in intervals
                                                if interval.kind == kind)
    metrics["unavailability_intervals"] = sum(interval.kind == "all" for interval in intervals)
    metrics["longest_unavailable_s"] = max((interval.length_s for interval in intervals), default=0.0)
    for kind, prefix in (("write", "write_"), ("read", "read_")):
        metrics[f"longest_{prefix}unavailable_s"] = max(
            (interval.length_s for interval in intervals if interval.kind == kind), default=0.0)
    for label, percentiles in latency_percentiles_ms(operations).items():
        metrics.update({f"latency_ms.{label}.{name}": value for name, value in percentiles.items()})
    return metrics


def _summary(metrics: dict[str, float], window_s: float) -> str:
    if not metrics["availability.operations"]:
        return "no operations"
    return (f"{metrics['availability.success_ratio']:.2%} of "
            f"{int(metrics['availability.operations'])} operations answered; worst {window_s:g} s "
            f"window {metrics['availability.min_window_success_ratio']:.2%}; unavailable "
            f"{metrics['unavailable_s']:.3f} s (writes {metrics['write_unavailable_s']:.3f} s, reads "
            f"{metrics['read_unavailable_s']:.3f} s)")
