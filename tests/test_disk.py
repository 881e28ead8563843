"""Tests of the disk model: page cache and platter, timed fsync, and every disk fault taking effect."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from harness.disk import Completion, Disk, DiskConfig, DiskFullError
from harness.node import Node, NodeContext
from harness.world import Topology, World

MS = 1_000_000
SECTOR = 512


class Idle:
    """A program that does nothing: lets a node start, so it can crash."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context

    def on_message(self, source: str, message: Any) -> None:
        pass


def make_world(seed: int = 1, **config: Any) -> World:
    world = World(seed, Topology.from_azs({"az-a": ["n1"]}), disk=DiskConfig(**config))
    world.nodes["n1"].install(Idle)
    world.nodes["n1"].start()
    return world


def disk_and_node(seed: int = 1, **config: Any) -> tuple[Disk, Node]:
    world = make_world(seed, **config)
    return world.nodes["n1"].disk, world.nodes["n1"]


def differing_bits(left: bytes, right: bytes) -> list[tuple[int, int]]:
    """(byte offset, xor) for every byte that differs; the inputs have equal length."""
    assert len(left) == len(right)
    return [(i, a ^ b) for i, (a, b) in enumerate(zip(left, right)) if a != b]


# -- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("capacity_bytes", 0), ("sector_bytes", 1.5),
                                          ("fsync_latency_ms", -1.0), ("read_latency_ms", float("nan")),
                                          ("write_latency_ms", "fast"), ("capacity_bytes", True)])
def test_config_rejects_bad_values_naming_field_and_value(field: str, value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        DiskConfig(**{field: value})
    assert field in str(caught.value) and repr(value) in str(caught.value)
    assert "must be" in str(caught.value)


def test_config_allows_zero_latencies() -> None:
    config = DiskConfig(read_latency_ms=0, write_latency_ms=0, fsync_latency_ms=0)
    assert config.sector_bytes == 512


# -- data operations ---------------------------------------------------------------------------------
def test_data_operations_act_on_the_page_cache_at_once() -> None:
    disk, _ = disk_and_node()
    disk.write("log/a", 0, b"hello")
    assert disk.append("log/a", b" world") == 5
    disk.write("log/a", 13, b"!")  # the gap reads as zeros
    assert disk.read("log/a") == b"hello world\0\0!"
    assert disk.read("log/a", 6, 5) == b"world"
    assert disk.read("log/a", 12, 100) == b"\0!"  # short at the end of the file
    assert disk.read("log/a", 100) == b""
    disk.append("log/b", b"x")
    disk.append("meta", b"y")
    assert disk.list() == ["log/a", "log/b", "meta"] and disk.list("log/") == ["log/a", "log/b"]
    disk.truncate("log/a", 5)
    assert disk.size("log/a") == 5 and disk.read("log/a") == b"hello"
    disk.truncate("log/a", 7)
    assert disk.read("log/a") == b"hello\0\0"
    disk.delete("log/b")
    assert not disk.exists("log/b") and disk.exists("meta")
    for operation in (lambda: disk.read("log/b"), lambda: disk.size("nope"),
                      lambda: disk.delete("nope"), lambda: disk.truncate("nope", 0)):
        with pytest.raises(FileNotFoundError) as caught:
            operation()
        assert caught.value.errno == errno.ENOENT and "n1" in str(caught.value)
    with pytest.raises(ValueError, match="offset = -1"):
        disk.write("x", -1, b"z")


# -- durability ----------------------------------------------------------------------------------------
def test_crash_loses_unsynced_data_and_keeps_synced_data() -> None:
    disk, node = disk_and_node()
    disk.write("synced", 0, b"durable")
    disk.fsync_now("synced")
    disk.append("synced", b"+volatile")
    disk.write("never-synced", 0, b"gone")
    node.crash()
    assert disk.read("synced") == b"durable"
    assert not disk.exists("never-synced")  # its creation was never made durable
    assert disk.statistics()["crashes"] == 1


def test_metadata_changes_are_durable_only_after_fsync_of_the_path() -> None:
    disk, node = disk_and_node()
    for path in ("deleted", "truncated", "deleted-and-synced"):
        disk.write(path, 0, b"0123456789")
        disk.fsync_now(path)
    disk.delete("deleted")
    disk.truncate("truncated", 3)
    disk.delete("deleted-and-synced")
    disk.fsync_now("deleted-and-synced")  # fsync of an absent path persists its absence
    node.crash()
    assert disk.read("deleted") == b"0123456789"
    assert disk.read("truncated") == b"0123456789"
    assert not disk.exists("deleted-and-synced")


def test_fsync_completes_only_after_its_latency() -> None:
    disk, _ = disk_and_node(fsync_latency_ms=2.0, write_latency_ms=0.0)
    world_kernel = disk.kernel
    disk.write("f", 0, b"data")
    completion = disk.fsync("f")
    seen: list[Completion] = []
    completion.add_done_callback(seen.append)
    world_kernel.run(until_ns=2 * MS - 1)
    assert not completion.done() and not seen and disk.read_durable("f") is None
    world_kernel.run(until_ns=2 * MS)
    assert completion.done() and seen == [completion] and completion.result() is None
    assert disk.read_durable("f") == b"data"
    assert (2 * MS, "n1", "fsync", ("n1", "f")) in world_kernel.trace.tail()
    late: list[Completion] = []
    completion.add_done_callback(late.append)  # already done: called at once
    assert late == [completion]


def test_fsync_latency_adds_write_back_cost_and_queues_on_the_device() -> None:
    disk, _ = disk_and_node(fsync_latency_ms=2.0, write_latency_ms=0.5)
    for _ in range(4):
        disk.append("f", b"x")  # 4 unsynced writes: 2 ms more
    first = disk.fsync("f")
    second = disk.fsync("g")  # waits for the first
    disk.kernel.run(until_ns=4 * MS - 1)
    assert not first.done()
    disk.kernel.run(until_ns=4 * MS)
    assert first.done() and not second.done()
    disk.kernel.run(until_ns=6 * MS)
    assert second.done()


def test_fail_slow_multiplies_latencies_and_heal_restores_them() -> None:
    disk, _ = disk_and_node(fsync_latency_ms=2.0, write_latency_ms=0.0, read_latency_ms=0.1)
    disk.write("f", 0, b"abc")
    disk.fail_slow(10)
    slow = disk.fsync("f")
    disk.kernel.run(until_ns=20 * MS - 1)
    assert not slow.done()
    disk.kernel.run(until_ns=20 * MS)
    assert slow.done()
    read = disk.read_async("f", 1)
    disk.kernel.run(until_ns=21 * MS - 1)
    assert not read.done()
    disk.kernel.run(until_ns=21 * MS)
    assert read.result() == b"bc"
    disk.heal()
    fast = disk.fsync("f")
    disk.kernel.run(until_ns=23 * MS)
    assert fast.done()
    with pytest.raises(ValueError, match="multiplier"):
        disk.fail_slow(0.5)


def test_a_crash_abandons_fsyncs_in_flight() -> None:
    disk, node = disk_and_node()
    disk.write("f", 0, b"data")
    completion = disk.fsync("f")
    node.crash()
    disk.kernel.run(until_ns=100 * MS)
    assert not completion.done() and disk.read_durable("f") is None and not disk.exists("f")


def test_failing_fsync_completes_with_an_error_and_persists_nothing() -> None:
    disk, _ = disk_and_node()
    disk.write("f", 0, b"data")
    disk.set_fsync_failures(1.0)
    completion = disk.fsync("f")
    disk.kernel.run(until_ns=100 * MS)
    error = completion.exception()
    assert isinstance(error, OSError) and error.errno == errno.EIO and "n1" in str(error)
    with pytest.raises(OSError):
        completion.result()
    assert disk.read_durable("f") is None and disk.statistics()["fsync_errors"] == 1


# -- torn writes ---------------------------------------------------------------------------------------
def sectors_of(data: bytes, size: int = SECTOR) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_torn_writes_keep_or_lose_each_sector_whole() -> None:
    disk, node = disk_and_node(seed=7)
    disk.write("f", 0, b"A" * 16 * SECTOR)
    disk.fsync_now("f")
    disk.write("f", 0, b"B" * 16 * SECTOR)
    disk.enable_torn_writes(0.5)
    node.crash()
    sectors = sectors_of(disk.read("f"))
    assert all(sector in (b"A" * SECTOR, b"B" * SECTOR) for sector in sectors)
    lost = sectors.count(b"A" * SECTOR)
    assert 0 < lost < 16  # a torn write: some sectors landed, some did not (seed 7)
    assert disk.statistics()["torn_sectors"] == lost
    assert disk.read_durable("f") == disk.read("f")  # what landed is on the platter now


def test_torn_writes_split_unaligned_writes_at_sector_boundaries() -> None:
    for seed in range(5):
        disk, node = disk_and_node(seed=seed)
        disk.write("f", 0, b"." * 4 * SECTOR)
        disk.fsync_now("f")
        disk.write("f", 100, b"#" * (3 * SECTOR))  # touches parts of 4 sectors
        disk.enable_torn_writes(0.5)
        node.crash()
        image = disk.read("f")
        pieces = [(100, SECTOR), (SECTOR, 2 * SECTOR), (2 * SECTOR, 3 * SECTOR),
                  (3 * SECTOR, 3 * SECTOR + 100)]
        for start, end in pieces:
            assert image[start:end] in (b"." * (end - start), b"#" * (end - start))
        assert image[:100] == b"." * 100 and image[3 * SECTOR + 100:] == b"." * (SECTOR - 100)


def test_torn_write_probabilities_at_the_extremes() -> None:
    disk, node = disk_and_node()
    disk.write("f", 0, b"old")
    disk.fsync_now("f")
    disk.write("f", 0, b"new")
    disk.write("unsynced-file", 0, b"lost with its creation")
    disk.enable_torn_writes(0.0)  # no sector lost: every unsynced write reached the platter
    node.crash()
    assert disk.read("f") == b"new" and not disk.exists("unsynced-file")
    node.start()
    disk.write("f", 0, b"NEW")
    disk.enable_torn_writes(1.0)  # every sector lost: as with torn writes disabled
    node.crash()
    assert disk.read("f") == b"new"
    node.start()
    disk.write("f", 0, b"NEW")
    disk.disable_torn_writes()
    node.crash()
    assert disk.read("f") == b"new" and disk.statistics()["torn_sectors"] == 1


# -- bit-rot -------------------------------------------------------------------------------------------
def test_bit_rot_at_rest_flips_one_bit_on_the_platter_and_in_the_cache() -> None:
    disk, node = disk_and_node()
    original = bytes(range(64))
    disk.write("f", 0, original)
    disk.fsync_now("f")
    assert disk.corrupt_at_rest("f", 5) == 5
    [(offset, mask)] = differing_bits(original, disk.read("f"))
    assert offset == 5 and bin(mask).count("1") == 1
    assert disk.read_durable("f") == disk.read("f")
    node.crash()
    assert differing_bits(original, disk.read("f")) == [(offset, mask)]  # it survives a crash
    chosen = disk.corrupt_at_rest("f")  # a seed-chosen bit
    assert 0 <= chosen < 64 and len(differing_bits(original, disk.read("f"))) in (1, 2)
    assert disk.statistics()["corruptions_injected"] == 2
    with pytest.raises(ValueError, match="no data"):
        disk.corrupt_at_rest("missing")
    with pytest.raises(ValueError, match="offset"):
        disk.corrupt_at_rest("f", 64)


def test_bit_rot_on_read_corrupts_the_copy_not_the_stored_data() -> None:
    disk, _ = disk_and_node()
    original = b"\x00" * 256
    disk.write("f", 0, original)
    disk.set_read_corruption(1.0)
    for _ in range(10):
        [(_, mask)] = differing_bits(original, disk.read("f"))
        assert bin(mask).count("1") == 1
    disk.set_read_corruption(0.5)
    corrupted = sum(disk.read("f") != original for _ in range(200))
    assert 60 < corrupted < 140
    disk.set_read_corruption(0.0)
    assert disk.read("f") == original
    assert disk.statistics()["corrupted_reads"] == 10 + corrupted
    with pytest.raises(ValueError, match="between 0 and 1"):
        disk.set_read_corruption(1.5)


# -- misdirected writes --------------------------------------------------------------------------------
def test_misdirected_writes_land_at_another_sector_of_the_same_file() -> None:
    disk, _ = disk_and_node()
    disk.write("f", 0, b"." * 4 * SECTOR)
    disk.write("other", 0, b"o" * SECTOR)
    disk.set_misdirected_writes(1.0)
    disk.write("f", SECTOR, b"X" * SECTOR)
    image = disk.read("f")
    assert image[SECTOR:2 * SECTOR] == b"." * SECTOR  # the intended sector kept its old value
    landed = [i for i, sector in enumerate(sectors_of(image)) if sector == b"X" * SECTOR]
    assert len(landed) == 1 and landed[0] != 1 and landed[0] <= 5  # within or just past the file
    assert disk.read("other") == b"o" * SECTOR
    assert disk.statistics()["misdirected_writes"] == 1
    disk.heal()
    disk.write("f", SECTOR, b"Y" * SECTOR)
    assert disk.read("f", SECTOR, SECTOR) == b"Y" * SECTOR


# -- disk full -----------------------------------------------------------------------------------------
def test_writes_past_capacity_fail_with_enospc() -> None:
    disk, _ = disk_and_node(capacity_bytes=1024)
    disk.write("f", 0, b"a" * 1000)
    with pytest.raises(DiskFullError) as caught:
        disk.append("f", b"b" * 100)
    error = caught.value
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert "n1" in str(error) and "'f'" in str(error) and "1000" in str(error) and "1024" in str(error)
    assert disk.size("f") == 1000  # nothing was written
    disk.write("f", 0, b"c" * 1000)  # overwriting needs no space
    disk.write("f", 10, b"c" * 10)  # nor frees any
    assert disk.statistics()["used_bytes"] == 1000
    disk.append("f", b"d" * 24)  # exactly full is allowed
    with pytest.raises(DiskFullError):
        disk.truncate("f", 1025)
    disk.truncate("f", 500)  # shrinking frees space
    assert disk.statistics()["used_bytes"] == 500 and disk.statistics()["enospc_errors"] == 2


def test_fill_takes_space_until_healed() -> None:
    disk, _ = disk_and_node(capacity_bytes=1024)
    disk.write("f", 0, b"a" * 100)
    disk.fill()
    with pytest.raises(DiskFullError):
        disk.append("f", b"b")
    disk.unfill()
    disk.append("f", b"b")
    disk.fill(900)
    with pytest.raises(DiskFullError):
        disk.append("g", b"c" * 24)
    disk.append("g", b"c" * 23)
    disk.heal()
    disk.append("g", b"c" * 500)
    assert disk.statistics()["filled_bytes"] == 0


# -- wipe and heal ---------------------------------------------------------------------------------------
def test_wipe_erases_everything() -> None:
    disk, node = disk_and_node()
    disk.write("a", 0, b"synced")
    disk.fsync_now("a")
    disk.write("b", 0, b"cached")
    pending = disk.fsync("b")
    disk.wipe()
    assert disk.list() == [] and disk.read_durable("a") is None
    assert disk.statistics()["used_bytes"] == 0 and disk.statistics()["wipes"] == 1
    node.crash()
    disk.kernel.run(until_ns=100 * MS)
    assert disk.list() == [] and not pending.done()


def test_heal_clears_every_fault() -> None:
    disk, node = disk_and_node(capacity_bytes=4096, fsync_latency_ms=1.0, write_latency_ms=0.0)
    disk.write("f", 0, b"." * 4 * SECTOR)
    disk.fsync_now("f")
    disk.fail_slow(50)
    disk.enable_torn_writes(0.0)
    disk.set_read_corruption(1.0)
    disk.set_misdirected_writes(1.0)
    disk.set_fsync_failures(1.0)
    disk.fill()
    disk.heal()
    disk.write("f", 0, b"X" * SECTOR)  # lands where asked, fits
    assert disk.read("f", 0, SECTOR) == b"X" * SECTOR  # read intact
    completion = disk.fsync("f")
    disk.kernel.run(until_ns=disk.kernel.now_ns + MS)
    assert completion.done() and completion.exception() is None  # fast and successful
    disk.write("f", 0, b"Y" * SECTOR)
    node.crash()
    assert disk.read("f", 0, SECTOR) == b"X" * SECTOR  # torn writes off: the unsynced write is lost
    assert disk.statistics()["misdirected_writes"] == 0


# -- statistics and determinism --------------------------------------------------------------------------
def test_statistics_count_operations() -> None:
    disk, node = disk_and_node()
    disk.write("f", 0, b"abc")
    disk.append("f", b"de")
    disk.read("f")
    disk.read("f", 0, 1)
    disk.fsync_now("f")
    disk.fsync("f")
    node.crash()
    stats = disk.statistics()
    expected = {"reads": 2, "writes": 1, "appends": 1, "fsyncs": 2, "bytes_written": 5,
                "bytes_read": 6, "crashes": 1, "torn_sectors": 0, "corruptions_injected": 0,
                "corrupted_reads": 0, "misdirected_writes": 0, "enospc_errors": 0, "used_bytes": 5}
    assert {key: stats[key] for key in expected} == expected
    assert all(type(value) is int for value in stats.values())
    assert node.world.statistics()["disks"]["n1"] == stats  # the world reports the same plain dict


def faulty_run(seed: int) -> tuple[Any, ...]:
    disk, node = disk_and_node(seed=seed)
    disk.write("f", 0, b"a" * 8 * SECTOR)
    disk.fsync_now("f")
    disk.set_misdirected_writes(0.3)
    disk.set_read_corruption(0.3)
    disk.enable_torn_writes(0.5)
    for index in range(8):
        disk.write("f", index * SECTOR, bytes([index + 66]) * SECTOR)
    reads = [disk.read("f", 0, 64) for _ in range(8)]
    disk.corrupt_at_rest("f")
    completion = disk.fsync("f")
    disk.kernel.run(until_ns=100 * MS)
    assert completion.done()
    disk.write("f", 0, b"z" * 4 * SECTOR)
    node.crash()
    return disk.read("f"), reads, disk.statistics(), disk.kernel.trace.digest()


def test_same_seed_same_outcome_different_seeds_differ() -> None:
    assert faulty_run(3) == faulty_run(3)
    assert faulty_run(3)[:3] != faulty_run(4)[:3]


# -- awaiting a completion in a node coroutine --------------------------------------------------------------
class Persister:
    """Writes, awaits the fsync, and records what it saw; then awaits a failing fsync."""

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.seen: list[Any] = []
        context.spawn(self.main())

    async def main(self) -> None:
        disk = self.context.disk
        disk.write("wal", 0, b"entry")
        await disk.fsync("wal")
        self.seen.append((disk.kernel.now_ns, disk.read_durable("wal")))
        disk.set_fsync_failures(1.0)
        try:
            await disk.fsync("wal")
        except OSError as error:
            self.seen.append(error.errno)

    def on_message(self, source: str, message: Any) -> None:
        pass


def test_a_node_coroutine_can_await_fsync() -> None:
    world = World(5, Topology.from_azs({"az-a": ["n1"]}), disk=DiskConfig(fsync_latency_ms=3.0))
    node = world.nodes["n1"]
    node.install(Persister)
    node.start()
    outcome = world.kernel.run(until_ns=100 * MS)
    assert outcome.failure is None
    program = node.program
    assert isinstance(program, Persister)
    assert program.seen == [(3 * MS + round(0.02 * MS), b"entry"), errno.EIO]
