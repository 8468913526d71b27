"""GET's cache of recently opened small objects (vfs.objects.RecentObject) never serves
what the metadata no longer says: changed bytes, xattrs or permissions, a replaced or
deleted key, or another caller's rights."""

from __future__ import annotations

import os

import pytest

from gateway.vfs import ROOT, AccessDenied, Caller, Filesystem, NotFound
from gateway.vfs import objects as vobjects
from metadata import ROOT_INO
from tests.unit.conftest import body_of

ALICE = Caller(1000, 1000)
BOB = Caller(1001, 1001)


async def read_twice(fs: Filesystem, caller: Caller, key: str, bucket: str = "bkt") -> bytes:
    """Read key twice: the second read is the one a warm cache answers."""
    first = await fs.read_object(caller, bucket, key)
    second = await fs.read_object(caller, bucket, key)
    assert first == second
    return second


async def test_a_repeated_get_is_answered_from_the_recent_object(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"abc"))
    first = await vfs.get_object(ROOT, "bkt", "k")
    second = await vfs.get_object(ROOT, "bkt", "k")
    assert second.inode is first.inode and second.plan is first.plan  # not decoded again
    assert await read_twice(vfs, ROOT, "k") == b"abc"


async def test_an_overwritten_key_reads_its_new_bytes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"old!"))
    assert await read_twice(vfs, ROOT, "k") == b"old!"
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"new!"))
    assert await read_twice(vfs, ROOT, "k") == b"new!"


async def test_bytes_written_in_place_through_the_mount_half_are_read(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"0123456789"))
    assert await read_twice(vfs, ROOT, "k") == b"0123456789"
    ino = (await vfs.lookup(ROOT, (await vfs.lookup(ROOT, ROOT_INO, b"bkt")).ino, b"k")).ino
    for payload in (b"ab", b"cd"):  # same size, same inode, the bytes differ each time
        h = await vfs.open(ROOT, ino, os.O_RDWR)
        await vfs.write(h.fh, 3, payload)
        await vfs.flush(h.fh)
        await vfs.release(h.fh)
        assert await read_twice(vfs, ROOT, "k") == b"012" + payload + b"56789"


async def test_changed_xattrs_are_seen(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"x"), xattrs={b"user.s3.meta.color": b"red"})
    assert (await vfs.get_object(ROOT, "bkt", "k")).xattrs == {b"user.s3.meta.color": b"red"}
    ino = (await vfs.stat_object(ROOT, "bkt", "k")).ino
    await vfs.setxattr(ROOT, ino, b"user.s3.meta.color", b"blue")
    assert (await vfs.get_object(ROOT, "bkt", "k")).xattrs == {b"user.s3.meta.color": b"blue"}
    await vfs.removexattr(ROOT, ino, b"user.s3.meta.color")
    assert (await vfs.get_object(ROOT, "bkt", "k")).xattrs == {}


async def test_a_deleted_key_is_not_found_after_being_read(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "k", body_of(b"x"))
    await read_twice(vfs, ROOT, "k")
    await vfs.delete_object(ROOT, "bkt", "k")
    with pytest.raises(NotFound):
        await vfs.get_object(ROOT, "bkt", "k")


async def test_each_caller_is_checked_even_when_the_object_is_recent(vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "shared", mode=0o755)
    await vfs.put_object(ALICE, "shared", "mine", body_of(b"m"))
    ino = (await vfs.stat_object(ALICE, "shared", "mine")).ino
    await vfs.setattr(ALICE, ino, mode=0o600)
    assert await read_twice(vfs, ALICE, "mine", bucket="shared") == b"m"
    with pytest.raises(AccessDenied):  # the record the cache holds is unchanged: still refused
        await vfs.get_object(BOB, "shared", "mine")
    await vfs.setattr(ALICE, ino, mode=0o644)
    assert await read_twice(vfs, BOB, "mine", bucket="shared") == b"m"
    await vfs.setattr(ALICE, ino, mode=0o600)
    with pytest.raises(AccessDenied):
        await vfs.get_object(BOB, "shared", "mine")


async def test_search_permission_on_folders_is_checked_even_when_the_object_is_recent(
        vfs: Filesystem) -> None:
    await vfs.create_bucket(ALICE, "shared", mode=0o755)
    await vfs.put_object(ALICE, "shared", "a/doc", body_of(b"d"))
    assert await read_twice(vfs, BOB, "a/doc", bucket="shared") == b"d"
    folder = await vfs.lookup(ROOT, (await vfs.lookup(ROOT, ROOT_INO, b"shared")).ino, b"a")
    await vfs.setattr(ALICE, folder.ino, mode=0o750)  # the object's own record is unchanged
    with pytest.raises(AccessDenied):
        await vfs.get_object(BOB, "shared", "a/doc")
    assert await read_twice(vfs, ALICE, "a/doc", bucket="shared") == b"d"


async def test_folder_keys_are_never_kept(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "dir/", body_of())
    await vfs.get_object(ROOT, "bkt", "dir/")
    assert all(not r.inode.is_dir for r in vfs._recent_objects.values())


async def test_the_recent_objects_stay_bounded(vfs: Filesystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vobjects, "RECENT_OBJECTS", 4)
    await vfs.create_bucket(ROOT, "bkt")
    for i in range(10):
        await vfs.put_object(ROOT, "bkt", f"k{i}", body_of(b"%d" % i))
        assert await vfs.read_object(ROOT, "bkt", f"k{i}") == b"%d" % i
        assert len(vfs._recent_objects) <= 4
    for i in range(10):  # evicted or not, each reads its own bytes
        assert await vfs.read_object(ROOT, "bkt", f"k{i}") == b"%d" % i


async def test_large_objects_are_not_kept(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    data = os.urandom(vobjects.RECENT_OBJECT_BYTES + 1)
    await vfs.put_object(ROOT, "bkt", "big", body_of(data))
    assert await read_twice(vfs, ROOT, "big") == data
    assert vfs._recent_objects == {}
