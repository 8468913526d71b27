"""A stored stream's chunk buffers: page-aligned, recycled through the pool only once
their chunk is written and their bytes hashed, written with O_DIRECT by the local store
(buffered when the file system or disk refuses it), and nothing left behind when the
body or the MD5 fails."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import mmap
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chunkstore import LocalChunkStore
from chunkstore import buffers as buffers_mod
from chunkstore import local as local_mod
from chunkstore.buffers import BufferPool, page_aligned
from gateway.vfs import Filesystem
from gateway.vfs import data as data_mod
from gateway.vfs.hashing import HashStream

# Big enough for the local store's O_DIRECT path (DIRECT_MIN), small enough that a
# body spans many chunks.
CHUNK = 256 * 1024


async def pieces_of(body: bytes, size: int = 7 * 1024 + 13,
                    pause: float = 0) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at:at + size]
        await asyncio.sleep(pause)


async def stored_bytes(fs: Filesystem, written: data_mod.Written) -> bytes:
    """The body as the extents put it together (chunks finish in any order)."""
    infos = {c.chunk_id: c for c in written.chunks}
    out = bytearray()
    for e in sorted(written.extents, key=lambda e: e.offset):
        assert e.offset == len(out)
        out += e.data if e.data is not None else await fs.chunks.get(infos[e.chunk_id])
    return bytes(out)


def chunk_files(fs: Filesystem) -> list[Path]:
    root = Path(fs.chunks.root)  # type: ignore[attr-defined]
    return [p for p in root.rglob("*") if p.is_file()]


class CountingPool(BufferPool):
    def __init__(self) -> None:
        super().__init__()
        self.fresh = 0

    def take(self, size: int) -> mmap.mmap:
        before = sum(len(v) for v in self._free.values())
        buf = super().take(size)
        if sum(len(v) for v in self._free.values()) == before:
            self.fresh += 1
        return buf


class SlowMd5:
    """hashlib.md5 that takes its time in the worker thread: the hash trails the body
    and the chunk writes by several chunks."""

    def __init__(self) -> None:
        self._h = hashlib.md5()

    def update(self, data: Any) -> None:
        time.sleep(0.008)
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class SlowMd5Stream(HashStream):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(SlowMd5())


async def test_a_streamed_put_reuses_its_buffers_and_stores_every_byte(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = CountingPool()
    monkeypatch.setattr(data_mod, "buffer_pool", pool)
    body = os.urandom(20 * CHUNK + 12345)
    written, size, md5 = await asyncio.wait_for(
        data_mod.store_stream(fs.chunks, fs.ids, CHUNK, pieces_of(body)), 60)
    assert size == len(body) and md5 == hashlib.md5(body).hexdigest()
    assert await stored_bytes(fs, written) == body
    # 21 chunks: the buffers came back and went out again instead of 21 fresh ones. At
    # most a window of writes, a window of hashing and the one being filled are out.
    assert pool.fresh <= 2 * data_mod.WRITE_AHEAD + 2
    assert sum(len(v) for v in pool._free.values()) >= 1  # given back at the end


async def test_a_pooled_buffer_is_not_refilled_before_the_md5_has_read_it(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_mod, "buffer_pool", BufferPool())
    monkeypatch.setattr(data_mod, "Md5Stream", SlowMd5Stream)
    # Many slow hash steps, each above the size HashStream hashes inline on the loop.
    monkeypatch.setattr(data_mod, "MD5_SEGMENT", 128 * 1024)
    # A wide window, so that the hash falls behind the chunk writes by many chunks (the
    # body arrives faster than it is hashed, but slower than chunks are written).
    monkeypatch.setattr(data_mod, "WRITE_AHEAD", 16)
    body = os.urandom(12 * CHUNK + 777)
    written, size, md5 = await asyncio.wait_for(
        data_mod.store_stream(fs.chunks, fs.ids, CHUNK, pieces_of(body, 64 * 1024, 0.002)), 120)
    # A buffer recycled while its bytes still waited for the hash would have been
    # overwritten by a later chunk: a wrong MD5.
    assert md5 == hashlib.md5(body).hexdigest()
    assert await stored_bytes(fs, written) == body


async def test_a_pooled_buffer_is_not_refilled_while_its_chunk_write_runs(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_mod, "buffer_pool", BufferPool())
    body = os.urandom(12 * CHUNK)
    expected = {body[at:at + CHUNK] for at in range(0, len(body), CHUNK)}
    real = fs.chunks.put
    seen: list[bool] = []

    async def slow_put(cid: int, data: Any) -> Any:
        before = bytes(data)
        await asyncio.sleep(0.02)  # the body keeps arriving meanwhile
        seen.append(bytes(data) == before and before in expected)
        return await real(cid, data)

    fs.chunks.put = slow_put  # type: ignore[method-assign]
    written, size, md5 = await asyncio.wait_for(
        data_mod.store_stream(fs.chunks, fs.ids, CHUNK, pieces_of(body)), 60)
    assert seen == [True] * 12
    assert md5 == hashlib.md5(body).hexdigest()


async def test_an_md5_that_fails_fails_the_put_and_stores_nothing(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        calls = 0

        def update(self, data: Any) -> None:
            Broken.calls += 1
            if Broken.calls == 5:
                raise MemoryError("hash worker failed")

        def hexdigest(self) -> str:
            return "0" * 32

    class BrokenStream(HashStream):
        __slots__ = ()

        def __init__(self) -> None:
            super().__init__(Broken())

    monkeypatch.setattr(data_mod, "Md5Stream", BrokenStream)
    body = os.urandom(10 * CHUNK)
    with pytest.raises(MemoryError, match="hash worker failed"):
        await asyncio.wait_for(
            data_mod.store_stream(fs.chunks, fs.ids, CHUNK, pieces_of(body)), 60)
    assert chunk_files(fs) == []


async def test_a_body_that_fails_midway_stores_nothing_and_leaves_no_thread(
        fs: Filesystem) -> None:
    warm = os.urandom(3 * CHUNK)  # starts the hash and chunk worker threads
    await data_mod.store_stream(fs.chunks, fs.ids, CHUNK, pieces_of(warm))
    threads = threading.active_count()
    kept = set(chunk_files(fs))

    async def broken() -> AsyncIterator[bytes]:
        body = os.urandom(5 * CHUNK + 100)
        async for piece in pieces_of(body):
            yield piece
        raise ConnectionResetError("client went away")

    for _ in range(3):
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(
                data_mod.store_stream(fs.chunks, fs.ids, CHUNK, broken()), 60)
    assert set(chunk_files(fs)) == kept
    # Only the fixed pools' workers (grown on demand up to their bounds), no thread
    # per upload or per failure.
    names = [t.name for t in threading.enumerate()]
    assert len([n for n in names if n.startswith("md5")]) <= (os.cpu_count() or 2)
    assert len([n for n in names if n.startswith("chunkstore-local")]) <= 8
    assert len(names) <= threads + 8


def test_pool_buffers_start_on_a_page_and_only_a_few_idle_ones_are_kept() -> None:
    pool = BufferPool(idle_bytes=2 * CHUNK)
    bufs = [pool.take(CHUNK) for _ in range(4)]
    assert all(page_aligned(memoryview(b)) for b in bufs)
    assert not page_aligned(memoryview(bufs[0])[1:])
    assert not page_aligned(memoryview(bytes(CHUNK)))  # read-only: never taken as aligned
    for b in bufs:
        pool.give(b)
    assert bufs[0].closed is False and bufs[1].closed is False
    assert bufs[2].closed and bufs[3].closed  # beyond the idle bound: unmapped
    assert pool.take(CHUNK) is bufs[1]


# --- the local store's O_DIRECT writes ---------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalChunkStore]:
    s = LocalChunkStore(tmp_path / "chunks")
    try:
        yield s
    finally:
        await s.close()


def opened_flags(monkeypatch: pytest.MonkeyPatch, refuse_direct: bool = False) -> list[int]:
    flags_seen: list[int] = []
    real = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if isinstance(path, str) and path.startswith(local_mod.TEMP_PREFIX):
            flags_seen.append(flags)
            if refuse_direct and flags & os.O_DIRECT:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return flags_seen


def aligned_copy(data: bytes) -> memoryview:
    buf = mmap.mmap(-1, len(data) + (-len(data)) % mmap.PAGESIZE)
    view = memoryview(buf)[:len(data)]
    view[:] = data
    return view


@pytest.mark.parametrize("size", [local_mod.DIRECT_MIN, 1024 * 1024 + 4096 * 3 + 123])
async def test_a_chunk_from_an_aligned_buffer_is_written_direct_and_reads_back(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    flags = opened_flags(monkeypatch)
    data = os.urandom(size)
    info = await store.put(7, aligned_copy(data))
    assert flags and flags[0] & os.O_DIRECT
    assert await store.get(info) == data
    assert store.path(7).stat().st_size == size


async def test_unaligned_small_or_unsynced_chunks_are_written_through_the_page_cache(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = opened_flags(monkeypatch)
    big = os.urandom(local_mod.DIRECT_MIN + 5000)
    unaligned = memoryview(bytearray(b"x" + big))[1:]
    await store.put(1, unaligned)
    await store.put(2, aligned_copy(big[:local_mod.DIRECT_MIN - 4096]))
    info = await store.put_unsynced(3, aligned_copy(big))
    await store.sync([3])
    assert [f & os.O_DIRECT for f in flags] == [0, 0, 0]
    assert await store.get(info) == big


async def test_a_file_system_without_o_direct_gets_buffered_writes(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = opened_flags(monkeypatch, refuse_direct=True)
    data = os.urandom(2 * local_mod.DIRECT_MIN)
    infos = [await store.put(cid, aligned_copy(data)) for cid in (1, 2)]
    # Refused once, then not asked again.
    assert [bool(f & os.O_DIRECT) for f in flags] == [True, False, False]
    for info in infos:
        assert await store.get(info) == data


async def test_a_direct_write_the_disk_refuses_is_finished_buffered(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    refused: list[int] = []

    def picky(fd: int, data: Any) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(os, "write", picky)
    data = os.urandom(local_mod.DIRECT_MIN + 999)
    info = await store.put(9, aligned_copy(data))
    assert len(refused) == 1
    assert await store.get(info) == data
    assert store._direct is False


async def test_a_failed_direct_write_leaves_no_file(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    from chunkstore import ChunkStoreFull
    with pytest.raises(ChunkStoreFull):
        await store.put(9, aligned_copy(os.urandom(local_mod.DIRECT_MIN)))
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_the_module_pool_is_what_stored_streams_use() -> None:
    assert data_mod.buffer_pool is buffers_mod.pool


async def test_a_direct_written_chunk_is_read_back_into_the_page_cache_after_its_fsync(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_sync, real_advise = os.fdatasync, os.posix_fadvise

    def sync(fd: int) -> None:
        events.append("fdatasync")
        real_sync(fd)

    def advise(fd: int, offset: int, length: int, advice: int) -> None:
        events.append(f"advise {offset} {length} {advice == os.POSIX_FADV_WILLNEED}")
        real_advise(fd, offset, length, advice)

    monkeypatch.setattr(os, "fdatasync", sync)
    monkeypatch.setattr(os, "posix_fadvise", advise)
    size = local_mod.DIRECT_MIN + 10
    await store.put(1, aligned_copy(os.urandom(size)))
    await store.put(2, os.urandom(size))  # buffered: already in the page cache
    assert events == ["fdatasync", f"advise 0 {size} True", "fdatasync"]


@pytest.mark.parametrize("size", [0, 1, data_mod.FIRST_BUFFER, data_mod.FIRST_BUFFER + 1,
                                  CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
async def test_bodies_around_the_buffer_sizes_store_exactly_their_bytes(
        fs: Filesystem, size: int) -> None:
    body = os.urandom(size)
    written, got_size, md5 = await data_mod.store_stream(
        fs.chunks, fs.ids, CHUNK, pieces_of(body, 50_000))
    assert got_size == size and md5 == hashlib.md5(body).hexdigest()
    assert await stored_bytes(fs, written) == body
