"""The scenario library: every file validates, every variant meets its expectations, and no
variant's expectations are vacuous (each fails on the run of another variant)."""

from __future__ import annotations

import pytest
from library_runs import LIBRARY, library_cases, library_run, library_scenario

from harness.expectations import judge
from harness.scenario import Variant
from harness.scenario_loader import parse_scenario, scenario_to_yaml

# Runs left out of the extra seeds, and why.
EXTRA_SEEDS = (2, 3)
NOT_ON_EXTRA_SEEDS = {
    "s17-router-cold-start.yaml": "19 nodes and 60 clients take ~10 s a run; `pytest -m slow`",
}


def test_the_library_is_not_empty_and_round_trips() -> None:
    assert len(LIBRARY) >= 6
    for filename in LIBRARY:
        scenario = library_scenario(filename)
        assert scenario.expectations or scenario.variants, f"{filename} expects nothing"
        assert parse_scenario(scenario_to_yaml(scenario)).variants == scenario.variants


@pytest.mark.parametrize(("filename", "variant"), library_cases())
def test_every_scenario_meets_its_expectations(filename: str, variant: str | None) -> None:
    result = library_run(filename, variant)
    assert result.passed, result.render_text()
    judged = [check for check in result.checks if check.name.startswith("expect: ")]
    assert judged and all(check.verdict == "pass" for check in judged)


@pytest.mark.parametrize("filename", [name for name in LIBRARY
                                      if library_scenario(name).variants])
def test_each_variant_expects_what_another_variant_does_not_show(filename: str) -> None:
    """A variant's own expectations (what its mitigation or bug is about) fail on the run of at least
    one other variant: judged again on that run's metrics, verdicts and failures, without running
    anything new. (Two mitigations may both fix a story, so not necessarily on every other run.)"""
    scenario = library_scenario(filename)
    for variant in scenario.variants:
        holds_for = [other.name for other in scenario.variants
                     if other.name != variant.name and _holds(variant, filename, other.name)]
        assert len(holds_for) < len(scenario.variants) - 1, (
            f"{filename}: {variant.name}'s expectations hold for every other variant too")


def _holds(variant: Variant, filename: str, other: str) -> bool:
    result = library_run(filename, other)
    checks = [check for check in result.checks if not check.name.startswith("expect: ")]
    failures = [failure for failure in (*result.failures, *result.expected_failures)
                if failure.kind != "expectation"]
    judgement = judge(variant.expectations, result.metrics, checks, failures, 0)
    return all(check.passed for check in judgement.checks)


@pytest.mark.slow  # CI runs these seeds in its sweep, on both cores (`.ci/run`)
@pytest.mark.parametrize("seed", EXTRA_SEEDS)
@pytest.mark.parametrize(("filename", "variant"), [
    case for case in library_cases() if case[0] not in NOT_ON_EXTRA_SEEDS])
def test_the_library_holds_for_other_seeds(filename: str, variant: str | None, seed: int) -> None:
    result = library_run(filename, variant, seed)
    assert result.passed, result.render_text()


@pytest.mark.slow
@pytest.mark.parametrize("seed", (*EXTRA_SEEDS, 4, 5))
@pytest.mark.parametrize("variant", ["legacy", "constant-work"])
def test_s17_holds_for_other_seeds(variant: str, seed: int) -> None:
    result = library_run("s17-router-cold-start.yaml", variant, seed)
    assert result.passed, result.render_text()
