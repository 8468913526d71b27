"""A size-bounded local disk cache of whole chunks in front of a remote chunk store.

Files live in root/xx/<016x id> and the index (id -> size, in least-recently-used
order) is rebuilt from them at start, so the cache survives restarts. Only verified
bytes enter: a miss fetches the WHOLE chunk from the backend (which verifies it against
the chunk's sums) and hands it to its readers, then writes it here in the background;
freshly written chunks are written through. A
hit is verified again on read (disks rot too): a bad or truncated file is dropped and
the chunk fetched again. Nothing here is fsynced: a file lost or torn by a crash is
caught by the verify and costs one re-fetch.

Concurrent misses for the same chunk share one fetch, which is also what read-ahead
uses: ``prefetch`` starts fetches of the chunks a sequential reader will want next.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .base import (
    ChunkCorrupt,
    ChunkError,
    ChunkInfo,
    ChunkStore,
    block_count,
    chunk_name,
    covering_range,
    verify_blocks,
)
from .s3 import S3ChunkStore, Segment

log = logging.getLogger(__name__)
TEMP_PREFIX = ".tmp-"
# Background fetches started by prefetch at once (each holds one chunk in memory).
PREFETCH_MAX = 8
# Whole chunks just fetched, kept in memory: a streaming reader takes a chunk in several
# pieces, and read-ahead fetches chunks before the reader gets there; without this each
# piece would be another backend round-trip (or disk read) of the whole chunk.
RECENT_MAX = PREFETCH_MAX + 4
# Fetched chunks are kept as pieces of this size (read-only views of the buffer the chunk
# was received into): a streaming reader (gateway/vfs/data.py reads 1 MiB pieces) then
# gets each piece as it is (get_buffer) instead of a fresh copy sliced out of the chunk.
SEGMENT = 1 << 20


class CachedChunkStore(ChunkStore):
    """backend + local cache of at most max_bytes; max_bytes == 0 turns the cache off
    (reads still get verified whole-chunk fetches and prefetch)."""

    def __init__(self, backend: S3ChunkStore, root: Path, max_bytes: int) -> None:
        self.write_ahead = backend.write_ahead
        self.backend = backend
        self.name = backend.name
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._index: OrderedDict[int, int] = OrderedDict()
        self._bytes = 0
        self._fetching: dict[int, asyncio.Task[list[Segment]]] = {}
        self._prefetching: set[int] = set()
        self._writing: dict[int, asyncio.Task[None]] = {}  # cache files being written
        self._recent: OrderedDict[int, list[Segment]] = OrderedDict()  # verified segments
        self._loaded = False
        self._load_lock = asyncio.Lock()

    # --- the index -------------------------------------------------------------------

    def path(self, chunk_id: int) -> Path:
        return self.root / f"{chunk_id & 0xFF:02x}" / chunk_name(chunk_id)

    async def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        async with self._load_lock:
            if not self._loaded:
                found = await asyncio.to_thread(_scan, self.root)
                for cid, size in found:
                    self._index[cid] = size
                    self._bytes += size
                self._loaded = True
                await self._evict()

    def _remember(self, chunk_id: int, size: int) -> None:
        old = self._index.pop(chunk_id, None)
        if old is not None:
            self._bytes -= old
        self._index[chunk_id] = size
        self._bytes += size

    def _forget(self, chunk_id: int) -> None:
        size = self._index.pop(chunk_id, None)
        if size is not None:
            self._bytes -= size

    async def _evict(self) -> None:
        victims: list[int] = []
        while self._bytes > self.max_bytes and self._index:
            cid, size = self._index.popitem(last=False)
            self._bytes -= size
            victims.append(cid)
        if victims:
            await asyncio.to_thread(_unlink_all, [self.path(c) for c in victims])

    async def _store(self, chunk_id: int, pieces: list[Segment] | list[bytes | bytearray | memoryview]) -> None:
        """Add verified bytes (in pieces, written in order) to the cache (best effort: a
        full local disk only costs re-fetches)."""
        size = sum(len(p) for p in pieces)
        if self.max_bytes <= 0 or size > self.max_bytes:
            return
        await self._ensure_loaded()
        try:
            await asyncio.to_thread(_write_file, self.path(chunk_id), pieces)
        except OSError as e:
            log.warning("cache: cannot keep chunk %s: %s", chunk_name(chunk_id), e)
            return
        self._remember(chunk_id, size)
        await self._evict()

    def cached_bytes(self) -> int:
        return self._bytes

    # --- the chunk store interface ---------------------------------------------------

    async def put(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        info = await self.backend.put(chunk_id, data)
        # Write-through: a chunk just written is the one most likely read next. _store
        # writes the buffer as it is (no copy; with the cache off, nothing at all).
        await self._store(chunk_id, [data])
        return info

    async def get(self, info: ChunkInfo, offset: int = 0, length: int | None = None) -> bytes:
        got = await self.get_buffer(info, offset, length)
        return got if isinstance(got, bytes) else bytes(got)

    async def get_buffer(self, info: ChunkInfo, offset: int = 0,
                         length: int | None = None) -> bytes | memoryview:
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        recent = self._recent.get(info.chunk_id)
        if recent is not None:  # verified when fetched
            self._recent.move_to_end(info.chunk_id)
            return _cut(recent, start, end)
        if self.max_bytes > 0:
            await self._ensure_loaded()
            if info.chunk_id in self._index:
                got = await self._read_cached(info, first_block, start, end)
                if got is not None:
                    return got
        # shield: one reader giving up must not cancel a fetch others are waiting on.
        segments = await asyncio.shield(self._fetch(info))
        return _cut(segments, start, end)

    async def _read_cached(self, info: ChunkInfo, first_block: int, start: int,
                           end: int) -> bytes | None:
        cid = info.chunk_id
        block = info.block_size
        pos = first_block * block
        stop = min(block_count(end, block) * block, info.size)
        try:
            buf = await asyncio.to_thread(_read_range, self.path(cid), pos, stop, info.size)
            verify_blocks(cid, buf, first_block, info.sums, block)
        except (OSError, ChunkCorrupt) as e:
            log.warning("cache: dropping chunk %s: %s", chunk_name(cid), e)
            self._forget(cid)
            await asyncio.to_thread(_unlink_all, [self.path(cid)])
            return None
        if cid in self._index:  # a concurrent reader may have dropped it meanwhile
            self._index.move_to_end(cid)
        return buf[start - pos:end - pos]

    def _fetch(self, info: ChunkInfo) -> asyncio.Task[list[Segment]]:
        """The one in-flight whole-chunk fetch for info (started if none)."""
        task = self._fetching.get(info.chunk_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch_whole(info))
            self._fetching[info.chunk_id] = task
            task.add_done_callback(lambda _t, c=info.chunk_id: self._fetching.pop(c, None))
        return task

    async def _fetch_whole(self, info: ChunkInfo) -> list[Segment]:
        segments = await self.backend.fetch_segments(info, 0, info.size, SEGMENT)
        # Verified above: neither tier is ever poisoned by a bad fetch.
        self._recent[info.chunk_id] = segments
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)
        # The disk copy is written beside the readers, not before them: they get the
        # segments now, the cache file follows in the background.
        self._store_later(info.chunk_id, segments)
        return segments

    def _store_later(self, chunk_id: int, segments: list[Segment]) -> None:
        if self.max_bytes <= 0 or chunk_id in self._writing:
            return
        task = asyncio.ensure_future(self._store(chunk_id, segments))
        self._writing[chunk_id] = task

        def done(t: asyncio.Task[None], c: int = chunk_id) -> None:
            if self._writing.get(c) is t:
                del self._writing[c]
            if not t.cancelled() and t.exception() is not None:
                log.warning("cache: cannot keep chunk %s: %s", chunk_name(c), t.exception())

        task.add_done_callback(done)

    def prefetch(self, infos: list[ChunkInfo]) -> None:
        """Start fetching these chunks in the background (read-ahead); errors are left
        for the real read to meet."""
        if self.max_bytes > 0 and not self._loaded:
            return  # the index is not known yet: every chunk would look like a miss
        for info in infos:
            cid = info.chunk_id
            if (cid in self._index or cid in self._recent or cid in self._fetching
                    or cid in self._prefetching
                    or len(self._prefetching) >= PREFETCH_MAX or info.size == 0):
                continue
            self._prefetching.add(cid)
            task = self._fetch(info)

            def done(t: asyncio.Task[list[Segment]], c: int = cid) -> None:
                self._prefetching.discard(c)
                if not t.cancelled():
                    t.exception()  # mark retrieved: the reader will see it again itself

            task.add_done_callback(done)

    async def delete(self, chunk_id: int) -> None:
        writing = self._writing.get(chunk_id)
        if writing is not None:  # let it finish, then remove what it wrote
            await asyncio.gather(writing, return_exceptions=True)
        self._recent.pop(chunk_id, None)
        self._forget(chunk_id)
        await asyncio.to_thread(_unlink_all, [self.path(chunk_id)])
        await self.backend.delete(chunk_id)

    async def exists(self, chunk_id: int) -> bool:
        return await self.backend.exists(chunk_id)

    def ids(self) -> AsyncIterator[tuple[int, float]]:
        return self.backend.ids()

    def sized_ids(self) -> AsyncIterator[tuple[int, float, int | None]]:
        return self.backend.sized_ids()

    async def check(self) -> None:
        await self.backend.check()

    async def close(self) -> None:
        for t in list(self._fetching.values()):
            t.cancel()
        await asyncio.gather(*self._fetching.values(), return_exceptions=True)
        # Cache files being written are finished, not cut: a restart then finds them.
        await asyncio.gather(*self._writing.values(), return_exceptions=True)
        await self.backend.close()


def _cut(segments: list[Segment], start: int, end: int) -> bytes | memoryview:
    """Bytes [start, end) of a chunk held as SEGMENT-sized pieces: within one piece, that
    piece or a slice of it (a view when the pieces are views: no copy), else one copy of
    the covered range."""
    first, last = start // SEGMENT, (end - 1) // SEGMENT
    off = start - first * SEGMENT
    if first == last:
        seg = segments[first]
        return seg if off == 0 and end - start == len(seg) else seg[off:off + end - start]
    views = [memoryview(s) for s in segments[first:last + 1]]
    views[-1] = views[-1][:end - last * SEGMENT]
    views[0] = views[0][off:]
    return b"".join(views)


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _libc_sync_file_range()  # Linux; Python's os module lacks it
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Queue a file's dirty pages for writing, without waiting for them."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # advisory: errors ignored


def _write_file(path: Path, pieces: list[Segment] | list[bytes | bytearray | memoryview]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.writelines(pieces)
            f.flush()
            # Start the writeback now, without waiting for it: a first read that fills
            # the cache would otherwise leave its dirty pages to be flushed later, on
            # the CPU and disk the next reads need. (Not a durability promise: the
            # cache is verified on every read and may lose files in a crash.)
            _start_writeback(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_range(path: Path, pos: int, stop: int, size: int) -> bytes:
    with open(path, "rb") as f:
        actual = os.fstat(f.fileno()).st_size
        if actual != size:
            raise OSError(f"cached file is {actual} bytes, expected {size}")
        f.seek(pos)
        buf = f.read(stop - pos)
    if len(buf) != stop - pos:
        raise OSError("cached file shrank while read")
    return buf


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def _scan(root: Path) -> list[tuple[int, int]]:
    """Cached chunks, least recently used first (by atime, else mtime); leftover
    temporary files of a crashed write are removed."""
    found: list[tuple[float, int, int]] = []
    try:
        tops = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    for top in tops:
        with os.scandir(top.path) as it:
            for e in it:
                if e.name.startswith(TEMP_PREFIX):
                    _unlink_all([Path(e.path)])
                    continue
                try:
                    cid = int(e.name, 16)
                    st = e.stat(follow_symlinks=False)
                except (ValueError, OSError):
                    continue
                if chunk_name(cid) != e.name:
                    continue
                found.append((max(st.st_atime, st.st_mtime), cid, st.st_size))
    found.sort()
    return [(cid, size) for _, cid, size in found]


__all__ = ["CachedChunkStore", "ChunkError"]
