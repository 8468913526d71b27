"""The mount write pipeline: spills in the background, chunks synced by the commit
before the metadata that points at them, failures that keep or drop bytes as promised,
and the ETag hashed off the event loop."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

import gateway.vfs.files as files_mod
from chunkstore import ChunkError, ChunkStoreFull
from gateway.vfs import ROOT, Filesystem, FsError, NoSpace, StorageError
from gateway.vfs.fs import SPILL_WINDOW
from metadata import ROOT_INO
from metadata import namespace as ns

CHUNK = 64 * 1024


async def new_file(fs: Filesystem, name: bytes = b"f") -> int:
    return (await fs.create(ROOT, ROOT_INO, name, 0o644)).ino


def referenced(fs: Filesystem, ino: int) -> set[int]:
    with fs.meta.read() as txn:
        return {e.chunk_id for e in ns.extents(txn, ino, 0, 1 << 62) if e.chunk_id}


async def read_all(fs: Filesystem, ino: int) -> bytes:
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        return await fs.read(h.fh, 0, 1 << 30)
    finally:
        await fs.release(h.fh)


async def settled(fs: Filesystem, ino: int) -> None:
    """Every spill stored and its pending record committed."""
    f = fs._open[ino]
    while f.pending:
        await asyncio.wait([f.pending[0].task])
    await asyncio.gather(*f.registrations)


async def test_the_commit_syncs_spilled_chunks_before_the_metadata_points_at_them(
        fs: Filesystem) -> None:
    ino = await new_file(fs)
    calls: list[tuple[set[int], set[int]]] = []
    real_sync, real_put = fs.chunks.sync, fs.chunks.put
    durable_puts = []

    async def sync(ids: list[int]) -> None:
        calls.append((set(ids), referenced(fs, ino)))  # what metadata points at, before
        await real_sync(ids)

    async def put(cid: int, data: object) -> object:
        durable_puts.append(cid)
        return await real_put(cid, data)  # type: ignore[arg-type]

    fs.chunks.sync, fs.chunks.put = sync, put  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(3 * CHUNK + 100)
    for at in range(0, len(data), 10_000):
        await fs.write(h.fh, at, data[at:at + 10_000])
    await settled(fs, ino)
    assert calls == [] and durable_puts == []  # spilled, not flushed, not published
    with fs.meta.read() as txn:  # but known as this writer's, for any collector
        pending = {cid for cid, _, _ in ns.pending(txn)}
    assert len(pending) == 3
    await fs.fsync(h.fh)
    assert len(calls) == 1
    synced, before = calls[0]
    assert before == set()  # nothing pointed at them while they were not durable
    assert referenced(fs, ino) == synced and len(synced) == 3  # the 100-byte tail is inline
    await fs.release(h.fh)
    assert await read_all(fs, ino) == data


async def test_a_sequential_writer_spills_whole_chunks(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(5 * CHUNK)
    for at in range(0, len(data), 10_000):  # never aligned with a chunk
        await fs.write(h.fh, at, data[at:at + 10_000])
    await fs.release(h.fh)
    with fs.meta.read() as txn:
        sizes = [e.length for e in ns.extents(txn, ino, 0, 1 << 62)]
    assert sizes == [CHUNK] * 5


async def test_writes_go_on_while_spills_are_in_flight_and_stop_at_the_window(
        fs: Filesystem) -> None:
    ino = await new_file(fs)
    gate = asyncio.Event()
    real = fs.chunks.put_unsynced

    async def slow(cid: int, data: object) -> object:
        await gate.wait()
        return await real(cid, data)  # type: ignore[arg-type]

    fs.chunks.put_unsynced = slow  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom((SPILL_WINDOW + 1) * CHUNK)
    for i in range(SPILL_WINDOW):  # each fills a chunk: a spill starts, the write returns
        await asyncio.wait_for(fs.write(h.fh, i * CHUNK, data[i * CHUNK:(i + 1) * CHUNK]), 30)
    assert len(fs._open[ino].pending) == SPILL_WINDOW
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    assert await fs.read(r.fh, 0, SPILL_WINDOW * CHUNK) == data[:SPILL_WINDOW * CHUNK]
    blocked = asyncio.ensure_future(fs.write(h.fh, SPILL_WINDOW * CHUNK, data[SPILL_WINDOW * CHUNK:]))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the window is full: the writer waits for the disk
    gate.set()
    await asyncio.wait_for(blocked, 30)
    await fs.release(h.fh)
    await fs.release(r.fh)
    assert await read_all(fs, ino) == data


async def test_a_spill_that_fails_fails_a_later_write_keeps_the_bytes_and_retries(
        fs: Filesystem) -> None:
    ino = await new_file(fs)
    real = fs.chunks.put_unsynced
    full = True

    async def maybe_full(cid: int, data: object) -> object:
        if full:
            raise ChunkStoreFull(cid, "writing: No space left on device", errno=errno.ENOSPC)
        return await real(cid, data)  # type: ignore[arg-type]

    fs.chunks.put_unsynced = maybe_full  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    model = bytearray()
    with pytest.raises(NoSpace):
        for i in range(3 * SPILL_WINDOW):
            piece = os.urandom(CHUNK)
            await fs.write(h.fh, len(model), piece)
            model += piece  # acknowledged
    with pytest.raises(NoSpace):
        await fs.fsync(h.fh)  # still full: the commit fails, nothing is published
    assert (await fs.getattr(ino)).size == len(model)  # the writer still sees its bytes
    full = False  # room again: the retry lands every acknowledged byte
    await fs.fsync(h.fh)
    await fs.release(h.fh)
    assert await read_all(fs, ino) == bytes(model)


async def test_a_failed_sync_drops_uncommitted_writes_and_never_commits_holes(
        fs: Filesystem) -> None:
    ino = await new_file(fs)
    first = os.urandom(2 * CHUNK + 7)
    h = await fs.open(ROOT, ino, os.O_RDWR)
    await fs.write(h.fh, 0, first)
    await fs.fsync(h.fh)
    real = fs.chunks.sync

    async def eio(ids: list[int]) -> None:
        raise ChunkError(ids[0], "fdatasync: Input/output error", errno=errno.EIO)

    fs.chunks.sync = eio  # type: ignore[method-assign]
    await fs.write(h.fh, 0, os.urandom(3 * CHUNK))
    with pytest.raises(StorageError):
        await fs.fsync(h.fh)
    fs.chunks.sync = real  # type: ignore[method-assign]
    await fs.write(h.fh, 3 * CHUNK, b"after")  # a later write commits alone
    await fs.fsync(h.fh)
    await fs.release(h.fh)
    got = await read_all(fs, ino)
    assert got[:len(first)] == first  # the lost overwrite is not half there
    assert got[3 * CHUNK:] == b"after" and got[len(first):3 * CHUNK] == bytes(3 * CHUNK - len(first))


async def test_the_etag_of_large_sequential_writes_is_their_md5(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(3 * 200_000 + 11)  # pieces big enough to be hashed in a thread
    for at in range(0, len(data), 200_000):
        await fs.write(h.fh, at, data[at:at + 200_000])
    await fs.fsync(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(data).hexdigest()
    await fs.write(h.fh, len(data), b"more")  # hashed after the first commit's digest
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(data + b"more").hexdigest()


async def test_a_mount_written_file_past_the_md5_limit_has_no_md5_etag(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_mod, "MOUNT_MD5_MAX", 3 * CHUNK)
    small, big = await new_file(fs, b"small"), await new_file(fs, b"big")
    for ino, size in ((small, 3 * CHUNK), (big, 3 * CHUNK + 1)):
        h = await fs.open(ROOT, ino, os.O_WRONLY)
        await fs.write(h.fh, 0, b"x" * size)
        await fs.release(h.fh)
    assert (await fs.getattr(small)).etag == hashlib.md5(b"x" * 3 * CHUNK).hexdigest()
    assert (await fs.getattr(big)).etag == ""  # the S3 door serves its stable non-MD5 form


async def test_writes_made_while_a_commit_runs_wait_for_the_next_one(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    first = os.urandom(2 * CHUNK)
    await fs.write(h.fh, 0, first)
    gate = asyncio.Event()
    real = fs.chunks.sync

    async def slow(ids: list[int]) -> None:
        await gate.wait()
        await real(ids)

    fs.chunks.sync = slow  # type: ignore[method-assign]
    commit = asyncio.ensure_future(fs.fsync(h.fh))
    await asyncio.sleep(0.01)
    later = os.urandom(2 * CHUNK)
    await fs.write(h.fh, len(first), later)
    await settled(fs, ino)
    gate.set()
    await commit
    assert (await fs.getattr(ino)).size == len(first + later)  # the open file's view
    with fs.meta.read() as txn:
        assert ns.get_inode(txn, ino).size == len(first)  # type: ignore[union-attr]
    await fs.release(h.fh)
    assert await read_all(fs, ino) == first + later


async def test_a_write_after_an_error_is_refused_whole(fs: Filesystem) -> None:
    """A write refused for a full disk (back-pressure found the failed spill) stored
    none of its bytes."""
    ino = await new_file(fs)
    real = fs.chunks.put_unsynced

    async def full(cid: int, data: object) -> object:
        raise ChunkStoreFull(cid, "writing: No space left on device", errno=errno.ENOSPC)

    fs.chunks.put_unsynced = full  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    size = 0
    refused = None
    for i in range(3 * SPILL_WINDOW):
        try:
            await fs.write(h.fh, size, b"%c" % (65 + i) * CHUNK)
            size += CHUNK
        except FsError as e:
            refused = e
            break
    assert isinstance(refused, NoSpace)
    assert (await fs.getattr(ino)).size == size
    fs.chunks.put_unsynced = real  # type: ignore[method-assign]
    await fs.release(h.fh)
    got = await read_all(fs, ino)
    assert got == b"".join(b"%c" % (65 + i) * CHUNK for i in range(size // CHUNK))


async def test_the_collector_never_takes_a_spill_whose_pending_record_just_committed(
        fs: Filesystem) -> None:
    """The race: the spill's pending record is committed, its task has not resumed yet,
    and the collector runs right then."""
    from gateway.vfs import collect

    ino = await new_file(fs)
    real_write = fs._write
    state = {"armed": True, "inside": False, "runs": 0}

    async def write_then_collect(fn):  # type: ignore[no-untyped-def]
        result = await real_write(fn)
        if state["armed"] and not state["inside"]:
            state["inside"] = True
            try:
                await collect(fs, grace_seconds=0)
                state["runs"] += 1
            finally:
                state["inside"] = False
        return result

    fs._write = write_then_collect  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(3 * CHUNK)
    await fs.write(h.fh, 0, data)
    await settled(fs, ino)
    state["armed"] = False
    assert state["runs"] >= 1
    await fs.release(h.fh)
    assert await read_all(fs, ino) == data
    for cid in referenced(fs, ino):
        assert await fs.chunks.exists(cid)
    with fs.meta.read() as txn:
        assert not [c for c, _ in ns.trash(txn) if c in referenced(fs, ino)]


async def test_a_pending_record_that_failed_is_written_by_the_commit(fs: Filesystem) -> None:
    from gateway.vfs.fsck import fsck

    ino = await new_file(fs)
    real_write = fs._write
    failed = []

    async def fail_first(fn):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append(1)
            raise StorageError("metadata commit failed: Input/output error")
        return await real_write(fn)

    fs._write = fail_first  # type: ignore[method-assign]
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    data = os.urandom(2 * CHUNK)
    await fs.write(h.fh, 0, data)  # the spill's background pending record fails
    await fs.release(h.fh)
    assert failed
    assert await read_all(fs, ino) == data
    assert (await fsck(fs)).findings == []


@pytest.mark.parametrize("ahead", [4, 8])
async def test_a_streamed_put_keeps_as_many_chunk_puts_in_flight_as_the_store_asks(
        fs: Filesystem, ahead: int) -> None:
    from gateway.vfs import data as data_mod
    fs.chunks.write_ahead = ahead  # a remote store asks for more than the local default
    in_flight, most = 0, 0
    gate = asyncio.Event()
    real = fs.chunks.put

    async def held(cid: int, piece: object) -> object:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight >= ahead:
            gate.set()
        await gate.wait()  # nothing finishes until the window is full
        try:
            return await real(cid, piece)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    fs.chunks.put = held  # type: ignore[method-assign]
    body = os.urandom((2 * ahead + 1) * CHUNK)

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 7 * 1024):
            yield body[at:at + 7 * 1024]

    written, size, md5 = await asyncio.wait_for(data_mod.store_stream(
        fs.chunks, fs.ids, CHUNK, pieces()), 60)
    assert most == ahead
    assert size == len(body) and md5 == hashlib.md5(body).hexdigest()
    assert len(written.chunks) == 2 * ahead + 1
