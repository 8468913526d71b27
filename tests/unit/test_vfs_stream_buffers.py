"""Streaming reads just in time into recycled buffers: ChunkStore.get_if_cached / get_into on
the local store, PieceBuffers, and vfs.data.stream over them (every byte still verified)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from chunkstore import BLOCK_SIZE, ChunkCorrupt, ChunkInfo, LocalChunkStore
from chunkstore.base import span
from gateway.vfs import DataCorrupt, data
from metadata import Extent

B = BLOCK_SIZE
CHUNK = 4 << 20


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalChunkStore]:
    s = LocalChunkStore(tmp_path / "chunks", threads=2)
    yield s
    await s.close()


def flip(store: LocalChunkStore, chunk_id: int, at: int) -> None:
    with open(store.path(chunk_id), "r+b") as f:
        f.seek(at)
        old = f.read(1)
        f.seek(at)
        f.write(bytes([old[0] ^ 0x01]))


async def test_get_if_cached_reads_a_page_cached_range_into_the_callers_buffer(store: LocalChunkStore) -> None:
    body = os.urandom(3 * B + 100)
    info = await store.put(7, body)
    buf = bytearray(span(info, B + 10, B))
    assert store.get_if_cached(info, B + 10, B, buf) is None  # not open yet: that would wait
    assert await store.get(info) == body  # opened, pages cached
    got = store.get_if_cached(info, B + 10, B, buf)
    assert got is not None and bytes(got) == body[B + 10:2 * B + 10]
    assert isinstance(got, memoryview) and got.readonly and got.obj is buf


async def test_get_into_reads_into_the_buffer_or_its_own_when_too_small(store: LocalChunkStore) -> None:
    body = os.urandom(2 * B)
    info = await store.put(8, body)
    buf = bytearray(2 * B)
    got = await store.get_into(info, 5, B, buf)  # a cold read: through a worker thread
    assert bytes(got) == body[5:B + 5] and isinstance(got, memoryview) and got.obj is buf
    small = bytearray(10)
    got = await store.get_into(info, 5, B, small)
    assert bytes(got) == body[5:B + 5] and not (isinstance(got, memoryview) and got.obj is small)


async def test_get_if_cached_and_get_into_never_return_bytes_that_fail_their_checksum(
        store: LocalChunkStore) -> None:
    body = os.urandom(3 * B)
    info = await store.put(9, body)
    assert await store.get(info) == body
    flip(store, 9, B + 3)
    buf = bytearray(3 * B)
    assert store.get_if_cached(info, B, 10, buf) is None  # in doubt: the slow path reports
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get_into(info, B, 10, buf)
    assert ei.value.block == 1
    assert bytes(store.get_if_cached(info, 0, B, buf) or b"") == body[:B]  # its neighbour reads


def test_piece_buffers_hand_out_a_buffer_again_only_when_nothing_refers_to_it() -> None:
    ring = data.PieceBuffers()
    a = ring.take()
    assert a is not None
    first = id(a)
    view = memoryview(a)[:10]  # what a socket's pending write would hold
    del a
    b = ring.take()
    assert b is not None and id(b) != first
    del b
    view.release()
    c = ring.take()
    assert c is not None and id(c) == first  # nothing refers to the first one: reused
    held = [c] + [ring.take() for _ in range(data.RING_BUFFERS - 1)]
    assert all(x is not None for x in held)
    assert len({id(x) for x in held}) == data.RING_BUFFERS
    assert ring.take() is None  # bounded: the store then uses a buffer of its own


async def _chunks(store: LocalChunkStore, n: int) -> tuple[data.ReadPlan, bytes]:
    infos: dict[int, ChunkInfo] = {}
    exts: list[Extent] = []
    parts = []
    for i in range(n):
        body = os.urandom(CHUNK)
        infos[100 + i] = await store.put(100 + i, body)
        exts.append(Extent(i * CHUNK, CHUNK, 100 + i, 0))
        parts.append(body)
    return data.ReadPlan(n * CHUNK, exts, infos), b"".join(parts)


async def test_stream_yields_every_byte_in_order_cold_then_page_cached(store: LocalChunkStore) -> None:
    plan, body = await _chunks(store, 3)
    for _ in range(2):  # first cold (worker reads), then from the page cache (read at once)
        got = bytearray()
        async for piece in data.stream(store, plan, 12345, len(body) - 777):
            got += piece
        assert got == body[12345:len(body) - 777]


async def test_stream_of_page_cached_pieces_recycles_its_buffers(store: LocalChunkStore) -> None:
    plan, body = await _chunks(store, 2)
    async for _ in data.stream(store, plan, 0, len(body)):
        pass
    seen = set()
    at = 0
    async for piece in data.stream(store, plan, 0, len(body)):
        assert isinstance(piece, memoryview)
        assert bytes(piece) == body[at:at + len(piece)]
        at += len(piece)
        seen.add(id(piece.obj))
        del piece
    assert at == len(body)
    assert len(seen) <= 2  # 8 pieces of 1 MiB through one or two buffers


async def test_stream_of_a_page_cached_chunk_with_a_flipped_byte_fails(store: LocalChunkStore) -> None:
    plan, body = await _chunks(store, 2)
    async for _ in data.stream(store, plan, 0, len(body)):
        pass
    flip(store, 101, 3 * B + 1)  # inside the second chunk, in the page cache
    got = bytearray()
    with pytest.raises(DataCorrupt):
        async for piece in data.stream(store, plan, 0, len(body)):
            got += piece
    assert got == body[:len(got)] and len(got) < CHUNK + 3 * B + 1
