"""POSIX half of the vfs: the permission model as seen by non-root callers (mode bits,
ownership, groups, sticky directories, chmod/chown/utimens), on a real LMDB + chunk store."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from gateway.vfs import (
    ROOT, UTIME_NOW, AccessDenied, Caller, Filesystem, NotFound, NotPermitted,
)
from metadata import ROOT_INO

CHUNK = 64 * 1024
ALICE = Caller(1000, 1000)
BOB = Caller(1001, 1001)
STAFF = 500
CAROL = Caller(1002, 1002, frozenset({STAFF}))  # member of STAFF by supplementary group


async def pub(fs: Filesystem, mode: int = 0o777, name: bytes = b"pub") -> int:
    """A root-owned directory with the given mode."""
    d = (await fs.mkdir(ROOT, ROOT_INO, name, 0o777)).ino
    await fs.setattr(ROOT, d, mode=mode)
    return d


async def file_of(fs: Filesystem, owner: Caller, parent: int, name: bytes, mode: int,
                  data: bytes = b"secret", gid: int | None = None) -> int:
    ino = (await fs.create(owner, parent, name, 0o600)).ino
    h = await fs.open(owner, ino, os.O_WRONLY)
    await fs.write(h.fh, 0, data)
    await fs.release(h.fh)
    if gid is not None:
        await fs.setattr(ROOT, ino, gid=gid)
    await fs.setattr(owner if gid is None else ROOT, ino, mode=mode)
    return ino


async def can_open(fs: Filesystem, caller: Caller, ino: int, flags: int) -> bool:
    try:
        h = await fs.open(caller, ino, flags)
    except AccessDenied:
        return False
    await fs.release(h.fh)
    return True


# -- creating and reading ----------------------------------------------------------------------

async def test_non_root_cannot_create_in_a_root_owned_0755_directory(fs: Filesystem) -> None:
    d = await pub(fs, 0o755)
    for make in (lambda p: fs.create(ALICE, p, b"f"), lambda p: fs.mkdir(ALICE, p, b"d"),
                 lambda p: fs.symlink(ALICE, p, b"l", b"t")):
        for parent in (ROOT_INO, d):
            with pytest.raises(AccessDenied) as ei:
                await make(parent)
            assert ei.value.errno == errno.EACCES
    assert [n for _, n, _ in await fs.readdir(ROOT, d)] == []


async def test_non_root_cannot_read_another_users_0600_file(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o600)
    with pytest.raises(AccessDenied) as ei:
        await fs.open(BOB, ino, os.O_RDONLY)
    assert ei.value.errno == errno.EACCES
    assert not fs.is_open(ino)  # the refused open left nothing behind
    assert await can_open(fs, ALICE, ino, os.O_RDONLY)


async def test_even_the_owner_cannot_open_a_0444_file_for_writing(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o444)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        with pytest.raises(AccessDenied):
            await fs.open(ALICE, ino, flags)
    assert (await fs.getattr(ino)).size == len(b"secret")  # O_TRUNC did not truncate
    assert await can_open(fs, ALICE, ino, os.O_RDONLY)


@pytest.mark.parametrize("mode,caller,flags,allowed", [
    (0o600, ALICE, os.O_RDWR, True),     # owner bits
    (0o060, ALICE, os.O_RDONLY, False),  # owner bits apply to the owner, not group bits
    (0o060, CAROL, os.O_RDWR, True),     # group bits via a supplementary group
    (0o040, CAROL, os.O_WRONLY, False),
    (0o006, BOB, os.O_RDWR, True),       # other bits
    (0o066, BOB, os.O_RDWR, True),
    (0o660, BOB, os.O_RDONLY, False),    # BOB is neither owner nor in the group
    (0o604, CAROL, os.O_RDONLY, False),  # CAROL is in the group: group bits (none) apply
    (0o000, ROOT, os.O_RDWR, True),      # root bypasses read/write bits
])
async def test_open_follows_owner_group_other_bits(fs: Filesystem, mode: int, caller: Caller,
                                                   flags: int, allowed: bool) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", mode, gid=STAFF)
    assert await can_open(fs, caller, ino, flags) is allowed


async def test_lookup_needs_search_permission_on_the_directory(fs: Filesystem) -> None:
    d = await pub(fs, 0o776)  # others: read and write, but no search
    await fs.create(ROOT, d, b"f")
    with pytest.raises(AccessDenied):
        await fs.lookup(ALICE, d, b"f")
    with pytest.raises(AccessDenied):
        await fs.lookup(ALICE, d, b"missing")  # no existence oracle either
    await fs.setattr(ROOT, d, mode=0o771)
    assert (await fs.lookup(ALICE, d, b"f")).ino


async def test_readdir_needs_read_permission_on_the_directory(fs: Filesystem) -> None:
    d = await pub(fs, 0o711)
    f = await fs.create(ROOT, d, b"f")
    with pytest.raises(AccessDenied):
        await fs.readdir(ALICE, d)
    assert (await fs.lookup(ALICE, d, b"f")).ino == f.ino  # search alone suffices for lookup


async def test_unlink_needs_write_permission_on_the_directory_not_the_file(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o644)
    await fs.setattr(ROOT, d, mode=0o755)
    with pytest.raises(AccessDenied):
        await fs.unlink(ALICE, d, b"f")
    await fs.setattr(ROOT, d, mode=0o777)
    ro = await file_of(fs, BOB, d, b"ro", 0o444)
    await fs.unlink(ALICE, d, b"ro")  # writable directory, not sticky: anyone may remove
    with pytest.raises(NotFound):
        await fs.getattr(ro)
    assert (await fs.getattr(ino)).nlink == 1


async def test_truncate_needs_write_permission(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o644)
    with pytest.raises(AccessDenied):
        await fs.setattr(BOB, ino, size=0)
    assert (await fs.getattr(ino)).size == len(b"secret")
    await fs.setattr(ALICE, ino, size=2)
    assert (await fs.getattr(ino)).size == 2


async def test_nonexclusive_create_of_an_existing_file_needs_no_write_permission_on_the_dir(
        fs: Filesystem) -> None:
    # open(path, O_CREAT) of an existing file only opens it (Linux: no EACCES from the dir)
    d = await pub(fs, 0o755)
    existing = await file_of(fs, ROOT, d, b"f", 0o644)
    got = await fs.create(ALICE, d, b"f", exclusive=False)
    assert got.ino == existing


async def test_creating_a_setgid_file_for_a_foreign_group_drops_setgid(fs: Filesystem) -> None:
    # The group comes from a setgid directory; ALICE is not in it, so she may not make a
    # set-group-ID program of that group (as chmod g+s by her would be refused).
    shared = (await fs.mkdir(ROOT, ROOT_INO, b"shared", 0o2777)).ino
    await fs.setattr(ROOT, shared, gid=STAFF)
    f = await fs.create(ALICE, shared, b"prog", 0o2755)
    assert f.gid == STAFF
    assert not f.mode & stat.S_ISGID
    g = await fs.create(CAROL, shared, b"prog2", 0o2755)  # a member keeps it
    assert g.mode & stat.S_ISGID


# -- chmod / chown ----------------------------------------------------------------------------------

async def test_chmod_by_a_non_owner_is_not_permitted(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o666)
    with pytest.raises(NotPermitted) as ei:
        await fs.setattr(BOB, ino, mode=0o777)
    assert ei.value.errno == errno.EPERM
    assert stat.S_IMODE((await fs.getattr(ino)).mode) == 0o666
    got = await fs.setattr(ALICE, ino, mode=0o600)
    assert got.mode == stat.S_IFREG | 0o600
    await fs.setattr(ROOT, ino, mode=0o640)
    assert stat.S_IMODE((await fs.getattr(ino)).mode) == 0o640


async def test_chmod_by_an_owner_outside_the_group_drops_setgid(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o644, gid=STAFF)
    got = await fs.setattr(ALICE, ino, mode=0o2755)
    assert not got.mode & stat.S_ISGID
    assert stat.S_IMODE(got.mode) == 0o755
    got = await fs.setattr(ROOT, ino, mode=0o2755)
    assert got.mode & stat.S_ISGID


async def test_chown_by_non_root_is_not_permitted(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o644)
    for caller in (ALICE, BOB):
        with pytest.raises(NotPermitted) as ei:
            await fs.setattr(caller, ino, uid=1001)
        assert ei.value.errno == errno.EPERM
    got = await fs.getattr(ino)
    assert (got.uid, got.gid) == (1000, 1000)
    got = await fs.setattr(ROOT, ino, uid=1001, gid=1001)
    assert (got.uid, got.gid) == (1001, 1001)


async def test_non_owner_chown_to_the_current_owner_is_refused_and_keeps_setuid(fs: Filesystem) -> None:
    # Linux chown_ok(): only the owner may "chown" a file to its own uid.
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o4755)
    with pytest.raises(NotPermitted):
        await fs.setattr(BOB, ino, uid=1000, gid=1000)
    assert (await fs.getattr(ino)).mode & stat.S_ISUID


async def test_chgrp_by_the_owner_to_a_group_it_belongs_to_is_allowed(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, CAROL, d, b"f", 0o640)
    got = await fs.setattr(CAROL, ino, gid=STAFF)
    assert got.gid == STAFF and got.uid == 1002
    got = await fs.setattr(CAROL, ino, gid=1002)  # and back to its primary group
    assert got.gid == 1002


async def test_chgrp_to_a_foreign_group_or_of_a_foreign_file_is_not_permitted(fs: Filesystem) -> None:
    d = await pub(fs)
    mine = await file_of(fs, ALICE, d, b"mine", 0o644)
    with pytest.raises(NotPermitted):
        await fs.setattr(ALICE, mine, gid=STAFF)  # ALICE is not in STAFF
    theirs = await file_of(fs, ALICE, d, b"theirs", 0o666)
    with pytest.raises(NotPermitted):
        await fs.setattr(CAROL, theirs, gid=STAFF)  # CAROL is in STAFF but not the owner
    assert (await fs.getattr(mine)).gid == 1000
    assert (await fs.getattr(theirs)).gid == 1000


# -- sticky directories -------------------------------------------------------------------------------

async def test_sticky_directory_protects_other_users_entries(fs: Filesystem) -> None:
    tmp = await pub(fs, 0o1777, b"tmp")
    a = await file_of(fs, ALICE, tmp, b"a", 0o666)
    await file_of(fs, BOB, tmp, b"b", 0o666)
    with pytest.raises(NotPermitted) as ei:
        await fs.unlink(BOB, tmp, b"a")
    assert ei.value.errno == errno.EPERM
    with pytest.raises(NotPermitted):
        await fs.rename(BOB, tmp, b"a", tmp, b"stolen")
    with pytest.raises(NotPermitted):
        await fs.rename(BOB, tmp, b"b", tmp, b"a")  # replacing ALICE's file
    assert (await fs.lookup(BOB, tmp, b"a")).ino == a
    await fs.unlink(BOB, tmp, b"b")  # own entry: fine
    await fs.rename(ALICE, tmp, b"a", tmp, b"a2")  # owner of the entry: fine
    await fs.unlink(ROOT, tmp, b"a2")  # root (also the directory owner): fine
    assert [n for _, n, _ in await fs.readdir(ROOT, tmp)] == []


async def test_sticky_directory_owner_may_remove_any_entry(fs: Filesystem) -> None:
    home = (await fs.mkdir(ROOT, ROOT_INO, b"home", 0o777)).ino
    d = (await fs.mkdir(ALICE, home, b"alice", 0o1777)).ino
    await file_of(fs, BOB, d, b"b", 0o644)
    await fs.unlink(ALICE, d, b"b")
    with pytest.raises(NotFound):
        await fs.lookup(ALICE, d, b"b")


async def test_moving_a_directory_to_another_parent_needs_write_permission_on_it(fs: Filesystem) -> None:
    # Linux vfs_rename: a directory changing parent must be writable (its ".." changes).
    shared = await pub(fs, 0o777, b"shared")
    bobs = (await fs.mkdir(BOB, shared, b"bobs", 0o755)).ino
    dest = (await fs.mkdir(ALICE, shared, b"dest", 0o777)).ino
    with pytest.raises(AccessDenied):
        await fs.rename(ALICE, shared, b"bobs", dest, b"bobs")
    assert (await fs.lookup(ROOT, shared, b"bobs")).ino == bobs
    await fs.rename(ALICE, shared, b"bobs", shared, b"renamed")  # same parent: allowed
    assert (await fs.lookup(ROOT, shared, b"renamed")).ino == bobs


# -- times -----------------------------------------------------------------------------------------------

async def test_owner_sets_explicit_times(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o444)  # read-only: ownership is what counts
    got = await fs.setattr(ALICE, ino, atime_ns=1_000_000_001, mtime_ns=2_000_000_002)
    assert (got.atime_ns, got.mtime_ns) == (1_000_000_001, 2_000_000_002)
    got = await fs.getattr(ino)
    assert (got.atime_ns, got.mtime_ns) == (1_000_000_001, 2_000_000_002)
    assert got.ctime_ns > 2_000_000_002


async def test_non_owner_with_write_permission_may_set_times_to_now(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o666)
    await fs.setattr(ALICE, ino, atime_ns=5, mtime_ns=5)
    got = await fs.setattr(BOB, ino, atime_ns=UTIME_NOW, mtime_ns=UTIME_NOW)
    assert got.atime_ns > 5 and got.mtime_ns > 5
    assert (await fs.getattr(ino)).mtime_ns == got.mtime_ns


async def test_non_owner_may_not_set_explicit_times(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o666)
    await fs.setattr(ALICE, ino, mtime_ns=5)
    with pytest.raises(NotPermitted) as ei:
        await fs.setattr(BOB, ino, mtime_ns=123)
    assert ei.value.errno == errno.EPERM
    with pytest.raises(NotPermitted):
        await fs.setattr(BOB, ino, atime_ns=UTIME_NOW, mtime_ns=123)
    assert (await fs.getattr(ino)).mtime_ns == 5


async def test_non_owner_without_write_permission_may_not_touch(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o644)
    await fs.setattr(ALICE, ino, mtime_ns=5)
    with pytest.raises(AccessDenied):
        await fs.setattr(BOB, ino, atime_ns=UTIME_NOW, mtime_ns=UTIME_NOW)
    assert (await fs.getattr(ino)).mtime_ns == 5


async def test_root_sets_explicit_times_on_any_file(fs: Filesystem) -> None:
    d = await pub(fs)
    ino = await file_of(fs, ALICE, d, b"f", 0o600)
    got = await fs.setattr(ROOT, ino, mtime_ns=42)
    assert got.mtime_ns == 42
