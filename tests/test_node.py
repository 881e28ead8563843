"""Node lifecycle, statistics, timers on the local clock, and the per-incarnation context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.node import Node, NodeContext, NodeState
from harness.world import NodeSpec, Topology, World

S = 1_000_000_000
MS = 1_000_000


def make_world(seed: int = 1) -> World:
    return World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}))


class Recorder:
    """A program that records what happens to it, and can be told what to do on start."""

    def __init__(self, ctx: NodeContext, log: list[Any],
                 on_start: Callable[[Recorder], None] | None = None) -> None:
        self.ctx = ctx
        self.log = log
        self._on_start = on_start
        log.append(("created", ctx.boot))

    def on_start(self) -> None:
        self.log.append(("on_start", self.ctx.boot, self.ctx.now_ns()))
        if self._on_start is not None:
            self._on_start(self)

    def on_message(self, source: str, message: Any) -> None:
        self.log.append(("message", self.ctx.boot, self.ctx._node.world.kernel.now_ns, source,
                         message))

    def fired(self, label: Any) -> None:
        self.log.append(("timer", self.ctx.boot, self.ctx._node.world.kernel.now_ns, label))


def install(world: World, name: str, log: list[Any],
            on_start: Callable[[Recorder], None] | None = None) -> Node:
    node = world.node(name)
    node.install(lambda ctx: Recorder(ctx, log, on_start))
    return node


def events(log: list[Any], kind: str) -> list[Any]:
    return [entry for entry in log if entry[0] == kind]


def run_due(world: World) -> None:
    """Dispatch the events due now (a boot is an event of the node's, at the current time)."""
    world.kernel.run(until_ns=world.kernel.now_ns)


def boot_now(node: Node) -> None:
    """Start ``node`` and let its boot event run: the program exists and ``on_start`` has run."""
    node.start()
    run_due(node.world)


# -- lifecycle ------------------------------------------------------------------------------------
def test_a_new_node_is_off_until_started() -> None:
    world = make_world()
    node = world.node("n1")
    assert node.state == NodeState.OFF
    assert not node.is_up
    assert node.program is None and node.context is None
    with pytest.raises(RuntimeError, match="n1"):
        node.start()  # no program installed


def test_start() -> None:
    world = make_world()
    log: list[Any] = []
    node = install(world, "n1", log)
    node.start()
    assert node.state == NodeState.RUNNING and node.is_up
    assert node.context is not None and node.context.alive
    assert node.stats.starts == 1
    assert log == [] and node.program is None  # booting is an event: not run inside ``start()``
    run_due(world)
    assert log == [("created", 1), ("on_start", 1, 0)]
    assert isinstance(node.program, Recorder)
    assert (0, "n1", "boot", 1) in world.kernel.trace.tail()
    node.start()  # already running: nothing happens
    run_due(world)
    assert node.stats.starts == 1
    assert len(log) == 2


def test_crash_and_restart() -> None:
    world = make_world()
    log: list[Any] = []
    node = install(world, "n1", log)
    boot_now(node)
    first = node.context
    assert first is not None
    node.crash()
    assert node.state == NodeState.CRASHED and not node.is_up
    assert node.program is None
    assert node.epoch == 1
    assert not first.alive
    assert node.stats.crashes == 1
    node.crash()  # already down: nothing happens
    assert (node.stats.crashes, node.epoch) == (1, 1)
    boot_now(node)
    assert node.is_up and node.stats.starts == 2
    assert node.context is not first and node.context.alive and node.context.boot == 2
    node.restart()  # running: crash, then start
    run_due(world)
    assert node.is_up
    assert (node.stats.starts, node.stats.crashes, node.epoch) == (3, 2, 2)
    assert [entry[1] for entry in events(log, "on_start")] == [1, 2, 3]


def test_restart_of_a_crashed_node_only_starts_it() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.crash()
    node.restart()
    assert node.is_up
    assert (node.stats.starts, node.stats.crashes, node.epoch) == (2, 1, 1)


def test_power_off_and_on() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.power_off()
    assert node.state == NodeState.OFF and not node.is_up
    assert (node.stats.power_offs, node.stats.crashes, node.epoch) == (1, 0, 1)
    node.power_off()  # already off
    assert node.stats.power_offs == 1
    node.crash()  # a node that is off cannot crash
    assert node.stats.crashes == 0
    node.power_on()
    assert node.is_up and node.stats.starts == 2
    node.power_on()  # already on
    assert node.stats.starts == 2


def test_power_off_of_a_crashed_node() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.crash()
    node.power_off()
    assert node.state == NodeState.OFF
    node.power_on()
    assert node.is_up


def test_power_losses_stack_by_cause() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.power_off("feed-a")
    node.power_off("feed-b")  # already off: one more hold, not a second outage
    assert (node.state, node.stats.power_offs, node.epoch) == (NodeState.OFF, 1, 1)
    node.power_on("feed-a")
    assert node.state == NodeState.OFF  # feed-b still holds it
    node.start()
    node.restart()  # neither boots a node without power
    assert node.state == NodeState.OFF and node.stats.starts == 1
    node.power_on("feed-a")  # a cause that no longer holds: nothing changes
    assert node.state == NodeState.OFF
    node.power_on("feed-b")
    assert node.is_up and node.stats.starts == 2 and node.power_holds == {}
    held = [record for record in world.kernel.trace.tail() if record[2] == "power-held"]
    assert [(name, detail) for _, name, _, detail in held] == [("n1", 1)] * 4


def test_power_off_without_a_cause_is_one_shared_hold() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.power_off()
    node.power_off("fault")
    node.power_on()
    assert node.state == NodeState.OFF
    node.power_on("fault")
    assert node.is_up


def test_pause_and_resume_flags_and_statistics() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.pause()  # not running: nothing to pause
    assert not node.paused and node.stats.pauses == 0
    node.start()
    node.pause()
    node.pause()  # already paused
    assert node.paused and node.is_up
    assert node.stats.pauses == 1
    node.resume()
    node.resume()  # not paused: nothing happens
    assert not node.paused
    node.pause()
    node.crash()  # a crash ends the pause
    assert not node.paused and node.parked == []
    assert node.stats.pauses == 2


def test_statistics_in_world_statistics() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.context.set_timer(S, lambda: None)
    node.pause()
    node.resume()
    node.restart()
    stats = world.statistics()["nodes"]["n1"]
    assert stats == {"starts": 2, "crashes": 1, "power_offs": 0, "pauses": 1,
                     "messages_received": 0, "messages_dropped_down": 0, "timers_set": 1}


def test_repr_shows_state() -> None:
    world = make_world()
    node = install(world, "n1", [])
    node.start()
    node.pause()
    assert repr(node) == "Node('n1', az='az-a', running paused, epoch=0)"


# -- what a crash drops ---------------------------------------------------------------------------
def test_crash_drops_pending_timers() -> None:
    world = make_world()
    log: list[Any] = []
    node = install(world, "n1", log, lambda p: p.ctx.set_timer(5 * S, p.fired, "old"))
    node.start()
    world.kernel.call_at(S, node.crash)
    world.kernel.call_at(2 * S, node.start)
    outcome = world.kernel.run(until_ns=20 * S)
    assert outcome.failure is None
    assert events(log, "timer") == [("timer", 2, 7 * S, "old")]  # only the new boot's timer
    assert world.kernel.dropped_stale == 1


def test_crash_drops_messages_in_flight_to_the_node() -> None:
    world = make_world()
    log: list[Any] = []
    n1 = install(world, "n1", log)
    n2 = install(world, "n2", [], lambda p: p.ctx.send("n1", "in flight"))
    n1.start()
    n2.start()
    world.kernel.call_at(100_000, n1.restart)  # 0.1 ms: the message (>= 0.5 ms) is still in flight
    world.kernel.run(until_ns=S)
    assert events(log, "message") == []
    assert n1.stats.messages_received == 0
    assert world.kernel.dropped_stale == 1


def test_message_arriving_while_down_is_counted_and_dropped() -> None:
    world = make_world()
    log: list[Any] = []
    n1 = install(world, "n1", log)
    n2 = install(world, "n2", [])
    n1.start()
    n2.start()
    n1.crash()
    n2.context.send("n1", "to a dead node")
    world.kernel.run(until_ns=S)
    assert n1.stats.messages_dropped_down == 1
    assert n1.stats.messages_received == 0
    assert events(log, "message") == []


def test_message_sent_while_down_arrives_after_restart() -> None:
    """Only messages sent before the crash belong to the old incarnation; later ones are delivered."""
    world = make_world()
    log: list[Any] = []
    n1 = install(world, "n1", log)
    n2 = install(world, "n2", [])
    n1.start()
    n2.start()
    n1.crash()
    n2.context.send("n1", "sent while down")
    world.kernel.call_at(100_000, n1.start)  # before the message lands
    world.kernel.run(until_ns=S)
    assert [entry[1:2] + entry[3:] for entry in events(log, "message")] == [
        (2, "n2", "sent while down")]


def test_old_context_is_dead_and_its_methods_are_no_ops() -> None:
    world = make_world()
    log: list[Any] = []
    n1 = install(world, "n1", log)
    n2_log: list[Any] = []
    n2 = install(world, "n2", n2_log)
    n1.start()
    n2.start()
    old = n1.context
    assert old is not None
    n1.restart()
    assert not old.alive and n1.context.alive
    sent_before = world.network.statistics()
    old.send("n2", "from the grave")
    timer = old.set_timer(S, log.append, "old timer")
    old.log("old-log", 1)
    world.kernel.run(until_ns=10 * S)
    assert events(n2_log, "message") == []
    assert world.network.statistics() == sent_before
    assert "old timer" not in log
    assert timer.cancelled
    assert all(record[2] != "old-log" for record in world.kernel.trace.tail())


def test_context_identity_and_topology() -> None:
    world = World(1, Topology.from_azs({"az-b": ["n3", "n2"], "az-a": ["n1"]}).with_nodes(
        NodeSpec("client-1", "az-a", "client")))
    seen: dict[str, Any] = {}

    def look(program: Recorder) -> None:
        ctx = program.ctx
        seen.update(name=ctx.name, az=ctx.az, role=ctx.role, boot=ctx.boot, nodes=ctx.nodes,
                    servers=ctx.nodes_with_role("server"), clients=ctx.nodes_with_role("client"),
                    az_of_n1=ctx.az_of("n1"))

    boot_now(install(world, "n2", [], look))
    # ``nodes`` is sorted; ``nodes_with_role`` keeps the topology's order (deterministic too).
    assert seen == {"name": "n2", "az": "az-b", "role": "server", "boot": 1,
                    "nodes": ["client-1", "n1", "n2", "n3"], "servers": ["n3", "n2", "n1"],
                    "clients": ["client-1"], "az_of_n1": "az-a"}


def test_boot_rng_is_fresh_per_boot_and_reproducible() -> None:
    def draws(seed: int) -> list[int]:
        world = make_world(seed)
        out: list[int] = []
        node = install(world, "n1", [], lambda p: out.append(p.ctx.rng.getrandbits(64)))
        boot_now(node)
        node.restart()
        run_due(world)
        node.restart()
        run_due(world)
        return out

    first = draws(5)
    assert len(set(first)) == 3  # a restart does not replay the previous boot's draws
    assert draws(5) == first
    assert draws(6) != first


# -- timers on the local clock --------------------------------------------------------------------
def run_timer(setup: Callable[[Node, World], None], delay_ns: int = 10 * S) -> tuple[int, int]:
    """Set a timer of ``delay_ns`` at t=0 after ``setup``; returns (true, local) time it fired."""
    world = make_world()
    fired: list[tuple[int, int]] = []
    node = install(world, "n1", [], lambda p: p.ctx.set_timer(
        delay_ns, lambda: fired.append((world.kernel.now_ns, p.ctx.now_ns()))))
    setup(node, world)
    node.start()
    world.kernel.run()
    assert len(fired) == 1
    return fired[0]


def test_timer_without_clock_faults_fires_after_its_delay() -> None:
    assert run_timer(lambda node, world: None) == (10 * S, 10 * S)


def test_skew_before_setting_does_not_change_the_delay() -> None:
    def skew(node: Node, world: World) -> None:
        node.clock.set_offset(0, 5 * S)
        node.clock_changed()

    assert run_timer(skew) == (10 * S, 15 * S)


def change_at(at_ns: int, change: Callable[[Node, int], None]) -> Callable[[Node, World], None]:
    def setup(node: Node, world: World) -> None:
        def apply() -> None:
            change(node, world.kernel.now_ns)
            node.clock_changed()
        world.kernel.call_at(at_ns, apply)
    return setup


def test_clock_skewed_ahead_fires_earlier_in_true_time() -> None:
    true_ns, local_ns = run_timer(change_at(2 * S, lambda node, now: node.clock.set_offset(now, 3 * S)))
    assert (true_ns, local_ns) == (7 * S, 10 * S)


def test_clock_skewed_behind_fires_later_in_true_time() -> None:
    true_ns, local_ns = run_timer(change_at(2 * S, lambda node, now: node.clock.set_offset(now, -3 * S)))
    assert (true_ns, local_ns) == (13 * S, 10 * S)


def test_skew_past_the_deadline_fires_at_once() -> None:
    true_ns, local_ns = run_timer(change_at(2 * S, lambda node, now: node.clock.set_offset(now, 60 * S)))
    assert (true_ns, local_ns) == (2 * S, 62 * S)


def test_fast_clock_fires_earlier_in_true_time() -> None:
    def drift(node: Node, world: World) -> None:
        node.clock.set_drift(0, 100_000)
        node.clock_changed()

    assert run_timer(drift, 11 * S) == (10 * S, 11 * S)


def test_clock_jump_moves_a_node_timer() -> None:
    true_ns, local_ns = run_timer(change_at(4 * S, lambda node, now: node.clock.jump(now, -2 * S)))
    assert (true_ns, local_ns) == (12 * S, 10 * S)


def test_without_clock_changed_timers_keep_their_true_time() -> None:
    """The clock is a value holder: only ``clock_changed()`` re-times pending timers."""
    def setup(node: Node, world: World) -> None:
        world.kernel.call_at(2 * S, lambda: node.clock.set_offset(world.kernel.now_ns, 3 * S))

    assert run_timer(setup) == (10 * S, 13 * S)


def test_set_timer_edge_cases() -> None:
    world = make_world()
    fired: list[tuple[str, int]] = []
    handles: dict[str, Any] = {}

    def on_start(program: Recorder) -> None:
        ctx = program.ctx
        node = ctx._node
        ctx.set_timer(-5 * S, lambda: fired.append(("negative delay", world.kernel.now_ns)))
        node.set_timer_at(-1, lambda: fired.append(("past deadline", world.kernel.now_ns)))
        handles["cancelled"] = ctx.set_timer(S, lambda: fired.append(("cancelled", 0)))
        ctx.set_timer(2 * S, fired.append, ("with args", 2 * S))

    node = install(world, "n1", [], on_start)
    world.kernel.call_at(S // 2, lambda: handles["cancelled"].cancel())
    node.start()
    world.kernel.run()
    assert fired == [("negative delay", 0), ("past deadline", 0), ("with args", 2 * S)]
    assert node.stats.timers_set == 4


def test_paused_node_timers_and_messages_wait_for_resume_in_order() -> None:
    world = make_world()
    log: list[Any] = []

    def on_start(program: Recorder) -> None:
        program.ctx.set_timer(S, program.fired, "t1")
        program.ctx.set_timer(2 * S, program.fired, "t2")

    n1 = install(world, "n1", log, on_start)
    n2 = install(world, "n2", [])
    n1.start()
    n2.start()
    world.kernel.call_at(S // 2, n1.pause)
    world.kernel.call_at(1_500_000_000, n2.context.send, "n1", "m1")
    world.kernel.call_at(1_600_000_000, n2.context.send, "n1", "m2")
    world.kernel.call_at(5 * S, n1.resume)
    world.kernel.run()
    fired = [entry for entry in log if entry[0] in ("timer", "message")]
    assert fired == [("timer", 1, 5 * S, "t1"), ("message", 1, 5 * S, "n2", "m1"),
                     ("message", 1, 5 * S, "n2", "m2"), ("timer", 1, 5 * S, "t2")]


# -- failures -------------------------------------------------------------------------------------
def test_ctx_fail_is_an_invariant_failure() -> None:
    world = make_world()

    def on_start(program: Recorder) -> None:
        program.ctx.set_timer(3 * S, program.ctx.fail, "lost write", "key k", "acked at t=1s")

    install(world, "n1", [], on_start).start()
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    failure = outcome.failure
    assert failure is not None
    assert (failure.kind, failure.message, failure.node, failure.time_ns) == (
        "invariant", "lost write", "n1", 3 * S)
    assert failure.evidence == ("key k", "acked at t=1s")
    assert "lost write" in failure.describe() and "on n1" in failure.describe()


def test_ctx_fail_cannot_be_swallowed_by_the_program() -> None:
    world = make_world()

    def check_and_swallow(program: Recorder) -> None:
        try:
            program.ctx.fail("broken")
        except Exception:  # noqa: BLE001 - a sloppy program catching everything
            pass

    install(world, "n1", [], lambda p: p.ctx.set_timer(S, check_and_swallow, p)).start()
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    assert outcome.failure is not None and outcome.failure.message == "broken"


def test_exception_in_on_message_is_a_failure_of_that_node() -> None:
    world = make_world()

    class Crashy:
        def __init__(self, ctx: NodeContext) -> None:
            self.ctx = ctx

        def on_message(self, source: str, message: Any) -> None:
            raise KeyError(message)

    world.node("n1").install(Crashy)
    world.node("n1").start()
    install(world, "n2", [], lambda p: p.ctx.send("n1", "bad")).start()
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "exception"
    assert outcome.failure.node == "n1"
    assert "KeyError" in outcome.failure.message


def test_on_start_error_during_a_restart_fault_is_a_system_failure() -> None:
    """A restart is a harness event, but recovery code that raises is still the system's bug."""
    world = make_world()

    def recover(program: Recorder) -> None:
        if program.ctx.boot > 1:
            raise ValueError("corrupt log on recovery")

    node = install(world, "n1", [], recover)
    node.start()
    world.kernel.call_at(S, node.restart)  # unowned, as the fault timeline schedules it
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "exception"
    assert outcome.failure.node == "n1"
    assert outcome.failure.time_ns == S
    assert "corrupt log on recovery" in outcome.failure.message


def test_on_start_error_fails_the_run_as_an_exception_of_that_node() -> None:
    """``start()`` only schedules the boot: an error in ``on_start`` fails the run, not the caller."""
    world = make_world()
    node = install(world, "n1", [], lambda p: 1 / 0)
    node.start()  # does not raise
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    assert (outcome.failure.kind, outcome.failure.node, outcome.failure.time_ns) == (
        "exception", "n1", 0)
    assert "ZeroDivisionError" in outcome.failure.message


def test_on_start_error_after_a_restart_outside_a_run_fails_the_next_run() -> None:
    world = make_world()

    def recover(program: Recorder) -> None:
        if program.ctx.boot > 1:
            raise ValueError("corrupt log on recovery")

    node = install(world, "n1", [], recover)
    boot_now(node)
    node.restart()  # does not raise: the failing recovery runs in the node's boot event
    outcome = world.kernel.run()
    assert outcome.reason == "failure"
    assert (outcome.failure.kind, outcome.failure.node, outcome.failure.time_ns) == (
        "exception", "n1", 0)
    assert "corrupt log on recovery" in outcome.failure.message


def test_crash_before_the_boot_event_means_the_program_is_never_created() -> None:
    world = make_world()
    log: list[Any] = []
    node = install(world, "n1", log)
    node.start()
    node.crash()  # before the boot event runs: it belongs to the old epoch and is dropped
    outcome = world.kernel.run()
    assert outcome.failure is None
    assert log == [] and node.program is None
    assert node.state == NodeState.CRASHED
    assert world.kernel.dropped_stale == 1
    # Started again at the same instant, the node boots once, as the new incarnation only.
    node.start()
    node.crash()
    node.start()
    run_due(world)
    assert log == [("created", 3), ("on_start", 3, 0)]
    assert world.kernel.dropped_stale == 2
