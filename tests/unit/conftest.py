from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.vfs import Filesystem


async def body_of(*pieces: bytes) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Filesystem]:
    """A real Filesystem (LMDB + local chunks) with small chunks, so files span many."""
    fs = Filesystem.from_data_dir(tmp_path / "data", chunk_size=64 * 1024, grace_seconds=0)
    await fs.start()
    try:
        yield fs
    finally:
        await fs.aclose()


@pytest.fixture
async def fs(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Filesystem]:
    """A started Filesystem in a fresh data folder, with the test module's CHUNK size
    (small chunks make files span many)."""
    f = Filesystem.from_data_dir(tmp_path / "data", chunk_size=request.module.CHUNK)
    await f.start()
    try:
        yield f
    finally:
        await f.aclose()
