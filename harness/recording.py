"""The recording: what a run did, kept for the HTML report, without changing the run.

Theory of operation. The ``World`` owns one ``Recording``. It watches from outside and changes nothing
that decides a run: it draws no random number, writes nothing into the trace (the digest of a run is
the same with it or without it) and schedules no event. What it keeps:

- Node lifecycle. Every node notes its transitions in true time (``Node.lifecycle``: running,
  crashed, off, paused, resumed); ``export`` turns them into down and paused intervals.
- Messages, sampled deterministically. The network counts sends down (``Network.sends_to_sample``:
  one attribute decrement and test per send) and hands the send whose count reaches 0 to ``sample``,
  which lets it go through the network as usual and then notes its fate from the link: the delivery
  timer it scheduled (its time, or its cancellation by a cut, tells the rest), or that a clog holds
  it. The kept sends are those whose ordinal is a multiple of ``stride``: when more than
  ``message_cap`` are kept, the stride doubles and every other one is forgotten, so the sample stays
  uniform over the whole run. Drops are favoured: the network reports every drop and every corrupted
  copy (``dropped``), kept under a cap of their own and thinned the same way.
- After the run, ``export(system)`` gives plain data (lists, numbers, strings; see ``FORMAT``): the
  nodes, their intervals, the sampled messages with their fates, and the system's own timeline
  (``system.timeline(world)``, optional: leases, elections, client operations), each capped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.checkers.verdict import CONDITION_FAILED_ERRORS
from harness.history import FAIL, INFO, OK, History, Operation

if TYPE_CHECKING:
    from harness.link import LinkState
    from harness.scheduler import Timer
    from harness.world import World

__all__ = ["Recording", "Band", "Marker", "ClientOperation", "SystemTimeline", "FORMAT",
           "client_operations", "sample_operations", "MESSAGE_FATES"]

FORMAT = 1  # the version of ``export``'s layout; the renderer refuses another
MESSAGE_CAP = 1000  # sampled sends kept, at most (every fate)
DROP_CAP = 500  # dropped or corrupted copies kept, at most, besides
OPERATION_CAP = 1500  # client operations kept, at most; failed and unknown ones favoured
BAND_CAP = MARKER_CAP = 3000  # the system's bands and markers kept, at most (the first ones)

# What became of a message: reached its destination (``delivered``, ``corrupted``: damaged on the
# way), arrived at a destination that was down or restarted meanwhile (``lost``), was dropped when
# sent (``partition``, ``gray``, ``loss``, ``queue-full``), was on a link when a cut began (``cut``),
# is held by a clog (``held``) or was still on its way when the run ended (``in-flight``).
MESSAGE_FATES = ("delivered", "corrupted", "lost", "partition", "gray", "loss", "queue-full", "cut",
                 "held", "in-flight")
MESSAGE_COLUMNS = ("sent_ns", "arrived_ns", "source", "destination", "type", "fate")
OPERATION_OUTCOMES = ("ok", "fail", "unknown")


@dataclass(frozen=True, slots=True)
class Band:
    """An interval on a lane: a lease, a leadership, a node out of service.

    ``lane`` is a node's name (drawn on that node's lane) or any other name (a lane of the system's
    own, e.g. ``partition 0``, drawn above the nodes). ``node``, if set, is whom it is about: the
    report colours it as that node.
    """

    lane: str
    start_ns: int
    end_ns: int | None  # None: to the end of the run
    kind: str  # e.g. "lease", "out-of-service"
    label: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    """An instant on a lane: an election started, a leader took over."""

    lane: str
    time_ns: int
    kind: str  # e.g. "election", "spurious-election", "leader"
    label: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class ClientOperation:
    """One client operation as the report draws it, in true time."""

    process: int
    node: str | None  # the client node that performed it
    f: str
    key: Any
    argument: Any
    result: Any
    invoked_ns: int
    completed_ns: int | None  # None: never completed
    outcome: str  # ok | fail | unknown
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SystemTimeline:
    """What a system's optional ``timeline(world)`` hook returns, for the report to draw."""

    bands: tuple[Band, ...] = ()
    markers: tuple[Marker, ...] = ()
    operations: tuple[ClientOperation, ...] = ()
    lanes: tuple[str, ...] = ()  # the order of the system's own lanes (others follow, as they come)
    lanes_title: str = ""  # a heading for the system's own lanes, e.g. "lease holder by partition"


def client_operations(history: History | Iterable[Operation]) -> list[ClientOperation]:
    """A History's operations as ``ClientOperation``s (``info`` and never-completed: unknown)."""
    operations = history.operations() if isinstance(history, History) else list(history)
    nodes: dict[int, str | None] = {}
    if isinstance(history, History):
        nodes = {entry.index: entry.node for entry in history.entries}
    outcome = {OK: "ok", FAIL: "fail", INFO: "unknown", None: "unknown"}
    return [ClientOperation(op.process, nodes.get(op.invoke_index), op.f, op.key, op.argument,
                            op.result, op.invoked_ns, op.completed_ns, outcome[op.completion],
                            op.error) for op in operations]


def sample_operations(operations: Sequence[ClientOperation],
                      cap: int = OPERATION_CAP) -> tuple[list[ClientOperation], int]:
    """At most ``cap`` operations, in invocation order, and the stride of the ok ones kept.

    Failed and unknown operations are favoured (up to two thirds of the cap, thinned evenly beyond);
    ok ones fill the rest, every ``stride``-th. Deterministic: no randomness.
    """
    troubled = [op for op in operations if not _answered(op)]
    troubled = troubled[::max(1, math.ceil(len(troubled) / (cap * 2 // 3)))] if troubled else []
    ok = [op for op in operations if _answered(op)]
    room = max(cap - len(troubled), 1)
    stride = max(1, math.ceil(len(ok) / room))
    kept = troubled + ok[::stride]
    kept.sort(key=lambda op: (op.invoked_ns, op.process))
    return kept, stride


def _answered(operation: ClientOperation) -> bool:
    """ok, or a fail that answers "your condition is false": not what the sample favours."""
    return operation.outcome == "ok" or (operation.outcome == "fail"
                                         and operation.error in CONDITION_FAILED_ERRORS)


class Recording:
    """The world's record of a run for reports (see the module docstring)."""

    def __init__(self, world: World, *, message_cap: int = MESSAGE_CAP,
                 drop_cap: int = DROP_CAP) -> None:
        if message_cap < 2 or drop_cap < 2:
            raise ValueError(f"caps must be at least 2, got {message_cap} and {drop_cap}")
        self.world = world
        self.message_cap, self.drop_cap = message_cap, drop_cap
        # [ordinal, sent_ns, source, destination, type, timer or None, fate or None]
        self._sampled: list[list[Any]] = []
        self._dropped: list[list[Any]] = []
        self.stride = self.drop_stride = 1
        self._next_ordinal = 1  # the ordinal of the send that ``sample`` sees next
        self.drops_seen = 0
        self._network = world.network
        self._network.recording = self
        self._network.sends_to_sample = 1

    # -- during the run: the network's hooks ------------------------------------------------------
    def sample(self, source: str, destination: str, message: Any, size_bytes: int | None) -> None:
        """Send ``message`` as the network would, and note its fate. Called every ``stride`` sends."""
        network, ordinal = self._network, self._next_ordinal
        network.sends_to_sample = 0  # the send below counts down past 0: it is not sampled again
        sent_ns = network.kernel.now_ns
        try:
            network.send(source, destination, message, size_bytes)
            link = network._links[source][destination]
            kind = getattr(message, "kind", None)
            kind = kind if type(kind) is str else type(message).__name__
            entry = [ordinal, sent_ns, source, destination, kind, None, None]
            if link.in_flight and link.in_flight[-1].args[2] is message:
                entry[5] = link.in_flight[-1]
            elif link.held and link.held[-1][0] is message:
                entry[6] = "held"
            else:
                return  # dropped, or corrupted on the way: ``dropped`` has it
            if self._keep(self._sampled, entry, self.message_cap, self.stride):
                self.stride *= 2
        finally:
            following = (ordinal // self.stride + 1) * self.stride
            self._next_ordinal = following
            network.sends_to_sample = following - ordinal

    def dropped(self, link: LinkState, kind: str, fate: str, message: Any = None) -> None:
        """A copy was dropped (``fate``: partition, gray, loss, queue-full) or, with ``message``
        (the damaged copy, just transmitted), corrupted."""
        timer = None
        if message is not None:
            if not (link.in_flight and link.in_flight[-1].args[2] is message):
                return  # the damaged copy was then lost: that drop was reported itself
            timer = link.in_flight[-1]
        self.drops_seen += 1
        if self.drops_seen % self.drop_stride:
            return
        entry = [self.drops_seen, self._network.kernel.now_ns, link.source, link.destination, kind,
                 timer, fate]
        if self._keep(self._dropped, entry, self.drop_cap, self.drop_stride):
            self.drop_stride *= 2

    @staticmethod
    def _keep(kept: list[list[Any]], entry: list[Any], cap: int, stride: int) -> bool:
        """Keep ``entry``; over the cap, keep only the ordinals that are multiples of twice the
        stride (True: the stride doubled)."""
        kept.append(entry)
        if len(kept) <= cap:
            return False
        kept[:] = [item for item in kept if item[0] % (stride * 2) == 0]
        return True

    # -- after the run ----------------------------------------------------------------------------
    def export(self, system: Any = None, *, description: str = "", duration_s: float | None = None,
               heal_s: float | None = None) -> dict[str, Any]:
        """Everything the report draws, as JSON-ready data (lists, not tuples: it survives a round
        trip through JSON unchanged)."""
        world = self.world
        end_ns = world.kernel.now_ns
        nodes = [[node.name, node.az, node.role] for node in world.nodes.values()]
        messages = sorted((self._message_row(entry, end_ns)
                           for entry in self._sampled + self._dropped), key=_row_order)
        network_totals = world.network.statistics()
        return {
            "format": FORMAT, "description": description, "duration_s": duration_s,
            "heal_s": heal_s, "end_ns": end_ns, "heal_started_ns": world.heal_started_ns,
            "nodes": nodes, "node_states": self._node_states(end_ns),
            "messages": {"columns": list(MESSAGE_COLUMNS), "rows": messages,
                         "sent": network_totals["messages_sent"], "stride": self.stride,
                         "dropped": self.drops_seen, "dropped_stride": self.drop_stride},
            "system": _system_timeline(system, world),
        }

    def _message_row(self, entry: list[Any], end_ns: int) -> list[Any]:
        _, sent_ns, source, destination, kind, timer, fate = entry
        arrived_ns = None
        if timer is not None:
            arrived_ns = timer.time_ns
            if timer.cancelled:
                fate, arrived_ns = "cut", None
            elif arrived_ns > end_ns:
                fate, arrived_ns = "in-flight", None
            elif self._lost(destination, sent_ns, timer):
                fate = "lost"
            elif fate is None:
                fate = "delivered"
        return [sent_ns, arrived_ns, source, destination, kind, fate]

    def _lost(self, destination: str, sent_ns: int, timer: Timer) -> bool:
        """The destination was down when the copy arrived, or went down while it was on its way."""
        node = self.world.nodes[destination]
        arrived_ns = timer.time_ns
        state = "off"
        for time_ns, change in node.lifecycle:
            if time_ns > arrived_ns:
                break
            if change in ("crashed", "off") and time_ns >= sent_ns:
                return True
            if change in ("running", "crashed", "off"):
                state = change
        return state != "running"

    def _node_states(self, end_ns: int) -> list[list[Any]]:
        """[node, state, start_ns, end_ns or None] for every interval a node was not running
        normally: crashed, off, paused, or not started (``idle``, before its first boot)."""
        intervals: list[list[Any]] = []
        for node in self.world.nodes.values():
            open_down: list[Any] | None = [node.name, "idle", 0, None]
            open_pause: list[Any] | None = None
            for time_ns, change in node.lifecycle:
                if change in ("running", "crashed", "off") and open_pause is not None:
                    open_pause[3] = time_ns
                    intervals.append(open_pause)
                    open_pause = None
                if change == "running" and open_down is not None:
                    open_down[3] = time_ns
                    if time_ns > open_down[2]:
                        intervals.append(open_down)
                    open_down = None
                elif change in ("crashed", "off"):
                    if open_down is not None:  # e.g. a crashed node powered off: one ends, one begins
                        open_down[3] = time_ns
                        intervals.append(open_down)
                    open_down = [node.name, change, time_ns, None]
                elif change == "paused":
                    open_pause = [node.name, "paused", time_ns, None]
                elif change == "resumed" and open_pause is not None:
                    open_pause[3] = time_ns
                    intervals.append(open_pause)
                    open_pause = None
            intervals.extend(item for item in (open_down, open_pause) if item is not None)
        intervals.sort(key=lambda item: (item[2], item[0], item[1]))
        return intervals


def _row_order(row: list[Any]) -> tuple[int, str, str]:
    return row[0], row[2], row[3]


def _system_timeline(system: Any, world: World) -> dict[str, Any]:
    """The system's ``timeline(world)``, capped, as plain data; an error in the hook is reported in
    the data (the report shows it) instead of losing the run's report."""
    hook = getattr(system, "timeline", None)
    empty: dict[str, Any] = {"lanes": [], "lanes_title": "", "bands": [], "markers": [],
                             "operations": [], "operations_total": 0, "operations_stride": 1,
                             "bands_total": 0, "markers_total": 0, "error": None}
    if hook is None:
        return empty
    try:
        timeline = hook(world)
        if not isinstance(timeline, SystemTimeline):
            raise TypeError(f"timeline() must return a harness SystemTimeline, got "
                            f"{type(timeline).__name__}")
    except Exception as error:  # noqa: BLE001 - a drawing must not lose the run's report
        return {**empty, "error": f"{type(error).__name__}: {error}"}
    operations, stride = sample_operations(timeline.operations)
    return {
        "lanes": [str(lane) for lane in timeline.lanes], "lanes_title": str(timeline.lanes_title),
        "bands": [[b.lane, b.start_ns, b.end_ns, b.kind, b.label, b.node]
                  for b in timeline.bands[:BAND_CAP]],
        "markers": [[m.lane, m.time_ns, m.kind, m.label, m.node]
                    for m in timeline.markers[:MARKER_CAP]],
        "operations": [[op.process, op.node, op.f, plain(op.key), plain(op.argument),
                        plain(op.result), op.invoked_ns, op.completed_ns, op.outcome, op.error]
                       for op in operations],
        "operations_total": len(timeline.operations), "operations_stride": stride,
        "bands_total": len(timeline.bands), "markers_total": len(timeline.markers), "error": None,
    }


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data that a JSON round trip leaves equal (tuples become lists, keys
    strings, anything else its ``repr``)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):  # sorted: a JSON round trip keeps the order, so pages match
        return {str(key): plain(item) for key, item in sorted(value.items(), key=_by_text)}
    return repr(value)


def _by_text(item: tuple[Any, Any]) -> str:
    return str(item[0])


def dump_json(data: Any) -> str:
    """``data`` as indented JSON, but a list of plain values, and each row of a list of lists (a
    recording's messages and operations), on one line. Keys keep their order, so that what is read
    back iterates as the original did."""
    return _dump(data, 0) + "\n"


def _dump(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = value.items()
        body = ",\n".join(f"{inner}{json.dumps(str(key))}: {_dump(item, depth + 1)}"
                          for key, item in items)
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(item, (list, tuple)) for item in value):  # rows: one line each
            rows = (json.dumps(item, default=str) for item in value)
            return "[\n" + ",\n".join(inner + row for row in rows) + "\n" + pad + "]"
        if any(isinstance(item, (dict, list, tuple)) for item in value):
            return ("[\n" + ",\n".join(inner + _dump(item, depth + 1) for item in value) + "\n"
                    + pad + "]")
    return json.dumps(value, default=str)
