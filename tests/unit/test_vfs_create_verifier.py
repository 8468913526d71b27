"""vfs create with a verifier: what NFS EXCLUSIVE create needs (exactly-once on retry)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.vfs import ROOT, Exists, Filesystem
from metadata import ROOT_INO


async def test_a_retry_with_the_same_verifier_returns_the_file_it_made(vfs: Filesystem) -> None:
    made = await vfs.create(ROOT, ROOT_INO, b"f", 0o600, verifier=b"12345678")
    again = await vfs.create(ROOT, ROOT_INO, b"f", 0o600, verifier=b"12345678")
    assert again.ino == made.ino


async def test_another_verifier_or_a_plain_create_finds_the_name_taken(vfs: Filesystem) -> None:
    await vfs.create(ROOT, ROOT_INO, b"f", 0o600, verifier=b"12345678")
    with pytest.raises(Exists):
        await vfs.create(ROOT, ROOT_INO, b"f", 0o600, verifier=b"87654321")
    with pytest.raises(Exists):
        await vfs.create(ROOT, ROOT_INO, b"f", 0o600)
    await vfs.create(ROOT, ROOT_INO, b"g", 0o600)  # made without a verifier
    with pytest.raises(Exists):
        await vfs.create(ROOT, ROOT_INO, b"g", 0o600, verifier=bytes(8))


async def test_concurrent_retries_make_one_file(vfs: Filesystem) -> None:
    made = await asyncio.gather(*(vfs.create(ROOT, ROOT_INO, b"f", 0o600, verifier=b"v" * 8)
                                  for _ in range(8)))
    assert len({i.ino for i in made}) == 1
