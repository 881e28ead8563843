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
import inspect
from asyncio import format_helpers
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from harness.errors import AmbientNondeterminismError, Failure, SystemUnderTestError
from harness.scheduler import Timer as _Timer

if TYPE_CHECKING:
    from harness.node import Node
    from harness.scheduler import Timer

__all__ = ["VirtualEventLoop"]

_NS_PER_S = 1_000_000_000
_Task, _Future, _new_handle = asyncio.Task, asyncio.Future, asyncio.Handle.__new__  # hot: one lookup
_new_timer = _Timer.__new__


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


class _SoonHandle(asyncio.Handle):
    """What ``call_soon`` returns: a ``Handle`` that keeps only its kernel event.

    Every step of every task makes one, and nearly all are thrown away unread (asyncio's tasks and
    futures drop them), so it stores one reference and reads the rest from the event when asked:
    the event's callback is ``context.run`` and its arguments are ``(callback, *args)`` (see
    ``VirtualEventLoop.call_soon``). ``Handle``'s own slots stay unset; every method that reads
    them is defined here.
    """

    __slots__ = ("_kernel_timer",)
    _kernel_timer: Timer

    def cancel(self) -> None:
        self._kernel_timer.cancel()

    def cancelled(self) -> bool:
        return self._kernel_timer.cancelled

    def get_context(self) -> contextvars.Context:
        return self._kernel_timer.callback.__self__  # the bound ``Context.run``

    def _run(self) -> None:
        raise RuntimeError("the kernel runs call_soon callbacks; a handle is not run by hand")

    def _repr_info(self) -> list[str]:
        info = [type(self).__name__]
        if self.cancelled():
            info.append("cancelled")
        else:
            callback, *args = self._kernel_timer.args
            info.append(format_helpers._format_callback_source(callback, tuple(args)))
        return info

    def __repr__(self) -> str:
        return f"<{' '.join(self._repr_info())}>"


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

    # -- time and scheduling --------------------------------------------------------------------
    def time(self) -> float:
        """The node's local clock, in seconds (what ``asyncio.timeout`` and friends measure)."""
        return self._node.local_now_ns() / _NS_PER_S

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        # Every step of every task comes through here, so it avoids calls. The kernel event is
        # ``Handle._run()`` without a frame of its own: the kernel calls ``context.run(callback,
        # *args)`` itself, with this loop running (the kernel sees to it before every event of the
        # node), and hands whatever escapes to ``report_callback_error``, as ``Handle._run`` would
        # (see ``Kernel._on_exception``). The event is ``Kernel._schedule`` for now, inlined (keep
        # the two alike); the handle holds it (see ``_SoonHandle``) and it holds no reference to
        # the handle, so the two make no cycle for the garbage collector.
        if context is None:
            context = contextvars.copy_context()
        task = getattr(callback, "__self__", None)
        timer = _new_timer(_Timer)
        timer.local_deadline_ns = None
        timer.callback = context.run
        timer.args = (callback, *args)
        timer.owner = node = self._node
        timer.epoch = node.epoch
        timer.kind = "aio"
        timer.detail = task.get_name() if isinstance(task, _Task) else _describe(callback)
        handle = _new_handle(_SoonHandle)
        handle._kernel_timer = timer
        if self._closed:  # old code of a crashed incarnation, kept alive by a reference: runs nothing
            timer.time_ns, timer.sequence, timer.cancelled = self._kernel.now_ns, -1, True
            return handle
        timer.cancelled = False
        kernel = self._kernel
        timer.time_ns = now = kernel.now_ns
        timer.sequence = sequence = next(kernel._sequence)
        kernel._due.append((now << 64 | sequence, timer))
        return handle

    def report_callback_error(self, callback: Callable[..., Any], args: tuple[Any, ...],
                              error: BaseException) -> None:
        """An exception escaped a ``call_soon`` callback: a failure, reported as ``Handle._run``
        reports it (the kernel calls this; see ``call_soon``)."""
        source = format_helpers._format_callback_source(callback, args)
        self.call_exception_handler({"message": f"Exception in callback {source}",
                                     "exception": error})

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
            coroutine = task.get_coro()
            if inspect.iscoroutine(coroutine) and \
                    inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
                # never started: closing it runs none of its code, and spares the "coroutine …
                # was never awaited" warning Python gives when one is collected unstarted
                coroutine.close()
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

    def __repr__(self) -> str:
        return f"<VirtualEventLoop node={self._node.name!r} closed={self._closed}>"


# Sockets, subprocesses, signals, file descriptors: real I/O has no place in a simulation. Each of
# ``AbstractEventLoop``'s I/O methods is refused by name, with a message. (Not by ``__getattr__``:
# a class with one gets no specialized attribute access from CPython, and every asyncio step reads
# attributes of its loop.)
_REAL_IO = ("add_reader", "add_signal_handler", "add_writer", "connect_accepted_socket",
            "connect_read_pipe", "connect_write_pipe", "create_connection",
            "create_datagram_endpoint", "create_server", "create_unix_connection",
            "create_unix_server", "getaddrinfo", "getnameinfo", "remove_reader",
            "remove_signal_handler", "remove_writer", "sendfile", "set_default_executor",
            "sock_accept", "sock_connect", "sock_recv", "sock_recv_into", "sock_recvfrom",
            "sock_recvfrom_into", "sock_sendall", "sock_sendfile", "sock_sendto", "start_tls",
            "subprocess_exec", "subprocess_shell")


def _refusal(name: str) -> Callable[..., Any]:
    def refuse(self: VirtualEventLoop, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"loop.{name}() is real I/O; inside a simulation, nodes talk through NodeContext.send "
            f"and store data on NodeContext.disk")

    refuse.__name__ = refuse.__qualname__ = name
    return refuse


for _name in _REAL_IO:
    setattr(VirtualEventLoop, _name, _refusal(_name))
del _name


def _describe(callback: Callable[..., Any]) -> str:
    """A deterministic label for a callback (never its repr, which shows ``id()``)."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return owner.get_name()
    return getattr(callback, "__qualname__", type(callback).__name__)

