"""Effects: what the sans-I/O protocol code asks the world to do.

The replica, router and metadata logic never touch a network, a disk or a clock. They are called with
``(now_ns, input)`` (``now_ns`` is the node's local clock) and return a list of effects, which the node
adapter (``node.py``) carries out through ``harness.NodeContext``. Unit tests call the logic directly
and inspect the effects: no simulator needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Send", "Persist", "Truncate", "SetTimer", "CancelTimer", "Note", "Effect"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to node ``destination`` (fire and forget: the network may lose it)."""

    destination: str
    message: Any


@dataclass(frozen=True, slots=True)
class Persist:
    """Append ``data`` to ``file`` and fsync it; when durable, the adapter calls back with ``token``.

    A crash before the fsync completes loses the data (and the callback never comes).
    """

    file: str
    data: bytes
    token: Any  # handed back to ``on_persisted(now_ns, token)`` once the data is durable


@dataclass(frozen=True, slots=True)
class Truncate:
    """Cut ``file`` to ``length`` bytes (e.g. a torn or corrupt WAL tail found at recovery)."""

    file: str
    length: int


@dataclass(frozen=True, slots=True)
class SetTimer:
    """(Re)arm the timer called ``name``: fire ``on_timer(now_ns, name)`` after ``delay_ns``.

    Arming a timer that is already armed replaces it.
    """

    name: str
    delay_ns: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Note:
    """An observation for metrics and the trace (elections, leases, rejections…); no effect on the
    protocol. ``detail`` holds only str/int/float/bool/None/tuples (it goes into the trace)."""

    kind: str
    detail: tuple[Any, ...] = ()


Effect = Send | Persist | Truncate | SetTimer | CancelTimer | Note
