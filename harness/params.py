"""Field metadata for data that users write in YAML: documentation, bounds, allowed values, references.

Every user-facing dataclass (faults, link and disk settings, fault profiles, scenario sections)
declares each field with ``param(...)``. The scenario loader reads this metadata to validate input and
to explain what is allowed; ``graylink schema`` turns it into a JSON Schema. One declaration, three uses.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["param", "ParamSpec", "spec_of", "SELECTOR"]

# A node selector, ``kind(argument)``, accepted wherever a node name is (``ref="node"``): the system
# under test resolves it when a fault strikes, e.g. ``leader(0)`` for the node leading partition 0 at
# that moment. Systems declare the kinds they understand in ``NODE_SELECTORS`` (see World.resolve).
SELECTOR = re.compile(r"([a-z_][a-z0-9_]*)\((.*)\)\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class ParamSpec:
    """What a field accepts, beyond its type."""

    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # when True the minimum itself is not allowed
    choices: tuple[str, ...] | None = None
    ref: str | None = None  # "node" or "az": the value must name one in the topology

    def allowed(self) -> str:
        """A short phrase saying what is allowed, for error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.ref is not None:
            parts.append(f"the name of a {self.ref} in the topology")
        return " and ".join(parts)

    def check(self, value: Any) -> str | None:
        """None if ``value`` is within bounds, else what is allowed."""
        if self.choices is not None and value not in self.choices:
            return self.allowed()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and (value < self.minimum or
                                             (self.exclusive_minimum and value == self.minimum)):
                return self.allowed()
            if self.maximum is not None and value > self.maximum:
                return self.allowed()
        return None


def param(doc: str, default: Any = dataclasses.MISSING, *, minimum: float | None = None,
          maximum: float | None = None, exclusive_minimum: bool = False,
          choices: tuple[str, ...] | None = None, ref: str | None = None) -> Any:
    """A dataclass field carrying a ``ParamSpec``. Without a default the field is required."""
    spec = ParamSpec(doc, minimum, maximum, exclusive_minimum, choices, ref)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or None as a default, never a mutable value")
    return dataclasses.field(default=default, metadata={"param": spec})


def spec_of(field: dataclasses.Field[Any]) -> ParamSpec:
    spec = field.metadata.get("param")
    if spec is None:
        return ParamSpec(doc=field.name)
    return spec
