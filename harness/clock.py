"""Node clocks: each node's local time as a function of the simulation's true time.

Theory of operation. The kernel keeps one true time (integer nanoseconds). A node never sees it; it
sees its local clock, a piecewise-linear function of true time:

    local(t) = local_anchor + (t - true_anchor) * (1e9 + drift_ppb) / 1e9

Changing the skew, the drift or jumping the clock re-anchors the line at the true time of the change,
so local time is continuous except across a jump. All arithmetic is on integers (drift is kept in
parts per billion), so the same run gives the same local times everywhere.

The clock is a pure value holder: callers pass the true time. The node layer owns the consequence of a
change (its pending timers, which fire by local time, are rescheduled).
"""

from __future__ import annotations

import math

__all__ = ["NodeClock"]

_BILLION = 1_000_000_000


class NodeClock:
    """A node's local clock: true time transformed by an offset, a drift rate and jumps."""

    __slots__ = ("_true_anchor_ns", "_local_anchor_ns", "_rate_ppb", "jumps")

    def __init__(self, offset_ns: int = 0, drift_ppm: float = 0.0) -> None:
        self._true_anchor_ns = 0
        self._local_anchor_ns = offset_ns
        self._rate_ppb = _rate_from_drift(drift_ppm)
        self.jumps = 0  # how many jumps this clock has taken (for statistics)

    @property
    def drift_ppm(self) -> float:
        return (self._rate_ppb - _BILLION) / 1000.0

    def local(self, true_ns: int) -> int:
        """Local time (ns) at the given true time."""
        return self._local_anchor_ns + (true_ns - self._true_anchor_ns) * self._rate_ppb // _BILLION

    def true_at(self, local_ns: int) -> int:
        """The earliest true time at which local time reaches ``local_ns`` (rounded up)."""
        elapsed_local = local_ns - self._local_anchor_ns
        return self._true_anchor_ns + -(-elapsed_local * _BILLION // self._rate_ppb)

    def offset_ns(self, true_ns: int) -> int:
        """How far local time is ahead of true time, at the given true time."""
        return self.local(true_ns) - true_ns

    def set_offset(self, true_ns: int, offset_ns: int) -> None:
        """From ``true_ns`` on, local time reads true time plus ``offset_ns`` (drift unchanged)."""
        self._true_anchor_ns = true_ns
        self._local_anchor_ns = true_ns + offset_ns

    def set_drift(self, true_ns: int, drift_ppm: float) -> None:
        """From ``true_ns`` on, local time runs ``drift_ppm`` parts per million fast (negative: slow)."""
        rate = _rate_from_drift(drift_ppm)
        self._reanchor(true_ns)
        self._rate_ppb = rate

    def jump(self, true_ns: int, by_ns: int) -> None:
        """Step local time by ``by_ns`` (negative: backwards), as an NTP step or a bad admin would."""
        self._reanchor(true_ns)
        self._local_anchor_ns += by_ns
        self.jumps += 1

    def _reanchor(self, true_ns: int) -> None:
        self._local_anchor_ns = self.local(true_ns)
        self._true_anchor_ns = true_ns


def _rate_from_drift(drift_ppm: float) -> int:
    """The clock's rate in parts per billion of true speed; refuses a clock that stops or reverses."""
    if not math.isfinite(drift_ppm) or round(drift_ppm * 1000) <= -_BILLION:
        raise ValueError(f"drift_ppm={drift_ppm} would stop or reverse the clock; must be > -1e6")
    return _BILLION + round(drift_ppm * 1000)
