"""``await ctx.receive()``: async node programs without ``on_message`` read their messages."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.node import NodeContext
from harness.world import Topology, World

S = 1_000_000_000


def make_world(seed: int = 1) -> World:
    return World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}))


class Receiver:
    """No ``on_message``: ``workers`` coroutines each loop on ``receive()`` and log what they get."""

    def __init__(self, ctx: NodeContext, got: list[tuple[str, str, Any]], workers: int = 1,
                 timeout_s: float | None = None) -> None:
        self.ctx, self.got, self.workers, self.timeout_s = ctx, got, workers, timeout_s

    def on_start(self) -> None:
        for worker in range(self.workers):
            self.ctx.spawn(self.serve(f"w{worker}"))

    async def serve(self, worker: str) -> None:
        while True:
            if self.timeout_s is None:
                source, message = await self.ctx.receive()
            else:
                try:
                    source, message = await asyncio.wait_for(self.ctx.receive(), self.timeout_s)
                except TimeoutError:
                    self.got.append((worker, "-", "timeout"))
                    continue
            self.got.append((worker, source, message))
            await asyncio.sleep(0.001)  # busy for a while: the next message may wait in the inbox


class Sender:
    def __init__(self, ctx: NodeContext, plan: list[tuple[float, Any]]) -> None:
        self.ctx, self.plan = ctx, plan

    def on_start(self) -> None:
        for at_s, message in self.plan:
            self.ctx.set_timer(int(at_s * S), self.ctx.send, "n2", message)

    def on_message(self, source: str, message: Any) -> None:
        pass


def run(plan: list[tuple[float, Any]], until_s: float = 5.0, **receiver: Any) -> tuple[World, list[Any]]:
    world = make_world()
    got: list[tuple[str, str, Any]] = []
    world.node("n1").install(lambda ctx: Sender(ctx, plan))
    world.node("n2").install(lambda ctx: Receiver(ctx, got, **receiver))
    world.node("n1").start()
    world.node("n2").start()
    world.kernel.run(until_ns=int(until_s * S))
    return world, got


def test_messages_arrive_in_delivery_order_with_their_source() -> None:
    # A burst: most of it waits in the inbox while the one receiver is busy.
    _, got = run([(0.1, f"m{i}") for i in range(20)])
    assert [message for _, _, message in got] == [f"m{i}" for i in range(20)]
    assert {source for _, source, _ in got} == {"n1"}


def test_waiting_receivers_are_served_in_the_order_they_started_waiting() -> None:
    _, got = run([(0.5, "a"), (1.0, "b"), (1.5, "c")], workers=3)
    assert [(worker, message) for worker, _, message in got] == [("w0", "a"), ("w1", "b"),
                                                                  ("w2", "c")]


def test_a_timed_out_wait_loses_no_message() -> None:
    # Waits of 0.3 s time out before the message at 1.0 s; the message goes to the next wait.
    _, got = run([(1.0, "late")], until_s=1.25, timeout_s=0.3)
    assert [message for _, _, message in got] == ["timeout", "timeout", "timeout", "late"]


def test_a_crash_loses_the_inbox_and_the_next_incarnation_starts_empty() -> None:
    world = make_world()
    got: list[tuple[str, str, Any]] = []

    class Slow(Receiver):
        async def serve(self, worker: str) -> None:
            await asyncio.sleep(10)  # never reads before the crash: messages pile up
            while True:
                self.got.append((worker, *(await self.ctx.receive())))

    world.node("n1").install(lambda ctx: Sender(ctx, [(0.1, "before"), (2.0, "after")]))
    world.node("n2").install(lambda ctx: Slow(ctx, got) if ctx.boot == 1 else Receiver(ctx, got))
    world.node("n1").start()
    world.node("n2").start()
    world.kernel.run(until_ns=1 * S)
    world.node("n2").crash()
    world.node("n2").start()
    world.kernel.run(until_ns=15 * S)
    assert [message for _, _, message in got] == ["after"]  # "before" died with the first boot


def test_a_program_with_on_message_cannot_receive() -> None:
    world = make_world()
    errors: list[str] = []

    class Both(Sender):
        def on_start(self) -> None:
            try:
                self.ctx.receive()
            except RuntimeError as error:
                errors.append(str(error))

    world.node("n1").install(lambda ctx: Both(ctx, []))
    world.node("n1").start()
    world.kernel.run(until_ns=1 * S)
    assert errors and "on_message" in errors[0] and "n1" in errors[0]


def test_on_message_none_means_receive() -> None:
    world = make_world()
    got: list[Any] = []

    class Explicit(Receiver):
        on_message = None

    world.node("n1").install(lambda ctx: Sender(ctx, [(0.1, "x")]))
    world.node("n2").install(lambda ctx: Explicit(ctx, got))
    world.node("n1").start()
    world.node("n2").start()
    world.kernel.run(until_ns=1 * S)
    assert [message for _, _, message in got] == ["x"]


def test_receiving_programs_are_deterministic() -> None:
    def digest(seed: int) -> str:
        world = World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}))
        world.node("n1").install(lambda ctx: Sender(ctx, [(0.1 * i, i) for i in range(30)]))
        world.node("n2").install(lambda ctx: Receiver(ctx, [], workers=2))
        world.node("n1").start()
        world.node("n2").start()
        world.kernel.run(until_ns=5 * S)
        return world.kernel.trace.digest()

    assert digest(3) == digest(3)
    assert digest(3) != digest(4)


def test_a_paused_receiver_gets_its_messages_after_the_pause() -> None:
    world = make_world()
    got: list[tuple[str, str, Any]] = []
    world.node("n1").install(lambda ctx: Sender(ctx, [(0.5, "during")]))
    world.node("n2").install(lambda ctx: Receiver(ctx, got))
    world.node("n1").start()
    world.node("n2").start()
    world.kernel.run(until_ns=int(0.2 * S))
    world.node("n2").pause()
    world.kernel.run(until_ns=2 * S)
    assert got == []
    world.node("n2").resume()
    world.kernel.run(until_ns=3 * S)
    assert [message for _, _, message in got] == ["during"]
