"""Kernel benchmark: the same message-passing workload on SimPy and on Graylink, in one process.

Run it from the repository root (SimPy is the ``bench`` extra)::

    pip install -e '.[bench]'
    python benchmarks/kernel_vs_simpy.py            # about 40 s; --repeats 1 for a quick look

The workload. ``NODES`` (100) nodes pass ``IN_FLIGHT`` (1000) tokens around: 10 per node at the start.
A token is delivered after a delay drawn uniformly from [0.5 ms, 1.5 ms] to a destination drawn
uniformly from all nodes (itself included); on delivery the node sends it on, so 1000 tokens are in
flight at every moment. The run stops after ``DELIVERIES`` (200,000) deliveries. Every variant makes
exactly two random draws per delivery, one for the delay and one for the destination, from a fixed seed.

The variants (deliveries per second of wall time, the best of ``--repeats`` rounds; a round runs
every variant once, so that the machine's load changes touch them alike):

- ``bare heapq loop``: a heap of ``(time, sequence, destination)`` tuples, no callbacks; the floor.
- ``simpy``: SimPy's idiom for message passing. Each node is a process that waits on its ``Store``
  inbox; sending starts a latency process that sleeps the delay, then puts the token into the
  destination's inbox (the "event latency" pattern of SimPy's examples). This is the baseline of the
  ratios.
- ``simpy raw callbacks`` (reference): no processes, one ``Timeout`` per message with a callback.
  Cheaper than the idiom above, but not how SimPy programs are written; printed for context only.
- ``graylink kernel (raw)`` (reference): ``Kernel.call_later`` callbacks, no nodes or network.
- ``graylink callback nodes``: node programs with ``on_message`` that forward with ``NodeContext.send``,
  i.e. through ``World``, ``Network`` (per-link delay, FIFO, statistics) and ``Node.deliver``, with the
  trace digest folded for every event, as a user's system runs.
- ``graylink async nodes``: each node's program has no ``on_message``; it spawns a coroutine
  (``ctx.spawn``) that loops on ``await ctx.receive()`` and forwards every token it receives.
- ``graylink async, asyncio.Queue`` (reference): the same coroutine awaiting an ``asyncio.Queue``
  that ``on_message`` feeds, as one would write it without ``receive``. The queue is pure Python
  (``asyncio/queues.py``): it costs about a tenth more per message.

The last two lines are ``async ratio <async rate / simpy rate>`` and ``ratio <callback rate / simpy
rate>``. Wall time is read with ``time.perf_counter`` here, outside any simulation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, uninstalled

from harness import Kernel, LinkConfig, NodeContext, NodeSpec, Topology, World  # noqa: E402

NODES = 100
IN_FLIGHT = 1000
DELIVERIES = 200_000
SEED = 1
DELAY_MIN_NS = 500_000  # 0.5 ms
DELAY_SPAN_NS = 1_000_000  # delays are uniform in [0.5 ms, 1.5 ms]
LINK = LinkConfig(delay_distribution="uniform", delay_ms_min=0.5, delay_ms_max=1.5)


# -- references -------------------------------------------------------------------------------------
def run_bare_heapq(deliveries: int, seed: int) -> int:
    rng = random.Random(seed)
    draw, draw_node = rng.random, rng.randrange
    heap: list[tuple[float, int, int]] = []
    sequence = 0
    for _ in range(IN_FLIGHT):
        heapq.heappush(heap, (DELAY_MIN_NS + DELAY_SPAN_NS * draw(), sequence, draw_node(NODES)))
        sequence += 1
    for _ in range(deliveries):
        now, _, _destination = heapq.heappop(heap)
        sequence += 1
        heapq.heappush(heap, (now + DELAY_MIN_NS + DELAY_SPAN_NS * draw(), sequence,
                              draw_node(NODES)))
    return deliveries


def run_kernel_raw(deliveries: int, seed: int) -> int:
    kernel = Kernel()
    rng = random.Random(seed)
    draw, draw_node = rng.random, rng.randrange
    delivered = 0

    def deliver(_destination: int) -> None:
        nonlocal delivered
        delivered += 1
        if delivered >= deliveries:
            kernel.stop()
        send()

    def send() -> None:
        kernel.call_later(int(DELAY_MIN_NS + DELAY_SPAN_NS * draw()), deliver, draw_node(NODES))

    for _ in range(IN_FLIGHT):
        send()
    kernel.run()
    return delivered


# -- SimPy --------------------------------------------------------------------------------------------
def run_simpy(deliveries: int, seed: int) -> int:
    import simpy

    env = simpy.Environment()
    rng = random.Random(seed)
    draw, draw_node = rng.random, rng.randrange
    inboxes = [simpy.Store(env) for _ in range(NODES)]
    done = env.event()
    delivered = 0

    def latency(destination: int, token: int):  # the network: sleep the delay, then deliver
        yield env.timeout(DELAY_MIN_NS + DELAY_SPAN_NS * draw())
        inboxes[destination].put(token)

    def node(inbox: simpy.Store):
        nonlocal delivered
        while True:
            token = yield inbox.get()
            delivered += 1
            if delivered >= deliveries and not done.triggered:
                done.succeed()
            env.process(latency(draw_node(NODES), token))

    for inbox in inboxes:
        env.process(node(inbox))
    for token in range(IN_FLIGHT):
        env.process(latency(draw_node(NODES), token))
    env.run(until=done)
    return delivered


def run_simpy_callbacks(deliveries: int, seed: int) -> int:
    import simpy

    env = simpy.Environment()
    rng = random.Random(seed)
    draw, draw_node = rng.random, rng.randrange
    delivered = 0

    def deliver(event: simpy.Event) -> None:
        nonlocal delivered
        delivered += 1
        if delivered >= deliveries:
            raise simpy.core.StopSimulation(None)
        send()

    def send() -> None:
        event = env.timeout(DELAY_MIN_NS + DELAY_SPAN_NS * draw(), value=draw_node(NODES))
        event.callbacks.append(deliver)

    for _ in range(IN_FLIGHT):
        send()
    env.run()
    return delivered


# -- Graylink nodes -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    number: int


class Quota:
    """Counts deliveries over all nodes and stops the kernel at the limit. Nodes count inline
    (``delivered += 1``, then compare), as the SimPy variant does with its ``nonlocal``."""

    def __init__(self, world: World, limit: int) -> None:
        self.kernel = world.kernel
        self.limit = limit
        self.delivered = 0


class Forwarder:
    """A callback-style node program: forward every token to a random node.

    Written as the SimPy variant is: what runs per message is reached through locals or one
    attribute (``send``, ``pick``), not chains of them."""

    def __init__(self, ctx: NodeContext, names: list[str], tokens: list[Token], quota: Quota) -> None:
        self.ctx, self.names, self.tokens, self.quota = ctx, names, tokens, quota
        self.send, self.pick = ctx.send, ctx.rng.randrange

    def on_start(self) -> None:
        for token in self.tokens:
            self.send(self.names[self.pick(NODES)], token)

    def on_message(self, source: str, message: Token) -> None:
        quota = self.quota
        quota.delivered += 1
        if quota.delivered >= quota.limit:
            quota.kernel.stop()
        self.send(self.names[self.pick(NODES)], message)


class ReceivingForwarder(Forwarder):
    """An async node program: a coroutine awaits ``ctx.receive()`` (the program has no ``on_message``)."""

    on_message = None

    def on_start(self) -> None:
        super().on_start()
        self.ctx.spawn(self.serve(), name=f"{self.ctx.name}/serve")

    async def serve(self) -> None:
        receive, send, pick, names, quota = (self.ctx.receive, self.send, self.pick, self.names,
                                             self.quota)
        while True:
            _source, token = await receive()
            quota.delivered += 1
            if quota.delivered >= quota.limit:
                quota.kernel.stop()
            send(names[pick(NODES)], token)


class AsyncForwarder(Forwarder):
    """An async node program: a coroutine awaits an ``asyncio.Queue`` that ``on_message`` feeds."""

    def on_start(self) -> None:
        self.inbox: asyncio.Queue[Token] = asyncio.Queue()
        super().on_start()
        self.ctx.spawn(self.serve(), name=f"{self.ctx.name}/serve")

    def on_message(self, source: str, message: Token) -> None:
        self.inbox.put_nowait(message)

    async def serve(self) -> None:
        get, send, pick, names, quota = self.inbox.get, self.send, self.pick, self.names, self.quota
        while True:
            token = await get()
            quota.delivered += 1
            if quota.delivered >= quota.limit:
                quota.kernel.stop()
            send(names[pick(NODES)], token)


def run_graylink(program: type[Forwarder], deliveries: int, seed: int) -> int:
    names = [f"n{index:03d}" for index in range(NODES)]
    topology = Topology(tuple(NodeSpec(name, f"az-{index % 3}") for index, name in enumerate(names)))
    world = World(seed, topology, link=LINK)
    quota = Quota(world, deliveries)
    per_node = IN_FLIGHT // NODES
    for index, name in enumerate(names):
        tokens = [Token(index * per_node + offset) for offset in range(per_node)]
        world.node(name).install(
            lambda ctx, tokens=tokens: program(ctx, names, tokens, quota))
    for name in names:
        world.node(name).start()
    outcome = world.kernel.run()
    if outcome.reason != "stopped":
        raise RuntimeError(f"the benchmark run ended with {outcome}")
    world.kernel.trace.digest()  # fold the last batch: part of the cost of a run
    return quota.delivered


def run_graylink_callback(deliveries: int, seed: int) -> int:
    return run_graylink(Forwarder, deliveries, seed)


def run_graylink_async(deliveries: int, seed: int) -> int:
    return run_graylink(AsyncForwarder, deliveries, seed)


def run_graylink_receive(deliveries: int, seed: int) -> int:
    return run_graylink(ReceivingForwarder, deliveries, seed)


# -- measuring -----------------------------------------------------------------------------------------
def rate(workload: Callable[[int, int], int], deliveries: int, seed: int) -> float:
    """Deliveries per second of wall time, one run."""
    gc.collect()
    started = time.perf_counter()
    delivered = workload(deliveries, seed)
    elapsed = time.perf_counter() - started
    if delivered != deliveries:
        raise RuntimeError(f"{workload.__name__} delivered {delivered}, expected {deliveries}")
    return delivered / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=DELIVERIES)
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the best counts")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    print(f"workload: {NODES} nodes, {IN_FLIGHT} messages in flight, {args.deliveries} deliveries, "
          f"seed {args.seed}, best of {args.repeats}; Python {sys.version.split()[0]}")
    variants = [
        ("bare heapq loop", run_bare_heapq),
        ("simpy raw callbacks (reference)", run_simpy_callbacks),
        ("simpy", run_simpy),
        ("graylink kernel (raw)", run_kernel_raw),
        ("graylink callback nodes", run_graylink_callback),
        ("graylink async nodes", run_graylink_receive),
        ("graylink async, asyncio.Queue (reference)", run_graylink_async),
    ]
    # Rounds: every variant once per round, the best of the rounds counts. Interleaved, so that a
    # change in the machine's load touches every variant alike, and the ratios stay fair.
    rates = dict.fromkeys((label for label, _ in variants), 0.0)
    for _ in range(args.repeats):
        for label, workload in variants:
            rates[label] = max(rates[label], rate(workload, args.deliveries, args.seed))
    for label, _ in variants:
        print(f"{label:<42} {rates[label]:>10,.0f} deliveries/s")
    print(f"async ratio {rates['graylink async nodes'] / rates['simpy']:.2f}")
    print(f"ratio {rates['graylink callback nodes'] / rates['simpy']:.2f}")

if __name__ == "__main__":
    main()
