"""No checker fires on clean runs: the reference system without planted bugs, under random faults.

A checker that fires on a correct system is as useless as one that never fires. The default suite
tries a few seeds; ``pytest -m slow`` tries many more.
"""

from __future__ import annotations

import pytest

from harness import FaultProfile, Scenario, SystemSpec, Topology, run_scenario
from systems.dynamo.config import DynamoConfig

CHAOS = FaultProfile(crash_per_minute=4, crash_downtime_s_max=8, pause_per_minute=4,
                     pause_ms_max=4000, partition_per_minute=3, partition_s_max=8,
                     gray_link_per_minute=3, clock_skew_ms_max=100)


def chaos_scenario() -> Scenario:
    topology = Topology.from_azs({"az-a": ["s1", "s2", "s3"], "az-b": ["s4", "s5", "s6"],
                                  "az-c": ["s7", "s8", "s9"]})
    return Scenario(name="dynamo-default-under-chaos", topology=topology, duration_s=60,
                    heal_s=25, random_faults=CHAOS,
                    system=SystemSpec("systems.dynamo:DynamoSystem", DynamoConfig()))


def assert_clean(seed: int) -> None:
    result = run_scenario(chaos_scenario(), seed)
    fired = [check for check in result.checks if check.verdict == "fail"]
    assert not fired, result.render_text()
    assert result.passed
    assert result.metrics["faults_applied"] > 5  # the faults really struck


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_checker_fires_on_a_clean_run(seed: int) -> None:
    assert_clean(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 34))
def test_no_checker_fires_on_many_clean_runs(seed: int) -> None:
    assert_clean(seed)
