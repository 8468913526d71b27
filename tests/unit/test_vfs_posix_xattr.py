"""POSIX half of the vfs: extended attributes (set/get/list/remove, flags, limits,
permissions) and statfs, on a real LMDB + local chunk store in tmp_path."""

from __future__ import annotations

import errno

import pytest

from gateway.vfs import ROOT, AccessDenied, Caller, Exists, Filesystem, FsError, Invalid, NotPermitted
from metadata import ROOT_INO

CHUNK = 64 * 1024
ALICE = Caller(1000, 1000)
BOB = Caller(1001, 1001)


async def open_dir(fs: Filesystem, name: bytes = b"pub", mode: int = 0o777) -> int:
    """A directory (root-owned) where non-root callers may create."""
    return (await fs.mkdir(ROOT, ROOT_INO, name, mode)).ino


# -- xattrs -----------------------------------------------------------------------------------------

async def test_xattr_set_get_list_remove(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    await fs.setxattr(ROOT, f.ino, b"user.a", b"1")
    await fs.setxattr(ROOT, f.ino, b"user.b", b"\x00binary\xff")
    await fs.setxattr(ROOT, f.ino, b"trusted.c", b"")
    assert await fs.getxattr(ROOT, f.ino, b"user.a") == b"1"
    assert await fs.getxattr(ROOT, f.ino, b"user.b") == b"\x00binary\xff"
    assert await fs.getxattr(ROOT, f.ino, b"trusted.c") == b""
    assert sorted(await fs.listxattr(ROOT, f.ino)) == [b"trusted.c", b"user.a", b"user.b"]
    await fs.setxattr(ROOT, f.ino, b"user.a", b"2")  # plain set replaces
    assert await fs.getxattr(ROOT, f.ino, b"user.a") == b"2"
    await fs.removexattr(ROOT, f.ino, b"user.a")
    assert sorted(await fs.listxattr(ROOT, f.ino)) == [b"trusted.c", b"user.b"]
    with pytest.raises(FsError) as ei:
        await fs.getxattr(ROOT, f.ino, b"user.a")
    assert ei.value.errno == errno.ENODATA


async def test_xattrs_belong_to_their_inode(fs: Filesystem) -> None:
    a = await fs.create(ROOT, ROOT_INO, b"a")
    b = await fs.create(ROOT, ROOT_INO, b"b")
    await fs.setxattr(ROOT, a.ino, b"user.k", b"a")
    assert await fs.listxattr(ROOT, b.ino) == []
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    await fs.setxattr(ROOT, d.ino, b"user.k", b"dir")
    assert await fs.getxattr(ROOT, d.ino, b"user.k") == b"dir"
    assert await fs.getxattr(ROOT, a.ino, b"user.k") == b"a"


async def test_xattr_create_flag_on_an_existing_attribute_raises_exists(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    await fs.setxattr(ROOT, f.ino, b"user.a", b"1", create=True)
    with pytest.raises(Exists) as ei:
        await fs.setxattr(ROOT, f.ino, b"user.a", b"2", create=True)
    assert ei.value.errno == errno.EEXIST
    assert await fs.getxattr(ROOT, f.ino, b"user.a") == b"1"


async def test_xattr_replace_of_a_missing_attribute_raises_enodata(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(FsError) as ei:
        await fs.setxattr(ROOT, f.ino, b"user.a", b"1", replace_only=True)
    assert ei.value.errno == errno.ENODATA
    assert await fs.listxattr(ROOT, f.ino) == []
    await fs.setxattr(ROOT, f.ino, b"user.a", b"1")
    await fs.setxattr(ROOT, f.ino, b"user.a", b"2", replace_only=True)
    assert await fs.getxattr(ROOT, f.ino, b"user.a") == b"2"


async def test_removing_a_missing_xattr_raises_enodata(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(FsError) as ei:
        await fs.removexattr(ROOT, f.ino, b"user.nope")
    assert ei.value.errno == errno.ENODATA


async def test_xattr_name_and_value_limits(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(Invalid):
        await fs.setxattr(ROOT, f.ino, b"", b"v")
    with pytest.raises(FsError) as ei:
        await fs.setxattr(ROOT, f.ino, b"user.big", b"v" * (64 * 1024 + 1))
    assert ei.value.errno == errno.E2BIG
    await fs.setxattr(ROOT, f.ino, b"user.max", b"v" * (64 * 1024))
    assert len(await fs.getxattr(ROOT, f.ino, b"user.max")) == 64 * 1024


async def test_non_owner_without_write_permission_cannot_set_user_xattrs(fs: Filesystem) -> None:
    pub = await open_dir(fs)
    f = await fs.create(ALICE, pub, b"f", 0o644)
    await fs.setxattr(ALICE, f.ino, b"user.k", b"mine")
    with pytest.raises(AccessDenied) as ei:
        await fs.setxattr(BOB, f.ino, b"user.k", b"bob")
    assert ei.value.errno == errno.EACCES
    with pytest.raises(AccessDenied):
        await fs.removexattr(BOB, f.ino, b"user.k")
    assert await fs.getxattr(BOB, f.ino, b"user.k") == b"mine"  # reading needs only r


async def test_non_owner_with_write_permission_may_set_user_but_not_other_xattrs(fs: Filesystem) -> None:
    pub = await open_dir(fs)
    f = await fs.create(ALICE, pub, b"f", 0o666)
    await fs.setxattr(BOB, f.ino, b"user.k", b"bob")
    assert await fs.getxattr(ALICE, f.ino, b"user.k") == b"bob"
    with pytest.raises(NotPermitted):
        await fs.setxattr(BOB, f.ino, b"trusted.k", b"bob")
    with pytest.raises(FsError):
        await fs.getxattr(ALICE, f.ino, b"trusted.k")


async def test_reading_xattrs_needs_read_permission(fs: Filesystem) -> None:
    pub = await open_dir(fs)
    f = await fs.create(ALICE, pub, b"f", 0o600)
    await fs.setxattr(ALICE, f.ino, b"user.k", b"secret")
    with pytest.raises(AccessDenied):
        await fs.getxattr(BOB, f.ino, b"user.k")


# -- statfs ---------------------------------------------------------------------------------------

async def test_statfs_reports_positive_sizes_and_counts(fs: Filesystem) -> None:
    await fs.create(ROOT, ROOT_INO, b"f")
    st = await fs.statfs()
    for key in ("bsize", "blocks", "bfree", "bavail", "files", "ffree", "namemax"):
        assert st[key] > 0, key
    assert st["namemax"] == 255
    assert st["bfree"] <= st["blocks"] and st["bavail"] <= st["blocks"]
    assert st["files"] >= 2  # root and f at least
