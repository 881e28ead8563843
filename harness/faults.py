"""Faults as data: one frozen dataclass per fault kind, with units in field names.

Theory of operation. A fault is a value. ``apply(world)`` makes it take effect and returns an ``Undo``
(a callable that reverses it) or None when there is nothing to reverse (a crash is undone by a later
restart, not by time). A fault with ``duration_s`` set is undone by the timeline after that long. Every
fault kind has a YAML spelling: its ``kind`` (``crash``, ``gray_link``…) and its fields.

Families: network (partitions, one-way partitions, AZ isolation, gray links, swizzle-clogging, link
degradation), process (crash, restart, pause, power-off of a node or an AZ: power losses stack, a node
stays off until the last one covering it ends; see ``harness/node.py``), disk (fail-slow, torn
writes, bit-rot, misdirected writes, disk full, wipe), clock (skew, drift, jump) and deployment
(deploy, rollback: ``harness/deploy.py``).

Overlapping faults on one target compose; none ends another early. Power losses and pauses hold the
node down (or stalled) until the last of them ends. A crash or restart of a node that is already
down (crashed or without power) is skipped and logged: the fault that took it down decides when it
comes back. Conditions a fault sets (a disk's latency multiplier, its torn-write, read-corruption
and misdirected-write probabilities, a clock's drift, a degraded link's config) are held per fault
(``_hold``): while several hold, the most severe applies (for a drift or a link config, the newest),
and when the last ends the value from before the first returns.

``FAULT_KINDS`` maps each YAML name to its class; the scenario loader and the fuzzer use it.

Node fields accept a node's name or a selector that the system under test resolves when the fault
strikes (``leader(0)``: whichever node leads partition 0 then; see ``World.resolve``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.network import GrayLink, LinkConfig
from harness.params import param

from harness.node import NodeState

if TYPE_CHECKING:
    from harness.node import Node
    from harness.world import World

__all__ = ["Fault", "FAULT_KINDS", "Undo"] + [
    "Partition", "OneWayPartition", "IsolateAz", "GrayLinkFault", "SwizzleClog", "DegradeLink",
    "Crash", "Restart", "Pause", "PowerOff", "PowerOffAz",
    "DiskFailSlow", "TornWrites", "BitRotAtRest", "BitRotOnRead", "MisdirectedWrites", "DiskFull",
    "WipeDisk", "ClockSkew", "ClockDrift", "ClockJump",
]

Undo = Callable[[], None]

_DURATION_DOC = "how long the fault lasts before it is undone; omit to last until the heal phase"


class Fault:
    """Base of all faults. Subclasses are frozen dataclasses with a ``kind`` and ``apply``."""

    kind: ClassVar[str]
    family: ClassVar[str]
    duration_s: float | None

    def apply(self, world: World) -> Undo | None:
        raise NotImplementedError

    def describe(self) -> str:
        """``crash(node=n1, duration_s=2)``: the fields that differ from their defaults."""
        parts = []
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if value is None or value == () or value == item.default:
                continue
            if isinstance(value, float):
                value = f"{value:g}"
            elif isinstance(value, tuple):
                value = "[" + ", ".join(map(str, value)) + "]"
            parts.append(f"{item.name}={value}")
        return f"{self.kind}({', '.join(parts)})"


# -- network -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Partition(Fault):
    """Cut all links between two groups of nodes, both ways."""

    kind: ClassVar[str] = "partition"
    family: ClassVar[str] = "network"
    side_a: tuple[str, ...] = param("nodes on one side", ref="node")
    side_b: tuple[str, ...] = param("nodes on the other side; empty means every other node", (),
                                    ref="node")
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        side_a = [world.resolve(name) for name in self.side_a]
        side_b = ([world.resolve(name) for name in self.side_b] or
                  [name for name in world.node_names() if name not in side_a])
        both = sorted(set(side_a) & set(side_b))
        if both:  # selectors naming the same node as a name on the other side, at this moment
            from harness.world import UnresolvedTarget

            raise UnresolvedTarget(f"{', '.join(both)} would be on both sides of the partition "
                                   f"now; the fault is skipped")
        return world.network.partition(side_a, side_b).heal


@dataclass(frozen=True, slots=True)
class OneWayPartition(Fault):
    """Drop every message from the sources to the destinations; the other direction still works."""

    kind: ClassVar[str] = "one_way_partition"
    family: ClassVar[str] = "network"
    sources: tuple[str, ...] = param("nodes whose messages are dropped", ref="node")
    destinations: tuple[str, ...] = param("nodes that stop hearing the sources", ref="node")
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        return world.network.partition_one_way([world.resolve(n) for n in self.sources],
                                               [world.resolve(n) for n in self.destinations]).heal


@dataclass(frozen=True, slots=True)
class IsolateAz(Fault):
    """Cut every link between an availability zone and the other zones."""

    kind: ClassVar[str] = "isolate_az"
    family: ClassVar[str] = "network"
    az: str = param("the availability zone to isolate", ref="az")
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        return world.network.isolate_az(self.az).heal


@dataclass(frozen=True, slots=True)
class GrayLinkFault(Fault):
    """A gray link: one direction only, optionally one message type, dropping, slow, flapping or
    corrupting messages in flight (``drop_probability: 0`` with ``corrupt_probability``)."""

    kind: ClassVar[str] = "gray_link"
    family: ClassVar[str] = "network"
    source: str = param("sending node, or '*' for any", ref="node")
    destination: str = param("receiving node, or '*' for any", ref="node")
    message_type: str | None = param("only messages of this type; omit for all types", None)
    drop_probability: float = param("chance each matching message is dropped (1 = black hole)", 1.0,
                                    minimum=0, maximum=1)
    extra_delay_ms: float = param("added delay on matching messages (slow but alive)", 0.0, minimum=0)
    flap_period_ms: float = param("the rule switches on and off with this period; 0 = always on", 0.0,
                                  minimum=0)
    flap_duty: float = param("fraction of each flap period during which the rule is on", 0.5,
                             minimum=0, maximum=1)
    corrupt_probability: float = param("chance each matching message that gets through is corrupted "
                                       "in flight (checksums, if any, are not updated)", 0.0,
                                       minimum=0, maximum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        rule = GrayLink(source=_resolve(world, self.source),
                        destination=_resolve(world, self.destination),
                        message_type=self.message_type, drop_probability=self.drop_probability,
                        extra_delay_ms=self.extra_delay_ms, flap_period_ms=self.flap_period_ms,
                        flap_duty=self.flap_duty, corrupt_probability=self.corrupt_probability)
        return world.network.add_gray_link(rule).heal


@dataclass(frozen=True, slots=True)
class SwizzleClog(Fault):
    """FoundationDB's swizzle: clog the nodes' links one by one, then unclog them in reverse order."""

    kind: ClassVar[str] = "swizzle_clog"
    family: ClassVar[str] = "network"
    nodes: tuple[str, ...] = param("nodes whose links are clogged", ref="node")
    interval_ms: float = param("time between clogging (and later unclogging) two links", 100.0,
                               minimum=0, exclusive_minimum=True)
    duration_s: float | None = None  # a swizzle runs its own course (clog all, then unclog all)

    def apply(self, world: World) -> None:
        world.network.swizzle_clog([world.resolve(name) for name in self.nodes], self.interval_ms)


@dataclass(frozen=True, slots=True)
class DegradeLink(Fault):
    """Change one directed link's delay and loss (a congested or lossy path)."""

    kind: ClassVar[str] = "degrade_link"
    family: ClassVar[str] = "network"
    source: str = param("sending node", ref="node")
    destination: str = param("receiving node", ref="node")
    delay_ms_min: float = param("smallest one-way delay", 1.0, minimum=0)
    delay_ms_max: float = param("largest one-way delay", 10.0, minimum=0)
    loss_probability: float = param("chance each message is lost", 0.0, minimum=0, maximum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        network = world.network
        source, destination = world.resolve(self.source), world.resolve(self.destination)
        degraded = LinkConfig(delay_distribution="uniform", delay_ms_min=self.delay_ms_min,
                              delay_ms_max=max(self.delay_ms_min, self.delay_ms_max),
                              loss_probability=self.loss_probability)
        return _hold(world.node(source), f"link->{destination}", degraded,
                     lambda: network.link_config(source, destination),
                     lambda config: network.configure_link(source, destination, config),
                     newest=True)


def _resolve(world: World, name: str) -> str:
    return name if name == "*" else world.resolve(name)


# -- process ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Crash(Fault):
    """Crash a node's process: volatile state is lost, and so is every unsynced disk write.

    Skipped on a node already down (without power, or crashed): whatever took it down decides when
    it comes back."""

    kind: ClassVar[str] = "crash"
    family: ClassVar[str] = "process"
    node: str = param("the node to crash", ref="node")
    duration_s: float | None = param("restart the node after this long; omit to leave it down "
                                     "until the heal phase", None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = _running(world, self.node, "crash")
        node.crash()
        return node.start


@dataclass(frozen=True, slots=True)
class Restart(Fault):
    """Crash a node and start it again at once; it recovers from what its disk durably holds.

    Skipped on a node that is down (without power, or crashed): a restart never powers a node on,
    nor cuts short another fault's crash."""

    kind: ClassVar[str] = "restart"
    family: ClassVar[str] = "process"
    node: str = param("the node to restart", ref="node")
    duration_s: float | None = None

    def apply(self, world: World) -> None:
        _running(world, self.node, "restart").restart()


@dataclass(frozen=True, slots=True)
class Pause(Fault):
    """Stall a node (a garbage-collection pause): no message or timer reaches it until it resumes."""

    kind: ClassVar[str] = "pause"
    family: ClassVar[str] = "process"
    node: str = param("the node to pause", ref="node")
    duration_s: float | None = param("how long the pause lasts", 1.0, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        hold = object()  # overlapping pauses: the node resumes when the last one ends
        node.pause(hold)
        return lambda: node.resume(hold)


@dataclass(frozen=True, slots=True)
class PowerOff(Fault):
    """Cut a node's power: as a crash, and it stays off until powered on.

    Power losses stack: a node comes back only when the last one covering it (its own, its AZ's)
    ends."""

    kind: ClassVar[str] = "power_off"
    family: ClassVar[str] = "process"
    node: str = param("the node to power off", ref="node")
    duration_s: float | None = param("power on again after this long; omit to stay off until the "
                                     "heal phase", None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        return _cut_power([world.node(self.node)])


@dataclass(frozen=True, slots=True)
class PowerOffAz(Fault):
    """Cut the power of every node in an availability zone.

    Each node comes back when the zone's power returns, unless another power loss still covers it."""

    kind: ClassVar[str] = "power_off_az"
    family: ClassVar[str] = "process"
    az: str = param("the availability zone to power off", ref="az")
    duration_s: float | None = param("power on again after this long; omit to stay off until the "
                                     "heal phase", None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        return _cut_power(world.nodes_in_az(self.az))


def _cut_power(nodes: list[Node]) -> Undo:
    """Power the nodes off under a hold of this fault's own; the undo releases it (once), and each
    node boots only if no other power loss still holds it off (``Node.power_off``)."""
    hold = object()
    for node in nodes:
        node.power_off(hold)
    released = False

    def power_on() -> None:
        nonlocal released
        if not released:
            released = True
            for node in nodes:
                node.power_on(hold)

    return power_on


def _running(world: World, name: str, what: str) -> Node:
    """The node, unless it is down: a crash or restart of a machine without power, or of a crashed
    process, is skipped (logged as such). The fault that took it down brings it back (its power
    returns, its crash's duration ends); a second crash must not restart it early."""
    node = world.node(name)
    if node.power_holds or node.state != NodeState.RUNNING:
        from harness.world import UnresolvedTarget

        why = "powered off" if node.power_holds else "down (crashed)"
        raise UnresolvedTarget(f"{node.name} is {why}; the {what} is skipped")
    return node


def _hold(node: Node, condition: str, value: Any, read: Callable[[], Any],
          write: Callable[[Any], None], *, newest: bool = False) -> Undo:
    """Hold ``condition`` of ``node`` at ``value`` while this fault lasts. Overlapping holds of one
    condition compose: the largest value applies (the slowest disk, the likeliest corruption), or,
    with ``newest``, the latest still held (a clock's signed drift rate); when the last ends, the
    value read before the first one struck returns. So a x10 slow disk from 0 to 10 s and a x50
    one from 5 to 12 s give x10, then x50 until 12 s, then a healthy disk."""
    held = node.fault_holds.get(condition)
    if held is None:
        held = node.fault_holds[condition] = (read(), {})
    before, holds = held
    token = object()
    holds[token] = value

    def effective() -> Any:
        if not holds:
            return before
        return list(holds.values())[-1] if newest else max(holds.values())

    write(effective())

    def undo() -> None:
        if holds.pop(token, None) is None:
            return
        write(effective())
        if not holds:
            del node.fault_holds[condition]

    return undo


# -- disk --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DiskFailSlow(Fault):
    """Make a node's disk slow (fail-slow): every operation's latency is multiplied."""

    kind: ClassVar[str] = "disk_fail_slow"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose disk slows down", ref="node")
    latency_multiplier: float = param("factor applied to every disk latency", 10.0, minimum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        disk = node.disk
        return _hold(node, "disk.latency_multiplier", self.latency_multiplier,
                     lambda: disk.latency_multiplier, disk.fail_slow)


@dataclass(frozen=True, slots=True)
class TornWrites(Fault):
    """On the node's next crash or power loss, each unsynced sector may or may not have been written."""

    kind: ClassVar[str] = "torn_writes"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose disk tears writes", ref="node")
    sector_lost_probability: float = param("chance each unsynced sector is lost at a crash", 0.5,
                                           minimum=0, maximum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        disk = node.disk

        def tear(probability: float | None) -> None:
            if probability is None:
                disk.disable_torn_writes()
            else:
                disk.enable_torn_writes(probability)

        return _hold(node, "disk.torn_writes", self.sector_lost_probability,
                     lambda: disk.torn_sector_lost_probability, tear)


@dataclass(frozen=True, slots=True)
class BitRotAtRest(Fault):
    """Flip one bit of a file stored on a node's disk (a seed-chosen bit unless an offset is given)."""

    kind: ClassVar[str] = "bit_rot"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose disk rots", ref="node")
    path: str | None = param("the file to corrupt; omit for a seed-chosen file", None)
    offset_bytes: int | None = param("byte to corrupt; omit for a seed-chosen byte", None, minimum=0)
    duration_s: float | None = None  # rot stays; it is data, not a condition

    def apply(self, world: World) -> None:
        disk = world.node(self.node).disk
        path = self.path
        if path is None:
            files = [name for name in disk.list() if disk.size(name) > 0]
            if not files:
                return
            path = world.rng.fork(f"faults/bit_rot/{self.node}").choice(files)
        disk.corrupt_at_rest(path, self.offset_bytes)


@dataclass(frozen=True, slots=True)
class BitRotOnRead(Fault):
    """Reads from a node's disk return a flipped bit with some probability (stored data intact)."""

    kind: ClassVar[str] = "read_corruption"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose reads are corrupted", ref="node")
    probability: float = param("chance each read returns corrupt data", 0.1, minimum=0, maximum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        disk = node.disk
        return _hold(node, "disk.read_corruption", self.probability,
                     lambda: disk.read_corruption_probability, disk.set_read_corruption)


@dataclass(frozen=True, slots=True)
class MisdirectedWrites(Fault):
    """Writes land at the wrong sector with some probability."""

    kind: ClassVar[str] = "misdirected_writes"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose writes go astray", ref="node")
    probability: float = param("chance each write lands at a wrong sector", 0.1, minimum=0, maximum=1)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        disk = node.disk
        return _hold(node, "disk.misdirected_writes", self.probability,
                     lambda: disk.misdirected_write_probability, disk.set_misdirected_writes)


@dataclass(frozen=True, slots=True)
class DiskFull(Fault):
    """Fill a node's disk: writes that need more space fail with ENOSPC."""

    kind: ClassVar[str] = "disk_full"
    family: ClassVar[str] = "disk"
    node: str = param("the node whose disk fills up", ref="node")
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        disk = world.node(self.node).disk
        disk.fill()
        return disk.unfill


@dataclass(frozen=True, slots=True)
class WipeDisk(Fault):
    """Replace a node with a fresh machine: crash it, erase its disk, start it empty."""

    kind: ClassVar[str] = "wipe_disk"
    family: ClassVar[str] = "disk"
    node: str = param("the node to replace", ref="node")
    duration_s: float | None = None

    def apply(self, world: World) -> None:
        node = world.node(self.node)
        was_up = node.is_up
        node.crash()
        node.disk.wipe()
        if was_up:
            node.start()


# -- clock ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClockSkew(Fault):
    """Set a node's clock offset from true time."""

    kind: ClassVar[str] = "clock_skew"
    family: ClassVar[str] = "clock"
    node: str = param("the node whose clock is skewed", ref="node")
    offset_ms: float = param("how far ahead (negative: behind) the node's clock reads")
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)
        before = node.clock.offset_ns(world.kernel.now_ns)
        node.clock.set_offset(world.kernel.now_ns, round(self.offset_ms * 1e6))
        node.clock_changed()

        def undo() -> None:
            node.clock.set_offset(world.kernel.now_ns, before)
            node.clock_changed()

        return undo


@dataclass(frozen=True, slots=True)
class ClockDrift(Fault):
    """Make a node's clock run fast or slow."""

    kind: ClassVar[str] = "clock_drift"
    family: ClassVar[str] = "clock"
    node: str = param("the node whose clock drifts", ref="node")
    drift_ppm: float = param("parts per million fast (negative: slow)", minimum=-500_000,
                             maximum=500_000)
    duration_s: float | None = param(_DURATION_DOC, None, minimum=0, exclusive_minimum=True)

    def apply(self, world: World) -> Undo:
        node = world.node(self.node)

        def set_drift(ppm: float) -> None:
            node.clock.set_drift(world.kernel.now_ns, ppm)
            node.clock_changed()

        return _hold(node, "clock.drift_ppm", self.drift_ppm, lambda: node.clock.drift_ppm,
                     set_drift, newest=True)


@dataclass(frozen=True, slots=True)
class ClockJump(Fault):
    """Step a node's clock forwards or backwards at once (an NTP step)."""

    kind: ClassVar[str] = "clock_jump"
    family: ClassVar[str] = "clock"
    node: str = param("the node whose clock jumps", ref="node")
    by_ms: float = param("how far the clock jumps (negative: backwards)")
    duration_s: float | None = None

    def apply(self, world: World) -> None:
        node = world.node(self.node)
        node.clock.jump(world.kernel.now_ns, round(self.by_ms * 1e6))
        node.clock_changed()


# Deployment faults live in their own module (harness/deploy.py), which imports ``Fault`` from this
# one: importing it here, once ``Fault`` exists, is safe, because the package's __init__ always
# imports this module first.
from harness.deploy import Deploy, Rollback  # noqa: E402

FAULT_KINDS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    Partition, OneWayPartition, IsolateAz, GrayLinkFault, SwizzleClog, DegradeLink,
    Crash, Restart, Pause, PowerOff, PowerOffAz,
    DiskFailSlow, TornWrites, BitRotAtRest, BitRotOnRead, MisdirectedWrites, DiskFull, WipeDisk,
    ClockSkew, ClockDrift, ClockJump,
    Deploy, Rollback,
)}
