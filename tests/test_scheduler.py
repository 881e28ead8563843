"""The kernel: (time, sequence) order, limits, failures, epochs, pauses, moves, and the trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import (AmbientNondeterminismError, Failure, InternalError,
                            SystemUnderTestError)
from harness.scheduler import Kernel, Timer
from harness.trace import Trace, first_divergence, read_trace


class FakeNode:
    """The smallest EventOwner: a name, an epoch, a pause flag and a parking list."""

    def __init__(self, kernel: Kernel, name: str = "n1") -> None:
        self.kernel = kernel
        self.name = name
        self.epoch = 0
        self.paused = False
        self.parked: list[Timer] = []

    def crash(self) -> None:
        self.epoch += 1
        self.parked.clear()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        parked, self.parked = self.parked, []
        for timer in parked:
            self.kernel.reschedule(timer)


def recorder(log: list[Any], kernel: Kernel) -> Any:
    def record(label: Any) -> None:
        log.append((kernel.now_ns, label))
    return record


def boom(message: str = "boom") -> None:
    raise ValueError(message)


# -- order ----------------------------------------------------------------------------------------
def test_events_run_in_time_order_ties_in_scheduling_order() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    kernel.call_at(30, record, "c")
    kernel.call_at(10, record, "a1")
    kernel.call_at(20, record, "b")
    kernel.call_at(10, record, "a2")
    kernel.call_later(10, record, "a3")
    kernel.call_at(0, record, "zero")
    outcome = kernel.run()
    assert log == [(0, "zero"), (10, "a1"), (10, "a2"), (10, "a3"), (20, "b"), (30, "c")]
    assert outcome.reason == "quiescent"
    assert outcome.time_ns == 30 == kernel.now_ns
    assert outcome.steps == 6
    assert outcome.failure is None


def test_events_scheduled_while_running_keep_the_order() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)

    def first() -> None:
        record("first")
        kernel.call_later(0, record, "same-time, scheduled later")
        kernel.call_later(5, record, "later")

    kernel.call_at(10, first)
    kernel.call_at(10, record, "second")
    kernel.run()
    assert log == [(10, "first"), (10, "second"), (10, "same-time, scheduled later"),
                   (15, "later")]


def test_many_ties_never_compare_timers() -> None:
    kernel = Kernel()
    log: list[Any] = []
    for index in range(500):
        kernel.call_at(7, log.append, index)
    kernel.run()
    assert log == list(range(500))


def test_cancel() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    kernel.call_at(10, record, "kept")
    cancelled = kernel.call_at(5, record, "cancelled")
    cancelled.cancel()
    cancelled.cancel()  # idempotent
    outcome = kernel.run()
    assert log == [(10, "kept")]
    assert outcome.steps == 1
    assert kernel.trace.events() == 1  # a cancelled event is not in the trace


def test_cancel_from_an_earlier_event() -> None:
    kernel = Kernel()
    log: list[Any] = []
    later = kernel.call_at(20, log.append, "never")
    kernel.call_at(10, later.cancel)
    kernel.run()
    assert log == []


def test_call_at_in_the_past_fires_now() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)

    def at_100() -> None:
        timer = kernel.call_at(40, record, "late")  # a deadline already passed
        assert timer.time_ns == 100

    kernel.call_at(100, at_100)
    kernel.call_at(100, record, "same time, earlier sequence")
    kernel.run()
    assert log == [(100, "same time, earlier sequence"), (100, "late")]
    assert kernel.now_ns == 100


def test_time_never_goes_backwards() -> None:
    kernel = Kernel()
    seen: list[int] = []

    def tick(depth: int) -> None:
        seen.append(kernel.now_ns)
        if depth:
            kernel.call_at(kernel.now_ns - 1000 * depth, tick, depth - 1)
            kernel.call_later(3 * depth, tick, depth - 1)

    kernel.call_at(50, tick, 6)
    kernel.run()
    assert seen == sorted(seen)
    assert seen[0] == 50


def test_negative_delay_is_a_harness_bug() -> None:
    kernel = Kernel()
    with pytest.raises(InternalError, match="-5"):
        kernel.call_later(-5, lambda: None, kind="k", detail="d")


# -- limits ---------------------------------------------------------------------------------------
def test_run_until_stops_and_resumes() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    for time_ns in (10, 20, 30, 40):
        kernel.call_at(time_ns, record, time_ns)
    outcome = kernel.run(until_ns=20)
    assert outcome.reason == "until"
    assert outcome.time_ns == 20 == kernel.now_ns
    assert log == [(10, 10), (20, 20)]  # an event at exactly until_ns runs
    outcome = kernel.run(until_ns=35)
    assert (outcome.reason, outcome.time_ns) == ("until", 35)  # time advances to the limit
    assert log[-1] == (30, 30)
    outcome = kernel.run()
    assert outcome.reason == "quiescent"
    assert log == [(10, 10), (20, 20), (30, 30), (40, 40)]
    assert outcome.steps == 4


def test_run_until_keeps_tie_order_across_runs() -> None:
    """Running to a limit and continuing must dispatch exactly as one uninterrupted run would."""
    def schedule(kernel: Kernel, log: list[Any]) -> None:
        for label in ("a", "b", "c"):
            kernel.call_at(100, log.append, label)

    whole: list[Any] = []
    kernel = Kernel()
    schedule(kernel, whole)
    kernel.run()

    chunked: list[Any] = []
    kernel = Kernel()
    schedule(kernel, chunked)
    kernel.run(until_ns=50)
    kernel.run(until_ns=60)
    kernel.run()
    assert chunked == whole == ["a", "b", "c"]


def test_run_until_in_the_past_does_not_move_time_back() -> None:
    kernel = Kernel()
    kernel.call_at(100, lambda: None)
    kernel.call_at(200, lambda: None)
    kernel.run(until_ns=150)
    outcome = kernel.run(until_ns=120)
    assert outcome.reason == "until"
    assert kernel.now_ns == 150


def test_max_steps() -> None:
    kernel = Kernel()
    log: list[int] = []

    def forever() -> None:
        log.append(kernel.now_ns)
        kernel.call_later(1, forever)

    kernel.call_at(0, forever)
    outcome = kernel.run(max_steps=10)
    assert outcome.reason == "max_steps"
    assert outcome.steps == 10
    assert log == list(range(10))
    outcome = kernel.run(max_steps=5)  # the limit counts from this run's start
    assert (outcome.reason, outcome.steps) == ("max_steps", 15)


def test_empty_queue_is_quiescent() -> None:
    kernel = Kernel()
    outcome = kernel.run()
    assert (outcome.reason, outcome.time_ns, outcome.steps) == ("quiescent", 0, 0)
    outcome = kernel.run(until_ns=10**9, max_steps=10)
    assert outcome.reason == "quiescent"


def test_only_cancelled_events_is_quiescent() -> None:
    kernel = Kernel()
    kernel.call_at(10, lambda: None).cancel()
    outcome = kernel.run(until_ns=5)
    assert outcome.reason in ("until", "quiescent")
    assert kernel.run().reason == "quiescent"
    assert kernel.steps == 0


def test_stop() -> None:
    kernel = Kernel()
    log: list[Any] = []
    kernel.call_at(10, kernel.stop)
    kernel.call_at(10, log.append, "after stop, same time")
    outcome = kernel.run()
    assert outcome.reason == "stopped"
    assert log == []
    assert kernel.run().reason == "quiescent"  # a later run continues
    assert log == ["after stop, same time"]


# -- failures -------------------------------------------------------------------------------------
def test_exception_in_owned_event_is_a_failure() -> None:
    kernel = Kernel()
    node = FakeNode(kernel, "n7")
    log: list[Any] = []
    kernel.call_at(5, log.append, "before")
    kernel.call_at(42, boom, "the system broke", owner=node, kind="timer")
    kernel.call_at(42, log.append, "same time, after the failure")
    kernel.call_at(50, log.append, "later")
    outcome = kernel.run()
    assert outcome.reason == "failure"
    assert outcome.time_ns == 42
    failure = outcome.failure
    assert isinstance(failure, Failure)
    assert failure == kernel.failure
    assert failure.kind == "exception"
    assert failure.node == "n7"
    assert failure.time_ns == 42
    assert "ValueError" in failure.message and "the system broke" in failure.message
    assert any("boom" in line for line in failure.evidence)  # the traceback names the function
    assert log == ["before"]
    # A failed run stays failed: running again dispatches nothing.
    again = kernel.run()
    assert again.reason == "failure"
    assert log == ["before"]


def test_exception_in_unowned_event_propagates() -> None:
    kernel = Kernel()
    kernel.call_at(5, boom, "harness bug")
    with pytest.raises(ValueError, match="harness bug"):
        kernel.run()
    assert kernel.failure is None


def test_system_under_test_error_in_unowned_event_is_a_failure() -> None:
    kernel = Kernel()
    failure = Failure("invariant", "two leaders", 3, "n2")

    def check() -> None:
        raise SystemUnderTestError(failure)

    kernel.call_at(3, check)
    outcome = kernel.run()
    assert outcome.reason == "failure"
    assert outcome.failure is failure


def test_ambient_nondeterminism_is_a_failure_even_unowned() -> None:
    kernel = Kernel()

    def reach_for_the_wall_clock() -> None:
        raise AmbientNondeterminismError("time.time() at somewhere.py:3")

    kernel.call_at(9, reach_for_the_wall_clock)
    outcome = kernel.run()
    assert outcome.reason == "failure"
    assert outcome.failure is not None
    assert outcome.failure.kind == "ambient-nondeterminism"
    assert "time.time()" in outcome.failure.message
    assert outcome.failure.node is None


def test_first_failure_wins() -> None:
    kernel = Kernel()
    first = Failure("invariant", "first", 1)
    kernel.fail(first)
    kernel.fail(Failure("invariant", "second", 2))
    assert kernel.failure is first


# -- owners: epochs and pauses --------------------------------------------------------------------
def test_events_of_an_old_epoch_are_dropped() -> None:
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    kernel.call_at(10, log.append, "old-1", owner=node)
    kernel.call_at(30, log.append, "old-2", owner=node)
    kernel.call_at(20, node.crash)
    kernel.call_at(25, lambda: kernel.call_at(30, log.append, "new", owner=node))
    kernel.call_at(30, log.append, "unowned")
    outcome = kernel.run()
    assert log == ["old-1", "unowned", "new"]  # "new" was scheduled last
    assert kernel.dropped_stale == 1
    assert outcome.steps == 5  # the dropped event is not a step...
    assert kernel.trace.events() == 5  # ...and not in the trace


def test_paused_owner_parks_events_and_resume_redelivers_in_order() -> None:
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    record = recorder(log, kernel)
    kernel.call_at(10, node.pause)
    for time_ns, label in ((12, "a"), (15, "b"), (15, "c"), (18, "d")):
        kernel.call_at(time_ns, record, label, owner=node)
    kernel.call_at(16, record, "unowned")
    kernel.call_at(40, record, "after")
    kernel.call_at(30, node.resume)
    kernel.run()
    assert log == [(16, "unowned"), (30, "a"), (30, "b"), (30, "c"), (30, "d"), (40, "after")]
    assert node.parked == []


def test_parked_events_keep_their_place_among_events_due_at_resume() -> None:
    """A message parked at t=12 must not be overtaken by one due at the resume time itself.

    Two copies on one FIFO link, due at 12 and 30, parked by a pause that ends at 30: the earlier
    copy must still be delivered first.
    """
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    kernel.call_at(10, node.pause)
    kernel.call_at(30, node.resume)  # scheduled before the copies: runs first at t=30
    kernel.call_at(12, log.append, "copy-1", owner=node)
    kernel.call_at(30, log.append, "copy-2", owner=node)
    kernel.run()
    assert log == ["copy-1", "copy-2"]


def test_parked_events_come_back_in_dispatch_order_not_scheduling_order() -> None:
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    kernel.call_at(0, node.pause)
    kernel.call_at(20, log.append, "scheduled first, due second", owner=node)
    kernel.call_at(10, log.append, "scheduled second, due first", owner=node)
    kernel.call_at(30, node.resume)
    kernel.call_at(30, log.append, "due at the resume, not parked", owner=node)
    kernel.call_at(30, lambda: kernel.call_later(0, log.append, "scheduled at the resume"))
    kernel.run()
    assert log == ["scheduled second, due first", "scheduled first, due second",
                   "due at the resume, not parked", "scheduled at the resume"]


def test_resume_between_runs() -> None:
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    node.pause()
    kernel.call_at(10, log.append, "a", owner=node)
    kernel.call_at(20, log.append, "b", owner=node)
    kernel.call_at(40, log.append, "c", owner=node)
    kernel.run(until_ns=30)
    assert log == [] and len(node.parked) == 2
    node.resume()
    kernel.run()
    assert log == ["a", "b", "c"]
    assert kernel.now_ns == 40


def test_crash_while_paused_discards_parked_events() -> None:
    kernel = Kernel()
    node = FakeNode(kernel)
    log: list[Any] = []
    kernel.call_at(10, node.pause)
    kernel.call_at(12, log.append, "parked", owner=node)
    kernel.call_at(20, node.crash)
    kernel.call_at(30, node.resume)
    kernel.run()
    assert log == []


def test_timers_owned_by() -> None:
    kernel = Kernel()
    node, other = FakeNode(kernel, "n1"), FakeNode(kernel, "n2")
    late = kernel.call_at(50, lambda: None, owner=node)
    early = kernel.call_at(10, lambda: None, owner=node)
    kernel.call_at(20, lambda: None, owner=other)
    kernel.call_at(30, lambda: None)
    kernel.call_at(40, lambda: None, owner=node).cancel()
    assert kernel.timers_owned_by(node) == [early, late]
    kernel.move(late, 5)
    assert kernel.timers_owned_by(node) == [late, early]
    node.crash()
    assert kernel.timers_owned_by(node) == []


# -- move -----------------------------------------------------------------------------------------
def test_move_retimes_and_the_stale_entry_does_not_fire() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    timer = kernel.call_at(100, record, "moved")
    kernel.call_at(10, kernel.move, timer, 50)
    kernel.run()
    assert log == [(50, "moved")]

    kernel = Kernel()
    log = []
    record = recorder(log, kernel)
    timer = kernel.call_at(20, record, "moved later")
    kernel.move(timer, 70)
    kernel.move(timer, 70)  # moving to the same time is a no-op
    kernel.call_at(20, record, "marker")
    kernel.run()
    assert log == [(20, "marker"), (70, "moved later")]


def test_move_into_the_past_fires_now() -> None:
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    timer = kernel.call_at(100, record, "moved")
    kernel.call_at(40, kernel.move, timer, 5)
    kernel.run()
    assert log == [(40, "moved")]


def test_move_of_a_cancelled_timer_does_nothing() -> None:
    kernel = Kernel()
    log: list[Any] = []
    timer = kernel.call_at(100, log.append, "x")
    timer.cancel()
    kernel.move(timer, 10)
    kernel.run()
    assert log == []


def test_move_there_and_back_fires_once() -> None:
    """A clock that jumps forward and back moves a timer t1 → t2 → t1: it must still fire once."""
    kernel = Kernel()
    log: list[Any] = []
    record = recorder(log, kernel)
    timer = kernel.call_at(100, record, "once")
    kernel.move(timer, 200)
    kernel.move(timer, 100)
    kernel.run()
    assert log == [(100, "once")]


def test_move_there_and_back_keeps_original_tie_order() -> None:
    kernel = Kernel()
    log: list[Any] = []
    first = kernel.call_at(100, log.append, "first")
    kernel.call_at(100, log.append, "second")
    kernel.move(first, 300)
    kernel.move(first, 100)
    kernel.run()
    assert sorted(log) == ["first", "second"]
    assert len(log) == 2


# -- the trace ------------------------------------------------------------------------------------
def schedule_story(kernel: Kernel, *, detail_of_third: str = "c", node: FakeNode | None = None) -> None:
    owner = node or FakeNode(kernel)
    kernel.call_at(10, lambda: None, kind="fault", detail=("partition", ("n1", "n2")))
    kernel.call_at(20, lambda: None, owner=owner, kind="deliver", detail=("n2", "n1", "Ping"))
    kernel.call_at(20, lambda: None, owner=owner, kind="timer", detail=detail_of_third)
    kernel.call_at(35, lambda: None, kind="call", detail=3)


def test_trace_digest_is_identical_for_identical_schedules() -> None:
    digests = set()
    for _ in range(3):
        kernel = Kernel()
        schedule_story(kernel)
        kernel.run()
        digests.add(kernel.trace.digest())
    assert len(digests) == 1
    assert kernel.trace.events() == 4


def test_trace_digest_changes_with_any_detail() -> None:
    def digest(**kwargs: Any) -> str:
        kernel = Kernel()
        schedule_story(kernel, **kwargs)
        kernel.run()
        return kernel.trace.digest()

    base = digest()
    assert digest(detail_of_third="d") != base
    kernel = Kernel()
    schedule_story(kernel, node=FakeNode(kernel, "n9"))  # another node name
    kernel.run()
    assert kernel.trace.digest() != base
    kernel = Kernel()
    schedule_story(kernel)
    kernel.call_at(35, lambda: None)  # one more event
    kernel.run()
    assert kernel.trace.digest() != base
    kernel = Kernel()
    schedule_story(kernel)
    kernel.call_at(0, lambda: None).cancel()  # a cancelled event leaves no trace
    kernel.run()
    assert kernel.trace.digest() == base


def test_trace_digest_changes_with_time() -> None:
    one, two = Trace(), Trace()
    one.record((10, "n1", "timer", ""))
    two.record((11, "n1", "timer", ""))
    assert one.digest() != two.digest()


def test_trace_digest_does_not_depend_on_when_it_is_read() -> None:
    """Reading the digest (or the tail) mid-run must not change the final digest."""
    records = [(index, "n1", "timer", index) for index in range(5000)]
    straight = Trace()
    for record in records:
        straight.record(record)
    peeked = Trace()
    for index, record in enumerate(records):
        peeked.record(record)
        if index in (0, 3, 2500):
            peeked.digest()
            peeked.tail()
    assert peeked.digest() == straight.digest()


def test_trace_digest_does_not_depend_on_run_chunking() -> None:
    def build() -> Kernel:
        kernel = Kernel()

        def tick(index: int) -> None:  # application records, as ``NodeContext.log`` adds them
            kernel.trace.record((kernel.now_ns, "n1", "log", index))
            kernel.trace.record((kernel.now_ns, "n1", "log", -index))

        for index in range(6000):
            kernel.call_at(index, tick, index, kind="tick", detail=index)
        return kernel

    whole = build()
    whole.run()
    chunked = build()
    for until_ns in (1800, 2600, 5000):
        chunked.run(until_ns=until_ns)
    chunked.run()
    assert chunked.trace.events() == whole.trace.events() == 18000
    assert chunked.trace.digest() == whole.trace.digest()


def test_trace_tail() -> None:
    trace = Trace(tail=3)
    for index in range(10):
        trace.record((index, None, "k", index))
    assert trace.tail() == [(7, None, "k", 7), (8, None, "k", 8), (9, None, "k", 9)]
    assert trace.events() == 10


def write_trace(path: Path, details: list[Any]) -> None:
    trace = Trace(path)
    for index, detail in enumerate(details):
        trace.record((index * 10, "n1" if index % 2 else None, "kind", detail))
    trace.close()


def test_trace_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    kernel = Kernel(Trace(path))
    schedule_story(kernel)
    kernel.run()
    digest = kernel.trace.digest()
    kernel.trace.close()
    events = list(read_trace(path))
    assert events == [
        {"i": 0, "t_ns": 10, "node": None, "kind": "fault", "detail": ["partition", ["n1", "n2"]]},
        {"i": 1, "t_ns": 20, "node": "n1", "kind": "deliver", "detail": ["n2", "n1", "Ping"]},
        {"i": 2, "t_ns": 20, "node": "n1", "kind": "timer", "detail": "c"},
        {"i": 3, "t_ns": 35, "node": None, "kind": "call", "detail": 3},
    ]
    # Writing a file does not change the digest.
    plain = Kernel()
    schedule_story(plain)
    plain.run()
    assert plain.trace.digest() == digest


def test_trace_jsonl_numbering_spans_batches(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    write_trace(path, list(range(5000)))
    events = list(read_trace(path))
    assert [event["i"] for event in events] == list(range(5000))
    assert [event["detail"] for event in events] == list(range(5000))


def test_first_divergence(tmp_path: Path) -> None:
    left, same, changed, shorter = (tmp_path / f"{name}.jsonl" for name in
                                    ("left", "same", "changed", "shorter"))
    details = ["a", "b", "c", "d", "e"]
    write_trace(left, details)
    write_trace(same, details)
    write_trace(changed, ["a", "b", "X", "d", "e"])
    write_trace(shorter, details[:3])
    assert first_divergence(left, same) is None
    divergence = first_divergence(left, changed)
    assert divergence is not None
    assert divergence.index == 2
    assert divergence.left is not None and divergence.left["detail"] == "c"
    assert divergence.right is not None and divergence.right["detail"] == "X"
    text = divergence.describe()
    assert "#2" in text and "c" in text and "X" in text
    divergence = first_divergence(left, shorter)
    assert divergence is not None
    assert divergence.index == 3
    assert divergence.right is None
    assert "(trace ended)" in divergence.describe()
    divergence = first_divergence(shorter, left)
    assert divergence is not None and divergence.left is None and divergence.index == 3
