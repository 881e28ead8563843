"""Reading histories from files: Graylink's JSONL and Jepsen's log lines.

Theory of operation. Each reader turns a file into a ``History`` (harness/history.py) and refuses bad
input with a ``HistoryFormatError`` naming the file and the line: a line it cannot read, a field of the
wrong type, a completion with no open invocation, a second invocation on a busy process, a completion
earlier than its invocation. It never guesses.

Formats:

- ``jsonl``: one ``HistoryEntry`` per line, as harness/history.py documents (``process``, ``type``,
  ``f``, ``time_ns`` required; ``key``, ``value``, ``index``, ``node``, ``error`` optional).
- ``jepsen-log``: Jepsen's ``jepsen.util`` log lines (the porcupine-etcd corpus)::

      INFO  jepsen.util - 3	:invoke	:cas	[1 4]
      INFO  jepsen.util - 3	:fail	:cas	[1 4]

  ``PROCESS :TYPE :F VALUE``, separated by tabs or spaces. VALUE is EDN-like: ``nil``, ``true``,
  ``false``, integers, strings, ``:keywords`` and ``[vectors]``. A completion whose value is a keyword
  (``:info :write :timed-out``) carries it as its ``error``, with no value. Lines of the ``:nemesis``
  process are skipped (they are faults, not client operations). The line number is the entry's
  ``time_ns``: only the order of lines matters to a checker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.history import FAIL, INFO, INVOKE, OK, History, HistoryEntry

__all__ = ["FORMATS", "HistoryFormatError", "read_history", "read_jepsen_log", "read_jsonl"]

FORMATS = ("jsonl", "jepsen-log")
_TYPES = (INVOKE, OK, FAIL, INFO)


class HistoryFormatError(ScenarioError):
    """A history file that cannot be read, located by file and line (bad input: the CLI exits 2)."""


def read_history(path: str | Path, format: str = "jsonl") -> History:
    """Read a history file in one of FORMATS."""
    if format not in FORMATS:
        raise HistoryFormatError(f"unknown history format {format!r}; known: {', '.join(FORMATS)}",
                                 file=str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryFormatError(f"cannot read the history: {error}", file=str(path)) from None
    reader = _read_jsonl_lines if format == "jsonl" else _read_jepsen_lines
    numbered = reader(str(path), text.splitlines())
    _check_pairing(str(path), numbered)
    return History(entry for _, entry in numbered)


def read_jsonl(path: str | Path) -> History:
    return read_history(path, "jsonl")


def read_jepsen_log(path: str | Path) -> History:
    return read_history(path, "jepsen-log")


# -- JSONL -------------------------------------------------------------------------------------------
_REQUIRED = {"process": int, "type": str, "f": str, "time_ns": int}


def _read_jsonl_lines(path: str, lines: list[str]) -> list[tuple[int, HistoryEntry]]:
    entries: list[tuple[int, HistoryEntry]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            entries.append((number, _jsonl_entry(path, number, line, len(entries))))
    return entries


def _jsonl_entry(path: str, number: int, line: str, index: int) -> HistoryEntry:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise HistoryFormatError(f"not JSON ({error.msg}): {line[:80]!r}", file=path, line=number,
                                 column=error.colno) from None
    if not isinstance(data, dict):
        raise HistoryFormatError(f"an entry is a JSON object, got {line[:80]!r}", file=path,
                                 line=number)
    for name, kind in _REQUIRED.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HistoryFormatError(f"{kind.__name__} required, got {value!r}", file=path,
                                     line=number, field=name)
    if data["type"] not in _TYPES:
        raise HistoryFormatError(f"must be one of {', '.join(_TYPES)}, got {data['type']!r}",
                                 file=path, line=number, field="type")
    return HistoryEntry(data["process"], data["type"], data["f"], data.get("key"), data.get("value"),
                        data["time_ns"], index, data.get("node"), data.get("error"))


# -- Jepsen log ----------------------------------------------------------------------------------------
_JEPSEN_LINE = re.compile(
    r"^INFO\s+jepsen\.util\s+-\s+(?P<process>:?[\w-]+)\s+:(?P<type>[\w-]+)\s+:(?P<f>[\w-]+)"
    r"(?:\s+(?P<value>.*?))?\s*$")
_EDN_TOKEN = re.compile(r'\s*(?:(\[)|(\])|("(?:[^"\\]|\\.)*")|([^\s\[\]"]+))')


class _EdnError(ValueError):
    pass


def _read_jepsen_lines(path: str, lines: list[str]) -> list[tuple[int, HistoryEntry]]:
    entries: list[tuple[int, HistoryEntry]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = _jepsen_entry(path, number, line, len(entries))
        if entry is not None:
            entries.append((number, entry))
    return entries


def _jepsen_entry(path: str, number: int, line: str, index: int) -> HistoryEntry | None:
    match = _JEPSEN_LINE.match(line)
    if match is None:
        raise HistoryFormatError(
            f"not a Jepsen history line (INFO  jepsen.util - PROCESS :TYPE :F VALUE): {line[:80]!r}",
            file=path, line=number)
    if match["process"] == ":nemesis":
        return None
    if not match["process"].isdigit():
        raise HistoryFormatError(f"a process is an integer, got {match['process']!r}", file=path,
                                 line=number, field="process")
    if match["type"] not in _TYPES:
        raise HistoryFormatError(f"must be one of :{', :'.join(_TYPES)}, got :{match['type']}",
                                 file=path, line=number, field="type")
    try:
        value = _parse_edn(match["value"] or "nil")
    except _EdnError as error:
        raise HistoryFormatError(f"{error}: {match['value']!r}", file=path, line=number,
                                 field="value") from None
    error = None
    if match["type"] != INVOKE and isinstance(value, _Keyword):
        value, error = None, str(value)
    return HistoryEntry(int(match["process"]), match["type"], match["f"], None, _plain(value), number,
                        index, error=error)


class _Keyword(str):
    """An EDN keyword (``:timed-out``), held without its colon."""


def _parse_edn(text: str) -> Any:
    tokens = [next(group for group in match.groups() if group is not None)
              for match in _EDN_TOKEN.finditer(text) if match.group(0).strip()]
    value, rest = _parse_tokens(tokens)
    if rest:
        raise _EdnError(f"unexpected {' '.join(rest)!r} after the value")
    return value


def _parse_tokens(tokens: list[str]) -> tuple[Any, list[str]]:
    if not tokens:
        raise _EdnError("a value is missing")
    token, rest = tokens[0], tokens[1:]
    if token == "[":
        items: list[Any] = []
        while rest and rest[0] != "]":
            item, rest = _parse_tokens(rest)
            items.append(item)
        if not rest:
            raise _EdnError("a vector is not closed")
        return items, rest[1:]
    return _atom(token), rest


def _atom(token: str) -> Any:
    if token in ("nil", "true", "false"):
        return {"nil": None, "true": True, "false": False}[token]
    if token.startswith(":") and len(token) > 1:
        return _Keyword(token[1:])
    if token.startswith('"'):
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    raise _EdnError(f"cannot read {token!r} (nil, true, false, integers, strings, :keywords, [vectors])")


def _plain(value: Any) -> Any:
    """Keywords inside values become plain strings."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, _Keyword) else value


# -- both ----------------------------------------------------------------------------------------------
def _check_pairing(path: str, numbered: Iterable[tuple[int, HistoryEntry]]) -> None:
    """Each completion closes its process's open invocation of the same f, no earlier than it."""
    open_by_process: dict[int, tuple[int, HistoryEntry]] = {}
    for number, entry in numbered:
        if entry.type == INVOKE:
            if entry.process in open_by_process:
                raise HistoryFormatError(
                    f"process {entry.process} invokes {entry.f} while its {open_by_process[entry.process][1].f} "
                    f"from line {open_by_process[entry.process][0]} is still open", file=path, line=number)
            open_by_process[entry.process] = (number, entry)
            continue
        opened = open_by_process.pop(entry.process, None)
        if opened is None:
            raise HistoryFormatError(f"process {entry.process} completes {entry.f} ({entry.type}) "
                                     f"but has no open invocation", file=path, line=number)
        _check_completion(path, number, opened, entry)


def _check_completion(path: str, number: int, opened: tuple[int, HistoryEntry],
                      entry: HistoryEntry) -> None:
    invoked_line, invocation = opened
    if invocation.f != entry.f:
        raise HistoryFormatError(f"process {entry.process} completes {entry.f} but invoked "
                                 f"{invocation.f} (line {invoked_line})", file=path, line=number)
    if entry.time_ns < invocation.time_ns:
        raise HistoryFormatError(f"completes at time_ns {entry.time_ns}, before its invocation at "
                                 f"{invocation.time_ns} (line {invoked_line})", file=path, line=number,
                                 field="time_ns")
