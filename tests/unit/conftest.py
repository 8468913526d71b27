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
