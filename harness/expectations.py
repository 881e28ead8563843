"""Expectations: what a scenario says its run must show, parsed without ``eval`` and judged afterwards.

Theory of operation. An expectation is one line of text in one of two forms:

- ``<metric> <op> <number>``: a metric of the run's ``Result.metrics`` compared with a number, op one
  of ``== != < <= > >=``, e.g. ``elections.spurious == 0`` or ``latency_ms.put_item.p99 <= 50``;
- ``check <name> passes|fails``: the verdict of a named check, e.g. ``check leases fails``. A check is
  a checker's ``CheckResult`` or, for a system with a plain ``check()``, the kind of a failure it
  reports (``check lost-acknowledged-write fails``).

``parse_expectation`` splits the text into words and operators with one regular expression and reads
them by hand: names and numbers must match their patterns exactly, and every mistake is an
``ExpectationError`` carrying the column of the offending word and the grammar. Nothing is evaluated.

After the run, ``judge`` turns each expectation into a ``CheckResult`` named ``expect: <text>`` whose
summary shows the actual value. An expectation never passes vacuously: a metric the run did not
produce, or a check that did not run, fails it (naming the closest names). A failed expectation is a
``Failure`` of kind ``expectation``. A ``check NAME fails`` that holds makes the failures of NAME
*expected*: they stay in the report (the check's verdict and evidence, ``Result.expected_failures``)
but no longer fail the run, so a variant with a planted bug can pass by finding it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.checkers.verdict import FAIL_VERDICT, PASS, UNKNOWN_OUTCOME, CheckResult
from harness.errors import Failure

if TYPE_CHECKING:
    from harness.result import Result
    from harness.scenario import Scenario

__all__ = [
    "GRAMMAR",
    "Expectation",
    "ExpectationError",
    "Judgement",
    "judge",
    "not_judged",
    "parse_expectation",
    "variant_table",
]

GRAMMAR = ("an expectation is `<metric> <op> <number>` with op one of == != < <= > >= "
           "(e.g. `elections.spurious == 0`), or `check <name> passes|fails` "
           "(e.g. `check leases fails`)")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
VERDICT_WORDS = ("passes", "fails")
_VERB = {"passes": "pass", "fails": "fail"}
CHECK_PREFIX = "expect: "  # the name of an expectation's CheckResult: "expect: <text>"

_TOKEN = re.compile(r"(?P<operator>[=!<>]+)|(?P<word>[^\s=!<>]+)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[./-][A-Za-z0-9_]+)*\Z")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_NUMBER_WITH_UNIT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[A-Za-z%]+\Z")
_MISSPELLED_OPERATORS = {"=": "==", "===": "==", "=>": ">=", "=<": "<=", "<>": "!=", "!": "!=",
                         "!==": "!=", "<<": "<", ">>": ">"}
_MISSPELLED_VERDICTS = {"pass": "passes", "passed": "passes", "ok": "passes", "holds": "passes",
                        "fail": "fails", "failed": "fails"}
_COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class ExpectationError(ValueError):
    """A malformed expectation: what is wrong and where (``column``: 0-based offset in the text)."""

    def __init__(self, problem: str, column: int) -> None:
        self.problem = problem
        self.column = column
        super().__init__(f"{problem}; {GRAMMAR}")


@dataclass(frozen=True, slots=True)
class Expectation:
    """One parsed expectation; ``text`` is its canonical spelling, which parses back to it."""

    subject: str  # the metric's name, or the check's name when ``relation`` is passes or fails
    relation: str  # one of OPERATORS, or "passes" / "fails" for a check
    threshold: float | None = None  # the number a metric is compared with; None for a check

    def __post_init__(self) -> None:
        if not _NAME.match(self.subject):
            raise ValueError(f"{self.subject!r} is not a metric or check name ({GRAMMAR})")
        is_check = self.relation in VERDICT_WORDS
        if self.relation not in OPERATORS and not is_check:
            raise ValueError(f"unknown relation {self.relation!r}; allowed: "
                             f"{', '.join(OPERATORS + VERDICT_WORDS)}")
        if is_check != (self.threshold is None):
            raise ValueError(f"a metric expectation needs a threshold and a check expectation none: "
                             f"{self.subject!r} {self.relation!r} {self.threshold!r}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"the threshold must be finite, got {self.threshold!r}")

    @property
    def is_check(self) -> bool:
        return self.relation in VERDICT_WORDS

    @property
    def text(self) -> str:
        if self.threshold is None:
            return f"check {self.subject} {self.relation}"
        return f"{self.subject} {self.relation} {_format_number(self.threshold)}"

    def __str__(self) -> str:
        return self.text


def _format_number(value: float) -> str:
    """The shortest spelling that reads back as the same float (5, not 5.0)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# -- parsing ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "operator" or "word"
    text: str
    column: int


def parse_expectation(text: str) -> Expectation:
    """The expectation ``text`` says; an ``ExpectationError`` (with its column) if it is malformed."""
    tokens = [_Token(match.lastgroup or "", match.group(), match.start())
              for match in _TOKEN.finditer(text)]
    if not tokens:
        raise ExpectationError("the expectation is empty", 0)
    first, second = tokens[0], tokens[1] if len(tokens) > 1 else None
    if first.text == "check" and (second is None or second.kind == "word"):
        return _parse_check(tokens, len(text))
    return _parse_comparison(tokens, len(text))


def _parse_check(tokens: list[_Token], end: int) -> Expectation:
    if len(tokens) == 1:
        raise ExpectationError("`check` needs the check's name, then passes or fails", end)
    name = tokens[1]
    _require_name(name, "a check's name")
    if len(tokens) == 2:
        raise ExpectationError(f"missing passes or fails after the check's name {name.text!r}", end)
    verdict = tokens[2]
    if verdict.text not in VERDICT_WORDS:
        hint = _MISSPELLED_VERDICTS.get(verdict.text.lower())
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        raise ExpectationError(f"expected passes or fails after the check's name, got "
                               f"{verdict.text!r}{suggestion}", verdict.column)
    _reject_rest(tokens[3:], "the verdict")
    return Expectation(name.text, verdict.text)


def _parse_comparison(tokens: list[_Token], end: int) -> Expectation:
    metric = tokens[0]
    if metric.kind == "operator":
        raise ExpectationError(f"missing the metric's name before {metric.text!r}", metric.column)
    if _NUMBER.match(metric.text):
        raise ExpectationError(f"an expectation starts with the metric's name, got the number "
                               f"{metric.text!r} (write `<metric> <op> <number>`)", metric.column)
    _require_name(metric, "a metric's name")
    if len(tokens) == 1:
        raise ExpectationError(f"missing a comparison after {metric.text!r} (one of "
                               f"{' '.join(OPERATORS)}, then a number)", end)
    operator = tokens[1]
    _require_operator(operator, metric.text)
    if len(tokens) == 2:
        raise ExpectationError(f"missing the number after {operator.text!r}", end)
    threshold = _number(tokens[2])
    _reject_rest(tokens[3:], "the number (one comparison per expectation; add another list item "
                             "for another)")
    return Expectation(metric.text, operator.text, threshold)


def _require_name(token: _Token, what: str) -> None:
    if token.kind != "word" or not _NAME.match(token.text):
        raise ExpectationError(f"{token.text!r} is not {what} (names are letters, digits and _, "
                               f"joined by . / or -, starting with a letter or _)", token.column)


def _require_operator(token: _Token, metric: str) -> None:
    if token.kind != "operator":
        raise ExpectationError(f"expected a comparison operator after {metric!r}, got "
                               f"{token.text!r} (one of {' '.join(OPERATORS)})", token.column)
    if token.text not in OPERATORS:
        hint = _MISSPELLED_OPERATORS.get(token.text)
        suggestion = f" (did you mean {hint!r}?)" if hint else ""
        raise ExpectationError(f"unknown operator {token.text!r}{suggestion}; operators: "
                               f"{' '.join(OPERATORS)}", token.column)


def _number(token: _Token) -> float:
    if token.kind != "word" or not _NUMBER.match(token.text):
        if _NUMBER_WITH_UNIT.match(token.text):
            problem = (f"{token.text!r} is not a number: units belong in the metric's name "
                       f"(e.g. write_unavailable_s <= 5)")
        else:
            problem = f"{token.text!r} is not a number: a metric is compared with a number"
        raise ExpectationError(problem, token.column)
    value = float(token.text)
    if not math.isfinite(value):
        raise ExpectationError(f"{token.text!r} is too large: numbers must be finite", token.column)
    return value


def _reject_rest(rest: list[_Token], after: str) -> None:
    if rest:
        raise ExpectationError(f"unexpected {rest[0].text!r} after {after}", rest[0].column)


# -- judging ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Judgement:
    """The expectations' verdicts, and the run's failures once expected ones are set aside."""

    checks: tuple[CheckResult, ...]  # one per expectation, named "expect: <text>", in order
    failures: tuple[Failure, ...]  # the run's unexpected failures, then one per failed expectation
    expected_failures: tuple[Failure, ...]  # failures a holding `check NAME fails` foretold


def judge(expectations: Sequence[Expectation], metrics: Mapping[str, Any],
          checks: Sequence[CheckResult], failures: Sequence[Failure], time_ns: int) -> Judgement:
    """Judge ``expectations`` against a finished run's metrics, check verdicts and failures."""
    outcomes = {check.name: check.verdict for check in checks}
    for failure in failures:  # a plain check() failure counts as a check of its kind that failed
        outcomes.setdefault(failure.kind, FAIL_VERDICT)
    results = tuple(_judge_check(item, outcomes) if item.is_check else _judge_metric(item, metrics)
                    for item in expectations)
    foretold = {item.subject for item, result in zip(expectations, results)
                if item.relation == "fails" and result.passed}
    unexpected = [failure for failure in failures if failure.kind not in foretold]
    unexpected += [Failure("expectation", f"{result.name[len(CHECK_PREFIX):]} does not hold: "
                                          f"{result.summary}", time_ns, evidence=result.evidence)
                   for result in results if not result.passed]
    return Judgement(results, tuple(unexpected),
                     tuple(failure for failure in failures if failure.kind in foretold))


def not_judged(expectations: Sequence[Expectation], reason: str) -> tuple[CheckResult, ...]:
    """Verdict ``unknown`` for each expectation of a run that ended before it could be judged."""
    return tuple(CheckResult(CHECK_PREFIX + item.text, UNKNOWN_OUTCOME,
                             f"not judged: the run ended early ({reason})")
                 for item in expectations)


def _judge_metric(expectation: Expectation, metrics: Mapping[str, Any]) -> CheckResult:
    name, subject = CHECK_PREFIX + expectation.text, expectation.subject
    if subject not in metrics:
        return CheckResult(name, FAIL_VERDICT, f"the run produced no metric {subject!r}"
                           f"{_close_names(subject, metrics, 'metrics')}")
    value = metrics[subject]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return CheckResult(name, FAIL_VERDICT, f"the metric {subject!r} is not a number: {value!r}")
    assert expectation.threshold is not None
    holds = _COMPARE[expectation.relation](value, expectation.threshold)
    summary = f"{subject} = {_format_value(value)}"
    if not holds:
        summary += f", expected {expectation.relation} {_format_number(expectation.threshold)}"
    return CheckResult(name, PASS if holds else FAIL_VERDICT, summary)


def _judge_check(expectation: Expectation, outcomes: Mapping[str, str]) -> CheckResult:
    name, subject = CHECK_PREFIX + expectation.text, expectation.subject
    outcome = outcomes.get(subject)
    if outcome is None:
        return CheckResult(name, FAIL_VERDICT, f"no check named {subject!r} ran"
                           f"{_close_names(subject, outcomes, 'checks')}")
    holds = outcome == (PASS if expectation.relation == "passes" else FAIL_VERDICT)
    summary = f"verdict {outcome}"
    if not holds:
        summary += f", expected it to {_VERB[expectation.relation]}"
    return CheckResult(name, PASS if holds else FAIL_VERDICT, summary)


def _close_names(name: str, known: Mapping[str, Any], what: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    if close:
        return f"; close names: {', '.join(close)}"
    if not known:
        return f"; the run produced no {what} at all"
    shown = sorted(known)
    more = f", ... ({len(shown)} in all)" if len(shown) > 12 else ""
    return f"; none is close among its {what}: {', '.join(shown[:12])}{more}"


def _format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return _format_number(float(value)) if float(value).is_integer() else f"{value:.10g}"


# -- variants side by side --------------------------------------------------------------------------
def variant_table(scenario: Scenario, results: Sequence[Result]) -> str:
    """A table of every subject any expectation names (rows) for each variant's result (columns).

    A cell whose expectation failed is marked ``(!)``; ``-`` means the run produced no such value.
    """
    by_variant = {variant.name: scenario.expectations + variant.expectations
                  for variant in scenario.variants}
    subjects: list[tuple[str, bool]] = []
    for expectations in [scenario.expectations, *by_variant.values()]:
        for item in expectations:
            if (item.subject, item.is_check) not in subjects:
                subjects.append((item.subject, item.is_check))
    header = ["", *[result.variant or result.scenario for result in results]]
    rows = [header, ["verdict", *[_verdict_word(result) for result in results]]]
    for subject, is_check in subjects:
        label = f"check {subject}" if is_check else subject
        rows.append([label, *[_cell(result, subject, is_check) for result in results]])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [f"variants of {scenario.name} (seed {results[0].seed if results else scenario.seed}):"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
              for row in rows]
    return "\n".join(lines)


def _verdict_word(result: Result) -> str:
    return "PASSED" if result.passed else ("INTERNAL ERROR" if result.internal_error else "FAILED")


def _cell(result: Result, subject: str, is_check: bool) -> str:
    if is_check:
        verdicts = {check.name: check.verdict for check in result.checks}
        for failure in (*result.failures, *result.expected_failures):
            verdicts.setdefault(failure.kind, FAIL_VERDICT)
        text = verdicts.get(subject, "-")
    else:
        value = result.metrics.get(subject)
        text = "-" if value is None else (_format_value(value) if isinstance(value, (int, float))
                                          and not isinstance(value, bool) else str(value))
    failed = any(check.name.startswith(CHECK_PREFIX) and check.verdict == FAIL_VERDICT
                 and _subject_of(check.name) == (subject, is_check) for check in result.checks)
    return f"{text} (!)" if failed else text


def _subject_of(check_name: str) -> tuple[str, bool] | None:
    try:
        expectation = parse_expectation(check_name[len(CHECK_PREFIX):])
    except ExpectationError:
        return None
    return expectation.subject, expectation.is_check
