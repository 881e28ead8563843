"""Node clocks: local() and true_at() are inverse; skew, drift and jumps behave as documented."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.clock import NodeClock

S = 1_000_000_000
MAX_TIME_NS = 10**15  # ~11.6 days of true time; far past any run
OFFSETS = st.integers(min_value=-10**13, max_value=10**13)
DRIFTS = st.floats(min_value=-500_000, max_value=500_000, allow_nan=False)
TIMES = st.integers(min_value=0, max_value=MAX_TIME_NS)
JUMPS = st.integers(min_value=-10**12, max_value=10**12)


@st.composite
def clocks(draw: st.DrawFn) -> tuple[NodeClock, int]:
    """A clock with a random history of skew, drift and jumps; returns it and the last change time."""
    clock = NodeClock(offset_ns=draw(OFFSETS), drift_ppm=draw(DRIFTS))
    now = 0
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        now += draw(st.integers(min_value=0, max_value=10**12))
        change = draw(st.sampled_from(["offset", "drift", "jump"]))
        if change == "offset":
            clock.set_offset(now, draw(OFFSETS))
        elif change == "drift":
            clock.set_drift(now, draw(DRIFTS))
        else:
            clock.jump(now, draw(JUMPS))
    return clock, now


@settings(max_examples=400, deadline=None)
@given(clocks(), TIMES)
def test_true_at_of_local_never_later(clock_and_anchor: tuple[NodeClock, int], offset: int) -> None:
    clock, anchor = clock_and_anchor
    true_ns = anchor + offset
    assert clock.true_at(clock.local(true_ns)) <= true_ns


@settings(max_examples=400, deadline=None)
@given(clocks(), TIMES)
def test_true_at_is_earliest_time_local_reaches(clock_and_anchor: tuple[NodeClock, int],
                                                offset: int) -> None:
    clock, anchor = clock_and_anchor
    local_ns = clock.local(anchor) + offset
    true_ns = clock.true_at(local_ns)
    assert clock.local(true_ns) >= local_ns  # reached...
    assert clock.local(true_ns - 1) < local_ns  # ...and not one nanosecond earlier (minimal)


@settings(max_examples=200, deadline=None)
@given(clocks(), TIMES, TIMES)
def test_local_is_monotonic_between_changes(clock_and_anchor: tuple[NodeClock, int], a: int,
                                            b: int) -> None:
    clock, anchor = clock_and_anchor
    early, late = sorted((anchor + a, anchor + b))
    assert clock.local(early) <= clock.local(late)


@settings(max_examples=200, deadline=None)
@given(OFFSETS, DRIFTS, TIMES, DRIFTS)
def test_set_drift_is_continuous(offset: int, drift: float, at: int, new_drift: float) -> None:
    clock = NodeClock(offset_ns=offset, drift_ppm=drift)
    before = clock.local(at)
    clock.set_drift(at, new_drift)
    assert clock.local(at) == before


@settings(max_examples=200, deadline=None)
@given(OFFSETS, DRIFTS, TIMES, JUMPS)
def test_jump_steps_by_exactly_by_ns(offset: int, drift: float, at: int, by: int) -> None:
    clock = NodeClock(offset_ns=offset, drift_ppm=drift)
    before_at, before_later = clock.local(at), clock.local(at + S)
    clock.jump(at, by)
    assert clock.local(at) == before_at + by
    assert clock.local(at + S) == before_later + by  # the rate is unchanged by a jump


def test_no_fault_clock_is_true_time() -> None:
    clock = NodeClock()
    for t in (0, 1, 17, S, 3600 * S):
        assert clock.local(t) == t
        assert clock.true_at(t) == t
        assert clock.offset_ns(t) == 0
    assert clock.drift_ppm == 0.0
    assert clock.jumps == 0


def test_skew() -> None:
    clock = NodeClock(offset_ns=5 * S)
    assert clock.local(0) == 5 * S
    assert clock.local(2 * S) == 7 * S
    assert clock.true_at(7 * S) == 2 * S
    assert clock.offset_ns(123) == 5 * S
    clock.set_offset(10 * S, -S)  # from t=10s on, the clock reads one second behind
    assert clock.local(10 * S) == 9 * S
    assert clock.local(11 * S) == 10 * S
    assert clock.offset_ns(20 * S) == -S
    assert clock.true_at(10 * S) == 11 * S


def test_set_offset_keeps_drift() -> None:
    clock = NodeClock(drift_ppm=100_000)  # 10% fast
    clock.set_offset(S, 0)
    assert clock.drift_ppm == pytest.approx(100_000)
    assert clock.local(S) == S
    assert clock.local(2 * S) == S + S * 11 // 10


def test_drift() -> None:
    fast = NodeClock(drift_ppm=100_000)  # 10% fast: 1.1 s local per true second
    assert fast.local(S) == 1_100_000_000
    assert fast.local(10 * S) == 11 * S
    assert fast.true_at(11 * S) == 10 * S
    # 1 s of local time takes 1/1.1 s of true time, rounded up to the next whole nanosecond.
    assert fast.true_at(S) == 909_090_910
    slow = NodeClock(drift_ppm=-500_000)  # half speed
    assert slow.local(2 * S) == S
    assert slow.true_at(S) == 2 * S
    assert slow.drift_ppm == -500_000.0
    tiny = NodeClock(drift_ppm=1)  # 1 ppm = 1000 ppb: 1 µs per second
    assert tiny.local(S) == S + 1000


def test_drift_is_kept_in_integer_ppb() -> None:
    clock = NodeClock(drift_ppm=0.0004)  # 0.4 ppb rounds to zero
    assert clock.local(10 * S) == 10 * S
    clock = NodeClock(drift_ppm=0.001)  # exactly 1 ppb
    assert clock.local(S) == S + 1


def test_set_drift_reanchors() -> None:
    clock = NodeClock()
    clock.set_drift(10 * S, 100_000)
    assert clock.local(10 * S) == 10 * S  # continuous at the change
    assert clock.local(5 * S) == 5 * S - S // 2  # the line is re-anchored: before the change, extrapolated
    assert clock.local(20 * S) == 21 * S
    clock.set_drift(20 * S, 0)
    assert clock.local(20 * S) == 21 * S
    assert clock.local(30 * S) == 31 * S
    assert clock.offset_ns(30 * S) == S


def test_jump_reanchors_and_counts() -> None:
    clock = NodeClock(drift_ppm=100_000)
    clock.jump(10 * S, -5 * S)
    assert clock.jumps == 1
    assert clock.local(10 * S) == 11 * S - 5 * S
    assert clock.local(20 * S) == 6 * S + 11 * S
    # After a backwards jump, local times from before the jump are reached again later.
    assert clock.true_at(6 * S) == 10 * S
    clock.jump(20 * S, 3 * S)
    assert clock.jumps == 2
    assert clock.local(20 * S) == 20 * S


@pytest.mark.parametrize("drift_ppm", [-1_000_000, -1_000_001, -2e6, -1e9, float("nan"),
                                       float("inf"), float("-inf")])
def test_set_drift_rejects_stopped_or_reversed_clock(drift_ppm: float) -> None:
    clock = NodeClock(offset_ns=3 * S, drift_ppm=50)
    before = clock.local(7 * S)
    with pytest.raises(ValueError, match="drift_ppm"):
        clock.set_drift(7 * S, drift_ppm)
    # A rejected change leaves the clock as it was (re-anchoring alone does not move it).
    assert clock.local(7 * S) == before
    assert clock.local(9 * S) == 9 * S + 3 * S + 9 * 50_000 // 1
    assert clock.drift_ppm == pytest.approx(50)


@pytest.mark.parametrize("drift_ppm", [-1_000_000, -1e9, float("nan"), float("inf")])
def test_constructor_rejects_stopped_or_reversed_clock(drift_ppm: float) -> None:
    with pytest.raises(ValueError, match="drift_ppm"):
        NodeClock(drift_ppm=drift_ppm)


def test_nearly_stopped_clock_still_works() -> None:
    clock = NodeClock(drift_ppm=-999_999)  # one millionth of true speed
    assert clock.local(S) == 1000
    assert clock.true_at(1000) == S
    assert clock.true_at(clock.local(S)) <= S
