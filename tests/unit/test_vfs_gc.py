"""The collector's report: exactly the bytes it deleted, and progress while it runs
(on both chunk backends: local files and an s3 store served by moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chunkstore.select import BackendSpec
from gateway.vfs import ROOT, Filesystem, collect
from tests.s3backends import session_backend
from tests.unit.conftest import body_of

CHUNK = 64 * 1024
# Sizes whose every chunk (tail included) is above INLINE_MAX, so all their bytes are
# in chunks: 2 full chunks + 20_000, 1 chunk + 30_000, one short chunk.
SIZES = (2 * CHUNK + 20_000, CHUNK + 30_000, 50_000)
ORPHAN = 123_457  # a chunk no metadata knows (a crash between upload and commit)


@pytest.fixture(params=["local", "moto"])
async def fs(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Filesystem]:
    spec = None
    if request.param == "moto":
        moto = session_backend("moto")
        monkeypatch.setenv("SAMEBYTES_CHUNKS_ACCESS_KEY", moto.access_key)
        monkeypatch.setenv("SAMEBYTES_CHUNKS_SECRET_KEY", moto.secret_key)
        spec = BackendSpec(url=f"s3://{moto.new_bucket()}/c", endpoint=moto.endpoint,
                           cache_size=0)
    f = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK, grace_seconds=0,
                                 chunks=spec)
    await f.start()
    try:
        yield f
    finally:
        await f.aclose()


async def _garbage(fs: Filesystem) -> int:
    """Objects written and deleted, plus one orphan chunk: the bytes a pass must free."""
    await fs.create_bucket(ROOT, "bkt")
    for i, size in enumerate(SIZES):
        await fs.put_object(ROOT, "bkt", f"k{i}", body_of(os.urandom(size)))
    await fs.put_object(ROOT, "bkt", "kept", body_of(os.urandom(CHUNK + 40_000)))
    for i in range(len(SIZES)):
        await fs.delete_object(ROOT, "bkt", f"k{i}")
    await fs.chunks.put(0x7FFF_0000_0000_0001, os.urandom(ORPHAN))
    return sum(SIZES) + ORPHAN


async def test_gc_reports_exactly_the_bytes_it_deleted_and_progress(fs: Filesystem) -> None:
    want = await _garbage(fs)
    before = {cid async for cid, _ in fs.chunks.ids()}
    lines: list[str] = []
    report = await collect(fs, grace_seconds=0, progress=lines.append, progress_every=0)
    after = {cid async for cid, _ in fs.chunks.ids()}
    assert report.trash_chunks == 3 + 2 + 1
    assert report.unreferenced_chunks == 1
    assert report.bytes_freed == want
    assert len(before - after) == 7 and len(after) == 2  # the kept object's two chunks
    assert report.chunks_listed == len(before)
    assert any(line.endswith("chunks listed") for line in lines)
    assert any("trashed chunks deleted" in line for line in lines)
    assert any("unreferenced chunks deleted" in line for line in lines)
    assert lines[-1] == f"gc: done: 7 chunks deleted, {want:,} bytes freed, 0 errors"
    assert await fs.read_object(ROOT, "bkt", "kept") is not None
    again = await collect(fs, grace_seconds=0)
    assert (again.bytes_freed, again.trash_chunks, again.unreferenced_chunks) == (0, 0, 0)


async def test_gc_reports_nothing_but_the_summary_between_ticks(fs: Filesystem) -> None:
    await _garbage(fs)
    lines: list[str] = []
    report = await collect(fs, grace_seconds=0, progress=lines.append, progress_every=3600)
    assert lines == [f"gc: done: 7 chunks deleted, {report.bytes_freed:,} bytes freed, 0 errors"]


def test_samebytes_gc_prints_bytes_freed_and_progress_on_stderr(tmp_path: Path) -> None:
    import asyncio

    async def prepare() -> int:
        f = Filesystem.from_data_dir(tmp_path / "data", chunk_size=CHUNK, grace_seconds=0)
        await f.start()
        try:
            return await _garbage(f)
        finally:
            await f.aclose()

    want = asyncio.run(prepare())
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "gc", "--data",
                          str(tmp_path / "data"), "--grace", "0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["bytes_freed"] == want
    assert report["trash_chunks"] == 6 and report["unreferenced_chunks"] == 1
    assert f"gc: done: 7 chunks deleted, {want:,} bytes freed" in out.stderr
