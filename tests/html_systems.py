"""A system under test whose every string is hostile HTML, for the report's escaping tests.

Keys, values, message types, check names, evidence, metric names, lanes and labels all carry markup
(``<script>``, ``&``, quotes); a report that does not escape one of them breaks its page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import (Band, Marker, NodeContext, SystemTimeline, World, client_operations)
from harness.checkers import CheckResult
from harness.history import History

EVIL = '<script>alert(1)</script> & "quoted" \'single\''
EVIL_KEY = "<script>alert(1)</script>"
EVIL_VALUE = "a&b</script><script>alert(2)</script>"
EVIL_LANE = "<img src=x onerror=alert(3)>"


@dataclass(frozen=True, slots=True)
class EvilMessage:
    kind: str  # the message's type, as the report names it
    key: str
    value: str
    reply_to: str


class Store:
    """Answers every message with an echo."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def on_message(self, source: str, message: Any) -> None:
        self.ctx.send(source, EvilMessage(f"{EVIL}-reply", message.key, message.value, source))


class Writer:
    """Writes the hostile key and value every 100 ms and records it in the history."""

    def __init__(self, ctx: NodeContext, store: str, history: History, world: World) -> None:
        self.ctx, self.store, self.history, self.world = ctx, store, history, world
        self.open: Any = None

    def on_start(self) -> None:
        self.ctx.set_timer(100_000_000, self.write)

    def write(self) -> None:
        now = self.world.kernel.now_ns
        if self.open is not None:  # no echo: its outcome is unknown
            self.history.complete(self.open, "info", None, now, error=EVIL)
        self.open = self.history.invoke(0, "put", EVIL_KEY, EVIL_VALUE, now, node=self.ctx.name)
        self.ctx.send(self.store, EvilMessage(EVIL, EVIL_KEY, EVIL_VALUE, self.ctx.name))
        self.ctx.set_timer(100_000_000, self.write)

    def on_message(self, source: str, message: Any) -> None:
        if self.open is not None:
            self.history.complete(self.open, "ok", message.value, self.world.kernel.now_ns)
            self.open = None


class EvilSystem:
    """Two nodes: the first stores, the second writes (see the module docstring)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.history = History()

    def setup(self, world: World) -> None:
        store, writer = world.node_names()[:2]
        world.node(store).install(Store)
        world.node(writer).install(lambda ctx: Writer(ctx, store, self.history, world))

    def checks(self, world: World) -> list[CheckResult]:
        return [CheckResult(f"evil{EVIL_KEY}", "fail", EVIL, (EVIL, EVIL_VALUE), {}, 500_000_000)]

    def metrics(self, world: World) -> dict[str, float]:
        return {f"metric{EVIL_KEY}": 1.0}

    def timeline(self, world: World) -> SystemTimeline:
        return SystemTimeline(
            bands=(Band(EVIL_LANE, 0, 1_000_000_000, f"kind{EVIL}", EVIL),),
            markers=(Marker(EVIL_LANE, 500_000_000, f'"{EVIL}', EVIL),),
            operations=tuple(client_operations(self.history)), lanes=(EVIL_LANE,),
            lanes_title=EVIL)
