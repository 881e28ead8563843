"""Systems with planted defects, for proving that the harness catches them.

Importable as ``planted_systems`` when ``tests/`` is on the path (the tests put it there, also for the
subprocesses they start).
"""

from __future__ import annotations

from typing import Any

from harness import Failure, NodeContext, World
from harness.checkers.verdict import CheckResult

MS = 1_000_000


class _Gossip:
    """Every 10 ms, tells every peer something. ``peers`` decides the order of the sends."""

    def __init__(self, ctx: NodeContext, ordered: bool) -> None:
        self.ctx = ctx
        self.ordered = ordered

    def on_start(self) -> None:
        self.ctx.set_timer(10 * MS, self.tick)

    def tick(self) -> None:
        peers = set(self.ctx.nodes) - {self.ctx.name}
        # The planted determinism bug: iterating a set of strings, whose order depends on
        # PYTHONHASHSEED. The ordered variant sorts first, as the determinism rules say.
        for peer in (sorted(peers) if self.ordered else peers):
            self.ctx.send(peer, f"hello from {self.ctx.name}")
        self.ctx.set_timer(10 * MS, self.tick)

    def on_message(self, source: str, message: Any) -> None:
        pass


class GossipSystem:
    """Passes always; deterministic only when ``ordered`` is true."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.ordered = bool(config.get("ordered", True))

    def setup(self, world: World) -> None:
        for name in world.node_names():
            world.node(name).install(lambda ctx: _Gossip(ctx, self.ordered))

    def check(self, world: World) -> list[Failure]:
        return []

    def metrics(self, world: World) -> dict[str, float]:
        return {}


class _Crasher:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def on_start(self) -> None:
        self.ctx.set_timer(1_000 * MS, self.explode)

    def explode(self) -> None:
        raise RuntimeError("replica state corrupted")

    def on_message(self, source: str, message: Any) -> None:
        pass


class CrashingSystem(GossipSystem):
    """A node raises an exception one second into the run."""

    def setup(self, world: World) -> None:
        for name in world.node_names():
            world.node(name).install(_Crasher)


class BrokenMetricsSystem(GossipSystem):
    def metrics(self, world: World) -> dict[str, float]:
        raise ZeroDivisionError("metrics bug")


class ScriptedVerdictSystem(GossipSystem):
    """Reports exactly the metrics, check verdicts and failures its config names (plain data):
    ``{metrics: {name: number}, checks: {name: pass|fail|unknown}, failures: [kind, ...]}``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.config = config

    def check(self, world: World) -> list[Failure]:
        return [Failure(kind, f"planted {kind}", world.kernel.now_ns)
                for kind in self.config.get("failures", [])]

    def checks(self, world: World) -> list[CheckResult]:
        return [CheckResult(name, verdict, f"planted {verdict}", (f"evidence of {name}",))
                for name, verdict in self.config.get("checks", {}).items()]

    def metrics(self, world: World) -> dict[str, float]:
        return dict(self.config.get("metrics", {}))
