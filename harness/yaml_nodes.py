"""Typed values from YAML nodes, every error located by file, line, column and field path.

Theory of operation. PyYAML *composes* the text into a tree of nodes and constructs no Python
object, so nothing in a file can run code or build an arbitrary class. Each node keeps its raw text,
its quoting style and its position. ``NodeReader`` converts nodes into the type a frozen dataclass
field declares (read with ``typing.get_type_hints``), resolving every scalar itself from its raw
text and the expected type, never from YAML 1.1's implicit typing:

- bool: plain ``true``/``false`` in any case. ``yes``/``no``/``on``/``off``/``y``/``n`` are refused
  (YAML 1.1 and 1.2 disagree on them); write true or false.
- int: decimal digits with an optional sign; ``_`` between digits is accepted (``1_000_000``) as in
  Python. A leading zero (``010``: octal in YAML 1.1, ten in 1.2) and ``0x``/``0o``/``0b`` forms are
  refused, as is ``1e3`` or ``1.0`` (not an integer).
- float: any int form, decimals (``0.5``, ``.5``, ``5.``) and exponents with or without a dot
  (``1e3``, ``1.0e-05``). ``.inf``/``.nan`` and overflow are refused: every number must be finite.
- str: any scalar, plain or quoted, taken as written: a node named ``off``, ``no`` or ``1`` is that
  string. An empty or ``null``/``~`` plain scalar is a missing value.
- ``X | None``: an empty, ``null`` or ``~`` plain scalar is None; anything else must be an X.
- A quoted scalar is always a string: ``"5"`` is not a number and ``"true"`` is not a boolean.
- ``tuple[T, ...]``: a YAML sequence of T. Nested frozen dataclasses: a mapping. ``Any``: plain data
  (dicts, lists and scalars typed by the rules above, without an expected type).

Explicit tags: the standard ones (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
``!!seq``, ``!!map``) are allowed, ``!!str`` acting as quotes; any other (``!!python/…``) is
refused.

A mapping is checked for duplicate keys (naming both lines), unknown keys (listing the allowed ones
and the closest match) and missing required fields. Each value is then checked against its field's
``ParamSpec`` (bounds, choices, references to topology names), every ``x_min``/``x_max`` pair is
checked for order, and a ``ValueError`` from the dataclass's ``__post_init__`` becomes a
``ScenarioError`` at the mapping it came from. Every error says where, which field, the bad value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ScenarioError
from harness.params import SELECTOR, ParamSpec, spec_of

__all__ = ["NodeReader", "Entries", "compose", "describe_node", "join_path"]

Entries = dict[str, tuple[ScalarNode, Node]]  # key text → (key node, value node), in file order

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null")}
_KIND_TAGS = {ScalarNode: _SCALAR_TAGS, SequenceNode: {_TAG + "seq"}, MappingNode: {_TAG + "map"}}
_NULLS = ("", "~", "null", "Null", "NULL")
_YAML11_BOOLS = ("yes", "no", "on", "off", "y", "n")
_DIGITS = r"[0-9](?:_?[0-9])*"
_INT = re.compile(r"[-+]?(?:0|[1-9](?:_?[0-9])*)\Z")
_FLOAT = re.compile(rf"[-+]?(?:(?:0|[1-9](?:_?[0-9])*)(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})"
                    rf"(?:[eE][-+]?[0-9]+)?\Z")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]")
_RADIX = re.compile(r"[-+]?0[xXoObB]")
_NON_FINITE = re.compile(r"[-+]?\.(?:inf|nan)\Z", re.IGNORECASE)
# What YAML 1.1 would read as a number (0x1F, 010, .inf and sexagesimal 1:30 too), for plain data.
_NUMBER_LIKE = re.compile(r"[-+]?(?:0[xXoObB][0-9a-fA-F_]+"
                          r"|[0-9][0-9_]*(?::[0-5]?[0-9])*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
                          r"|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|\.(?:inf|nan))\Z", re.IGNORECASE)


class _Loader(yaml.SafeLoader):
    """A safe loader that remembers which nodes carried an explicit tag (``!!str 010``)."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        node = super().compose_node(parent, index)
        if tag not in (None, "!"):
            node.explicit_tag = tag  # type: ignore[attr-defined]
        return node


def compose(text: str, filename: str) -> Node | None:
    """The node tree of a single YAML document (None when it holds nothing), tags checked."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, filename) from None
    except yaml.reader.ReaderError as error:
        line = text[:error.position].count("\n") + 1
        raise ScenarioError(f"not valid YAML: character {error.character!r} is not allowed "
                            f"({error.reason})", file=filename, line=line) from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"not valid YAML: {error}", file=filename) from None
    except RecursionError:
        raise ScenarioError("the YAML is nested too deeply", file=filename) from None
    if root is not None:
        _check_tags(root, filename, set())
    return root


def _syntax_error(error: yaml.MarkedYAMLError, filename: str) -> ScenarioError:
    mark = error.problem_mark or error.context_mark
    message = f"YAML syntax error: {error.problem or error.context}"
    if error.context and error.context_mark is not None and error.problem:
        message += f" ({error.context} that starts at line {error.context_mark.line + 1})"
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return ScenarioError(message, file=filename, line=line, column=column)


def _check_tags(node: Node, filename: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: the same node again
        return
    seen.add(id(node))
    tag = getattr(node, "explicit_tag", None)
    if tag is not None and tag not in _KIND_TAGS[type(node)]:
        shown = "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag
        raise ScenarioError(f"the tag {shown} is not allowed here: scenarios hold plain data only "
                            f"(tags allowed: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map)",
                            file=filename, line=node.start_mark.line + 1,
                            column=node.start_mark.column + 1)
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        children = [item for pair in node.value for item in pair]
    for child in children:
        _check_tags(child, filename, seen)


def join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def describe_node(node: Node) -> str:
    """The value as the user wrote it, for error messages."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if _is_plain(node):
        return "an empty value" if node.value == "" else node.value
    return repr(node.value)


def _is_plain(node: Node) -> bool:
    return (isinstance(node, ScalarNode) and node.style is None
            and getattr(node, "explicit_tag", None) != _TAG + "str")


def is_null(node: Node) -> bool:
    return _is_plain(node) and node.value in _NULLS


def _closest(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _user_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [field for field in dataclasses.fields(cls) if field.init]


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return (field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


class NodeReader:
    """Converts nodes of one file into typed values; knows the topology's names once they are read.

    ``refs`` maps a ``ParamSpec.ref`` ("node", "az") to the names a value may take; ``wildcards``
    maps a dataclass to the fields of it that also accept ``"*"`` (any node).
    """

    def __init__(self, filename: str, refs: Mapping[str, Sequence[str]] | None = None,
                 wildcards: Mapping[type, tuple[str, ...]] | None = None) -> None:
        self.filename = filename
        self.refs = dict(refs or {})
        self.wildcards = dict(wildcards or {})

    def with_refs(self, refs: Mapping[str, Sequence[str]]) -> NodeReader:
        return NodeReader(self.filename, refs, self.wildcards)

    def fail(self, node: Node, path: str, message: str) -> NoReturn:
        mark = node.start_mark
        raise ScenarioError(message, file=self.filename, line=mark.line + 1, column=mark.column + 1,
                            field=path or None)

    # -- structure ---------------------------------------------------------------------------------
    def mapping(self, node: Node, path: str) -> Entries:
        """A mapping's entries by key text, refusing duplicate, merge and non-scalar keys."""
        if not isinstance(node, MappingNode):
            self.fail(node, path, f"expected a mapping (key: value), got {describe_node(node)}")
        entries: Entries = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _TAG + "merge":
                self.fail(key, path, "keys must be plain names (merge keys `<<` and complex keys "
                                     "are not supported)")
            if key.value in entries:
                first = entries[key.value][0].start_mark.line + 1
                self.fail(key, join_path(path, key.value), f"duplicate key {key.value!r}: first at "
                          f"line {first}, again at line {key.start_mark.line + 1}")
            entries[key.value] = (key, value)
        return entries

    def sequence(self, node: Node, path: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(node, path, f"expected a list, got {describe_node(node)} "
                                  f"(write [a, b] or one '- item' per line)")
        return list(node.value)

    def reject_unknown(self, entries: Entries, allowed: Sequence[str], path: str) -> None:
        for name, (key, _) in entries.items():
            if name not in allowed:
                where = f" in {path}" if path else ""
                self.fail(key, join_path(path, name), f"unknown key {name!r}{where}"
                          f"{_closest(name, allowed)}; allowed keys: {', '.join(allowed)}")

    # -- dataclasses -------------------------------------------------------------------------------
    def build(self, cls: type, node: Node, path: str) -> Any:
        """An instance of the frozen dataclass ``cls`` from a mapping node."""
        return self.build_from(cls, self.mapping(node, path), node, path)

    def build_from(self, cls: type, entries: Entries, node: Node, path: str) -> Any:
        fields = _user_fields(cls)
        self.reject_unknown(entries, [field.name for field in fields], path)
        hints = self._hints_of(cls, node, path)
        values: dict[str, Any] = {}
        for field in fields:
            if field.name in entries:
                values[field.name] = self.field_value(cls, field, hints[field.name],
                                                      entries[field.name][1], path)
            elif not _has_default(field):
                self.fail(node, join_path(path, field.name), f"missing required key "
                          f"{field.name!r} ({spec_of(field).doc})")
        instance = self._construct(cls, values, entries, node, path)
        self._check_ranges(instance, fields, entries, node, path)
        return instance

    def _hints_of(self, cls: type, node: Node, path: str) -> dict[str, Any]:
        try:
            return _hints(cls)
        except Exception as error:  # an unresolvable annotation in a user's Config class
            self.fail(node, path, f"cannot read the field types of {cls.__qualname__}: {error}")

    def _construct(self, cls: type, values: dict[str, Any], entries: Entries, node: Node,
                   path: str) -> Any:
        """``cls(**values)``; its own validation's error is located at the key it names first."""
        try:
            return cls(**values)
        except (ValueError, TypeError) as error:
            message = str(error)
            named = [(match.start(), name) for name in entries
                     if (match := re.search(rf"\b{re.escape(name)}\b", message))]
            if named:
                name = min(named)[1]
                self.fail(entries[name][1], join_path(path, name), f"invalid {cls.__name__}: "
                                                                   f"{message}")
            self.fail(node, path, f"invalid {cls.__name__}: {message}")

    def _check_ranges(self, instance: Any, fields: list[dataclasses.Field[Any]], entries: Entries,
                      node: Node, path: str) -> None:
        """Every ``x_min`` must not exceed its ``x_max``, whichever of them was written."""
        names = {field.name for field in fields}
        for low_name in sorted(name for name in names if name.endswith("_min")):
            high_name = low_name[:-4] + "_max"
            low, high = getattr(instance, low_name), getattr(instance, high_name, None)
            numbers = isinstance(low, (int, float)) and isinstance(high, (int, float))
            if high_name not in names or not numbers or low <= high:
                continue
            where = entries.get(low_name) or entries.get(high_name)
            at, name = (where[1], where[0].value) if where else (node, low_name)
            self.fail(at, join_path(path, name), f"{low_name} ({low:g}) is greater than "
                      f"{high_name} ({high:g}); it must be <= {high_name}")

    def field_value(self, cls: type, field: dataclasses.Field[Any], hint: Any, node: Node,
                    path: str) -> Any:
        """The value of one field, checked against its spec and the topology's names."""
        path = join_path(path, field.name)
        value = self.value(hint, node, path)
        spec = spec_of(field)
        items = ([(item, item_node, f"{path}[{index}]")
                  for index, (item, item_node) in enumerate(zip(value, node.value))]
                 if isinstance(value, tuple) else [(value, node, path)])
        for item, item_node, item_path in items:
            if item is not None and not (_has_default(field) and value == _default(field)):
                self._check_spec(cls, field.name, spec, item, item_node, item_path)
        if spec.ref is not None and value == () and not _has_default(field):
            self.fail(node, path, f"must name at least one {spec.ref}, got an empty list")
        return value

    def _check_spec(self, cls: type, name: str, spec: ParamSpec, value: Any, node: Node,
                    path: str) -> None:
        if spec.ref is not None and isinstance(value, str):
            self._check_ref(cls, name, spec.ref, value, node, path)
            return
        allowed = spec.check(value)
        if allowed is not None:
            self.fail(node, path, f"{describe_node(node)} is not allowed; allowed: {allowed}")

    def _check_ref(self, cls: type, name: str, ref: str, value: str, node: Node, path: str) -> None:
        known = self.refs.get(ref)
        wildcard = name in self.wildcards.get(cls, ())
        if known is None or value in known or (wildcard and value == "*"):
            return
        selector = SELECTOR.match(value) if ref == "node" else None
        selectors = self.refs.get("node-selector", ())
        if selector is not None:
            if selector.group(1) in selectors:
                return
            allowed = ", ".join(f"{kind}(...)" for kind in selectors) or "none (the system under " \
                "test declares no NODE_SELECTORS)"
            self.fail(node, path, f"{value!r} uses an unknown node selector "
                                  f"{selector.group(1)!r}; selectors: {allowed}")
        if ref == "node" and re.fullmatch(r"[a-z_][a-z0-9_]*\([^)]*", value):
            self.fail(node, path, f"{value!r} looks like a node selector cut at a comma: inside a "
                                  f"[flow, list] quote it, e.g. \"{value}, …)\"")
        choices = list(known) + (["*"] if wildcard else []) + [
            f"{kind}(...)" for kind in self.refs.get("node-selector", ())]
        self.fail(node, path, f"{value!r} is not a {ref} in the topology{_closest(value, known)}; "
                              f"known {ref}s: {', '.join(choices)}")

    # -- values ------------------------------------------------------------------------------------
    def value(self, hint: Any, node: Node, path: str) -> Any:
        """``node`` converted to the type ``hint``, by the rules in the module's docstring."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            return self._optional(hint, args, node, path)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = self.sequence(node, path)
            return tuple(self.value(args[0], item, f"{path}[{index}]")
                         for index, item in enumerate(items))
        if origin is typing.Literal:
            return self._literal(args, node, path)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.build(hint, node, path)
        converter = _SCALARS.get(hint)
        if converter is not None:
            return converter(self, node, path)
        if hint is Any or hint is object:
            return self.plain_data(node, path)
        self.fail(node, path, f"this field's type ({hint}) cannot be written in a scenario")

    def _optional(self, hint: Any, args: tuple[Any, ...], node: Node, path: str) -> Any:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) != 1:
            self.fail(node, path, f"this field's type ({hint}) cannot be written in a scenario")
        if type(None) in args and is_null(node):
            return None
        return self.value(others[0], node, path)

    def _literal(self, args: tuple[Any, ...], node: Node, path: str) -> Any:
        text = self.string(node, path)
        if text not in args:
            self.fail(node, path, f"{text!r} is not allowed; allowed: one of "
                                  f"{', '.join(repr(arg) for arg in args)}")
        return text

    def _scalar_text(self, node: Node, path: str, expected: str) -> str:
        if not isinstance(node, ScalarNode):
            self.fail(node, path, f"expected {expected}, got {describe_node(node)}")
        if is_null(node):
            self.fail(node, path, f"expected {expected}, got {describe_node(node)}")
        return node.value

    def string(self, node: Node, path: str) -> str:
        return self._scalar_text(node, path, "a string")

    def boolean(self, node: Node, path: str) -> bool:
        text = self._scalar_text(node, path, "true or false")
        if _is_plain(node) and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if _is_plain(node) and text.lower() in _YAML11_BOOLS:
            self.fail(node, path, f"{text} is ambiguous (YAML 1.1 reads it as a boolean, YAML 1.2 "
                                  f"as a string); write true or false")
        self.fail(node, path, f"expected true or false, got {describe_node(node)}")

    def integer(self, node: Node, path: str) -> int:
        text = self._number_text(node, path, "an integer")
        if not _INT.match(text):
            self.fail(node, path, f"expected an integer, got {text}")
        return int(text)

    def number(self, node: Node, path: str) -> float:
        text = self._number_text(node, path, "a number")
        if not _FLOAT.match(text):
            self.fail(node, path, f"expected a number, got {text}")
        value = float(text)
        if not math.isfinite(value):
            self.fail(node, path, f"{text} is too large: numbers must be finite")
        return value

    def _number_text(self, node: Node, path: str, expected: str) -> str:
        text = self._scalar_text(node, path, expected)
        if not _is_plain(node):
            self.fail(node, path, f"expected {expected}, got the quoted string {text!r} "
                                  f"(remove the quotes)")
        if text.lower() in ("true", "false") + _YAML11_BOOLS:
            self.fail(node, path, f"expected {expected}, got the boolean-like {text}")
        if _RADIX.match(text):
            self.fail(node, path, f"{text}: hexadecimal, octal and binary numbers are not "
                                  f"accepted; write {expected} in decimal")
        if _LEADING_ZERO.match(text):
            self.fail(node, path, f"{text}: a leading zero is ambiguous (YAML 1.1 reads 010 as "
                                  f"octal 8, YAML 1.2 as 10); write it without the leading zero")
        if _NON_FINITE.match(text):
            self.fail(node, path, f"{text} is not allowed: numbers must be finite")
        return text

    # -- plain data --------------------------------------------------------------------------------
    def plain_data(self, node: Node, path: str) -> Any:
        """Dicts, lists, None, bools, ints, floats and strings, typed by the same rules."""
        if isinstance(node, MappingNode):
            entries = self.mapping(node, path)
            return {name: self.plain_data(value, join_path(path, name))
                    for name, (_, value) in entries.items()}
        if isinstance(node, SequenceNode):
            return [self.plain_data(item, f"{path}[{index}]")
                    for index, item in enumerate(node.value)]
        return self._plain_scalar(node, path)

    def _plain_scalar(self, node: Node, path: str) -> Any:
        text = node.value
        if not _is_plain(node):
            return text
        if text in _NULLS:
            return None
        if text.lower() not in ("true", "false") + _YAML11_BOOLS and not _NUMBER_LIKE.match(text):
            return text
        try:
            if text.lower() in ("true", "false") + _YAML11_BOOLS:
                return self.boolean(node, path)
            return self.integer(node, path) if _INT.match(text) else self.number(node, path)
        except ScenarioError as error:
            self.fail(node, path, f"{error.message}; or quote it if you mean a string")


_SCALARS: dict[Any, Any] = {
    str: NodeReader.string, bool: NodeReader.boolean, int: NodeReader.integer,
    float: NodeReader.number,
}
