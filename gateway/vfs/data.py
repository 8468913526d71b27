"""Moving file bytes to and from chunks: slicing writes into chunks and extents,
and streaming reads with read-ahead.

Durability order lives here: ``store_stream`` (and ``store_ranges`` by default)
returns only after every chunk it wrote is durable, and the caller commits the
metadata that points at them afterwards. ``store_ranges(durable=False)`` leaves the
flush to the caller, who must ``ChunkStore.sync`` the chunks before that commit
(the mount write path: many chunks flushed at once, at fsync/COMMIT).
"""

from __future__ import annotations

import asyncio
import bisect
import mmap
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from chunkstore import (
    ChunkCorrupt, ChunkError, ChunkInfo, ChunkMissing, ChunkStore, ChunkStoreFull,
    ChunkUnavailable,
)
from chunkstore.base import BLOCK_SIZES
from chunkstore.buffers import BlockViews, unfilled_buffer
from chunkstore.buffers import pool as buffer_pool
from metadata import INLINE_MAX, Extent, LmdbEngine
from metadata import namespace as ns
from metadata.schema import U64, decode_extent, extent_key, read_u64

from .errors import DataCorrupt, NoSpace, StorageError, Unavailable
from .hashing import Md5Stream

# Chunk ids are reserved from metadata in ranges so that a write needs no
# metadata round-trip per chunk; a range lost in a crash is just never used.
ID_RANGE = 1024
# Chunk writes in flight while a body keeps arriving, unless the store asks for
# more (ChunkStore.write_ahead); bounds memory to about (that + 1) chunks per upload.
WRITE_AHEAD = 4
# Concurrent chunk fetches ahead of a sequential reader.
READ_AHEAD = 4
# Largest piece a stream yields: big enough to amortise per-piece costs,
# small enough not to hold memory (FACTS: 1 MiB pieces cost nothing).
STREAM_PIECE = 1 << 20
# First body buffer of a stored stream (a pooled chunk buffer takes over if the body is
# longer).
FIRST_BUFFER = 64 << 10
# How long a failed stored stream waits for its running chunk writes before it deletes
# what they wrote (a local write takes milliseconds; a stuck remote store is cut off).
DISCARD_WAIT = 10.0
# A stored stream's MD5 is fed this much of a chunk buffer at a time: small enough that
# the hash trails the body by little, large enough that hashlib releases the GIL and
# the thread hops stay few.
MD5_SEGMENT = 1 << 20
# How far ahead of a sequential reader whole chunks are fetched from a remote store
# (ChunkStore.prefetch; a no-op for the local disk): a few chunks in flight keep a
# reader at the backend's bandwidth instead of one round-trip per chunk.
PREFETCH_BYTES = 16 << 20
# A stream reading at once names the chunks ahead of it every this many pieces.
PREFETCH_STEP = 4


class ChunkIds:
    def __init__(self, engine: LmdbEngine) -> None:
        self._engine = engine
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def take(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    start = await self._engine.write(lambda txn: ns.reserve_chunk_ids(txn, ID_RANGE))
                    self._next, self._end = start, start + ID_RANGE
        n = self._next
        self._next += 1
        return n


@dataclass(slots=True)
class Written:
    """Bytes made durable, waiting for the metadata commit that points at them."""

    extents: list[Extent]
    chunks: list[ChunkInfo]

    def extend(self, other: Written) -> None:
        self.extents.extend(other.extents)
        self.chunks.extend(other.chunks)

    def __bool__(self) -> bool:
        return bool(self.extents)

    def register(self, txn: object) -> None:
        for c in self.chunks:
            ns.register_chunk(txn, c.chunk_id, c.size, c.sums)  # type: ignore[arg-type]

    def unreferenced(self, txn: object, now_ns: int) -> None:
        """After the extents went in: chunks nothing points at go to trash."""
        for c in self.chunks:
            ns.trash_if_unreferenced(txn, c.chunk_id, now_ns)  # type: ignore[arg-type]


def chunk_errors(exc: ChunkError) -> Exception:
    if isinstance(exc, ChunkStoreFull):
        return NoSpace(str(exc))
    if isinstance(exc, ChunkUnavailable):
        return Unavailable(str(exc))
    if isinstance(exc, (ChunkCorrupt, ChunkMissing)):
        return DataCorrupt(str(exc))
    return StorageError(str(exc))


async def store_piece(chunks: ChunkStore, ids: ChunkIds, offset: int,
                      data: bytes | bytearray | memoryview, out: Written, *,
                      durable: bool = True, taken: list[int] | None = None) -> None:
    """Store data as one inline extent or one chunk, appended to out. With durable
    False the chunk must go through ``chunks.sync`` before metadata points at it.
    taken, if given, gets the chunk id before the put starts (a put that fails or is
    cancelled may still leave the chunk behind)."""
    if len(data) <= INLINE_MAX:
        out.extents.append(Extent(offset, len(data), data=bytes(data)))
        return
    cid = await ids.take()
    if taken is not None:
        taken.append(cid)
    try:
        info = await (chunks.put(cid, data) if durable else chunks.put_unsynced(cid, data))
    except ChunkError as e:
        raise chunk_errors(e) from e
    out.chunks.append(info)
    out.extents.append(Extent(offset, len(data), cid, 0))


async def store_ranges(chunks: ChunkStore, ids: ChunkIds, chunk_size: int,
                       ranges: Iterable[tuple[int, bytes | bytearray]], *,
                       durable: bool = True) -> Written:
    """Write dirty ranges as chunk_size pieces (extents in range order)."""
    out = Written([], [])
    for start, data in ranges:
        view = memoryview(data)
        for at in range(0, len(view), chunk_size):
            await store_piece(chunks, ids, start + at, view[at:at + chunk_size], out,
                              durable=durable)
    return out


async def store_stream(chunks: ChunkStore, ids: ChunkIds, chunk_size: int,
                       body: AsyncIterator[bytes]) -> tuple[Written, int, str]:
    """Store a whole object body from a stream: (written, size, md5 hex).

    Up to WRITE_AHEAD chunk writes are in flight while the body keeps arriving:
    each durable chunk costs two fsyncs, and waiting for them one at a time made a
    64 MiB put run at a fifth of the disk (bench/vfs.py). The MD5 runs in a worker
    thread beside them (hashlib releases the GIL), strictly in body order, fed every
    MD5_SEGMENT bytes so that it keeps up with the body instead of starting on a chunk
    only once the chunk is full (the last chunk's MD5 was a wait after the last byte).
    """
    md5 = Md5Stream()
    out = Written([], [])
    offset = 0
    inflight: set[asyncio.Future[None]] = set()
    ahead = max(WRITE_AHEAD, chunks.write_ahead)
    segment = min(MD5_SEGMENT, chunk_size)
    # Bounded: a disk or a hash slower than the body holds at most about `ahead`
    # chunks in memory.
    md5_ahead = ahead * max(1, chunk_size // segment)
    fed = 0  # pieces given to the MD5
    taken: list[int] = []  # every chunk id a write started with
    # Pool buffers lent to a chunk write: (pieces the MD5 must have taken first, the
    # write, the buffer). Each goes back to the pool once both are done with it.
    lent: deque[tuple[int, asyncio.Future[None], Any]] = deque()

    async def hash_piece(piece: memoryview) -> None:
        nonlocal fed
        if md5.pending() >= md5_ahead:
            await md5.wait_below(md5_ahead)
        md5.update(piece)
        fed += 1

    def give_back() -> None:
        hashed = fed - md5.pending()
        while lent and lent[0][0] <= hashed and lent[0][1].done():
            _, task, buf = lent.popleft()
            if not task.cancelled() and task.exception() is None:
                buffer_pool.give(buf)

    async def flush(buf: Any, piece: memoryview) -> None:
        nonlocal offset
        while len(inflight) >= ahead:
            done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                inflight.discard(t)
                t.result()
        task = asyncio.ensure_future(store_piece(chunks, ids, offset, piece, out, taken=taken))
        inflight.add(task)
        if isinstance(buf, mmap.mmap):
            lent.append((fed, task, buf))
        give_back()
        offset += len(piece)

    # Each chunk is filled in place in its own buffer, handed over whole and never
    # touched again until it is written and hashed: one copy per byte (socket piece ->
    # chunk buffer). Full-size buffers come from the page-aligned pool (recycled
    # memory; the local store writes them with O_DIRECT). The first buffer is small,
    # so a 4 KiB body does not take a whole chunk.
    buf: Any = bytearray(min(chunk_size, FIRST_BUFFER))
    view = memoryview(buf)
    fill = 0
    hashed_to = 0  # bytes of buf given to the MD5
    try:
        async for data in body:
            dv = memoryview(data)
            at, n = 0, len(dv)
            while at < n:
                if fill == len(buf) and len(buf) < chunk_size:
                    # Past the first buffer, straight to a pooled chunk buffer: doubling
                    # a bytearray copied a chunk-sized body once more into fresh memory
                    # (every chunk a gateway uploads to a samebytes backend is one).
                    grown: Any = buffer_pool.take(chunk_size)
                    grown_view = memoryview(grown)
                    grown_view[:fill] = view[:fill]
                    buf, view = grown, grown_view
                k = min(len(buf) - fill, n - at)
                view[fill:fill + k] = dv[at:at + k]
                fill += k
                at += k
                while fill - hashed_to >= segment:
                    await hash_piece(view[hashed_to:hashed_to + segment])
                    hashed_to += segment
                if fill == chunk_size:
                    if hashed_to < fill:
                        await hash_piece(view[hashed_to:fill])
                    await flush(buf, view)
                    buf = buffer_pool.take(chunk_size)
                    view = memoryview(buf)
                    fill = hashed_to = 0
        if fill:
            if hashed_to < fill:
                await hash_piece(view[hashed_to:fill])
            await flush(buf, view[:fill])
        elif isinstance(buf, mmap.mmap):
            buffer_pool.give(buf)  # taken for a next chunk the body did not have
        digest = md5.hexdigest_now()
        await asyncio.gather(*inflight)
        md5_hex = await digest
    except BaseException:
        # The body failed: nothing will point at these chunks. Writes already running
        # are let finish first (a cancelled local write goes on in its thread and
        # would create its file after the delete), up to a bound for a stuck remote
        # store; then every chunk any write started on is deleted.
        if inflight:
            await asyncio.wait(inflight, timeout=DISCARD_WAIT)
        for t in inflight:
            t.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        await asyncio.gather(md5.hexdigest_now(), return_exceptions=True)
        await discard_ids(chunks, taken)
        raise
    give_back()  # every write done, every piece hashed: all of them
    return out, offset, md5_hex


async def discard_ids(chunks: ChunkStore, chunk_ids: list[int]) -> None:
    """Delete chunks, present or not, that no commit will reference (best effort)."""
    for cid in chunk_ids:
        try:
            await chunks.delete(cid)
        except ChunkError:
            pass


async def discard(chunks: ChunkStore, written: Written) -> None:
    """Delete chunks that no commit will reference (best effort: the collector
    finds whatever is left)."""
    for c in written.chunks:
        try:
            await chunks.delete(c.chunk_id)
        except ChunkError:
            pass


@dataclass(slots=True)
class ReadPlan:
    """A snapshot of what to read: extents (in offset order, not overlapping) and the
    chunk infos they need."""

    size: int
    extents: list[Extent]
    infos: dict[int, ChunkInfo]
    starts: list[int] | None = None  # extent offsets, for bisect (built on first use)

    def covering(self, start: int, end: int) -> list[Extent]:
        """The extents that overlap [start, end), unclipped, in order."""
        if self.starts is None:
            self.starts = [e.offset for e in self.extents]
        i = bisect.bisect_right(self.starts, start) - 1
        if i < 0 or self.extents[i].end <= start:
            i += 1
        out = []
        exts = self.extents
        while i < len(exts) and exts[i].offset < end:
            out.append(exts[i])
            i += 1
        return out

    def within(self, start: int, end: int) -> Extent | None:
        """The one extent holding all of [start, end) (start < end), or None (a hole, or
        more than one extent): ``covering`` for a small read, without building a list."""
        starts = self.starts
        if starts is None:
            starts = self.starts = [e.offset for e in self.extents]
        i = bisect.bisect_right(starts, start) - 1
        if i < 0:
            return None
        e = self.extents[i]
        return e if end <= e.offset + e.length else None


def plan(txn: object, ino: int, size: int, start: int, end: int) -> ReadPlan:
    exts = ns.extents(txn, ino, start, end) if end > start else []  # type: ignore[arg-type]
    return ReadPlan(size, exts, _infos(txn, exts))


def _infos(txn: object, exts: Iterable[Extent]) -> dict[int, ChunkInfo]:
    infos: dict[int, ChunkInfo] = {}
    for e in exts:
        if e.chunk_id and e.chunk_id not in infos:
            c = ns.get_chunk(txn, e.chunk_id)  # type: ignore[arg-type]
            if c is None:
                raise DataCorrupt(f"chunk {e.chunk_id:016x} has no metadata record")
            infos[e.chunk_id] = ChunkInfo(e.chunk_id, c[1], c[2])
    return infos


# A cached plan of an open file holds at most this many extents: the whole file up to
# 4 GiB of 4 MiB chunks (one scan per open, ~1 µs an extent), bounded memory beyond.
PLAN_EXTENTS = 1024
# A read outside the cached window loads this many extents from its offset: a random
# reader of a huge file pays a short scan per miss, not a whole window.
MISS_EXTENTS = 64


@dataclass(slots=True)
class CachedPlan:
    """The extents of an open file in [start, stop), valid while its inode record is
    byte for byte the one it was built from. Every change to a file's extents rewrites
    its inode in the same transaction (new size, mtime or ctime), so comparing the
    record (one LMDB get) proves the cached extents current."""

    inode_raw: bytes
    start: int
    stop: int
    plan: ReadPlan
    inode_key: bytes = b""  # the inode's key in the "inode" database

    def covers(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.stop


def cached_plan(txn: object, ino: int, inode_raw: bytes, size: int, start: int, end: int,
                first: bool) -> CachedPlan:
    """Load the extents around [start, end): from the file's start on a first read
    (most files fit whole), else from start; bounded by PLAN_EXTENTS / MISS_EXTENTS."""
    lo = 0 if first else start
    limit = PLAN_EXTENTS if first else MISS_EXTENTS
    exts: list[Extent] = []
    stop = -1  # the window's end when limited; else it runs to the end of the file
    t: Any = txn
    floor = t.floor("extent", extent_key(ino, lo))
    if floor is not None and read_u64(floor[0]) == ino:
        e = decode_extent(read_u64(floor[0], 8), floor[1])
        if e.offset < lo < e.end:
            exts.append(e)
    for key, value in t.range("extent", extent_key(ino, lo), extent_key(ino + 1, 0)):
        if len(exts) >= limit:
            stop = exts[-1].end
            break
        exts.append(decode_extent(read_u64(key, 8), value))
    if stop < 0:
        stop = 1 << 63  # past the last extent: holes up to the size, nothing after
    if stop < end:  # the request itself needs more than the window: cover it exactly
        return CachedPlan(inode_raw, start, end, plan(txn, ino, size, start, end), U64.pack(ino))
    return CachedPlan(inode_raw, lo, stop, ReadPlan(size, exts, _infos(txn, exts)), U64.pack(ino))


async def _fetch(chunks: ChunkStore, p: ReadPlan, e: Extent) -> bytes:
    if e.data is not None:
        return e.data
    try:
        return await chunks.get(p.infos[e.chunk_id], e.chunk_off, e.length)
    except ChunkError as exc:
        raise chunk_errors(exc) from exc


async def _fetch_buffer(chunks: ChunkStore, p: ReadPlan, e: Extent,
                        into: bytearray | None = None) -> bytes | memoryview:
    """_fetch for a stream: the store's own verified buffer, maybe a view (no copy), or
    a view of into when given."""
    try:
        info = p.infos[e.chunk_id]
        if into is not None:
            return await chunks.get_into(info, e.chunk_off, e.length, into)
        return await chunks.get_buffer(info, e.chunk_off, e.length)
    except ChunkError as exc:
        raise chunk_errors(exc) from exc


# Piece buffers one stream keeps for reuse: its read-ahead plus the pieces the consumer
# (a socket's write buffer) may still hold. Beyond that a piece gets a buffer of its own.
RING_BUFFERS = READ_AHEAD + 2
# A piece's covering blocks may start and end up to one block outside it.
RING_BUFFER_SIZE = STREAM_PIECE + 2 * max(BLOCK_SIZES)


class PieceBuffers:
    """Buffers a stream reads its pieces into, each reused only once nothing but this
    ring refers to it: the consumer, a socket transport's pending write, or a read in
    flight all hold a reference (a view of a buffer holds the buffer), so a buffer is
    never overwritten while any of them can still see it. A stream reading just in time
    so cycles through one or two buffers that stay warm in the CPU's cache, instead of an
    allocation per MiB served.

    Relies on CPython's reference counts (sys.getrefcount); elsewhere every piece gets a
    new buffer."""

    __slots__ = ("_ring",)

    def __init__(self) -> None:
        self._ring: list[bytearray] = []

    def take(self) -> bytearray | None:
        """A buffer nobody else refers to, a new one while the ring has room, else None
        (the store then allocates one just for this piece)."""
        ring = self._ring
        for i in range(len(ring)):
            if _getrefcount(ring[i]) == _IDLE_REFS:
                return ring[i]
        if len(ring) < RING_BUFFERS and _getrefcount is not _no_refcount:
            buf = unfilled_buffer(RING_BUFFER_SIZE)
            ring.append(buf)
            return buf
        return None


def _no_refcount(obj: object) -> int:
    return -1


_getrefcount = getattr(sys, "getrefcount", _no_refcount)
# References to an idle ring buffer as getrefcount sees it: the ring's list and the
# call's argument.
_IDLE_REFS = 2


def _pieces(p: ReadPlan, start: int, end: int) -> list[tuple[int, int, Extent | None]]:
    """(offset, length, extent or None for a hole) covering [start, end) in order, each at
    most STREAM_PIECE long: a hole becomes a buffer of zeros, and a sparse file's
    gigabyte hole must not become one gigabyte buffer."""
    out: list[tuple[int, int, Extent | None]] = []
    at = start

    def hole(a: int, b: int) -> None:
        for o in range(a, b, STREAM_PIECE):
            out.append((o, min(STREAM_PIECE, b - o), None))

    for e in p.covering(start, end):
        if e.offset < start or e.end > end:
            e = e.slice(max(e.offset, start), min(e.end, end))
        hole(at, e.offset)
        for o in range(e.offset, e.end, STREAM_PIECE):
            n = min(STREAM_PIECE, e.end - o)
            out.append((o, n, e if n == e.length else e.slice(o, o + n)))
        at = e.end
    hole(at, end)
    return out


async def stream(chunks: ChunkStore, p: ReadPlan, start: int,
                 end: int) -> AsyncIterator[bytes | memoryview]:
    """The bytes [start, end) in order. Pieces may be read-only views of the chunk
    store's buffers or of this stream's own (PieceBuffers): pass them on or copy them,
    never keep a mutable hold.

    A piece the store can read at once (``ChunkStore.get_if_cached``: page-cached local
    chunks) is read and verified just before it is yielded, into a recycled buffer, so
    the consumer's socket copies bytes that are still in the CPU's cache; the first
    piece that would wait starts READ_AHEAD fetches at once, and once they are taken
    the stream tries reading at once again. A store that never reads at once keeps
    READ_AHEAD fetches in flight all along."""
    pieces = _pieces(p, start, end)
    pending: deque[asyncio.Future[bytes | memoryview]] = deque()
    idx = 0
    buffers = PieceBuffers()
    now = chunks.reads_now

    def fill() -> None:
        nonlocal idx
        hint_ahead(chunks, p, [e for _, _, e in pieces[idx:idx + PREFETCH_BYTES // STREAM_PIECE]])
        while idx < len(pieces) and len(pending) < READ_AHEAD:
            _, n, e = pieces[idx]
            if e is None or e.data is not None:
                # A hole or inline bytes: no task (a task costs a loop iteration).
                fut: asyncio.Future[bytes | memoryview] = asyncio.get_running_loop().create_future()
                fut.set_result(bytes(n) if e is None else e.data)  # type: ignore[arg-type]
                pending.append(fut)
            else:
                # Only a store that reads into them gets buffers (the others bring their own).
                into = buffers.take() if now else None
                pending.append(asyncio.ensure_future(_fetch_buffer(chunks, p, e, into)))
            idx += 1

    try:
        while True:
            data: bytes | memoryview | None
            if pending:
                data = await pending.popleft()
                if not now:
                    fill()
            elif idx < len(pieces):
                _, n, e = pieces[idx]
                if e is None:
                    data = bytes(n)
                elif e.data is not None:
                    data = e.data
                elif not now:
                    fill()
                    continue
                else:
                    if idx % PREFETCH_STEP == 0:
                        hint_ahead(chunks, p, [x for _, _, x in pieces[idx:idx + PREFETCH_BYTES // STREAM_PIECE]])
                    data = chunks.get_if_cached(p.infos[e.chunk_id], e.chunk_off, e.length, buffers.take())
                    if data is None:
                        fill()
                        continue
                idx += 1
            else:
                return
            yield data
            del data  # the consumer is done with it: its buffer may be reused
    finally:
        for t in pending:
            t.cancel()


class BlockingPieces:
    """The bytes [start, end) of a plan as numbered pieces that a worker thread of the
    caller's reads one at a time (``read``: may block on the disk), each verified into
    the caller's buffer of ``buffer_size`` bytes: for a sender that overlaps reading
    with sending on threads of its own (gateway/body_threads.py). Only for a store with
    ``ChunkStore.reads_blocking``."""

    __slots__ = ("_chunks", "_plan", "_pieces", "_views")

    buffer_size = RING_BUFFER_SIZE

    def __init__(self, chunks: ChunkStore, p: ReadPlan, start: int, end: int) -> None:
        self._chunks = chunks
        self._plan = p
        self._pieces = _pieces(p, start, end)
        # The block views of each buffer read into (a sender recycles a few): keyed by
        # id, which stays unique because each BlockViews holds its buffer.
        self._views: dict[int, BlockViews] = {}

    def __len__(self) -> int:
        return len(self._pieces)

    def read(self, i: int, buf: bytearray) -> bytes | memoryview:
        """Piece i's bytes, verified: a view of buf, or bytes of their own (holes,
        inline extents). DataCorrupt and the rest of chunk_errors on failure."""
        _, n, e = self._pieces[i]
        if e is None:
            return bytes(n)
        if e.data is not None:
            return e.data
        try:
            views = self._views.get(id(buf))
            if views is None:
                views = self._views[id(buf)] = BlockViews(buf)
            return self._chunks.get_blocking(self._plan.infos[e.chunk_id], e.chunk_off,
                                             e.length, buf, views)
        except ChunkError as exc:
            raise chunk_errors(exc) from exc


def hint_ahead(chunks: ChunkStore, p: ReadPlan, extents: Iterable[Extent | None]) -> None:
    """Tell the store which chunks these extents will read (in order, once each)."""
    seen: dict[int, ChunkInfo] = {}
    for e in extents:
        if e is not None and e.chunk_id and e.chunk_id not in seen and e.chunk_id in p.infos:
            seen[e.chunk_id] = p.infos[e.chunk_id]
    if seen:
        chunks.prefetch(list(seen.values()))


async def read_into(chunks: ChunkStore, p: ReadPlan, start: int, end: int) -> bytearray:
    """The bytes [start, end) as one buffer (for mount reads of bounded size)."""
    buf = bytearray(end - start)
    pieces = [(o, e) for o, _, e in _pieces(p, start, end) if e is not None]
    datas = await asyncio.gather(*(_fetch(chunks, p, e) for _, e in pieces))
    for (o, _), d in zip(pieces, datas):
        buf[o - start:o - start + len(d)] = d
    return buf


async def read_range(chunks: ChunkStore, p: ReadPlan, start: int, end: int,
                     alone: bool = False) -> bytes | bytearray:
    """The bytes [start, end): a read inside one extent (the common mount read) is the
    chunk store's verified buffer itself, without a task or a copy. alone: the caller is
    the only request waiting on the loop (``ChunkStore.get_alone``)."""
    exts = p.covering(start, end)
    if len(exts) == 1:
        e = exts[0]
        if e.offset <= start and end <= e.end:
            # The slice of e that is [start, end), without building it (the hot path of
            # every small mount read).
            at = start - e.offset
            if e.data is not None:
                return e.data[at:at + end - start]
            try:
                if alone:
                    return await chunks.get_alone(p.infos[e.chunk_id], e.chunk_off + at, end - start)
                return await chunks.get(p.infos[e.chunk_id], e.chunk_off + at, end - start)
            except ChunkError as exc:
                raise chunk_errors(exc) from exc
    return await read_into(chunks, p, start, end)


async def overlay(chunks: ChunkStore, w: Written, buf: bytearray, start: int) -> None:
    """Copy the bytes of not-yet-committed extents (in write order) over buf."""
    end = start + len(buf)
    hits = [e.slice(max(e.offset, start), min(e.end, end)) for e in w.extents
            if e.offset < end and e.end > start]
    if not hits:
        return
    infos = {c.chunk_id: c for c in w.chunks}
    p = ReadPlan(0, [], infos)
    datas = await asyncio.gather(*(_fetch(chunks, p, e) for e in hits))
    for e, d in zip(hits, datas):
        buf[e.offset - start:e.offset - start + len(d)] = d
