"""The NFS door's open-file cache over a real vfs: unstable writes stay buffered
until COMMIT or an idle release, and a failed background flush changes nothing
silently."""

from __future__ import annotations

import asyncio
import errno

from chunkstore import ChunkStoreFull
from gateway.nfs.open_files import OpenFiles
from gateway.vfs import ROOT, Filesystem
from metadata import ROOT_INO


async def _file(fs: Filesystem) -> int:
    b = await fs.create_bucket(ROOT, "bkt")
    return (await fs.create(ROOT, b.ino, b"f", 0o644)).ino


async def test_unstable_writes_reach_s3_only_after_commit(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    files = OpenFiles(vfs, idle_seconds=3600)
    async with files.use(ino) as fh:
        await vfs.write(fh, 0, b"hello")
    assert await vfs.read_object(ROOT, "bkt", "f") == b""
    await files.commit(ino)
    assert await vfs.read_object(ROOT, "bkt", "f") == b"hello"
    await files.aclose()


async def test_an_idle_handle_is_flushed_and_released(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    files = OpenFiles(vfs, idle_seconds=3600)
    async with files.use(ino) as fh:
        await vfs.write(fh, 0, b"never committed")
    await files.release_idle(0)
    assert ino not in files and not vfs.is_open(ino)
    assert await vfs.read_object(ROOT, "bkt", "f") == b"never committed"
    await files.aclose()


async def test_the_sweeper_releases_idle_handles_by_itself(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    files = OpenFiles(vfs, idle_seconds=0.1)
    async with files.use(ino) as fh:
        await vfs.write(fh, 0, b"abc")
    for _ in range(200):
        if ino not in files:
            break
        await asyncio.sleep(0.05)
    assert ino not in files
    assert await vfs.read_object(ROOT, "bkt", "f") == b"abc"
    await files.aclose()


async def test_a_handle_in_use_is_never_released(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    files = OpenFiles(vfs, idle_seconds=3600)
    async with files.use(ino) as fh:
        await files.release_idle(0)
        assert ino in files
        await vfs.write(fh, 0, b"x")
    await files.aclose()
    assert not vfs.is_open(ino)


async def test_a_failed_idle_flush_keeps_the_bytes_and_changes_the_verifier(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    lost = []
    files = OpenFiles(vfs, idle_seconds=3600, on_lost=lambda: lost.append(1))
    async with files.use(ino) as fh:
        # Above the inline size (needs a chunk), below the chunk size (stays buffered).
        await vfs.write(fh, 0, b"y" * 30_000)
    real_put, real_unsynced = vfs.chunks.put, vfs.chunks.put_unsynced

    async def full(chunk_id: int, data: object) -> object:
        raise ChunkStoreFull(chunk_id, "writing: No space left", errno=errno.ENOSPC)
    # A full disk, then room again.
    vfs.chunks.put = vfs.chunks.put_unsynced = full  # type: ignore[method-assign]
    try:
        await files.release_idle(0)
    finally:
        vfs.chunks.put, vfs.chunks.put_unsynced = real_put, real_unsynced  # type: ignore[method-assign]
    assert lost and ino in files
    await files.release_idle(0)  # the disk has room again: the retry lands it
    assert ino not in files
    assert await vfs.read_object(ROOT, "bkt", "f") == b"y" * 30_000
    await files.aclose()


async def test_forget_frees_a_removed_file(vfs: Filesystem) -> None:
    ino = await _file(vfs)
    files = OpenFiles(vfs, idle_seconds=3600)
    async with files.use(ino) as fh:
        await vfs.write(fh, 0, b"gone soon")
    b = await vfs.lookup(ROOT, ROOT_INO, b"bkt")
    await vfs.unlink(ROOT, b.ino, b"f")
    await files.forget(ino)
    assert not vfs.is_open(ino)
    await files.aclose()
