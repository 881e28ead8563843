"""Expectations: the grammar (parsed, never evaluated), judging a run, expected failures, variants."""

from __future__ import annotations

import dataclasses

import pytest

from harness import run_scenario
from harness.checkers.verdict import CheckResult
from harness.errors import Failure, ScenarioError
from harness.expectations import (
    GRAMMAR,
    Expectation,
    ExpectationError,
    judge,
    not_judged,
    parse_expectation,
    variant_table,
)
from harness.scenario import Variant
from harness.scenario_loader import parse_scenario

SCRIPTED = """\
name: scripted
duration_s: 1
heal_s: 0
topology: {{az-a: [n1]}}
system:
  use: planted_systems:ScriptedVerdictSystem
  config: {config}
"""


def scripted(config: str, tail: str = "") -> str:
    return SCRIPTED.format(config=config) + tail


# -- the grammar ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, subject, relation, threshold, canonical", [
    ("elections.spurious == 0", "elections.spurious", "==", 0.0, "elections.spurious == 0"),
    ("write_unavailable_s<=5", "write_unavailable_s", "<=", 5.0, "write_unavailable_s <= 5"),
    ("  lost_acknowledged_writes   !=  1  ", "lost_acknowledged_writes", "!=", 1.0,
     "lost_acknowledged_writes != 1"),
    ("latency_ms.put_item.p99 < 12.5", "latency_ms.put_item.p99", "<", 12.5,
     "latency_ms.put_item.p99 < 12.5"),
    ("latency_ms.get_item/strong.p99 >= 1e3", "latency_ms.get_item/strong.p99", ">=", 1000.0,
     "latency_ms.get_item/strong.p99 >= 1000"),
    ("ratio > .5", "ratio", ">", 0.5, "ratio > 0.5"),
    ("drift > -2.5E-3", "drift", ">", -0.0025, "drift > -0.0025"),
    ("check == 0", "check", "==", 0.0, "check == 0"),  # a metric that happens to be called check
    ("check linearizability passes", "linearizability", "passes", None,
     "check linearizability passes"),
    ("check   committed-reads fails", "committed-reads", "fails", None,
     "check committed-reads fails"),
])
def test_valid_expectations(text: str, subject: str, relation: str, threshold: float | None,
                            canonical: str) -> None:
    expectation = parse_expectation(text)
    assert (expectation.subject, expectation.relation, expectation.threshold) == (
        subject, relation, threshold)
    assert expectation.text == canonical == str(expectation)
    assert parse_expectation(expectation.text) == expectation


@pytest.mark.parametrize("text, column, words", [
    ("", 0, "empty"),
    ("   ", 0, "empty"),
    ("elections.spurious = 0", 19, "unknown operator '=' (did you mean '=='?)"),
    ("x => 1", 2, "did you mean '>='?"),
    ("x =< 1", 2, "did you mean '<='?"),
    ("x <> 1", 2, "did you mean '!='?"),
    ("x === 1", 2, "did you mean '=='?"),
    ("x ~ 1", 2, "expected a comparison operator after 'x', got '~'"),
    ("x is 1", 2, "expected a comparison operator after 'x', got 'is'"),
    ("a + b < 3", 2, "got '+'"),
    ("elections.spurious", 18, "missing a comparison after 'elections.spurious'"),
    ("x <=", 4, "missing the number after '<='"),
    ("x <= five", 5, "'five' is not a number"),
    ("x <= y", 5, "'y' is not a number: a metric is compared with a number"),
    ("write_unavailable_s <= 5s", 23, "units belong in the metric's name"),
    ("x <= 50%", 5, "units belong"),
    ("x <= 1e999", 5, "too large"),
    ("x <= inf", 5, "'inf' is not a number"),
    ("x <= nan", 5, "'nan' is not a number"),
    ("x <= 0x10", 5, "'0x10' is not a number"),
    ("x <= 5 <= 6", 7, "unexpected '<=' after the number"),
    ("x <= 5 and y >= 1", 7, "unexpected 'and'"),
    ("0 <= x", 0, "starts with the metric's name, got the number '0'"),
    ("0 <= x <= 5", 0, "starts with the metric's name"),
    ("== 0", 0, "missing the metric's name before '=='"),
    ("3x == 0", 0, "'3x' is not a metric's name"),
    ("elections..spurious == 0", 0, "not a metric's name"),
    ("élections == 0", 0, "not a metric's name"),
    ("x() == 0", 0, "not a metric's name"),
    ("check", 5, "`check` needs the check's name"),
    ("check leases", 12, "missing passes or fails after the check's name 'leases'"),
    ("check leases pass", 13, "did you mean 'passes'?"),
    ("check leases failed", 13, "did you mean 'fails'?"),
    ("check leases holds", 13, "did you mean 'passes'?"),
    ("check leases succeeds", 13, "expected passes or fails"),
    ("check leases fails now", 19, "unexpected 'now' after the verdict"),
    ("check 9lives passes", 6, "'9lives' is not a check's name"),
])
def test_malformed_expectations_say_what_and_where(text: str, column: int, words: str) -> None:
    with pytest.raises(ExpectationError) as info:
        parse_expectation(text)
    assert words in info.value.problem
    assert info.value.column == column
    assert str(info.value).endswith(GRAMMAR)


def test_nothing_is_evaluated() -> None:
    for text in ("__import__('os').system('false') == 0", "x == __import__('os')", "x == 1;y"):
        with pytest.raises(ExpectationError):
            parse_expectation(text)


@pytest.mark.parametrize("subject, relation, threshold", [
    ("x", "=", 1.0), ("x", "passes", 1.0), ("x", "<", None), ("no spaces allowed", "==", 1.0),
    ("x", "<", float("inf")),
])
def test_an_expectation_built_in_python_is_checked(subject: str, relation: str,
                                                   threshold: float | None) -> None:
    with pytest.raises(ValueError):
        Expectation(subject, relation, threshold)


# -- judging ----------------------------------------------------------------------------------------
def expect(*texts: str) -> list[Expectation]:
    return [parse_expectation(text) for text in texts]


METRICS = {"elections.spurious": 2, "elections.suspicion": 1, "write_unavailable_s": 1.25,
           "ratio": 0.1 + 0.2, "label": "text", "flag": True}


@pytest.mark.parametrize("text, verdict, summary", [
    ("elections.spurious >= 1", "pass", "elections.spurious = 2"),
    ("elections.spurious == 0", "fail", "elections.spurious = 2, expected == 0"),
    ("write_unavailable_s <= 5", "pass", "write_unavailable_s = 1.25"),
    ("write_unavailable_s < 1", "fail", "write_unavailable_s = 1.25, expected < 1"),
    ("ratio != 0.3", "pass", "ratio = 0.3"),  # 0.1 + 0.2 is not 0.3, and the summary rounds
    ("elections.spurous == 0", "fail",
     "the run produced no metric 'elections.spurous'; close names: elections.spurious"),
    ("zzz == 0", "fail", "none is close among its metrics: elections.spurious, elections.suspicion"),
    ("label == 0", "fail", "the metric 'label' is not a number: 'text'"),
    ("flag == 1", "fail", "the metric 'flag' is not a number: True"),
])
def test_metric_expectations(text: str, verdict: str, summary: str) -> None:
    judgement = judge(expect(text), METRICS, [], [], 7)
    (result,) = judgement.checks
    assert (result.name, result.verdict) == (f"expect: {text}", verdict)
    assert summary in result.summary
    if verdict == "fail":
        (failure,) = judgement.failures
        assert (failure.kind, failure.time_ns) == ("expectation", 7)
        assert failure.message.startswith(f"{text} does not hold: ")
    else:
        assert judgement.failures == ()


def test_a_run_without_metrics_says_so() -> None:
    (result,) = judge(expect("x == 0"), {}, [], [], 0).checks
    assert result.summary == "the run produced no metric 'x'; the run produced no metrics at all"


CHECKS = [CheckResult("linearizability", "pass", "ok"), CheckResult("leases", "fail", "overlap"),
          CheckResult("liveness", "unknown", "budget")]
LEASE_FAILURE = Failure("leases", "overlap", 5)


@pytest.mark.parametrize("text, verdict, summary", [
    ("check linearizability passes", "pass", "verdict pass"),
    ("check linearizability fails", "fail", "verdict pass, expected it to fail"),
    ("check leases fails", "pass", "verdict fail"),
    ("check leases passes", "fail", "verdict fail, expected it to pass"),
    ("check liveness passes", "fail", "verdict unknown, expected it to pass"),
    ("check liveness fails", "fail", "verdict unknown, expected it to fail"),
    ("check lease fails", "fail", "no check named 'lease' ran; close names: leases"),
])
def test_check_expectations(text: str, verdict: str, summary: str) -> None:
    (result,) = judge(expect(text), {}, CHECKS, [LEASE_FAILURE], 0).checks
    assert (result.verdict, result.summary) == (verdict, summary)


def test_a_foretold_failure_is_expected_and_others_still_fail_the_run() -> None:
    other = Failure("durability", "lost", 3)
    judgement = judge(expect("check leases fails"), {}, CHECKS, [LEASE_FAILURE, other], 0)
    assert judgement.expected_failures == (LEASE_FAILURE,)
    assert judgement.failures == (other,)


def test_a_failure_is_not_excused_when_its_expectation_fails() -> None:
    judgement = judge(expect("check leases fails", "elections.spurious == 0"), METRICS, CHECKS,
                      [LEASE_FAILURE], 0)
    assert judgement.expected_failures == (LEASE_FAILURE,)
    assert [failure.kind for failure in judgement.failures] == ["expectation"]
    judgement = judge(expect("check linearizability fails"), {}, CHECKS, [LEASE_FAILURE], 0)
    assert judgement.expected_failures == ()
    assert [failure.kind for failure in judgement.failures] == ["leases", "expectation"]


def test_a_plain_check_failure_counts_as_a_check_of_its_kind() -> None:
    lost = Failure("lost-acknowledged-write", "read 3 after 4", 9)
    judgement = judge(expect("check lost-acknowledged-write fails"), {}, [], [lost], 0)
    assert judgement.checks[0].passed and judgement.expected_failures == (lost,)
    (result,) = judge(expect("check lost-acknowledged-write passes"), {}, [], [], 0).checks
    assert result.verdict == "fail" and "no check named" in result.summary  # never vacuous


def test_not_judged_is_unknown() -> None:
    (result,) = not_judged(expect("x == 0"), "step-limit")
    assert (result.name, result.verdict) == ("expect: x == 0", "unknown")
    assert "step-limit" in result.summary


# -- in a run ---------------------------------------------------------------------------------------
def test_expectations_are_judged_after_the_run() -> None:
    scenario = parse_scenario(scripted("{metrics: {writes: 10}}", "expect: [writes >= 5]\n"))
    result = run_scenario(scenario)
    assert result.passed and result.reason == "completed"
    assert [(check.name, check.verdict, check.summary) for check in result.checks] == [
        ("expect: writes >= 5", "pass", "writes = 10")]
    assert "  expectations:\n    PASS    writes >= 5: writes = 10" in result.render_text()


def test_a_failed_expectation_fails_the_run() -> None:
    scenario = parse_scenario(scripted("{metrics: {writes: 10}}", "expect: [writes >= 50]\n"))
    result = run_scenario(scenario)
    assert not result.passed and result.reason == "failure"
    assert [failure.kind for failure in result.failures] == ["expectation"]
    assert "[expectation] at t=1.000000s: writes >= 50 does not hold: writes = 10, expected >= 50" \
        in result.render_text()
    assert result.summary()["checks"] == {"expect: writes >= 50": "fail"}


def test_an_expected_failure_lets_the_run_pass_and_stays_in_the_report() -> None:
    config = "{checks: {leases: fail, durability: pass}, failures: [lost-write]}"
    tail = "expect: [check leases fails, check lost-write fails, check durability passes]\n"
    result = run_scenario(parse_scenario(scripted(config, tail)))
    assert result.passed, result.render_text()
    assert result.failures == ()
    assert sorted(failure.kind for failure in result.expected_failures) == ["leases", "lost-write"]
    assert [check.verdict for check in result.checks if check.name == "leases"] == ["fail"]
    text = result.render_text()
    assert "expected failures" in text and "evidence of leases" in text
    assert result.to_dict()["expected_failures"][0]["kind"] in ("leases", "lost-write")


def test_without_its_expectation_the_same_failure_fails_the_run() -> None:
    result = run_scenario(parse_scenario(scripted("{failures: [lost-write]}",
                                                  "expect: [check other fails]\n")))
    assert sorted(failure.kind for failure in result.failures) == ["expectation", "lost-write"]


def test_a_run_that_ends_early_judges_nothing_and_says_so() -> None:
    text = scripted("{}", "expect: [writes >= 5]\n").replace("ScriptedVerdictSystem",
                                                             "CrashingSystem").replace(
        "duration_s: 1", "duration_s: 2")
    result = run_scenario(parse_scenario(text))
    assert [failure.kind for failure in result.failures] == ["exception"]
    assert [(check.name, check.verdict) for check in result.checks] == [
        ("expect: writes >= 5", "unknown")]


# -- variants ---------------------------------------------------------------------------------------
VARIANTS = """\
expect: [writes >= 1]
variants:
  fast:
    system: {config: {metrics: {writes: 10}}}
    expect: [writes >= 5, check leases passes]
  slow:
    system: {config: {metrics: {writes: 2}, checks: {leases: fail}}}
    expect: [writes >= 5, check leases fails]
"""


def test_a_variant_is_a_plain_scenario() -> None:
    scenario = parse_scenario(scripted("{metrics: {writes: 1}, checks: {leases: pass}}", VARIANTS),
                              "v.yaml")
    fast = scenario.variant("fast")
    assert fast.name == "scripted[fast]" and fast.variant_name == "fast" and fast.variants == ()
    assert fast.system.config == {"metrics": {"writes": 10}, "checks": {"leases": "pass"}}
    assert [e.text for e in fast.expectations] == ["writes >= 1", "writes >= 5",
                                                   "check leases passes"]
    assert [s.variant_name for s in scenario.variant_scenarios()] == ["fast", "slow"]
    assert scenario.variant_scenarios()[0] == fast
    with pytest.raises(ScenarioError, match="has no variant 'medium'; its variants: fast, slow"):
        scenario.variant("medium")


def test_a_scenario_without_variants_runs_itself() -> None:
    scenario = parse_scenario(scripted("{}"))
    assert scenario.variant_scenarios() == (scenario,)
    with pytest.raises(ScenarioError, match="none"):
        scenario.variant("x")


def test_variants_run_from_the_same_seed_and_compare_side_by_side() -> None:
    scenario = dataclasses.replace(
        parse_scenario(scripted("{metrics: {writes: 1}, checks: {leases: pass}}", VARIANTS)),
        source="v.yaml")
    results = [run_scenario(run, 3) for run in scenario.variant_scenarios()]
    fast, slow = results
    assert fast.passed and fast.variant == "fast"
    assert fast.reproduce == "graylink run v.yaml --seed 3 --variant fast"
    assert not slow.passed  # writes >= 5 fails; its expected leases failure does not count
    assert [failure.kind for failure in slow.failures] == ["expectation"]
    assert [failure.kind for failure in slow.expected_failures] == ["leases"]
    table = variant_table(scenario, results).splitlines()
    assert table[0] == "variants of scripted (seed 3):"
    assert table[1].split() == ["fast", "slow"]
    assert table[2].split() == ["verdict", "PASSED", "FAILED"]
    assert table[3].split() == ["writes", "10", "2", "(!)"]
    assert table[4].split() == ["check", "leases", "pass", "fail"]


def test_variant_names_and_uniqueness_are_checked_in_python_too() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        Variant("Mitigation_Off")
    scenario = parse_scenario(scripted("{}"))
    with pytest.raises(ValueError, match="duplicate variant name"):
        dataclasses.replace(scenario, variants=(Variant("a"), Variant("a")))
