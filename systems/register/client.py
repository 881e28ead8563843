"""The register's client: ``async def`` style, on the node's virtual-time asyncio loop.

The client writes increasing integers (1, 2, 3…) to the primary, one at a time, and reads after each
write. Every operation is handed, with its outcome, to ``record``; the system's check reads the record.
Requests time out with ``asyncio.wait_for``; nothing here sleeps in real time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from harness import NodeContext
from systems.register.replica import Read, Reply, Write


@dataclass(frozen=True, slots=True)
class Operation:
    """One completed client operation, with true-time-free local timestamps in nanoseconds."""

    kind: str  # "write" or "read"
    invoked_ns: int
    completed_ns: int
    ok: bool
    value: int | None  # the value written, or the value read
    error: str = ""


class Client:
    """A client program: one coroutine issuing operations, and a mailbox for replies."""

    def __init__(self, ctx: NodeContext, primary: str, record: Callable[[Operation], None],
                 last_written: Callable[[], int], interval_ms: float, timeout_ms: float) -> None:
        self.ctx = ctx
        self.primary = primary
        self.record = record
        self.last_written = last_written
        self.interval_s = interval_ms / 1000.0
        self.timeout_s = timeout_ms / 1000.0
        self.pending: dict[int, asyncio.Future[Reply]] = {}
        self.next_request_id = 0

    def on_start(self) -> None:
        self.ctx.spawn(self.run(), name=f"{self.ctx.name}/workload")

    def on_message(self, source: str, message: Any) -> None:
        if isinstance(message, Reply):
            future = self.pending.pop(message.request_id, None)
            if future is not None and not future.done():
                future.set_result(message)

    async def run(self) -> None:
        value = self.last_written()
        while True:
            await asyncio.sleep(self.interval_s)
            value += 1
            await self.call("write", Write(self.new_request_id(), value), value)
            await self.call("read", Read(self.new_request_id()), None)

    def new_request_id(self) -> int:
        self.next_request_id += 1
        return self.next_request_id

    async def call(self, kind: str, request: Write | Read, written: int | None) -> None:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.pending[request.request_id] = future
        invoked = self.ctx.now_ns()
        self.ctx.send(self.primary, request)
        try:
            reply = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self.pending.pop(request.request_id, None)
            self.record(Operation(kind, invoked, self.ctx.now_ns(), False, written, "timeout"))
            return
        value = written if kind == "write" else reply.value
        self.record(Operation(kind, invoked, self.ctx.now_ns(), reply.ok, value, reply.error))
