"""What the HTML report draws of the reference system: leases, elections, membership, client operations.

The system's ``timeline(world)`` hook (see ``harness/system.py``) returns this, built after the run
from the observer's true-time record (``observations.py``) and the clients' history:

- one lane per partition, ``partition P``, with a band for every lease a replica held while it was up
  (its holder as the label and colour), a marker where an election started (``spurious-election``
  when another replica still held a valid lease) and where a replica became leader;
- a band on a storage node's own lane while it was out of service (its membership lease ran out, S20);
- on a partition's lane, a band (kind ``copies``) while fewer than three replicas held durable
  copies, and a marker (``membership``) for every committed change of its group (M9, S7);
- a band (kind ``version``) on every node's lane for each stretch it ran one version, labelled
  ``v2 (writes format 2)`` and the like, and a marker on a lane ``deployments`` for each step of a
  deployment (batches, alarms, rollbacks: ``deployment.py``);
- with canaries (S4), a marker (``alarm``) where the canaries' alarm fired for a partition, and one
  (``remediation``) where automation moved its leadership away;
- every client operation, with its outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import Band, Marker, SystemTimeline, World, client_operations

if TYPE_CHECKING:
    from systems.dynamo.system import DynamoSystem

__all__ = ["timeline"]


def timeline(system: DynamoSystem, world: World) -> SystemTimeline:
    observations = system.observations
    assert observations is not None
    lanes = tuple(_lane(entry.partition) for entry in system.partition_map)
    bands = [Band(_lane(partition), lease.start_ns, lease.end_ns, "lease", lease.node, lease.node)
             for partition, leases in sorted(observations.serving_intervals().items())
             for lease in leases if lease.end_ns > lease.start_ns]
    bands += [Band(node, start, end, "out-of-service", "out of service")
              for node, start, end in observations.out_of_service_intervals()]
    markers = [Marker(_lane(election.partition), election.time_ns,
                      "spurious-election" if election.spurious else "election",
                      f"{election.node} stands for election ({election.reason})"
                      + (" while another replica held a valid lease" if election.spurious else ""),
                      election.node)
               for election in observations.elections]
    markers += [Marker(_lane(partition), time_ns, "leader", f"{node} became leader", node)
                for time_ns, partition, node in observations.leaders]
    bands += system.version_bands(world)  # which version each node ran (deployment.py)
    if system.durability is not None:  # S7: fewer than three durable copies; membership changes
        bands += [Band(_lane(partition), start, end, "copies", f"{copies} durable copies")
                  for partition, start, end, copies in system.durability.degraded(world.kernel.now_ns)]
        markers += [Marker(_lane(partition), time_ns, "membership", change)
                    for partition, time_ns, change in system.durability.changes()]
    markers += system.deployment_markers(world)  # what the deployments did, lane "deployments"
    if system.canary_monitor is not None:  # S4: the canaries' alarm, and what automation did
        monitor = system.canary_monitor
        markers += [Marker(_lane(event.partition), event.time_ns, "alarm",
                           f"canary alarm: {event.failed} of {event.probes} probes failed")
                    for event in monitor.alarm.events]
        markers += [Marker(_lane(record.partition), record.time_ns, "remediation",
                           f"automation makes {record.node} ineligible to lead" if record.node
                           else "automation: no leader known, nothing done", record.node)
                    for record in monitor.remediations]
    markers.sort(key=lambda marker: (marker.time_ns, marker.lane))
    return SystemTimeline(bands=tuple(bands), markers=tuple(markers),
                          operations=tuple(client_operations(system.history)), lanes=lanes,
                          lanes_title="leases by partition")


def _lane(partition: int) -> str:
    return f"partition {partition}"
