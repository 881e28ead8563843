"""A JSON Schema of the scenario format, derived from the same declarations the loader reads.

Every user-facing dataclass declares its fields with ``param(...)`` (harness/params.py): the loader
validates against that metadata, and this module turns it into JSON Schema (draft 2020-12) so that
editors can complete and check scenario files. ``graylink schema`` prints it; the committed copy is
``scenarios/schema.json`` (a test keeps the two equal). Given a system class, ``system.config`` is
described by the system's ``Config`` dataclass; otherwise it is any mapping.

The schema is a help for editors, not the authority: the loader also checks what JSON Schema cannot
say (node names that exist in the topology, ``x_min <= x_max``, times inside the fault phase).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from harness.disk import DiskConfig
from harness.faults import FAULT_KINDS
from harness.network import LinkConfig
from harness.params import spec_of
from harness.scenario import RunLimits
from harness.timeline import FaultProfile

__all__ = ["scenario_schema"]

_EXPECTATION_PATTERN = (r"^\s*(check\s+\S+\s+(passes|fails)|[A-Za-z_][\w./-]*\s*(==|!=|<=|>=|<|>)\s*"
                        r"[-+]?[0-9.eE_]+)\s*$")


def scenario_schema(system_class: type | None = None) -> dict[str, Any]:
    config = getattr(system_class, "Config", None)
    config_schema = (_dataclass(config) if dataclasses.is_dataclass(config)
                     else {"type": "object", "description": "the system's configuration"})
    system = {"type": "object", "additionalProperties": False, "required": ["use"],
              "properties": {"use": {"type": "string", "pattern": r"^[\w.]+:\w+$",
                                     "description": "the system's class, 'package.module:Class'"},
                             "config": config_schema}}
    node = {"oneOf": [{"type": "string"}, {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {"name": {"type": "string"}, "role": {"type": "string"}}}]}
    expect = {"type": "array", "items": {"type": "string", "pattern": _EXPECTATION_PATTERN}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Graylink scenario", "type": "object", "additionalProperties": False,
        "required": ["name", "topology", "system"],
        "properties": {
            "name": {"type": "string", "description": "the scenario's name, shown in reports"},
            "description": {"type": "string", "description": "the story the scenario tells"},
            "seed": {"type": "integer", "minimum": 0, "description": "the default seed"},
            "duration_s": {"type": "number", "exclusiveMinimum": 0,
                           "description": "the fault phase, in seconds"},
            "heal_s": {"type": "number", "minimum": 0,
                       "description": "the heal phase: faults undone, the system must converge"},
            "topology": {"type": "object", "minProperties": 1,
                         "description": "availability zone → its nodes",
                         "additionalProperties": {"type": "array", "minItems": 1, "items": node}},
            "network": _dataclass(LinkConfig), "disk": _dataclass(DiskConfig),
            "system": system, "faults": {"type": "array", "items": _fault_entry()},
            "random_faults": _dataclass(FaultProfile), "limits": _dataclass(RunLimits),
            "expect": expect,
            "variants": {"type": "object", "propertyNames": {"pattern": r"^[a-z0-9]+(-[a-z0-9]+)*$"},
                         "additionalProperties": {
                             "type": "object", "additionalProperties": False,
                             "properties": {"system": {
                                 "type": "object", "additionalProperties": False,
                                 "properties": {"config": {"type": "object"}}},
                                 "faults": {"type": "array", "items": _fault_entry()},
                                 "expect": expect}}},
        },
    }


def _fault_entry() -> dict[str, Any]:
    kinds = []
    for kind, cls in FAULT_KINDS.items():
        kinds.append({"type": "object", "additionalProperties": False, "required": ["at_s", kind],
                      "properties": {"at_s": {"type": "number", "minimum": 0,
                                              "description": "when the fault strikes, in seconds"},
                                     kind: _dataclass(cls)},
                      "description": (cls.__doc__ or kind).strip().splitlines()[0]})
    return {"oneOf": kinds}


def _dataclass(cls: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties, required = {}, []
    for field in dataclasses.fields(cls):
        if field.name == "duration_s" and "param" not in field.metadata:
            continue  # a fault that runs its own course takes no duration
        properties[field.name] = _field(hints[field.name], field)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": properties}
    if required:
        schema["required"] = required
    if cls.__doc__:
        schema["description"] = cls.__doc__.strip().splitlines()[0]
    return schema


def _field(hint: Any, field: dataclasses.Field[Any]) -> dict[str, Any]:
    spec = spec_of(field)
    schema = _type(hint)
    schema["description"] = spec.doc
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    for key, bound in (("minimum", spec.minimum), ("maximum", spec.maximum)):
        if bound is not None and schema.get("type") in ("number", "integer"):
            name = "exclusiveMinimum" if key == "minimum" and spec.exclusive_minimum else key
            schema[name] = bound
    return schema


def _type(hint: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_type(arg) for arg in args if arg is not type(None)]
        schema = options[0] if len(options) == 1 else {"oneOf": options}
        return {"anyOf": [schema, {"type": "null"}]} if type(None) in args else schema
    if origin is tuple:
        return {"type": "array", "items": _type(args[0])}
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    return dict({bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
                 str: {"type": "string"}}.get(hint, {}))
