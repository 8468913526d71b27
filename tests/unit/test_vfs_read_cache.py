"""The vfs read path's caches: the extents an open handle remembers between reads
(checked against the inode record on every read) and the chunk files the local store
keeps open. What they must never do is serve bytes the file no longer has.

Real LMDB + local chunk store in tmp_path; chunk_size 64 KiB so files span many chunks.
A second process on the same data folder stands in for another door's process.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.vfs import ROOT, Filesystem, FsError
from gateway.vfs import data as vdata
from metadata import ROOT_INO

CHUNK = 64 * 1024
REPO = Path(__file__).resolve().parents[2]


async def write_file(fs: Filesystem, name: bytes, data: bytes) -> int:
    node = await fs.create(ROOT, ROOT_INO, name, 0o644)
    h = await fs.open(ROOT, node.ino, os.O_WRONLY)
    await fs.write(h.fh, 0, data)
    await fs.release(h.fh)
    return node.ino


def in_another_process(data_dir: Path, body: str) -> None:
    """Run body (async, with `fs` open on data_dir) in a fresh interpreter."""
    code = f"""
import asyncio, os, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from gateway.vfs import Filesystem, ROOT

async def main():
    fs = Filesystem.from_data_dir(Path({str(data_dir)!r}), chunk_size={CHUNK})
    await fs.start()
    try:
{"".join("        " + line + chr(10) for line in body.strip().splitlines())}
    finally:
        await fs.aclose()

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def write_in_another_process(tmp_path: Path, ino: int, offset: int, size: int) -> bytes:
    """Write `size` random bytes at offset of file ino from a second process (its own
    Filesystem on the same data folder); the bytes written."""
    new = os.urandom(size)
    (tmp_path / "new").write_bytes(new)
    in_another_process(tmp_path / "data", f"""
h = await fs.open(ROOT, {ino}, os.O_WRONLY)
await fs.write(h.fh, {offset}, Path({str(tmp_path / "new")!r}).read_bytes())
await fs.release(h.fh)
""")
    return new


async def test_an_open_handle_reads_what_another_process_committed_in_place(
        fs: Filesystem, tmp_path: Path) -> None:
    data = bytearray(os.urandom(4 * CHUNK))
    ino = await write_file(fs, b"f", bytes(data))
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert await fs.read(h.fh, 0, len(data)) == data  # extents now cached by h
        new = write_in_another_process(tmp_path, ino, CHUNK + 100, CHUNK)
        data[CHUNK + 100:2 * CHUNK + 100] = new
        assert await fs.read(h.fh, 0, len(data)) == data
        assert await fs.read(h.fh, CHUNK + 50, 100) == data[CHUNK + 50:CHUNK + 150]
    finally:
        await fs.release(h.fh)


async def test_an_open_handle_reads_what_another_handle_committed(fs: Filesystem) -> None:
    data = bytearray(os.urandom(3 * CHUNK))
    ino = await write_file(fs, b"f", bytes(data))
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert await fs.read(r.fh, 0, 4096) == data[:4096]
        w = await fs.open(ROOT, ino, os.O_WRONLY)
        await fs.write(w.fh, 10, b"x" * 5000)
        assert await fs.read(r.fh, 0, 4096) == data[:10] + b"x" * 4086  # buffered
        await fs.release(w.fh)
        data[10:5010] = b"x" * 5000
        assert await fs.read(r.fh, 0, 6000) == data[:6000]  # committed
        await fs.setattr(ROOT, ino, size=CHUNK // 2)
        assert await fs.read(r.fh, CHUNK // 2 - 10, 100) == data[CHUNK // 2 - 10:CHUNK // 2]
        assert await fs.read(r.fh, CHUNK // 2, 100) == b""  # gone, not the old bytes
        await fs.setattr(ROOT, ino, size=CHUNK)
        assert await fs.read(r.fh, CHUNK // 2 - 10, 100) == data[CHUNK // 2 - 10:CHUNK // 2] + bytes(90)
    finally:
        await fs.release(r.fh)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_reads_through_small_plan_windows_match_the_file(
        fs: Filesystem, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Windows of a few extents, misses in every direction, holes and inline bytes."""
    monkeypatch.setattr(vdata, "PLAN_EXTENTS", 3)
    monkeypatch.setattr(vdata, "MISS_EXTENTS", 2)
    rng = random.Random(seed)
    model = bytearray(12 * CHUNK + 777)
    node = await fs.create(ROOT, ROOT_INO, b"f", 0o644)
    w = await fs.open(ROOT, node.ino, os.O_WRONLY)
    for at in range(0, len(model), CHUNK):
        if at // CHUNK in (3, 7):
            continue  # holes
        piece = os.urandom(min(CHUNK, len(model) - at))
        model[at:at + len(piece)] = piece
        await fs.write(w.fh, at, piece)
    await fs.write(w.fh, 5 * CHUNK + 9, b"small")  # a later write shadowing part of a chunk
    model[5 * CHUNK + 9:5 * CHUNK + 14] = b"small"
    await fs.release(w.fh)
    r = await fs.open(ROOT, node.ino, os.O_RDONLY)
    try:
        for _ in range(300):
            off = rng.randrange(len(model) + 10)
            n = rng.choice([1, 4096, CHUNK, 3 * CHUNK, rng.randrange(1, 200_000)])
            now = fs.read_now(r.fh, off, n)  # when it answers, the same bytes as read
            assert now is None or now == model[off:off + n], (off, n)
            assert await fs.read(r.fh, off, n) == model[off:off + n], (off, n)
    finally:
        await fs.release(r.fh)


async def test_a_corrupt_chunk_is_an_error_even_after_clean_reads_of_it(
        fs: Filesystem, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK)
    ino = await write_file(fs, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert await fs.read(h.fh, 0, len(data)) == data  # chunk file open, pages cached
        victim = next(p for p in (tmp_path / "data" / "chunks").rglob("*")
                      if p.is_file() and p.stat().st_size == CHUNK)
        raw = bytearray(victim.read_bytes())
        raw[100] ^= 0x40
        with open(victim, "r+b") as f:  # in place: the same file the store keeps open
            f.write(raw)
        with pytest.raises(FsError) as ei:
            for at in range(0, len(data), 4096):
                await fs.read(h.fh, at, 4096)
        assert ei.value.errno == 5  # EIO
    finally:
        await fs.release(h.fh)


# --- read_now: a lone small read answered without awaiting ------------------------------------


@pytest.fixture
def fast_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local store judges the disk fast however long this loaded machine took lately
    (when it reads on the loop is tested in test_chunkstore_local.py)."""
    from chunkstore import local
    monkeypatch.setattr(local, "SLOW_READ", 3600.0)


async def test_read_now_serves_a_lone_small_read_once_the_plan_is_cached(
        fs: Filesystem, fast_disk: None) -> None:
    data = os.urandom(3 * CHUNK)
    ino = await write_file(fs, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert fs.read_now(h.fh, CHUNK + 4096, 4096) is None  # nothing cached yet
        assert await fs.read(h.fh, 8192, 4096) == data[8192:12288]
        # The next sequential read goes through read (it starts read-ahead)...
        assert fs.read_now(h.fh, 12288, 4096) is None
        # ...a random one is answered at once, with the same bytes, within one chunk...
        assert fs.read_now(h.fh, CHUNK + 4096, 4096) == data[CHUNK + 4096:CHUNK + 8192]
        assert fs.read_now(h.fh, 2 * CHUNK + 5, 100) == data[2 * CHUNK + 5:2 * CHUNK + 105]
        # ...and one across two chunks, past the end, or on a closed handle is not.
        assert fs.read_now(h.fh, CHUNK - 100, 4096) is None
        assert fs.read_now(h.fh, len(data) + 10, 4096) is None
    finally:
        await fs.release(h.fh)
    assert fs.read_now(h.fh, CHUNK + 4096, 4096) is None
    with pytest.raises(FsError):
        await fs.read(h.fh, CHUNK + 4096, 4096)


async def test_read_now_never_serves_bytes_another_process_replaced(
        fs: Filesystem, tmp_path: Path, fast_disk: None) -> None:
    data = bytearray(os.urandom(4 * CHUNK))
    ino = await write_file(fs, b"f", bytes(data))
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert await fs.read(h.fh, 0, 4096) == data[:4096]
        assert fs.read_now(h.fh, CHUNK + 8192, 4096) == data[CHUNK + 8192:CHUNK + 12288]
        new = write_in_another_process(tmp_path, ino, CHUNK + 100, CHUNK)
        data[CHUNK + 100:2 * CHUNK + 100] = new
        want = data[CHUNK + 8192:CHUNK + 12288]
        got = fs.read_now(h.fh, CHUNK + 8192, 4096)
        assert got is None or got == want  # the old plan is not current: never the old bytes
        assert await fs.read(h.fh, CHUNK + 8192, 4096) == want
        assert fs.read_now(h.fh, CHUNK + 16384, 4096) == data[CHUNK + 16384:CHUNK + 20480]
    finally:
        await fs.release(h.fh)


async def test_read_now_sees_this_process_s_unflushed_writes_by_deferring(fs: Filesystem) -> None:
    data = bytearray(os.urandom(2 * CHUNK))
    ino = await write_file(fs, b"f", bytes(data))
    r = await fs.open(ROOT, ino, os.O_RDONLY)
    w = await fs.open(ROOT, ino, os.O_WRONLY)
    try:
        assert await fs.read(r.fh, 0, 4096) == data[:4096]
        await fs.write(w.fh, CHUNK + 10, b"y" * 100)  # buffered, not committed
        data[CHUNK + 10:CHUNK + 110] = b"y" * 100
        assert fs.read_now(r.fh, CHUNK, 4096) is None
        assert await fs.read(r.fh, CHUNK, 4096) == data[CHUNK:CHUNK + 4096]
    finally:
        await fs.release(w.fh)
        await fs.release(r.fh)


async def test_read_now_of_a_corrupt_block_is_eio_not_bytes(
        fs: Filesystem, tmp_path: Path, fast_disk: None) -> None:
    data = os.urandom(2 * CHUNK)
    ino = await write_file(fs, b"f", data)
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        assert await fs.read(h.fh, 0, 4096) == data[:4096]
        assert fs.read_now(h.fh, CHUNK + 4096, 4096) == data[CHUNK + 4096:CHUNK + 8192]
        victim = next(p for p in (tmp_path / "data" / "chunks").rglob("*")
                      if p.is_file() and p.read_bytes() == data[CHUNK:])
        with open(victim, "r+b") as f:  # in place: the file the store keeps open
            f.seek(8192 + 7)
            f.write(bytes([data[CHUNK + 8192 + 7] ^ 0x01]))
        with pytest.raises(FsError) as ei:
            if fs.read_now(h.fh, CHUNK + 8192, 4096) is None:  # a slow disk: read's turn
                await fs.read(h.fh, CHUNK + 8192, 4096)
        assert ei.value.errno == 5  # EIO
        # Its neighbour blocks still read.
        assert fs.read_now(h.fh, CHUNK + 12288, 4096) in (None, data[CHUNK + 12288:CHUNK + 16384])
        assert await fs.read(h.fh, CHUNK + 4096, 4096) == data[CHUNK + 4096:CHUNK + 8192]
    finally:
        await fs.release(h.fh)
