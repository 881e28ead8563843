"""The dynamo workload: the pure operation generator, and the client program against a fake router."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faker.generator
import pytest

from harness import NodeContext, Rng, Topology, World
from harness import ambient
from harness.ambient import sandbox
from harness.history import FAIL, INFO, OK, History, HistoryEntry
from systems.dynamo.config import WorkloadConfig
from systems.dynamo.items import ItemOperation, apply, freeze_item
from systems.dynamo.messages import ClientReply, ClientRequest, seal, verify
from systems.dynamo.workload import (HOT_KEY_SHARE, ClientOutcome, ClientProgram,
                                     OperationGenerator, key_name, operation_label, summarize)

MS = 1_000_000
S = 1_000_000_000
DRAWS = 20_000


def generate(config: WorkloadConfig, seed: int = 7, count: int = DRAWS) -> list[ItemOperation]:
    generator = OperationGenerator(config, Rng(seed))
    return [generator.next_operation() for _ in range(count)]


# -- the generator ------------------------------------------------------------------------------------
def test_mix_follows_the_configured_ratios() -> None:
    config = WorkloadConfig(put_ratio=0.3, update_ratio=0.1, delete_ratio=0.05)
    kinds = Counter(op.kind for op in generate(config))
    expected = {"put_item": 0.3, "update_item": 0.1, "delete_item": 0.05, "get_item": 0.55}
    for kind, share in expected.items():
        assert kinds[kind] / DRAWS == pytest.approx(share, abs=0.015), (kind, kinds)


def test_consistent_read_ratio() -> None:
    reads = [op for op in generate(WorkloadConfig(consistent_read_ratio=0.25)) if op.kind == "get_item"]
    strong = sum(op.consistent for op in reads)
    assert strong / len(reads) == pytest.approx(0.25, abs=0.02)


def test_conditions_at_the_configured_ratio_and_equals_expects_a_written_version() -> None:
    config = WorkloadConfig(conditional_ratio=0.4, keys=20)
    generator = OperationGenerator(config, Rng(3))
    written: dict[str, int] = {}
    writes = conditional = equals = 0
    for _ in range(DRAWS):
        op = generator.next_operation()
        if not op.is_write:
            assert op.condition is None
            continue
        writes += 1
        if op.condition is not None:
            conditional += 1
            if op.condition.kind == "equals":
                equals += 1
                assert op.condition.attribute == "version"
                assert op.condition.value == written[op.key], "expects the version last written"
        _remember(written, op)
    assert conditional / writes == pytest.approx(0.4, abs=0.02)
    assert equals > 0.1 * conditional


def _remember(written: dict[str, int], op: ItemOperation) -> None:
    attributes = dict(op.item or op.set_attributes)
    if op.kind == "delete_item":
        written.pop(op.key, None)
    elif "version" in attributes:
        written[op.key] = attributes["version"]


def test_compare_and_set_sometimes_succeeds_on_the_generators_own_table() -> None:
    config = WorkloadConfig(conditional_ratio=1.0, keys=5, delete_ratio=0.0)
    table: dict[str, Any] = {}
    outcomes = Counter()
    for op in generate(config, count=2000):
        item, result = apply(table.get(op.key), op)
        table[op.key] = item
        if op.condition is not None and op.condition.kind == "equals":
            outcomes[result.ok] += 1
    assert outcomes[True] > 0 and outcomes[False] > 0, outcomes


def test_note_read_makes_compare_and_set_expect_the_version_read() -> None:
    config = WorkloadConfig(keys=1, conditional_ratio=1.0, put_ratio=1.0, update_ratio=0.0,
                            delete_ratio=0.0)
    expected = []
    for seed in range(20):
        generator = OperationGenerator(config, Rng(seed))
        generator.note_read(key_name(0), {"version": 12345})
        condition = generator.next_operation().condition
        assert condition is not None
        if condition.kind == "equals":
            expected.append(condition.value)
    assert expected and set(expected) == {12345}


def test_uniform_keys_are_roughly_flat() -> None:
    counts = Counter(op.key for op in generate(WorkloadConfig(key_distribution="uniform", keys=10)))
    assert set(counts) == {key_name(i) for i in range(10)}
    assert max(counts.values()) / min(counts.values()) < 1.2


def test_zipfian_skew_matches_the_exponent() -> None:
    config = WorkloadConfig(key_distribution="zipfian", keys=200, zipf_exponent=1.0)
    counts = Counter(op.key for op in generate(config))
    harmonic = sum(1 / rank for rank in range(1, 201))
    assert counts[key_name(0)] / DRAWS == pytest.approx(1 / harmonic, abs=0.015)
    assert counts[key_name(0)] > counts[key_name(1)] > counts[key_name(9)] > counts[key_name(99)]
    assert counts[key_name(0)] / counts[key_name(1)] == pytest.approx(2.0, rel=0.15)


def test_zipfian_exponent_zero_is_uniform() -> None:
    config = WorkloadConfig(key_distribution="zipfian", keys=10, zipf_exponent=0.0)
    counts = Counter(op.key for op in generate(config))
    assert max(counts.values()) / min(counts.values()) < 1.2


def test_hot_key_takes_its_share() -> None:
    counts = Counter(op.key for op in generate(WorkloadConfig(key_distribution="hot_key", keys=50)))
    assert counts[key_name(0)] / DRAWS == pytest.approx(HOT_KEY_SHARE, abs=0.01)
    assert len(counts) == 50


def test_single_key_works_for_every_distribution() -> None:
    for distribution in ("uniform", "zipfian", "hot_key"):
        ops = generate(WorkloadConfig(key_distribution=distribution, keys=1), count=100)
        assert {op.key for op in ops} == {"user#0000"}


def test_write_ratios_over_one_are_rejected_showing_the_values() -> None:
    with pytest.raises(ValueError, match="0.6 \\+ 0.3 \\+ 0.2"):
        OperationGenerator(WorkloadConfig(put_ratio=0.6, update_ratio=0.3, delete_ratio=0.2), Rng(1))


def test_same_seed_same_sequence_different_seed_different() -> None:
    config = WorkloadConfig()
    assert generate(config, seed=11, count=500) == generate(config, seed=11, count=500)
    assert generate(config, seed=11, count=500) != generate(config, seed=12, count=500)


def test_items_carry_faker_values_and_are_json() -> None:
    ops = generate(WorkloadConfig(put_ratio=1.0, update_ratio=0.0, delete_ratio=0.0), count=50)
    for op in ops:
        item = dict(op.item)
        assert set(item) == {"name", "city", "count", "version"}
        assert isinstance(item["name"], str) and item["name"]
        assert isinstance(item["city"], str) and item["city"]
        json.dumps(op.to_json())
    assert len({dict(op.item)["name"] for op in ops}) > 40  # real variety, not a constant


def test_faker_values_do_not_depend_on_other_generators_or_global_state() -> None:
    config = WorkloadConfig(put_ratio=0.5, update_ratio=0.5, delete_ratio=0.0)
    alone_a, alone_b = generate(config, seed=1, count=200), generate(config, seed=2, count=200)
    faker_global = faker.generator.random.getstate()
    python_global = random.getstate()
    a, b = OperationGenerator(config, Rng(1)), OperationGenerator(config, Rng(2))
    interleaved_a, interleaved_b = [], []
    for _ in range(200):
        interleaved_a.append(a.next_operation())
        interleaved_b.append(b.next_operation())
    assert interleaved_a == alone_a and interleaved_b == alone_b
    assert faker.generator.random.getstate() == faker_global, "Faker's shared random was used"
    assert random.getstate() == python_global, "the random module's global state was used"


# -- the client, against a fake router ------------------------------------------------------------------
Answer = Callable[[ClientRequest], ClientReply | None]


@dataclass
class Run:
    world: World
    history: History
    received: list[tuple[str, int, ClientRequest]] = field(default_factory=list)  # router, true ns, req
    outcomes: list[ClientOutcome] = field(default_factory=list)
    clients: list[ClientProgram] = field(default_factory=list)
    processes: itertools.count = field(default_factory=itertools.count)


class FakeRouter:
    """Answers every ClientRequest with ``answer(request)`` (None: stays silent)."""

    def __init__(self, ctx: NodeContext, run: Run, answer: Answer) -> None:
        self.ctx, self.run, self.answer = ctx, run, answer

    def on_message(self, source: str, message: Any) -> None:
        assert isinstance(message, ClientRequest) and verify(message), message
        self.run.received.append((self.ctx.name, self.run.world.kernel.now_ns, message))
        reply = self.answer(message)
        if reply is not None:
            self.ctx.send(source, reply)


def answering(error: str = "", silent_on: Callable[[ClientRequest], bool] = lambda r: False,
              item: dict[str, Any] | None = None) -> Answer:
    def answer(request: ClientRequest) -> ClientReply | None:
        if silent_on(request):
            return None
        if error:
            return seal(ClientReply(request.request_id, False, error=error))
        found = freeze_item(item) if request.operation.kind == "get_item" else None
        return seal(ClientReply(request.request_id, True, item=found))
    return answer


def start(answer: Answer, *, seed: int = 1, config: WorkloadConfig | None = None,
          timeout_ms: float = 500.0, client_offset_ns: int = 0, verify_checksums: bool = True,
          routers_answer: dict[str, Answer] | None = None) -> Run:
    world = World(seed, Topology.from_azs({"az-a": ["c1", "r1"], "az-b": ["r2"]}))
    run = Run(world, History())
    config = config or WorkloadConfig(operations_per_s=10.0)
    for router in ("r1", "r2"):
        router_answer = (routers_answer or {}).get(router, answer)
        world.node(router).install(lambda ctx, a=router_answer: FakeRouter(ctx, run, a))
        world.node(router).start()

    def client(ctx: NodeContext) -> ClientProgram:
        program = ClientProgram(ctx, ("r1", "r2"), config, timeout_ms, run.history,
                                lambda: world.kernel.now_ns, run.processes.__next__,
                                run.outcomes.append, verify_checksums)
        run.clients.append(program)
        return program

    world.node("c1").clock.set_offset(0, client_offset_ns)
    world.node("c1").install(client)
    world.node("c1").start()
    return run


def simulate(answer: Answer, until_s: float = 3.0, **options: Any) -> Run:
    run = start(answer, **options)
    outcome = run.world.kernel.run(until_ns=int(until_s * S))
    assert outcome.failure is None, outcome.failure
    return run


def completions(run: Run) -> list[HistoryEntry]:
    return [e for e in run.history if e.type != "invoke"]


def test_ok_replies_record_ok_with_the_item_read() -> None:
    run = simulate(answering(item={"name": "Ada", "version": 3}))
    ops = run.history.operations()
    assert len(ops) > 10 and all(op.completion == OK for op in ops)
    for op in ops:
        assert op.result == ({"name": "Ada", "version": 3} if op.f == "get_item" else None)
        assert op.key.startswith("user#")
    assert len({op.process for op in ops}) == 1, "no info: one process throughout"


def test_absent_item_reads_as_none() -> None:
    run = simulate(answering(item=None))
    reads = [op for op in run.history.operations() if op.f == "get_item"]
    assert reads and all(op.completion == OK and op.result is None for op in reads)


def test_condition_failed_is_fail() -> None:
    run = simulate(answering(error="condition_failed"),
                   config=WorkloadConfig(operations_per_s=10.0, put_ratio=1.0, update_ratio=0.0,
                                         delete_ratio=0.0, conditional_ratio=1.0))
    assert {(e.type, e.error) for e in completions(run)} == {(FAIL, "condition_failed")}


def test_unavailable_writes_are_info_with_a_fresh_process_and_reads_fail() -> None:
    run = simulate(answering(error="unavailable"))
    ops = run.history.operations()
    writes = [op for op in ops if op.f != "get_item"]
    reads = [op for op in ops if op.f == "get_item"]
    assert writes and reads
    assert all(op.completion == INFO and op.error == "unavailable" for op in writes)
    assert all(op.completion == FAIL and op.error == "unavailable" for op in reads)
    for earlier, later in itertools.pairwise(ops):
        if earlier.completion == INFO:
            assert later.process != earlier.process, "a process with an unknown outcome goes on"
        else:
            assert later.process == earlier.process
    assert run.clients[0].stats.processes == sorted({op.process for op in ops})


def test_timeouts_are_info_for_writes_and_fail_for_reads_after_exactly_the_timeout() -> None:
    run = simulate(answering(silent_on=lambda r: True), until_s=10.0, timeout_ms=400.0)
    ops = run.history.operations()
    assert {(op.f == "get_item", op.completion) for op in ops} == {(True, FAIL), (False, INFO)}
    assert all(op.error == "timeout" for op in ops)
    assert all(op.completed_ns - op.invoked_ns == 400 * MS for op in ops if op.completed_ns)


def test_history_uses_true_time_even_when_the_client_clock_is_skewed() -> None:
    run = simulate(answering(), client_offset_ns=3_600 * S)
    invokes = [e for e in run.history if e.type == "invoke"]
    assert len(invokes) == len(run.received)
    for invoke, (_, received_ns, _) in zip(invokes, run.received):
        assert 0 <= received_ns - invoke.time_ns <= 2 * MS  # one network hop, not an hour
    assert all(e.time_ns <= 3 * S for e in run.history)


def test_the_local_router_is_preferred_and_a_silent_one_is_failed_over() -> None:
    healthy = simulate(answering())
    assert {router for router, _, _ in healthy.received} == {"r1"}
    failing = simulate(answering(), until_s=10.0,
                       routers_answer={"r1": answering(silent_on=lambda r: True)})
    routers = [router for router, _, _ in failing.received]
    assert "r2" in routers
    ok = [op for op in failing.history.operations() if op.completion == OK]
    assert ok, "after a timeout the client reaches the other router"


def test_idle_client_does_nothing_and_takes_no_process() -> None:
    run = simulate(answering(), config=WorkloadConfig(operations_per_s=0.0))
    assert len(run.history) == 0 and not run.received
    assert next(run.processes) == 0


def test_crash_leaves_the_operation_open_and_restart_takes_a_fresh_process() -> None:
    run = start(answering(silent_on=lambda r: True), timeout_ms=5_000.0)
    client = run.world.node("c1")
    run.world.kernel.run(until_ns=2 * S)
    assert [e.type for e in run.history] == ["invoke"], "one operation, in flight"
    client.restart()
    outcome = run.world.kernel.run(until_ns=4 * S)
    assert outcome.failure is None
    ops = run.history.operations()
    assert ops[0].completion is None  # never completed: unknown
    assert ops[1].process != ops[0].process
    request_ids = [request.request_id for _, _, request in run.received]
    assert len(set(request_ids)) == len(request_ids), "request ids unique across incarnations"


def test_a_corrupt_reply_is_dropped_when_verifying_and_accepted_when_not() -> None:
    def corrupt(request: ClientRequest) -> ClientReply:
        reply = seal(ClientReply(request.request_id, True))
        return dataclasses.replace(reply, checksum=reply.checksum ^ 1)

    checked = simulate(corrupt, until_s=5.0, timeout_ms=300.0)
    assert all(e.error == "timeout" for e in completions(checked))
    assert checked.clients[0].stats.corrupt_replies == len(checked.received)
    unchecked = simulate(corrupt, until_s=5.0, timeout_ms=300.0, verify_checksums=False)
    assert all(e.type == OK for e in completions(unchecked))


def test_observe_sees_every_completion() -> None:
    run = simulate(answering(error="unavailable"))
    entries = completions(run)
    assert [(o.process, o.type, o.error, o.completed_ns) for o in run.outcomes] == \
        [(e.process, e.type, e.error, e.time_ns) for e in entries]
    assert {o.router for o in run.outcomes} == {"r1"} and {o.client for o in run.outcomes} == {"c1"}


def test_the_client_is_deterministic_per_seed() -> None:
    def lines(seed: int) -> list[str]:
        return [e.to_json() for e in simulate(answering(), seed=seed).history]
    assert lines(5) == lines(5)
    assert lines(5) != lines(6)


def test_runs_inside_the_ambient_sandbox_without_drawing_its_streams() -> None:
    run = start(answering(), config=WorkloadConfig(operations_per_s=20.0, put_ratio=0.5))
    with sandbox(run.world):
        outcome = run.world.kernel.run(until_ns=3 * S)
    assert outcome.failure is None, outcome.failure
    assert any(op.f == "put_item" and op.completion == OK for op in run.history.operations())
    streams, fresh = ambient._streams_by_world[run.world], run.world.rng
    assert streams.seeds.getrandbits(64) == fresh.fork("ambient/seeds").getrandbits(64)
    assert streams.random.random() == fresh.fork("ambient/random").random_instance().random()


def test_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    run = simulate(answering(error="unavailable", silent_on=lambda r: r.request_id % 3 == 0),
                   until_s=6.0)
    path = tmp_path / "history.jsonl"
    run.history.write_jsonl(path)
    read_back = [HistoryEntry(**json.loads(line)) for line in path.read_text().splitlines()]
    assert read_back == run.history.entries
    assert {e.type for e in read_back} == {"invoke", FAIL, INFO}


# -- summaries ------------------------------------------------------------------------------------------
def test_summarize_counts_outcomes_and_ok_latencies() -> None:
    history = History()
    put = history.invoke(0, "put_item", "user#0000", {"kind": "put_item"}, 0)
    history.complete(put, OK, None, 4 * MS)
    read = history.invoke(1, "get_item", "user#0000", {"kind": "get_item", "consistent": False}, 1)
    history.complete(read, FAIL, None, 9, error="unavailable")
    history.invoke(2, "delete_item", "user#0001", {"kind": "delete_item"}, 5)
    summary = summarize(history)
    assert summary.counts == {"put_item": {OK: 1}, "get_item/eventual": {FAIL: 1},
                              "delete_item": {"open": 1}}
    assert summary.latencies_ns == {"put_item": (4 * MS,)}
    assert summary.percentile_ms("put_item", 0.99) == 4.0
    assert summary.percentile_ms("get_item/strong", 0.5) is None
    assert summary.total(OK) == 1
    json.dumps(summary.to_json())
    assert operation_label("get_item", {"consistent": True}) == "get_item/strong"


def test_summarize_a_simulated_history() -> None:
    summary = summarize(simulate(answering()).history)
    assert summary.total(OK) == sum(len(v) for v in summary.latencies_ns.values()) > 10
    assert all(0 < latency <= 4 * MS for v in summary.latencies_ns.values() for latency in v)
