"""The network: directed links between nodes, and the network faults acting on them.

Theory of operation. Every ordered pair of nodes ``(source, destination)`` is a directed link with its
own ``LinkConfig`` (the world's defaults unless ``configure_link`` overrides it) and its own
``LinkState``, created on first use. ``send()`` walks one message through its link and either drops it,
holds it (a clogged link) or schedules one kernel event per copy, which hands the message to
``destination.deliver(source, message)``, owned by the destination node, of kind ``"deliver"``, with
detail ``(source, destination, message type)``. The kernel then enforces crashes (an event from
before a crash is dropped) and pauses (it is parked) for us.

One message's walk, and the order of its random draws (always this order, so a seed fixes every fate):

    cut by a partition?  ──yes──▶ dropped_partition
    gray rules, in the order added: drop draw ──▶ dropped_gray; else add their extra delay, and
        a corruption draw ──▶ corrupted: a damaged copy goes on in the message's place
    link clogged?        ──yes──▶ held; walks on from here, in order, when the link unclogs
    loss draw            ──▶ dropped_loss
    queue full?          ──▶ dropped_queue_full     (copies in flight >= queue_capacity_messages)
    delay draw; serialization (size / bandwidth, after the previous copy on the link is out)
    reorder draw: a reordered copy gets an extra-delay draw and escapes the FIFO rule; every other
                  copy is delivered at max(its time, the link's last FIFO delivery): links are FIFO
    duplicate draw       ──▶ a second copy walks from the loss draw on

Faults are rules kept in the order they were added (see ``network_faults``). When the rules change,
every link recomputes whether a cut or a gray rule applies to it, so a message on a healthy link pays
one flag test for all of them. A cut (partition, one-way partition, AZ isolation) drops messages at
send time, and also whatever is on the link when the cut begins, in flight or held by a clog: packets
on the wire when the cable is cut do not arrive, even if it is mended before they would have. Gray
rules and clogs act at send time only. A clog holds messages instead of dropping them. A gray rule's
extra delay is added before the FIFO rule, so later messages on the link wait behind a slowed one, as
they would on one TCP connection.

For reports, a ``Recording`` (``harness.recording``) may watch the network: ``send`` hands it every
``stride``-th send (a countdown, one attribute decrement and test per send), and every drop and
corrupted copy is reported to it (``_note_drop``). It draws nothing and records nothing in the trace.

Statistics count copies: every copy sent or duplicated ends in exactly one bucket, so
``messages_sent + duplicated == delivered + in_flight + held + dropped_*``. ``delivered`` means handed
to the destination host at its delivery time; whether the host was up is the node's business.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from harness.link import (COUNTERS, DEFAULT_MESSAGE_SIZE_BYTES, LinkConfig, LinkProfile, LinkState,
                          message_size, message_type)
from harness.network_faults import Cut, GrayLink, GrayRule, NetworkFault, SwizzleClog
from harness.node import NodeState
from harness.scheduler import Kernel, Timer, _new_timer

if TYPE_CHECKING:
    from harness.node import Node
    from harness.rng import Rng
    from harness.world import World

__all__ = ["Network", "LinkConfig", "GrayLink", "NetworkFault", "Cut", "GrayRule", "SwizzleClog",
           "message_type", "message_size"]

_CONSUMED = -1  # what the fault path returns for a message it dropped or held
_heappush = heapq.heappush


# A message's type and size, as ``message_type`` and ``message_size`` tell them, by its class: a
# class whose instances cannot differ in them (no instance dict, no ``kind`` or ``size_bytes`` slot
# or property, no ``__getattr__``) has them once, here; for others, None (ask each message).
_SHAPES: dict[type, tuple[str | None, int | None]] = {}


def _learn_shape(cls: type) -> tuple[str | None, int | None]:
    def static(name: str) -> Any:
        for klass in cls.__mro__:
            if name in klass.__dict__:
                value = klass.__dict__[name]
                return _VARIES if hasattr(type(value), "__get__") else value
        return None

    fixed = (cls.__dictoffset__ == 0 and cls is not bytes and "__getattr__" not in dir(cls)
             and cls.__getattribute__ is object.__getattribute__)
    kind, size = static("kind"), static("size_bytes")
    shape = (None if not fixed or kind is _VARIES else kind if type(kind) is str else cls.__name__,
             None if not fixed or size is _VARIES else size if type(size) is int
             else DEFAULT_MESSAGE_SIZE_BYTES)
    _SHAPES[cls] = shape
    return shape


_VARIES = object()
_RUNNING = NodeState.RUNNING  # for ``_arrive``: one lookup, not two


class Network:
    """All directed links between the world's nodes, and the network faults acting on them."""

    def __init__(self, kernel: Kernel, rng: Rng, world: World, link_defaults: LinkConfig) -> None:
        self.kernel = kernel
        self.rng = rng
        self.world = world
        self._random = rng.random
        self._schedule = kernel._schedule  # bound once: every copy sent calls it
        self._arrive_event = self._arrive  # the callback of every delivery event, bound once
        self._defaults = link_defaults
        self._overrides: dict[tuple[str, str], LinkConfig] = {}
        self._links: dict[str, dict[str, LinkState]] = {}  # source → destination → link
        self._faults: dict[int, NetworkFault] = {}  # in the order added
        self._next_fault_id = 1
        self._last_profile: LinkProfile | None = None  # see ``_profile``
        # The report's sample of messages (``harness.recording``): ``send`` counts down and hands
        # the send that reaches 0 to ``recording.sample``; from 0 (no recording) it never does.
        self.recording: Any = None
        self.sends_to_sample = 0

    # -- sending: the hot path --------------------------------------------------------------------
    def send(self, source: str, destination: str, message: Any, size_bytes: int | None = None) -> None:
        """Put a message on the link source→destination. Fire and forget: it may never arrive."""
        self.sends_to_sample -= 1
        if not self.sends_to_sample:  # sampled for the report; it sends the message through here
            self.recording.sample(source, destination, message, size_bytes)
            return
        try:
            link = self._links[source][destination]
        except KeyError:
            link = self._new_link(source, destination)
        kind, size = _SHAPES.get(type(message)) or _learn_shape(type(message))
        if kind is None:  # its class lets it choose (see ``_learn_shape``)
            kind = message_type(message)
        if size_bytes is None:
            size_bytes = size if size is not None else message_size(message)
        link.messages_sent += 1
        link.bytes_sent += size_bytes
        if link.fast:
            # A plain, healthy link (see ``LinkState.fast``): the walk of ``_transmit_copy`` inlined,
            # without the steps that cannot apply; the same single draw, for the delay. Keep the two
            # alike. (Callables held in attributes are called through locals: CPython 3.11
            # specializes ``local(...)`` but not ``self.attribute(...)``.)
            now = self.kernel.now_ns
            in_flight = link.in_flight
            if len(in_flight) >= link.prune_at and not link.make_room(now):
                link.dropped_queue_full += 1
                self._note_drop(link, kind, "queue-full")
                return
            random = self._random
            time_ns = now + int(link.uniform_low_ns + link.uniform_span_ns * random())
            if time_ns < link.last_delivery_ns:
                time_ns = link.last_delivery_ns
            else:
                link.last_delivery_ns = time_ns
            # ``Kernel._schedule``, inlined (for a time ahead of now: the delay is positive): a
            # call less per message. Keep the two alike.
            kernel = self.kernel
            timer = _new_timer(Timer)
            timer.time_ns = time_ns
            timer.sequence = sequence = next(kernel._sequence)
            timer.local_deadline_ns = None
            timer.callback = self._arrive_event
            timer.args = (link, source, message)
            timer.owner = node = link.destination_node
            timer.epoch = node.epoch
            timer.kind = "deliver"
            timer.detail = (source, destination, kind)
            timer.cancelled = False
            key = time_ns << 64 | sequence
            _heappush(kernel._heap, key)
            kernel._events[key] = timer
            in_flight.append(timer)
            return
        extra_ns = 0
        if link.faulted:
            extra_ns = self._apply_faults(link, message, kind, size_bytes)
            if extra_ns == _CONSUMED:
                return
        # ``_transmit`` inlined (a call less per message): keep the two alike.
        self._transmit_copy(link, message, kind, size_bytes, extra_ns)
        if link.duplicate_probability and self._random() < link.duplicate_probability:
            link.duplicated += 1
            self._transmit_copy(link, message, kind, size_bytes, extra_ns)

    def _transmit(self, link: LinkState, message: Any, kind: str, size_bytes: int,
                  extra_ns: int) -> None:
        """The rest of the walk, for a message that passed the faults: one copy, maybe two."""
        self._transmit_copy(link, message, kind, size_bytes, extra_ns)
        if link.duplicate_probability and self._random() < link.duplicate_probability:
            link.duplicated += 1
            self._transmit_copy(link, message, kind, size_bytes, extra_ns)

    def _transmit_copy(self, link: LinkState, message: Any, kind: str, size_bytes: int,
                       extra_ns: int) -> None:
        """Loss, queue capacity, delay, serialization, reordering or FIFO; then the delivery event."""
        random = self._random
        if link.loss_probability and random() < link.loss_probability:
            link.dropped_loss += 1
            self._note_drop(link, kind, "loss")
            return
        now = self.kernel.now_ns
        in_flight = link.in_flight
        if len(in_flight) >= link.prune_at and not link.make_room(now):
            link.dropped_queue_full += 1
            self._note_drop(link, kind, "queue-full")
            return
        span_ns = link.uniform_span_ns
        if span_ns >= 0.0:  # the common distribution, drawn without a call
            time_ns = int(link.uniform_low_ns + span_ns * random()) + extra_ns
        else:
            time_ns = link.draw_delay_ns() + extra_ns
        if link.ns_per_byte:
            start = link.busy_until_ns if link.busy_until_ns > now else now
            link.busy_until_ns = now = start + int(size_bytes * link.ns_per_byte)
        time_ns += now
        if link.reorder_probability and random() < link.reorder_probability:
            link.reordered += 1
            time_ns += int(random() * link.reorder_delay_ns)
        elif time_ns < link.last_delivery_ns:
            time_ns = link.last_delivery_ns
        else:
            link.last_delivery_ns = time_ns
        source = link.source
        in_flight.append(self._schedule(time_ns, self._arrive_event, (link, source, message),
                                        link.destination_node, "deliver",
                                        (source, link.destination, kind)))

    def _arrive(self, link: LinkState, source: str, message: Any) -> None:
        """A copy's delivery event: the link forgets the copies delivered by now; the host gets it.

        Forgetting them here rather than at the link's next send matters for speed: with many
        links, that send comes thousands of events later, when the timers have left the CPU's
        caches (``make_room`` still forgets those whose delivery a crash or pause took away).
        """
        in_flight = link.in_flight
        if len(in_flight) == 1:  # this copy was alone on the link: the common case (the head is 0)
            if in_flight[0].time_ns <= self.kernel.now_ns:
                del in_flight[0]
        elif in_flight:
            link.forget_delivered(self.kernel.now_ns)
        # ``link.destination_node.deliver(source, message)``, inlined: a call less per message. Keep
        # the two alike.
        node = link.destination_node
        program = node.program
        if program is None or node.state != _RUNNING:
            node.stats.messages_dropped_down += 1
            return
        node.stats.messages_received += 1
        node.on_message(source, message)  # with the node's loop running (see ``Kernel``)

    def _apply_faults(self, link: LinkState, message: Any, kind: str, size_bytes: int) -> int:
        """Cuts, gray rules and clogs. The extra delay to add, or _CONSUMED if dropped or held."""
        if link.cut:
            link.dropped_partition += 1
            self._note_drop(link, kind, "partition")
            return _CONSUMED
        extra_ns = 0
        now = self.kernel.now_ns
        corrupted = message
        for rule in link.gray:
            if rule.applies(now, kind):
                if self.rng.chance(rule.spec.drop_probability):
                    link.dropped_gray += 1
                    self._note_drop(link, kind, "gray")
                    return _CONSUMED
                extra_ns += rule.extra_delay_ns
                if rule.spec.corrupt_probability and self.rng.chance(rule.spec.corrupt_probability):
                    corrupted = corrupt_message(corrupted, self.rng)
                    link.corrupted += 1
        if corrupted is not message:  # the damaged copy walks on in the message's place
            message = corrupted
            if not link.clog_depth:
                self._transmit(link, message, kind, size_bytes, extra_ns)
                self._note_drop(link, kind, "corrupted", message)
                return _CONSUMED
        if link.clog_depth:
            if len(link.held) >= link.capacity:
                link.dropped_queue_full += 1
                self._note_drop(link, kind, "queue-full")
            else:
                link.held.append((message, kind, size_bytes, extra_ns))
                link.clogged_held += 1
            return _CONSUMED
        return extra_ns

    def _note_drop(self, link: LinkState, kind: str, fate: str, message: Any = None) -> None:
        """Tell the report's recording of a dropped copy, or (with ``message``) a corrupted one."""
        if self.recording is not None:
            self.recording.dropped(link, kind, fate, message)

    # -- links ------------------------------------------------------------------------------------
    def _new_link(self, source: str, destination: str) -> LinkState:
        config = self._overrides.get((source, destination), self._defaults)
        link = LinkState(self._node(source), self._node(destination), self._profile(config))
        self._links.setdefault(source, {})[destination] = link
        self._refresh(link)
        return link

    def _link(self, source: str, destination: str) -> LinkState:
        link = self._links.get(source, {}).get(destination)
        return link if link is not None else self._new_link(source, destination)

    def _node(self, name: str) -> Node:
        node = self.world.nodes.get(name)
        if node is None:
            raise ValueError(f"unknown node {name!r}; known nodes are {sorted(self.world.nodes)}")
        return node

    def _all_links(self) -> list[LinkState]:
        return [link for by_destination in self._links.values() for link in by_destination.values()]

    def configure_link(self, source: str, destination: str, config: LinkConfig) -> None:
        """Give the link source→destination its own config (messages already sent keep their fate)."""
        if not isinstance(config, LinkConfig):
            raise TypeError(f"configure_link needs a LinkConfig, got {config!r}")
        self._overrides[(source, destination)] = config
        self._link(source, destination).configure(self._profile(config))

    def link_config(self, source: str, destination: str) -> LinkConfig:
        """The config the link source→destination uses now."""
        self._node(source)
        self._node(destination)
        return self._overrides.get((source, destination), self._defaults)

    def set_link_defaults(self, config: LinkConfig) -> None:
        """Change the config of every link that has no per-link override."""
        self._defaults = config
        for link in self._all_links():
            if (link.source, link.destination) not in self._overrides:
                link.configure(self._profile(config))

    def _profile(self, config: LinkConfig) -> LinkProfile:
        """``config`` compiled, once for a run of links with the same config (usually all of them).

        Shared, its constants and delay sampler cost thousands of links no objects of their own:
        less to create, for the garbage collector to walk, and for ``send`` to fetch from memory.
        Every sampler draws from the network's stream.
        """
        profile = self._last_profile
        if profile is None or profile.config is not config:
            profile = self._last_profile = LinkProfile.of(config, self.rng)
        return profile

    # -- faults -----------------------------------------------------------------------------------
    def partition(self, group_a: Iterable[str], group_b: Iterable[str]) -> Cut:
        """Cut every link between the two groups, both ways."""
        side_a, side_b = self._group("group_a", group_a), self._group("group_b", group_b)
        overlap = sorted(side_a & side_b)
        if overlap:
            raise ValueError(f"partition groups must be disjoint; both contain {overlap}")
        description = f"partition {sorted(side_a)} | {sorted(side_b)}"
        return self._add_cut(description, sources=side_a, destinations=side_b, symmetric=True)

    def partition_one_way(self, sources: Iterable[str], destinations: Iterable[str]) -> Cut:
        """Drop every message from a source to a destination; the other direction still works."""
        side_a, side_b = self._group("sources", sources), self._group("destinations", destinations)
        description = f"one-way partition {sorted(side_a)} -> {sorted(side_b)}"
        return self._add_cut(description, sources=side_a, destinations=side_b)

    def isolate_az(self, az: str) -> Cut:
        """Cut every link between the nodes of ``az`` and the nodes of other AZs (both ways)."""
        azs = sorted({node.az for node in self.world.nodes.values()})
        if az not in azs:
            raise ValueError(f"unknown availability zone {az!r}; zones are {azs}")
        return self._add_cut(f"isolate {az}", az=az)

    def add_gray_link(self, spec: GrayLink) -> GrayRule:
        """Start a gray failure on source→destination (see ``GrayLink``)."""
        for name in (spec.source, spec.destination):
            if name != "*":
                self._node(name)
        rule = GrayRule(self, self._take_fault_id(), spec, self.kernel.now_ns)
        self._add(rule)
        return rule

    def _group(self, field: str, names: Iterable[str]) -> frozenset[str]:
        if isinstance(names, str):
            raise ValueError(f"{field} must be a list of node names, got the string {names!r}")
        group = frozenset(names)
        if not group:
            raise ValueError(f"{field} must name at least one node")
        for name in sorted(group):
            self._node(name)
        return group

    def _add_cut(self, description: str, **rule: Any) -> Cut:
        cut = Cut(self, self._take_fault_id(), description, **rule)
        self._add(cut)
        return cut

    def _take_fault_id(self) -> int:
        self._next_fault_id += 1
        return self._next_fault_id - 1

    def _add(self, fault: NetworkFault) -> None:
        self._faults[fault.fault_id] = fault
        for link in self._all_links():
            was_cut = link.cut
            self._refresh(link)
            if link.cut and not was_cut:
                self._drop_on_cut(link)

    def _refresh(self, link: LinkState) -> None:
        if not self._faults:  # the common case, e.g. every new link of a healthy network
            link.cut, link.gray, link.faulted = False, (), link.clog_depth > 0
            link.fast = link.plain and not link.faulted
            return
        faults = self._faults.values()
        link.cut = any(isinstance(f, Cut) and f.cuts(link.source_node, link.destination_node)
                       for f in faults)
        link.gray = tuple(f for f in faults
                          if isinstance(f, GrayRule) and f.matches_link(link.source, link.destination))
        link.faulted = link.cut or bool(link.gray) or link.clog_depth > 0
        link.fast = link.plain and not link.faulted

    def _drop_on_cut(self, link: LinkState) -> None:
        """A cut loses what is on the link: copies in flight and messages held by a clog."""
        link.dropped_partition += link.cancel_in_flight(self.kernel.now_ns) + len(link.held)
        link.held.clear()

    def is_active(self, fault_id: int) -> bool:
        return fault_id in self._faults

    def heal(self, fault_id: int) -> None:
        """Remove one fault (by the id on its handle). Healing a healed fault does nothing."""
        fault = self._faults.pop(fault_id, None)
        if isinstance(fault, SwizzleClog):
            for timer in fault.steps:
                timer.cancel()
            for source, destination in reversed(fault.clogged):
                self.unclog_link(source, destination)
            fault.clogged.clear()
        if fault is not None:
            for link in self._all_links():
                self._refresh(link)

    def heal_all(self) -> None:
        """Remove every fault and every clog; held messages are sent on."""
        for fault_id in list(self._faults):
            self.heal(fault_id)
        for link in self._all_links():
            if link.clog_depth:
                link.clog_depth = 0
                self._release(link)

    def active_faults(self) -> list[NetworkFault]:
        return list(self._faults.values())

    # -- clogging ---------------------------------------------------------------------------------
    def clog_link(self, source: str, destination: str) -> None:
        """Hold every message sent on source→destination until as many ``unclog_link`` calls."""
        link = self._link(source, destination)
        link.clog_depth += 1
        link.faulted, link.fast = True, False

    def unclog_link(self, source: str, destination: str) -> None:
        """Undo one ``clog_link``; when none is left, send the held messages on, in order."""
        link = self._link(source, destination)
        if link.clog_depth:
            link.clog_depth -= 1
            if not link.clog_depth:
                self._release(link)

    def _release(self, link: LinkState) -> None:
        self._refresh(link)
        held, link.held = link.held, []
        for message, kind, size_bytes, extra_ns in held:
            self._transmit(link, message, kind, size_bytes, extra_ns)

    def swizzle_clog(self, nodes: Iterable[str], interval_ms: float) -> SwizzleClog:
        """Clog the links touching ``nodes`` one by one (seeded order), then unclog them in reverse.

        The steps are unowned kernel events of kind "fault", the first one now; the swizzle ends by
        itself at ``finishes_at_ns``, or earlier on ``heal()``.
        """
        group = self._group("nodes", nodes)
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or not (
                0 < interval_ms < float("inf")):
            raise ValueError(f"swizzle_clog interval_ms = {interval_ms!r} is not allowed: it must be "
                             f"a finite number > 0")
        names = sorted(self.world.nodes)
        order = [(a, b) for a in names for b in names if a != b and (a in group or b in group)]
        self.rng.shuffle(order)
        interval_ns = int(interval_ms * 1e6)
        swizzle = SwizzleClog(self, self._take_fault_id(), f"swizzle clog {sorted(group)}", order,
                              self.kernel.now_ns, interval_ns)
        if not order:
            return swizzle  # a lone node has no links to clog: nothing to do, already over
        self._add(swizzle)
        steps = [(True, key) for key in order] + [(False, key) for key in reversed(order)]
        for index, (clog, key) in enumerate(steps):
            swizzle.steps.append(self.kernel.call_later(
                index * interval_ns, self._swizzle_step, swizzle, clog, key, kind="fault",
                detail=("clog" if clog else "unclog", f"{key[0]}->{key[1]}")))
        return swizzle

    def _swizzle_step(self, swizzle: SwizzleClog, clog: bool, key: tuple[str, str]) -> None:
        if clog:
            swizzle.clogged.append(key)
            self.clog_link(*key)
            return
        swizzle.clogged.remove(key)
        self.unclog_link(*key)
        if not swizzle.clogged:
            self._faults.pop(swizzle.fault_id, None)

    # -- state ------------------------------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        """Totals over all links, and ``links``: the same counters per link that carried traffic."""
        now = self.kernel.now_ns
        links = {f"{link.source}->{link.destination}": link.counters(now)
                 for link in sorted(self._all_links(), key=_link_key) if link.messages_sent}
        totals: dict[str, Any] = {name: sum(counts[name] for counts in links.values())
                                  for name in COUNTERS}
        totals["links"] = links
        return totals


def _link_key(link: LinkState) -> tuple[str, str]:
    return link.source, link.destination


def corrupt_message(message: Any, rng: Rng) -> Any:
    """A copy of ``message`` damaged in flight: its own ``corrupted(rng)`` if it has one (systems give
    their messages this hook), else one flipped bit of a bytes payload; other messages pass intact."""
    hook = getattr(message, "corrupted", None)
    if callable(hook):
        return hook(rng)
    if isinstance(message, (bytes, bytearray)) and message:
        damaged = bytearray(message)
        bit = rng.randrange(len(damaged) * 8)
        damaged[bit // 8] ^= 1 << (bit % 8)
        return bytes(damaged)
    return message
