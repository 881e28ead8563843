"""Links: how one directed link between two nodes behaves (``LinkConfig``) and what it remembers.

Theory of operation. A link is one direction between two nodes. ``LinkConfig`` is its hardware, as data:
a delay distribution, loss, duplication and reordering chances, a bandwidth and a queue capacity.
``LinkState`` is the network's bookkeeping for one link: the config compiled into what ``send`` needs
(a delay sampler, nanosecond constants), the time of its last FIFO delivery, until when it is busy
serializing, its delivery timers still in flight, its fault flags and its counters. Every attribute is
a slot, because the network reads and writes them for every message.

Delays. Each distribution draws a one-way delay that always lies in [delay_ms_min, delay_ms_max]:
- ``constant``: always the mean (``delay_ms_mean``, or the midpoint of min and max when unset);
- ``uniform``: uniform between min and max;
- ``exponential``: min plus an exponential draw, so that the mean is the mean; cut at max;
- ``lognormal``: a lognormal draw with that mean and ``delay_lognormal_sigma``, clamped to [min, max].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.params import param, spec_of
from harness.scheduler import Timer

if TYPE_CHECKING:
    from harness.network_faults import GrayRule
    from harness.node import Node
    from harness.rng import Rng

__all__ = ["LinkConfig", "LinkProfile", "LinkState", "message_type", "message_size", "DELAY_DISTRIBUTIONS",
           "COUNTERS", "validate_fields"]

DELAY_DISTRIBUTIONS = ("constant", "uniform", "exponential", "lognormal")
DEFAULT_MESSAGE_SIZE_BYTES = 128
PRUNE_BATCH = 64  # a link forgets its delivered copies at most once per this many copies sent
COUNTERS = ("messages_sent", "delivered", "dropped_loss", "dropped_partition", "dropped_gray",
            "dropped_queue_full", "duplicated", "reordered", "bytes_sent", "clogged_held",
            "in_flight", "held", "corrupted")


def validate_fields(instance: Any, integer_fields: tuple[str, ...] = (),
                    text_fields: tuple[str, ...] = ()) -> None:
    """Check each field against its ``param`` spec: a ValueError names the field, value and rule.

    Fields with choices must hold one of them; ``text_fields`` are left to the caller; a field whose
    default is None may be None; every other field must be a finite number (an integer if listed in
    ``integer_fields``) within its bounds.
    """
    name = type(instance).__name__
    for field in dataclasses.fields(instance):
        value, spec = getattr(instance, field.name), spec_of(field)
        if field.name in text_fields or (value is None and field.default is None):
            continue
        if spec.choices is not None:
            if spec.check(value) is not None:
                raise ValueError(f"{name}.{field.name} = {value!r} is not allowed: it must be "
                                 f"{spec.allowed()}")
            continue
        integer = field.name in integer_fields
        wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
        if wrong_type or not math.isfinite(value) or spec.check(value) is not None:
            kind = "an integer" if integer else "a finite number"
            raise ValueError(f"{name}.{field.name} = {value!r} is not allowed: it must be {kind} "
                             f"{spec.allowed()}")


@dataclasses.dataclass(frozen=True, slots=True)
class LinkConfig:
    """How one directed link behaves when no fault touches it. Every delay lies in [min, max]."""

    delay_distribution: str = param("shape of the one-way delay", "uniform",
                                    choices=DELAY_DISTRIBUTIONS)
    delay_ms_min: float = param("smallest one-way delay", 0.5, minimum=0)
    delay_ms_max: float = param("largest one-way delay (exponential and lognormal are cut there)",
                                1.5, minimum=0)
    delay_ms_mean: float | None = param("mean delay, and the constant delay; omit for the midpoint "
                                        "of delay_ms_min and delay_ms_max", None, minimum=0)
    delay_lognormal_sigma: float = param("spread of a lognormal delay (sigma of its logarithm)", 0.5,
                                         minimum=0, exclusive_minimum=True)
    loss_probability: float = param("chance each copy of a message is lost", 0.0,
                                    minimum=0, maximum=1)
    duplicate_probability: float = param("chance a message is delivered twice", 0.0,
                                         minimum=0, maximum=1)
    reorder_probability: float = param("chance a copy leaves FIFO order, with an extra delay", 0.0,
                                       minimum=0, maximum=1)
    reorder_delay_ms_max: float = param("a reordered copy's extra delay is uniform in [0, this]",
                                        5.0, minimum=0)
    bandwidth_bytes_per_s: int = param("serialization rate (size / bandwidth per message); "
                                       "0 = unlimited", 0, minimum=0)
    queue_capacity_messages: int = param("copies in flight (and, separately, held by a clog) on "
                                         "the link; more are dropped", 100_000, minimum=1)

    def __post_init__(self) -> None:
        validate_fields(self, ("bandwidth_bytes_per_s", "queue_capacity_messages"))
        low, high, mean = self.delay_ms_min, self.delay_ms_max, self.delay_ms_mean
        if high < low:
            raise ValueError(f"LinkConfig.delay_ms_max = {high!r} is not allowed: it must be >= "
                             f"delay_ms_min ({low!r})")
        if mean is not None and not low <= mean <= high:
            raise ValueError(f"LinkConfig.delay_ms_mean = {mean!r} is not allowed: it must be None or "
                             f"within [delay_ms_min, delay_ms_max] = [{low!r}, {high!r}]")
        if self.delay_distribution == "lognormal" and self.mean_delay_ms <= 0:
            raise ValueError(f"LinkConfig.delay_ms_mean = {mean!r} is not allowed: a lognormal delay "
                             f"needs a mean > 0 (set delay_ms_mean or delay_ms_max above 0)")

    @property
    def mean_delay_ms(self) -> float:
        """``delay_ms_mean``, or the midpoint of min and max when it is unset."""
        if self.delay_ms_mean is not None:
            return self.delay_ms_mean
        return (self.delay_ms_min + self.delay_ms_max) / 2


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


def delay_sampler(config: LinkConfig, rng: Rng) -> Callable[[], int]:
    """A function drawing one delay in integer nanoseconds (see the module docstring)."""
    low, high, mean = config.delay_ms_min * 1e6, config.delay_ms_max * 1e6, config.mean_delay_ms * 1e6
    distribution = config.delay_distribution
    if distribution == "constant" or (distribution == "exponential" and mean <= low):
        constant = int(mean)
        return lambda: constant
    if distribution == "uniform":
        span, random = high - low, rng.random
        return lambda: int(low + span * random())
    if distribution == "exponential":
        rate, exponential = 1.0 / (mean - low), rng.expovariate
        return lambda: int(min(low + exponential(rate), high))
    sigma = config.delay_lognormal_sigma
    mu, lognormal = math.log(mean) - sigma * sigma / 2, rng.lognormvariate  # so that E[X] = mean
    return lambda: int(min(max(lognormal(mu, sigma), low), high))


@dataclasses.dataclass(frozen=True, slots=True)
class LinkProfile:
    """A ``LinkConfig`` compiled into the constants ``send`` reads, made once per config and shared by
    its links: however many links there are, ``send`` then reads the same few objects, which stay
    in the CPU's cache."""

    config: LinkConfig
    draw_delay_ns: Callable[[], int]  # see ``delay_sampler``
    uniform_low_ns: float  # a uniform delay is drawn inline by ``send``, without a call
    uniform_span_ns: float  # -1.0 when the distribution is not uniform
    reorder_delay_ns: int  # a reordered copy's largest extra delay
    ns_per_byte: float  # serialization time per byte; 0.0 for unlimited bandwidth
    plain: bool  # the delay is the only draw and nothing is serialized: ``send``'s short path

    @classmethod
    def of(cls, config: LinkConfig, rng: Rng) -> LinkProfile:
        uniform = config.delay_distribution == "uniform"
        bandwidth = config.bandwidth_bytes_per_s
        ns_per_byte = 1e9 / bandwidth if bandwidth else 0.0
        plain = (uniform and not config.loss_probability and not config.duplicate_probability
                 and not config.reorder_probability and not ns_per_byte)
        return cls(config, delay_sampler(config, rng), config.delay_ms_min * 1e6,
                   (config.delay_ms_max - config.delay_ms_min) * 1e6 if uniform else -1.0,
                   int(config.reorder_delay_ms_max * 1e6), ns_per_byte, plain)


class LinkState:
    """The network's state for one directed link (see the module docstring)."""

    # Slots are laid out in this order: what ``send`` reads for every message comes first, so that
    # it shares a few cache lines (with thousands of links, most sends find their link out of
    # cache), and the two that a delivery reads come first of all, in the object's first line.
    # (36 slots make a 320-byte block, which CPython's allocator aligns to a cache line; a 37th
    # would cost a miss in many sends.)
    __slots__ = ("in_flight", "destination_node", "fast", "messages_sent", "bytes_sent", "prune_at",
                 "last_delivery_ns", "uniform_low_ns", "uniform_span_ns",
                 "loss_probability", "ns_per_byte", "reorder_probability", "source", "destination",
                 "duplicate_probability", "plain", "faulted",
                 "source_node", "draw_delay_ns", "reorder_delay_ns", "capacity",
                 "busy_until_ns", "full_until_ns", "cut", "gray", "clog_depth", "held",
                 "dropped_loss", "dropped_partition", "dropped_gray", "dropped_queue_full",
                 "duplicated", "reordered", "clogged_held", "corrupted", "in_flight_head")

    def __init__(self, source_node: Node, destination_node: Node, profile: LinkProfile) -> None:
        self.source, self.destination = source_node.name, destination_node.name
        self.source_node, self.destination_node = source_node, destination_node
        self.last_delivery_ns = self.busy_until_ns = 0  # FIFO floor; end of current serialization
        # Delivery timers in sending order (so in time order, but for reordered copies). Those before
        # ``in_flight_head`` are known delivered, and wait to be compacted away (see
        # ``forget_delivered``). A list, not a deque: an empty list owns no storage, and with
        # thousands of links, most of them have nothing in flight at any moment.
        self.in_flight: list[Timer] = []
        self.in_flight_head = 0  # invariant: < len(in_flight), or 0 when in_flight is empty
        self.faulted = self.cut = False  # faulted: some cut, gray rule or clog applies (slow path)
        self.fast = False  # plain and not faulted: ``send``'s short path (the network keeps it so)
        self.gray: tuple[GrayRule, ...] = ()  # gray rules matching this link, in the order added
        self.clog_depth = 0  # clogs in force; held messages go on when it returns to 0
        self.held: list[tuple[Any, str, int, int]] = []  # (message, type, size, extra delay ns)
        self.messages_sent = self.bytes_sent = self.duplicated = self.reordered = 0
        self.dropped_loss = self.dropped_partition = self.dropped_gray = self.dropped_queue_full = 0
        self.clogged_held = self.corrupted = 0
        self.configure(profile)

    def configure(self, profile: LinkProfile) -> None:
        """Take on a config, compiled. Messages in flight keep their fate.

        The constants are copied into slots (``send`` reads them for every message), but they are
        the profile's objects, shared by every link with this config.
        """
        config = profile.config  # (not kept: ``Network.link_config`` tells a link's config)
        self.draw_delay_ns = profile.draw_delay_ns
        self.uniform_low_ns = profile.uniform_low_ns
        self.uniform_span_ns = profile.uniform_span_ns
        self.loss_probability = config.loss_probability
        self.duplicate_probability = config.duplicate_probability
        self.reorder_probability = config.reorder_probability
        self.reorder_delay_ns = profile.reorder_delay_ns
        self.ns_per_byte = profile.ns_per_byte
        self.plain = profile.plain
        self.fast = self.plain and not self.faulted
        self.capacity = config.queue_capacity_messages
        self.full_until_ns = 0  # while full: no copy lands before this time, so refuse without looking
        self.prune_at = min(self.capacity, PRUNE_BATCH)  # look at in_flight when it gets this long

    def forget_delivered(self, now_ns: int) -> None:
        """Forget the timers at the head of ``in_flight`` that are delivered by ``now_ns``.

        They are skipped by moving ``in_flight_head``, and compacted away once they make up half
        the list, so that forgetting costs O(1) amortized however long the queue (deleting a list's
        first item costs O(n)). A reordered copy at the head can hide delivered ones behind it;
        ``make_room`` deals with those.
        """
        in_flight = self.in_flight
        head, end = self.in_flight_head, len(in_flight)
        while head < end and in_flight[head].time_ns <= now_ns:
            head += 1
        if head == end:
            in_flight.clear()
            head = 0
        elif head * 2 >= end:
            del in_flight[:head]
            head = 0
        self.in_flight_head = head

    def make_room(self, now_ns: int) -> bool:
        """Forget delivered timers; True if one more copy fits within ``queue_capacity_messages``.

        Called only when ``in_flight`` reaches ``prune_at``, which keeps ``send`` cheap. A reordered
        copy at the head can hide delivered ones behind it, so before refusing a copy the whole queue
        is filtered and sorted again (stably: equal times keep their sending order).
        """
        self.forget_delivered(now_ns)
        in_flight = self.in_flight
        if len(in_flight) - self.in_flight_head >= self.capacity:
            if now_ns < self.full_until_ns:
                return False
            pending = [timer for timer in in_flight if timer.time_ns > now_ns and not timer.cancelled]
            pending.sort(key=_time_of)
            in_flight[:] = pending  # in place: the caller holds this list
            self.in_flight_head = 0
            if len(pending) >= self.capacity:
                self.full_until_ns = pending[0].time_ns
                return False
        self.prune_at = min(self.capacity, len(in_flight) + PRUNE_BATCH)
        return True

    def cancel_in_flight(self, now_ns: int) -> int:
        """Cancel every copy still on the way (a cut); how many there were."""
        pending = [timer for timer in self.in_flight if timer.time_ns > now_ns and not timer.cancelled]
        for timer in pending:
            timer.cancel()
        self.in_flight.clear()
        self.in_flight_head = 0
        self.full_until_ns = 0
        return len(pending)

    def count_in_flight(self, now_ns: int) -> int:
        return sum(1 for timer in self.in_flight if timer.time_ns > now_ns and not timer.cancelled)

    def counters(self, now_ns: int) -> dict[str, int]:
        """This link's counters as plain data, keyed as ``COUNTERS``."""
        in_flight, held = self.count_in_flight(now_ns), len(self.held)
        dropped = (self.dropped_loss + self.dropped_partition + self.dropped_gray
                   + self.dropped_queue_full)
        # Every copy ends in exactly one bucket, so delivered copies need no counter on the hot path.
        delivered = self.messages_sent + self.duplicated - dropped - held - in_flight
        values = {"delivered": delivered, "in_flight": in_flight, "held": held}
        return {name: values[name] if name in values else getattr(self, name) for name in COUNTERS}


def _time_of(timer: Timer) -> int:
    return timer.time_ns
