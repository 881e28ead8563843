"""Nodes: the lifecycle of a simulated machine, and the context its program sees.

Theory of operation. A ``Node`` is a machine in an availability zone with a clock, a disk and a program
(the system under test's code for that node). Its lifecycle:

    running ──crash()──▶ crashed ──restart()──▶ running       (volatile state gone, unsynced disk lost)
    running ──power_off()──▶ off ──power_on()──▶ running      (as crash, but stays down until powered on)
    running ──pause()──▶ running+paused ──resume()──▶ running  (a GC stall: nothing runs meanwhile)

Every event that belongs to a node (a timer, a message delivery, an asyncio callback) is owned by it in
the kernel. A crash increments the node's ``epoch``: the kernel drops every event scheduled in an older
epoch, so nothing of the old incarnation ever runs again. A pause makes the kernel park the node's due
events; ``resume()`` puts them back in their original order. Timers set by the node fire by the node's
local clock; when a clock fault changes that clock, ``clock_changed()`` moves them.

Power losses stack, as a machine stays dark while any cause of its power loss holds (its own, its AZ's).
Each ``power_off(cause)`` adds a hold (``cause`` identifies who cut the power: each fault passes its own
token; calls without one share a single hold); ``power_on(cause)`` removes that hold, and the node boots
only once no hold is left. While a hold remains, ``start()`` and ``restart()`` do nothing: a crash's
scheduled restart or a restart cannot boot a machine without power; it boots, from its disk, when the
last hold ends (a ``power-held`` trace event records each refused boot). Pauses stack the same way
(``pause(cause)``/``resume(cause)``); a crash ends them all, and the next incarnation runs unstalled.

The program is created afresh at every start from the system's factory and talks to the world only
through ``NodeContext``: that is the whole API a system under test needs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from harness.clock import NodeClock
from harness.errors import Failure, SystemUnderTestError
from harness.scheduler import Timer

if TYPE_CHECKING:
    from harness.aio import VirtualEventLoop
    from harness.disk import Disk
    from harness.rng import Rng
    from harness.world import World

__all__ = ["Node", "NodeContext", "NodeProgram", "NodeState"]


class NodeState:
    RUNNING = "running"
    CRASHED = "crashed"
    OFF = "off"


_RUNNING = NodeState.RUNNING  # for the per-message paths: one lookup, not two
_Future = asyncio.Future


class NodeProgram(Protocol):
    """What a system under test runs on a node: an object with ``on_message`` (a callback per
    delivered message) and, optionally, ``on_start``. A program without ``on_message`` (or with
    ``on_message = None``) reads its messages with ``await ctx.receive()`` instead."""

    def on_message(self, source: str, message: Any) -> None: ...


ProgramFactory = Callable[["NodeContext"], NodeProgram]


@dataclass(slots=True)
class NodeStatistics:
    starts: int = 0
    crashes: int = 0
    power_offs: int = 0
    pauses: int = 0
    messages_received: int = 0
    messages_dropped_down: int = 0  # arrived while the node was crashed or off
    timers_set: int = 0


class Node:
    """A simulated machine. Owned events obey its epoch and pause state (see the module docstring)."""

    def __init__(self, world: World, name: str, az: str, role: str, clock: NodeClock,
                 disk: Disk, rng: Rng) -> None:
        self.world = world
        self.name = name
        self.az = az
        self.role = role
        self.clock = clock
        self.disk = disk
        self.rng = rng
        self.epoch = 0
        self.paused = False
        self.parked: list[Timer] = []
        self.state = NodeState.OFF
        self.program: NodeProgram | None = None
        self.on_message: Callable[[str, Any], None] | None = None  # see ``_boot``
        self.context: NodeContext | None = None
        self.loop: VirtualEventLoop | None = None
        self.stats = NodeStatistics()
        # Who holds the power off (cause → None, in insertion order); the node boots when it empties.
        self.power_holds: dict[object, None] = {}
        # Who holds the process stalled (``pause``); it resumes when this empties.
        self.pause_holds: dict[object, None] = {}
        # Conditions faults hold (``harness.faults._hold``): name → (value before, {fault: value}).
        self.fault_holds: dict[str, tuple[Any, dict[object, Any]]] = {}
        # [down_ns, up_ns or None] for every crash or power loss, in true time (for observers and
        # reports; the node's program never sees it).
        self.outages: list[list[int | None]] = []
        # (true time, "running" | "crashed" | "off" | "paused" | "resumed") for every change of
        # state, for reports (``harness.recording``); like ``outages``, never seen by the program.
        self.lifecycle: list[tuple[int, str]] = []
        # asyncio tasks of crashed incarnations, kept alive so their cleanup code never runs mid-run.
        self.graveyard: list[asyncio.Task[Any]] = []
        self._factory: ProgramFactory | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def is_up(self) -> bool:
        return self.state == NodeState.RUNNING

    def install(self, factory: ProgramFactory) -> None:
        """Set the program this node runs from its next start on."""
        self._factory = factory

    @property
    def installed(self) -> bool:
        """True once a program is installed (a node without one is never started)."""
        return self._factory is not None

    def start(self) -> None:
        """Boot: a fresh program (from the factory) over whatever the disk durably holds.

        Does nothing while the node is running, or while a power loss holds it off (``power_on``
        boots it when the last one ends)."""
        if self.state == NodeState.RUNNING:
            return
        if self.power_holds:
            self._trace("power-held", len(self.power_holds))
            return
        if self._factory is None:
            raise RuntimeError(f"node {self.name} has no program installed")
        self.state = NodeState.RUNNING
        self.lifecycle.append((self.world.kernel.now_ns, NodeState.RUNNING))
        if self.outages and self.outages[-1][1] is None:
            self.outages[-1][1] = self.world.kernel.now_ns
        self.stats.starts += 1
        self.context = NodeContext(self, self.stats.starts)
        # Booting is an event of the node's own, so the program is created and ``on_start`` runs
        # inside the run (in the sandbox, in the trace), and an error there is the system's failure.
        self.world.kernel.call_at(self.world.kernel.now_ns, self.run_in_node, self._boot, owner=self,
                                  kind="boot", detail=self.stats.starts)

    def _boot(self) -> None:
        assert self._factory is not None and self.context is not None
        self.program = self._factory(self.context)
        # What a delivery calls: the program's ``on_message``, or, for a program without one, the
        # context's inbox (``NodeContext.receive``). Bound once per boot: every delivery calls it.
        self.on_message = getattr(self.program, "on_message", None)
        if self.on_message is None:
            self.on_message = self.context._to_inbox
            self.context._receives = True
        on_start = getattr(self.program, "on_start", None)
        if on_start is not None:
            on_start()

    def crash(self) -> None:
        """Process crash: volatile state gone, pending events dropped, unsynced disk writes lost."""
        if self.state != NodeState.RUNNING:
            return
        self._go_down(NodeState.CRASHED)
        self.stats.crashes += 1

    def power_off(self, cause: object = None) -> None:
        """Power loss: as a crash, and the node stays down until every cause holding it off has
        called ``power_on`` (its own cause). Calls without a cause share one hold."""
        self.power_holds[cause] = None
        if self.state == NodeState.OFF:
            return
        self._go_down(NodeState.OFF)
        self.stats.power_offs += 1

    def restart(self) -> None:
        """Crash if running, then start again and recover from the disk. A node held off by a power
        loss stays off (see ``start``)."""
        self.crash()
        self.start()

    def power_on(self, cause: object = None) -> None:
        """End ``cause``'s power loss; boot once no other power loss holds the node off."""
        self.power_holds.pop(cause, None)
        self.start()

    def _trace(self, kind: str, detail: object) -> None:
        kernel = self.world.kernel
        kernel.trace.record((kernel.now_ns, self.name, kind, detail))

    def _go_down(self, state: str) -> None:
        self.epoch += 1  # the kernel now drops every event of the old incarnation
        if self.state == NodeState.RUNNING:  # (a crashed node losing power: the same outage)
            self.outages.append([self.world.kernel.now_ns, None])
        self.state = state
        self.lifecycle.append((self.world.kernel.now_ns, state))
        self.paused = False
        self.pause_holds.clear()  # the stalled incarnation is gone; the next one starts unstalled
        self.parked.clear()
        self.disk.crash()
        self.program = self.on_message = None
        if self.loop is not None:
            self.loop.abandon()
            self.loop = None
            self.world.kernel.loops_changed()  # the next incarnation never runs in the old loop

    def pause(self, cause: object = None) -> None:
        """Stall the node (a GC pause): its events are parked until ``resume``. Pauses stack, as
        power losses do: each ``cause`` holds the node stalled (calls without one share a hold),
        and it resumes when the last is released. A node that is down is not paused."""
        if self.state != NodeState.RUNNING:
            return
        self.pause_holds[cause] = None
        if not self.paused:
            self.paused = True
            self.lifecycle.append((self.world.kernel.now_ns, "paused"))
            self.stats.pauses += 1

    def resume(self, cause: object = None) -> None:
        """Release ``cause``'s pause; the node runs again once no other pause holds it."""
        self.pause_holds.pop(cause, None)
        if not self.paused or self.pause_holds:
            return
        self.paused = False
        self.lifecycle.append((self.world.kernel.now_ns, "resumed"))
        parked, self.parked = self.parked, []
        kernel = self.world.kernel
        for timer in parked:  # parked in dispatch order: rescheduling keeps that order
            kernel.reschedule(timer)

    # -- time -----------------------------------------------------------------------------------
    def local_now_ns(self) -> int:
        return self.clock.local(self.world.kernel.now_ns)

    def set_timer(self, delay_ns: int, callback: Callable[..., Any], *args: Any,
                  kind: str = "timer", detail: Any = "") -> Timer:
        """Fire ``callback(*args)`` when this node's local clock has advanced by ``delay_ns``."""
        return self.set_timer_at(self.local_now_ns() + max(delay_ns, 0), callback, *args,
                                 kind=kind, detail=detail)

    def set_timer_at(self, local_deadline_ns: int, callback: Callable[..., Any], *args: Any,
                     kind: str = "timer", detail: Any = "") -> Timer:
        """Fire ``callback(*args)`` when this node's local clock reads ``local_deadline_ns``."""
        self.stats.timers_set += 1
        timer = self.world.kernel.call_at(self.clock.true_at(local_deadline_ns), self.run_in_node,
                                          callback, *args, owner=self, kind=kind, detail=detail)
        timer.local_deadline_ns = local_deadline_ns
        return timer

    def clock_changed(self) -> None:
        """Re-time this node's pending local-clock timers after a skew, drift or jump."""
        kernel = self.world.kernel
        for timer in kernel.timers_owned_by(self):
            if timer.local_deadline_ns is not None:
                kernel.move(timer, self.clock.true_at(timer.local_deadline_ns))

    # -- messages -------------------------------------------------------------------------------
    def deliver(self, source: str, message: Any) -> None:
        """Called by the network when a message arrives (in an event owned by this node)."""
        program = self.program
        if program is None or self.state != _RUNNING:
            self.stats.messages_dropped_down += 1
            return
        self.stats.messages_received += 1
        self.on_message(source, message)  # with this node's loop running (see ``Kernel``)

    def run_in_node(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run node code with this node's event loop as the running loop (none if it has none).

        Inside this node's events the kernel has made it so already; outside them, this does.
        """
        kernel = self.world.kernel
        if kernel.running_loop is not self.loop:  # called from outside this node's events
            kernel.set_running_loop(self.loop)
        callback(*args)

    def event_loop(self) -> VirtualEventLoop:
        if self.loop is None:
            from harness.aio import VirtualEventLoop

            self.loop = VirtualEventLoop(self)
            self.world.kernel.loops_changed()  # this node's next event runs in it
        return self.loop

    def __repr__(self) -> str:
        flags = " paused" if self.paused else ""
        return f"Node({self.name!r}, az={self.az!r}, {self.state}{flags}, epoch={self.epoch})"


class NodeContext:
    """Everything a node's program may touch: its identity, clock, network, disk, randomness, tasks.

    A context belongs to one incarnation of the node (one boot). After a crash, its methods become
    no-ops that raise nothing: the old program's references cannot affect the new incarnation.
    """

    def __init__(self, node: Node, boot: int) -> None:
        self._node = node
        self._epoch = node.epoch
        self.name = node.name
        self.az = node.az
        self.role = node.role
        self.boot = boot
        self.disk = node.disk
        # A fresh stream per boot, derived by name: a restart does not replay the previous boot's draws.
        self.rng = node.rng.fork(f"boot-{boot}")
        self._network_send = node.world.network.send  # bound once: ``send`` is hot
        self._loop: VirtualEventLoop | None = None  # this incarnation's loop, once it spawns
        # ``receive``: messages not yet received, and the futures of receivers waiting for one.
        self._inbox: deque[tuple[str, Any]] = deque()
        self._receivers: deque[asyncio.Future[tuple[str, Any]]] = deque()
        self._receives = False  # the program has no ``on_message``: deliveries come here

    @property
    def alive(self) -> bool:
        """True while this incarnation is the node's current one and the node is up."""
        return self._node.epoch == self._epoch and self._node.is_up

    @property
    def nodes(self) -> list[str]:
        """All node names in the topology, sorted."""
        return self._node.world.node_names()

    def nodes_with_role(self, role: str) -> list[str]:
        return [n.name for n in self._node.world.nodes.values() if n.role == role]

    def az_of(self, node: str) -> str:
        return self._node.world.nodes[node].az

    def now_ns(self) -> int:
        """This node's local clock (skewed, drifting, jumping as faults dictate)."""
        return self._node.local_now_ns()

    def now_s(self) -> float:
        return self._node.local_now_ns() / 1e9

    def send(self, destination: str, message: Any, size_bytes: int | None = None) -> None:
        """Send a message over the simulated network. Fire and forget: it may be lost."""
        node = self._node
        if node.epoch == self._epoch and node.state == _RUNNING:  # ``alive``, inlined: hot
            network_send = self._network_send  # called through a local: see ``Network.send``
            network_send(self.name, destination, message, size_bytes)

    def receive(self) -> Awaitable[tuple[str, Any]]:
        """The next message delivered to this node, as ``(source, message)``: ``await
        ctx.receive()``. For programs without ``on_message`` (their messages wait here, in
        delivery order, for as long as this incarnation lives); receivers waiting together are
        served in the order they started waiting. Cancelling a wait (``asyncio.timeout``,
        ``wait_for``) loses no message."""
        if not self._receives:
            raise RuntimeError(f"{self.name}'s program has on_message, which gets every message; "
                               f"receive() serves programs without one (or with on_message = None)")
        loop = self._loop
        if loop is None:
            loop = self._loop = self._node.event_loop() if self.alive else _closed_loop(self._node)
        future = _Future(loop=loop)  # ``loop.create_future()``, without its frame
        if self._inbox:
            future.set_result(self._inbox.popleft())
        else:
            self._receivers.append(future)
        return future

    def _to_inbox(self, source: str, message: Any) -> None:
        """A delivery to a program without ``on_message``: to the first waiting receiver, if any."""
        receivers = self._receivers
        while receivers:
            future = receivers.popleft()
            if not future.done():  # (a cancelled wait is done)
                future.set_result((source, message))
                return
        self._inbox.append((source, message))

    def set_timer(self, delay_ns: int, callback: Callable[..., Any], *args: Any,
                  kind: str = "timer", detail: Any = "") -> Timer:
        """Call ``callback(*args)`` after ``delay_ns`` of this node's local time. Returns a handle."""
        if not self.alive:  # an old incarnation: a handle that never fires
            timer = Timer(self._node.world.kernel.now_ns, callback, args, None, kind, detail)
            timer.cancel()
            return timer
        return self._node.set_timer(delay_ns, callback, *args, kind=kind, detail=detail)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        """Run a coroutine on this node's virtual-time event loop. An escaping exception fails the run."""
        if self._loop is None:
            self._loop = self._node.event_loop() if self.alive else _closed_loop(self._node)
        return self._loop.create_task(coroutine, name=name)  # a closed loop never runs it

    def log(self, kind: str, detail: Any = "") -> None:
        """Put an application event into the trace (and so into the digest and the report)."""
        if self.alive:
            kernel = self._node.world.kernel
            kernel.trace.record((kernel.now_ns, self.name, kind, detail))

    def halt(self, reason: str) -> None:
        """Stop this node's process at once, as ``abort()`` would: a crash, chosen by the system
        itself (fail-stop on an error it cannot handle, such as a full disk)."""
        if self.alive:
            self.log("halt", (reason,))
            self._node.crash()

    def fail(self, message: str, *evidence: str) -> None:
        """Report that the system under test broke one of its own invariants. Stops the run."""
        kernel = self._node.world.kernel
        failure = Failure("invariant", message, kernel.now_ns, self.name, evidence)
        kernel.fail(failure)  # at once: code that catches the exception below cannot hide it
        raise SystemUnderTestError(failure)


def _closed_loop(node: Node) -> VirtualEventLoop:
    """A loop for a crashed incarnation that never spawned while alive: it runs nothing."""
    from harness.aio import VirtualEventLoop

    loop = VirtualEventLoop(node)
    loop.abandon()
    return loop
