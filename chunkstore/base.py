"""The chunk store interface: immutable byte chunks by 64-bit id, checksummed per block.

A chunk is written once and never changed. Its checksums are kept by the caller (in the
extent record), not next to the bytes, so a chunk file that rots or is replaced by other
bytes cannot vouch for itself. Checksums are per block so that a ranged read
verifies only the blocks it covers: reading 4 KiB of a 4 MiB chunk costs O(one block).

Block size: new chunks are written with BLOCK_SIZE (4 KiB) blocks; chunks written
before with 16 KiB or 64 KiB blocks keep their sums and keep reading. A chunk record
stores no block size: it is implied by the chunk's size and its number of sums
(``block_size_of``), which is unambiguous because each size in BLOCK_SIZES is at least
twice the one before.
Why 4 KiB: a cold 4 KiB random read (a page, what a mount's random reader asks for)
must read and verify the whole covering block; with 16 KiB blocks it read four times
the bytes from disk (bench/mount.py, rand_read_4k: 15-16 KiB of disk reads per 4 KiB
read, now ~4 like the pass-through; a cold pread here took ~65 us for 4 KiB, ~85 us for
16 KiB, ~150 us for 64 KiB). The price:
a 4 MiB chunk's sums are 8 KiB in its LMDB record (three overflow pages instead of
one), and hashing runs per 4 KiB: ~250 us per 4 MiB chunk written and ~60 us per MiB
read and verified, against ~110 us and ~30 us with 16 KiB blocks (a few per cent of a
core at 1 GiB/s).

xxh3 detects bit rot; it is not collision-resistant and must never key deduplication or
authenticate anything (FACTS.md, "Hashes").
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import xxhash

from .buffers import BlockViews

BLOCK_SIZE = 4 * 1024
# Every block size a chunk may have been written with, ascending, each at least twice the
# one before (see block_size_of). 64 KiB: chunks written before 16 KiB became the size.
BLOCK_SIZES = (4 * 1024, 16 * 1024, 64 * 1024)
SUM_SIZE = 8


def chunk_name(chunk_id: int) -> str:
    """The chunk's canonical name: 16 lower-case hex digits (sorts like the id)."""
    return f"{chunk_id:016x}"


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    chunk_id: int
    size: int
    sums: bytes
    # block_size, worked out at its first use (a read plan keeps its infos for every
    # read of an open file); 0 until then.
    _block: int = field(default=0, init=False, repr=False, compare=False)

    @property
    def block_size(self) -> int:
        """The size of this chunk's checksum blocks (ValueError if its sums fit none)."""
        b = self._block
        if not b:
            b = block_size_of(self.chunk_id, self.size, len(self.sums))
            object.__setattr__(self, "_block", b)  # frozen: a cache, not a change
        return b


class ChunkError(Exception):
    """Base of every chunk store error.

    chunk_id is None only for store-wide failures (``check()``); otherwise str() names the
    chunk as 16 hex digits so a log line leads straight to the file or object. errno is kept
    when the cause was an OSError.
    """

    def __init__(self, chunk_id: int | None, detail: str, *, errno: int | None = None) -> None:
        self.chunk_id = chunk_id
        self.detail = detail
        self.errno = errno
        super().__init__(chunk_id, detail)

    def __str__(self) -> str:
        where = "chunk store" if self.chunk_id is None else f"chunk {chunk_name(self.chunk_id)}"
        return f"{where}: {self.detail}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep errno across pickling (multiprocessing, logging handlers); Exception's
        # default would rebuild from args alone.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[ChunkError], state: dict[str, object]) -> ChunkError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("chunk_id"), state.get("detail"))
    err.__dict__.update(state)
    return err


class ChunkMissing(ChunkError):
    """The chunk is absent in the backend."""


class ChunkCorrupt(ChunkError):
    """The bytes do not match their checksums (or the chunk has the wrong size)."""

    def __init__(self, chunk_id: int, block: int, detail: str) -> None:
        super().__init__(chunk_id, f"block {block}: {detail}")
        self.block = block


class ChunkUnavailable(ChunkError):
    """A remote backend did not answer within the request's deadline (after retries)."""


class ChunkStoreFull(ChunkError):
    """ENOSPC/EDQUOT while writing; nothing half-written is left visible."""


def block_count(size: int, block: int = BLOCK_SIZE) -> int:
    return -(-size // block)


def block_size_of(chunk_id: int, size: int, sums_len: int) -> int:
    """The block size a chunk of size bytes with sums_len bytes of sums was written with.

    ceil(size / B) differs for every B in BLOCK_SIZES unless it is 1 (or 0): then the one
    block is the whole chunk and every candidate reads it the same way. ValueError when
    no block size fits (a damaged or foreign record)."""
    n, rest = divmod(sums_len, SUM_SIZE)
    if not rest:
        for b in BLOCK_SIZES:
            if -(-size // b) == n:
                return b
    raise ValueError(f"chunk {chunk_name(chunk_id)}: {sums_len} bytes of sums "
                     f"for {size} bytes of data")


def block_sums(data: bytes | bytearray | memoryview, block: int = BLOCK_SIZE,
               views: list[memoryview] | None = None) -> bytes:
    """xxh3_64 of every block, SUM_SIZE bytes each, big-endian; the last block may be
    short. Empty data has no blocks and so no sums. New chunks use the default.
    views: ready-made views of data's whole blocks when data starts at the start of a
    reused buffer (``BlockViews.of(block)``): no slicing."""
    if views is not None:
        whole = len(data) // block
        if whole <= len(views):
            out = b"".join(map(xxhash.xxh3_64_digest, views[:whole]))
            if len(data) > whole * block:
                out += xxhash.xxh3_64_digest(memoryview(data)[whole * block:])
            return out
    view = memoryview(data).cast("B")
    digest = xxhash.xxh3_64_digest  # canonical form is big-endian
    # A list of digests, each block's view freed as soon as it is hashed: the fastest
    # form measured for 1,024 blocks a chunk (a list of the views, then map, ~12% slower;
    # a generator expression ~25%). Holding 1,024 live views at once also set off a
    # garbage collection per chunk (700 new container objects), and the survivors it
    # promoted made full collections frequent: 8-9 % of the gateway's CPU on a GET
    # through the s3 backend went to the collector (perf).
    return b"".join([digest(view[i : i + block]) for i in range(0, len(view), block)])


def verify_blocks(chunk_id: int, data: bytes | memoryview, first_block: int, sums: bytes,
                  block: int = BLOCK_SIZE, views: list[memoryview] | None = None) -> None:
    """Check data, which starts at block first_block, against the chunk's sums.

    data covers whole blocks of `block` bytes (the chunk's ChunkInfo.block_size), except
    that the chunk's last block may be short. Raises ChunkCorrupt naming the first bad
    block.
    """
    if len(data) <= block:
        # One block (a small random read): one digest, no joined run of sums.
        at = first_block * SUM_SIZE
        if len(sums) >= at + SUM_SIZE and xxhash.xxh3_64_digest(data) == sums[at:at + SUM_SIZE]:
            return
    nblocks = block_count(len(data), block)
    want = sums[first_block * SUM_SIZE : (first_block + nblocks) * SUM_SIZE]
    if len(want) != nblocks * SUM_SIZE:
        bad = first_block + len(want) // SUM_SIZE
        raise ChunkCorrupt(chunk_id, bad, "data runs past the chunk's last block")
    got = block_sums(data, block, views)
    if got == want:
        return
    # One compare of the whole run is the fast path; find the block only on failure.
    for i in range(nblocks):
        s = slice(i * SUM_SIZE, (i + 1) * SUM_SIZE)
        if got[s] != want[s]:
            raise ChunkCorrupt(
                chunk_id, first_block + i,
                f"checksum mismatch (stored {want[s].hex()}, read {got[s].hex()})",
            )
    raise AssertionError("unreachable: sums differ but no block does")


def covering_range(info: ChunkInfo, offset: int, length: int | None) -> tuple[int, int, int]:
    """Validate a read of info and return (first_block, start, end).

    [start, end) is the requested byte range; the blocks to read and verify are
    first_block .. block_count(end, info.block_size) - 1. Backends share this so they
    agree on what is out of range (ValueError) and what a zero-length read means.
    """
    size = info.size
    block = info.block_size  # ValueError when the sums fit no block size
    if offset < 0 or offset > size:
        raise ValueError(f"chunk {chunk_name(info.chunk_id)}: offset {offset} outside 0..{size}")
    if length is None:
        length = size - offset
    if length < 0 or offset + length > size:
        raise ValueError(
            f"chunk {chunk_name(info.chunk_id)}: range {offset}+{length} beyond size {size}"
        )
    return offset // block, offset, offset + length


def span(info: ChunkInfo, offset: int, length: int) -> int:
    """Bytes a read of [offset, offset+length) reads and verifies: its covering blocks."""
    block = info.block_size
    first = offset // block
    return min(block_count(offset + length, block) * block, info.size) - first * block


class ChunkStore(abc.ABC):
    """Immutable chunks by id. Knows nothing of files, inodes or references."""

    name: str
    # Chunk puts worth keeping in flight for one streamed object: enough to hide one
    # put's latency behind the next ones. A local disk overlaps its fsyncs with 4; a
    # remote store pays a round trip plus the store's own durable write per chunk.
    write_ahead: int = 4

    @abc.abstractmethod
    async def put(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        """Store data under chunk_id; durable when it returns. Idempotent for the same id and
        bytes. data must not be mutated until put returns, and put keeps no reference to it
        afterwards: the caller reuses the buffer (store_stream's pool)."""

    async def put_unsynced(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        """Store data under chunk_id, readable at once but durable only after ``sync`` of
        its id returned. Lets a writer whose durability point comes later (an NFS COMMIT,
        an fsync) keep chunk writes off the disk's flush path until then, and flush many
        chunks at once. Stores where every put is durable anyway keep this default."""
        return await self.put(chunk_id, data)

    async def sync(self, chunk_ids: list[int]) -> None:
        """Make the chunks written with ``put_unsynced`` durable; raises ChunkError when it
        cannot. After a failure the bytes must be taken as lost: a second sync may report
        success for pages the kernel already dropped (fsyncgate). Default: nothing to do."""

    @abc.abstractmethod
    async def get(self, info: ChunkInfo, offset: int = 0, length: int | None = None) -> bytes:
        """Read [offset, offset+length) (to the end when length is None), reading and
        verifying only the covering blocks. Out-of-range -> ValueError. A zero-length read
        returns b"" without touching the backend."""

    def get_now(self, info: ChunkInfo, offset: int = 0,
                length: int | None = None) -> bytes | None:
        """``get`` done right now on the calling thread, verified the same way, or None
        when this store cannot do that without making others wait long (then call
        ``get``). For a caller that is the only request waiting on the event loop (a
        single-threaded reader of a mount): a store whose reads are local and recently
        fast may then read right on the loop, blocking it for one disk read as a plain
        file system server does, instead of a round trip through a worker thread, and
        the caller needs no coroutine of its own. Errors are get's. Default: None."""
        return None

    async def get_alone(self, info: ChunkInfo, offset: int = 0,
                        length: int | None = None) -> bytes:
        """``get`` for a caller that is the only request waiting on the event loop:
        ``get_now`` when the store can, else ``get``."""
        got = self.get_now(info, offset, length)
        if got is not None:
            return got
        return await self.get(info, offset, length)

    async def get_buffer(self, info: ChunkInfo, offset: int = 0,
                         length: int | None = None) -> bytes | memoryview:
        """``get``, but the bytes may come as a read-only view of a larger verified buffer
        (no copy): for a reader that only passes them on (a response body). Default: get."""
        return await self.get(info, offset, length)

    # Whether get_if_cached can ever succeed (a stream then reads just in time, see it).
    reads_now: bool = False

    def get_if_cached(self, info: ChunkInfo, offset: int, length: int,
                      into: bytearray | None) -> bytes | memoryview | None:
        """The verified range right now, without blocking and without a thread hop (bytes
        the page cache holds), as get_into would return it; None when that would wait
        (or on any doubt: get/get_into then read and report). A streamed GET reads each
        piece like this just before sending it, so the bytes are still in the CPU's cache
        when the socket copies them: reading pieces ahead cost a fifth more CPU per MB
        (each piece was cold again by its turn). Default: None."""
        return None

    async def get_into(self, info: ChunkInfo, offset: int, length: int,
                       buf: bytearray) -> bytes | memoryview:
        """``get_buffer``, reading into the caller's buf where the store can: the result
        is then a read-only view of buf, valid until the caller reuses buf. buf should
        hold ``span(info, offset, length)`` bytes (the covering blocks); a store that
        cannot use it (or a buf too small) returns a buffer of its own. Lets a streaming
        reader recycle a few buffers instead of faulting in a fresh one per piece.
        Default: get_buffer."""
        return await self.get_buffer(info, offset, length)

    # Whether get_blocking works: a caller's own worker thread may then read and verify
    # pieces itself (a large GET's reader thread, gateway/body_threads.py).
    reads_blocking: bool = False

    def get_blocking(self, info: ChunkInfo, offset: int, length: int, buf: bytearray,
                     views: BlockViews | None = None) -> bytes | memoryview:
        """``get_into`` done on the calling thread, which may block on the disk: only for
        a worker thread of the caller's own, never the event loop, and only when
        ``reads_blocking``. Thread-safe; verified like get; errors are get's (a store
        being closed raises ChunkUnavailable). views: buf's BlockViews, kept by a caller
        that reuses buf for many reads (verifying then slices nothing)."""
        raise NotImplementedError(f"{type(self).__name__} has no blocking reads")

    @abc.abstractmethod
    async def delete(self, chunk_id: int) -> None:
        """Remove the chunk; a missing chunk is not an error."""

    @abc.abstractmethod
    async def exists(self, chunk_id: int) -> bool: ...

    @abc.abstractmethod
    def ids(self) -> AsyncIterator[tuple[int, float]]:
        """Every stored chunk id with its mtime (unix seconds), in no particular order.
        Temporary files of writes in progress are not ids."""

    async def sized_ids(self) -> AsyncIterator[tuple[int, float, int | None]]:
        """ids() with each chunk's stored size in bytes (what deleting it frees), None
        where the store cannot tell without another request per chunk."""
        async for cid, mtime in self.ids():
            yield cid, mtime, None

    def prefetch(self, infos: list[ChunkInfo]) -> None:
        """Hint: a sequential reader will want these chunks soon. Stores where a read is a
        round-trip start fetching them in the background; a local disk needs nothing."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Readiness probe: raise ChunkError when the store cannot be written or read."""

    @abc.abstractmethod
    async def close(self) -> None: ...
