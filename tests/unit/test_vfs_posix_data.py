"""POSIX half of the vfs, file data: open/read/write through the shared write buffer,
inline vs chunked storage, sparse files, O_APPEND/O_TRUNC, truncation, a random
model check, unlink of open files and garbage collection. ETags and the object
view of the same bytes are in test_vfs_posix_views.py.

Real LMDB + local chunk store in tmp_path; chunk_size is 64 KiB so that files span
many chunks and writes cross chunk boundaries.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import stat
import time
from pathlib import Path

import pytest

from gateway.vfs import (
    ROOT, UTIME_NOW, Caller, Filesystem, FsError, IsDir, NotFound, collect,
)
from metadata import INLINE_MAX, ROOT_INO
from metadata import namespace as ns

CHUNK = 64 * 1024
ALICE = Caller(1000, 1000)


def chunk_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "data" / "chunks"
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def extents_of(fs: Filesystem, ino: int) -> list:
    with fs.meta.read() as txn:
        return ns.extents(txn, ino)


def chunk_ids_of(fs: Filesystem, ino: int) -> set[int]:
    return {e.chunk_id for e in extents_of(fs, ino) if e.chunk_id}


def trash_count(fs: Filesystem) -> int:
    with fs.meta.read() as txn:
        return txn.count("trash")


async def new_file(fs: Filesystem, name: bytes = b"f", parent: int = ROOT_INO) -> int:
    return (await fs.create(ROOT, parent, name)).ino


async def write_file(fs: Filesystem, parent: int, name: bytes, data: bytes) -> int:
    ino = await new_file(fs, name, parent)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, data)
    await fs.release(h.fh)
    return ino


async def read_all(fs: Filesystem, ino: int) -> bytes:
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        return await fs.read(h.fh, 0, (await fs.getattr(ino)).size + 100)
    finally:
        await fs.release(h.fh)


def apply(model: bytearray, offset: int, payload: bytes) -> None:
    if offset > len(model):
        model.extend(bytes(offset - len(model)))
    model[offset:offset + len(payload)] = payload


# -- read / write / flush -------------------------------------------------------------------------

async def test_writes_at_offsets_are_read_back_through_the_same_handle_before_flush(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    await fs.write(h.fh, 0, b"hello world")
    await fs.write(h.fh, 6, b"WORLD")
    await fs.write(h.fh, 11, b"!")
    assert await fs.read(h.fh, 0, 100) == b"hello WORLD!"
    assert await fs.read(h.fh, 3, 4) == b"lo W"
    assert await fs.read(h.fh, 12, 10) == b""  # at EOF
    assert (await fs.getattr(ino)).size == 12  # getattr sees unflushed size
    await fs.release(h.fh)


async def test_another_handle_reads_unflushed_writes_of_the_first(fs: Filesystem) -> None:
    ino = await new_file(fs)
    w = await fs.open(ROOT, ino, os.O_WRONLY)
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    data = os.urandom(2 * CHUNK + 123)  # spills a chunk's worth before any flush
    await fs.write(w.fh, 0, data)
    assert await fs.read(r.fh, 0, len(data) + 10) == data
    assert await fs.read(r.fh, CHUNK - 5, 10) == data[CHUNK - 5:CHUNK + 5]
    await fs.write(w.fh, 10, b"ABC")
    assert await fs.read(r.fh, 8, 7) == data[8:10] + b"ABC" + data[13:15]
    await fs.release(w.fh)
    await fs.release(r.fh)


async def test_flushed_data_is_read_after_flush_release_and_reopen(fs: Filesystem) -> None:
    ino = await new_file(fs)
    data = os.urandom(100_000)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    await fs.write(h.fh, 0, data)
    await fs.flush(h.fh)
    assert (await fs.getattr(ino)).size == len(data)
    assert await fs.read(h.fh, 0, len(data)) == data
    await fs.write(h.fh, 50_000, b"x" * 10)
    await fs.fsync(h.fh)
    expect = bytearray(data)
    expect[50_000:50_010] = b"x" * 10
    await fs.release(h.fh)
    assert not fs.is_open(ino)
    assert await read_all(fs, ino) == expect
    assert (await fs.getattr(ino)).size == len(data)


async def test_close_to_open_a_fresh_filesystem_reads_what_was_released(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 7)
    a = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK)
    await a.start()
    ino = await write_file(a, ROOT_INO, b"f", data)
    await a.aclose()
    b = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK)
    await b.start()
    try:
        assert (await b.lookup(ROOT, ROOT_INO, b"f")).ino == ino
        assert await read_all(b, ino) == data
    finally:
        await b.aclose()


async def test_write_on_a_read_only_handle_and_read_on_a_write_only_handle_raise_ebadf(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"abc")
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    w = await fs.open(ROOT, ino, os.O_WRONLY)
    with pytest.raises(FsError) as ei:
        await fs.write(r.fh, 0, b"x")
    assert ei.value.errno == errno.EBADF
    with pytest.raises(FsError) as ei:
        await fs.read(w.fh, 0, 3)
    assert ei.value.errno == errno.EBADF
    await fs.release(r.fh)
    await fs.release(w.fh)
    with pytest.raises(FsError) as ei:
        await fs.read(r.fh, 0, 3)  # released handle
    assert ei.value.errno == errno.EBADF
    assert await read_all(fs, ino) == b"abc"


async def test_opening_a_directory_for_writing_raises_is_dir(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    with pytest.raises(IsDir):
        await fs.open(ROOT, d.ino, os.O_WRONLY)
    with pytest.raises(IsDir):
        await fs.open(ROOT, d.ino, os.O_RDWR)


async def test_write_at_a_negative_offset_is_invalid(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    with pytest.raises(FsError) as ei:
        await fs.write(h.fh, -1, b"x")
    assert ei.value.errno == errno.EINVAL
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).size == 0


async def test_write_updates_mtime_when_flushed(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"abc")
    await fs.setattr(ROOT, ino, mtime_ns=1_000_000_000)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 3, b"def")
    assert (await fs.getattr(ino)).mtime_ns > 1_000_000_000  # visible before the flush
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).mtime_ns > 1_000_000_000


async def test_explicit_mtime_set_on_an_open_file_after_writing_survives_close(fs: Filesystem) -> None:
    # cp -p / tar: write, then futimens on the same fd, then close.
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"content")
    stamp = 1_500_000_000_123_456_789
    await fs.setattr(ROOT, ino, atime_ns=stamp, mtime_ns=stamp)
    assert (await fs.getattr(ino)).mtime_ns == stamp
    await fs.release(h.fh)
    got = await fs.getattr(ino)
    assert got.mtime_ns == stamp
    assert got.atime_ns == stamp


async def test_zero_length_write_past_eof_does_not_extend_the_file(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"abc")
    assert await fs.write(h.fh, 1_000_000, b"") == 0
    assert (await fs.getattr(ino)).size == 3
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).size == 3
    assert await read_all(fs, ino) == b"abc"


# -- inline vs chunks ----------------------------------------------------------------------------

async def test_a_write_of_inline_max_bytes_is_stored_inline_without_chunk_files(
        fs: Filesystem, tmp_path: Path) -> None:
    data = os.urandom(INLINE_MAX)
    ino = await write_file(fs, ROOT_INO, b"small", data)
    exts = extents_of(fs, ino)
    assert len(exts) == 1
    assert exts[0].chunk_id == 0 and exts[0].data == data
    assert chunk_files(tmp_path) == []
    assert await read_all(fs, ino) == data


async def test_a_write_one_byte_over_inline_max_is_stored_as_a_chunk(
        fs: Filesystem, tmp_path: Path) -> None:
    data = os.urandom(INLINE_MAX + 1)
    ino = await write_file(fs, ROOT_INO, b"big", data)
    exts = extents_of(fs, ino)
    assert len(exts) == 1
    assert exts[0].chunk_id != 0 and exts[0].data is None
    assert len(chunk_files(tmp_path)) == 1
    assert await fs.chunks.exists(exts[0].chunk_id)
    assert await read_all(fs, ino) == data


async def test_a_file_larger_than_several_chunks_round_trips_at_odd_boundaries(
        fs: Filesystem, tmp_path: Path) -> None:
    data = os.urandom(10 * CHUNK + 12_345)
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    for at in range(0, len(data), 7777):  # sequential, unaligned pieces
        await fs.write(h.fh, at, data[at:at + 7777])
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).size == len(data)
    assert len(chunk_ids_of(fs, ino)) >= 10
    assert len(chunk_files(tmp_path)) >= 10
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    for start, n in [(0, len(data)), (CHUNK - 1, 2), (CHUNK, CHUNK), (3 * CHUNK - 100, 2 * CHUNK + 200),
                     (len(data) - 10, 100), (5 * CHUNK + 17, 1)]:
        assert await fs.read(h.fh, start, n) == data[start:start + n], (start, n)
    await fs.release(h.fh)


# -- sparse files -------------------------------------------------------------------------------

async def test_holes_read_as_zeros_before_and_after_flush(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    await fs.write(h.fh, 0, b"head")
    far = 5 * CHUNK + 333
    await fs.write(h.fh, far, b"tail")
    expect = b"head" + bytes(far - 4) + b"tail"
    assert (await fs.getattr(ino)).size == far + 4
    assert await fs.read(h.fh, 0, far + 100) == expect
    await fs.flush(h.fh)
    assert await fs.read(h.fh, 0, far + 100) == expect
    await fs.release(h.fh)
    assert await read_all(fs, ino) == expect
    # the hole costs no chunks: both ends are inline
    assert chunk_ids_of(fs, ino) == set()


async def test_writing_far_past_eof_of_a_chunked_file_leaves_a_zero_gap(fs: Filesystem) -> None:
    data = os.urandom(CHUNK + 20_000)
    ino = await write_file(fs, ROOT_INO, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    tail = os.urandom(30_000)
    at = 40 * CHUNK + 1
    await fs.write(h.fh, at, tail)
    await fs.release(h.fh)
    got = await read_all(fs, ino)
    assert len(got) == at + len(tail)
    assert got[:len(data)] == data
    assert got[len(data):at] == bytes(at - len(data))
    assert got[at:] == tail


# -- O_APPEND / O_TRUNC ---------------------------------------------------------------------------

async def test_o_append_writes_at_the_end_whatever_the_offset(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"log", b"one\n")
    a = await fs.open(ROOT, ino, os.O_WRONLY | os.O_APPEND)
    b = await fs.open(ROOT, ino, os.O_WRONLY | os.O_APPEND)
    await fs.write(a.fh, 0, b"two\n")
    await fs.write(b.fh, 0, b"three\n")
    await fs.write(a.fh, 2, b"four\n")
    await fs.release(a.fh)
    await fs.release(b.fh)
    assert await read_all(fs, ino) == b"one\ntwo\nthree\nfour\n"


async def test_o_trunc_empties_the_file_and_frees_its_chunks(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", os.urandom(3 * CHUNK))
    old_chunks = chunk_ids_of(fs, ino)
    assert len(old_chunks) == 3
    h = await fs.open(ROOT, ino, os.O_WRONLY | os.O_TRUNC)
    assert (await fs.getattr(ino)).size == 0
    await fs.write(h.fh, 0, b"new")
    await fs.release(h.fh)
    assert await read_all(fs, ino) == b"new"
    assert trash_count(fs) == 3
    assert chunk_ids_of(fs, ino) == set()


# -- overwrite in the middle, random model ----------------------------------------------------------

async def test_overwrite_across_chunk_boundaries_of_a_multi_chunk_file(fs: Filesystem) -> None:
    model = bytearray(os.urandom(5 * CHUNK + 1000))
    ino = await write_file(fs, ROOT_INO, b"f", bytes(model))
    h = await fs.open(ROOT, ino, os.O_RDWR)
    for at, n in [(CHUNK - 10, 20), (2 * CHUNK - 30_000, 70_000), (100, 5), (4 * CHUNK, CHUNK + 1000)]:
        payload = os.urandom(n)
        await fs.write(h.fh, at, payload)
        apply(model, at, payload)
        assert await fs.read(h.fh, 0, len(model) + 1) == model  # before flush
    await fs.flush(h.fh)
    assert await fs.read(h.fh, 0, len(model) + 1) == model
    await fs.release(h.fh)
    assert await read_all(fs, ino) == model
    assert (await fs.getattr(ino)).size == len(model)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_random_writes_truncates_and_flushes_match_a_bytearray_model(fs: Filesystem, seed: int) -> None:
    rng = random.Random(seed)
    ino = await new_file(fs)
    model = bytearray()
    w = await fs.open(ROOT, ino, os.O_RDWR)
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    limit = 6 * CHUNK
    for step in range(160):
        op = rng.random()
        if op < 0.5:
            at = rng.randrange(0, min(len(model) + 2 * CHUNK, limit))
            n = rng.choice([1, 3, 100, 4096, INLINE_MAX, INLINE_MAX + 1, CHUNK - 1, CHUNK + 1,
                            rng.randrange(1, 2 * CHUNK)])
            payload = rng.randbytes(n)
            assert await fs.write(w.fh, at, payload) == n
            apply(model, at, payload)
        elif op < 0.6:
            size = rng.randrange(0, len(model) + CHUNK)
            await fs.setattr(ROOT, ino, size=size)
            del model[size:]
            model.extend(bytes(size - len(model)))
        elif op < 0.7:
            await fs.flush(w.fh)
        elif op < 0.75:
            await fs.release(w.fh)
            await fs.release(r.fh)
            assert not fs.is_open(ino)
            w = await fs.open(ROOT, ino, os.O_RDWR)
            r = await fs.open(ROOT, ino, os.O_RDONLY)
        else:
            start = rng.randrange(0, len(model) + 10)
            n = rng.randrange(0, 3 * CHUNK)
            h = rng.choice([w, r])
            got = await fs.read(h.fh, start, n)
            assert got == bytes(model[start:start + n]), (seed, step, start, n)
        assert (await fs.getattr(ino)).size == len(model), (seed, step)
    assert await fs.read(r.fh, 0, len(model) + 1) == model
    await fs.release(w.fh)
    await fs.release(r.fh)
    assert await read_all(fs, ino) == model


# -- truncate ----------------------------------------------------------------------------------------

async def test_truncate_down_then_up_reads_zeros_in_the_regrown_part(fs: Filesystem) -> None:
    data = os.urandom(4 * CHUNK + 500)
    ino = await write_file(fs, ROOT_INO, b"f", data)
    cut = CHUNK + 12_345  # in the middle of the second chunk
    got = await fs.setattr(ROOT, ino, size=cut)
    assert got.size == cut
    assert await read_all(fs, ino) == data[:cut]
    # chunks 2 and 3 are wholly cut off (the 500-byte tail was inline, no chunk);
    # chunk 1 is still partly referenced
    assert trash_count(fs) == 2
    got = await fs.setattr(ROOT, ino, size=3 * CHUNK)
    assert got.size == 3 * CHUNK
    assert await read_all(fs, ino) == data[:cut] + bytes(3 * CHUNK - cut)


async def test_truncate_of_inline_data_down_and_up(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"0123456789")
    await fs.setattr(ROOT, ino, size=4)
    await fs.setattr(ROOT, ino, size=8)
    assert await read_all(fs, ino) == b"0123\0\0\0\0"
    await fs.setattr(ROOT, ino, size=0)
    assert await read_all(fs, ino) == b""
    assert extents_of(fs, ino) == []


async def test_ftruncate_while_dirty_data_is_buffered(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"A" * 1000)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    data = os.urandom(100_000)
    await fs.write(h.fh, 500, data)  # buffered, some of it spilled
    await fs.setattr(ROOT, ino, size=30_000)
    expect = (b"A" * 500 + data)[:30_000]
    assert (await fs.getattr(ino)).size == 30_000
    assert await fs.read(h.fh, 0, 200_000) == expect
    await fs.setattr(ROOT, ino, size=50_000)
    expect += bytes(20_000)
    assert await fs.read(h.fh, 0, 200_000) == expect
    await fs.write(h.fh, 49_999, b"Z")
    expect = expect[:49_999] + b"Z"
    assert await fs.read(h.fh, 0, 200_000) == expect
    await fs.release(h.fh)
    assert await read_all(fs, ino) == expect


async def test_truncate_to_a_negative_size_is_invalid(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"abc")
    with pytest.raises(FsError) as ei:
        await fs.setattr(ROOT, ino, size=-1)
    assert ei.value.errno == errno.EINVAL
    assert await read_all(fs, ino) == b"abc"


async def test_truncate_of_a_directory_raises_is_dir(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    with pytest.raises(IsDir):
        await fs.setattr(ROOT, d.ino, size=0)


# -- unlink of open files, garbage collection ----------------------------------------------------------

async def test_unlinked_open_file_stays_readable_until_release_then_its_chunks_are_collected(
        fs: Filesystem, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 20_000)
    ino = await write_file(fs, ROOT_INO, b"f", data)
    ids = chunk_ids_of(fs, ino)
    assert len(ids) == 4
    for cid in ids:
        assert await fs.chunks.exists(cid)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    with pytest.raises(NotFound):
        await fs.lookup(ROOT, ROOT_INO, b"f")
    assert (await fs.getattr(ino)).nlink == 0
    assert await fs.read(h.fh, 0, len(data) + 1) == data
    assert trash_count(fs) == 0  # still in use
    # the collector leaves an open orphan alone
    await collect(fs, grace_seconds=0)
    assert await fs.read(h.fh, 0, len(data) + 1) == data
    await fs.release(h.fh)
    with pytest.raises(NotFound):
        await fs.getattr(ino)
    with fs.meta.read() as txn:
        assert txn.count("trash") == 4
        assert txn.count("orphan") == 0
    assert len(chunk_files(tmp_path)) == 4
    report = await collect(fs, grace_seconds=0)
    assert report.trash_chunks == 4
    for cid in ids:
        assert not await fs.chunks.exists(cid)
    assert trash_count(fs) == 0
    assert chunk_files(tmp_path) == []


async def test_unlinked_open_file_keeps_unflushed_writes_until_release(fs: Filesystem, tmp_path: Path) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    data = os.urandom(2 * CHUNK + 30_000)
    await fs.write(h.fh, 0, data)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    assert await fs.read(h.fh, 0, len(data)) == data
    await fs.write(h.fh, len(data), b"more")
    assert await fs.read(h.fh, len(data) - 2, 10) == data[-2:] + b"more"
    await fs.release(h.fh)
    with pytest.raises(NotFound):
        await fs.getattr(ino)
    await collect(fs, grace_seconds=0)
    assert chunk_files(tmp_path) == []


async def test_unlink_of_a_closed_file_trashes_its_chunks_at_once(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", os.urandom(2 * CHUNK))
    ids = chunk_ids_of(fs, ino)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    assert trash_count(fs) == 2
    await collect(fs, grace_seconds=0)
    for cid in ids:
        assert not await fs.chunks.exists(cid)


async def test_overwritten_chunks_go_to_trash_and_the_live_ones_survive_collection(
        fs: Filesystem) -> None:
    data = bytearray(os.urandom(3 * CHUNK))
    ino = await write_file(fs, ROOT_INO, b"f", bytes(data))
    first = chunk_ids_of(fs, ino)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    new = os.urandom(CHUNK)
    await fs.write(h.fh, CHUNK, new)  # exactly covers the middle chunk
    await fs.release(h.fh)
    data[CHUNK:2 * CHUNK] = new
    assert trash_count(fs) == 1
    await collect(fs, grace_seconds=0)
    assert await read_all(fs, ino) == data
    now = chunk_ids_of(fs, ino)
    assert len(now & first) == 2
    for cid in now:
        assert await fs.chunks.exists(cid)


async def test_the_collector_keeps_spilled_chunks_of_a_file_still_open_past_the_grace(
        fs: Filesystem, tmp_path: Path) -> None:
    """A writer that keeps a file open longer than the grace period (a slow checkpoint
    write) has spilled chunks that metadata does not know yet; the periodic collector
    must not take them for crash leftovers."""
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(3 * CHUNK)
    await fs.write(h.fh, 0, data)  # spilling to chunks in the background, not committed
    while h.file.pending:  # the spills finish (chunks written and known to metadata)
        await asyncio.wait([h.file.pending[0].task])
    assert len(chunk_files(tmp_path)) == 3
    an_hour_ago = time.time() - 3600  # the writer has been at it for an hour
    for p in chunk_files(tmp_path):
        os.utime(p, (an_hour_ago, an_hour_ago))
    await collect(fs, grace_seconds=60)
    await fs.release(h.fh)
    assert len(chunk_files(tmp_path)) == 3
    assert await read_all(fs, ino) == data


# -- odds and ends ---------------------------------------------------------------------------------

async def test_utime_now_on_open_file_is_accepted(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"abc")
    await fs.setattr(ROOT, ino, mtime_ns=5)
    got = await fs.setattr(ROOT, ino, atime_ns=UTIME_NOW, mtime_ns=UTIME_NOW)
    assert got.mtime_ns > 5 and got.atime_ns > 5
    assert (await fs.getattr(ino)).mtime_ns == got.mtime_ns


async def test_a_non_root_owner_reads_and_writes_its_file(fs: Filesystem) -> None:
    pub = (await fs.mkdir(ROOT, ROOT_INO, b"pub", 0o777)).ino
    f = await fs.create(ALICE, pub, b"f", 0o600)
    h = await fs.open(ALICE, f.ino, os.O_RDWR)
    await fs.write(h.fh, 0, b"alice")
    assert await fs.read(h.fh, 0, 10) == b"alice"
    await fs.release(h.fh)
    assert (await fs.getattr(f.ino)).uid == 1000


async def test_mknod_makes_fifos_and_refuses_device_nodes(fs: Filesystem) -> None:
    fifo = await fs.mknod(ROOT, ROOT_INO, b"fifo", stat.S_IFIFO | 0o640)
    assert stat.S_ISFIFO(fifo.mode) and stat.S_IMODE(fifo.mode) == 0o640
    assert (await fs.lookup(ROOT, ROOT_INO, b"fifo")).ino == fifo.ino
    with pytest.raises(FsError) as ei:
        await fs.mknod(ROOT, ROOT_INO, b"sda", stat.S_IFBLK | 0o600, rdev=0x800)
    assert ei.value.errno == errno.EPERM
    with pytest.raises(NotFound):
        await fs.lookup(ROOT, ROOT_INO, b"sda")


async def test_access_reports_the_callers_permissions(fs: Filesystem) -> None:
    pub = (await fs.mkdir(ROOT, ROOT_INO, b"pub", 0o777)).ino
    f = await fs.create(ALICE, pub, b"f", 0o640)
    assert await fs.access(ALICE, f.ino, 4 | 2)
    assert not await fs.access(ALICE, f.ino, 1)
    assert not await fs.access(Caller(1001, 1001), f.ino, 4)
    assert await fs.access(Caller(1001, 1000), f.ino, 4)  # group read
    assert not await fs.access(Caller(1001, 1000), f.ino, 2)


async def test_an_unlinked_file_cannot_be_reopened_once_its_last_handle_is_releasing(fs: Filesystem) -> None:
    # The free is decided in the writer thread; an open racing it must not get a handle
    # to an inode that is about to vanish (it gets ESTALE instead).
    from gateway.vfs import Stale
    data = os.urandom(2 * CHUNK)
    ino = await write_file(fs, ROOT_INO, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    release = asyncio.ensure_future(fs.release(h.fh))
    while ino in fs._open:  # the release has let go of the file and queued its free
        await asyncio.sleep(0)
    with pytest.raises((Stale, NotFound)):
        await fs.open(ROOT, ino, os.O_RDONLY)
    await release
    with pytest.raises(NotFound):
        await fs.getattr(ino)


async def test_an_unlinked_file_open_elsewhere_can_be_opened_again(fs: Filesystem) -> None:
    data = os.urandom(CHUNK + 10)
    ino = await write_file(fs, ROOT_INO, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    h2 = await fs.open(ROOT, ino, os.O_RDONLY)  # like /proc/PID/fd/N
    await fs.release(h.fh)
    assert await fs.read(h2.fh, 0, len(data) + 1) == data
    await fs.release(h2.fh)
    with pytest.raises(NotFound):
        await fs.getattr(ino)


def test_a_stream_cuts_a_large_hole_into_bounded_buffers() -> None:
    """A sparse file's hole is streamed as zero buffers of at most STREAM_PIECE: a 5 GiB
    hole must not be one 5 GiB allocation."""
    from gateway.vfs.data import STREAM_PIECE, ReadPlan, _pieces
    from metadata import Extent

    size = 9 * STREAM_PIECE + 123
    inline = Extent(4 * STREAM_PIECE + 7, 5, data=b"bytes")
    pieces = _pieces(ReadPlan(size, [inline], {}), 0, size)
    assert max(n for _, n, _ in pieces) <= STREAM_PIECE
    at = 0
    for off, n, ext in pieces:  # contiguous, in order, the extent where it lies
        assert off == at
        assert (ext is not None) == (off == inline.offset)
        at += n
    assert at == size
