"""The system under test, as the harness sees it: a small protocol and a loader by import path.

A system is a class named in the scenario as ``"package.module:ClassName"``. The harness calls it with
its configuration (an instance of the class's nested ``Config`` dataclass when it has one, validated by
the scenario loader; otherwise a plain dict), then:

- ``setup(world)`` once, before the first event: install a program factory on the nodes it runs on
  (``world.node(name).install(factory)``) and prepare its workload. The simulation then starts every
  node that has a program.
- ``check(world)`` once, after the heal phase: return the failures it finds (an empty list if none).
  Optionally, or instead, ``checks(world)``: run checkers (``harness.checkers``) and return their
  ``CheckResult``s; failing ones become failures, and every verdict and its evidence is reported.
- ``metrics(world)`` once, at the end: numbers for reports and expectations.
- Optionally, ``timeline(world)`` once, at the end (after the trace digest is taken): what the HTML
  report should draw besides the nodes, faults and messages the harness records itself, as a
  ``harness.SystemTimeline``: ``Band``s (an interval on a node's lane, or on a lane of the system's
  own such as ``partition 0``: leases, leadership), ``Marker``s (an instant: an election) and
  ``ClientOperation``s (``client_operations(history)`` makes them from a ``History``). The harness
  caps them (failed and unknown operations favoured). It must only read: no sends, no randomness.
  If it raises, the report shows the error and the run's verdict stands.

The reference system (``systems.dynamo``) and the tutorial system (``systems.register``) use exactly
this API; a user's system plugs in the same way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import Failure

if TYPE_CHECKING:
    from harness.world import World

__all__ = ["System", "resolve_system_class"]


class System(Protocol):
    def setup(self, world: World) -> None: ...

    def check(self, world: World) -> list[Failure]: ...

    def metrics(self, world: World) -> dict[str, float]: ...


def resolve_system_class(use: str) -> type[Any]:
    """Import ``"package.module:ClassName"``; raises ValueError saying what was wrong."""
    module_name, _, class_name = use.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"expected 'package.module:ClassName', got {use!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r}: {error}") from None
    system_class = getattr(module, class_name, None)
    if not isinstance(system_class, type):
        raise ValueError(f"module {module_name!r} has no class {class_name!r}")
    return system_class
