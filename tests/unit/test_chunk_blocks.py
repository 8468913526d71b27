"""Checksum block size: what a ranged read of a cold chunk reads, corruption found at the
block size, and chunks written with the former 16 KiB and 64 KiB blocks still reading (the
block size of a chunk is implied by its size and its number of sums).

What the store reads is taken from /proc/self/io ``rchar`` (bytes this process's read
syscalls returned): a kernel counter, not a spy on our own code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from chunkstore import BLOCK_SIZE, ChunkCorrupt, ChunkInfo, LocalChunkStore, block_sums
from chunkstore.base import BLOCK_SIZES, SUM_SIZE, block_size_of
from gateway.vfs import ROOT, Filesystem
from gateway.vfs.fsck import fsck
from metadata import ROOT_INO
from metadata import namespace as ns
from metadata.schema import decode_chunk, encode_chunk, u64

KiB = 1024
OLD_BLOCK = 64 * KiB
OLD_BLOCKS = (16 * KiB, OLD_BLOCK)  # what former versions wrote
CHUNK = 4 * 1024 * KiB


def rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def drop_cached(path: Path) -> None:
    """Evict the (clean, fdatasync'd) chunk file's pages: the next read goes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalChunkStore]:
    s = LocalChunkStore(tmp_path / "chunks", threads=2)
    yield s
    await s.close()


async def read_counting(store: LocalChunkStore, info: ChunkInfo, offset: int,
                        length: int) -> tuple[bytes, int]:
    before = rchar()
    got = await store.get(info, offset, length)
    return got, rchar() - before


# --- the block size a chunk was written with ---------------------------------------------


def test_new_chunks_get_4k_blocks_and_every_former_size_is_readable() -> None:
    assert BLOCK_SIZE == 4 * KiB
    assert BLOCK_SIZES == (4 * KiB, *OLD_BLOCKS)


def test_each_readable_block_size_is_at_least_twice_the_one_before() -> None:
    # What makes the block size implied by (size, number of sums) unambiguous.
    assert list(BLOCK_SIZES) == sorted(BLOCK_SIZES) and BLOCK_SIZE in BLOCK_SIZES
    assert all(b >= 2 * a for a, b in zip(BLOCK_SIZES, BLOCK_SIZES[1:]))


@pytest.mark.parametrize("size", [0, 1, 4 * KiB - 1, 4 * KiB, 4 * KiB + 1, 9 * KiB, 16 * KiB - 1, 16 * KiB, 16 * KiB + 1, 20 * KiB,
                                  OLD_BLOCK, OLD_BLOCK + 1, 100 * KiB, 3 * OLD_BLOCK + 7, CHUNK])
@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_the_block_size_is_implied_by_size_and_sum_count(size: int, block: int) -> None:
    nsums = -(-size // block)
    found = block_size_of(1, size, nsums * SUM_SIZE)
    if nsums > 1:
        assert found == block
    else:  # one block (or none) is the whole chunk, whatever its nominal size
        assert found >= size and -(-size // found) == nsums


@pytest.mark.parametrize("size,nsums", [(100 * KiB, 3), (CHUNK, 65), (10, 2), (0, 1)])
def test_sums_that_fit_no_block_size_are_refused(size: int, nsums: int) -> None:
    with pytest.raises(ValueError, match="bytes of sums"):
        block_size_of(1, size, nsums * SUM_SIZE)
    with pytest.raises(ValueError):
        ChunkInfo(1, size, bytes(nsums * SUM_SIZE)).block_size
    with pytest.raises(ValueError):
        block_size_of(1, size, 8 * nsums + 3)  # not whole sums


# --- the local store ------------------------------------------------------------------------


async def test_a_cold_4k_read_reads_and_verifies_only_its_4k_block(store: LocalChunkStore) -> None:
    data = os.urandom(CHUNK)
    info = await store.put(3, data)
    assert info.block_size == 4 * KiB and len(info.sums) == (CHUNK // (4 * KiB)) * SUM_SIZE
    drop_cached(store.path(3))
    off = 100 * KiB  # block 25: [100 KiB, 104 KiB), a page as a mount's reader asks for it
    got, read = await read_counting(store, info, off, 4 * KiB)
    assert got == data[off:off + 4 * KiB]
    assert 4 * KiB <= read < 2 * 4 * KiB, read  # one block, not the 16 or 64 KiB of old
    # Now open: a part of the next block costs that block, still not more.
    got, read = await read_counting(store, info, off + 4 * KiB + 100, 1000)
    assert got == data[off + 4 * KiB + 100:off + 4 * KiB + 1100]
    assert 4 * KiB <= read < 2 * 4 * KiB, read


async def test_a_read_spanning_two_blocks_reads_exactly_those_two(store: LocalChunkStore) -> None:
    data = os.urandom(CHUNK)
    info = await store.put(4, data)
    drop_cached(store.path(4))
    off = 8 * KiB - 2 * KiB  # the last 2 KiB of block 1 and the first 2 KiB of block 2
    got, read = await read_counting(store, info, off, 4 * KiB)
    assert got == data[off:off + 4 * KiB]
    assert 2 * 4 * KiB <= read < 3 * 4 * KiB, read


async def test_a_flipped_byte_fails_only_its_4k_block(store: LocalChunkStore) -> None:
    data = os.urandom(CHUNK)
    info = await store.put(5, data)
    path = store.path(5)
    raw = bytearray(path.read_bytes())
    raw[5 * 4 * KiB + 3] ^= 0x01
    path.write_bytes(raw)
    fresh = LocalChunkStore(store.root, threads=1)  # no descriptor or cache of the old file
    try:
        with pytest.raises(ChunkCorrupt) as e:
            await fresh.get(info, 5 * 4 * KiB + 2 * KiB, 1 * KiB)  # block 5, not the byte
        assert e.value.chunk_id == 5 and e.value.block == 5
        # Its neighbours in the same old 16 KiB span still read: the granularity is 4 KiB.
        assert await fresh.get(info, 4 * 4 * KiB, 4 * KiB) == data[4 * 4 * KiB:5 * 4 * KiB]
        assert await fresh.get(info, 6 * 4 * KiB, 4 * KiB) == data[6 * 4 * KiB:7 * 4 * KiB]
        with pytest.raises(ChunkCorrupt):
            await fresh.get(info)
    finally:
        await fresh.close()


@pytest.mark.parametrize("old_block", OLD_BLOCKS)
async def test_a_chunk_with_former_block_sums_still_reads_and_finds_corruption(
        store: LocalChunkStore, old_block: int) -> None:
    data = os.urandom(CHUNK - 1000)  # a short last block too
    await store.put(6, data)
    old = ChunkInfo(6, len(data), block_sums(data, old_block))  # as a former write recorded it
    assert old.block_size == old_block and len(old.sums) == (CHUNK // old_block) * SUM_SIZE
    assert await store.get(old) == data
    drop_cached(store.path(6))
    off = 3 * old_block + 70
    got, read = await read_counting(store, old, off, 4 * KiB)
    assert got == data[off:off + 4 * KiB]
    assert old_block <= read < 2 * old_block, read  # its whole (old) block is verified
    assert await store.get(old, len(data) - 10, 10) == data[-10:]

    path = store.path(6)
    raw = bytearray(path.read_bytes())
    raw[2 * old_block + 9] ^= 0x80
    path.write_bytes(raw)
    fresh = LocalChunkStore(store.root, threads=1)
    try:
        with pytest.raises(ChunkCorrupt) as e:
            await fresh.get(old, 2 * old_block + old_block // 2, 4 * KiB)
        assert e.value.block == 2  # counted in the chunk's own (old) blocks
        assert await fresh.get(old, old_block, 4 * KiB) == data[old_block:old_block + 4 * KiB]
    finally:
        await fresh.close()


# --- a data folder written with 64 KiB and 16 KiB blocks ------------------------------------


async def test_a_data_folder_with_former_block_records_reads_and_fscks(tmp_path: Path) -> None:
    """Chunk records as former versions wrote them (64 KiB- and 16 KiB-block sums) next to
    new ones: the file reads through the vfs, fsck --verify passes, and a flipped byte in
    an old chunk is still found."""
    fs = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK)
    await fs.start()
    try:
        body = os.urandom(3 * CHUNK - 5000)
        f = await fs.create(ROOT, ROOT_INO, b"old")
        h = await fs.open(ROOT, f.ino, os.O_WRONLY)
        await fs.write(h.fh, 0, body)
        await fs.release(h.fh)
        with fs.meta.read() as txn:
            ids = [e.chunk_id for e in ns.extents(txn, f.ino) if e.chunk_id]
        assert len(ids) == 3
        old_ids = ids[:2]  # the first two chunks become "old format"; the third stays new

        def rewrite(txn: object) -> None:
            for cid, old_block in zip(old_ids, (OLD_BLOCK, 16 * KiB)):
                refs, size, _ = decode_chunk(txn.get("chunk", u64(cid)))  # type: ignore[attr-defined]
                chunk_bytes = fs.chunks.path(cid).read_bytes()  # type: ignore[attr-defined]
                txn.put("chunk", u64(cid),  # type: ignore[attr-defined]
                        encode_chunk(refs, size, block_sums(chunk_bytes, old_block)))

        await fs.meta.write(rewrite)
    finally:
        await fs.aclose()

    fs = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK)
    await fs.start()
    try:
        with fs.meta.read() as txn:
            sizes = [len(decode_chunk(txn.get("chunk", u64(cid)))[2]) for cid in ids]
        # 64 KiB, 16 KiB and (new) 4 KiB blocks
        assert sizes == [64 * SUM_SIZE, 256 * SUM_SIZE, -(-(CHUNK - 5000) // (4 * KiB)) * SUM_SIZE]
        h = await fs.open(ROOT, f.ino, os.O_RDONLY)
        for off in (0, 5, OLD_BLOCK - 3, CHUNK - 2 * KiB, CHUNK + 777, CHUNK + 16 * KiB - 1,
                    2 * CHUNK + 100, 2 * CHUNK + 4 * KiB):
            assert await fs.read(h.fh, off, 4 * KiB) == body[off:off + 4 * KiB]
        whole = bytearray()
        for off in range(0, len(body), 1 << 20):
            whole += await fs.read(h.fh, off, 1 << 20)
        assert whole == body
        await fs.release(h.fh)
        report = await fsck(fs, verify=True)
        assert report.clean and report.chunks_verified == 3

        path = fs.chunks.path(old_ids[1])  # type: ignore[attr-defined]
        raw = bytearray(path.read_bytes())
        raw[3 * OLD_BLOCK + 1] ^= 0x01
        path.write_bytes(raw)
        report = await fsck(fs, verify=True)
        assert [(x.kind, x.chunk) for x in report.findings] == [("chunk-corrupt", old_ids[1])]
    finally:
        await fs.aclose()


# --- the read workers -----------------------------------------------------------------------


async def test_a_worker_call_returns_its_result_or_raises_its_exception() -> None:
    import threading

    from chunkstore.workers import Workers

    w = Workers(2, "test-workers")
    try:
        here = threading.get_ident()
        assert await w.run(lambda a, b: (a + b, threading.get_ident() != here), 2, 3) == (5, True)
        with pytest.raises(ChunkCorrupt, match="block 7"):
            await w.run(lambda: (_ for _ in ()).throw(ChunkCorrupt(1, 7, "bad")))
    finally:
        await asyncio.get_running_loop().run_in_executor(None, w.close)


async def test_a_cancelled_read_leaves_the_workers_serving_and_close_waits_for_calls() -> None:
    import threading

    from chunkstore.workers import Workers

    w = Workers(1, "test-workers")
    gate = threading.Event()
    done: list[int] = []
    slow = asyncio.ensure_future(w.run(lambda: (gate.wait(30), done.append(1))))
    await asyncio.sleep(0)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    gate.set()
    assert await w.run(lambda: 42) == 42  # the one thread finished the abandoned call
    gate2 = threading.Event()
    last = asyncio.ensure_future(w.run(lambda: (gate2.wait(30), done.append(2))))
    await asyncio.sleep(0)
    closing = asyncio.get_running_loop().run_in_executor(None, w.close)
    gate2.set()
    await closing  # returns only once the queued call ran
    assert done == [1, 2]
    await last
