"""The scenario library's runs, each computed once per test session and shared by the tests.

Several test modules assert on the same runs (the library must pass; S2, S6 and S17 tell their
stories); a run is deterministic in its scenario, variant and seed, so it is cached on exactly those.
"""

from __future__ import annotations

import functools
from pathlib import Path

from harness import Result, load_scenario, run_scenario
from harness.scenario import Scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LIBRARY = tuple(sorted(path.name for path in SCENARIOS.glob("*.yaml")))


@functools.cache
def library_scenario(filename: str) -> Scenario:
    return load_scenario(SCENARIOS / filename)


@functools.cache
def library_run(filename: str, variant: str | None = None, seed: int | None = None) -> Result:
    """The result of ``filename`` (its ``variant``, if given) from ``seed`` (default: its own)."""
    scenario = library_scenario(filename)
    return run_scenario(scenario.variant(variant) if variant else scenario, seed)


def library_cases() -> list[tuple[str, str | None]]:
    """Every (file, variant) a run of the library means; variant None for a file without any."""
    return [(filename, run.variant_name) for filename in LIBRARY
            for run in library_scenario(filename).variant_scenarios()]
