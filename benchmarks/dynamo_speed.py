"""How much faster than real time the reference system simulates.

    python benchmarks/dynamo_speed.py [--seconds 120] [--seed 1]

Runs the default cluster of the reference system (3 AZs, 9 storage nodes, 12 partitions, 2 routers,
20 clients at 2 operations/s each) with a leader crash in the middle, on one core, and prints the
simulated seconds, the CPU seconds and their ratio. The last line is ``speedup <simulated/CPU>``; the
target is at least 50. The first run in the process pays for imports; the figure is the best of three.
"""

from __future__ import annotations

import argparse
import time

from harness import Scenario, ScheduledFault, SystemSpec, Topology, run_scenario
from harness.faults import Crash
from systems.dynamo.config import DynamoConfig


def default_cluster(seconds: float) -> Scenario:
    topology = Topology.from_azs({"az-a": ["s1", "s2", "s3"], "az-b": ["s4", "s5", "s6"],
                                  "az-c": ["s7", "s8", "s9"]})
    return Scenario(name="dynamo-default-cluster", topology=topology,
                    system=SystemSpec("systems.dynamo:DynamoSystem", DynamoConfig()),
                    duration_s=seconds * 0.8, heal_s=seconds * 0.2,
                    faults=(ScheduledFault(seconds * 0.4, Crash(node="s1", duration_s=10.0)),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="virtual seconds to simulate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenario = default_cluster(args.seconds)
    best = None
    for attempt in range(3):
        started = time.process_time()
        result = run_scenario(scenario, args.seed)
        cpu = time.process_time() - started
        print(f"run {attempt + 1}: simulated {result.sim_time_s:.0f}s in {cpu:.2f}s CPU, "
              f"{result.events} events ({result.events / cpu:,.0f}/s), "
              f"{result.metrics.get('operations.ok', 0):.0f} operations ok, passed={result.passed}")
        best = cpu if best is None else min(best, cpu)
    assert best is not None
    print(f"speedup {args.seconds / best:.1f}")


if __name__ == "__main__":
    main()
