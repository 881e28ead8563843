"""asyncio on virtual time: the standard primitives, clocks, crashes, pauses and failures."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from harness.aio import VirtualEventLoop
from harness.errors import AmbientNondeterminismError
from harness.node import Node, NodeContext
from harness.world import Topology, World

ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000
Main = Callable[[NodeContext], Coroutine[Any, Any, Any]]


def make_world(seed: int = 1) -> World:
    return World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}))


class Prog:
    """Spawns ``main(ctx)`` on start; hands messages to ``on_message`` (if given)."""

    instances: list[Prog] = []

    def __init__(self, ctx: NodeContext, main: Main | None,
                 on_message: Callable[[Prog, str, Any], None] | None) -> None:
        self.ctx = ctx
        self.main = main
        self.handler = on_message
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None

    def on_start(self) -> None:
        if self.main is not None:
            self.task = self.ctx.spawn(self.main(self.ctx))

    def on_message(self, source: str, message: Any) -> None:
        if self.handler is not None:
            self.handler(self, source, message)


def boot(world: World, name: str, main: Main | None = None,
         on_message: Callable[[Prog, str, Any], None] | None = None,
         programs: list[Prog] | None = None) -> Node:
    def factory(ctx: NodeContext) -> Prog:
        program = Prog(ctx, main, on_message)
        if programs is not None:
            programs.append(program)
        return program

    node = world.node(name)
    node.install(factory)
    node.start()
    return node


def run_due(world: World) -> None:
    """Dispatch the events due now: the nodes' boot events (``on_start`` spawns ``main``) and what
    they schedule for the same instant (each task's first step)."""
    world.kernel.run(until_ns=world.kernel.now_ns)


def run_one(main: Main, until_ns: int = 100 * S, seed: int = 1) -> tuple[World, Any]:
    world = make_world(seed)
    boot(world, "n1", main)
    outcome = world.kernel.run(until_ns=until_ns)
    return world, outcome


# -- time -----------------------------------------------------------------------------------------
def test_sleep_advances_virtual_time_exactly() -> None:
    seen: list[tuple[int, int, float]] = []

    async def main(ctx: NodeContext) -> None:
        loop = asyncio.get_running_loop()
        for delay in (1.5, 0.1, 0.2, 0, 2.25):
            await asyncio.sleep(delay)
            seen.append((ctx.now_ns(), world.kernel.now_ns, loop.time()))

    world = make_world()
    boot(world, "n1", main)
    outcome = world.kernel.run()
    assert outcome.reason == "quiescent"
    assert [true for _, true, _ in seen] == [1_500_000_000, 1_600_000_000, 1_800_000_000,
                                             1_800_000_000, 4_050_000_000]
    assert [local for local, _, _ in seen] == [true for _, true, _ in seen]  # no clock fault
    assert [loop_time for _, _, loop_time in seen] == [1.5, 1.6, 1.8, 1.8, 4.05]
    assert world.kernel.now_ns == 4_050_000_000


def test_an_hour_of_sleep_takes_no_real_time() -> None:
    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(3600)
        ctx.log("woke", ctx.now_ns())

    world, outcome = run_one(main, until_ns=10_000 * S)
    assert outcome.reason == "quiescent"
    assert world.kernel.now_ns == 3600 * S
    assert (3600 * S, "n1", "woke", 3600 * S) in world.kernel.trace.tail()


def test_running_loop_is_the_nodes_virtual_loop() -> None:
    seen: list[Any] = []

    async def main(ctx: NodeContext) -> None:
        loop = asyncio.get_running_loop()
        seen.append(loop)
        seen.append(loop.is_running())

    world, _ = run_one(main)
    assert isinstance(seen[0], VirtualEventLoop)
    assert seen[0] is not None and seen[1] is True
    assert asyncio._get_running_loop() is None  # the kernel restores "no running loop" afterwards


# -- primitives -----------------------------------------------------------------------------------
def test_event() -> None:
    woke: list[int] = []

    async def main(ctx: NodeContext) -> None:
        event = asyncio.Event()

        async def waiter() -> None:
            await event.wait()
            woke.append(ctx.now_ns())

        async def setter() -> None:
            await asyncio.sleep(2)
            event.set()

        await asyncio.gather(waiter(), waiter(), setter())
        woke.append(-ctx.now_ns())

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert woke == [2 * S, 2 * S, -2 * S]


def test_queue_between_tasks() -> None:
    got: list[tuple[int, Any]] = []

    async def main(ctx: NodeContext) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)

        async def producer() -> None:
            for item in range(3):
                await queue.put(item)  # blocks while the queue is full
                await asyncio.sleep(1)
            await queue.put(-1)

        async def consumer() -> None:
            while (item := await queue.get()) != -1:
                got.append((ctx.now_ns(), item))
                await asyncio.sleep(0.5)

        await asyncio.gather(producer(), consumer())

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert got == [(0, 0), (S, 1), (2 * S, 2)]


def test_messages_delivered_into_a_queue() -> None:
    got: list[tuple[int, str, Any]] = []

    async def consumer(ctx: NodeContext) -> None:
        program = programs[0]
        for _ in range(3):
            source, message = await program.queue.get()
            got.append((ctx.now_ns(), source, message))

    async def sender(ctx: NodeContext) -> None:
        for index in range(3):
            ctx.send("n1", ("hello", index))
            await asyncio.sleep(1)

    def enqueue(program: Prog, source: str, message: Any) -> None:
        program.queue.put_nowait((source, message))

    world = make_world()
    programs: list[Prog] = []
    boot(world, "n1", consumer, enqueue, programs)
    boot(world, "n2", sender)
    outcome = world.kernel.run(until_ns=10 * S)
    assert outcome.reason == "quiescent"
    assert [(source, message) for _, source, message in got] == [
        ("n2", ("hello", 0)), ("n2", ("hello", 1)), ("n2", ("hello", 2))]
    for index, (time_ns, _, _) in enumerate(got):  # one-way delay is in [0.5 ms, 1.5 ms]
        assert index * S + 500_000 <= time_ns <= index * S + 1_500_000
    assert world.nodes["n1"].stats.messages_received == 3


def test_lock() -> None:
    log: list[tuple[int, str]] = []

    async def main(ctx: NodeContext) -> None:
        lock = asyncio.Lock()

        async def worker(name: str, hold_s: float) -> None:
            async with lock:
                log.append((ctx.now_ns(), f"{name} in"))
                await asyncio.sleep(hold_s)
                log.append((ctx.now_ns(), f"{name} out"))

        await asyncio.gather(worker("a", 1), worker("b", 0.5), worker("c", 2))

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert log == [(0, "a in"), (S, "a out"), (S, "b in"), (1_500_000_000, "b out"),
                   (1_500_000_000, "c in"), (3_500_000_000, "c out")]


def test_wait_for_times_out_at_the_right_virtual_time() -> None:
    log: list[tuple[int, str]] = []

    async def main(ctx: NodeContext) -> None:
        event = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout=2.5)
        except TimeoutError:
            log.append((ctx.now_ns(), "timeout"))
        result = await asyncio.wait_for(asyncio.sleep(1, result="done"), timeout=3)
        log.append((ctx.now_ns(), result))

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert log == [(2_500_000_000, "timeout"), (3_500_000_000, "done")]


def test_asyncio_timeout() -> None:
    log: list[tuple[int, str]] = []

    async def main(ctx: NodeContext) -> None:
        try:
            async with asyncio.timeout(1.25):
                await asyncio.sleep(10)
        except TimeoutError:
            log.append((ctx.now_ns(), "timed out"))
        async with asyncio.timeout(5):
            await asyncio.sleep(1)
        log.append((ctx.now_ns(), "in time"))

    world, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert log == [(1_250_000_000, "timed out"), (2_250_000_000, "in time")]


def test_gather() -> None:
    results: list[Any] = []

    async def after(delay_s: float, value: str) -> str:
        await asyncio.sleep(delay_s)
        return value

    async def main(ctx: NodeContext) -> None:
        results.append(await asyncio.gather(after(3, "slow"), after(1, "fast"), after(2, "mid")))
        results.append(ctx.now_ns())

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert results == [["slow", "fast", "mid"], 3 * S]


def test_task_group() -> None:
    log: list[tuple[int, str]] = []

    async def child(delay_s: float, name: str, ctx: NodeContext) -> None:
        await asyncio.sleep(delay_s)
        log.append((ctx.now_ns(), name))

    async def main(ctx: NodeContext) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(child(2, "b", ctx))
            group.create_task(child(1, "a", ctx))
        log.append((ctx.now_ns(), "group done"))

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent"
    assert log == [(S, "a"), (2 * S, "b"), (2 * S, "group done")]


def test_exception_inside_a_task_group_handled_by_the_program() -> None:
    log: list[tuple[int, str]] = []

    async def failing(ctx: NodeContext) -> None:
        await asyncio.sleep(1)
        raise ValueError("child failed")

    async def slow(ctx: NodeContext) -> None:
        try:
            await asyncio.sleep(10)
            log.append((ctx.now_ns(), "slow finished"))
        except asyncio.CancelledError:
            log.append((ctx.now_ns(), "slow cancelled"))
            raise

    async def main(ctx: NodeContext) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(failing(ctx))
                group.create_task(slow(ctx))
        except* ValueError as errors:
            log.append((ctx.now_ns(), f"caught {errors.exceptions[0]}"))
        await asyncio.sleep(1)
        log.append((ctx.now_ns(), "carried on"))

    _, outcome = run_one(main)
    assert log == [(S, "slow cancelled"), (S, "caught child failed"), (2 * S, "carried on")]
    assert outcome.reason == "quiescent", outcome.failure


def test_exception_inside_a_task_group_not_handled_fails_the_run() -> None:
    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("child failed")

    async def main(ctx: NodeContext) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(failing())
            group.create_task(asyncio.sleep(10))

    _, outcome = run_one(main)
    assert outcome.reason == "failure"
    assert outcome.failure.node == "n1"
    assert outcome.failure.time_ns == S
    assert "child failed" in outcome.failure.message or any(
        "child failed" in line for line in outcome.failure.evidence)


def test_awaited_child_exception_does_not_fail_the_run() -> None:
    log: list[tuple[int, str]] = []

    async def failing() -> None:
        await asyncio.sleep(1)
        raise ValueError("handled")

    async def main(ctx: NodeContext) -> None:
        try:
            await ctx.spawn(failing())
        except ValueError as error:
            log.append((ctx.now_ns(), f"caught {error}"))
        try:
            await asyncio.create_task(failing())
        except ValueError as error:
            log.append((ctx.now_ns(), f"caught {error}"))
        results = await asyncio.gather(failing(), asyncio.sleep(0.5, "ok"), return_exceptions=True)
        log.append((ctx.now_ns(), repr(results)))
        try:
            await asyncio.wait_for(failing(), timeout=5)
        except ValueError as error:
            log.append((ctx.now_ns(), f"caught {error}"))

    _, outcome = run_one(main)
    assert outcome.reason == "quiescent", outcome.failure
    assert log == [(S, "caught handled"), (2 * S, "caught handled"),
                   (3 * S, "[ValueError('handled'), 'ok']"), (4 * S, "caught handled")]


def test_exception_escaping_a_task_fails_the_run() -> None:
    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(2)
        raise ValueError("boom in the system under test")

    world, outcome = run_one(main)
    assert outcome.reason == "failure"
    failure = outcome.failure
    assert failure is not None
    assert failure.kind == "exception"
    assert failure.node == "n1"
    assert failure.time_ns == 2 * S
    assert "ValueError" in failure.message
    assert "boom in the system under test" in failure.message
    assert "n1#1/task-1" in failure.message
    assert any("main" in line for line in failure.evidence)


def test_unawaited_child_exception_fails_the_run() -> None:
    async def failing() -> None:
        await asyncio.sleep(1)
        raise KeyError("nobody awaits me")

    async def main(ctx: NodeContext) -> None:
        ctx.spawn(failing(), name="orphan")
        await asyncio.sleep(100)

    _, outcome = run_one(main, until_ns=1000 * S)
    assert outcome.reason == "failure"
    assert outcome.failure.time_ns == S
    assert "orphan" in outcome.failure.message and "nobody awaits me" in outcome.failure.message


def test_exception_retrieved_only_later_counts_as_escaped() -> None:
    """The rule is deterministic: unretrieved at the instant it was raised means it escaped."""
    async def failing() -> None:
        raise ValueError("raised at t=0")

    async def main(ctx: NodeContext) -> None:
        task = ctx.spawn(failing())
        await asyncio.sleep(5)
        try:
            await task
        except ValueError:
            pass

    _, outcome = run_one(main)
    assert outcome.reason == "failure"
    assert outcome.failure.time_ns == 0
    assert "raised at t=0" in outcome.failure.message


def test_exception_in_a_plain_callback_fails_the_run() -> None:
    def bad_callback() -> None:
        raise RuntimeError("callback broke")

    async def main(ctx: NodeContext) -> None:
        asyncio.get_running_loop().call_later(1.5, bad_callback)
        await asyncio.sleep(10)

    _, outcome = run_one(main)
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "exception"
    assert outcome.failure.node == "n1"
    assert outcome.failure.time_ns == 1_500_000_000
    assert "callback broke" in outcome.failure.message


def test_cancelled_task_is_not_a_failure() -> None:
    async def main(ctx: NodeContext) -> None:
        task = ctx.spawn(asyncio.sleep(100))
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.sleep(1)

    world, outcome = run_one(main)
    assert outcome.reason == "quiescent", outcome.failure
    assert world.kernel.now_ns == 2 * S


def test_ctx_fail_in_a_task_is_an_invariant_failure() -> None:
    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(3)
        ctx.fail("two leaders", "n1 leads term 3", "n2 leads term 3")

    _, outcome = run_one(main)
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "invariant"
    assert outcome.failure.message == "two leaders"
    assert outcome.failure.node == "n1"
    assert outcome.failure.time_ns == 3 * S
    assert outcome.failure.evidence == ("n1 leads term 3", "n2 leads term 3")


def test_threads_and_executors_are_refused() -> None:
    async def main(ctx: NodeContext) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sum, [1, 2])

    _, outcome = run_one(main)
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "ambient-nondeterminism"
    with pytest.raises(AmbientNondeterminismError):
        make_world().node("n1").event_loop().call_soon_threadsafe(print)


# -- names ----------------------------------------------------------------------------------------
def test_current_task_and_deterministic_names() -> None:
    def collect() -> list[str]:
        names: list[str] = []

        async def child() -> None:
            names.append(asyncio.current_task().get_name())

        async def main(ctx: NodeContext) -> None:
            names.append(asyncio.current_task().get_name())
            await ctx.spawn(child())
            await asyncio.create_task(child())
            await ctx.spawn(child(), name="custom")
            await asyncio.gather(child(), child())

        run_one(main)
        return names

    first = collect()
    assert first == ["n1#1/task-1", "n1#1/task-2", "n1#1/task-3", "custom", "n1#1/task-5",
                     "n1#1/task-6"]
    assert collect() == first  # a second world in the same process: the same names


def test_task_names_after_restart() -> None:
    names: list[str] = []

    async def main(ctx: NodeContext) -> None:
        names.append(asyncio.current_task().get_name())
        await asyncio.sleep(10)

    world = make_world()
    node = boot(world, "n1", main)
    world.kernel.call_at(5 * S, node.restart)
    world.kernel.run(until_ns=20 * S)
    assert names == ["n1#1/task-1", "n1#2/task-1"]


# -- clocks ---------------------------------------------------------------------------------------
def test_loop_time_follows_a_skewed_clock() -> None:
    seen: list[tuple[float, int]] = []

    async def main(ctx: NodeContext) -> None:
        loop = asyncio.get_running_loop()
        seen.append((loop.time(), world.kernel.now_ns))
        await asyncio.sleep(1)
        seen.append((loop.time(), world.kernel.now_ns))

    world = make_world()
    node = world.node("n1")
    node.clock.set_offset(0, 5 * S)
    node.clock_changed()
    boot(world, "n1", main)
    world.kernel.run()
    assert seen == [(5.0, 0), (6.0, S)]


def test_loop_time_follows_a_drifting_clock() -> None:
    seen: list[tuple[float, int]] = []

    async def main(ctx: NodeContext) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1.1)  # 1.1 s of local time on a clock 10% fast: 1 s of true time
        seen.append((loop.time(), world.kernel.now_ns))
        await asyncio.sleep(5.5)
        seen.append((loop.time(), world.kernel.now_ns))

    world = make_world()
    node = world.node("n1")
    node.clock.set_drift(0, 100_000)
    node.clock_changed()
    boot(world, "n1", main)
    world.kernel.run()
    assert seen == [(1.1, S), (6.6, 6 * S)]


def test_drift_change_moves_a_pending_sleep() -> None:
    woke: list[tuple[int, int]] = []

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(10)
        woke.append((ctx.now_ns(), world.kernel.now_ns))

    world = make_world()
    node = boot(world, "n1", main)

    def speed_up() -> None:
        node.clock.set_drift(world.kernel.now_ns, 1_000_000)  # local time now runs twice as fast
        node.clock_changed()

    world.kernel.call_at(4 * S, speed_up)
    world.kernel.run()
    assert woke == [(10 * S, 7 * S)]  # 4 s at normal speed, then 6 local seconds in 3 true seconds


@pytest.mark.parametrize(("jump_s", "expected_true_s"), [(5, 5), (-5, 15), (20, 2)])
def test_an_asyncio_timer_moves_when_the_clock_jumps(jump_s: int, expected_true_s: int) -> None:
    woke: list[tuple[int, int]] = []

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(10)  # local deadline: 10 s
        woke.append((ctx.now_ns(), world.kernel.now_ns))

    world = make_world()
    node = boot(world, "n1", main)

    def jump() -> None:
        node.clock.jump(world.kernel.now_ns, jump_s * S)
        node.clock_changed()

    world.kernel.call_at(2 * S, jump)
    world.kernel.run()
    assert len(woke) == 1
    local_ns, true_ns = woke[0]
    assert true_ns == expected_true_s * S
    assert local_ns == max(10 * S, (2 + jump_s) * S)


def test_clock_jumping_forward_and_back_wakes_a_sleep_once() -> None:
    woke: list[int] = []

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(10)
        woke.append(world.kernel.now_ns)

    world = make_world()
    node = boot(world, "n1", main)

    def jump(by_s: int) -> None:
        node.clock.jump(world.kernel.now_ns, by_s * S)
        node.clock_changed()

    world.kernel.call_at(2 * S, jump, 3)
    world.kernel.call_at(2 * S, jump, -3)
    outcome = world.kernel.run()
    assert outcome.reason == "quiescent", outcome.failure
    assert woke == [10 * S]


def test_asyncio_timeout_follows_a_clock_jump() -> None:
    log: list[int] = []

    async def main(ctx: NodeContext) -> None:
        try:
            async with asyncio.timeout(10):
                await asyncio.sleep(100)
        except TimeoutError:
            log.append(world.kernel.now_ns)

    world = make_world()
    node = boot(world, "n1", main)

    def jump() -> None:
        node.clock.jump(world.kernel.now_ns, 7 * S)
        node.clock_changed()

    world.kernel.call_at(1 * S, jump)
    world.kernel.run()
    assert log == [3 * S]


# -- crashes, restarts, pauses --------------------------------------------------------------------
def test_crash_abandons_the_nodes_tasks(recwarn: pytest.WarningsRecorder,
                                         caplog: pytest.LogCaptureFixture) -> None:
    ticks: list[int] = []
    after: list[str] = []

    async def main(ctx: NodeContext) -> None:
        try:
            while True:
                await asyncio.sleep(1)
                ticks.append(world.kernel.now_ns)
        finally:
            after.append("finally ran")  # a crashed process runs no cleanup code

    async def also_waiting(ctx: NodeContext) -> None:
        await asyncio.Event().wait()

    world = make_world()
    node = world.node("n1")
    node.install(lambda ctx: Prog(ctx, main, None))
    node.start()
    ctx = node.context
    ctx.spawn(also_waiting(ctx))
    world.kernel.call_at(3_500_000_000, node.crash)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    outcome = world.kernel.run(until_ns=10 * S)
    assert outcome.reason in ("until", "quiescent")
    assert outcome.failure is None
    assert ticks == [S, 2 * S, 3 * S]
    assert node.loop is None
    assert world.kernel.dropped_stale >= 1
    del ctx
    gc.collect()
    world.kernel.run(until_ns=20 * S)
    assert ticks == [S, 2 * S, 3 * S]
    assert after == []
    assert not [w for w in recwarn if "never awaited" in str(w.message)
                or "destroyed" in str(w.message)]
    assert "Task was destroyed" not in caplog.text


def test_abandoned_tasks_are_not_reported_at_garbage_collection(
        caplog: pytest.LogCaptureFixture) -> None:
    """Even when the world itself is dropped, no "Task was destroyed but it is pending" noise."""
    caplog.set_level(logging.DEBUG, logger="asyncio")

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(100)

    world = make_world()
    node = boot(world, "n1", main)
    world.kernel.call_at(S, node.crash)
    world.kernel.run(until_ns=5 * S)
    del world, node
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert "Task was destroyed" not in caplog.text
    assert not [w for w in caught if "destroyed" in str(w.message)]


def test_a_task_spawned_just_before_a_crash_never_runs_nor_warns() -> None:
    """Spawned, then the node crashes in the same instant, before the task's first step: its code
    never runs, and collecting it gives no "coroutine ... was never awaited" warning."""
    ran: list[str] = []

    async def late(ctx: NodeContext) -> None:
        ran.append("late")

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(1)
        ctx.spawn(late(ctx))
        ctx.halt("crash before the spawned task starts")

    world = make_world()
    boot(world, "n1", main)
    world.kernel.run(until_ns=5 * S)
    assert ran == []
    del world
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_restart_starts_a_fresh_program() -> None:
    programs: list[Prog] = []
    log: list[tuple[int, int, str]] = []

    async def main(ctx: NodeContext) -> None:
        log.append((ctx.boot, world.kernel.now_ns, "start"))
        while True:
            await asyncio.sleep(2)
            log.append((ctx.boot, world.kernel.now_ns, "tick"))

    world = make_world()
    node = boot(world, "n1", main, programs=programs)
    world.kernel.call_at(3 * S, node.restart)
    world.kernel.run(until_ns=6 * S)
    assert len(programs) == 2
    assert programs[0] is not programs[1]
    assert programs[0].ctx.alive is False and programs[1].ctx.alive is True
    assert node.program is programs[1]
    assert log == [(1, 0, "start"), (1, 2 * S, "tick"), (2, 3 * S, "start"), (2, 5 * S, "tick")]
    assert programs[0].task is not None and not programs[0].task.done()  # abandoned, not run
    assert node.stats.starts == 2 and node.stats.crashes == 1


def test_old_incarnation_cannot_schedule_into_the_new_one() -> None:
    """Old code kept alive by a reference (a shared object) must not run in the new incarnation."""
    log: list[str] = []

    async def main(ctx: NodeContext) -> None:
        await asyncio.sleep(100)

    async def ghost() -> None:
        log.append("ghost ran")

    world = make_world()
    programs: list[Prog] = []
    node = boot(world, "n1", main, programs=programs)
    run_due(world)  # boot: the program (and its context) exists from here on
    old_ctx = programs[0].ctx
    world.kernel.call_at(S, node.restart)
    world.kernel.call_at(2 * S, lambda: old_ctx.set_timer(S, log.append, "old timer fired"))
    world.kernel.call_at(2 * S, lambda: old_ctx.spawn(ghost()))
    outcome = world.kernel.run(until_ns=10 * S)
    assert outcome.failure is None
    assert log == []


def test_pause_delays_wake_ups() -> None:
    woke: list[tuple[str, int]] = []

    async def main(ctx: NodeContext) -> None:
        async def sleeper(name: str, delay_s: float) -> None:
            await asyncio.sleep(delay_s)
            woke.append((name, world.kernel.now_ns))

        await asyncio.gather(sleeper("a", 1), sleeper("b", 2), sleeper("c", 5))

    world = make_world()
    node = boot(world, "n1", main)
    world.kernel.call_at(S // 2, node.pause)
    world.kernel.call_at(3 * S, node.resume)
    outcome = world.kernel.run()
    assert outcome.reason == "quiescent"
    assert woke == [("a", 3 * S), ("b", 3 * S), ("c", 5 * S)]


def test_pause_does_not_stop_other_nodes() -> None:
    woke: list[tuple[str, int]] = []

    def main_for(name: str) -> Main:
        async def main(ctx: NodeContext) -> None:
            await asyncio.sleep(1)
            woke.append((name, world.kernel.now_ns))
        return main

    world = make_world()
    n1 = boot(world, "n1", main_for("n1"))
    boot(world, "n2", main_for("n2"))
    run_due(world)  # both have booted and are asleep before the pause
    world.kernel.call_at(0, n1.pause)
    world.kernel.call_at(4 * S, n1.resume)
    world.kernel.run()
    assert woke == [("n2", S), ("n1", 4 * S)]


# -- determinism ----------------------------------------------------------------------------------
def ping_pong_digest(seed: int) -> tuple[str, int]:
    async def pinger(ctx: NodeContext) -> None:
        for index in range(20):
            ctx.send("n2", ("ping", index))
            await asyncio.sleep(0.01)

    def pong(program: Prog, source: str, message: Any) -> None:
        program.ctx.send(source, ("pong", message[1]))
        program.ctx.log("ponged", message[1])

    world = make_world(seed)
    boot(world, "n1", pinger)
    boot(world, "n2", None, pong)
    world.kernel.run(until_ns=10 * S)
    return world.kernel.trace.digest(), world.kernel.steps


def test_same_seed_same_digest_different_seed_different_digest() -> None:
    assert ping_pong_digest(7) == ping_pong_digest(7)
    assert ping_pong_digest(7)[0] != ping_pong_digest(8)[0]


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from tests.test_aio import ping_pong_digest
    print(ping_pong_digest(7)[0])
""")


def test_digest_is_the_same_across_processes_and_hash_seeds() -> None:
    digests = set()
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        completed = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)], env=env, cwd=ROOT,
                                   capture_output=True, text=True, check=True)
        digests.add(completed.stdout.strip())
    assert digests == {ping_pong_digest(7)[0]}


def test_call_soon_handles_answer_as_asyncio_handles_do() -> None:
    """``call_soon``'s handle keeps only its kernel event (for speed) and reads the rest from it:
    what asyncio's ``Handle`` answers, it answers the same."""
    import contextvars

    loop = make_world().node("n1").event_loop()
    context = contextvars.copy_context()
    ours = loop.call_soon(print, 1, 2, context=context)
    reference = asyncio.Handle(print, (1, 2), loop, context)
    assert isinstance(ours, asyncio.Handle)
    assert ours.get_context() is context
    assert ours.cancelled() is reference.cancelled() is False
    assert repr(ours) == repr(reference).replace("<Handle", "<_SoonHandle")
    ours.cancel()
    reference.cancel()
    assert ours.cancelled() is reference.cancelled() is True
    assert "cancelled" in repr(ours)
    assert type(loop.call_soon(print).get_context()) is contextvars.Context  # a copy when none given


def test_a_cancelled_call_soon_never_runs() -> None:
    world = make_world()
    loop = world.node("n1").event_loop()
    ran: list[str] = []
    loop.call_soon(ran.append, "kept")
    loop.call_soon(ran.append, "cancelled").cancel()
    world.kernel.run()
    assert ran == ["kept"]