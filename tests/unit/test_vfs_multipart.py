"""Multipart uploads in the vfs: parts share chunks with the completed object."""

from __future__ import annotations

import hashlib
import os

import pytest

from gateway.vfs import (
    ROOT, AccessDenied, Caller, EntityTooSmall, Filesystem, InvalidPart, InvalidPartOrder,
    NoSuchUpload, collect, multipart_etag, part_range,
)
from tests.unit.conftest import body_of

MIN = 100_000  # a small minimum part size keeps the tests fast


async def stored(fs: Filesystem) -> set[int]:
    return {cid async for cid, _ in fs.chunks.ids()}


async def test_complete_assembles_parts_without_copying_bytes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    uid = await vfs.create_upload(ROOT, "bkt", "big/obj", content_type="application/x-parquet")
    parts = [os.urandom(150_000), os.urandom(150_000), os.urandom(20_000)]
    etags = []
    for n, p in enumerate(parts, 1):
        part = await vfs.upload_part(ROOT, "bkt", "big/obj", uid, n, body_of(p))
        assert part.etag == hashlib.md5(p).hexdigest() and part.size == len(p)
        etags.append((n, part.etag))
    chunks_before = await stored(vfs)
    inode = await vfs.complete_upload(ROOT, "bkt", "big/obj", uid, etags, min_part_size=MIN)
    assert await stored(vfs) == chunks_before  # no chunk written by completion
    whole = b"".join(parts)
    assert await vfs.read_object(ROOT, "bkt", "big/obj") == whole
    assert inode.etag == multipart_etag([e for _, e in etags]) and inode.etag.endswith("-3")
    assert inode.content_type == "application/x-parquet"
    assert part_range(inode, 2) == (150_000, 300_000)
    assert part_range(inode, 4) is None
    with pytest.raises(NoSuchUpload):  # the upload is gone
        await vfs.list_parts(ROOT, "bkt", "big/obj", uid)


async def test_unlisted_parts_are_freed_on_completion(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    uid = await vfs.create_upload(ROOT, "bkt", "k")
    p1 = await vfs.upload_part(ROOT, "bkt", "k", uid, 1, body_of(os.urandom(120_000)))
    await vfs.upload_part(ROOT, "bkt", "k", uid, 2, body_of(os.urandom(120_000)))
    await vfs.complete_upload(ROOT, "bkt", "k", uid, [(1, p1.etag)], min_part_size=MIN)
    await collect(vfs, grace_seconds=0)
    with vfs.meta.read() as txn:
        referenced = {int.from_bytes(k, "big") for k, _ in txn.range("chunk", b"")}
    assert await stored(vfs) == referenced  # part 2's chunks are gone


async def test_completion_checks_order_etags_and_sizes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    uid = await vfs.create_upload(ROOT, "bkt", "k")
    small = await vfs.upload_part(ROOT, "bkt", "k", uid, 1, body_of(b"x" * 10))
    big = await vfs.upload_part(ROOT, "bkt", "k", uid, 2, body_of(b"y" * MIN))
    with pytest.raises(InvalidPartOrder):
        await vfs.complete_upload(ROOT, "bkt", "k", uid, [(2, big.etag), (1, small.etag)], min_part_size=MIN)
    with pytest.raises(InvalidPart):
        await vfs.complete_upload(ROOT, "bkt", "k", uid, [(1, "0" * 32)], min_part_size=MIN)
    with pytest.raises(InvalidPart):
        await vfs.complete_upload(ROOT, "bkt", "k", uid, [(3, big.etag)], min_part_size=MIN)
    with pytest.raises(EntityTooSmall):
        await vfs.complete_upload(ROOT, "bkt", "k", uid, [(1, small.etag), (2, big.etag)], min_part_size=MIN)
    # A small LAST part is fine; quoted ETags (as clients send them) match.
    inode = await vfs.complete_upload(ROOT, "bkt", "k", uid, [(2, f'"{big.etag}"'), ], min_part_size=MIN)
    assert inode.size == MIN


async def test_a_reuploaded_part_replaces_the_old_one(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    uid = await vfs.create_upload(ROOT, "bkt", "k")
    await vfs.upload_part(ROOT, "bkt", "k", uid, 1, body_of(os.urandom(120_000)))
    again = await vfs.upload_part(ROOT, "bkt", "k", uid, 1, body_of(b"second" * 30_000))
    _, parts, truncated = await vfs.list_parts(ROOT, "bkt", "k", uid)
    assert [(p.number, p.etag) for p in parts] == [(1, again.etag)] and not truncated
    await vfs.complete_upload(ROOT, "bkt", "k", uid, [(1, again.etag)], min_part_size=MIN)
    assert await vfs.read_object(ROOT, "bkt", "k") == b"second" * 30_000


async def test_abort_frees_every_part(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    uid = await vfs.create_upload(ROOT, "bkt", "k")
    for n in (1, 2, 3):
        await vfs.upload_part(ROOT, "bkt", "k", uid, n, body_of(os.urandom(120_000)))
    await vfs.abort_upload(ROOT, "bkt", "k", uid)
    await collect(vfs, grace_seconds=0)
    assert await stored(vfs) == set()
    with pytest.raises(NoSuchUpload):
        await vfs.upload_part(ROOT, "bkt", "k", uid, 4, body_of(b"late"))
    assert (await vfs.list_uploads(ROOT, "bkt"))[0] == []


async def test_upload_part_copy_shares_the_source_range(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    src = os.urandom(300_000)
    await vfs.put_object(ROOT, "bkt", "src", body_of(src))
    before = await stored(vfs)
    uid = await vfs.create_upload(ROOT, "bkt", "dst")
    p1 = await vfs.upload_part_copy(ROOT, "bkt", "dst", uid, 1, "bkt", "src", 0, 200_000)
    p2 = await vfs.upload_part_copy(ROOT, "bkt", "dst", uid, 2, "bkt", "src", 250_000, 300_000)
    assert p1.etag == hashlib.md5(src[:200_000]).hexdigest()
    assert await stored(vfs) == before
    await vfs.complete_upload(ROOT, "bkt", "dst", uid, [(1, p1.etag), (2, p2.etag)], min_part_size=MIN)
    assert await vfs.read_object(ROOT, "bkt", "dst") == src[:200_000] + src[250_000:]
    await vfs.delete_object(ROOT, "bkt", "src")
    await collect(vfs, grace_seconds=0)
    assert await vfs.read_object(ROOT, "bkt", "dst") == src[:200_000] + src[250_000:]


async def test_list_uploads_in_key_order_with_markers_and_prefixes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    ids = {}
    for key in ("b", "a/2", "a/1", "c"):
        ids[key] = await vfs.create_upload(ROOT, "bkt", key)
    uploads, prefixes, truncated = await vfs.list_uploads(ROOT, "bkt")
    assert [u.key for u in uploads] == ["a/1", "a/2", "b", "c"] and not truncated
    uploads, prefixes, _ = await vfs.list_uploads(ROOT, "bkt", delimiter="/")
    assert [u.key for u in uploads] == ["b", "c"] and prefixes == ["a/"]
    uploads, _, _ = await vfs.list_uploads(ROOT, "bkt", key_marker="a/2")
    assert [u.key for u in uploads] == ["b", "c"]
    uploads, _, truncated = await vfs.list_uploads(ROOT, "bkt", max_uploads=2)
    assert len(uploads) == 2 and truncated


async def test_another_user_cannot_touch_an_upload(vfs: Filesystem) -> None:
    alice, bob = Caller(1000, 1000), Caller(1001, 1001)
    await vfs.create_bucket(alice, "bkt", mode=0o777)
    uid = await vfs.create_upload(alice, "bkt", "k")
    with pytest.raises(AccessDenied):
        await vfs.upload_part(bob, "bkt", "k", uid, 1, body_of(b"x"))
    with pytest.raises(AccessDenied):
        await vfs.abort_upload(bob, "bkt", "k", uid)
    with pytest.raises(NoSuchUpload):
        await vfs.abort_upload(alice, "bkt", "other-key", uid)
