"""fsck: clean on a healthy store, and precise on each way of breaking one.

Each test breaks one invariant on purpose (a chunk file deleted or flipped, a reference
count or an nlink changed, a dirent pointed at nothing, an inline extent corrupted)
through the chunk files or the metadata directly, and checks fsck reports exactly that
problem and nothing else. fsck never repairs: the damage is still there afterwards.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.vfs import ROOT, Filesystem
from gateway.vfs.fsck import fsck
from metadata import ROOT_INO
from metadata import namespace as ns
from metadata.schema import decode_chunk, decode_inode, encode_chunk, encode_inode, u64
from tests.unit.conftest import body_of

CHUNK = 64 * 1024
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fs(vfs: Filesystem) -> Filesystem:
    return vfs  # tests/unit/conftest.py: LMDB + local chunks of CHUNK bytes


async def populate(fs: Filesystem) -> dict[str, int]:
    """A bucket with a multi-chunk object, an inline one, a hard-linked file and a copy
    sharing chunks, and an unfinished multipart upload holding a part."""
    await fs.create_bucket(ROOT, "bkt")
    await fs.put_object(ROOT, "bkt", "big", body_of(os.urandom(3 * CHUNK + 100)))
    await fs.put_object(ROOT, "bkt", "small", body_of(b"tiny"))
    await fs.copy_object(ROOT, "bkt", "big", "bkt", "copy")
    up = await fs.create_upload(ROOT, "bkt", "mp")
    await fs.upload_part(ROOT, "bkt", "mp", up, 1, body_of(os.urandom(2 * CHUNK)))
    f = await fs.create(ROOT, ROOT_INO, b"file")
    h = await fs.open(ROOT, f.ino, os.O_WRONLY)
    await fs.write(h.fh, 0, os.urandom(CHUNK + 5))
    await fs.release(h.fh)
    await fs.link(ROOT, f.ino, ROOT_INO, b"hardlink")
    big = (await fs.stat_object(ROOT, "bkt", "big")).ino
    small = (await fs.stat_object(ROOT, "bkt", "small")).ino
    return {"big": big, "small": small, "file": f.ino}


def chunk_ids(fs: Filesystem, ino: int) -> list[int]:
    with fs.meta.read() as txn:
        return [e.chunk_id for e in ns.extents(txn, ino) if e.chunk_id]


async def test_a_healthy_store_is_clean_and_every_chunk_verifies(fs: Filesystem) -> None:
    await populate(fs)
    report = await fsck(fs, verify=True)
    assert report.findings == []
    assert report.clean
    assert report.chunks_referenced == report.chunks_verified > 0
    assert report.inodes >= 6 and report.extents > 0


async def test_a_deleted_chunk_file_is_reported_missing(fs: Filesystem) -> None:
    inos = await populate(fs)
    victim = chunk_ids(fs, inos["big"])[1]
    fs.chunks.path(victim).unlink()  # type: ignore[attr-defined]
    report = await fsck(fs)
    assert [(f.kind, f.chunk) for f in report.findings] == [("chunk-missing", victim)]
    assert not fs.chunks.path(victim).exists()  # type: ignore[attr-defined]  # reported, not repaired


async def test_a_flipped_byte_is_found_only_when_verifying(fs: Filesystem) -> None:
    inos = await populate(fs)
    victim = chunk_ids(fs, inos["file"])[0]
    path = fs.chunks.path(victim)  # type: ignore[attr-defined]
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x40
    path.write_bytes(raw)
    assert (await fsck(fs)).clean  # existence alone cannot see it
    report = await fsck(fs, verify=True)
    assert [(f.kind, f.chunk) for f in report.findings] == [("chunk-corrupt", victim)]
    assert str(victim) in report.findings[0].detail or f"{victim:016x}" in report.findings[0].detail


async def test_a_wrong_reference_count_is_reported(fs: Filesystem) -> None:
    inos = await populate(fs)
    victim = chunk_ids(fs, inos["big"])[0]  # shared with the copy: 2 references

    def bump(txn) -> None:  # type: ignore[no-untyped-def]
        refs, size, sums = decode_chunk(txn.get("chunk", u64(victim)))
        assert refs == 2
        txn.put("chunk", u64(victim), encode_chunk(refs + 1, size, sums))
    await fs.meta.write(bump)
    report = await fsck(fs)
    assert [(f.kind, f.chunk) for f in report.findings] == [("refcount-mismatch", victim)]
    assert "records 3 references, extents hold 2" in report.findings[0].detail


async def test_a_wrong_nlink_and_a_dangling_entry_are_reported(fs: Filesystem) -> None:
    inos = await populate(fs)
    file_ino = inos["file"]

    def damage(txn) -> None:  # type: ignore[no-untyped-def]
        node = decode_inode(file_ino, txn.get("inode", u64(file_ino)))
        assert node.nlink == 2
        node.nlink = 3
        txn.put("inode", u64(file_ino), encode_inode(node))
        # an entry whose inode vanished
        txn.put("dirent", u64(ROOT_INO) + b"ghost", struct.pack(">QQ", 999_999, 77))
        txn.put("dirseq", struct.pack(">QQ", ROOT_INO, 77), b"ghost")
    await fs.meta.write(damage)
    report = await fsck(fs)
    assert sorted((f.kind, f.ino) for f in report.findings) == [
        ("dangling-dirent", 999_999), ("nlink-mismatch", file_ino)]


async def test_a_corrupt_inline_extent_is_reported(fs: Filesystem) -> None:
    inos = await populate(fs)
    small = inos["small"]

    def damage(txn) -> None:  # type: ignore[no-untyped-def]
        key, value = next(iter(txn.prefix("extent", u64(small))))
        txn.put("extent", key, value[:-1] + bytes([value[-1] ^ 1]))
    await fs.meta.write(damage)
    report = await fsck(fs)
    assert [(f.kind, f.ino) for f in report.findings] == [("inline-corrupt", small)]


async def test_an_extent_reading_past_its_chunk_end_is_reported(fs: Filesystem) -> None:
    inos = await populate(fs)
    victim = chunk_ids(fs, inos["file"])[0]  # the file's first chunk, read whole

    def shrink(txn) -> None:  # type: ignore[no-untyped-def]
        refs, size, sums = decode_chunk(txn.get("chunk", u64(victim)))
        txn.put("chunk", u64(victim), encode_chunk(refs, size - 10, sums))
    await fs.meta.write(shrink)
    report = await fsck(fs)
    assert [(f.kind, f.ino, f.chunk) for f in report.findings] == [
        ("extent-past-chunk-end", inos["file"], victim)]
    assert f"up to byte {CHUNK}" in report.findings[0].detail


async def test_a_wrong_directory_nlink_is_reported(fs: Filesystem) -> None:
    await populate(fs)
    await fs.mkdir(ROOT, ROOT_INO, b"sub")
    bucket = (await fs.lookup(ROOT, ROOT_INO, b"bkt")).ino

    def damage(txn) -> None:  # type: ignore[no-untyped-def]
        node = decode_inode(bucket, txn.get("inode", u64(bucket)))
        node.nlink += 1
        txn.put("inode", u64(bucket), encode_inode(node))
    assert (await fsck(fs)).clean  # the root's nlink counts bkt and sub
    await fs.meta.write(damage)
    report = await fsck(fs)
    assert [(f.kind, f.ino) for f in report.findings] == [("nlink-mismatch", bucket)]
    assert "expected 2" in report.findings[0].detail


async def test_an_unlinked_inode_missing_from_the_orphan_list_is_reported(fs: Filesystem) -> None:
    await populate(fs)
    f = await fs.create(ROOT, ROOT_INO, b"doomed")
    h = await fs.open(ROOT, f.ino, os.O_RDWR)
    await fs.unlink(ROOT, ROOT_INO, b"doomed")  # open here: nlink 0 and an orphan record
    try:
        assert (await fsck(fs)).clean

        def damage(txn) -> None:  # type: ignore[no-untyped-def]
            txn.delete("orphan", u64(f.ino))
        await fs.meta.write(damage)
        report = await fsck(fs)
        assert [(x.kind, x.ino) for x in report.findings] == [("orphan-untracked", f.ino)]
    finally:
        await fs.release(h.fh)


def test_the_command_exits_1_with_the_findings_and_0_when_clean(tmp_path: Path) -> None:
    import asyncio

    async def make() -> int:
        f = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK)
        await f.start()
        try:
            inos = await populate(f)
            return chunk_ids(f, inos["big"])[0]
        finally:
            await f.aclose()
    victim = asyncio.run(make())
    cmd = [sys.executable, "-m", "gateway.cli", "fsck", "--data", str(tmp_path / "data"), "--json"]
    ok = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["clean"] is True
    chunk_file = next(p for p in (tmp_path / "data" / "chunks").rglob("*")
                      if p.is_file() and p.name == f"{victim:016x}")
    chunk_file.unlink()
    bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert [f["kind"] for f in json.loads(bad.stdout)["findings"]] == ["chunk-missing"]
    text = subprocess.run(cmd[:-1], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert text.returncode == 1 and "chunk-missing" in text.stdout and "1 problem(s)" in text.stdout
