"""The workload: clients that issue DynamoDB-shaped operations and record them in a History.

Theory of operation. Two layers, the lower one pure.

``OperationGenerator`` turns a seeded stream into operations, with no clock and no I/O. Every draw
comes from the ``rng`` it is given, in a fixed order per operation (the kind, the key, then the
payload), so one seed always gives one sequence. The mix: ``put_ratio``, ``update_ratio`` and
``delete_ratio`` of the operations are those writes, the rest are ``get_item`` reads, of which
``consistent_read_ratio`` are strongly consistent. ``conditional_ratio`` of the writes carry a
``Condition``: ``equals`` on the ``version`` attribute with a version this generator last wrote (or
read) for the key, so compare-and-set sometimes succeeds; else ``exists`` or ``not_exists`` on the item.
Keys are ``user#0000`` … (``keys`` of them), chosen by ``key_distribution``:

- ``uniform``: every key alike;
- ``zipfian``: key of rank i (from 0) has weight 1/(i+1)^zipf_exponent, so ``user#0000`` is the
  hottest; sampled by bisecting a precomputed cumulative distribution (cached per (keys, exponent));
- ``hot_key``: ``HOT_KEY_SHARE`` (90%) of operations go to ``user#0000``, the rest uniformly to the
  others.

Item values come from Faker: ``{"name", "city", "count", "version"}`` (a name is a first and a last
name); ``version`` counts this generator's writes (1, 2, 3…, the optimistic-locking attribute of
DynamoDB practice), ``count`` is what ``update_item`` adds to. Faker is used without touching global state: one Faker instance per
process (building one costs ~30 ms, the import ~200 ms), and before every use its ``random`` is set to
the generator's own ``random.Random``, forked from the generator's rng. Faker's ``seed()`` (global) and
``seed_instance()`` (which may seed from the ambient entropy) are never called; weighting is off
(``use_weighting=False``: uniform picks from Faker's word lists, ~10x faster per value); no provider
that reads the clock is used. The module imports Faker at import time, outside any run, because the
import itself creates an unseeded ``random.Random``, which inside a run would draw on the sandbox's
ambient seed stream.

``ClientProgram`` is a node program. Its ``on_start`` spawns one ``async def`` loop on the node's
virtual-time event loop: sleep an exponential gap (mean 1/``operations_per_s`` of the node's clock),
take the next operation, send a sealed ``ClientRequest`` to a router, await the ``ClientReply`` with
``asyncio.wait_for`` (``timeout_ms``), record the outcome, repeat. One operation is outstanding at a
time: a slow operation delays the next (no backlog). ``operations_per_s == 0``: the client idles.

Router choice: the routers in the client's own AZ (``ctx.az_of``) are preferred (a random one of them
if several), as a client of a regional endpoint reaches the nearest; with none there, a random router.
After an operation that got no reply, the next one goes to a random router of all, so a dead local
router does not silence its clients for the rest of the run.

Request ids are ``boot << 32 | n``: unique across the node's incarnations too, so a router that keys by
(client, id) never answers a new incarnation's request with an old one's result.

Recording, in the History (``harness.history``), with TRUE time: ``now_true_ns`` is the test
observer's clock (the system passes ``lambda: world.kernel.now_ns``), not the client's, which may be
skewed; real-time order between clients is what linearizability respects. The node program itself
still never reads true time for its behaviour (timeouts and pacing run on its own clock). Outcomes:

    reply ok                      → ok    (get_item: the item read as a dict, or None; writes: None)
    reply condition_failed        → fail  (the write certainly took no effect)
    get_item, any error/timeout   → fail  (a read has no effect)
    write, any other error/timeout→ info  (unknown: it may take effect at any time, or never)

Process ids follow Jepsen: a process performs one operation at a time, and a process whose operation
ended ``info`` (or was left open by a crash) never invokes again. So the client takes a fresh process
id from ``next_process()`` at every start and after every ``info``. A crash leaves the open operation
without a completion, which the checkers read as unknown.

Replies are checked against their checksum when ``verify_checksums`` (the system passes M14's switch
and the ``skip_checksum_verification`` bug); a corrupt reply is dropped, as if lost.

``summarize(history)`` condenses a history for metrics: counts per operation label and outcome, and
true-time latencies of ``ok`` operations per label (reads split into strong and eventual).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faker import Faker  # at import time, never inside a run: see the module docstring

from harness import NodeContext, Rng
from harness.history import FAIL, INFO, OK, History, HistoryEntry, pair_operations
from systems.dynamo.config import WorkloadConfig
from systems.dynamo.items import Condition, Item, ItemOperation, freeze_item
from systems.dynamo.messages import ClientReply, ClientRequest, seal, verify

__all__ = ["OperationGenerator", "ClientProgram", "ClientOutcome", "WorkloadSummary", "summarize",
           "operation_label", "outcome_of", "key_name", "HOT_KEY_SHARE"]

HOT_KEY_SHARE = 0.9  # hot_key: share of operations that go to the hot key, user#0000
_RATIO_SLACK = 1e-9  # floating-point slack when checking that the write ratios sum to at most 1
_COUNT_MAX = 100  # put_item: initial "count" in [0, _COUNT_MAX]
_ADD_MAX = 5  # update_item: "count" grows by [1, _ADD_MAX]
_REQUEST_ID_BITS = 32  # request id = boot << 32 | sequence number within the boot


# -- operations -------------------------------------------------------------------------------------
def key_name(index: int) -> str:
    """The partition key of rank ``index``: ``user#0042``."""
    return f"user#{index:04d}"


@functools.lru_cache(maxsize=16)
def _zipf_cdf(keys: int, exponent: float) -> tuple[float, ...]:
    """Cumulative zipfian weights of ranks 0..keys-1, normalised; the last is exactly 1.0."""
    weights = [1.0 / (rank + 1) ** exponent for rank in range(keys)]
    total = math.fsum(weights)
    cumulative, running = [], 0.0
    for weight in weights:
        running += weight
        cumulative.append(running / total)
    cumulative[-1] = 1.0
    return tuple(cumulative)


@functools.cache
def _faker() -> Faker:
    """The process's one Faker; callers set its ``random`` before every use (stateless otherwise)."""
    return Faker(use_weighting=False)


class OperationGenerator:
    """A seeded, pure source of operations following a ``WorkloadConfig`` (see the module docstring)."""

    def __init__(self, config: WorkloadConfig, rng: Rng) -> None:
        _check_ratios(config)
        self.config = config
        self._rng = rng
        self._values = rng.fork("values").random_instance()  # Faker's stream, apart from the mix
        self._keys = tuple(key_name(index) for index in range(config.keys))
        self._cdf = (_zipf_cdf(config.keys, config.zipf_exponent)
                     if config.key_distribution == "zipfian" else ())
        self._versions: dict[str, int] = {}  # key → the version last written or read here
        self._writes = 0

    def next_operation(self) -> ItemOperation:
        kind = self._next_kind()
        key = self._next_key()
        if kind == "get_item":
            return ItemOperation("get_item", key,
                                 consistent=self._rng.chance(self.config.consistent_read_ratio))
        condition = self._next_condition(key)
        if kind == "put_item":
            return ItemOperation("put_item", key, item=self._new_item(key), condition=condition)
        if kind == "update_item":
            return self._new_update(key, condition)
        self._versions.pop(key, None)
        return ItemOperation("delete_item", key, condition=condition)

    def note_read(self, key: str, item: Item | None) -> None:
        """Remember the version read, so a later compare-and-set can expect it (read-modify-write)."""
        version = None if item is None else item.get("version")
        if isinstance(version, int):
            self._versions[key] = version

    # -- draws, in a fixed order ------------------------------------------------------------------
    def _next_kind(self) -> str:
        draw, config = self._rng.random(), self.config
        if draw < config.put_ratio:
            return "put_item"
        if draw < config.put_ratio + config.update_ratio:
            return "update_item"
        if draw < config.put_ratio + config.update_ratio + config.delete_ratio:
            return "delete_item"
        return "get_item"

    def _next_key(self) -> str:
        distribution = self.config.key_distribution
        if distribution == "uniform":
            return self._keys[self._rng.randrange(len(self._keys))]
        if distribution == "zipfian":
            rank = bisect.bisect_right(self._cdf, self._rng.random())
            return self._keys[min(rank, len(self._keys) - 1)]
        if distribution == "hot_key":
            if len(self._keys) == 1 or self._rng.random() < HOT_KEY_SHARE:
                return self._keys[0]
            return self._keys[1 + self._rng.randrange(len(self._keys) - 1)]
        raise ValueError(f"key_distribution must be uniform, zipfian or hot_key, got {distribution!r}")

    def _next_condition(self, key: str) -> Condition | None:
        if not self._rng.chance(self.config.conditional_ratio):
            return None
        version = self._versions.get(key)
        draw = self._rng.random()
        if version is not None and draw < 0.5:
            return Condition("equals", "version", version)
        return Condition("exists") if draw < 0.75 else Condition("not_exists")

    def _new_item(self, key: str) -> tuple[tuple[str, Any], ...]:
        fake = self._fake()
        name = f"{fake.first_name()} {fake.last_name()}"  # 10x cheaper than fake.name()'s template
        item = {"name": name, "city": fake.city(),
                "count": self._values.randint(0, _COUNT_MAX), "version": self._next_version(key)}
        frozen = freeze_item(item)
        assert frozen is not None
        return frozen

    def _new_update(self, key: str, condition: Condition | None) -> ItemOperation:
        city = self._fake().city()
        set_attributes = (("city", city), ("version", self._next_version(key)))
        add_attributes = (("count", self._values.randint(1, _ADD_MAX)),)
        return ItemOperation("update_item", key, set_attributes=set_attributes,
                             add_attributes=add_attributes, condition=condition)

    def _next_version(self, key: str) -> int:
        self._writes += 1
        self._versions[key] = self._writes
        return self._writes

    def _fake(self) -> Faker:
        fake = _faker()
        fake.random = self._values  # this generator's stream: interleaving generators never mix
        return fake


def _check_ratios(config: WorkloadConfig) -> None:
    writes = config.put_ratio + config.update_ratio + config.delete_ratio
    if writes > 1.0 + _RATIO_SLACK:
        raise ValueError(f"put_ratio + update_ratio + delete_ratio must be at most 1, got "
                         f"{config.put_ratio} + {config.update_ratio} + {config.delete_ratio} = "
                         f"{writes}")


# -- the client -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientOutcome:
    """One finished operation, handed to ``observe`` (times are true time, in nanoseconds)."""

    client: str  # the client node
    process: int
    kind: str  # put_item | get_item | delete_item | update_item
    consistent: bool  # get_item: strongly consistent (meaningless for writes)
    key: str
    type: str  # ok | fail | info
    error: str  # the reply's error, "timeout", or ""
    router: str
    invoked_ns: int
    completed_ns: int


@dataclass(slots=True)
class ClientStatistics:
    operations: int = 0
    replies: int = 0
    timeouts: int = 0
    late_replies: int = 0  # arrived after their operation timed out (or from another incarnation)
    corrupt_replies: int = 0  # failed the checksum: dropped
    processes: list[int] = field(default_factory=list)  # the process ids this incarnation used


class ClientProgram:
    """A client node's program: one operation at a time, each recorded in ``history``."""

    def __init__(self, ctx: NodeContext, routers: tuple[str, ...], config: WorkloadConfig,
                 timeout_ms: float, history: History, now_true_ns: Callable[[], int],
                 next_process: Callable[[], int],
                 observe: Callable[[ClientOutcome], None] | None = None,
                 verify_checksums: bool = True,
                 stop: Callable[[], bool] | None = None) -> None:
        if not routers:
            raise ValueError(f"client {ctx.name} needs at least one router, got {routers!r}")
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        self.ctx = ctx
        self.config = config
        self.history = history
        self.stats = ClientStatistics()
        self._routers = routers
        self._local_routers = tuple(r for r in routers if ctx.az_of(r) == ctx.az)
        self._timeout_s = timeout_ms / 1000.0
        self._now_true_ns = now_true_ns  # the observer's clock, for the history only
        self._next_process = next_process
        self._observe = observe
        self._verify = verify_checksums
        self._generator = OperationGenerator(config, ctx.rng.fork("operations"))
        self._pacing = ctx.rng.fork("pacing")
        self._pending: dict[int, asyncio.Future[ClientReply]] = {}
        self._sequence = 0
        self._failover = False  # the last operation got no reply: try any router next
        # The test observer's signal that the workload is over (the quiet period before the final
        # checks, when replicas must converge); like ``now_true_ns``, not the client's own view.
        self._stop = stop
        self.process = -1

    def on_start(self) -> None:
        if self.config.operations_per_s <= 0:
            return  # idle
        self._new_process()
        self.ctx.spawn(self._run(), name=f"{self.ctx.name}/workload")

    def on_message(self, source: str, message: Any) -> None:
        if not isinstance(message, ClientReply):
            return
        if self._verify and not verify(message):
            self.stats.corrupt_replies += 1
            self.ctx.log("client-corrupt-reply", source)
            return
        future = self._pending.pop(message.request_id, None)
        if future is None or future.done():
            self.stats.late_replies += 1
            return
        future.set_result(message)

    def statistics(self) -> dict[str, Any]:
        stats = self.stats
        return {"operations": stats.operations, "replies": stats.replies, "timeouts": stats.timeouts,
                "late_replies": stats.late_replies, "corrupt_replies": stats.corrupt_replies,
                "processes": list(stats.processes)}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._pacing.expovariate(self.config.operations_per_s))
            if self._stop is not None and self._stop():
                return
            await self._perform(self._generator.next_operation())

    async def _perform(self, operation: ItemOperation) -> None:
        self.stats.operations += 1
        request_id = self._new_request_id()
        router = self._choose_router()
        invocation = self.history.invoke(self.process, operation.kind, operation.key,
                                         operation.to_json(), self._now_true_ns(), node=self.ctx.name)
        reply = await self._call(router, ClientRequest(request_id, operation))
        self._failover = reply is None
        self._record(invocation, operation, router, reply)

    async def _call(self, router: str, request: ClientRequest) -> ClientReply | None:
        """The reply, or None if none came within the timeout."""
        future: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = future
        self.ctx.send(router, seal(request))
        try:
            reply = await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            self._pending.pop(request.request_id, None)
            self.stats.timeouts += 1
            return None
        self.stats.replies += 1
        return reply

    def _record(self, invocation: HistoryEntry, operation: ItemOperation, router: str,
                reply: ClientReply | None) -> None:
        type_, value, error = outcome_of(operation, reply)
        if type_ == OK and operation.kind == "get_item":
            self._generator.note_read(operation.key, value)
        completion = self.history.complete(invocation, type_, value, self._now_true_ns(),
                                           error=error or None)
        if self._observe is not None:
            self._observe(ClientOutcome(self.ctx.name, invocation.process, operation.kind,
                                        operation.consistent, operation.key, type_, error, router,
                                        invocation.time_ns, completion.time_ns))
        if type_ == INFO:
            self._new_process()  # Jepsen: a process with an unknown outcome never invokes again

    def _choose_router(self) -> str:
        candidates = self._local_routers if self._local_routers and not self._failover else self._routers
        return candidates[0] if len(candidates) == 1 else self._pacing.choice(candidates)

    def _new_request_id(self) -> int:
        self._sequence += 1
        return (self.ctx.boot << _REQUEST_ID_BITS) | self._sequence

    def _new_process(self) -> None:
        self.process = self._next_process()
        self.stats.processes.append(self.process)


def outcome_of(operation: ItemOperation, reply: ClientReply | None) -> tuple[str, Any, str]:
    """(history type, value, error) for an operation's reply (None: no reply in time)."""
    if reply is not None and reply.ok:
        value = None if reply.item is None or operation.kind != "get_item" else dict(reply.item)
        return OK, value, ""
    error = "timeout" if reply is None else (reply.error or "error")
    if not operation.is_write or error == "condition_failed":
        return FAIL, None, error
    return INFO, None, error


# -- summaries for metrics --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    """Outcome counts and ok latencies per operation label (see ``operation_label``)."""

    counts: dict[str, dict[str, int]]  # label → ok | fail | info | open → operations
    latencies_ns: dict[str, tuple[int, ...]]  # label → sorted true-time latencies of ok operations

    def total(self, outcome: str) -> int:
        return sum(by_outcome.get(outcome, 0) for by_outcome in self.counts.values())

    def percentile_ms(self, label: str, fraction: float) -> float | None:
        """Nearest-rank percentile (``fraction`` in (0, 1]) of ok latencies; None if there are none."""
        values = self.latencies_ns.get(label, ())
        if not values:
            return None
        rank = max(1, math.ceil(fraction * len(values)))
        return values[min(rank, len(values)) - 1] / 1e6

    def to_json(self) -> dict[str, Any]:
        percentiles = {label: {name: self.percentile_ms(label, q)
                               for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
                       for label in sorted(self.latencies_ns)}
        return {"counts": {label: dict(sorted(c.items())) for label, c in sorted(self.counts.items())},
                "latency_ms": percentiles}


def operation_label(f: str, argument: Any) -> str:
    """``f``, with reads split: ``get_item/strong`` or ``get_item/eventual``."""
    if f == "get_item" and isinstance(argument, dict):
        return "get_item/strong" if argument.get("consistent", True) else "get_item/eventual"
    return f


def summarize(history: History | Iterable[HistoryEntry]) -> WorkloadSummary:
    """Counts by label and outcome (``open``: never completed) and ok latencies, in true time."""
    counts: dict[str, dict[str, int]] = {}
    latencies: dict[str, list[int]] = {}
    for operation in pair_operations(history):
        label = operation_label(operation.f, operation.argument)
        outcome = operation.completion or "open"
        by_outcome = counts.setdefault(label, {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
        if outcome == OK and operation.completed_ns is not None:
            latencies.setdefault(label, []).append(operation.completed_ns - operation.invoked_ns)
    return WorkloadSummary(counts, {label: tuple(sorted(v)) for label, v in latencies.items()})

