"""The network: directed links between nodes, each with a delay, loss and capacity, and network faults.

Theory of operation. Every ordered pair of nodes ``(source, destination)`` is a directed link with its
own ``LinkConfig`` (the world's defaults unless ``configure_link`` overrides it) and its own state, a
``_Link`` created on first use. ``send()`` walks one message through its link and either drops it,
holds it (a clogged link) or schedules exactly one kernel event per copy: ``destination.deliver(source,
message)``, owned by the destination node, of kind ``"deliver"``. The kernel then enforces crashes
(an event from before a crash is dropped) and pauses (it is parked) for us.

One message's walk, and the order of its random draws (always this order, so a seed fixes every fate):

    cut by a partition?  ──yes──▶ dropped_partition
    gray rules (in the order added): drop draw ──▶ dropped_gray; else add their extra delay
    link clogged?        ──yes──▶ held; sent on (in order) when the link unclogs
    loss draw            ──▶ dropped_loss
    queue full?          ──▶ dropped_queue_full      (in flight on this link >= queue_capacity_messages)
    delay draw; serialization (size / bandwidth, after the previous message on the link)
    reorder draw: a reordered copy gets a further extra-delay draw and escapes the FIFO rule;
                  any other copy is delivered at max(its time, the link's last delivery): links are FIFO
    duplicate draw       ──▶ a second copy walks from the loss draw on

Faults are rules kept in the order they were added; each has a handle whose ``heal()`` removes it.
When the rules change, every link recomputes whether a cut or a gray rule applies to it, so the common
path (no fault on the link) costs one flag test. A cut (partition, one-way partition, AZ isolation)
drops messages at send time, and also the messages already on a link when the cut begins, in flight or
held: packets on the wire when the cable is cut do not arrive, even if it is mended before they would
have. Gray rules and clogs act only at send time. A clog holds messages rather than dropping them.

Statistics count copies: every copy sent or duplicated ends in exactly one bucket, so
``messages_sent + duplicated == delivered + in_flight + held + dropped_*``. ``delivered`` means handed to
the destination host at its delivery time; whether the host was up is the node's business.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.scheduler import Kernel, Timer

if TYPE_CHECKING:
    from harness.node import Node
    from harness.rng import Rng
    from harness.world import World

__all__ = ["Network", "LinkConfig", "GrayLink", "NetworkFault", "Cut", "GrayRule", "SwizzleClog",
           "message_type", "message_size"]

DELAY_DISTRIBUTIONS = ("constant", "uniform", "exponential", "lognormal")
DEFAULT_MESSAGE_SIZE_BYTES = 128
_CONSUMED = -1  # returned by the slow path when it dropped or held the message
_COUNTERS = ("messages_sent", "delivered", "dropped_loss", "dropped_partition", "dropped_gray",
             "dropped_queue_full", "duplicated", "reordered", "bytes_sent", "clogged_held",
             "in_flight", "held")


def _check(owner: str, name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{owner}.{name} must be {allowed}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_probability(owner: str, name: str, value: Any) -> None:
    _check(owner, name, value, _is_number(value) and 0.0 <= value <= 1.0, "a number in [0, 1]")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """How one directed link behaves when no fault touches it. Every delay lies in [min, max]."""

    delay_distribution: str = "uniform"  # "constant" | "uniform" | "exponential" | "lognormal"
    delay_ms_min: float = 0.5  # smallest one-way propagation delay
    delay_ms_max: float = 1.5  # largest one-way propagation delay (exponential/lognormal are cut here)
    delay_ms_mean: float | None = None  # mean delay (the constant's value); None = midpoint of min, max
    delay_lognormal_sigma: float = 0.5  # shape of the lognormal distribution (sigma of the log)
    loss_probability: float = 0.0  # chance each copy is lost
    duplicate_probability: float = 0.0  # chance a message is delivered twice
    reorder_probability: float = 0.0  # chance a copy escapes FIFO order with an extra delay
    reorder_delay_ms_max: float = 5.0  # a reordered copy's extra delay is uniform in [0, this]
    bandwidth_bytes_per_s: int = 0  # serialization rate of the link; 0 = unlimited
    queue_capacity_messages: int = 100_000  # copies in flight (or held) on the link; more are dropped

    def __post_init__(self) -> None:
        name = "LinkConfig"
        _check(name, "delay_distribution", self.delay_distribution,
               self.delay_distribution in DELAY_DISTRIBUTIONS, f"one of {list(DELAY_DISTRIBUTIONS)}")
        for field in ("delay_ms_min", "delay_ms_max", "reorder_delay_ms_max"):
            value = getattr(self, field)
            _check(name, field, value, _is_number(value) and value >= 0, "a finite number >= 0")
        _check(name, "delay_ms_max", self.delay_ms_max, self.delay_ms_max >= self.delay_ms_min,
               f">= delay_ms_min ({self.delay_ms_min})")
        mean = self.delay_ms_mean
        _check(name, "delay_ms_mean", mean, mean is None or (_is_number(mean) and self.delay_ms_min
               <= mean <= self.delay_ms_max), f"None or a number in [delay_ms_min, delay_ms_max] "
               f"= [{self.delay_ms_min}, {self.delay_ms_max}]")
        if self.delay_distribution == "lognormal":
            _check(name, "delay_ms_mean", self.mean_delay_ms, self.mean_delay_ms > 0,
                   "> 0 for a lognormal delay")
        sigma = self.delay_lognormal_sigma
        _check(name, "delay_lognormal_sigma", sigma, _is_number(sigma) and sigma > 0, "a number > 0")
        for field in ("loss_probability", "duplicate_probability", "reorder_probability"):
            _check_probability(name, field, getattr(self, field))
        for field, low in (("bandwidth_bytes_per_s", 0), ("queue_capacity_messages", 1)):
            value = getattr(self, field)
            _check(name, field, value, isinstance(value, int) and not isinstance(value, bool)
                   and value >= low, f"an integer >= {low}")

    @property
    def mean_delay_ms(self) -> float:
        if self.delay_ms_mean is not None:
            return self.delay_ms_mean
        return (self.delay_ms_min + self.delay_ms_max) / 2


@dataclass(frozen=True, slots=True)
class GrayLink:
    """A gray failure on source→destination only: drop or slow (some) messages, maybe flapping."""

    source: str  # sending node, or "*" for any
    destination: str  # receiving node, or "*" for any
    message_type: str | None = None  # only messages of this type (see ``message_type``); None = all
    drop_probability: float = 1.0  # chance a matching message is dropped; 1.0 = black hole
    extra_delay_ms: float = 0.0  # delay added to matching messages that survive (slow but alive)
    flap_period_ms: float = 0.0  # the rule cycles on/off with this period, from when added; 0 = always on
    flap_duty: float = 0.5  # fraction at the start of each period during which the rule is on

    def __post_init__(self) -> None:
        name = "GrayLink"
        for field in ("source", "destination"):
            value = getattr(self, field)
            _check(name, field, value, isinstance(value, str) and value != "", "a node name or '*'")
        _check(name, "message_type", self.message_type,
               self.message_type is None or (isinstance(self.message_type, str) and self.message_type),
               "None or a non-empty message type name")
        _check_probability(name, "drop_probability", self.drop_probability)
        for field in ("extra_delay_ms", "flap_period_ms"):
            value = getattr(self, field)
            _check(name, field, value, _is_number(value) and value >= 0, "a finite number >= 0")
        _check_probability(name, "flap_duty", self.flap_duty)


def message_type(message: Any) -> str:
    """``message.kind`` if it is a string, else the name of the message's class."""
    kind = getattr(message, "kind", None)
    return kind if type(kind) is str else type(message).__name__


def message_size(message: Any) -> int:
    """``len`` of a bytes message, else its ``size_bytes`` attribute, else a default of 128 bytes."""
    if type(message) is bytes:
        return len(message)
    size = getattr(message, "size_bytes", None)
    return size if type(size) is int else DEFAULT_MESSAGE_SIZE_BYTES


class NetworkFault:
    """A handle on one active network fault. ``heal()`` removes it; healing twice does nothing."""

    __slots__ = ("fault_id", "description", "_network")

    def __init__(self, network: Network, fault_id: int, description: str) -> None:
        self._network = network
        self.fault_id = fault_id
        self.description = description

    @property
    def active(self) -> bool:
        return self._network.is_active(self.fault_id)

    def heal(self) -> None:
        self._network.heal(self.fault_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(#{self.fault_id} {self.description})"


class Cut(NetworkFault):
    """A partition: cuts source→destination for sources × destinations (and back, if symmetric), or
    every link between an availability zone and the others."""

    __slots__ = ("sources", "destinations", "symmetric", "az")

    def __init__(self, network: Network, fault_id: int, description: str, *,
                 sources: frozenset[str] = frozenset(), destinations: frozenset[str] = frozenset(),
                 symmetric: bool = False, az: str | None = None) -> None:
        super().__init__(network, fault_id, description)
        self.sources, self.destinations, self.symmetric, self.az = sources, destinations, symmetric, az

    def cuts(self, source: Node, destination: Node) -> bool:
        if self.az is not None:
            return (source.az == self.az) != (destination.az == self.az)
        if source.name in self.sources and destination.name in self.destinations:
            return True
        return self.symmetric and source.name in self.destinations and destination.name in self.sources


class GrayRule(NetworkFault):
    """An active ``GrayLink``, with the true time it was added (its flapping is measured from then)."""

    __slots__ = ("spec", "added_at_ns", "period_ns", "on_ns", "extra_delay_ns")

    def __init__(self, network: Network, fault_id: int, spec: GrayLink, added_at_ns: int) -> None:
        super().__init__(network, fault_id, f"gray link {spec}")
        self.spec = spec
        self.added_at_ns = added_at_ns
        self.period_ns = int(spec.flap_period_ms * 1e6)
        self.on_ns = int(spec.flap_period_ms * spec.flap_duty * 1e6)
        self.extra_delay_ns = int(spec.extra_delay_ms * 1e6)

    def matches_link(self, source: str, destination: str) -> bool:
        return self.spec.source in ("*", source) and self.spec.destination in ("*", destination)

    def applies(self, now_ns: int, kind: str) -> bool:
        if self.spec.message_type is not None and self.spec.message_type != kind:
            return False
        return not self.period_ns or (now_ns - self.added_at_ns) % self.period_ns < self.on_ns


class SwizzleClog(NetworkFault):
    """FoundationDB's swizzle: clog links one by one, then unclog them in reverse order, by itself.

    ``order`` is the clogging order; link ``order[i]`` clogs at ``started_at_ns + i * interval`` and
    unclogs at ``started_at_ns + (2 * len(order) - 1 - i) * interval``, when ``finishes_at_ns`` is reached.
    """

    __slots__ = ("order", "started_at_ns", "finishes_at_ns", "clogged", "steps")

    def __init__(self, network: Network, fault_id: int, description: str,
                 order: list[tuple[str, str]], started_at_ns: int, interval_ns: int) -> None:
        super().__init__(network, fault_id, description)
        self.order = order
        self.started_at_ns = started_at_ns
        self.finishes_at_ns = started_at_ns + max(2 * len(order) - 1, 0) * interval_ns
        self.clogged: list[tuple[str, str]] = []  # links this swizzle holds clogged, in clog order
        self.steps: list[Timer] = []


class _Link:
    """The state of one directed link. Plain slots: ``send`` reads and writes these on every message."""

    __slots__ = ("source", "destination", "source_node", "destination_node", "deliver", "config",
                 "draw_delay_ns", "uniform_low_ns", "uniform_span_ns", "loss_probability", "duplicate_probability", "reorder_probability",
                 "reorder_delay_ns", "ns_per_byte", "capacity", "last_delivery_ns", "busy_until_ns",
                 "in_flight", "full_until_ns", "faulted", "cut", "gray", "clog_depth", "held",
                 "messages_sent", "bytes_sent", "scheduled", "cancelled", "dropped_loss",
                 "dropped_partition", "dropped_gray", "dropped_queue_full", "duplicated", "reordered",
                 "clogged_held")

    def __init__(self, source_node: Node, destination_node: Node) -> None:
        self.source, self.destination = source_node.name, destination_node.name
        self.source_node, self.destination_node = source_node, destination_node
        self.deliver = destination_node.deliver
        self.last_delivery_ns = self.busy_until_ns = self.full_until_ns = 0
        self.in_flight: deque[Timer] = deque()  # delivery timers, roughly in time order
        self.faulted = self.cut = False
        self.gray: tuple[GrayRule, ...] = ()
        self.clog_depth = 0
        self.held: list[tuple[Any, str, int, int]] = []  # (message, type, size, extra delay ns)
        self.messages_sent = self.bytes_sent = self.scheduled = self.cancelled = 0
        self.dropped_loss = self.dropped_partition = self.dropped_gray = self.dropped_queue_full = 0
        self.duplicated = self.reordered = self.clogged_held = 0

    def configure(self, config: LinkConfig, rng: Rng) -> None:
        self.config = config
        self.draw_delay_ns = _delay_sampler(config, rng)
        uniform = config.delay_distribution == "uniform"
        self.uniform_low_ns = config.delay_ms_min * 1e6
        self.uniform_span_ns = (config.delay_ms_max - config.delay_ms_min) * 1e6 if uniform else -1.0
        self.loss_probability = config.loss_probability
        self.duplicate_probability = config.duplicate_probability
        self.reorder_probability = config.reorder_probability
        self.reorder_delay_ns = int(config.reorder_delay_ms_max * 1e6)
        bandwidth = config.bandwidth_bytes_per_s
        self.ns_per_byte = 1e9 / bandwidth if bandwidth else 0.0
        self.capacity = config.queue_capacity_messages
        self.full_until_ns = 0

    def count_in_flight(self, now_ns: int) -> int:
        return sum(1 for timer in self.in_flight if timer.time_ns > now_ns and not timer.cancelled)

    def counters(self, now_ns: int) -> dict[str, int]:
        in_flight = self.count_in_flight(now_ns)
        values = {name: getattr(self, name) for name in _COUNTERS if name in _Link.__slots__}
        values.update(delivered=self.scheduled - self.cancelled - in_flight, in_flight=in_flight,
                      held=len(self.held))
        return {name: values[name] for name in _COUNTERS}


def _delay_sampler(config: LinkConfig, rng: Rng) -> Callable[[], int]:
    """A function drawing one delay in integer nanoseconds, within [delay_ms_min, delay_ms_max]."""
    low, high, mean = config.delay_ms_min * 1e6, config.delay_ms_max * 1e6, config.mean_delay_ms * 1e6
    distribution = config.delay_distribution
    if distribution == "constant" or (distribution == "exponential" and mean <= low):
        constant = int(mean)
        return lambda: constant
    if distribution == "uniform":
        span, random = high - low, rng.random
        return lambda: int(low + span * random())
    if distribution == "exponential":
        rate, exponential = 1.0 / (mean - low), rng.expovariate  # low + Exp has the wanted mean
        return lambda: int(min(low + exponential(rate), high))
    sigma = config.delay_lognormal_sigma
    mu, lognormal = math.log(mean) - sigma * sigma / 2, rng.lognormvariate  # E[X] = mean
    return lambda: int(min(max(lognormal(mu, sigma), low), high))


class Network:
    """All directed links between the world's nodes, and the network faults acting on them."""

    def __init__(self, kernel: Kernel, rng: Rng, world: World, link_defaults: LinkConfig) -> None:
        self.kernel = kernel
        self.rng = rng
        self.world = world
        self._random = rng.random
        self._call_at = kernel.call_at
        self._defaults = link_defaults
        self._overrides: dict[tuple[str, str], LinkConfig] = {}
        self._links: dict[str, dict[str, _Link]] = {}  # source → destination → link
        self._faults: dict[int, NetworkFault] = {}  # in the order added
        self._next_fault_id = 1

    # -- sending: the hot path --------------------------------------------------------------------
    def send(self, source: str, destination: str, message: Any, size_bytes: int | None = None) -> None:
        """Put a message on the link source→destination. Fire and forget: it may never arrive."""
        try:
            link = self._links[source][destination]
        except KeyError:
            link = self._new_link(source, destination)
        if size_bytes is None:
            size_bytes = len(message) if type(message) is bytes else message_size(message)
        link.messages_sent += 1
        link.bytes_sent += size_bytes
        kind = getattr(message, "kind", None)
        if type(kind) is not str:
            kind = type(message).__name__
        extra_ns = 0
        if link.faulted:
            extra_ns = self._apply_faults(link, message, kind, size_bytes)
            if extra_ns == _CONSUMED:
                return
        # From here on, this is ``_transmit_copy`` inlined: the hot path saves a call per message.
        random = self._random
        if link.loss_probability and random() < link.loss_probability:
            link.dropped_loss += 1
        else:
            now = self.kernel.now_ns
            in_flight = link.in_flight
            while in_flight and in_flight[0].time_ns <= now:
                in_flight.popleft()
            if len(in_flight) >= link.capacity and not self._make_room(link, now):
                link.dropped_queue_full += 1
            else:
                if link.uniform_span_ns >= 0:
                    time_ns = int(link.uniform_low_ns + link.uniform_span_ns * random()) + extra_ns
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
                in_flight.append(self._call_at(time_ns, link.deliver, source, message,
                                               owner=link.destination_node, kind="deliver",
                                               detail=(source, destination, kind)))
                link.scheduled += 1
        if link.duplicate_probability and random() < link.duplicate_probability:
            link.duplicated += 1
            self._transmit_copy(link, message, kind, size_bytes, extra_ns)

    def _transmit(self, link: _Link, message: Any, kind: str, size_bytes: int, extra_ns: int) -> None:
        """The walk of a message that passed the faults (``send`` inlines this: keep them alike)."""
        # From here on, this is ``_transmit_copy`` inlined: the hot path saves a call per message.
        random = self._random
        if link.loss_probability and random() < link.loss_probability:
            link.dropped_loss += 1
        else:
            now = self.kernel.now_ns
            in_flight = link.in_flight
            while in_flight and in_flight[0].time_ns <= now:
                in_flight.popleft()
            if len(in_flight) >= link.capacity and not self._make_room(link, now):
                link.dropped_queue_full += 1
            else:
                if link.uniform_span_ns >= 0:
                    time_ns = int(link.uniform_low_ns + link.uniform_span_ns * random()) + extra_ns
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
                in_flight.append(self._call_at(time_ns, link.deliver, source, message,
                                               owner=link.destination_node, kind="deliver",
                                               detail=(source, destination, kind)))
                link.scheduled += 1
        if link.duplicate_probability and random() < link.duplicate_probability:
            link.duplicated += 1
            self._transmit_copy(link, message, kind, size_bytes, extra_ns)

    def _transmit_copy(self, link: _Link, message: Any, kind: str, size_bytes: int,
                       extra_ns: int) -> None:
        if link.loss_probability and self._random() < link.loss_probability:
            link.dropped_loss += 1
            return
        now = self.kernel.now_ns
        in_flight = link.in_flight
        while in_flight and in_flight[0].time_ns <= now:
            in_flight.popleft()
        if len(in_flight) >= link.capacity and not self._make_room(link, now):
            link.dropped_queue_full += 1
            return
        time_ns = link.draw_delay_ns() + extra_ns
        if link.ns_per_byte:
            start = link.busy_until_ns if link.busy_until_ns > now else now
            link.busy_until_ns = now = start + int(size_bytes * link.ns_per_byte)
        time_ns += now
        if link.reorder_probability and self._random() < link.reorder_probability:
            link.reordered += 1
            time_ns += int(self._random() * link.reorder_delay_ns)
        elif time_ns < link.last_delivery_ns:
            time_ns = link.last_delivery_ns
        else:
            link.last_delivery_ns = time_ns
        source = link.source
        in_flight.append(self._call_at(time_ns, link.deliver, source, message,
                                       owner=link.destination_node, kind="deliver",
                                       detail=(source, link.destination, kind)))
        link.scheduled += 1

    def _make_room(self, link: _Link, now_ns: int) -> bool:
        """Forget delivered and cancelled timers (reordering leaves some behind the head)."""
        if now_ns < link.full_until_ns:
            return False
        pending = [timer for timer in link.in_flight if timer.time_ns > now_ns and not timer.cancelled]
        pending.sort(key=_time_of)  # stable: equal times keep their sending order
        link.in_flight = deque(pending)
        if len(pending) < link.capacity:
            return True
        link.full_until_ns = pending[0].time_ns  # no room before the earliest copy lands
        return False

    def _apply_faults(self, link: _Link, message: Any, kind: str, size_bytes: int) -> int:
        """Cuts, gray rules and clogs. The extra delay to add, or _CONSUMED if dropped or held."""
        if link.cut:
            link.dropped_partition += 1
            return _CONSUMED
        extra_ns = 0
        now = self.kernel.now_ns
        for rule in link.gray:
            if rule.applies(now, kind):
                if self.rng.chance(rule.spec.drop_probability):
                    link.dropped_gray += 1
                    return _CONSUMED
                extra_ns += rule.extra_delay_ns
        if link.clog_depth:
            if len(link.held) >= link.capacity:
                link.dropped_queue_full += 1
            else:
                link.held.append((message, kind, size_bytes, extra_ns))
                link.clogged_held += 1
            return _CONSUMED
        return extra_ns

    # -- links ------------------------------------------------------------------------------------
    def _new_link(self, source: str, destination: str) -> _Link:
        source_node, destination_node = self._node(source), self._node(destination)
        link = _Link(source_node, destination_node)
        link.configure(self._overrides.get((source, destination), self._defaults), self.rng)
        self._links.setdefault(source, {})[destination] = link
        self._refresh(link)
        return link

    def _link(self, source: str, destination: str) -> _Link:
        link = self._links.get(source, {}).get(destination)
        return link if link is not None else self._new_link(source, destination)

    def _node(self, name: str) -> Node:
        node = self.world.nodes.get(name)
        if node is None:
            raise ValueError(f"unknown node {name!r}; known nodes are {sorted(self.world.nodes)}")
        return node

    def _all_links(self) -> list[_Link]:
        return [link for by_destination in self._links.values() for link in by_destination.values()]

    def configure_link(self, source: str, destination: str, config: LinkConfig) -> None:
        """Give the link source→destination its own config (messages already sent keep their fate)."""
        if not isinstance(config, LinkConfig):
            raise TypeError(f"configure_link needs a LinkConfig, got {config!r}")
        self._overrides[(source, destination)] = config
        self._link(source, destination).configure(config, self.rng)

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
                link.configure(config, self.rng)

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

    def _refresh(self, link: _Link) -> None:
        faults = self._faults.values()
        link.cut = any(isinstance(f, Cut) and f.cuts(link.source_node, link.destination_node)
                       for f in faults)
        link.gray = tuple(f for f in faults
                          if isinstance(f, GrayRule) and f.matches_link(link.source, link.destination))
        link.faulted = link.cut or bool(link.gray) or link.clog_depth > 0

    def _drop_on_cut(self, link: _Link) -> None:
        """A cut loses what is on the link: copies in flight and messages held by a clog."""
        now = self.kernel.now_ns
        for timer in link.in_flight:
            if timer.time_ns > now and not timer.cancelled:
                timer.cancel()
                link.cancelled += 1
                link.dropped_partition += 1
        link.in_flight.clear()
        link.full_until_ns = 0
        link.dropped_partition += len(link.held)
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
        link.faulted = True

    def unclog_link(self, source: str, destination: str) -> None:
        """Undo one ``clog_link``; when none is left, send the held messages on, in order."""
        link = self._link(source, destination)
        if link.clog_depth:
            link.clog_depth -= 1
            if not link.clog_depth:
                self._release(link)

    def _release(self, link: _Link) -> None:
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
        _check("swizzle_clog", "interval_ms", interval_ms, _is_number(interval_ms) and interval_ms > 0,
               "a finite number > 0")
        names = sorted(self.world.nodes)
        order = [(a, b) for a in names for b in names if a != b and (a in group or b in group)]
        self.rng.shuffle(order)
        interval_ns = int(interval_ms * 1e6)
        swizzle = SwizzleClog(self, self._take_fault_id(), f"swizzle clog {sorted(group)}", order,
                              self.kernel.now_ns, interval_ns)
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
        """Totals over all links, plus ``links``: the same counters for each link that carried traffic."""
        now = self.kernel.now_ns
        links = {f"{link.source}->{link.destination}": link.counters(now)
                 for link in sorted(self._all_links(), key=_link_key) if link.messages_sent}
        totals: dict[str, Any] = {name: sum(counts[name] for counts in links.values())
                                  for name in _COUNTERS}
        totals["links"] = links
        return totals


def _time_of(timer: Timer) -> int:
    return timer.time_ns


def _link_key(link: _Link) -> tuple[str, str]:
    return link.source, link.destination
