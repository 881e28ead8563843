"""The kernel: one event queue, virtual time, and the loop that dispatches events.

Theory of operation. True time is an integer count of nanoseconds. Every event in a run (a message
delivery, a timer, an asyncio callback, a fault) is a ``Timer`` in one queue ordered by
``(time_ns, sequence)``; the sequence number is a counter, so ties are broken by scheduling order and
never by ``id()``, ``hash()`` or set order. ``run()`` pops events in that order, advances ``now_ns``,
records each event in the trace and calls it. That loop, ``Kernel.run``, is the whole scheduler.

The queue is two structures, for speed: a binary heap, and a FIFO of events scheduled for the
current instant (asyncio's ``call_soon`` makes most of those). Such an event is numbered after every
event already queued, so the FIFO is in ``(time_ns, sequence)`` order by construction and needs no
heap operations; the loop takes the smaller of the two heads.

The running asyncio loop. Node code runs with its node's ``VirtualEventLoop`` as asyncio's running
loop, and code outside a node never sees one. Once any node has a loop, the kernel keeps this so:
before an owned event, it makes the owner's loop (``loop``; none if it has none) the running loop,
and none before an unowned event and when a run ends. Switching is skipped between events of the
same owner, which saves calls to ``asyncio._set_running_loop``, dear ones (each allocates, and
makes a ``getpid`` system call): an asyncio message costs two events of the same node in a row.
When a node's loop is made or dropped, the node calls ``loops_changed``, so that its next event
looks again. Until then (a run of callback nodes only), the kernel does nothing of this at all.

Events may be owned by a node (any object with ``name``, ``epoch``, ``paused`` and ``parked``). The
kernel enforces two rules for owned events, so that no layer above has to:
- an event scheduled in an earlier epoch of its node (before a crash) is dropped, never dispatched;
- an event due while its node is paused is parked on the node; the node re-schedules parked events
  when it resumes.

Limits: ``run(until_ns=…, max_steps=…)`` always returns, with the reason it stopped. An exception that
escapes an owned event is a failure of the system under test (it stops the run and is reported); an
exception that escapes an unowned (harness) event is an internal error and propagates.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import AmbientNondeterminismError, Failure, InternalError, SystemUnderTestError
from harness.trace import Trace

__all__ = ["Kernel", "Timer", "RunOutcome", "EventOwner", "StopReason"]

_heappush, _heappop = heapq.heappush, heapq.heappop  # module globals: one lookup, not two
_set_running_loop = asyncio._set_running_loop
_NOBODY = object()  # ``Kernel._loop_owner`` when no owner's event set the running loop
# The first ordinary sequence number; rescheduled timers' numbers run below it, from 0. Every sequence
# number is below 2**64, so that a key ``time_ns << 64 | sequence`` orders as (time_ns, sequence).
_ORDINARY = 2**63
_SEQUENCES = 2**64 - 1  # a key's sequence number is ``key & _SEQUENCES``
_NEVER = 2**62  # "no limit" for a time in ns (146 years) or a step count, as a plain int


def _is_live(entry: tuple[int, Timer]) -> bool:
    """Whether an entry of ``Kernel._due`` is its timer's live one (see ``Kernel.move``)."""
    return entry[0] & _SEQUENCES == entry[1].sequence

StopReason = str  # "quiescent" | "until" | "max_steps" | "failure" | "stopped"


class EventOwner(Protocol):
    """What the kernel needs of a node that owns events (and, optionally, ``loop``: the asyncio loop
    its events run in, see ``set_running_loop``)."""

    name: str
    epoch: int
    paused: bool
    parked: list[Timer]


class Timer:
    """A scheduled event. ``cancel()`` is O(1): the kernel skips cancelled timers when it pops them."""

    __slots__ = ("time_ns", "sequence", "callback", "args", "owner", "epoch", "kind", "detail",
                 "cancelled", "local_deadline_ns")

    def __init__(self, time_ns: int, callback: Callable[..., Any], args: tuple[Any, ...],
                 owner: EventOwner | None, kind: str, detail: Any, sequence: int = -1) -> None:
        # ``Kernel._schedule`` makes timers without this method, for speed: keep the two alike.
        self.time_ns = time_ns
        # The sequence number of the timer's one live heap entry; entries left behind by ``move``
        # carry older numbers and are skipped when popped.
        self.sequence = sequence
        # Set for timers that fire by their node's local clock; a clock change moves them.
        self.local_deadline_ns: int | None = None
        self.callback = callback
        self.args = args
        self.owner = owner
        self.epoch = owner.epoch if owner is not None else 0
        self.kind = kind
        self.detail = detail
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        owner = self.owner.name if self.owner is not None else None
        return f"Timer(t={self.time_ns}, owner={owner}, kind={self.kind!r}, detail={self.detail!r})"


_new_timer = Timer.__new__  # for ``Kernel._schedule``


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """Why and when ``Kernel.run`` returned."""

    reason: StopReason
    time_ns: int
    steps: int
    failure: Failure | None = None


class Kernel:
    """The scheduler. Owns true time, the event queue and the trace; knows nothing of networks."""

    def __init__(self, trace: Trace | None = None) -> None:
        self.now_ns = 0
        self.trace = trace if trace is not None else Trace()
        # The queue (see the docstring) holds keys, integers that order as (time_ns, sequence) do:
        # ``time_ns << 64 | sequence``. The heap then compares integers, not tuples: several times
        # cheaper, in the operation the kernel does most. ``_events`` maps each live key to its
        # timer; a key left behind by ``move`` is no longer there, and is skipped when popped.
        self._heap: list[int] = []
        self._due: deque[int] = deque()  # scheduled for now (see the docstring)
        self._events: dict[int, Timer] = {}
        self._sequence = itertools.count(_ORDINARY)
        # Numbers for rescheduled (parked) timers: below every ordinary one, see ``reschedule``.
        self._early_sequence = itertools.count(0)
        self._stop_reason: StopReason | None = None
        self._current: Timer | None = None  # the event being dispatched, if any
        # The loop set as asyncio's running loop (see the docstring), and the owner of the event
        # that set it: None while no node has a loop (nothing to keep), ``_NOBODY`` when no owner's
        # event has set it since, or it may be stale.
        self.running_loop: asyncio.AbstractEventLoop | None = None
        self._loop_owner: Any = None
        self.failure: Failure | None = None
        self.steps = 0
        self.dropped_stale = 0  # events dropped because their node crashed after scheduling them

    # -- scheduling ---------------------------------------------------------------------------
    def call_at(self, time_ns: int, callback: Callable[..., Any], *args: Any,
                owner: EventOwner | None = None, kind: str = "call", detail: Any = "") -> Timer:
        """Schedule ``callback(*args)`` at true time ``time_ns`` (never in the past)."""
        return self._schedule(time_ns, callback, args, owner, kind, detail)

    def _schedule(self, time_ns: int, callback: Callable[..., Any], args: tuple[Any, ...],
                  owner: EventOwner | None, kind: str, detail: Any) -> Timer:
        """``call_at`` with positional arguments, for the harness's per-message paths (network,
        asyncio): packing ``*args`` and keywords costs more than the rest of the call."""
        # ``Timer(...)`` inlined: the call to ``__init__`` costs as much again as these stores, and
        # every message and asyncio step comes through here. Keep the two alike.
        timer = _new_timer(Timer)
        timer.sequence = sequence = next(self._sequence)
        timer.local_deadline_ns = None
        timer.callback = callback
        timer.args = args
        timer.owner = owner
        timer.epoch = owner.epoch if owner is not None else 0
        timer.kind = kind
        timer.detail = detail
        timer.cancelled = False
        if time_ns <= self.now_ns:  # a deadline already passed fires now: time never goes backwards
            timer.time_ns = time_ns = self.now_ns
            self._due.append((time_ns << 64 | sequence, timer))
        else:
            timer.time_ns = time_ns
            key = time_ns << 64 | sequence
            _heappush(self._heap, key)
            self._events[key] = timer
        return timer

    def call_later(self, delay_ns: int, callback: Callable[..., Any], *args: Any,
                   owner: EventOwner | None = None, kind: str = "call", detail: Any = "") -> Timer:
        """Schedule ``callback(*args)`` after ``delay_ns`` of true time."""
        if delay_ns < 0:
            raise InternalError(f"negative delay {delay_ns} ns for {kind} {detail!r}")
        return self.call_at(self.now_ns + delay_ns, callback, *args, owner=owner, kind=kind,
                            detail=detail)

    def reschedule(self, timer: Timer) -> None:
        """Put a popped (e.g. parked) timer back on the queue at ``max(its time, now)``.

        Rescheduled timers are numbered from a counter that runs below every ordinary sequence
        number, so a parked event, which was due before anything still queued, runs before every
        event queued for the same time, in the order it was rescheduled (a message parked by a pause
        is still delivered before a later one on the same link that is due at the resume time).
        """
        timer.time_ns = time_ns = max(timer.time_ns, self.now_ns)
        timer.sequence = sequence = next(self._early_sequence)
        key = time_ns << 64 | sequence
        heapq.heappush(self._heap, key)
        self._events[key] = timer

    def move(self, timer: Timer, time_ns: int) -> None:
        """Move a pending timer to a new true time (e.g. after its node's clock changed).

        The old key stays behind in the queue and is skipped when popped, because it no longer
        names a live event (it gets a new sequence number: a timer moved away and back must not
        have two live keys and fire twice).
        """
        time_ns = max(time_ns, self.now_ns)
        if time_ns == timer.time_ns or timer.cancelled:
            return
        self._events.pop(timer.time_ns << 64 | timer.sequence, None)  # (a key in ``_due``: see there)
        timer.time_ns = time_ns
        timer.sequence = sequence = next(self._sequence)
        key = time_ns << 64 | sequence
        heapq.heappush(self._heap, key)
        self._events[key] = timer

    def timers_owned_by(self, owner: EventOwner) -> list[Timer]:
        """Live timers of ``owner`` in queue order (deterministic: sorted by time and sequence)."""
        live = itertools.chain(self._events.items(),
                               (entry for entry in self._due if _is_live(entry)))
        entries = sorted((key, timer) for key, timer in live
                         if timer.owner is owner and not timer.cancelled
                         and timer.epoch == owner.epoch)
        return [timer for _, timer in entries]

    def pending(self) -> int:
        """Events on the queue, including cancelled ones not yet popped."""
        return len(self._heap) + len(self._due)

    # -- stopping -----------------------------------------------------------------------------
    def stop(self, reason: StopReason = "stopped") -> None:
        """End the run after the current event."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def fail(self, failure: Failure) -> None:
        """Record a failure of the system under test and stop. The first failure wins."""
        if self.failure is None:
            self.failure = failure
        self.stop("failure")

    # -- the loop -----------------------------------------------------------------------------
    def run(self, *, until_ns: int | None = None, max_steps: int | None = None) -> RunOutcome:
        """Dispatch events in (time, sequence) order until a limit, a failure, or an empty queue."""
        self._stop_reason = None if self._stop_reason != "failure" else "failure"
        step_limit = self.steps + max_steps if max_steps is not None else None
        try:
            while self._stop_reason is None:
                try:
                    self._dispatch_until(until_ns, step_limit)
                except Exception as error:  # noqa: BLE001 - classified below: SUT failure or harness bug
                    self._on_exception(error)
        finally:
            self._current = None  # between runs no event is being dispatched (the sandbox relies on it)
            if self.running_loop is not None:  # nor is any node's loop running
                _set_running_loop(None)
                self.running_loop = None
            if self._loop_owner is not None:
                self._loop_owner = _NOBODY
        self.trace.maybe_fold()
        return RunOutcome(self._stop_reason, self.now_ns, self.steps, self.failure)

    def _dispatch_until(self, until_ns: int | None, step_limit: int | None) -> None:
        # The hot loop. Local names for speed; keep it small enough to read in one sitting. The two
        # limits are compared as integers, with a bound no run reaches standing for "none": one
        # comparison per event each, not two. ``steps`` is counted in a local and written back
        # however the loop ends (an exception from a callback included); nothing reads
        # ``self.steps`` during a run.
        heap, due = self._heap, self._due
        pop, take = heapq.heappop, self._events.pop
        record = self.trace.record
        fold = self.trace.maybe_fold
        last_ns = _NEVER if until_ns is None else until_ns
        last_step = _NEVER if step_limit is None else step_limit
        steps = self.steps
        try:
            while self._stop_reason is None:
                if steps >= last_step:
                    self._stop_reason = "max_steps" if heap or due else "quiescent"
                    return
                if due and not (heap and heap[0] < due[0][0]):  # take the smaller head
                    key, timer = due.popleft()
                    if timer.cancelled or key & _SEQUENCES != timer.sequence:
                        continue  # cancelled, or left behind by ``move``
                elif heap:
                    timer = take(pop(heap), None)
                    if timer is None or timer.cancelled:
                        continue  # a stale key left behind by ``move``, or cancelled
                else:
                    self._stop_reason = "quiescent"
                    return
                time_ns = timer.time_ns
                if time_ns > last_ns:
                    key = time_ns << 64 | timer.sequence
                    heapq.heappush(heap, key)  # unchanged: keeps its tie order
                    self._events[key] = timer
                    self.now_ns = max(self.now_ns, last_ns)
                    self._stop_reason = "until"
                    return
                owner = timer.owner
                if owner is not None:
                    if timer.epoch != owner.epoch:
                        self.dropped_stale += 1
                        continue
                    if owner.paused:
                        owner.parked.append(timer)
                        continue
                    record((time_ns, owner.name, timer.kind, timer.detail))
                else:
                    record((time_ns, None, timer.kind, timer.detail))
                self.now_ns = time_ns
                steps += 1
                if not steps & 255:
                    fold()
                loop_owner = self._loop_owner
                if loop_owner is not None and owner is not loop_owner:  # see the docstring
                    loop = getattr(owner, "loop", None)
                    if loop is not self.running_loop:
                        _set_running_loop(loop)
                        self.running_loop = loop
                    self._loop_owner = owner if owner is not None else _NOBODY
                self._current = timer
                timer.callback(*timer.args)
        finally:
            self.steps = steps

    def set_running_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Make ``loop`` the running loop now, for code run outside its node's events (the next
        event sets the right one again)."""
        _set_running_loop(loop)
        self.running_loop = loop
        self._loop_owner = _NOBODY

    def loops_changed(self) -> None:
        """A node made or dropped its asyncio loop: look again before the next owned event."""
        self._loop_owner = _NOBODY

    def _on_exception(self, error: BaseException) -> None:
        timer = self._current
        self._current = None
        if isinstance(error, SystemUnderTestError):
            self.fail(error.failure)
            return
        owner = timer.owner if timer is not None else None
        if owner is None and not isinstance(error, AmbientNondeterminismError):
            raise error  # an unowned event is harness code: a harness bug must not look like a SUT bug
        if timer.kind == "aio":  # an asyncio callback: its loop reports it, as asyncio would
            loop = getattr(owner, "loop", None)  # (see ``VirtualEventLoop.call_soon``)
            if loop is not None:  # else the node crashed in the callback: its loop is closed
                callback, *args = timer.args
                loop.report_callback_error(callback, tuple(args), error)
            return
        kind = "ambient-nondeterminism" if isinstance(error, AmbientNondeterminismError) else "exception"
        self.fail(Failure(kind=kind, message=f"{type(error).__name__}: {error}",
                          time_ns=self.now_ns, node=owner.name if owner else None,
                          evidence=_traceback_lines(error)))


def _traceback_lines(error: BaseException, limit: int = 8) -> tuple[str, ...]:
    import traceback

    lines = traceback.format_exception(type(error), error, error.__traceback__)
    text = "".join(lines).rstrip().splitlines()
    return tuple(text[-2 * limit :])
