"""Client-side canaries, the alarm on what they see, and the automation the alarm sets off (M28, M29;
S4).

Why. Some gray failures are invisible from the inside: when the routers cannot reach a leader but its
replicas can (S4), the replica group sees nothing wrong, elects nobody, and the storage nodes' own
availability figures stay perfect, while every write to the partition fails. The paper's answer is to
measure availability from the outside as well: synthetic clients in every AZ, through every endpoint,
and alarms on what they see. What happens after the alarm is not described; we infer automation
that moves the partition's leadership away (``mitigations.canary_remediation``).

Canaries (``CanaryProgram``, M29). One canary node per AZ (role ``canary``, added when
``canaries.enabled``). For every partition and every router of its AZ (every router if its AZ has
none), it sends a probe every ``interval_ms`` of its own clock, on a key of its own that hashes into
that partition: alternately a ``put_item`` and a strongly consistent ``get_item`` (both need the
leader). Probes run concurrently (one does not wait for the last to finish), each as a sealed
``ClientRequest`` like a client's. A probe *succeeds* if the router answers ok (or with a false
condition); an error reply or no reply within ``timeout_ms`` is a failure. Every finished probe goes,
stamped with true time by the observer, to the ``CanaryMonitor``. Canary keys are not in the clients'
History, so the checkers never judge them; canaries stop when the clients do (the quiet period).

The alarm (``Alarm``, M28). Per partition, the probes that completed in the last ``alarm_window_s``.
The alarm fires for a partition when at least ``alarm_min_probes`` completed there and at least
``alarm_error_ratio`` of them failed; it clears when that stops being true, and may fire again later.
``ignore_before(partition, t)`` drops the evidence of probes invoked before ``t`` (after a
remediation, probes already in flight towards the old leader must not accuse the new one).

The automation (``CanaryMonitor``, S4 remediation [inferred]). When the alarm fires and
``mitigations.canary_remediation`` is on, after ``remediation_delay_ms`` the automation looks up the
partition's leader in the metadata service's map (the control plane's view, kept current by M12's
pushes) and marks that node ineligible for leadership for ``ineligible_s`` (M11: it hands over at
once). The partition's older evidence is then ignored, so if the new leader is unreachable too, a
fresh alarm moves leadership again. The automation acts at most once per alarm. The monitor and the
automation stand for a control-plane service outside the simulated nodes: like the History's
observer they read true time, and their actions are kernel events (as a deploy tool's would be).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import NodeContext
from systems.dynamo.config import CanaryConfig
from systems.dynamo.items import ItemOperation
from systems.dynamo.messages import ClientReply, ClientRequest, PartitionEntry, seal, verify
from systems.dynamo.partitioning import find_partition

__all__ = ["Probe", "AlarmEvent", "RemediationRecord", "Alarm", "CanaryMonitor", "CanaryProgram",
           "probe_key"]

_NS_PER_MS = 1_000_000
_REQUEST_ID_BITS = 32
_KEY_SEARCH_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Probe:
    """One finished probe (times are true time, in nanoseconds)."""

    canary: str
    az: str
    router: str
    partition: int
    kind: str  # put_item | get_item
    invoked_ns: int
    completed_ns: int
    ok: bool
    error: str  # the reply's error, "timeout", or ""


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """The alarm fired for a partition: ``failed`` of ``probes`` in the window had failed."""

    time_ns: int
    partition: int
    probes: int
    failed: int
    onset_ns: int  # invocation of the earliest failed probe in the window: the evidence starts here


@dataclass(frozen=True, slots=True)
class RemediationRecord:
    """What the automation did for an alarm: ``node`` made ineligible until ``until_ns`` (no node:
    the metadata service named no leader, so nothing was done)."""

    time_ns: int
    partition: int
    node: str | None
    until_ns: int


def probe_key(canary: str, partition: int, partition_map: Sequence[PartitionEntry]) -> str:
    """The first key ``canary/<canary>/p<P>/<i>`` (i = 0, 1, …) that hashes into ``partition``."""
    for index in range(_KEY_SEARCH_LIMIT):
        key = f"canary/{canary}/p{partition}/{index}"
        if find_partition(partition_map, key).partition == partition:
            return key
    raise ValueError(f"no canary key hashes into partition {partition} within "
                     f"{_KEY_SEARCH_LIMIT} tries")


# -- the alarm (sans-I/O) -------------------------------------------------------------------------------
class Alarm:
    """M28: fires per partition when enough recent probes failed (see the module docstring)."""

    def __init__(self, window_ns: int, error_ratio: float, min_probes: int) -> None:
        if window_ns <= 0 or not 0 < error_ratio <= 1 or min_probes < 1:
            raise ValueError(f"bad alarm settings: window_ns={window_ns}, "
                             f"error_ratio={error_ratio}, min_probes={min_probes}")
        self.window_ns = window_ns
        self.error_ratio = error_ratio
        self.min_probes = min_probes
        # partition → (completed, invoked, ok) of the probes in the window, oldest completion first
        self._window: dict[int, deque[tuple[int, int, bool]]] = {}
        self._ignore_before: dict[int, int] = {}
        self.firing: set[int] = set()
        self.events: list[AlarmEvent] = []

    def observe(self, completed_ns: int, invoked_ns: int, partition: int,
                ok: bool) -> AlarmEvent | None:
        """Count one finished probe; the event if the alarm fires (clear → firing) because of it."""
        window = self._window.setdefault(partition, deque())
        ignore_before = self._ignore_before.get(partition)
        if ignore_before is None or invoked_ns >= ignore_before:
            window.append((completed_ns, invoked_ns, ok))
        while window and window[0][0] <= completed_ns - self.window_ns:
            window.popleft()
        failed = [invoked for _, invoked, probe_ok in window if not probe_ok]
        breached = (len(window) >= self.min_probes
                    and len(failed) >= self.error_ratio * len(window))
        if not breached:
            self.firing.discard(partition)
            return None
        if partition in self.firing:
            return None
        self.firing.add(partition)
        event = AlarmEvent(completed_ns, partition, len(window), len(failed), min(failed))
        self.events.append(event)
        return event

    def ignore_before(self, partition: int, time_ns: int) -> None:
        """Forget the partition's evidence from probes invoked before ``time_ns``, and clear it."""
        self._ignore_before[partition] = max(self._ignore_before.get(partition, time_ns), time_ns)
        window = self._window.get(partition)
        if window:
            self._window[partition] = deque(entry for entry in window if entry[1] >= time_ns)
        self.firing.discard(partition)


# -- the monitor and the automation --------------------------------------------------------------------
class CanaryMonitor:
    """Every probe's result, the alarm, and (if ``remediate``) the automation behind it.

    ``leader_of(partition)`` is the control plane's idea of the leader (None: unknown);
    ``set_eligible(node, eligible)`` is M11's switch; ``schedule(delay_ns, action)`` runs an action
    later; ``now_ns()`` is true time.
    """

    def __init__(self, config: CanaryConfig, remediate: bool, now_ns: Callable[[], int],
                 leader_of: Callable[[int], str | None], set_eligible: Callable[[str, bool], None],
                 schedule: Callable[[int, Callable[[], None]], None]) -> None:
        self.config = config
        self.remediate = remediate
        self.now_ns = now_ns
        self.leader_of = leader_of
        self.set_eligible = set_eligible
        self.schedule = schedule
        self.probes: list[Probe] = []
        self.remediations: list[RemediationRecord] = []
        self.alarm = Alarm(round(config.alarm_window_s * 1e9), config.alarm_error_ratio,
                           config.alarm_min_probes)
        self._holds: dict[str, int] = {}  # node → remediations holding it ineligible

    def record(self, probe: Probe) -> None:
        self.probes.append(probe)
        event = self.alarm.observe(probe.completed_ns, probe.invoked_ns, probe.partition, probe.ok)
        if event is not None and self.remediate:
            delay_ns = round(self.config.remediation_delay_ms * _NS_PER_MS)
            self.schedule(delay_ns, lambda: self._act(event.partition))

    def _act(self, partition: int) -> None:
        now = self.now_ns()
        self.alarm.ignore_before(partition, now)  # probes sent from now on judge what we did
        leader = self.leader_of(partition)
        until = now + round(self.config.ineligible_s * 1e9)
        self.remediations.append(RemediationRecord(now, partition, leader, until))
        if leader is None:
            return
        self._holds[leader] = self._holds.get(leader, 0) + 1
        self.set_eligible(leader, False)
        self.schedule(until - now, lambda: self._release(leader))

    def _release(self, node: str) -> None:
        self._holds[node] -= 1
        if self._holds[node] == 0:
            del self._holds[node]
            self.set_eligible(node, True)

    def metrics(self) -> dict[str, float]:
        """``canary.*``: probes, failures, availability, alarms, remediations; for the first alarm,
        the time to alarm (from the invocation of the earliest failed probe in its window) and the
        time from the alarm to the first success of a probe of that partition sent after it."""
        probes = self.probes
        failed = sum(not probe.ok for probe in probes)
        metrics: dict[str, float] = {
            "canary.probes": len(probes),
            "canary.failed_probes": failed,
            "canary.alarms": len(self.alarm.events),
            "canary.remediations": sum(r.node is not None for r in self.remediations),
        }
        if probes:
            metrics["canary.availability"] = round((len(probes) - failed) / len(probes), 6)
        if self.alarm.events:
            first = self.alarm.events[0]
            metrics["canary.first_alarm_s"] = round(first.time_ns / 1e9, 6)
            metrics["canary.time_to_alarm_s"] = round((first.time_ns - first.onset_ns) / 1e9, 6)
            recovered = next((probe.completed_ns for probe in probes
                              if probe.partition == first.partition and probe.ok
                              and probe.invoked_ns >= first.time_ns), None)
            if recovered is not None:  # the first probe sent after the alarm that succeeded
                metrics["canary.recovery_after_alarm_s"] = round(
                    (recovered - first.time_ns) / 1e9, 6)
        return metrics


# -- the canary node ----------------------------------------------------------------------------------
class CanaryProgram:
    """A canary node's program: probes every partition through its routers (see the docstring)."""

    def __init__(self, ctx: NodeContext, routers: Sequence[str], keys: Mapping[int, str],
                 config: CanaryConfig, now_true_ns: Callable[[], int],
                 record: Callable[[Probe], None], verify_checksums: bool = True,
                 stop: Callable[[], bool] | None = None) -> None:
        if not routers:
            raise ValueError(f"canary {ctx.name} needs at least one router")
        self.ctx = ctx
        self.config = config
        self._routers = tuple(routers)
        self._keys = dict(keys)
        self._now_true_ns = now_true_ns
        self._record = record
        self._verify = verify_checksums
        self._stop = stop
        self._pending: dict[int, asyncio.Future[ClientReply]] = {}
        self._sequence = 0
        self.late_replies = 0

    def on_start(self) -> None:
        for router in self._routers:
            for partition in sorted(self._keys):
                self.ctx.spawn(self._probe_loop(router, partition),
                               name=f"{self.ctx.name}/probe/{router}/p{partition}")

    def on_message(self, source: str, message: Any) -> None:
        if not isinstance(message, ClientReply) or (self._verify and not verify(message)):
            return
        future = self._pending.pop(message.request_id, None)
        if future is None or future.done():
            self.late_replies += 1
            return
        future.set_result(message)

    async def _probe_loop(self, router: str, partition: int) -> None:
        interval_s = self.config.interval_ms / 1000.0
        phase = self.ctx.rng.fork(f"probe/{router}/p{partition}")
        await asyncio.sleep(phase.uniform(0.0, interval_s))  # spread the probes over the interval
        count = 0
        while self._stop is None or not self._stop():
            kind = "put_item" if count % 2 == 0 else "get_item"
            self.ctx.spawn(self._probe(router, partition, kind, count))
            count += 1
            await asyncio.sleep(interval_s)

    async def _probe(self, router: str, partition: int, kind: str, count: int) -> None:
        key = self._keys[partition]
        if kind == "put_item":
            operation = ItemOperation("put_item", key, item=(("canary", self.ctx.name),
                                                             ("count", count)))
        else:
            operation = ItemOperation("get_item", key, consistent=True)
        self._sequence += 1
        request_id = (self.ctx.boot << _REQUEST_ID_BITS) | self._sequence
        invoked = self._now_true_ns()
        future: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.ctx.send(router, seal(ClientRequest(request_id, operation)))
        try:
            reply: ClientReply | None = await asyncio.wait_for(future,
                                                               self.config.timeout_ms / 1000.0)
        except TimeoutError:
            self._pending.pop(request_id, None)
            reply = None
        ok = reply is not None and (reply.ok or reply.error == "condition_failed")
        error = "timeout" if reply is None else ("" if reply.ok else reply.error or "error")
        self._record(Probe(self.ctx.name, self.ctx.az, router, partition, kind, invoked,
                           self._now_true_ns(), ok, error))


# -- wiring into the reference system --------------------------------------------------------------------
def setup_canaries(system: Any, world: Any, canaries: Sequence[str],
                   verify_checksums: bool) -> CanaryMonitor:
    """Install a ``CanaryProgram`` on each canary node of ``system`` (a ``DynamoSystem`` after its
    layout and partition map are built) and return the monitor they report to."""
    config = system.config
    layout = system.layout
    kernel = world.kernel

    def leader_of(partition: int) -> str | None:
        metadata = system.metadata
        if metadata is None or not world.node(layout.metadata).is_up:
            return None  # the control plane cannot tell
        return next((entry.leader for entry in metadata.partition_map
                     if entry.partition == partition), None)

    def set_eligible(node: str, eligible: bool) -> None:
        kernel.trace.record((kernel.now_ns, None, "automation",
                             ("eligible" if eligible else "ineligible", node)))
        system.set_eligible(world, node, eligible)

    def schedule(delay_ns: int, action: Callable[[], None]) -> None:
        kernel.call_later(delay_ns, action, kind="automation", detail="canary-remediation")

    monitor = CanaryMonitor(config.canaries, config.mitigations.canary_remediation,
                            lambda: kernel.now_ns, leader_of, set_eligible, schedule)
    for name in canaries:
        az = world.node(name).az
        routers = tuple(r for r in layout.routers if world.node(r).az == az) or tuple(layout.routers)
        keys = {entry.partition: probe_key(name, entry.partition, system.partition_map)
                for entry in system.partition_map}

        def factory(ctx: NodeContext, routers: tuple[str, ...] = routers,
                    keys: dict[int, str] = keys) -> CanaryProgram:
            return CanaryProgram(ctx, routers, keys, config.canaries, lambda: kernel.now_ns,
                                 monitor.record, verify_checksums,
                                 stop=lambda: system._workload_over(world))

        world.node(name).install(factory)
    return monitor
