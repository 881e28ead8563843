"""The ambient sandbox: simulated time, randomness, uuids and entropy; refused sleeps and threads."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import secrets
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import ambient
from harness.ambient import EPOCH_BASE_NS, AmbientSandbox, active_sandbox, sandbox
from harness.world import Topology, World

ROOT = Path(__file__).resolve().parent.parent
DELAY_NS = 2_000_000_000
LINES: dict[str, int] = {}  # call-site lines recorded by the programs below


def make_world(seed: int) -> World:
    return World(seed, Topology.from_azs({"az-a": ["n1"], "az-b": ["n2"]}))


class Prog:
    """On start, sets a timer that runs ``action`` and records what it returns."""

    def __init__(self, ctx: Any, action: Callable[[], Any], out: list[Any]) -> None:
        self.ctx, self.action, self.out = ctx, action, out

    def on_start(self) -> None:
        self.ctx.set_timer(DELAY_NS, self.on_timer)

    def on_timer(self) -> None:
        self.out.append(self.action())

    def on_message(self, source: str, message: Any) -> None:
        pass


def ambient_values() -> tuple[Any, ...]:
    return (time.time(), time.time_ns(), time.monotonic_ns(), time.perf_counter_ns(),
            random.random(), random.randint(0, 10**9), uuid.uuid4(), os.urandom(8),
            secrets.token_hex(8), random.SystemRandom().random(), random.Random().random())


def run_program(world: World, action: Callable[[], Any], node: str = "n1",
                until_ns: int = 10 * DELAY_NS) -> tuple[list[Any], Any]:
    out: list[Any] = []
    world.node(node).install(lambda ctx: Prog(ctx, action, out))
    world.node(node).start()
    with AmbientSandbox(world):
        outcome = world.kernel.run(until_ns=until_ns)
    return out, outcome


def values_for(seed: int) -> tuple[Any, ...]:
    out, outcome = run_program(make_world(seed), ambient_values)
    assert outcome.failure is None
    return out[0]


def originals() -> dict[Any, Any]:
    return {target: vars(target[0])[target[1]] for target in ambient._TRAMPOLINES}


def test_time_is_the_nodes_local_clock_plus_the_epoch_base() -> None:
    values = values_for(7)
    assert values[0] == (EPOCH_BASE_NS + DELAY_NS) / 1e9
    assert values[1] == EPOCH_BASE_NS + DELAY_NS
    assert values[2] == values[3] == DELAY_NS  # monotonic and perf_counter: no epoch base
    assert datetime.datetime.fromtimestamp(values[0], datetime.timezone.utc) == datetime.datetime(
        2025, 1, 1, 0, 0, 2, tzinfo=datetime.timezone.utc)


def test_a_skewed_node_clock_changes_what_time_time_returns() -> None:
    world = make_world(7)
    offset_ns = 5_000_000_000
    world.node("n1").clock.set_offset(world.kernel.now_ns, offset_ns)
    out, _ = run_program(world, lambda: (time.time_ns(), world.kernel.now_ns))
    local_ns, true_ns = out[0]
    assert local_ns == EPOCH_BASE_NS + true_ns + offset_ns


def test_same_seed_same_values_different_seed_different_values() -> None:
    first, again, other = values_for(11), values_for(11), values_for(12)
    assert first == again
    for index in range(4, len(first)):  # every random source differs with the seed
        assert first[index] != other[index], index


def test_uuid4_has_version_and_variant_bits() -> None:
    generated = values_for(3)[6]
    assert generated.version == 4 and generated.variant == uuid.RFC_4122


def test_random_seed_inside_reseeds_only_the_simulated_generator() -> None:
    state_before = random.getstate()

    def reseed() -> tuple[float, float, float]:
        random.seed(42)
        seeded = random.random()
        random.seed()  # no argument: a seed derived from the world, never os.urandom
        return seeded, random.random(), random.Random().random()

    first = run_program(make_world(5), reseed)[0][0]
    second = run_program(make_world(5), reseed)[0][0]
    assert first == second
    assert first[0] == random.Random(42).random()
    assert random.getstate() == state_before  # the global generator was never touched


def test_originals_are_restored_after_exit_and_after_an_exception() -> None:
    before = originals()
    world = make_world(1)
    with AmbientSandbox(world):
        assert time.time is not before[(time, "time")]
    assert originals() == before
    with pytest.raises(ZeroDivisionError), sandbox(world):
        1 / 0
    assert originals() == before
    assert active_sandbox() is None


def test_nested_sandboxes_restore_in_order() -> None:
    before = originals()
    outer, inner = make_world(1), make_world(2)
    outer.kernel.now_ns, inner.kernel.now_ns = 1_000, 2_000
    first = AmbientSandbox(outer)
    with first:
        with first, AmbientSandbox(inner):  # reentering the same sandbox, then another
            assert time.time_ns() == EPOCH_BASE_NS + 2_000
        assert time.time_ns() == EPOCH_BASE_NS + 1_000
        assert first.active
    assert originals() == before and not first.active


def test_reentering_a_sandbox_on_the_same_world_continues_the_streams() -> None:
    world = make_world(9)
    with sandbox(world):
        first = random.random()
    with sandbox(world):
        second = random.random()
    assert first != second


def test_other_threads_are_unaffected() -> None:
    go, seen = threading.Event(), []
    worker = threading.Thread(target=lambda: (go.wait(), seen.append(time.time())))
    worker.start()  # started before the sandbox: starting threads inside is refused
    with sandbox(make_world(1)):
        go.set()
        worker.join()
    assert seen[0] > EPOCH_BASE_NS / 1e9 + 3600  # the real clock, not simulated time ~0


def start_thread() -> None:
    LINES["thread"] = sys._getframe().f_lineno + 1
    threading.Thread(target=print).start()


def sleep_briefly() -> None:
    LINES["sleep"] = sys._getframe().f_lineno + 1
    time.sleep(0.5)


@pytest.mark.parametrize("action, key, words", [
    (start_thread, "thread", "starting a thread inside a simulation"),
    (sleep_briefly, "sleep", "real sleep inside a simulation"),
])
def test_threads_and_sleep_fail_the_run_naming_the_call_site(action: Callable[[], None], key: str,
                                                            words: str) -> None:
    _, outcome = run_program(make_world(1), action)
    assert outcome.reason == "failure"
    assert outcome.failure.kind == "ambient-nondeterminism"
    assert outcome.failure.node == "n1"
    assert words in outcome.failure.message
    assert f"test_ambient.py:{LINES[key]}" in outcome.failure.message


def test_a_refusal_fails_the_run_even_if_the_code_swallows_it() -> None:
    def swallow() -> str:
        try:
            uuid.uuid1()
        except Exception:  # noqa: BLE001 - the point of the test
            return "swallowed"
        return "not refused"

    out, outcome = run_program(make_world(1), swallow)
    assert out == ["swallowed"]
    assert outcome.reason == "failure" and outcome.failure.kind == "ambient-nondeterminism"
    assert "uuid.uuid1()" in outcome.failure.message


def test_executors_are_refused() -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, outcome = run_program(make_world(1), lambda: ThreadPoolExecutor(1).submit(print))
    assert outcome.failure is not None and outcome.failure.kind == "ambient-nondeterminism"
    assert "test_ambient.py:" in outcome.failure.message  # the user's frame, not concurrent/futures


class AsyncProg(Prog):
    def on_start(self) -> None:
        self.ctx.spawn(self.main())

    async def main(self) -> None:
        await asyncio.sleep(1)
        self.out.append((time.time_ns(), random.random()))


def test_coroutines_get_simulated_values() -> None:
    def run(seed: int) -> list[Any]:
        world, out = make_world(seed), []
        world.node("n2").install(lambda ctx: AsyncProg(ctx, lambda: None, out))
        world.node("n2").start()
        with sandbox(world):
            assert world.kernel.run(until_ns=DELAY_NS).failure is None
        return out

    first = run(4)
    assert first == run(4) and first != run(5)
    assert first[0][0] == EPOCH_BASE_NS + 1_000_000_000


def test_monotonic_holds_still_when_the_clock_jumps_back() -> None:
    world, out = make_world(1), []

    class Jumper(Prog):
        def on_timer(self) -> None:
            node = world.node("n1")
            before = time.monotonic_ns()
            node.clock.jump(world.kernel.now_ns, -1_000_000_000)
            out.append((before, time.monotonic_ns(), time.time_ns() - EPOCH_BASE_NS))

    world.node("n1").install(lambda ctx: Jumper(ctx, lambda: None, out))
    world.node("n1").start()
    with sandbox(world):
        world.kernel.run(until_ns=10 * DELAY_NS)
    before, after, wall = out[0]
    assert after == before == DELAY_NS and wall == DELAY_NS - 1_000_000_000


def test_values_do_not_depend_on_the_hash_seed() -> None:
    script = textwrap.dedent("""
        from tests.test_ambient import values_for
        print(repr(values_for(2024)))
    """)
    outputs = []
    for hash_seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and "UUID(" in outputs[0]
