"""JUnit XML for CI systems: one test case per scenario × variant × seed.

Written with the ``junit-xml`` package. A failed run's failure message opens with the command that
reproduces it, followed by its failures; the case's output holds the whole text report (evidence
included). A harness bug is an ``error``, not a ``failure``; an interrupted run is ``skipped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from harness.result import Result

__all__ = ["junit_xml", "write_junit"]


def _case(result: Result) -> TestCase:
    base = result.scenario.split("[")[0]  # a variant's run is named "scenario[variant]"
    case = TestCase(f"{result.scenario} seed {result.seed}", classname=f"graylink.{base}",
                    elapsed_sec=result.wall_time_s, stdout=result.render_text(),
                    file=result.source)
    message = "\n".join([result.reproduce] + [failure.describe() for failure in result.failures])
    if result.reason == "internal-error":
        case.add_error_info(message=message, error_type="internal-error")
    elif result.reason == "interrupted":
        case.add_skipped_info(message=message)
    elif not result.passed:
        case.add_failure_info(message=message, failure_type=result.reason)
    return case


def junit_xml(results: Iterable[Result], suite: str = "graylink") -> str:
    """The JUnit XML document for these runs, as one test suite."""
    return to_xml_report_string([TestSuite(suite, [_case(result) for result in results])])


def write_junit(results: Iterable[Result], path: str | Path, suite: str = "graylink") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(junit_xml(results, suite), encoding="utf-8")
