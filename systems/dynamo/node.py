"""The node adapter: the only code of the reference system that touches the harness.

Protocol logic (replica, router, metadata) is sans-I/O: it takes ``(now_ns, input)`` and returns
effects. This module runs it on a simulated node: it feeds messages, timers and fsync completions in,
and carries the effects out through ``harness.NodeContext``:

- ``Send``: seal the message with its checksum (M14, when the mitigation is on) and send it;
- ``Persist``: append to a file on the node's disk, fsync, and report durability back with the token;
- ``Truncate``: cut a file (a torn WAL tail found at recovery);
- ``SetTimer`` / ``CancelTimer``: node-local-clock timers, one per (component, name);
- ``Note``: hand the observation, stamped with true time by the observer, to the system's metrics.

On receipt, the adapter rejects messages whose checksum does not match (counted; the planted bug
``skip_checksum_verification`` computes but ignores it) and messages of a format this node's software
cannot decode (M24, counted).

A storage node also runs its membership agent (``membership.py``, key ``"membership"``), which gets
the node's ``MapReply`` messages. While the agent's membership lease has run out, the adapter answers
every ``ReplicaRequest`` itself with ``ReplicaReply(error="out_of_service")`` (counted as
``out_of_service_refusals``) instead of handing it to the replica: the replicas keep replicating,
but the node serves no client (S20).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from harness import DiskFullError, NodeContext, Timer
from systems.dynamo.config import DynamoConfig
from systems.dynamo.effects import CancelTimer, Note, Persist, Send, SetTimer, Truncate
from systems.dynamo.membership import MembershipAgent
from systems.dynamo.messages import (CURRENT_FORMAT, MapReply, ReplicaReply, ReplicaRequest, seal,
                                     verify)

__all__ = ["Component", "EffectRunner", "StorageNodeProgram", "ServiceProgram", "Observer",
           "MEMBERSHIP"]

MEMBERSHIP = "membership"  # the membership agent's key among a storage node's components

# observe(node, component key, note) — the system stamps true time and keeps it for metrics.
Observer = Callable[[str, Any, Note], None]


class Component(Protocol):
    """What the adapter needs of sans-I/O protocol logic."""

    def on_message(self, now_ns: int, source: str, message: Any) -> list[Any]: ...

    def on_timer(self, now_ns: int, name: str) -> list[Any]: ...


class EffectRunner:
    """Carries out effects for the components of one node incarnation."""

    def __init__(self, ctx: NodeContext, config: DynamoConfig, observe: Observer,
                 counters: dict[str, int]) -> None:
        self.ctx = ctx
        self.config = config
        self.observe = observe
        self.counters = counters  # shared across incarnations: the system's per-node counters
        self.timers: dict[tuple[Any, str], Timer] = {}
        self.components: dict[Any, Component] = {}
        self._seal = config.mitigations.checksums
        self.reads_format = CURRENT_FORMAT  # M24: the newest format this node's version decodes

    # -- inputs --------------------------------------------------------------------------------
    def accept(self, message: Any) -> bool:
        """Checksum and format checks on receipt (M14, M24). False: drop the message."""
        if getattr(message, "format_version", CURRENT_FORMAT) > self.reads_format:
            self.counters["decode_failures"] = self.counters.get("decode_failures", 0) + 1
            self.ctx.log("decode-failure", (type(message).__name__,))
            return False
        if not self.config.mitigations.checksums or verify(message):
            return True
        self.counters["checksum_rejections"] = self.counters.get("checksum_rejections", 0) + 1
        if self.config.bugs.skip_checksum_verification:
            self.counters["corrupt_accepted"] = self.counters.get("corrupt_accepted", 0) + 1
            return True  # the planted bug: computed, never compared
        self.ctx.log("checksum-rejected", (type(message).__name__,))
        return False

    def deliver(self, key: Any, source: str, message: Any) -> None:
        component = self.components[key]
        self.run(key, component.on_message(self.ctx.now_ns(), source, message))

    def _fire(self, key: Any, name: str) -> None:
        self.timers.pop((key, name), None)
        self.run(key, self.components[key].on_timer(self.ctx.now_ns(), name))

    def _persisted(self, key: Any, token: Any, done: Any) -> None:
        if done.exception() is not None:
            self.counters["fsync_errors"] = self.counters.get("fsync_errors", 0) + 1
            return
        component = self.components[key]
        self.run(key, component.on_persisted(self.ctx.now_ns(), token))  # type: ignore[attr-defined]

    # -- effects -------------------------------------------------------------------------------
    def run(self, key: Any, effects: list[Any]) -> None:
        for effect in effects:
            if not self.ctx.alive:
                return  # the node halted (fail-stop) while carrying out earlier effects
            kind = type(effect)
            if kind is Send:
                message = seal(effect.message) if self._seal else effect.message
                if type(message) is ReplicaReply:
                    self._count_reply(message)
                self.ctx.send(effect.destination, message)
            elif kind is SetTimer:
                self._cancel(key, effect.name)
                self.timers[(key, effect.name)] = self.ctx.set_timer(
                    effect.delay_ns, self._fire, key, effect.name, kind="timer",
                    detail=(str(key), effect.name))
            elif kind is CancelTimer:
                self._cancel(key, effect.name)
            elif kind is Persist:
                self._persist(key, effect)
            elif kind is Truncate:
                if self.ctx.disk.exists(effect.file):
                    self.ctx.disk.truncate(effect.file, effect.length)
                    self.ctx.disk.fsync(effect.file)
            elif kind is Note:
                self.observe(self.ctx.name, key, effect)
            else:
                raise TypeError(f"unknown effect {effect!r} from component {key!r}")

    def _count_reply(self, reply: ReplicaReply) -> None:
        """Server-side availability (S4): what the storage nodes see of the requests that reach
        them. Served (ok, or a false condition), refused (no_lease, out_of_service, …), or
        redirected (not_leader, look_up_again: routing, not a failure to serve)."""
        if reply.ok or reply.error == "condition_failed":
            outcome = "requests_served"
        elif reply.error in ("not_leader", "look_up_again"):
            outcome = "requests_redirected"
        else:
            outcome = "requests_refused"
        self.counters[outcome] = self.counters.get(outcome, 0) + 1

    def _cancel(self, key: Any, name: str) -> None:
        timer = self.timers.pop((key, name), None)
        if timer is not None:
            timer.cancel()

    def _persist(self, key: Any, effect: Persist) -> None:
        disk = self.ctx.disk
        try:
            disk.append(effect.file, effect.data)
        except DiskFullError:
            # Fail-stop: the replica believes what it appends is in its log; carrying on without it
            # would let it acknowledge entries it does not hold. So the process halts, as a crash.
            self.counters["disk_full"] = self.counters.get("disk_full", 0) + 1
            self.ctx.halt(f"disk full appending to {effect.file}")
            return
        disk.fsync(effect.file).add_done_callback(
            lambda done: self._persisted(key, effect.token, done))

    def read_file(self, path: str) -> bytes:
        disk = self.ctx.disk
        return disk.read(path) if disk.exists(path) else b""


class StorageNodeProgram:
    """A storage node: one replica per partition it hosts, recovered from disk at every boot."""

    def __init__(self, ctx: NodeContext, config: DynamoConfig, build_replicas: Callable[[], dict],
                 observe: Observer, counters: dict[str, int],
                 on_boot: Callable[[StorageNodeProgram], None] | None = None,
                 membership: MembershipAgent | None = None,
                 adopt: Callable[[int, Any], Any] | None = None) -> None:
        """``adopt(partition, message)``: for a message to a partition this node does not host, a
        new replica to host it (M9: a leader's ``InstallReplica``), or None to drop the message."""
        self.runner = EffectRunner(ctx, config, observe, counters)
        self.replicas = build_replicas()
        self.runner.components.update(self.replicas)
        self.membership = membership
        if membership is not None:
            self.runner.components[MEMBERSHIP] = membership
        self._on_boot = on_boot
        self._adopt = adopt

    def on_start(self) -> None:
        runner = self.runner
        for partition in sorted(self.replicas):
            replica = self.replicas[partition]
            wal = runner.read_file(f"wal/p{partition}")
            ballot = runner.read_file(f"ballot/p{partition}")
            runner.run(partition, replica.recover(runner.ctx.now_ns(), wal, ballot))
        if self.membership is not None:
            runner.run(MEMBERSHIP, self.membership.start(runner.ctx.now_ns()))
        if self._on_boot is not None:
            self._on_boot(self)

    def on_message(self, source: str, message: Any) -> None:
        if not self.runner.accept(message):
            return
        partition = getattr(message, "partition", None)
        if partition not in self.replicas and partition is not None and self._adopt is not None:
            self._take_on(partition, message)
        if partition in self.replicas:
            if type(message) is ReplicaRequest and not self.in_service():
                self._refuse(source, message)
            else:
                self.runner.deliver(partition, source, message)
        elif type(message) is MapReply and self.membership is not None:
            self.runner.deliver(MEMBERSHIP, source, message)
        else:
            self.runner.counters["unknown_partition"] = \
                self.runner.counters.get("unknown_partition", 0) + 1

    def _take_on(self, partition: int, message: Any) -> None:
        """Host a new replica of ``partition`` if ``adopt`` gives one (recovered from the disk)."""
        replica = self._adopt(partition, message)
        if replica is None:
            return
        runner = self.runner
        self.replicas[partition] = runner.components[partition] = replica
        runner.run(partition, replica.recover(runner.ctx.now_ns(), runner.read_file(f"wal/p{partition}"),
                                              runner.read_file(f"ballot/p{partition}")))

    def in_service(self) -> bool:
        """False while the node's membership lease has run out (S20); True without an agent."""
        return self.membership is None or self.membership.in_service(self.runner.ctx.now_ns())

    def _refuse(self, source: str, request: ReplicaRequest) -> None:
        counters = self.runner.counters
        counters["out_of_service_refusals"] = counters.get("out_of_service_refusals", 0) + 1
        refusal = ReplicaReply(request.partition, request.request_id, False, error="out_of_service")
        self.runner.run(MEMBERSHIP, [Send(source, refusal)])

    def set_eligible(self, eligible: bool) -> None:
        """M11: mark this node (in)eligible for leadership; its leaders hand over at once."""
        for partition in sorted(self.replicas):
            replica = self.replicas[partition]
            self.runner.run(partition, replica.set_eligible(self.runner.ctx.now_ns(), eligible))


class ServiceProgram:
    """A node running one stateless-ish component (a router or the metadata service)."""

    def __init__(self, ctx: NodeContext, config: DynamoConfig, component: Any,
                 observe: Observer, counters: dict[str, int]) -> None:
        self.runner = EffectRunner(ctx, config, observe, counters)
        self.component = component
        self.runner.components["service"] = component

    def on_start(self) -> None:
        start = getattr(self.component, "start", None)
        if start is not None:
            self.runner.run("service", start(self.runner.ctx.now_ns()))

    def on_message(self, source: str, message: Any) -> None:
        if self.runner.accept(message):
            self.runner.deliver("service", source, message)
