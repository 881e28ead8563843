"""Counts per one-second bucket of a node's local clock, for request-rate metrics (S17, S20).

A bucket is ``now_ns // 1e9``. The metric code reads ``buckets()`` and turns it into peak and mean
rates; a second with no events has no bucket (its count is zero).
"""

from __future__ import annotations

__all__ = ["PerSecondCounter"]

_NS_PER_S = 1_000_000_000


class PerSecondCounter:
    """Events counted per second of local time."""

    __slots__ = ("_counts", "total")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.total = 0

    def add(self, now_ns: int, count: int = 1) -> None:
        second = now_ns // _NS_PER_S
        self._counts[second] = self._counts.get(second, 0) + count
        self.total += count

    def buckets(self) -> dict[int, int]:
        """Second → count, in time order (a copy)."""
        return dict(sorted(self._counts.items()))

    def peak(self) -> int:
        """The largest count in any one second (0 if nothing was counted)."""
        return max(self._counts.values(), default=0)

    def mean(self) -> float:
        """Events per second from the first counted second to the last, both included."""
        if not self._counts:
            return 0.0
        return self.total / (max(self._counts) - min(self._counts) + 1)
