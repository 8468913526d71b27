"""POSIX half of the vfs, the views of written data: ETags of mount-written files,
agreement between the mount view and the object (S3) view, and what a commit of the
write buffer publishes while other operations run.

Real LMDB + local chunk store in tmp_path; chunk_size is 64 KiB so that files span
many chunks and writes cross chunk boundaries.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.vfs import ROOT, Filesystem, NotFound
from metadata import INLINE_MAX, ROOT_INO
from metadata import namespace as ns

CHUNK = 64 * 1024


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


async def body_of(*pieces: bytes) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


# -- ETags ----------------------------------------------------------------------------------------

async def test_etag_of_a_sequentially_written_file_is_the_md5_of_its_bytes(fs: Filesystem) -> None:
    for size in (1, INLINE_MAX, INLINE_MAX + 1, 4 * CHUNK + 99):
        data = os.urandom(size)
        ino = await new_file(fs, b"f%d" % size)
        h = await fs.open(ROOT, ino, os.O_WRONLY)
        for at in range(0, size, 10_000):
            await fs.write(h.fh, at, data[at:at + 10_000])
        await fs.release(h.fh)
        assert (await fs.getattr(ino)).etag == hashlib.md5(data).hexdigest(), size


async def test_etag_follows_sequential_writes_across_flushes(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"part one;")
    await fs.flush(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(b"part one;").hexdigest()
    await fs.write(h.fh, 9, b"part two")
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(b"part one;part two").hexdigest()


async def test_etag_is_unknown_after_a_random_offset_write(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"a" * 100)
    await fs.write(h.fh, 50, b"b" * 10)
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == ""
    # a file whose first write is not at 0
    ino2 = await new_file(fs, b"g")
    h = await fs.open(ROOT, ino2, os.O_WRONLY)
    await fs.write(h.fh, 10, b"x")
    await fs.release(h.fh)
    assert (await fs.getattr(ino2)).etag == ""


async def test_mount_write_replaces_the_md5_etag_of_an_object(fs: Filesystem) -> None:
    await fs.create_bucket(ROOT, "bkt")
    body = os.urandom(50_000)
    obj = await fs.put_object(ROOT, "bkt", "k", body_of(body))
    assert obj.etag == hashlib.md5(body).hexdigest()
    h = await fs.open(ROOT, obj.ino, os.O_WRONLY)
    await fs.write(h.fh, 100, b"changed")
    await fs.release(h.fh)
    assert (await fs.getattr(obj.ino)).etag != hashlib.md5(body).hexdigest()
    assert (await fs.stat_object(ROOT, "bkt", "k")).etag != hashlib.md5(body).hexdigest()


async def test_etag_is_md5_again_after_truncating_to_zero_and_rewriting(fs: Filesystem) -> None:
    ino = await new_file(fs)
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"x" * 1000)
    await fs.write(h.fh, 10, b"y")  # not sequential any more
    await fs.flush(h.fh)
    assert (await fs.getattr(ino)).etag == ""
    await fs.setattr(ROOT, ino, size=0)  # ftruncate(fd, 0) on the open handle
    new = os.urandom(2 * CHUNK + 5)
    await fs.write(h.fh, 0, new[:70_000])
    await fs.write(h.fh, 70_000, new[70_000:])
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(new).hexdigest()
    assert await read_all(fs, ino) == new


async def test_etag_is_md5_after_o_trunc_rewrite_of_a_non_empty_file(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", os.urandom(3000))
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 5, b"zz")  # a reopened non-empty file: no MD5
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == ""
    h = await fs.open(ROOT, ino, os.O_WRONLY | os.O_TRUNC)
    await fs.write(h.fh, 0, b"fresh content")
    await fs.release(h.fh)
    assert (await fs.getattr(ino)).etag == hashlib.md5(b"fresh content").hexdigest()


# -- the mount and the object view agree ----------------------------------------------------------------

async def test_a_file_written_through_posix_ops_is_the_same_object(fs: Filesystem) -> None:
    bucket = await fs.create_bucket(ROOT, "bkt")
    d = await fs.mkdir(ROOT, bucket.ino, b"dir")
    data = os.urandom(3 * CHUNK + 4321)
    ino = await write_file(fs, d.ino, b"file", data)
    small = await write_file(fs, bucket.ino, b"small.txt", b"tiny")
    assert await fs.read_object(ROOT, "bkt", "dir/file") == data
    assert await fs.read_object(ROOT, "bkt", "dir/file", 100, CHUNK + 7) == data[100:CHUNK + 7]
    assert await fs.read_object(ROOT, "bkt", "small.txt") == b"tiny"
    page = await fs.list_objects(ROOT, "bkt")
    listed = {k: i for k, i in page.keys}
    assert set(listed) == {b"dir/file", b"small.txt"}
    assert listed[b"dir/file"].ino == ino and listed[b"dir/file"].size == len(data)
    assert listed[b"small.txt"].ino == small
    st = await fs.stat_object(ROOT, "bkt", "dir/file")
    assert st.etag == hashlib.md5(data).hexdigest()


async def test_unflushed_mount_writes_are_invisible_to_s3_until_flush(fs: Filesystem) -> None:
    bucket = await fs.create_bucket(ROOT, "bkt")
    ino = await write_file(fs, bucket.ino, b"k", b"old")
    h = await fs.open(ROOT, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, b"NEW!")
    assert await fs.read_object(ROOT, "bkt", "k") == b"old"
    await fs.flush(h.fh)
    assert await fs.read_object(ROOT, "bkt", "k") == b"NEW!"
    await fs.release(h.fh)


async def test_an_object_put_through_s3_is_visible_through_lookup_open_read(fs: Filesystem) -> None:
    bucket = await fs.create_bucket(ROOT, "bkt")
    body = os.urandom(2 * CHUNK + 777)
    put = await fs.put_object(ROOT, "bkt", "x/y", body_of(body[:1000], body[1000:]))
    x = await fs.lookup(ROOT, bucket.ino, b"x")
    assert stat.S_ISDIR(x.mode)
    assert [n for _, n, _ in await fs.readdir(ROOT, bucket.ino)] == [b"x"]
    y = await fs.lookup(ROOT, x.ino, b"y")
    assert y.ino == put.ino
    assert stat.S_ISREG(y.mode) and y.size == len(body)
    assert await read_all(fs, y.ino) == body
    h = await fs.open(ROOT, y.ino, os.O_RDONLY)
    assert await fs.read(h.fh, CHUNK - 3, 6) == body[CHUNK - 3:CHUNK + 3]
    await fs.release(h.fh)


async def test_a_file_open_on_the_mount_keeps_its_bytes_when_s3_overwrites_it(fs: Filesystem) -> None:
    bucket = await fs.create_bucket(ROOT, "bkt")
    old = os.urandom(CHUNK + 20_000)
    first = await fs.put_object(ROOT, "bkt", "k", body_of(old))
    h = await fs.open(ROOT, first.ino, os.O_RDONLY)
    new = os.urandom(1000)
    await fs.put_object(ROOT, "bkt", "k", body_of(new))
    assert await fs.read(h.fh, 0, len(old) + 1) == old
    assert await read_all(fs, (await fs.lookup(ROOT, bucket.ino, b"k")).ino) == new
    await fs.release(h.fh)
    with pytest.raises(NotFound):
        await fs.getattr(first.ino)


# -- concurrency between the write buffer and commits ------------------------------------------------

async def test_a_commit_publishes_only_bytes_it_committed(fs: Filesystem) -> None:
    """A write that lands while a flush is storing chunks stays in the buffer; the commit
    must not publish a size (or an MD5) that covers it, or S3 serves zeros under that MD5."""
    await fs.create_bucket(ROOT, "bkt")
    ino = (await fs.lookup(ROOT, ROOT_INO, b"bkt")).ino
    ino = (await fs.create(ROOT, ino, b"k")).ino
    w = await fs.open(ROOT, ino, os.O_WRONLY)
    first = os.urandom(40_000)  # above INLINE_MAX: the flush stores a chunk (awaits)
    await fs.write(w.fh, 0, first)
    flushing = asyncio.create_task(fs.flush(w.fh))
    await asyncio.sleep(0)  # the flush has detached the buffer and is storing it
    await fs.write(w.fh, len(first), b"tail")
    await flushing
    obj = await fs.read_object(ROOT, "bkt", "k")
    with fs.meta.read() as txn:
        committed = ns.get_inode(txn, ino)
    assert committed is not None
    assert obj in (first, first + b"tail"), f"S3 sees {len(obj)} bytes ending {obj[-4:]!r}"
    assert committed.etag in ("", hashlib.md5(obj).hexdigest())
    await fs.release(w.fh)
    assert await fs.read_object(ROOT, "bkt", "k") == first + b"tail"
    assert (await fs.getattr(ino)).etag == hashlib.md5(first + b"tail").hexdigest()


async def test_a_read_racing_a_flush_still_sees_bytes_written_before_it(tmp_path: Path) -> None:
    """Bytes spilled to chunks but not committed are overlaid on reads; a commit that
    lands while a read fetches the old committed bytes must not make the read return
    them. (Whether the race is hit depends on timing; a correct vfs always passes.)"""
    fs = Filesystem.from_data_dir(tmp_path / "big", chunk_size=1 << 20)
    await fs.start()
    try:
        old = b"A" * (16 << 20)
        ino = await write_file(fs, ROOT_INO, b"f", old)
        for trial in range(3):
            new = bytes([ord("B") + trial]) * (1 << 20)
            w = await fs.open(ROOT, ino, os.O_RDWR)
            r = await fs.open(ROOT, ino, os.O_RDONLY)
            await fs.write(w.fh, 0, new)  # a full chunk: spilled, not committed
            got, _ = await asyncio.gather(fs.read(r.fh, 0, len(old)), fs.flush(w.fh))
            assert got[:4] == new[:4] and got[:len(new)] == new, f"trial {trial}: stale {got[:4]!r}"
            assert got[len(new):] == old[len(new):]
            await fs.release(w.fh)
            await fs.release(r.fh)
    finally:
        await fs.aclose()
