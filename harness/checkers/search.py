"""The Wing–Gong–Lowe search, with memoisation: Porcupine's algorithm, for one partition (one key).

Theory of operation. The history is a list of events in real-time order: a *call* event when an
operation is invoked and a *return* event when it completes. An operation can be linearized next (take
effect now) only if its call comes before every return still in the list: otherwise an operation that
completed before it was invoked would be ordered after it. The search walks the list from the front:

- at a call whose operation the model accepts from the current state, it *lifts* the operation (removes
  its call and return from the list, pushes it with the state before it on a stack) and restarts from
  the front;
- at a return, no pending operation can come next: it pops the last lifted operation (*unlifts* it,
  restoring the list and the state) and tries the call after it instead.

The history is linearizable when every operation with a known outcome is lifted; it is not when the
search must pop from an empty stack. Two partial linearizations that have linearized the same set of
operations and reached the same model state have the same futures, so ``(set, state)`` pairs already
explored are cached and never re-entered: this memoisation is what makes the search practical. The set
is a Python int used as a bitset; states are hashable.

Operations with an unknown outcome (``info``, never completed) may take effect at any time after their
invocation, or never. They have a call event and no return event (a return at +infinity): the search may
lift them wherever a call may be lifted, and is done as soon as every *known* operation is lifted, so the
unknown ones it did not need are left out (they never took effect). An optional operation may also have
a return (the shrinker weakens known operations to "took effect within its span, or not at all"): when
the walk reaches such a return, it may leave the operation out and go on (a stack entry marked "left
out", so that backtracking can undo the choice; once undone, the return is an ordinary dead end).

Unknown operations are what make Jepsen histories expensive (each one doubles the ways to reach a state),
so two prunings cut them down. Both rest on one fact: a state that linearized a subset of another's
unknown operations, and agrees with it on everything else, dominates it (whatever the other can still
do, it can do too, leaving the extra operations out), so exploring the dominated one is wasted work.

- No-op: lifting an unknown operation that leaves the model state as it was is dominated by not lifting
  it (e.g. a timed-out cas whose compare fails here).
- Twins: unknown operations with equal Calls (say three timed-out ``write 3``) have the same transition,
  and once both are invoked, neither constrains the future differently. Only the earliest pending twin is
  tried; the later ones wait until it is lifted. Per group of twins, the lifted ones are then always the
  earliest few, so a counter per group and a rank per operation implement the rule.

The list is doubly linked through two int arrays (``following``, ``preceding``), so lifting and unlifting
an operation are O(1) and exactly undo each other (dancing links). The walk is bounded by a step
budget (model steps) and an optional wall-time deadline: exhausting either gives "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from harness.checkers.models import REJECT

__all__ = ["LINEARIZABLE", "NOT_LINEARIZABLE", "UNKNOWN_VERDICT", "SearchOutcome", "search"]

LINEARIZABLE, NOT_LINEARIZABLE, UNKNOWN_VERDICT = "linearizable", "not-linearizable", "unknown"
_CHECK_EVERY = 1024  # with a deadline, read the clock once every this many steps


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """The verdict for one partition, the model steps it took, and the longest linearization found
    (indices into the calls, in linearization order)."""

    verdict: str
    steps: int
    longest: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _EventList:
    """The call/return events of one partition as a doubly linked list over node numbers: node 0 is the
    head sentinel, 1..n the events in time order, n+1 the tail sentinel (so every event has both
    neighbours and lifting needs no end checks). For a call node, ``operation`` is its operation and
    ``partner`` its return node, or _NO_RETURN if it has none; return nodes and the tail have partner
    _RETURN (reaching the tail would mean "backtrack", but the search never does: while a required
    operation is pending, its return lies ahead). ``skip_call`` is, for the return of an optional
    operation, its call node (the search may leave the operation out there), else 0."""

    following: list[int]
    preceding: list[int]
    operation: list[int]
    partner: list[int]
    skip_call: list[int]


_HEAD, _RETURN, _NO_RETURN = 0, -1, -2
Span = tuple[int, "int | None", bool]  # invoked, returned (None: never), required


def _build_events(spans: Sequence[Span]) -> _EventList:
    """Events sorted by time; at equal times calls come first (operations that touch are concurrent)."""
    events: list[tuple[int, int, int]] = []
    for index, (invoked, returned, _) in enumerate(spans):
        events.append((invoked, 0, index))
        if returned is not None:
            events.append((returned, 1, index))
    events.sort()
    call_node = {index: node for node, (_, kind, index) in enumerate(events, start=1) if kind == 0}
    return_node = {index: node for node, (_, kind, index) in enumerate(events, start=1) if kind == 1}
    partner = [_NO_RETURN] + [_RETURN if kind == 1 else return_node.get(index, _NO_RETURN)
                              for _, kind, index in events] + [_RETURN]
    skip_call = [0] + [call_node[index] if kind == 1 and not spans[index][2] else 0
                       for _, kind, index in events] + [0]
    operation = [-1] + [index for _, _, index in events] + [-1]
    count = len(events) + 2
    return _EventList(list(range(1, count)) + [count - 1], [0] + list(range(count - 1)),
                      operation, partner, skip_call)


def search(transitions: Sequence[Callable[[Hashable], Hashable]], initial: Hashable,
           spans: Sequence[Span], signatures: Sequence[Hashable], *, max_steps: int,
           deadline: float | None = None) -> SearchOutcome:
    """Decide whether operations 0..n-1 have a linearization from ``initial``. ``transitions[i]`` maps a
    state to the state after operation i, or to REJECT if the model refuses it there; ``spans[i]`` is
    (invoked, returned or None, required): a required operation must be linearized before it returns,
    an optional one may be, or be left out; ``signatures[i]`` is equal for operations with equal
    transitions (twins). Kept as one function: it is the hot loop, and every call or attribute lookup
    moved out of it costs measurable time."""
    events = _build_events(spans)
    following, preceding, partner = events.following, events.preceding, events.partner
    operation_of, skip_call = events.operation, events.skip_call
    transition_of = [None] + [transitions[op] for op in operation_of[1:-1]] + [None]
    bit_of = [0] + [1 << op for op in operation_of[1:-1]] + [0]
    required_of = [0] + [int(spans[op][2]) for op in operation_of[1:-1]] + [0]
    group_of, rank_of = _twins(operation_of, partner, signatures)
    lifted_in_group = [0] * len(group_of)
    remaining = sum(1 for _, _, required in spans if required)
    state, linearized, steps, depth, deepest = initial, 0, 0, 0, 0
    next_check = min(max_steps, _CHECK_EVERY) if deadline is not None else max_steps
    seen: set[tuple[int, Hashable]] = {(0, initial)}
    stack: list[tuple[int, Hashable, bool]] = []  # (call node, state before it, left out?)
    longest: tuple[int, ...] = ()
    node = following[_HEAD]
    while remaining:
        ret = partner[node]
        if ret != _RETURN:  # a call: try to linearize its operation now
            group = group_of[node]
            if group >= 0 and rank_of[node] != lifted_in_group[group]:
                node = following[node]  # an earlier unknown twin is pending: it stands for this one
                continue
            if steps == next_check:
                if steps >= max_steps or (deadline is not None and time.perf_counter() > deadline):
                    return SearchOutcome(UNKNOWN_VERDICT, steps, longest)
                next_check = min(max_steps, steps + _CHECK_EVERY)
            steps += 1
            new_state = transition_of[node](state)
            if new_state is not REJECT and (ret != _NO_RETURN or new_state != state):
                key = (linearized | bit_of[node], new_state)
                if key not in seen:
                    seen.add(key)
                    stack.append((node, state, False))
                    state, linearized = new_state, key[0]
                    before, after = preceding[node], following[node]  # lift the call
                    following[before], preceding[after] = after, before
                    if ret != _NO_RETURN:  # and its return
                        remaining -= required_of[node]
                        before, after = preceding[ret], following[ret]
                        following[before], preceding[after] = after, before
                    else:
                        lifted_in_group[group] += 1
                    depth += 1
                    if depth > deepest:
                        deepest, longest = depth, tuple(operation_of[n] for n, _, out in stack
                                                        if not out)
                    node = following[_HEAD]
                    continue
            node = following[node]
            continue
        call = skip_call[node]
        if call:  # the return of an optional operation not linearized: leave it out
            key = (linearized | bit_of[call], state)
            if key not in seen:
                seen.add(key)
                stack.append((call, state, True))
                linearized = key[0]
                before, after = preceding[call], following[call]
                following[before], preceding[after] = after, before
                before, after = preceding[node], following[node]
                following[before], preceding[after] = after, before
                node = after
                continue
        while True:  # backtrack: undo the last lift (and any leaving-out undone on the way)
            if not stack:
                return SearchOutcome(NOT_LINEARIZABLE, steps, longest)
            node, state, left_out = stack.pop()
            linearized ^= bit_of[node]
            ret = partner[node]
            if ret != _NO_RETURN:  # unlift in the reverse order: the return, then the call
                remaining += required_of[node]
                following[preceding[ret]] = preceding[following[ret]] = ret
            else:
                lifted_in_group[group_of[node]] -= 1
            following[preceding[node]] = preceding[following[node]] = node
            if not left_out:
                depth -= 1
                break  # try the call after it; a left-out operation's return leaves no other choice
        node = following[node]
    return SearchOutcome(LINEARIZABLE, steps,
                         tuple(operation_of[n] for n, _, left_out in stack if not left_out))


def _twins(operation_of: list[int], partner: list[int],
           signatures: Sequence[Hashable]) -> tuple[list[int], list[int]]:
    """Per call node of an unknown-outcome operation: its group (operations with equal signatures,
    i.e. the same transition) and its rank in the group by invocation; -1 elsewhere."""
    groups: dict[Hashable, int] = {}
    sizes: list[int] = []
    group_of = [-1] * len(operation_of)
    rank_of = [-1] * len(operation_of)
    for node in range(1, len(operation_of) - 1):
        if partner[node] == _NO_RETURN:
            group = groups.setdefault(signatures[operation_of[node]], len(groups))
            if group == len(sizes):
                sizes.append(0)
            group_of[node], rank_of[node] = group, sizes[group]
            sizes[group] += 1
    return group_of, rank_of
