"""The chunk store: block checksums as pure functions, and the local-directory backend."""

from __future__ import annotations

import asyncio
import errno
import os
import pickle
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkstore.local as local_mod
from chunkstore import (
    BLOCK_SIZE,
    ChunkCorrupt,
    ChunkError,
    ChunkInfo,
    ChunkMissing,
    ChunkStoreFull,
    LocalChunkStore,
    block_sums,
    chunk_name,
    verify_blocks,
)
from chunkstore.base import SUM_SIZE
from chunkstore.local import remove_stale_temp_files

MiB = 1024 * 1024
BIG_ID = 0xDEADBEEF_00000102




def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def temp_files(root: Path) -> list[Path]:
    return [p for p in all_files(root) if p.name.startswith(".tmp-")]


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalChunkStore]:
    s = LocalChunkStore(tmp_path / "chunks", threads=4)
    yield s
    await s.close()


# --- pure functions -------------------------------------------------------------------


def test_chunk_name_is_16_lower_hex_digits() -> None:
    assert chunk_name(0) == "0000000000000000"
    assert chunk_name(0xABC) == "0000000000000abc"
    assert chunk_name(2**64 - 1) == "ffffffffffffffff"


def test_block_sums_of_empty_data_is_empty() -> None:
    assert block_sums(b"") == b""


@pytest.mark.parametrize("size", [1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE])
def test_block_sums_has_one_big_endian_xxh3_per_block_last_may_be_short(size: int) -> None:
    data = os.urandom(size)
    sums = block_sums(data)
    blocks = [data[i : i + BLOCK_SIZE] for i in range(0, size, BLOCK_SIZE)]
    assert len(sums) == len(blocks) * SUM_SIZE
    assert sums == b"".join(xxhash.xxh3_64_intdigest(b).to_bytes(8, "big") for b in blocks)


def test_block_sums_accepts_bytearray_and_memoryview_of_any_format() -> None:
    data = os.urandom(2 * BLOCK_SIZE + 12)
    expect = block_sums(data)
    assert block_sums(bytearray(data)) == expect
    assert block_sums(memoryview(data)) == expect
    assert block_sums(memoryview(data).cast("I")) == expect  # counts bytes, not items


def test_verify_blocks_accepts_every_whole_block_run_of_the_chunk() -> None:
    data = os.urandom(4 * BLOCK_SIZE + 100)
    sums = block_sums(data)
    nblocks = 5
    for first in range(nblocks):
        for last in range(first, nblocks):
            piece = data[first * BLOCK_SIZE : (last + 1) * BLOCK_SIZE]
            verify_blocks(7, piece, first, sums)
            verify_blocks(7, memoryview(piece), first, sums)


def test_verify_blocks_of_empty_data_checks_nothing() -> None:
    verify_blocks(7, b"", 0, b"")
    verify_blocks(7, b"", 3, block_sums(os.urandom(BLOCK_SIZE)))


def test_verify_blocks_names_chunk_id_and_first_bad_block() -> None:
    data = bytearray(os.urandom(4 * BLOCK_SIZE))
    sums = block_sums(data)
    data[2 * BLOCK_SIZE + 5] ^= 0x01
    data[3 * BLOCK_SIZE + 5] ^= 0x01
    with pytest.raises(ChunkCorrupt) as ei:
        verify_blocks(BIG_ID, bytes(data[BLOCK_SIZE:]), 1, sums)
    assert ei.value.block == 2
    assert ei.value.chunk_id == BIG_ID
    assert chunk_name(BIG_ID) in str(ei.value)
    assert "block 2" in str(ei.value)


def test_verify_blocks_rejects_a_block_at_the_wrong_index() -> None:
    data = os.urandom(3 * BLOCK_SIZE)
    sums = block_sums(data)
    with pytest.raises(ChunkCorrupt) as ei:
        verify_blocks(1, data[:BLOCK_SIZE], 1, sums)
    assert ei.value.block == 1


def test_verify_blocks_rejects_data_past_the_last_block() -> None:
    data = os.urandom(2 * BLOCK_SIZE)
    with pytest.raises(ChunkCorrupt) as ei:
        verify_blocks(1, data + b"x", 0, block_sums(data))
    assert ei.value.block == 2


def test_verify_blocks_rejects_a_short_block_that_is_not_the_last() -> None:
    data = os.urandom(2 * BLOCK_SIZE)
    with pytest.raises(ChunkCorrupt) as ei:
        verify_blocks(1, data[:-1], 0, block_sums(data))
    assert ei.value.block == 1


def test_chunk_errors_pickle_with_chunk_id_errno_and_block() -> None:
    e = ChunkStoreFull(BIG_ID, "writing: No space left", errno=errno.ENOSPC)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ChunkStoreFull
    assert (back.chunk_id, back.errno, str(back)) == (BIG_ID, errno.ENOSPC, str(e))
    c = pickle.loads(pickle.dumps(ChunkCorrupt(BIG_ID, 3, "bad")))
    assert (c.block, str(c)) == (3, f"chunk {chunk_name(BIG_ID)}: block 3: bad")


# --- round trips and layout ----------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "size",
    [0, 1, 100, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 5 * BLOCK_SIZE + 17, 4 * MiB + 1],
)
async def test_put_then_get_returns_the_same_bytes(store: LocalChunkStore, size: int) -> None:
    data = os.urandom(size)
    info = await store.put(BIG_ID, data)
    assert info == ChunkInfo(BIG_ID, size, block_sums(data))
    assert await store.get(info) == data
    assert temp_files(store.root) == []


@pytest.mark.asyncio
async def test_put_accepts_bytearray_and_memoryview(store: LocalChunkStore) -> None:
    data = os.urandom(BLOCK_SIZE + 3)
    a = await store.put(1, bytearray(data))
    b = await store.put(2, memoryview(data))
    assert await store.get(a) == data
    assert await store.get(b) == data


@pytest.mark.asyncio
async def test_a_new_store_records_layout_2_third_byte_then_second_byte(store: LocalChunkStore) -> None:
    await store.put(0x0123456789ABCDEF, b"x")
    # Beside the root, not in it: a file of the data folder (backups carry it).
    assert store.root.with_name("chunks.layout").read_text() == "2\n" and store.layout == 2
    assert all_files(store.root) == [store.root / "ab" / "cd" / "0123456789abcdef"]
    assert store.path(0x0123456789ABCDEF) == store.root / "ab" / "cd" / "0123456789abcdef"


@pytest.mark.asyncio
async def test_sequential_ids_fill_one_directory_256_at_a_time(store: LocalChunkStore) -> None:
    """A young store makes a directory (and fsyncs it into its parents) once per 256
    chunks, not once per chunk; as ids grow they still spread over 65536 directories."""
    ids = [*range(512), 0x10000, 0x20000]
    await asyncio.gather(*(store.put(i, b"x") for i in ids))
    dirs = {p.parent.relative_to(store.root).as_posix() for p in all_files(store.root)}
    assert dirs == {"00/00", "00/01", "01/00", "02/00"}
    assert sorted([cid async for cid, _ in store.ids()]) == ids


@pytest.mark.asyncio
async def test_a_store_made_before_layouts_were_recorded_keeps_layout_1(tmp_path: Path) -> None:
    """Chunk directories and no layout file: the low byte first, as such stores were written;
    every chunk is found where it is, listed, and new ones follow the same layout."""
    root = tmp_path / "chunks"
    root.mkdir()
    layout = tmp_path / "chunks.layout"
    layout.write_text("1\n")
    old = LocalChunkStore(root, threads=2)
    datas = {cid: os.urandom(100 + cid) for cid in (1, 2, 0x0102)}
    infos = [await old.put(cid, d) for cid, d in datas.items()]
    await old.close()
    layout.unlink()  # as an older version left it
    assert {p.parent.relative_to(root).as_posix() for p in all_files(root)} == {"01/00", "02/00", "02/01"}
    reopened = LocalChunkStore(root, threads=2)
    try:
        for info in infos:
            assert await reopened.get(info) == datas[info.chunk_id]
        assert reopened.layout == 1 and not layout.exists()
        assert sorted([cid async for cid, _ in reopened.ids()]) == sorted(datas)
        await reopened.put(0x0203, b"new")
        assert reopened.path(0x0203) == root / "03" / "02" / "0000000000000203"
    finally:
        await reopened.close()


def test_an_unknown_layout_is_refused_not_guessed(tmp_path: Path) -> None:
    root = tmp_path / "chunks"
    (tmp_path / "chunks.layout").write_text("9\n")
    store = LocalChunkStore(root, threads=1)
    with pytest.raises(ChunkError, match="unknown chunk layout"):
        store.path(1)


@pytest.mark.asyncio
async def test_concurrent_puts_into_new_directories_all_read_back(store: LocalChunkStore) -> None:
    datas = {i * 0x10001: os.urandom(1000 + i) for i in range(64)}
    infos = await asyncio.gather(*(store.put(cid, d) for cid, d in datas.items()))
    for info in infos:
        assert await store.get(info) == datas[info.chunk_id]


@pytest.mark.asyncio
async def test_put_same_id_and_bytes_twice_is_idempotent(store: LocalChunkStore) -> None:
    data = os.urandom(3 * BLOCK_SIZE)
    a = await store.put(5, data)
    b = await store.put(5, data)
    assert a == b
    assert await store.get(b) == data
    assert all_files(store.root) == [store.path(5)]


# --- ranged reads --------------------------------------------------------------------

B = BLOCK_SIZE
SIZE = 3 * B + 1000  # three whole blocks and a short last one
RANGES = [
    (0, 1), (5, 100), (B - 1, 1),  # within the first block
    (B, B), (B + 7, 10),  # within a middle block
    (B - 1, 2), (B - 10, B + 20), (0, 2 * B + 1), (1, SIZE - 2),  # straddling blocks
    (3 * B, 1000), (3 * B + 999, 1), (3 * B - 1, 1001), (3 * B + 10, None),  # last short block
    (0, None), (0, SIZE), (SIZE - 1, None),
    (0, 0), (B, 0), (SIZE, 0), (SIZE, None), (3 * B + 500, 0),  # zero length
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("offset", "length"), RANGES)
async def test_ranged_get_returns_exactly_the_requested_slice(
    store: LocalChunkStore, offset: int, length: int | None
) -> None:
    data = os.urandom(SIZE)
    info = await store.put(9, data)
    end = SIZE if length is None else offset + length
    assert await store.get(info, offset, length) == data[offset:end]


@pytest.mark.asyncio
async def test_ranged_get_reads_only_the_covering_blocks(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = await store.put(9, os.urandom(SIZE))
    reads: list[tuple[int, int]] = []
    real, real_v = os.pread, os.preadv

    def spy(fd: int, n: int, pos: int) -> bytes:
        reads.append((n, pos))
        return real(fd, n, pos)

    def spy_v(fd: int, bufs: list[bytearray], pos: int, flags: int = 0) -> int:
        # The page-cached path (preadv with RWF_NOWAIT); a miss falls back to pread.
        n = real_v(fd, bufs, pos, flags)
        if n == sum(len(b) for b in bufs):
            reads.append((n, pos))
        return n

    monkeypatch.setattr(os, "pread", spy)
    monkeypatch.setattr(os, "preadv", spy_v)
    await store.get(info, B + 10, B)  # blocks 1 and 2
    await store.get(info, 3 * B + 1, 5)  # the short last block
    assert reads == [(2 * B, B), (1000, 3 * B)]


@pytest.mark.asyncio
@pytest.mark.parametrize(("offset", "length"), [(-1, None), (SIZE + 1, None), (0, SIZE + 1),
                                                (SIZE, 1), (10, -1), (SIZE - 5, 6)])
async def test_get_outside_the_chunk_raises_value_error(
    store: LocalChunkStore, offset: int, length: int | None
) -> None:
    info = await store.put(9, os.urandom(SIZE))
    with pytest.raises(ValueError):
        await store.get(info, offset, length)


@pytest.mark.asyncio
async def test_get_with_sums_that_do_not_fit_the_size_raises_value_error(
    store: LocalChunkStore,
) -> None:
    info = await store.put(9, os.urandom(SIZE))
    with pytest.raises(ValueError):
        await store.get(ChunkInfo(9, SIZE, info.sums[:-8]))


def test_any_slice_read_equals_the_same_slice_of_the_original(tmp_path: Path) -> None:
    sizes = [1, B - 1, B, B + 1, 2 * B, 3 * B + 1234]
    datas = [os.urandom(n) for n in sizes]
    loop = asyncio.new_event_loop()
    s = LocalChunkStore(tmp_path / "chunks", threads=2)
    try:
        infos = [loop.run_until_complete(s.put(i, d)) for i, d in enumerate(datas)]

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.data())
        def prop(draw: st.DataObject) -> None:
            i = draw.draw(st.integers(0, len(datas) - 1), label="chunk")
            size = sizes[i]
            offset = draw.draw(st.integers(0, size), label="offset")
            length = draw.draw(st.none() | st.integers(0, size - offset), label="length")
            end = size if length is None else offset + length
            got = loop.run_until_complete(s.get(infos[i], offset, length))
            assert got == datas[i][offset:end]
            alone = loop.run_until_complete(s.get_alone(infos[i], offset, length))
            assert alone == datas[i][offset:end]

        prop()
    finally:
        loop.run_until_complete(s.close())
        loop.close()


# --- corruption and absence ----------------------------------------------------------


@pytest.mark.asyncio
async def test_flipped_byte_on_disk_raises_chunk_corrupt_naming_id_and_block(
    store: LocalChunkStore,
) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    with open(store.path(BIG_ID), "r+b") as f:
        f.seek(B + 1234)
        byte = f.read(1)
        f.seek(B + 1234)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get(info)
    assert chunk_name(BIG_ID) in str(ei.value)
    assert ei.value.block == 1 and "block 1" in str(ei.value)
    with pytest.raises(ChunkCorrupt):
        await store.get(info, B + 1234, 1)
    # Untouched blocks still read: a ranged read verifies only what it covers.
    assert await store.get(info, 0, B) == data[:B]
    assert await store.get(info, 2 * B, None) == data[2 * B :]


@pytest.mark.asyncio
async def test_truncated_chunk_file_raises_chunk_corrupt(store: LocalChunkStore) -> None:
    info = await store.put(BIG_ID, os.urandom(SIZE))
    os.truncate(store.path(BIG_ID), SIZE - 1)
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get(info)
    assert chunk_name(BIG_ID) in str(ei.value)
    with pytest.raises(ChunkCorrupt):
        await store.get(info, 0, 10)


@pytest.mark.asyncio
async def test_grown_chunk_file_raises_chunk_corrupt(store: LocalChunkStore) -> None:
    info = await store.put(3, os.urandom(100))
    with open(store.path(3), "ab") as f:
        f.write(b"extra")
    with pytest.raises(ChunkCorrupt):
        await store.get(info)


@pytest.mark.asyncio
async def test_other_bytes_of_the_same_size_raise_chunk_corrupt(store: LocalChunkStore) -> None:
    info = await store.put(3, os.urandom(2 * B))
    store.path(3).write_bytes(os.urandom(2 * B))
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get(info)
    assert ei.value.block == 0


@pytest.mark.asyncio
async def test_missing_chunk_raises_chunk_missing_naming_id(store: LocalChunkStore) -> None:
    info = ChunkInfo(BIG_ID, 10, block_sums(b"0123456789"))
    with pytest.raises(ChunkMissing) as ei:
        await store.get(info)
    assert chunk_name(BIG_ID) in str(ei.value)
    assert isinstance(ei.value, ChunkError)


# --- delete, exists, ids ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_delete_removes_the_chunk_and_is_idempotent(store: LocalChunkStore) -> None:
    info = await store.put(4, b"abc")
    await store.delete(4)
    await store.delete(4)
    await store.delete(12345)  # never existed, directory absent too
    assert not await store.exists(4)
    with pytest.raises(ChunkMissing):
        await store.get(info)


@pytest.mark.asyncio
async def test_exists_is_true_only_for_stored_chunks(store: LocalChunkStore) -> None:
    assert not await store.exists(4)
    await store.put(4, b"abc")
    assert await store.exists(4)
    assert not await store.exists(5)  # same directory, other id


@pytest.mark.asyncio
async def test_ids_lists_exactly_stored_chunks_not_temp_or_stray_files(
    store: LocalChunkStore,
) -> None:
    stored = {0, 1, 0x100, 0x10000, BIG_ID, 2**64 - 1}
    before = time.time()
    for cid in stored | {77}:
        await store.put(cid, b"data")
    await store.delete(77)
    d = store.path(BIG_ID).parent
    (d / f".tmp-{chunk_name(BIG_ID + 1)}-abcd").write_bytes(b"half")
    (d / "notachunk").write_bytes(b"x")
    (d / chunk_name(5)).write_bytes(b"x")  # right name, wrong directory
    (d / chunk_name(BIG_ID).upper()).write_bytes(b"x")  # not canonical
    (store.root / "zz").mkdir()
    (store.root / ".tmp-check-1").write_bytes(b"x")
    got = [item async for item in store.ids()]
    assert sorted(cid for cid, _ in got) == sorted(stored)
    assert all(before - 2 <= mtime <= time.time() + 2 for _, mtime in got)


@pytest.mark.asyncio
async def test_ids_of_a_store_never_written_is_empty(store: LocalChunkStore) -> None:
    assert [item async for item in store.ids()] == []


@pytest.mark.asyncio
async def test_remove_stale_temp_files_removes_only_old_temps(store: LocalChunkStore) -> None:
    await store.put(BIG_ID, b"keep")
    d = store.path(BIG_ID).parent
    old, fresh = d / ".tmp-old", d / ".tmp-fresh"
    old_root = store.root / ".tmp-check-old"
    for p in (old, fresh, old_root):
        p.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(old_root, (hour_ago, hour_ago))
    assert await remove_stale_temp_files(store.root, 600) == 2
    assert not old.exists() and not old_root.exists() and fresh.exists()
    assert store.path(BIG_ID).exists()


# --- atomic, durable put ---------------------------------------------------------------


def fail_with(err: int) -> tuple[Callable[[int], None], list[int]]:
    calls: list[int] = []

    def fake(fd: int) -> None:
        calls.append(fd)
        raise OSError(err, os.strerror(err))

    return fake, calls


def recording(log: list[str], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        log.append(label)
        return fn(*args, **kwargs)

    return wrapper


@pytest.mark.asyncio
@pytest.mark.parametrize(("err", "kind"), [(errno.EIO, ChunkError), (errno.ENOSPC, ChunkStoreFull),
                                           (errno.EDQUOT, ChunkStoreFull)])
async def test_failed_fdatasync_leaves_no_file_and_raises_mapped_error(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch, err: int, kind: type[ChunkError]
) -> None:
    fake, calls = fail_with(err)
    monkeypatch.setattr(os, "fdatasync", fake)
    with pytest.raises(kind) as ei:
        await store.put(BIG_ID, os.urandom(2 * B))
    assert type(ei.value) is kind
    assert ei.value.errno == err
    assert isinstance(ei.value.__cause__, OSError)
    assert chunk_name(BIG_ID) in str(ei.value)
    assert len(calls) == 1  # never retried: a second fsync could falsely succeed
    assert all_files(store.root) == []
    assert not await store.exists(BIG_ID)


@pytest.mark.asyncio
async def test_enospc_mid_write_leaves_no_file_and_raises_chunk_store_full(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    writes: list[int] = []

    def half_then_full(fd: int, data: bytes) -> int:
        writes.append(fd)
        if len(writes) == 1:
            return real(fd, memoryview(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(ChunkStoreFull):
        await store.put(7, os.urandom(4 * B))
    assert len(writes) == 2
    assert all_files(store.root) == []


@pytest.mark.asyncio
async def test_failed_rename_leaves_no_temp_and_keeps_errno(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ChunkError) as ei:
        await store.put(7, b"abc")
    assert type(ei.value) is ChunkError and ei.value.errno == errno.EROFS
    assert all_files(store.root) == []


@pytest.mark.asyncio
async def test_eio_on_directory_fsync_raises_chunk_error_without_retry(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put(7, b"first")  # creates the directories, so only the put's own fsync runs
    fake, calls = fail_with(errno.EIO)
    monkeypatch.setattr(os, "fsync", fake)
    with pytest.raises(ChunkError) as ei:
        await store.put(8, b"second")  # the same directory
    assert type(ei.value) is ChunkError and ei.value.errno == errno.EIO
    assert len(calls) == 1
    assert temp_files(store.root) == []


@pytest.mark.asyncio
async def test_failed_put_over_an_existing_chunk_keeps_the_old_bytes(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(B + 1)
    info = await store.put(7, data)
    monkeypatch.setattr(os, "fdatasync", fail_with(errno.EIO)[0])
    with pytest.raises(ChunkError):
        await store.put(7, data)
    monkeypatch.undo()
    assert await store.get(info) == data
    assert temp_files(store.root) == []


@pytest.mark.asyncio
async def test_put_syncs_file_and_directory_before_returning(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put(7, b"first")
    events: list[str] = []
    for name, label in (("fdatasync", "fdatasync"), ("fsync", "fsync"), ("replace", "rename")):
        monkeypatch.setattr(os, name, recording(events, label, getattr(os, name)))
    await store.put(8, b"second")  # the same directory
    assert events == ["fdatasync", "rename", "fsync"]


def fsynced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the path of every fd that os.fsync is called on, in order."""
    synced: list[str] = []
    real_open, real_fsync = os.open, os.fsync
    fd_paths: dict[int, str] = {}

    def spy_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        fd_paths[fd] = str(path)
        return fd

    def spy_fsync(fd: int) -> None:
        synced.append(fd_paths.get(fd, "?"))
        real_fsync(fd)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    return synced


@pytest.mark.asyncio
async def test_new_directories_are_fsynced_into_their_parents(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = fsynced_paths(monkeypatch)
    await store.put(0x010201, b"x")
    root = store.root
    assert synced[-4:-1] == [str(root.parent), str(root), str(root / "01")]
    assert synced[-1] == str(root / "01" / "02")


@pytest.mark.asyncio
async def test_put_hashes_and_writes_in_one_call_on_the_store_pool(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[tuple[str, str]] = []
    real_sums, real_fdatasync = local_mod.block_sums, os.fdatasync

    def sums_spy(data: bytes | bytearray | memoryview) -> bytes:
        threads.append(("sums", threading.current_thread().name))
        return real_sums(data)

    def sync_spy(fd: int) -> None:
        threads.append(("sync", threading.current_thread().name))
        real_fdatasync(fd)

    monkeypatch.setattr(local_mod, "block_sums", sums_spy)
    monkeypatch.setattr(os, "fdatasync", sync_spy)
    await store.put(1, b"abc")
    (k1, t1), (k2, t2) = threads
    assert (k1, k2) == ("sums", "sync")
    assert t1 == t2 and t1.startswith("chunkstore-local")


# --- store-level behaviour --------------------------------------------------------------


@pytest.mark.asyncio
async def test_check_passes_on_a_writable_store_and_leaves_nothing(store: LocalChunkStore) -> None:
    await store.check()
    assert list(store.root.iterdir()) == []


@pytest.mark.asyncio
async def test_check_and_put_raise_chunk_error_when_root_is_unusable(tmp_path: Path) -> None:
    root = tmp_path / "chunks"
    root.write_bytes(b"not a directory")
    s = LocalChunkStore(root)
    try:
        with pytest.raises(ChunkError) as ei:
            await s.check()
        assert ei.value.errno is not None and ei.value.chunk_id is None
        with pytest.raises(ChunkError) as ei:
            await s.put(1, b"x")
        assert ei.value.errno is not None
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_closed_store_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    s = LocalChunkStore(tmp_path)
    await s.close()
    await s.close()
    with pytest.raises(RuntimeError):
        await s.put(1, b"x")


# --- a real full disk -----------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="chunkstore-tmpfs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        d.rmdir()
        reason = f"cannot mount a 1 MiB tmpfs: {(r.stderr or r.stdout).strip()}"
        print(reason)
        pytest.skip(reason)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.asyncio
async def test_full_disk_raises_chunk_store_full_and_earlier_chunks_survive(
    tiny_tmpfs: Path,
) -> None:
    s = LocalChunkStore(tiny_tmpfs / "chunks")
    try:
        datas = {i: os.urandom(100 * 1024) for i in range(3)}
        infos = [await s.put(i, d) for i, d in datas.items()]
        with pytest.raises(ChunkStoreFull) as ei:
            await s.put(99, os.urandom(2 * MiB))
        assert ei.value.errno == errno.ENOSPC
        assert chunk_name(99) in str(ei.value)
        assert temp_files(s.root) == []
        assert not await s.exists(99)
        for info in infos:
            assert await s.get(info) == datas[info.chunk_id]
        await s.check()  # the failed put gave its space back
        assert await s.get(await s.put(100, b"after")) == b"after"
    finally:
        await s.close()


# --- open chunk files kept for reuse ------------------------------------------------------


def open_fds_on(path: Path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.asyncio
async def test_a_byte_flipped_after_the_chunk_was_read_is_still_caught(store: LocalChunkStore) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    assert await store.get(info) == data  # opened and kept open, pages cached
    assert await store.get(info, B, 10) == data[B:B + 10]  # the page-cached path
    with open(store.path(BIG_ID), "r+b") as f:
        f.seek(B + 5)
        f.write(bytes([data[B + 5] ^ 0x01]))
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get(info, B, 10)
    assert ei.value.block == 1
    assert await store.get(info, 0, B) == data[:B]


@pytest.mark.asyncio
async def test_a_chunk_truncated_after_it_was_read_raises_chunk_corrupt(store: LocalChunkStore) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    assert await store.get(info) == data
    os.truncate(store.path(BIG_ID), B)
    with pytest.raises(ChunkCorrupt):
        await store.get(info, 2 * B, 10)


@pytest.mark.asyncio
async def test_a_deleted_chunk_is_missing_even_after_it_was_read(store: LocalChunkStore) -> None:
    info = await store.put(4, os.urandom(2 * B))
    await store.get(info)
    await store.delete(4)
    assert open_fds_on(store.path(4)) == 0
    with pytest.raises(ChunkMissing):
        await store.get(info)


@pytest.mark.asyncio
async def test_open_chunk_files_are_bounded_and_closed_with_the_store(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import chunkstore.open_chunks as oc
    monkeypatch.setattr(oc, "_default_limit", lambda: 3)
    s = LocalChunkStore(tmp_path / "chunks", threads=2)
    datas = {i: os.urandom(B + i) for i in range(1, 9)}
    infos = {i: await s.put(i, d) for i, d in datas.items()}
    for _ in range(2):
        got = await asyncio.gather(*(s.get(infos[i]) for i in datas))
        assert got == list(datas.values())
    assert sum(open_fds_on(s.path(i)) for i in datas) <= 3
    await s.close()
    assert sum(open_fds_on(s.path(i)) for i in datas) == 0


@pytest.mark.asyncio
async def test_prefetch_hint_is_harmless_for_missing_and_present_chunks(store: LocalChunkStore) -> None:
    data = os.urandom(SIZE)
    info = await store.put(7, data)
    store.prefetch([info, ChunkInfo(8, 10, block_sums(b"0123456789"))])
    for _ in range(100):  # the hint runs on the store's pool; its effect is only speed
        if open_fds_on(store.path(7)):
            break
        await asyncio.sleep(0.02)
    assert await store.get(info, 3, 100) == data[3:103]
    with pytest.raises(ChunkMissing):
        await store.get(ChunkInfo(8, 10, block_sums(b"0123456789")))


@pytest.mark.asyncio
async def test_put_unsynced_flushes_nothing_until_sync_flushes_each_chunk_and_directory_once(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [0x010101, 0x010102, 0x020202]  # two share a directory
    for cid in ids:
        await store.put(cid + 0x10, b"makes the directories")  # the slow path fsyncs
    events: list[str] = []
    for name in ("fdatasync", "fsync"):
        monkeypatch.setattr(os, name, recording(events, name, getattr(os, name)))
    infos = [await store.put_unsynced(cid, b"payload %d" % cid) for cid in ids]
    assert events == []  # written and renamed into place, nothing flushed
    assert [await store.get(i) for i in infos] == [b"payload %d" % cid for cid in ids]
    await store.sync(ids)
    assert sorted(events) == ["fdatasync"] * 3 + ["fsync"] * 2


@pytest.mark.asyncio
async def test_sync_of_a_chunk_that_is_not_there_is_an_error_naming_it(
    store: LocalChunkStore,
) -> None:
    with pytest.raises(ChunkError, match=chunk_name(0xABC)):
        await store.sync([0xABC])


@pytest.mark.asyncio
async def test_new_directories_of_unsynced_puts_are_fsynced_into_their_parents_by_sync(
    store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.path(0)  # the first use records the store's layout (durably, so with fsyncs)
    synced = fsynced_paths(monkeypatch)
    await store.put_unsynced(0x010301, b"x")
    assert synced == []
    await store.put(0x010302, b"y")  # a durable put into the same new directory waits
    root = store.root
    assert synced[:3] == [str(root.parent), str(root), str(root / "01")]
    synced.clear()
    await store.put_unsynced(0x020402, b"z")
    await store.sync([0x020402])
    assert synced == [str(root.parent), str(root), str(root / "02"), str(root / "02" / "04")]


# --- get_alone: a lone reader's read on the event loop ---------------------------------


def _record_threads(store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread each chunk file read of the store runs in, in order."""
    seen: list[str] = []
    real = store._read_blocks  # where the loop's and the workers' reads both go

    def spy(*args: Any) -> bytes:
        seen.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(store, "_read_blocks", spy)
    return seen


@pytest.mark.asyncio
async def test_get_alone_reads_a_small_range_on_the_loop_thread(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    seen = _record_threads(store, monkeypatch)
    assert await store.get_alone(info, B + 10, 4096) == data[B + 10:B + 10 + 4096]
    assert await store.get_alone(info, 3 * B, None) == data[3 * B:]  # the short last block
    assert seen == [threading.current_thread().name] * 2


@pytest.mark.asyncio
async def test_get_alone_verifies_like_get_corrupt_truncated_and_missing_chunks_fail(
        store: LocalChunkStore) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    with open(store.path(BIG_ID), "r+b") as f:
        f.seek(2 * B + 7)
        f.write(bytes([data[2 * B + 7] ^ 0x01]))
    with pytest.raises(ChunkCorrupt) as ei:
        await store.get_alone(info, 2 * B + 4000, 10)  # the flipped byte is outside the range
    assert ei.value.block == 2 and chunk_name(BIG_ID) in str(ei.value)
    assert await store.get_alone(info, B, 10) == data[B:B + 10]  # other blocks still read

    other = await store.put(5, os.urandom(2 * B))
    os.truncate(store.path(5), B + 3)
    with pytest.raises(ChunkCorrupt):
        await store.get_alone(other, 0, 10)
    with pytest.raises(ChunkMissing):
        await store.get_alone(ChunkInfo(6, 10, block_sums(b"0123456789")), 0, 10)
    with pytest.raises(ValueError):
        await store.get_alone(info, SIZE, 1)


@pytest.mark.asyncio
async def test_get_alone_sends_large_reads_to_the_workers(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(local_mod.SMALL_READ + B)
    info = await store.put(7, data)
    store._fds.forget(7)  # not open: the page-cache path cannot serve it on the loop
    seen = _record_threads(store, monkeypatch)
    assert await store.get_alone(info, 0, len(data)) == data
    assert seen and seen[0] != threading.current_thread().name


@pytest.mark.asyncio
async def test_get_alone_uses_the_workers_while_the_disk_is_slow_and_again_once_fast(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    seen = _record_threads(store, monkeypatch)
    loop_thread = threading.current_thread().name
    monkeypatch.setattr(local_mod, "SLOW_READ", 1e-12)  # any read that took time is slow
    await store.get_alone(info, 0, 10)  # this one was judged before any read: on the loop
    store._fds.forget(BIG_ID)  # so that the page-cache path does not serve the next ones
    for _ in range(3):
        assert await store.get_alone(info, B, 10) == data[B:B + 10]
        store._fds.forget(BIG_ID)
    assert seen[0] == loop_thread and all(t != loop_thread for t in seen[1:]), seen
    monkeypatch.setattr(local_mod, "SLOW_READ", 3600.0)  # the disk is fast again
    del seen[:]
    assert await store.get_alone(info, B, 10) == data[B:B + 10]
    assert seen == [loop_thread]


@pytest.mark.asyncio
async def test_get_alone_uses_the_workers_while_other_reads_wait_for_the_disk(
        store: LocalChunkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(SIZE)
    info = await store.put(BIG_ID, data)
    seen = _record_threads(store, monkeypatch)
    gate = threading.Event()
    real = store._get_sync

    def held(*args: Any) -> bytes:
        if threading.current_thread().name != loop_thread:
            gate.wait(30)  # a read stuck on the disk in a worker
        return real(*args)

    loop_thread = threading.current_thread().name
    monkeypatch.setattr(store, "_get_sync", held)
    store._fds.forget(BIG_ID)
    stuck = asyncio.ensure_future(store.get(info, 0, 10))
    for _ in range(200):
        if store._reading:
            break
        await asyncio.sleep(0.01)
    lone = asyncio.ensure_future(store.get_alone(info, B, 10))
    await asyncio.sleep(0.05)
    gate.set()
    assert await stuck == data[:10] and await lone == data[B:B + 10]
    assert loop_thread not in seen


def test_chunk_info_equality_ignores_the_cached_block_size() -> None:
    a = ChunkInfo(1, 2 * B, block_sums(bytes(2 * B)))
    b = ChunkInfo(1, 2 * B, block_sums(bytes(2 * B)))
    assert a.block_size == B
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert pickle.loads(pickle.dumps(a)) == a



async def test_get_blocking_reads_into_the_callers_buffer_and_verifies_with_its_block_views(
        store: LocalChunkStore) -> None:
    from chunkstore.base import block_sums, span
    from chunkstore.buffers import BlockViews

    data = os.urandom(3 * MiB + 1000)  # a short last block
    info = await store.put(BIG_ID, data)
    assert store.reads_blocking
    buf = bytearray(2 * MiB)
    views = BlockViews(buf)
    for offset, length in [(0, MiB), (5, MiB - 5), (3 * MiB - 7, 1007), (2 * MiB + 1, 1000)]:
        assert span(info, offset, length) <= len(buf)
        got = await asyncio.to_thread(store.get_blocking, info, offset, length, buf, views)
        assert bytes(got) == data[offset:offset + length]
        assert isinstance(got, memoryview) and got.obj is buf  # no copy
    # The views give the same sums as slicing, a short last block included.
    tail = memoryview(bytearray(data[2 * MiB:]))
    assert block_sums(tail, info.block_size, BlockViews(tail.obj).of(info.block_size)) == \
        block_sums(tail, info.block_size)
    with open(store.path(BIG_ID), "r+b") as f:
        f.seek(MiB + 4096 * 3 + 9)
        byte = f.read(1)
        f.seek(MiB + 4096 * 3 + 9)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ChunkCorrupt) as ei:
        await asyncio.to_thread(store.get_blocking, info, MiB, MiB, buf, views)
    assert ei.value.block == (MiB + 4096 * 3) // info.block_size
