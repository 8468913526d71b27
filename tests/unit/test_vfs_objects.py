"""Object operations of the vfs: atomic puts, reads, deletes, copies, folders, buckets."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat

import pytest

from gateway.vfs import (
    ROOT, AccessDenied, Caller, Exists, Filesystem, InvalidBucketName, InvalidKey, KeyConflict,
    NoSuchBucket, NotEmpty, NotFound, collect,
)
from metadata import ROOT_INO
from tests.unit.conftest import body_of

ALICE = Caller(1000, 1000)
BOB = Caller(1001, 1001)


async def keys(fs: Filesystem, bucket: str = "bkt", **kw: object) -> list[bytes]:
    page = await fs.list_objects(ROOT, bucket, **kw)  # type: ignore[arg-type]
    return [k for k, _ in page.keys]


async def lookup_path(fs: Filesystem, *names: bytes):
    ino = ROOT_INO
    inode = None
    for n in names:
        inode = await fs.lookup(ROOT, ino, n)
        ino = inode.ino
    return inode


async def test_put_then_get_returns_the_same_bytes_and_md5_etag(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    for size in (0, 1, 16 * 1024, 16 * 1024 + 1, 64 * 1024, 300_001):
        data = os.urandom(size)
        inode = await vfs.put_object(ROOT, "bkt", f"obj-{size}", body_of(data[:7], data[7:]))
        assert inode.size == size
        assert inode.etag == hashlib.md5(data).hexdigest()
        assert await vfs.read_object(ROOT, "bkt", f"obj-{size}") == data


async def test_ranged_reads_return_exactly_the_range(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    data = os.urandom(200_000)  # several 64 KiB chunks
    await vfs.put_object(ROOT, "bkt", "k", body_of(data))
    for start, end in [(0, 1), (65535, 65537), (100, 199_999), (131072, 200_000), (5, 5), (199_999, 10**9)]:
        assert await vfs.read_object(ROOT, "bkt", "k", start, end) == data[start:end]


async def test_overwrite_swaps_the_whole_object_and_frees_the_old_bytes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    old, new = os.urandom(150_000), os.urandom(70_000)
    first = await vfs.put_object(ROOT, "bkt", "k", body_of(old))
    second = await vfs.put_object(ROOT, "bkt", "k", body_of(new))
    assert second.ino != first.ino  # rename-over: a new inode takes the name
    assert await vfs.read_object(ROOT, "bkt", "k") == new
    with pytest.raises(NotFound):
        await vfs.getattr(first.ino)
    with vfs.meta.read() as txn:
        assert txn.count("trash") >= 3  # the old object's chunks wait out the grace
    report = await collect(vfs, grace_seconds=0)
    assert report.trash_chunks >= 3
    with vfs.meta.read() as txn:
        assert txn.count("trash") == 0
    assert await vfs.read_object(ROOT, "bkt", "k") == new


async def test_a_reader_sees_the_old_or_the_new_object_never_a_mix(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    versions = [bytes([i]) * 300_000 for i in range(1, 6)]
    await vfs.put_object(ROOT, "bkt", "k", body_of(versions[0]))

    async def writer() -> None:
        for v in versions[1:]:
            await vfs.put_object(ROOT, "bkt", "k", body_of(v[:100_000], v[100_000:]))

    async def reader() -> list[bytes]:
        seen = []
        for _ in range(20):
            seen.append(await vfs.read_object(ROOT, "bkt", "k"))
            await asyncio.sleep(0)
        return seen

    _, seen = await asyncio.gather(writer(), reader())
    for got in seen:
        assert got in versions


async def test_put_creates_implicit_folders_visible_on_the_mount(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "bkt")
    await vfs.put_object(ALICE, "bkt", "x/y/z.bin", body_of(b"hi"))
    z = await lookup_path(vfs, b"bkt", b"x", b"y", b"z.bin")
    y = await lookup_path(vfs, b"bkt", b"x", b"y")
    assert stat.S_ISDIR(y.mode) and stat.S_ISREG(z.mode)
    assert (z.uid, z.gid, y.uid) == (1000, 1000, 1000)  # owned by the identity that put it
    assert stat.S_IMODE(z.mode) == 0o644


async def test_deleting_the_last_object_removes_implicit_folders_but_not_explicit_ones(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    b = await lookup_path(vfs, b"bkt")
    await vfs.mkdir(ROOT, b.ino, b"kept")
    await vfs.put_object(ROOT, "bkt", "kept/a/obj", body_of(b"1"))
    await vfs.put_object(ROOT, "bkt", "gone/a/obj", body_of(b"1"))
    await vfs.delete_object(ROOT, "bkt", "kept/a/obj")
    await vfs.delete_object(ROOT, "bkt", "gone/a/obj")
    assert await keys(vfs) == [b"kept/"]  # an empty explicit folder lists as "kept/"
    with pytest.raises(NotFound):
        await lookup_path(vfs, b"bkt", b"gone")


async def test_folder_marker_keys_create_folders_that_stay(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "f/", body_of())
    await vfs.put_object(ROOT, "bkt", "f/obj", body_of(b"x"))
    assert await keys(vfs) == [b"f/", b"f/obj"]
    await vfs.delete_object(ROOT, "bkt", "f/obj")
    assert await keys(vfs) == [b"f/"]
    with pytest.raises(InvalidKey):
        await vfs.put_object(ROOT, "bkt", "g/", body_of(b"not empty"))
    await vfs.delete_object(ROOT, "bkt", "f/")
    assert await keys(vfs) == []


async def test_deleting_a_marker_of_a_non_empty_folder_keeps_its_objects(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "f/", body_of())
    await vfs.put_object(ROOT, "bkt", "f/obj", body_of(b"x"))
    await vfs.delete_object(ROOT, "bkt", "f/")
    assert await keys(vfs) == [b"f/obj"]
    await vfs.delete_object(ROOT, "bkt", "f/obj")
    assert await keys(vfs) == []  # the folder became implicit and vanished with its last object


async def test_an_object_below_an_object_and_the_reverse_are_refused(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "x", body_of(b"file"))
    with pytest.raises(KeyConflict):
        await vfs.put_object(ROOT, "bkt", "x/y", body_of(b"below a file"))
    await vfs.put_object(ROOT, "bkt", "d/y", body_of(b"1"))
    with pytest.raises(KeyConflict):
        await vfs.put_object(ROOT, "bkt", "d", body_of(b"onto a folder"))
    assert await keys(vfs) == [b"d/y", b"x"]
    assert await vfs.read_object(ROOT, "bkt", "x") == b"file"


@pytest.mark.parametrize("key", ["a//b", "a/../b", "./a", "a\x00", "k" * 256, "/lead"])
async def test_impossible_keys_store_nothing(vfs: Filesystem, key: str) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    with vfs.meta.read() as txn:
        before = (txn.count("inode"), txn.count("extent"), txn.count("chunk"))
    with pytest.raises(InvalidKey):
        await vfs.put_object(ROOT, "bkt", key, body_of(os.urandom(100_000)))
    with vfs.meta.read() as txn:
        assert (txn.count("inode"), txn.count("extent"), txn.count("chunk")) == before
    assert await keys(vfs) == []


async def test_a_refused_precondition_commits_nothing_and_discards_chunks(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"original"))

    def if_none_match(existing: object) -> None:
        if existing is not None:
            raise Exists("precondition failed")

    with pytest.raises(Exists):
        await vfs.put_object(ROOT, "bkt", "k", body_of(os.urandom(200_000)), precondition=if_none_match)
    assert await vfs.read_object(ROOT, "bkt", "k") == b"original"
    stored = [cid async for cid, _ in vfs.chunks.ids()]
    assert stored == []  # the refused body's chunks were removed at once


async def test_copy_shares_chunks_and_copies_no_bytes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.create_bucket(ROOT, "ccc")
    data = os.urandom(300_000)
    src = await vfs.put_object(ROOT, "bkt", "src", body_of(data), content_type="image/png",
                               xattrs={b"user.s3.meta.color": b"blue"})
    chunks_before = [cid async for cid, _ in vfs.chunks.ids()]
    dst = await vfs.copy_object(ROOT, "bkt", "src", "ccc", "deep/dst")
    assert [cid async for cid, _ in vfs.chunks.ids()] == chunks_before  # no new chunk
    assert await vfs.read_object(ROOT, "ccc", "deep/dst") == data
    assert (dst.etag, dst.content_type, dst.size) == (src.etag, "image/png", len(data))
    assert await vfs.object_xattrs(ROOT, "ccc", "deep/dst") == {b"user.s3.meta.color": b"blue"}
    # Deleting the source leaves the copy whole (reference counts).
    await vfs.delete_object(ROOT, "bkt", "src")
    await collect(vfs, grace_seconds=0)
    assert await vfs.read_object(ROOT, "ccc", "deep/dst") == data
    await vfs.delete_object(ROOT, "ccc", "deep/dst")
    await collect(vfs, grace_seconds=0)
    assert [cid async for cid, _ in vfs.chunks.ids()] == []


async def test_copy_with_replaced_metadata(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "src", body_of(b"x"), content_type="a/b",
                         xattrs={b"user.s3.meta.k": b"v"})
    dst = await vfs.copy_object(ROOT, "bkt", "src", "bkt", "dst", content_type="c/d", xattrs={})
    assert dst.content_type == "c/d"
    assert await vfs.object_xattrs(ROOT, "bkt", "dst") == {}


async def test_user_metadata_is_visible_as_xattrs_on_the_mount(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    inode = await vfs.put_object(ROOT, "bkt", "k", body_of(b"x"),
                                 xattrs={b"user.s3.meta.owner": b"team-a"})
    assert await vfs.getxattr(ROOT, inode.ino, b"user.s3.meta.owner") == b"team-a"


async def test_buckets_are_top_level_directories(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "alpha")
    await vfs.mkdir(ROOT, ROOT_INO, b"made-by-mkdir")
    await vfs.mkdir(ROOT, ROOT_INO, b"Not_A_Bucket")
    names = [n for n, _ in await vfs.list_buckets(ROOT)]
    assert names == ["alpha", "made-by-mkdir"]
    with pytest.raises(Exists):
        await vfs.create_bucket(BOB, "alpha")
    with pytest.raises(InvalidBucketName):
        await vfs.create_bucket(ROOT, "Bad_Name")
    with pytest.raises(NoSuchBucket):
        await vfs.put_object(ROOT, "missing", "k", body_of(b"x"))


async def test_delete_bucket_needs_it_empty_and_owned(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "alpha")
    await vfs.put_object(ALICE, "alpha", "k", body_of(b"x"))
    with pytest.raises(NotEmpty):
        await vfs.delete_bucket(ALICE, "alpha")
    await vfs.delete_object(ALICE, "alpha", "k")
    with pytest.raises(AccessDenied):
        await vfs.delete_bucket(BOB, "alpha")
    await vfs.delete_bucket(ALICE, "alpha")
    assert await vfs.list_buckets(ROOT) == []


async def test_another_identity_cannot_touch_a_private_bucket(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "private", mode=0o700)
    await vfs.put_object(ALICE, "private", "secret", body_of(b"s"))
    with pytest.raises(AccessDenied):
        await vfs.read_object(BOB, "private", "secret")
    with pytest.raises(AccessDenied):
        await vfs.put_object(BOB, "private", "intruder", body_of(b"x"))
    with pytest.raises(AccessDenied):
        await vfs.delete_object(BOB, "private", "secret")
    with pytest.raises(AccessDenied):
        await vfs.list_objects(BOB, "private")
    assert await vfs.read_object(ALICE, "private", "secret") == b"s"


async def test_a_shared_bucket_lets_others_read_but_not_write(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "shared", mode=0o755)
    await vfs.put_object(ALICE, "shared", "doc", body_of(b"d"))
    assert await vfs.read_object(BOB, "shared", "doc") == b"d"
    with pytest.raises(AccessDenied):
        await vfs.put_object(BOB, "shared", "doc", body_of(b"overwrite"))
    assert await vfs.read_object(ALICE, "shared", "doc") == b"d"


async def test_missing_keys_raise_not_found(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "a/b", body_of(b"x"))
    for key in ("nope", "a", "a/", "a/b/c", "a/b/"):
        with pytest.raises(NotFound):
            await vfs.stat_object(ROOT, "bkt", key)
        with pytest.raises(NotFound):
            await vfs.delete_object(ROOT, "bkt", key)
    assert await keys(vfs) == [b"a/b"]


async def test_a_failed_chunk_write_commits_nothing(vfs: Filesystem, tmp_path) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"before"))

    async def body():
        yield os.urandom(100_000)
        raise ConnectionResetError("client went away mid-body")

    with pytest.raises(ConnectionResetError):
        await vfs.put_object(ROOT, "bkt", "k", body())
    assert await vfs.read_object(ROOT, "bkt", "k") == b"before"
    assert [cid async for cid, _ in vfs.chunks.ids()] == []  # the partial body's chunks went


async def test_a_flipped_byte_on_disk_fails_the_read_naming_the_chunk(vfs: Filesystem) -> None:
    from gateway.vfs import DataCorrupt
    await vfs.create_bucket(ROOT, "bkt")
    data = os.urandom(200_000)
    await vfs.put_object(ROOT, "bkt", "k", body_of(data))
    from metadata import namespace as ns
    ino = (await vfs.stat_object(ROOT, "bkt", "k")).ino
    with vfs.meta.read() as txn:  # the chunk holding file bytes 65536..131071
        second = next(e.chunk_id for e in ns.extents(txn, ino) if e.offset == 65536)
    victim = vfs.chunks.path(second)
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0x01
    victim.write_bytes(raw)
    with pytest.raises(DataCorrupt, match=f"{second:016x}"):
        await vfs.read_object(ROOT, "bkt", "k")
    # Bytes outside the damaged chunk still read; nothing corrupt is ever returned.
    assert await vfs.read_object(ROOT, "bkt", "k", 0, 65536) == data[:65536]
    assert await vfs.read_object(ROOT, "bkt", "k", 131072) == data[131072:]


async def test_reading_an_object_needs_search_permission_on_every_folder_above_it(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "shared", mode=0o755)
    await vfs.put_object(ALICE, "shared", "a/b/doc", body_of(b"d"))
    b_dir = await lookup_path(vfs, b"shared", b"a", b"b")
    await vfs.setattr(ALICE, b_dir.ino, mode=0o750)  # others lose search on a/b only
    with pytest.raises(AccessDenied):
        await vfs.read_object(BOB, "shared", "a/b/doc")
    with pytest.raises(AccessDenied):
        await vfs.stat_object(BOB, "shared", "a/b/doc")
    assert await vfs.read_object(Caller(1001, 1001, frozenset({1000})), "shared", "a/b/doc") == b"d"
    assert await vfs.read_object(ALICE, "shared", "a/b/doc") == b"d"
    assert await vfs.read_object(ROOT, "shared", "a/b/doc") == b"d"
    await vfs.setattr(ALICE, b_dir.ino, mode=0o754)  # read without search still cannot pass
    with pytest.raises(AccessDenied):
        await vfs.read_object(BOB, "shared", "a/b/doc")


async def test_a_ranged_read_of_a_one_extent_object_returns_only_that_range(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    data = os.urandom(10_000)  # one inline extent
    await vfs.put_object(ROOT, "bkt", "k", body_of(data))
    assert await vfs.read_object(ROOT, "bkt", "k", 0, 100) == data[:100]
    assert await vfs.read_object(ROOT, "bkt", "k", 0, 0) == b""
    assert await vfs.read_object(ROOT, "bkt", "k", 5, 10_000) == data[5:]
