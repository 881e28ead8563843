"""How the register plugs into Graylink: configuration, setup, checks and metrics.

This is the whole integration a user writes for their own system: a class with a ``Config`` dataclass
(validated from the scenario's ``system.config``), ``setup(world)`` installing a program factory on each
node, ``check(world)`` returning failures, and ``metrics(world)`` returning numbers.

The check is the register's promise to its client: once a write is acknowledged, no later read returns
an older value (the client is sequential, so its history is in real-time order), and after the heal
phase begins the register serves writes again.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import ClientOperation, Failure, NodeSpec, ProgramFactory, SystemTimeline, World, param
from systems.register.client import Client, Operation
from systems.register.replica import Replica


@dataclass(frozen=True, slots=True)
class RegisterConfig:
    primary: str = param("the replica that leads; empty means the first server by name", "",
                         ref="node")
    clients: int = param("client nodes to add (in the first AZ) when the topology has none", 1,
                         minimum=1, maximum=100)
    write_interval_ms: float = param("pause between a client's operations", 100.0, minimum=0)
    timeout_ms: float = param("how long a client waits for a reply", 500.0, minimum=0,
                              exclusive_minimum=True)
    ack_before_fsync: bool = param("planted bug: the primary acknowledges before the write is "
                                   "durable anywhere", False)


class RegisterSystem:
    """The replicated register, as a system under test."""

    Config = RegisterConfig

    def __init__(self, config: RegisterConfig | dict[str, object]) -> None:
        self.config = config if isinstance(config, RegisterConfig) else RegisterConfig(**config)
        self.histories: dict[str, list[tuple[int, Operation]]] = {}

    def setup(self, world: World) -> None:
        servers = sorted(n.name for n in world.nodes.values() if n.role == "server")
        if not servers:
            raise ValueError("the register needs at least one node with role 'server'")
        primary = self.config.primary or servers[0]
        backups = [name for name in servers if name != primary]
        for name in servers:
            world.node(name).install(
                lambda ctx: Replica(ctx, primary, backups, self.config.ack_before_fsync))
        clients = sorted(n.name for n in world.nodes.values() if n.role == "client")
        if not clients:
            first_az = world.node(servers[0]).az
            clients = [f"client-{i + 1}" for i in range(self.config.clients)]
            for name in clients:
                world.add_node(NodeSpec(name, first_az, role="client"))
        for name in clients:
            world.node(name).install(self._client_factory(world, name, primary))

    def _client_factory(self, world: World, name: str, primary: str) -> ProgramFactory:
        history = self.histories.setdefault(name, [])

        def record(operation: Operation) -> None:
            history.append((world.kernel.now_ns, operation))  # the observer stamps true time

        def last_written() -> int:  # a restarted client continues the sequence: values never repeat
            return max((op.value or 0 for _, op in history if op.kind == "write"), default=0)

        return lambda ctx: Client(ctx, primary, record, last_written,
                                  self.config.write_interval_ms, self.config.timeout_ms)

    # -- verdict ------------------------------------------------------------------------------
    def check(self, world: World) -> list[Failure]:
        failures: list[Failure] = []
        for client in sorted(self.histories):
            failures.extend(_stale_reads(client, self.histories[client]))
        heal_started_ns = world.heal_started_ns
        if heal_started_ns is not None:
            served = any(op.ok and op.kind == "write" and at >= heal_started_ns
                         for history in self.histories.values() for at, op in history)
            if not served:
                failures.append(Failure(
                    "liveness", "no write succeeded during the heal phase: the register did not "
                    "recover once the faults stopped", world.kernel.now_ns))
        return failures

    def timeline(self, world: World) -> SystemTimeline:
        """For the HTML report: every client operation with its outcome, in true time (a timeout's
        outcome is unknown: the write may have taken effect)."""
        operations = []
        for process, client in enumerate(sorted(self.histories)):
            for completed_ns, op in self.histories[client]:
                # The client stamps its own clock; the observer stamped the completion in true time.
                invoked_ns = max(completed_ns - (op.completed_ns - op.invoked_ns), 0)
                outcome = "ok" if op.ok else ("unknown" if op.error == "timeout" else "fail")
                operations.append(ClientOperation(process, client, op.kind, None, op.value if
                                                  op.kind == "write" else None,
                                                  op.value if op.kind == "read" else None,
                                                  invoked_ns, completed_ns, outcome,
                                                  op.error or None))
        operations.sort(key=lambda op: (op.invoked_ns, op.process))
        return SystemTimeline(operations=tuple(operations))

    def metrics(self, world: World) -> dict[str, float]:
        operations = [op for history in self.histories.values() for _, op in history]
        writes = [op for op in operations if op.kind == "write"]
        reads = [op for op in operations if op.kind == "read"]
        ok = sum(op.ok for op in operations)
        return {"writes_ok": sum(op.ok for op in writes),
                "writes_failed": sum(not op.ok for op in writes),
                "reads_ok": sum(op.ok for op in reads),
                "reads_failed": sum(not op.ok for op in reads),
                "availability": ok / len(operations) if operations else 0.0,
                "stale_reads": sum(len(_stale_reads(c, h)) for c, h in self.histories.items())}


def _stale_reads(client: str, history: list[tuple[int, Operation]]) -> list[Failure]:
    """Reads that returned a value older than a write acknowledged before the read began."""
    failures = []
    acknowledged, acknowledged_at = 0, 0
    for at_ns, operation in history:
        if operation.kind == "write" and operation.ok and (operation.value or 0) > acknowledged:
            acknowledged, acknowledged_at = operation.value or 0, at_ns
        elif operation.kind == "read" and operation.ok and (operation.value or 0) < acknowledged:
            failures.append(Failure(
                "lost-acknowledged-write",
                f"{client} read {operation.value} after write {acknowledged} was acknowledged",
                at_ns, client,
                (f"write {acknowledged} acknowledged at t={acknowledged_at / 1e9:.6f}s",
                 f"read returned {operation.value} at t={at_ns / 1e9:.6f}s")))
    return failures
