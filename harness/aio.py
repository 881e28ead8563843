"""asyncio on virtual time: an event loop per node, driven by the kernel's one queue.

Theory of operation. ``VirtualEventLoop`` implements the part of ``asyncio.AbstractEventLoop`` that the
standard primitives use (``call_soon``, ``call_at``, ``call_later``, ``time``, ``create_future``,
``create_task``, the exception handler). It keeps no queue of its own: ``call_soon`` becomes a kernel
event at the current true time, and ``call_at`` becomes a node timer at a deadline on the node's local
clock (so clock faults move asyncio timers too). Every event is owned by the node, so crashes drop it and
pauses park it. The node layer sets this loop as the running loop while the node's events run, so
``asyncio.sleep``, ``Event``, ``Queue``, ``Lock``, ``wait_for``, ``gather``, ``TaskGroup`` and
``asyncio.timeout`` work unchanged, and never sleep in real time.

A loop lives as long as one incarnation of its node. On a crash the node calls ``abandon()``: pending
events are dropped by the kernel (their epoch is stale), and the tasks are forgotten without the "Task
was destroyed but it is pending" noise; the closed loop schedules nothing more. An exception escaping a
task that nobody retrieves (by awaiting the task, ``gather``, ``wait_for``, a ``TaskGroup``…) at the
instant it is raised, or reaching the exception handler, is a failure of the system under test: it
stops the run, with the node and the time.

Determinism: task names default to ``<node>#<boot>/task-<n>`` from a per-loop counter (asyncio's own
default uses a process-wide counter, which would differ between runs in one process).
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio import format_helpers
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from harness.errors import AmbientNondeterminismError, Failure, SystemUnderTestError

if TYPE_CHECKING:
    from harness.node import Node
    from harness.scheduler import Timer

__all__ = ["VirtualEventLoop"]

_NS_PER_S = 1_000_000_000
_Task, _Future, _new_handle = asyncio.Task, asyncio.Future, asyncio.Handle.__new__  # hot: one lookup


class _KernelEvent:
    """An asyncio handle backed by a kernel timer; cancelling it cancels the kernel event too.

    The timer's arguments hold the handle, so the handle forgets its timer once it fires: a
    handle-timer cycle per callback would leave every one of them to the garbage collector.
    """

    __slots__ = ()
    _kernel_timer: Timer | None

    def cancel(self) -> None:
        timer = self._kernel_timer
        if timer is not None:
            timer.cancel()
        super().cancel()  # type: ignore[misc]

    def _fire(self) -> None:
        self._kernel_timer = None
        self._run()  # type: ignore[attr-defined]


class _SoonHandle(_KernelEvent, asyncio.Handle):
    """What ``call_soon`` returns (a plain ``Handle``: cheaper to make than a ``TimerHandle``)."""

    __slots__ = ("_kernel_timer",)


class _KernelHandle(_KernelEvent, asyncio.TimerHandle):
    """What ``call_at`` and ``call_later`` return."""

    __slots__ = ("_kernel_timer",)


class VirtualEventLoop(asyncio.AbstractEventLoop):
    """The asyncio loop of one node incarnation. See the module docstring."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._kernel = node.world.kernel
        self._prefix = f"{node.name}#{node.stats.starts}"
        self._task_counter = 0
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._closed = False
        self._task_factory: Any = None
        self._run_soon_event = self._run_soon  # bound once: every ``call_soon`` schedules it

    # -- time and scheduling --------------------------------------------------------------------
    def time(self) -> float:
        """The node's local clock, in seconds (what ``asyncio.timeout`` and friends measure)."""
        return self._node.local_now_ns() / _NS_PER_S

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        # Every step of every task comes through here, so it avoids calls: the handle is made as
        # ``_SoonHandle(callback, args, self, context)`` would make it, without ``Handle.__init__``
        # and its ``get_debug()`` (these loops never debug; ``test_aio`` checks the two agree); a
        # task's name is read without ``_describe``; the kernel's ``_schedule`` is positional.
        handle = _new_handle(_SoonHandle)
        handle._context = context if context is not None else contextvars.copy_context()
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = handle._source_traceback = None
        if self._closed:  # old code of a crashed incarnation, kept alive by a reference: runs nothing
            handle._kernel_timer = None
            return handle
        task = getattr(callback, "__self__", None)
        detail = task.get_name() if isinstance(task, _Task) else _describe(callback)
        kernel = self._kernel
        handle._kernel_timer = kernel._schedule(kernel.now_ns, self._run_soon_event, (handle,),
                                                self._node, "aio", detail)
        return handle

    def _run_soon(self, handle: _SoonHandle) -> None:
        """The kernel event of ``call_soon``: ``Node.run_in_node(handle._fire)``, inlined (hot)."""
        handle._kernel_timer = None  # as ``_fire`` does
        kernel = self._kernel
        if kernel.running_loop is not self:
            kernel.set_running_loop(self._node, self)
        try:  # ``handle._run()``, inlined: the same call, and the same report if it raises
            handle._context.run(handle._callback, *handle._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:  # noqa: BLE001 - as ``Handle._run``: reported, as a failure
            source = format_helpers._format_callback_source(handle._callback, handle._args)
            self.call_exception_handler({"message": f"Exception in callback {source}",
                                         "exception": error, "handle": handle})

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        handle = _KernelHandle(when, callback, args, self, context)
        if self._closed:  # as in ``call_soon``
            handle._kernel_timer = None
            return handle
        local_deadline_ns = round(when * _NS_PER_S)
        handle._kernel_timer = self._node.set_timer_at(
            local_deadline_ns, handle._fire, kind="aio-timer", detail=_describe(callback))
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        return self.call_at(self.time() + max(delay, 0.0), callback, *args, context=context)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,
                             context: contextvars.Context | None = None) -> asyncio.Handle:
        raise AmbientNondeterminismError(
            "call_soon_threadsafe inside a simulation: threads are not simulated; use call_soon")

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        """Called by ``TimerHandle.cancel``; the kernel skips cancelled timers, nothing to do."""

    # -- futures and tasks ------------------------------------------------------------------------
    def create_future(self) -> asyncio.Future[Any]:
        return _Future(loop=self)

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
                    context: contextvars.Context | None = None) -> asyncio.Task[Any]:
        self._task_counter += 1
        number = self._task_counter
        if name is None:
            name = f"{self._prefix}/task-{number}"
        if self._closed:
            coro.close()  # a crashed incarnation spawning: the coroutine never starts (nor warns)
        if self._task_factory is not None:
            task = self._task_factory(self, coro, context=context)
            task.set_name(name)
        else:
            task = asyncio.Task(coro, loop=self, name=name, context=context)
        if self._closed:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            return task
        self._tasks[number] = task
        task.add_done_callback(lambda done: self._on_task_done(number, done))
        return task

    def set_task_factory(self, factory: Any) -> None:
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    def _on_task_done(self, number: int, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(number, None)
        if not task._log_traceback:  # type: ignore[attr-defined]
            return  # succeeded, cancelled, or its exception was already retrieved
        # Whoever awaits the task (a parent, gather, wait_for, a TaskGroup) retrieves the exception
        # in callbacks run at this same instant. One still unretrieved a nanosecond later escaped.
        now_ns = self._kernel.now_ns
        self._kernel.call_at(now_ns + 1, self._check_retrieved, task, now_ns, owner=self._node,
                             kind="aio-unretrieved", detail=task.get_name())

    def _check_retrieved(self, task: asyncio.Task[Any], raised_at_ns: int) -> None:
        if task._log_traceback:  # type: ignore[attr-defined]
            # Retrieving it also silences asyncio's "exception was never retrieved" log.
            self._fail(f"task {task.get_name()!r} raised", task.exception(), raised_at_ns)

    # -- errors ------------------------------------------------------------------------------------
    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._closed:
            return  # the node crashed; nothing of the old incarnation may affect the run
        error = context.get("exception")
        self._fail(context.get("message", "unhandled error in event loop"), error)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def set_exception_handler(self, handler: Any) -> None:
        raise NotImplementedError("the simulation's loop reports every unhandled error as a failure")

    def get_exception_handler(self) -> None:
        return None

    def _fail(self, message: str, error: BaseException | None,
              time_ns: int | None = None) -> None:
        if isinstance(error, SystemUnderTestError):
            self._kernel.fail(error.failure)
            return
        kind = "ambient-nondeterminism" if isinstance(error, AmbientNondeterminismError) else "exception"
        detail = f"{message}: {type(error).__name__}: {error}" if error is not None else message
        evidence: tuple[str, ...] = ()
        if error is not None:
            from harness.scheduler import _traceback_lines

            evidence = _traceback_lines(error)
        time_ns = self._kernel.now_ns if time_ns is None else time_ns
        self._kernel.fail(Failure(kind, detail, time_ns, self._node.name, evidence))

    # -- lifecycle ---------------------------------------------------------------------------------
    def abandon(self) -> None:
        """The node crashed: forget every task without running or warning about it again.

        The tasks are kept alive on the node (its ``graveyard``) for as long as the world lives:
        were they garbage-collected, Python would close their coroutines, running ``finally`` blocks
        of the dead incarnation at whatever moment the collector chose. Once closed, this loop
        schedules nothing, so old code kept alive by a reference cannot reach the new incarnation.
        """
        self._closed = True
        for task in self._tasks.values():
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        self._node.graveyard.extend(self._tasks.values())
        self._tasks.clear()

    # Asked by every ``Future`` made on this loop: ``bool()``, which is False, is a C call, cheaper
    # than a method. These loops never debug (see ``set_debug``).
    get_debug = staticmethod(bool)

    def set_debug(self, enabled: bool) -> None:
        if enabled:
            raise NotImplementedError("asyncio debug mode reads the wall clock; not in a simulation")

    def is_running(self) -> bool:
        return not self._closed

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self.abandon()

    async def shutdown_asyncgens(self) -> None:
        return None

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        return None

    # -- what a simulation cannot do ---------------------------------------------------------------
    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        raise AmbientNondeterminismError(
            f"run_in_executor({func!r}) inside a simulation: threads and processes are not simulated")

    def run_forever(self) -> None:
        raise RuntimeError("the kernel drives this loop; use Simulation.run() or Kernel.run()")

    def run_until_complete(self, future: Any) -> Any:
        raise RuntimeError("the kernel drives this loop; use Simulation.run() or Kernel.run()")

    def stop(self) -> None:
        raise RuntimeError("node code cannot stop the simulation's loop; it ends with the run")

    def __getattr__(self, name: str) -> Any:
        # Sockets, subprocesses, signals, file descriptors: real I/O has no place in a simulation.
        if name.startswith("_"):
            raise AttributeError(name)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(
                f"loop.{name}() is real I/O; inside a simulation, nodes talk through NodeContext.send "
                f"and store data on NodeContext.disk")

        return refuse

    def __repr__(self) -> str:
        return f"<VirtualEventLoop node={self._node.name!r} closed={self._closed}>"


def _describe(callback: Callable[..., Any]) -> str:
    """A deterministic label for a callback (never its repr, which shows ``id()``)."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return owner.get_name()
    return getattr(callback, "__qualname__", type(callback).__name__)

