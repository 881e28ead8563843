"""pytest fixtures for the reference system (the ``graylink-dynamo`` plugin, via ``pytest11``).

- ``graylink_workload``: the clients' ``WorkloadConfig`` (default: the reference workload, 20 clients
  at 2 operations/s each on 200 zipfian keys). Override the fixture to change it.
- ``graylink_cluster``: the reference cluster as a ``Scenario``: 9 storage nodes in 3 AZs, 12
  partitions, 2 routers, the metadata service, the workload's clients; every mitigation on, no planted
  bug, no fault; a 30 s fault phase and a 15 s heal phase. Add faults with ``dataclasses.replace``.
  It is the default ``graylink_scenario`` of ``harness.pytest_plugin``, so ``graylink_simulation``,
  ``graylink_result`` and ``graylink_history`` run it with the test's seed.

Example::

    def test_a_leader_crash_loses_nothing(graylink_cluster, graylink_run):
        crash = ScheduledFault(10.0, faults.Crash("leader(0)", duration_s=5))
        result = graylink_run(dataclasses.replace(graylink_cluster, faults=(crash,)))
        assert result.passed and result.metrics["lost_acknowledged_writes"] == 0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness import Scenario
    from systems.dynamo.config import WorkloadConfig

REFERENCE_AZS = {"az-a": ["s1", "s2", "s3"], "az-b": ["s4", "s5", "s6"], "az-c": ["s7", "s8", "s9"]}


@pytest.fixture
def graylink_workload() -> WorkloadConfig:
    """The reference workload; override this fixture to change the clients."""
    from systems.dynamo.config import WorkloadConfig

    return WorkloadConfig()


@pytest.fixture
def graylink_cluster(request: pytest.FixtureRequest, graylink_workload: WorkloadConfig) -> Scenario:
    """The reference cluster running ``graylink_workload``, without faults (see the module)."""
    from harness import Scenario, SystemSpec, Topology
    from systems.dynamo.config import DynamoConfig

    name = getattr(request.node, "originalname", None) or request.node.name
    return Scenario(name=name.replace("_", "-"), topology=Topology.from_azs(REFERENCE_AZS),
                    duration_s=30.0, heal_s=15.0,
                    system=SystemSpec("systems.dynamo:DynamoSystem",
                                      DynamoConfig(workload=graylink_workload)))
