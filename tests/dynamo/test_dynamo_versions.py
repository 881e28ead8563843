"""The reference system's versions (M24-M27): formats, decoding, deployment hooks, the M27 suite."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness import Topology, World, parse_scenario, run_scenario
from harness.deploy import Deploy, Rollback
from harness.timeline import FaultTimeline, ScheduledFault
from harness.upgrade_suite import upgrade_downgrade_suite, upgrade_steps
from systems.dynamo.config import DeploymentConfig, DynamoConfig, WorkloadConfig
from systems.dynamo.items import ItemOperation
from systems.dynamo.messages import (
    Append,
    AppendReply,
    ClientReply,
    ClientRequest,
    Heartbeat,
    LogEntry,
)
from systems.dynamo.replica import Replica
from systems.dynamo.system import DynamoSystem
from systems.dynamo.versions import (
    VERSIONS,
    CompactAppend,
    Installed,
    LoadDefect,
    pack_append,
    unpack_append,
)
from systems.dynamo.wal import COMPACT_FORMAT, decode_wal, encode_entry

SECOND = 1_000_000_000
V1 = VERSIONS["v1"].can_read
V2 = VERSIONS["v2"].can_read


def entry(lsn: int, format_version: int = 1) -> LogEntry:
    operation = ItemOperation("put_item", f"k{lsn}", item=(("v", lsn),))
    return LogEntry(lsn, (1, "a"), operation, lsn, "r1", format_version)


# -- formats and decoding -----------------------------------------------------------------------------
def test_format_2_records_round_trip_in_v2_and_stop_v1_without_a_misread() -> None:
    wal = b"".join(encode_entry(e) for e in (entry(1), entry(2), entry(3, 2), entry(4, 2)))
    assert b'"entry":[3,' in wal  # the compact layout, not named fields
    decoded = decode_wal(wal, V2)
    assert [e.lsn for e in decoded.entries] == [1, 2, 3, 4] and decoded.problem == ""
    assert decoded.entries[2] == entry(3, 2)
    old = decode_wal(wal, V1)
    assert [e.lsn for e in old.entries] == [1, 2] and old.problem == "format"
    assert old.valid_bytes == len(encode_entry(entry(1))) + len(encode_entry(entry(2)))


def test_compact_append_ships_entries_as_records() -> None:
    append = Append(0, (1, "a"), 0, (0, ""), (entry(1, 2), entry(2, 2)), 1, 3, 1)
    packed = pack_append(append, checksums=True)
    assert packed.format_version == COMPACT_FORMAT
    assert unpack_append(packed, V2, True) == Append(0, (1, "a"), 0, (0, ""), append.entries, 1, 3,
                                                     COMPACT_FORMAT)
    assert unpack_append(packed, V1, True) == "format"
    damaged = packed.corrupted(random.Random(1))
    assert damaged != packed


def test_a_v1_replica_rejects_and_counts_what_v2_emits() -> None:
    config = DynamoConfig()
    old = Replica(0, "b", ("a", "b", "c"), ("r1",), "meta", config, random.Random(1))
    old.recover(0, b"", b"")
    packed = pack_append(Append(0, (1, "a"), 0, (0, ""), (entry(1, 2),), 0, 1), True)
    assert old.on_message(SECOND, "a", packed) and old.log.last_lsn == 0
    assert old.counts["decode-failure"] == 1
    new = Replica(0, "b", ("a", "b", "c"), ("r1",), "meta", config, random.Random(1),
                  reads_format=2, emit_format=2)
    new.recover(0, b"", b"")
    new.on_message(SECOND, "a", packed)
    assert new.log.last_lsn == 1 and new.counts["decode-failure"] == 0


@pytest.mark.parametrize("writes", [True, False])
def test_a_v2_fleet_speaks_format_2_only_with_its_flag_on(writes: bool) -> None:
    config = DynamoConfig(partitions=2, workload=WorkloadConfig(clients=2),
                          deployment=DeploymentConfig(initial_version="v2",
                                                      write_new_format=writes))
    sent: list[object] = []
    world, system, _ = small_world(config, spy=sent)
    world.kernel.run(until_ns=6 * SECOND)
    kinds = {type(message) for message in sent}
    replication = [m for m in sent if isinstance(m, (Heartbeat, AppendReply, CompactAppend))]
    assert (CompactAppend in kinds, Append in kinds) == (writes, not writes)
    assert {m.format_version for m in replication} == ({2} if writes else {1})
    leader = system.replicas_of(0)[system.leader_of(world, 0)]
    assert {e.format_version for e in leader.entries} == ({2} if writes else {1})
    assert system.deployment_metrics(world)["decode_failures"] == 0


def test_installed_versions_say_what_they_read_and_emit() -> None:
    assert (Installed("v1").reads_format, Installed("v1", True).emit_format) == (1, 1)
    assert Installed("v2").emit_format == 1 and Installed("v2", True).emit_format == 2
    assert Installed("v2-bad").defective and not Installed("v2").defective
    assert Installed("v2", True).label() == "v2 (writes format 2)"


# -- v2-bad's defect ---------------------------------------------------------------------------------
class _Router:
    def on_message(self, now_ns: int, source: str, message: object) -> list[str]:
        return ["routed"]

    def on_timer(self, now_ns: int, name: str) -> list[str]:
        return []


class _Always:
    def chance(self, probability: float) -> bool:
        return probability > 0


def test_the_bad_build_rejects_only_above_its_request_rate() -> None:
    defect = LoadDefect(_Router(), threshold_per_s=5, reject_probability=1.0, rng=_Always())
    request = ClientRequest(1, ItemOperation("get_item", "k"))
    light = [defect.on_message(i * SECOND // 2, "c1", request) for i in range(10)]  # 2 per second
    assert all(out == ["routed"] for out in light) and defect.rejected == 0
    burst = [defect.on_message(10 * SECOND + i * SECOND // 10, "c1", request) for i in range(10)]
    rejected = [out for out in burst if out != ["routed"]]
    assert len(rejected) == 5 and defect.rejected == 5  # the 6th to 10th within one second
    assert rejected[0][0].message == ClientReply(1, False, error="internal_error")


# -- the system's deployment hooks in a run --------------------------------------------------------------
def small_world(config: DynamoConfig | None = None, spy: list[object] | None = None
                ) -> tuple[World, DynamoSystem, FaultTimeline]:
    world = World(1, Topology.from_azs({"az-a": ["s1", "s2"], "az-b": ["s3", "s4"],
                                        "az-c": ["s5", "s6"]}))
    system = DynamoSystem(config or DynamoConfig(partitions=4, workload=WorkloadConfig(clients=4)))
    world.system = system
    system.setup(world)
    if spy is not None:  # every message sent (node contexts bind the network's send at boot)
        send = world.network.send

        def spying(source: str, destination: str, message: object, size: int | None) -> None:
            spy.append(message)
            send(source, destination, message, size)

        world.network.send = spying  # type: ignore[method-assign]
    world.end_ns = 60 * SECOND
    for name in world.node_names():
        world.node(name).start()
    return world, system, FaultTimeline(world)


def test_a_node_restarts_into_its_installed_version_and_the_record_shows_it() -> None:
    world, system, timeline = small_world()
    timeline.schedule(ScheduledFault(3.0, Deploy(version="v2", name="d", nodes=("s1", "s3"),
                                                 downtime_s=1.0)))
    timeline.schedule(ScheduledFault(10.0, Rollback(deployment="d")))
    world.kernel.run(until_ns=8 * SECOND)
    assert system.running_version(world, "s1") == "v2" and system.running_version(world, "s2") == "v1"
    assert all(r.reads_format == 2 and r.emit_format == 2
               for r in system.storage_programs["s1"].replicas.values())
    assert system.storage_programs["s1"].runner.reads_format == 2
    world.kernel.run(until_ns=20 * SECOND)
    spans = system.versions_ran.intervals(world)["s1"]
    assert [(round(a / SECOND), i.label()) for a, _, i in spans][:2] == [
        (0, "v1"), (4, "v2 (writes format 2)")]
    assert 3 * SECOND <= spans[0][1] < 3.2 * SECOND  # stopped once its leaders handed over
    assert 10 * SECOND < spans[1][1] < 13 * SECOND  # the rollback restores s3 first
    assert spans[2][2] == Installed("v1")
    bands = [band for band in system.version_bands(world) if band.lane == "s1"]
    assert [band.label for band in bands] == ["v1", "v2 (writes format 2)", "v1"]
    assert all(band.kind == "version" for band in bands)
    assert any("d: rolling back" in marker.label for marker in system.deployment_markers(world))
    metrics = system.deployment_metrics(world)
    assert metrics["versions.v1.nodes_at_end"] == 8 and metrics["versions.v2.node_s"] > 10


def test_a_run_that_deploys_nothing_draws_no_version_bands() -> None:
    world, system, _ = small_world()
    world.kernel.run(until_ns=5 * SECOND)
    assert system.versions_ran.intervals(world)["s1"]  # every node ran v1 ...
    assert system.version_bands(world) == []  # ... which the report need not draw on every lane


def test_what_v2_wrote_is_on_disk_when_the_node_rolls_back_to_v1() -> None:
    world, system, timeline = small_world()
    timeline.schedule(ScheduledFault(2.0, Deploy(version="v2", name="d", strategy="all_at_once",
                                                 roles=("storage",), downtime_s=0.5,
                                                 handoff=False)))
    timeline.schedule(ScheduledFault(10.0, Rollback(deployment="d")))
    world.kernel.run(until_ns=10 * SECOND)
    assert any(b'"format":2' in world.node("s1").disk.read(name)
               for name in world.node("s1").disk.list() if name.startswith("wal/"))
    world.kernel.run(until_ns=14 * SECOND)
    cuts = [note for note in system.observations.notes if note[3] == "wal-tail-cut"]
    assert cuts and all(note[4][1] == "format" for note in cuts)  # found, refused, counted
    assert system.deployment_metrics(world)["decode_failures.records"] >= len(cuts)


def test_phase_w_is_refused_while_a_storage_node_still_runs_v1() -> None:
    world, _, timeline = small_world()
    timeline.schedule(ScheduledFault(2.0, Deploy(version="v2", name="r", phase="read",
                                                 roles=("storage",), batch_size=2,
                                                 bake_s=5, downtime_s=1.0)))
    timeline.schedule(ScheduledFault(4.0, Deploy(version="v2", name="w", phase="write")))
    world.kernel.run(until_ns=5 * SECOND)
    refused = [entry.description for entry in timeline.log if entry.description.startswith("skipped")]
    assert refused and "s3 runs v1" in refused[0] and "router-1 runs v1" in refused[0]


def test_handoff_before_stop_only_with_the_mitigation() -> None:
    for handoff, ready in ((True, False), (False, True)):
        config = DynamoConfig(partitions=4, workload=WorkloadConfig(clients=2))
        if not handoff:
            from dataclasses import replace

            config = replace(config, mitigations=replace(config.mitigations,
                                                         leadership_handoff=False))
        world, system, _ = small_world(config)
        world.kernel.run(until_ns=6 * SECOND)
        leader = system.leader_of(world, 0)
        assert leader is not None
        system.prepare_stop(world, leader)
        assert system.ready_to_stop(world, leader) is ready
        world.kernel.run(until_ns=7 * SECOND)
        assert system.ready_to_stop(world, leader)
        assert (system.leader_of(world, 0) != leader) is handoff


def test_the_initial_version_and_flag_come_from_the_config() -> None:
    config = DynamoConfig(deployment=DeploymentConfig(initial_version="v2", write_new_format=True))
    assert DynamoSystem.initial_versions(config) == ("v2",)
    world, system, _ = small_world(DynamoConfig(partitions=4, deployment=config.deployment,
                                                workload=WorkloadConfig(clients=2)))
    assert system.installed_version(world, "s1") == ("v2", True)


# -- scenarios --------------------------------------------------------------------------------------
def test_a_deploy_may_start_from_v2_and_needs_no_phase_r_then() -> None:
    text = """
name: w-only
duration_s: 5
heal_s: 1
topology: {az-a: [s1], az-b: [s2], az-c: [s3]}
system:
  use: systems.dynamo:DynamoSystem
  config: {partitions: 2, deployment: {initial_version: v2}, workload: {clients: 2}}
faults:
  - {at_s: 1, deploy: {version: v2, phase: write, strategy: all_at_once}}
expect: [deploy.deploy-1.completed == 1, decode_failures == 0]
"""
    result = run_scenario(parse_scenario(text))
    assert result.passed, result.render_text()


# -- the M27 suite -------------------------------------------------------------------------------------
SUITE = parse_scenario("""
name: m27
heal_s: 10
topology: {az-a: [s1, s2, s3], az-b: [s4, s5, s6], az-c: [s7, s8, s9]}
system:
  use: systems.dynamo:DynamoSystem
  config: {workload: {clients: 6, key_distribution: uniform}}
""")


def test_the_suite_catches_a_downgrade_that_cannot_read_what_the_upgrade_wrote() -> None:
    report = upgrade_downgrade_suite(SUITE, upgrade_steps("v2"))
    assert report.stage("upgrade").passed, report.render_text()
    downgrade = report.stage("downgrade")
    assert not downgrade.passed and downgrade.result.metrics["decode_failures.records"] > 0
    assert downgrade.result.metrics["lost_acknowledged_writes"] > 0
    assert "FAIL  downgrade" in report.render_text()


@pytest.mark.parametrize("version", ["v2", "v2-bad"])
def test_the_suite_passes_a_read_then_write_upgrade_rolled_back_one_step(version: str) -> None:
    """v2-bad passes too: its defect shows only under a load the functional test does not bring
    (the canary of S16 catches it)."""
    report = upgrade_downgrade_suite(SUITE, upgrade_steps(version, read_then_write=True),
                                     downgrade=["step-2"], expect=["decode_failures == 0"])
    assert report.passed, report.render_text()


def test_the_upgrade_suite_command_reports_each_stage_and_rejects_bad_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    from harness.scenario_loader import scenario_to_yaml

    path = tmp_path / "m27.yaml"
    path.write_text(scenario_to_yaml(SUITE))
    safe = ["upgrade-suite", str(path), "--to", "v2", "--read-then-write", "--downgrade", "step-2",
            "--expect", "decode_failures == 0"]
    assert main(safe) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (f"graylink upgrade-suite {path} --to v2 --read-then-write "
                                   f"--downgrade step-2 --seed {SUITE.seed} --expect 'decode_failures == 0'")
    assert "PASS  upgrade" in out and "PASS  downgrade" in out
    assert main(["upgrade-suite", str(path), "--to", "v2"]) == 1  # one step, rolled back whole
    out = capsys.readouterr().out
    assert "FAIL  downgrade" in out and "downgrade stage:" in out and "graylink run" not in out
    for options, message in [(["--to", "v9"], "--to: unknown version 'v9'"),
                             (["--to", "v2", "--downgrade", "step-3"], "--downgrade: step-3"),
                             (["--to", "v2", "--expect", "x =="], "--expect: 'x =='")]:
        assert main(["upgrade-suite", str(path), *options]) == 2
        assert message in capsys.readouterr().err
