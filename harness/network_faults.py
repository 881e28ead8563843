"""Network faults in force: the rules the network consults, each one a handle that can ``heal()``.

Theory of operation. ``Network`` creates these; users hold them. A ``Cut`` (partition, one-way
partition, AZ isolation) decides which links carry nothing. A ``GrayRule`` is a ``GrayLink`` in force:
it drops or slows matching messages on one direction, maybe only one message type, maybe flapping on
and off. A ``SwizzleClog`` is FoundationDB's swizzle: links clogged one at a time, then unclogged in
reverse order, by kernel events it scheduled itself. Every handle has a ``fault_id`` and ``heal()``,
which removes the fault from the network (healing twice does nothing).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from harness.link import validate_fields
from harness.params import param
from harness.scheduler import Timer

if TYPE_CHECKING:
    from harness.network import Network
    from harness.node import Node

__all__ = ["GrayLink", "NetworkFault", "Cut", "GrayRule", "SwizzleClog"]


@dataclasses.dataclass(frozen=True, slots=True)
class GrayLink:
    """A gray failure on source→destination only: drop or slow (some) messages, maybe flapping."""

    source: str = param("sending node, or '*' for any")
    destination: str = param("receiving node, or '*' for any")
    message_type: str | None = param("only messages of this type (their ``kind``, else their class "
                                     "name); None = every type", None)
    drop_probability: float = param("chance a matching message is dropped (1 = black hole)", 1.0,
                                    minimum=0, maximum=1)
    extra_delay_ms: float = param("delay added to matching messages that survive (slow but alive)",
                                  0.0, minimum=0)
    flap_period_ms: float = param("the rule is on, then off, in cycles of this length measured from "
                                  "when it was added; 0 = always on", 0.0, minimum=0)
    flap_duty: float = param("fraction at the start of each cycle during which the rule is on", 0.5,
                             minimum=0, maximum=1)
    corrupt_probability: float = param("chance a matching message that gets through is corrupted in "
                                       "flight (its ``corrupted(rng)`` copy, or a flipped bit of "
                                       "bytes); its checksum, if any, is left as it was", 0.0,
                                       minimum=0, maximum=1)

    def __post_init__(self) -> None:
        for field in ("source", "destination", "message_type"):
            value = getattr(self, field)
            if field == "message_type" and value is None:
                continue
            if not isinstance(value, str) or not value:
                allowed = "None or a message type name" if field == "message_type" else "a node or '*'"
                raise ValueError(f"GrayLink.{field} = {value!r} is not allowed: it must be {allowed}")
        validate_fields(self, text_fields=("source", "destination", "message_type"))


class NetworkFault:
    """A handle on one network fault in force. ``heal()`` removes it; healing twice does nothing."""

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
    """Links that carry nothing: sources × destinations (and back if symmetric), or an AZ's edges."""

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
    """A ``GrayLink`` in force since ``added_at_ns`` (true time; its flapping is measured from then)."""

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
        """True if a message of type ``kind`` sent now is subject to this rule."""
        if self.spec.message_type is not None and self.spec.message_type != kind:
            return False
        return not self.period_ns or (now_ns - self.added_at_ns) % self.period_ns < self.on_ns


class SwizzleClog(NetworkFault):
    """FoundationDB's swizzle: clog links one by one, then unclog them in reverse order, by itself.

    Link ``order[i]`` clogs at ``started_at_ns + i * interval`` and unclogs at
    ``started_at_ns + (2 * len(order) - 1 - i) * interval``; the last unclog is at ``finishes_at_ns``,
    after which the swizzle is no longer active.
    """

    __slots__ = ("order", "started_at_ns", "finishes_at_ns", "clogged", "steps")

    def __init__(self, network: Network, fault_id: int, description: str,
                 order: list[tuple[str, str]], started_at_ns: int, interval_ns: int) -> None:
        super().__init__(network, fault_id, description)
        self.order = order
        self.started_at_ns = started_at_ns
        self.finishes_at_ns = started_at_ns + max(2 * len(order) - 1, 0) * interval_ns
        self.clogged: list[tuple[str, str]] = []  # links this swizzle holds clogged, in clog order
        self.steps: list[Timer] = []  # its scheduled clog and unclog events
