"""The ambient sandbox: simulated clocks, seeded randomness and no threads for code inside a run.

Theory of operation. Code under test may reach past ``NodeContext`` for the process's ambient sources
of nondeterminism: the wall clock, the ``random`` module's global generator, ``uuid.uuid4``,
``os.urandom``, threads. While an ``AmbientSandbox(world)`` is active (the simulation enters it around
``kernel.run()``), those attributes of their modules are replaced by trampolines. A trampoline called
on the thread that entered the sandbox gives the simulated version, or refuses; on any other thread, or
after the sandbox exits, it calls the original. What each source becomes:

- ``time.time``/``time_ns``: the clock of the node whose event is being dispatched (``Kernel._current``'s
  owner), else the kernel's true time, plus ``EPOCH_BASE_NS`` (2025-01-01T00:00:00Z) so values look like
  Unix timestamps. ``time.monotonic``/``perf_counter`` (and ``_ns``): the same clock without the epoch,
  held still per node rather than going backwards after a backward clock jump (their documented promise).
- ``time.sleep``, ``uuid.uuid1`` (clock and MAC address) and ``threading.Thread.start`` (so every thread,
  executors included): refused with ``AmbientNondeterminismError`` naming the call site, the first
  frame outside this module and the standard library. A refusal inside an event also fails the run
  directly, so code under test that swallows the exception still fails.
- the ``random`` module's functions (every one bound to ``random._inst``): a ``random.Random`` seeded
  from ``world.rng.fork("ambient/random")``; the global generator's own state is never touched.
  Wherever Python would seed from OS entropy (``random.seed()`` with no argument, an unseeded
  ``random.Random()``), the seed is instead the next 64 bits of the ``ambient/seeds`` stream.
- ``uuid.uuid4``: 128 bits of the ``ambient/uuid`` stream with the version-4 and variant bits set.
- ``os.urandom``, ``os.getrandom`` and ``random._urandom`` (which ``random.SystemRandom`` and hence the
  ``secrets`` module read): bytes of the ``ambient/urandom`` stream. Simulated, not refused: tokens and
  ids made with ``secrets`` are then reproducible like everything else.

The streams belong to the world (re-entering a sandbox on the same world continues them, never replays
them) and are forked by name, so adding a draw of one kind never shifts another kind's draws. Entering
is reentrant: originals are saved by the outermost entry and restored exactly by its exit, whether or
not the run raised; a nested sandbox takes over until it exits.

Limitations. A name bound before entry (``from time import time``, ``from random import random``) keeps
the real function: import modules, not functions, in code under test. C-level clocks cannot be patched:
``datetime.datetime.now()``/``utcnow()``, ``datetime.date.today()``, ``time.localtime()``/``gmtime()``/
``ctime()``/``strftime()`` without an explicit time, ``time.process_time()`` and ``time.thread_time()``
read the real clock; use ``datetime.datetime.fromtimestamp(time.time(), tz)`` instead. Node code run
synchronously from an unowned harness event (e.g. a boot triggered by a fault) sees true time, not
its node's clock.
"""

from __future__ import annotations

import _thread
import os
import random
import sys
import sysconfig
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from harness.errors import AmbientNondeterminismError, Failure

if TYPE_CHECKING:
    from harness.rng import Rng
    from harness.world import World

__all__ = ["AmbientSandbox", "sandbox", "EPOCH_BASE_NS", "active_sandbox"]

EPOCH_BASE_NS = 1_735_689_600 * 1_000_000_000  # 2025-01-01T00:00:00Z: simulated time 0 as Unix time
_NS_PER_S = 1_000_000_000

_SLEEP = "real sleep inside a simulation; use await asyncio.sleep or NodeContext.set_timer"
_UUID1 = "uuid.uuid1() inside a simulation reads the real clock and MAC address; use uuid.uuid4()"
_THREAD = ("starting a thread inside a simulation: threads run outside virtual time and interleave "
           "nondeterministically; use NodeContext.spawn with a coroutine")


class _Streams:
    """A world's ambient random streams, shared by every sandbox on that world."""

    __slots__ = ("random", "seeds", "uuid", "urandom", "monotonic_floor_ns")

    def __init__(self, rng: Rng) -> None:
        self.random = rng.fork("ambient/random").random_instance()
        self.seeds = rng.fork("ambient/seeds")
        self.uuid = rng.fork("ambient/uuid")
        self.urandom = rng.fork("ambient/urandom").random_instance()
        self.monotonic_floor_ns: dict[str | None, int] = {}  # per node: monotonic never goes back


_streams_by_world: weakref.WeakKeyDictionary[Any, _Streams] = weakref.WeakKeyDictionary()


class AmbientSandbox:
    """Simulated ambient nondeterminism for ``world`` while active (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._kernel = world.kernel
        streams = _streams_by_world.get(world)
        if streams is None:
            streams = _streams_by_world[world] = _Streams(world.rng)
        self._streams = streams
        self._threads: list[int] = []  # ident of the thread of each (possibly nested) entry

    def __enter__(self) -> AmbientSandbox:
        with _lock:
            if not _stack:
                _install()
            self._threads.append(_thread.get_ident())
            _stack.append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        with _lock:
            for index in range(len(_stack) - 1, -1, -1):  # exits need not be in entry order
                if _stack[index] is self:
                    del _stack[index]
                    break
            self._threads.remove(_thread.get_ident())
            if not _stack:
                _restore()

    @property
    def active(self) -> bool:
        return self in _stack

    # -- clocks ---------------------------------------------------------------------------------
    def _owner(self) -> Any:
        timer = getattr(self._kernel, "_current", None)  # the event being dispatched, if any
        owner = timer.owner if timer is not None else None
        return owner if hasattr(owner, "local_now_ns") else None

    def local_now_ns(self) -> int:
        """The clock code would read now: its node's local clock inside a node's event, else true time."""
        owner = self._owner()
        return owner.local_now_ns() if owner is not None else self._kernel.now_ns

    def time_ns(self) -> int:
        return EPOCH_BASE_NS + self.local_now_ns()

    def time(self) -> float:
        return self.time_ns() / _NS_PER_S

    def monotonic_ns(self) -> int:
        owner = self._owner()
        now_ns = owner.local_now_ns() if owner is not None else self._kernel.now_ns
        key = owner.name if owner is not None else None
        floors = self._streams.monotonic_floor_ns
        value = max(now_ns, floors.get(key, now_ns))
        floors[key] = value
        return value

    def monotonic(self) -> float:
        return self.monotonic_ns() / _NS_PER_S

    # -- randomness -----------------------------------------------------------------------------
    def random_instance(self) -> random.Random:
        """The generator behind the ``random`` module's functions while this sandbox is active."""
        return self._streams.random

    def urandom(self, size: int, flags: int = 0) -> bytes:
        if size < 0:
            raise ValueError("negative argument not allowed")
        return self._streams.urandom.randbytes(size)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._streams.uuid.getrandbits(128), version=4)

    def seed_random(self, instance: random.Random, a: Any = None, version: int = 2) -> None:
        """``random.Random.seed``: OS entropy (``a is None``) becomes the next seed of ``ambient/seeds``."""
        if a is None:
            a = self._streams.seeds.getrandbits(64)
        _saved[(random.Random, "seed")](instance, a, version)

    # -- refusals -------------------------------------------------------------------------------
    def refuse(self, message: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            site = _call_site()
            error = AmbientNondeterminismError(f"{message} at {_describe(site)}")
            if getattr(self._kernel, "_current", None) is not None:
                owner = self._owner()
                evidence = "".join(traceback.format_stack(site, limit=6)).rstrip().splitlines()
                self._kernel.fail(Failure("ambient-nondeterminism",
                                          f"{type(error).__name__}: {error}", self._kernel.now_ns,
                                          owner.name if owner is not None else None, tuple(evidence)))
            raise error

        return refused


def sandbox(world: World) -> AmbientSandbox:
    """``with sandbox(world): world.kernel.run()``: the same as ``AmbientSandbox(world)``."""
    return AmbientSandbox(world)


def active_sandbox() -> AmbientSandbox | None:
    """The innermost sandbox entered by the calling thread, or None."""
    if not _stack:
        return None
    ident = _thread.get_ident()
    for candidate in reversed(_stack):
        if ident in candidate._threads:
            return candidate
    return None


# -- patching -----------------------------------------------------------------------------------
_lock = threading.Lock()
_stack: list[AmbientSandbox] = []
_Target = tuple[Any, str]  # (module or class, attribute name)
_saved: dict[_Target, Any] = {}  # originals, saved by the outermost entry; kept for late callers
_Simulated = Callable[[AmbientSandbox], Callable[..., Any]]


def _trampoline(target: _Target, simulated: _Simulated) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        current = active_sandbox()
        if current is None:
            return _saved[target](*args, **kwargs)
        return simulated(current)(*args, **kwargs)

    original = vars(target[0])[target[1]]
    call.__name__ = target[1]
    call.__qualname__ = getattr(original, "__qualname__", target[1])
    call.__doc__ = getattr(original, "__doc__", None)
    call.__wrapped__ = original  # type: ignore[attr-defined]
    return call


def _targets() -> dict[_Target, _Simulated]:
    table: dict[_Target, _Simulated] = {
        (time, "time"): lambda s: s.time, (time, "time_ns"): lambda s: s.time_ns,
        (time, "monotonic"): lambda s: s.monotonic, (time, "monotonic_ns"): lambda s: s.monotonic_ns,
        (time, "perf_counter"): lambda s: s.monotonic,
        (time, "perf_counter_ns"): lambda s: s.monotonic_ns,
        (time, "sleep"): lambda s: s.refuse(_SLEEP),
        (uuid, "uuid4"): lambda s: s.uuid4, (uuid, "uuid1"): lambda s: s.refuse(_UUID1),
        (os, "urandom"): lambda s: s.urandom, (random, "_urandom"): lambda s: s.urandom,
        (random.Random, "seed"): lambda s: s.seed_random,
        (threading.Thread, "start"): lambda s: s.refuse(_THREAD),
    }
    if hasattr(os, "getrandom"):
        table[(os, "getrandom")] = lambda s: s.urandom
    for name, value in vars(random).items():  # every module function bound to the global generator
        if getattr(value, "__self__", None) is random._inst:  # type: ignore[attr-defined]
            table[(random, name)] = _random_method(name)
    return table


def _random_method(name: str) -> _Simulated:
    return lambda s: getattr(s.random_instance(), name)


_TRAMPOLINES: dict[_Target, Callable[..., Any]] = {
    target: _trampoline(target, simulated) for target, simulated in _targets().items()}


def _install() -> None:
    installed: list[_Target] = []
    try:
        for target, replacement in _TRAMPOLINES.items():
            _saved[target] = vars(target[0])[target[1]]
            setattr(target[0], target[1], replacement)
            installed.append(target)
    except BaseException:
        for target in installed:
            setattr(target[0], target[1], _saved[target])
        raise


def _restore() -> None:
    for target in _TRAMPOLINES:
        setattr(target[0], target[1], _saved[target])


# -- call sites ---------------------------------------------------------------------------------
_PATHS = sysconfig.get_paths()
_STDLIB = tuple(os.path.join(_PATHS[key], "") for key in ("stdlib", "platstdlib"))
_INSTALLED = tuple(os.path.join(_PATHS[key], "") for key in ("purelib", "platlib"))


def _is_stdlib(filename: str) -> bool:
    """Standard-library code, but not installed packages (site-packages may sit inside the stdlib)."""
    if filename.startswith("<frozen"):
        return True
    return (filename.startswith(_STDLIB) and not filename.startswith(_INSTALLED)
            and "site-packages" not in filename and "dist-packages" not in filename)


def _call_site() -> FrameType:
    """The first frame outside this module and the standard library (else outside this module)."""
    frame: FrameType | None = sys._getframe(1)
    first_outside: FrameType | None = None
    while frame is not None:
        if frame.f_globals.get("__name__") != __name__:
            first_outside = first_outside or frame
            if not _is_stdlib(frame.f_code.co_filename):
                return frame
        frame = frame.f_back
    assert first_outside is not None, "a refusal is always called from outside this module"
    return first_outside


def _describe(frame: FrameType) -> str:
    filename = frame.f_code.co_filename
    relative = os.path.relpath(filename) if os.path.isabs(filename) else filename
    shown = relative if not relative.startswith("..") else filename
    return f"{shown}:{frame.f_lineno} in {frame.f_code.co_name}()"
