"""Disks: one per node, a page cache over a platter, with the faults real disks have.

Theory of operation. A disk holds files by path. Each file has two images:
- the *current* image, what the page cache shows: every data operation (``write``, ``append``, ``read``,
  ``truncate``, ``delete``) acts on it at once and returns synchronously, so sans-I/O code may call them
  from any callback;
- the *durable* image, what the platter holds. Only ``fsync(path)`` moves a file's current image, and
  its metadata (created, truncated, deleted), to the platter: a file created and never fsynced does not
  survive a crash, and neither does an unsynced delete or truncate.

``fsync`` returns a ``Completion``. It completes after the fsync latency, in a kernel event owned by the
disk's node (kind ``"fsync"``), and durability is reached only then: the image persisted is the current
one at completion time. The device serves timed operations one at a time, so an fsync queued behind
another completes after it. Its latency is ``fsync_latency_ms`` plus ``write_latency_ms`` for each write
to that file since its last fsync (the write-back cost), times the fail-slow multiplier. ``read_async``
is a read that costs ``read_latency_ms``; ``read`` is a page-cache hit and costs nothing.

``crash()`` drops the page cache: every file becomes its durable image. Pending fsyncs never complete
(their events belong to the dead incarnation). With torn writes enabled, each unsynced write since the
file's last fsync is replayed onto the durable image sector by sector, and each sector independently
reaches the platter or not: a torn write, at sector granularity. Unsynced writes to a file whose
creation is not durable are lost with the file.

Faults: fail-slow (latencies multiplied), torn writes, bit-rot at rest (a bit flipped on the platter and
in the page cache), bit-rot on read (the stored data is intact, the returned copy is not), misdirected
writes (the data lands at another sector-aligned offset of the *same* file, which may grow, and the
intended bytes keep their old value), failing fsyncs (``OSError`` EIO; nothing is persisted), and a full
disk (``DiskFullError``, ENOSPC, when files plus space taken by ``fill`` would exceed the capacity).
``heal()`` clears every active fault; bit-rot already injected stays (the data is damaged). ``wipe()``
erases all data (a replaced disk) but leaves active faults to ``heal()``.

Every random draw comes from the disk's own stream, and a fault with probability 0 draws nothing, so
enabling a fault on one disk never shifts any other component's draws.
"""

from __future__ import annotations

import dataclasses
import errno
import math
from collections.abc import Callable
from typing import Any

from harness.completion import Completion
from harness.params import param, spec_of
from harness.rng import Rng
from harness.scheduler import EventOwner, Kernel, Timer

__all__ = ["Disk", "DiskConfig", "Completion", "DiskFullError"]

_NS_PER_MS = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class DiskConfig:
    """The hardware of every node's disk."""

    capacity_bytes: int = param("space for files; a write beyond it fails with ENOSPC",
                                1 << 30, minimum=1)
    sector_bytes: int = param("unit of atomic writes: torn and misdirected writes act per sector",
                              512, minimum=1)
    fsync_latency_ms: float = param("typical time an fsync takes, before fail-slow", 2.0, minimum=0)
    read_latency_ms: float = param("time a read_async takes, before fail-slow", 0.2, minimum=0)
    write_latency_ms: float = param("write-back cost each unsynced write adds to the next fsync",
                                    0.02, minimum=0)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            allowed = spec_of(field).check(value)
            wrong_type = isinstance(value, bool) or not isinstance(value, (int, float)) or (
                field.name.endswith("_bytes") and not isinstance(value, int))
            if wrong_type or allowed is not None or not math.isfinite(value):
                kind = "an integer" if field.name.endswith("_bytes") else "a finite number"
                raise ValueError(f"DiskConfig.{field.name} = {value!r} is not allowed: "
                                 f"it must be {kind} {allowed or spec_of(field).allowed()}")


class DiskFullError(OSError):
    """A write would take the disk past its capacity (errno ENOSPC)."""

    def __init__(self, node: str, path: str, needed_bytes: int, used_bytes: int,
                 capacity_bytes: int) -> None:
        super().__init__(errno.ENOSPC, f"disk of {node} is full: {path!r} needs {needed_bytes} more "
                                       f"bytes, {used_bytes} of {capacity_bytes} bytes are used")
        self.filename = path


@dataclasses.dataclass(slots=True)
class DiskStatistics:
    reads: int = 0  # read and read_async calls
    writes: int = 0
    appends: int = 0
    fsyncs: int = 0  # fsync and fsync_now calls
    fsync_errors: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    crashes: int = 0
    wipes: int = 0
    torn_sectors: int = 0  # sectors of unsynced writes that did not reach the platter in a crash
    corruptions_injected: int = 0
    corrupted_reads: int = 0
    misdirected_writes: int = 0
    enospc_errors: int = 0


class Disk:
    """A node's disk. See the module docstring for the model."""

    def __init__(self, kernel: Kernel, rng: Rng, node_name: str, config: DiskConfig) -> None:
        self.kernel = kernel
        self.rng = rng
        self.node_name = node_name
        self.config = config
        self.owner: EventOwner | None = None  # set by the world: timed operations are its events
        self.stats = DiskStatistics()
        self._files: dict[str, bytearray] = {}  # the page cache's view
        self._durable: dict[str, bytes] = {}  # the platter
        self._journal: dict[str, list[tuple[int, bytes]]] = {}  # (offset, data) written since fsync
        self._used_bytes = 0  # sum of current file sizes
        self._pending: dict[int, Timer] = {}  # timed operations in flight, by request number
        self._requests = 0
        self._busy_until_ns = 0  # the device serves timed operations one at a time
        self.heal()

    # -- faults -----------------------------------------------------------------------------------
    def heal(self) -> None:
        """Clear every active fault. Bit-rot already injected stays: that data is damaged."""
        self.latency_multiplier = 1.0
        self.torn_sector_lost_probability: float | None = None  # None: torn writes disabled
        self.read_corruption_probability = 0.0
        self.misdirected_write_probability = 0.0
        self.fsync_failure_probability = 0.0
        self.filled_bytes = 0

    def fail_slow(self, multiplier: float) -> None:
        """Multiply the latency of every timed operation (fsync, read_async) by ``multiplier``."""
        if not isinstance(multiplier, (int, float)) or not 1.0 <= multiplier < math.inf:
            raise ValueError(f"fail_slow multiplier = {multiplier!r}: allowed is a number >= 1")
        self.latency_multiplier = float(multiplier)

    def enable_torn_writes(self, probability_sector_lost: float) -> None:
        """In a crash, each sector of each unsynced write is lost with this probability (else kept)."""
        self.torn_sector_lost_probability = _probability("probability_sector_lost",
                                                         probability_sector_lost)

    def disable_torn_writes(self) -> None:
        """Back to the default: a crash loses every unsynced write whole."""
        self.torn_sector_lost_probability = None

    def set_read_corruption(self, probability: float) -> None:
        """Each read returns its data with one bit flipped, with this probability."""
        self.read_corruption_probability = _probability("read corruption probability", probability)

    def set_misdirected_writes(self, probability: float) -> None:
        """Each write lands at another sector-aligned offset of the same file, with this probability."""
        self.misdirected_write_probability = _probability("misdirected write probability", probability)

    def set_fsync_failures(self, probability: float) -> None:
        """Each fsync fails with ``OSError`` (EIO) and persists nothing, with this probability."""
        self.fsync_failure_probability = _probability("fsync failure probability", probability)

    def fill(self, size_bytes: int | None = None) -> None:
        """Other tenants take ``size_bytes`` of space (all that is free if None); ``unfill`` frees it."""
        if size_bytes is None:
            size_bytes = max(self.config.capacity_bytes - self._used_bytes, 0)
        if not isinstance(size_bytes, int) or isinstance(size_bytes, bool) or size_bytes < 0:
            raise ValueError(f"fill size_bytes = {size_bytes!r}: allowed is an integer >= 0 or None")
        self.filled_bytes = size_bytes

    def unfill(self) -> None:
        """The other tenants free the space taken by ``fill``."""
        self.filled_bytes = 0

    def corrupt_at_rest(self, path: str, offset: int | None = None) -> int:
        """Flip one bit at ``offset`` (seed-chosen if None) on the platter and in the page cache.

        Returns the offset of the damaged byte.
        """
        images = [image for image in (self._durable.get(path), self._files.get(path)) if image]
        if not images:
            raise ValueError(f"cannot corrupt {path!r} on {self.node_name}: it holds no data")
        if offset is None:
            offset = self.rng.randrange(len(images[0]))
        elif not 0 <= offset < max(len(image) for image in images):
            raise ValueError(f"corrupt offset = {offset!r} for {path!r} on {self.node_name}: "
                             f"allowed is 0 <= offset < {max(len(image) for image in images)}")
        mask = 1 << self.rng.randrange(8)
        if offset < len(self._durable.get(path, b"")):
            self._durable[path] = _flip(self._durable[path], offset, mask)
        if path in self._files and offset < len(self._files[path]):
            self._files[path][offset] ^= mask
        self.stats.corruptions_injected += 1
        return offset

    def wipe(self) -> None:
        """Erase every file, durable or not (the node got a fresh disk). Active faults stay."""
        self._abandon_pending()
        self._files, self._durable, self._journal = {}, {}, {}
        self._used_bytes = 0
        self.stats.wipes += 1

    def crash(self) -> None:
        """Lose the page cache: each file becomes its durable image (plus torn sectors, if enabled)."""
        self._abandon_pending()
        self.stats.crashes += 1
        survivors: dict[str, bytes] = {}
        for path in sorted(self._durable):
            survivors[path] = self._land_torn_sectors(path, self._durable[path])
        self._durable = survivors
        self._files = {path: bytearray(image) for path, image in survivors.items()}
        self._journal = {}
        self._used_bytes = sum(len(image) for image in self._files.values())

    # -- data operations (page cache, synchronous) --------------------------------------------------
    def write(self, path: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (creating the file; a gap reads as zeros). Not yet durable."""
        _check_offset("offset", offset)
        self.stats.writes += 1
        self._store(_check_path(path), offset, bytes(data))

    def append(self, path: str, data: bytes) -> int:
        """Write ``data`` at the end of the file (creating it); returns the offset it was written at."""
        offset = len(self._files.get(_check_path(path), b""))
        self.stats.appends += 1
        self._store(path, offset, bytes(data))
        return offset

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Up to ``length`` bytes (to the end if None) from ``offset``; short at the end of the file."""
        _check_offset("offset", offset)
        if length is not None:
            _check_offset("length", length)
        image = self._require(path)
        end = len(image) if length is None else min(len(image), offset + length)
        data = bytes(image[offset:end])
        self.stats.reads += 1
        self.stats.bytes_read += len(data)
        return self._maybe_corrupt(data)

    def size(self, path: str) -> int:
        return len(self._require(path))

    def exists(self, path: str) -> bool:
        return path in self._files

    def list(self, prefix: str = "") -> list[str]:
        """Paths of existing files starting with ``prefix``, sorted."""
        return sorted(path for path in self._files if path.startswith(prefix))

    def truncate(self, path: str, length: int) -> None:
        """Cut the file to ``length`` bytes, or extend it with zeros. Durable after an fsync of it."""
        _check_offset("length", length)
        image = self._require(path)
        self._reserve(path, length - len(image))
        if length < len(image):
            del image[length:]
        else:
            image.extend(bytes(length - len(image)))

    def delete(self, path: str) -> None:
        """Remove the file. The removal is durable after an fsync of the path."""
        image = self._require(path)
        del self._files[path]
        self._used_bytes -= len(image)

    def read_durable(self, path: str) -> bytes | None:
        """What the platter holds for ``path`` (None if absent): for checkers, tools and tests."""
        return self._durable.get(path)

    # -- timed operations --------------------------------------------------------------------------
    def fsync(self, path: str) -> Completion:
        """Make the file (data and metadata, or its absence) durable. Done after the fsync latency."""
        _check_path(path)
        self.stats.fsyncs += 1
        completion = Completion(f"fsync {self.node_name}:{path}")
        cost_ms = (self.config.fsync_latency_ms
                   + self.config.write_latency_ms * len(self._journal.get(path, ())))
        self._schedule(cost_ms, "fsync", path, self._finish_fsync, path, completion)
        return completion

    def fsync_now(self, path: str) -> None:
        """Make the file durable at once, with no latency and no fault (for tools and tests)."""
        self.stats.fsyncs += 1
        self._persist(_check_path(path))

    def read_async(self, path: str, offset: int = 0, length: int | None = None) -> Completion:
        """``read`` that takes the read latency: the completion's value is the data read now."""
        completion = Completion(f"read {self.node_name}:{path}")
        data = self.read(path, offset, length)
        self._schedule(self.config.read_latency_ms, "disk-read", path, completion.set_result, data)
        return completion

    def statistics(self) -> dict[str, Any]:
        counters = {field.name: getattr(self.stats, field.name)
                    for field in dataclasses.fields(self.stats)}
        return counters | {"used_bytes": self._used_bytes, "filled_bytes": self.filled_bytes,
                           "files": len(self._files)}

    # -- internals ---------------------------------------------------------------------------------
    def _store(self, path: str, offset: int, data: bytes) -> None:
        misdirected = self.rng.chance(self.misdirected_write_probability)
        if misdirected:
            offset = self._misdirected_offset(path, offset)
        image = self._files.setdefault(path, bytearray())
        if data:
            self._reserve(path, max(offset + len(data) - len(image), 0))
            _splice(image, offset, data)
            self._journal.setdefault(path, []).append((offset, data))
        self.stats.misdirected_writes += misdirected
        self.stats.bytes_written += len(data)

    def _misdirected_offset(self, path: str, offset: int) -> int:
        """A sector-aligned offset other than ``offset``, in the file or up to two sectors past it."""
        sector = self.config.sector_bytes
        count = -(-len(self._files.get(path, b"")) // sector) + 2
        if offset % sector or offset // sector >= count:
            return self.rng.randrange(count) * sector
        index = self.rng.randrange(count - 1)
        return (index + (index >= offset // sector)) * sector

    def _reserve(self, path: str, growth_bytes: int) -> None:
        """Account for a file growing by ``growth_bytes`` (may be negative), or raise ENOSPC."""
        used = self._used_bytes + self.filled_bytes
        if growth_bytes > 0 and used + growth_bytes > self.config.capacity_bytes:
            self.stats.enospc_errors += 1
            raise DiskFullError(self.node_name, path, growth_bytes, used, self.config.capacity_bytes)
        self._used_bytes += growth_bytes

    def _require(self, path: str) -> bytearray:
        image = self._files.get(path)
        if image is None:
            raise FileNotFoundError(errno.ENOENT, f"no file {path!r} on the disk of {self.node_name}",
                                    path)
        return image

    def _maybe_corrupt(self, data: bytes) -> bytes:
        if not data or not self.rng.chance(self.read_corruption_probability):
            return data
        self.stats.corrupted_reads += 1
        return _flip(data, self.rng.randrange(len(data)), 1 << self.rng.randrange(8))

    def _persist(self, path: str) -> None:
        image = self._files.get(path)
        if image is None:
            self._durable.pop(path, None)
        else:
            self._durable[path] = bytes(image)
        self._journal.pop(path, None)

    def _land_torn_sectors(self, path: str, durable: bytes) -> bytes:
        """The durable image after a crash: unsynced sectors land only when torn writes are on."""
        probability = self.torn_sector_lost_probability
        if probability is None:
            return durable
        image = bytearray(durable)
        for offset, data in self._journal.get(path, ()):
            for start, chunk in _sector_chunks(offset, data, self.config.sector_bytes):
                if self.rng.chance(probability):
                    self.stats.torn_sectors += 1
                else:
                    _splice(image, start, chunk)
        return bytes(image)

    def _schedule(self, cost_ms: float, kind: str, path: str, callback: Callable[..., Any],
                  *args: Any) -> None:
        """Run ``callback(*args)`` once the device has served this request (one at a time)."""
        delay_ns = round(cost_ms * self.latency_multiplier * _NS_PER_MS)
        self._busy_until_ns = max(self._busy_until_ns, self.kernel.now_ns) + delay_ns
        self._requests += 1
        self._pending[self._requests] = self.kernel.call_at(
            self._busy_until_ns, self._complete, self._requests, callback, args,
            owner=self.owner, kind=kind, detail=(self.node_name, path))

    def _complete(self, request: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._pending.pop(request, None)
        run_in_node = getattr(self.owner, "run_in_node", None)  # sets the node's loop as running
        if run_in_node is None:
            callback(*args)
        else:
            run_in_node(callback, *args)

    def _finish_fsync(self, path: str, completion: Completion) -> None:
        if self.rng.chance(self.fsync_failure_probability):
            self.stats.fsync_errors += 1
            completion.set_exception(OSError(errno.EIO, f"fsync of {path!r} failed on the disk "
                                                        f"of {self.node_name}", path))
            return
        self._persist(path)
        completion.set_result(None)

    def _abandon_pending(self) -> None:
        """Timed operations in flight never complete (their node's incarnation is gone)."""
        for request in sorted(self._pending):
            self._pending[request].cancel()
        self._pending = {}
        self._busy_until_ns = self.kernel.now_ns

    def __repr__(self) -> str:
        return f"Disk({self.node_name!r}, files={len(self._files)}, used={self._used_bytes}B)"


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value!r}: allowed is a number between 0 and 1")
    return float(value)


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path:
        raise ValueError(f"path = {path!r}: allowed is a non-empty string")
    return path


def _check_offset(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} = {value!r}: allowed is an integer >= 0")


def _splice(image: bytearray, offset: int, data: bytes) -> None:
    """Write ``data`` into ``image`` at ``offset``, zero-filling any gap before it."""
    if offset > len(image):
        image.extend(bytes(offset - len(image)))
    image[offset:offset + len(data)] = data


def _sector_chunks(offset: int, data: bytes, sector: int) -> list[tuple[int, bytes]]:
    """``data`` (written at ``offset``) cut at sector boundaries: [(start, chunk), ...]."""
    chunks = []
    position = offset
    while position < offset + len(data):
        end = min((position // sector + 1) * sector, offset + len(data))
        chunks.append((position, data[position - offset:end - offset]))
        position = end
    return chunks


def _flip(data: bytes, offset: int, mask: int) -> bytes:
    flipped = bytearray(data)
    flipped[offset] ^= mask
    return bytes(flipped)
