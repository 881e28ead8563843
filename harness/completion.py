"""Completions: the outcome of a timed harness operation, for callbacks and for coroutines alike.

Theory of operation. A timed operation (an fsync, a slow read) returns a ``Completion`` at once and
completes later, in a kernel event of the node that asked, with a value or an error. Sans-I/O code,
which may not await, registers ``add_done_callback(fn)``; ``fn(completion)`` runs when the operation
completes (at once if it already has). A coroutine on the node's virtual event loop writes ``await
completion``: each await creates an ``asyncio.Future`` on the running loop, which the completion resolves,
so the task wakes through the loop like any other asyncio wake-up. The await returns the value or raises
the error. A completion whose node crashes first never completes: nothing of a dead incarnation runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["Completion"]


class Completion:
    """The outcome of a timed operation: a value, or an error, once the operation is done.

    Sans-I/O code uses ``add_done_callback(fn)`` (``fn(completion)``; called at once if already done).
    Coroutines ``await`` it on their node's loop: the await returns the value or raises the error.
    """

    __slots__ = ("description", "_done", "_value", "_error", "_callbacks", "_futures")

    def __init__(self, description: str) -> None:
        self.description = description
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Completion], Any]] = []
        self._futures: list[asyncio.Future[None]] = []

    def done(self) -> bool:
        return self._done

    def result(self) -> Any:
        """The value; raises the error if the operation failed, ``InvalidStateError`` if pending."""
        if not self._done:
            raise asyncio.InvalidStateError(f"{self.description} has not completed")
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self) -> BaseException | None:
        if not self._done:
            raise asyncio.InvalidStateError(f"{self.description} has not completed")
        return self._error

    def add_done_callback(self, callback: Callable[[Completion], Any]) -> None:
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def set_result(self, value: Any) -> None:
        self._finish(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._finish(None, error)

    def _finish(self, value: Any, error: BaseException | None) -> None:
        if self._done:
            raise asyncio.InvalidStateError(f"{self.description} completed twice")
        self._done, self._value, self._error = True, value, error
        for future in self._futures:
            if not future.done():  # an awaiting task may have been cancelled
                future.set_result(None)
        callbacks, self._callbacks, self._futures = self._callbacks, [], []
        for callback in callbacks:
            callback(self)

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._done:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._futures.append(future)
            yield from future.__await__()
        return self.result()

    def __repr__(self) -> str:
        state = "pending" if not self._done else ("failed" if self._error else "done")
        return f"Completion({self.description!r}, {state})"
