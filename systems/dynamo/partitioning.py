"""The partition map: hashed keys, contiguous key ranges, and three replicas in three AZs (M1, M2).

Rules:
1. A partition key is hashed with a stable hash (the first four bytes of its SHA-256, big-endian)
   into the hash space [0, 2**32). Python's ``hash()`` is never used: it changes between runs.
2. The hash space is cut into ``partitions`` equal, contiguous, disjoint ranges; partition ``i``
   owns [``i * 2**32 // n``, ``(i + 1) * 2**32 // n``). Together the ranges cover the whole space.
3. A key belongs to the partition whose range holds its hash, found by a floor lookup (bisect on the
   range starts): the last partition whose start is at or below the hash.
4. Every partition has three replicas in three different AZs, never two in one AZ. With more than
   three AZs, a partition goes to the three AZs whose least-loaded node is least loaded (ties: fewer
   replicas in the AZ, then AZ name). Within an AZ, replicas go round the nodes in listed order, so
   node loads within an AZ never differ by more than one; each round is shifted by the AZ's index,
   so that the same nodes do not always share partitions.
5. The first replica of each partition (a natural first leader) is the one that is first least often
   so far (ties: rotation by the partition number), so first replicas spread over nodes and AZs.
6. A partition can be split at a hash inside its range (M1); the right child is a new partition.

Everything here is a pure function of its arguments: the same input gives the same map.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

from systems.dynamo.messages import PartitionEntry

__all__ = ["HASH_SPACE", "REPLICAS_PER_PARTITION", "hash_key", "partition_ranges",
           "build_partition_map", "find_partition", "find_partition_by_hash", "split",
           "placement_violations", "coverage_violations"]

HASH_SPACE = 2 ** 32
REPLICAS_PER_PARTITION = 3


def hash_key(key: str) -> int:
    """The key's position in the hash space [0, 2**32): stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")


def partition_ranges(partitions: int) -> tuple[tuple[int, int], ...]:
    """``partitions`` equal contiguous ranges ``(start, end)`` covering [0, 2**32) (rule 2)."""
    if partitions < 1 or partitions > HASH_SPACE:
        raise ValueError(f"partitions must be between 1 and 2**32, got {partitions}")
    return tuple((index * HASH_SPACE // partitions, (index + 1) * HASH_SPACE // partitions)
                 for index in range(partitions))


def build_partition_map(partitions: int,
                        storage_nodes: Mapping[str, Sequence[str]]) -> tuple[PartitionEntry, ...]:
    """The initial map: equal ranges, each with three replicas in three AZs (rules 2, 4, 5).

    ``storage_nodes`` maps each AZ to its storage nodes. Raises ValueError if fewer than three AZs
    have storage nodes, or if a node is listed twice.
    """
    zones = _check_zones(storage_nodes)
    shift = {zone: index for index, zone in enumerate(zones)}
    placed = dict.fromkeys(zones, 0)  # replicas placed in each AZ so far
    load: dict[str, int] = {node: 0 for nodes in zones.values() for node in nodes}
    firsts: dict[str, int] = dict.fromkeys(load, 0)  # partitions whose first replica is the node
    entries = []
    for index, (start, end) in enumerate(partition_ranges(partitions)):
        replicas = []
        for zone in _choose_zones(zones, load):
            replicas.append(_next_node(zones[zone], placed[zone], shift[zone]))
            placed[zone] += 1
            load[replicas[-1]] += 1
        ordered = _first_replica_spread(replicas, index, firsts)
        firsts[ordered[0]] += 1
        entries.append(PartitionEntry(index, start, end, ordered))
    return tuple(entries)


def _next_node(nodes: list[str], placed: int, shift: int) -> str:
    """The AZ's ``placed``-th replica goes round the nodes, shifted by ``shift`` more each round.

    Each round of ``len(nodes)`` replicas uses every node once (loads differ by at most one); the
    per-AZ shift varies which nodes share partitions, so each node shares them with many peers.
    """
    size = len(nodes)
    return nodes[(placed + (placed // size) * shift) % size]


def _first_replica_spread(replicas: list[str], index: int,
                          firsts: dict[str, int]) -> tuple[str, ...]:
    """Rule 5: rotate by the partition number, then put the node that is first least often first."""
    rotated = replicas[index % len(replicas):] + replicas[:index % len(replicas)]
    first = min(rotated, key=lambda node: firsts[node])  # min() keeps the first of equals
    return (first,) + tuple(node for node in rotated if node != first)


def _check_zones(storage_nodes: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    zones = {zone: list(nodes) for zone, nodes in sorted(storage_nodes.items()) if nodes}
    if len(zones) < REPLICAS_PER_PARTITION:
        raise ValueError(
            f"three replicas in three different AZs need storage nodes in at least 3 AZs; "
            f"got {len(zones)}: {sorted(zones)!r} (from {dict(storage_nodes)!r})")
    seen: dict[str, str] = {}
    for zone, nodes in zones.items():
        for node in nodes:
            if node in seen:
                raise ValueError(f"storage node {node!r} is listed in AZ {seen[node]!r} and again "
                                 f"in AZ {zone!r}; a node is in exactly one AZ")
            seen[node] = zone
    return zones


def _choose_zones(zones: dict[str, list[str]], load: dict[str, int]) -> list[str]:
    def emptiness(zone: str) -> tuple[int, int, str]:
        nodes = zones[zone]
        return min(load[node] for node in nodes), sum(load[node] for node in nodes), zone
    return sorted(zones, key=emptiness)[:REPLICAS_PER_PARTITION]


def find_partition(partition_map: Sequence[PartitionEntry], key: str) -> PartitionEntry:
    """The entry whose range holds the key's hash (rule 3). ``partition_map`` is sorted by start."""
    return find_partition_by_hash(partition_map, hash_key(key))


def find_partition_by_hash(partition_map: Sequence[PartitionEntry], hashed: int) -> PartitionEntry:
    """Floor lookup: the last entry whose start is at or below ``hashed``."""
    index = bisect.bisect_right(partition_map, hashed, key=lambda entry: entry.start) - 1
    if index < 0 or not partition_map[index].start <= hashed < partition_map[index].end:
        raise LookupError(f"no partition holds hash {hashed}; the map covers "
                          f"{[(e.start, e.end) for e in partition_map]!r}")
    return partition_map[index]


def split(entry: PartitionEntry, at_hash: int,
          right_partition: int) -> tuple[PartitionEntry, PartitionEntry]:
    """Split ``entry`` at ``at_hash`` (M1).

    The left child keeps the number and leader; the right child is partition ``right_partition``
    with the same replicas and no leader yet (its new group elects one).
    """
    if not entry.start < at_hash < entry.end:
        raise ValueError(f"split point {at_hash} must lie strictly inside partition "
                         f"{entry.partition}'s range [{entry.start}, {entry.end})")
    if right_partition == entry.partition:
        raise ValueError(f"the right child needs a new partition number, got {right_partition}")
    left = dataclasses.replace(entry, end=at_hash)
    right = dataclasses.replace(entry, partition=right_partition, start=at_hash, leader=None,
                                ballot=(0, ""))
    return left, right


def placement_violations(partition_map: Sequence[PartitionEntry],
                         az_of: Mapping[str, str]) -> list[str]:
    """Rule 4 as an oracle: one line per partition with replicas sharing an AZ (or not three)."""
    problems = []
    for entry in partition_map:
        zones = [az_of.get(node, "?") for node in entry.replicas]
        if len(entry.replicas) != REPLICAS_PER_PARTITION or len(set(zones)) != len(zones):
            problems.append(f"partition {entry.partition}: replicas {entry.replicas!r} in AZs "
                            f"{zones!r}")
    return problems


def coverage_violations(partition_map: Sequence[PartitionEntry]) -> list[str]:
    """Rule 2 as an oracle: gaps, overlaps, or empty ranges in a map sorted by start."""
    problems = []
    expected = 0
    for entry in partition_map:
        if entry.start != expected or entry.end <= entry.start:
            problems.append(f"partition {entry.partition}: range [{entry.start}, {entry.end}) "
                            f"where one starting at {expected} was expected")
        expected = entry.end
    if expected != HASH_SPACE:
        problems.append(f"the map ends at {expected}, not at 2**32")
    return problems
