"""POSIX half of the vfs, names: create/lookup/getattr, mkdir/rmdir/unlink, names,
hard links, symlinks, readdir cookies.

Runs against a real LMDB + local chunk store in tmp_path (no mocks). The rest is in
test_vfs_posix_data.py (file data), test_vfs_posix_views.py (ETags, the S3 view,
commit races), test_vfs_posix_rename.py, test_vfs_posix_perms.py and
test_vfs_posix_xattr.py (xattrs, statfs).
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import stat

import pytest

from gateway.vfs import (
    ROOT, Caller, Exists, Filesystem, FsError, Invalid, IsDir, NameTooLong, NotDir, NotEmpty,
    NotFound, NotPermitted,
)
from metadata import ROOT_INO

CHUNK = 64 * 1024
ALICE = Caller(1000, 1000)
BOB = Caller(1001, 1001)


async def write_file(fs: Filesystem, parent: int, name: bytes, data: bytes,
                     caller: Caller = ROOT, mode: int = 0o644) -> int:
    ino = (await fs.create(caller, parent, name, mode)).ino
    if data:
        h = await fs.open(caller, ino, os.O_WRONLY)
        assert await fs.write(h.fh, 0, data) == len(data)
        await fs.release(h.fh)
    return ino


async def read_file(fs: Filesystem, ino: int, caller: Caller = ROOT) -> bytes:
    h = await fs.open(caller, ino, os.O_RDONLY)
    try:
        size = (await fs.getattr(ino)).size
        return await fs.read(h.fh, 0, size + 10)
    finally:
        await fs.release(h.fh)


async def names(fs: Filesystem, ino: int) -> list[bytes]:
    return [n for _, n, _ in await fs.readdir(ROOT, ino)]


async def open_dir(fs: Filesystem, name: bytes = b"pub", mode: int = 0o777) -> int:
    """A directory (root-owned) where non-root callers may create."""
    return (await fs.mkdir(ROOT, ROOT_INO, name, mode)).ino


# -- create / lookup / getattr -------------------------------------------------------------------

async def test_root_inode_is_a_root_owned_directory(fs: Filesystem) -> None:
    root = await fs.getattr(ROOT_INO)
    assert root.ino == ROOT_INO == 1
    assert stat.S_ISDIR(root.mode)
    assert (root.uid, root.gid) == (0, 0)
    assert root.nlink == 2


async def test_create_sets_type_mode_and_owner_from_caller(fs: Filesystem) -> None:
    pub = await open_dir(fs)
    made = await fs.create(ALICE, pub, b"f", 0o640)
    assert made.mode == stat.S_IFREG | 0o640
    assert (made.uid, made.gid) == (1000, 1000)
    assert made.nlink == 1 and made.size == 0
    found = await fs.lookup(ALICE, pub, b"f")
    assert found.ino == made.ino
    got = await fs.getattr(made.ino)
    assert (got.mode, got.uid, got.gid, got.nlink, got.size) == (made.mode, 1000, 1000, 1, 0)


async def test_create_uses_callers_primary_gid_outside_setgid_dirs(fs: Filesystem) -> None:
    pub = await open_dir(fs)
    await fs.setattr(ROOT, pub, gid=500)
    made = await fs.create(Caller(1000, 1234, frozenset({500})), pub, b"f")
    assert made.gid == 1234


async def test_setgid_directory_passes_its_group_to_files_and_setgid_to_subdirs(fs: Filesystem) -> None:
    shared = (await fs.mkdir(ROOT, ROOT_INO, b"shared", 0o2777)).ino
    await fs.setattr(ROOT, shared, gid=500)
    f = await fs.create(ALICE, shared, b"f", 0o644)
    assert f.gid == 500
    assert not f.mode & stat.S_ISGID
    d = await fs.mkdir(ALICE, shared, b"d", 0o755)
    assert d.gid == 500
    assert d.mode & stat.S_ISGID
    # ...and the bit keeps propagating one level further down
    g = await fs.create(ALICE, d.ino, b"g")
    assert g.gid == 500


async def test_nonexclusive_create_returns_the_existing_file_unchanged(fs: Filesystem) -> None:
    first = await fs.create(ROOT, ROOT_INO, b"f", 0o644)
    ino = await write_file(fs, ROOT_INO, b"g", b"payload")
    again = await fs.create(ROOT, ROOT_INO, b"f", 0o600, exclusive=False)
    assert again.ino == first.ino
    assert again.mode == stat.S_IFREG | 0o644
    g_again = await fs.create(ROOT, ROOT_INO, b"g", exclusive=False)
    assert g_again.ino == ino and g_again.size == 7
    assert await read_file(fs, ino) == b"payload"
    assert sorted(await names(fs, ROOT_INO)) == [b"f", b"g"]


async def test_exclusive_create_of_an_existing_name_raises_exists(fs: Filesystem) -> None:
    first = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(Exists) as ei:
        await fs.create(ROOT, ROOT_INO, b"f")
    assert ei.value.errno == errno.EEXIST
    assert (await fs.lookup(ROOT, ROOT_INO, b"f")).ino == first.ino


async def test_a_file_and_a_directory_cannot_share_a_name(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"a")
    with pytest.raises(Exists):
        await fs.mkdir(ROOT, ROOT_INO, b"a")
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    with pytest.raises(Exists):
        await fs.create(ROOT, ROOT_INO, b"d")
    with pytest.raises(Exists):
        await fs.create(ROOT, ROOT_INO, b"d", exclusive=False)
    with pytest.raises(Exists):
        await fs.symlink(ROOT, ROOT_INO, b"d", b"target")
    with pytest.raises(Exists):
        await fs.link(ROOT, f.ino, ROOT_INO, b"d")
    with pytest.raises(Exists):
        await fs.mkdir(ROOT, ROOT_INO, b"d")
    assert (await fs.lookup(ROOT, ROOT_INO, b"a")).ino == f.ino
    assert (await fs.lookup(ROOT, ROOT_INO, b"d")).ino == d.ino
    assert sorted(await names(fs, ROOT_INO)) == [b"a", b"d"]


async def test_lookup_of_a_missing_name_raises_not_found(fs: Filesystem) -> None:
    with pytest.raises(NotFound) as ei:
        await fs.lookup(ROOT, ROOT_INO, b"nope")
    assert ei.value.errno == errno.ENOENT


async def test_getattr_of_an_unknown_inode_raises_not_found(fs: Filesystem) -> None:
    with pytest.raises(NotFound):
        await fs.getattr(987654)


async def test_names_with_a_slash_never_match_an_entry(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    await fs.create(ROOT, d.ino, b"f")
    for name in (b"d/", b"d/f", b"/"):
        with pytest.raises((NotFound, Invalid)):
            await fs.lookup(ROOT, ROOT_INO, name)
    with pytest.raises((NotFound, Invalid)):
        await fs.rmdir(ROOT, ROOT_INO, b"d/f")
    assert (await fs.lookup(ROOT, ROOT_INO, b"d")).ino == d.ino


async def test_lookup_dot_and_dotdot(fs: Filesystem) -> None:
    a = await fs.mkdir(ROOT, ROOT_INO, b"a")
    b = await fs.mkdir(ROOT, a.ino, b"b")
    assert (await fs.lookup(ROOT, b.ino, b".")).ino == b.ino
    assert (await fs.lookup(ROOT, b.ino, b"..")).ino == a.ino
    assert (await fs.lookup(ROOT, a.ino, b"..")).ino == ROOT_INO
    assert (await fs.lookup(ROOT, ROOT_INO, b"..")).ino == ROOT_INO


async def test_creating_or_looking_up_under_a_file_raises_not_dir(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(NotDir):
        await fs.create(ROOT, f.ino, b"x")
    with pytest.raises(NotDir):
        await fs.mkdir(ROOT, f.ino, b"x")
    with pytest.raises(NotDir):
        await fs.lookup(ROOT, f.ino, b"x")
    with pytest.raises(NotDir):
        await fs.readdir(ROOT, f.ino)


# -- mkdir / rmdir / unlink ------------------------------------------------------------------------

async def test_mkdir_and_rmdir_keep_parent_nlink_counting_subdirectories(fs: Filesystem) -> None:
    assert (await fs.getattr(ROOT_INO)).nlink == 2
    a = await fs.mkdir(ROOT, ROOT_INO, b"a", 0o750)
    assert a.mode == stat.S_IFDIR | 0o750
    assert a.nlink == 2
    assert (await fs.getattr(ROOT_INO)).nlink == 3
    await fs.mkdir(ROOT, a.ino, b"b")
    await fs.mkdir(ROOT, a.ino, b"c")
    await fs.create(ROOT, a.ino, b"file")  # files do not count
    assert (await fs.getattr(a.ino)).nlink == 4
    assert (await fs.getattr(ROOT_INO)).nlink == 3
    await fs.rmdir(ROOT, a.ino, b"b")
    assert (await fs.getattr(a.ino)).nlink == 3
    await fs.rmdir(ROOT, a.ino, b"c")
    await fs.unlink(ROOT, a.ino, b"file")
    assert (await fs.getattr(a.ino)).nlink == 2
    await fs.rmdir(ROOT, ROOT_INO, b"a")
    assert (await fs.getattr(ROOT_INO)).nlink == 2


async def test_rmdir_frees_the_directory_inode(fs: Filesystem) -> None:
    a = await fs.mkdir(ROOT, ROOT_INO, b"a")
    await fs.rmdir(ROOT, ROOT_INO, b"a")
    with pytest.raises(NotFound):
        await fs.lookup(ROOT, ROOT_INO, b"a")
    with pytest.raises(NotFound):
        await fs.getattr(a.ino)
    assert await names(fs, ROOT_INO) == []


async def test_rmdir_of_a_non_empty_directory_raises_not_empty(fs: Filesystem) -> None:
    a = await fs.mkdir(ROOT, ROOT_INO, b"a")
    await fs.create(ROOT, a.ino, b"f")
    with pytest.raises(NotEmpty) as ei:
        await fs.rmdir(ROOT, ROOT_INO, b"a")
    assert ei.value.errno == errno.ENOTEMPTY
    b = await fs.mkdir(ROOT, ROOT_INO, b"b")
    await fs.mkdir(ROOT, b.ino, b"sub")
    with pytest.raises(NotEmpty):
        await fs.rmdir(ROOT, ROOT_INO, b"b")
    assert (await fs.lookup(ROOT, ROOT_INO, b"a")).ino == a.ino
    assert (await fs.getattr(ROOT_INO)).nlink == 4


async def test_rmdir_of_a_file_raises_not_dir(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    with pytest.raises(NotDir) as ei:
        await fs.rmdir(ROOT, ROOT_INO, b"f")
    assert ei.value.errno == errno.ENOTDIR
    assert (await fs.lookup(ROOT, ROOT_INO, b"f")).ino == f.ino


async def test_unlink_of_a_directory_raises_is_dir(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    with pytest.raises(IsDir) as ei:
        await fs.unlink(ROOT, ROOT_INO, b"d")
    assert ei.value.errno == errno.EISDIR
    assert (await fs.lookup(ROOT, ROOT_INO, b"d")).ino == d.ino
    assert (await fs.getattr(ROOT_INO)).nlink == 3


async def test_unlink_and_rmdir_of_missing_names_raise_not_found(fs: Filesystem) -> None:
    with pytest.raises(NotFound):
        await fs.unlink(ROOT, ROOT_INO, b"nope")
    with pytest.raises(NotFound):
        await fs.rmdir(ROOT, ROOT_INO, b"nope")


async def test_rmdir_of_dot_is_invalid_and_of_dotdot_is_refused(fs: Filesystem) -> None:
    a = await fs.mkdir(ROOT, ROOT_INO, b"a")
    with pytest.raises(Invalid):
        await fs.rmdir(ROOT, a.ino, b".")
    with pytest.raises((NotEmpty, Invalid)):
        await fs.rmdir(ROOT, a.ino, b"..")
    assert (await fs.getattr(a.ino)).ino == a.ino


async def test_unlink_frees_a_closed_file(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"f", b"x" * 100)
    await fs.unlink(ROOT, ROOT_INO, b"f")
    with pytest.raises(NotFound):
        await fs.getattr(ino)
    with fs.meta.read() as txn:
        assert txn.count("orphan") == 0


# -- names ---------------------------------------------------------------------------------------

BAD_NAMES = [
    (b"", Invalid, errno.EINVAL),
    (b".", Invalid, errno.EINVAL),
    (b"..", Invalid, errno.EINVAL),
    (b"a/b", Invalid, errno.EINVAL),
    (b"/", Invalid, errno.EINVAL),
    (b"a\x00b", Invalid, errno.EINVAL),
    (b"n" * 256, NameTooLong, errno.ENAMETOOLONG),
]


@pytest.mark.parametrize("name,exc,code", BAD_NAMES, ids=["empty", "dot", "dotdot", "slash",
                                                        "only-slash", "nul", "256-bytes"])
@pytest.mark.parametrize("op", ["create", "mkdir", "symlink", "link", "rename"])
async def test_bad_names_are_refused_with_the_right_error(
        fs: Filesystem, op: str, name: bytes, exc: type[FsError], code: int) -> None:
    src = await fs.create(ROOT, ROOT_INO, b"src")
    with pytest.raises(exc) as ei:
        if op == "create":
            await fs.create(ROOT, ROOT_INO, name)
        elif op == "mkdir":
            await fs.mkdir(ROOT, ROOT_INO, name)
        elif op == "symlink":
            await fs.symlink(ROOT, ROOT_INO, name, b"target")
        elif op == "link":
            await fs.link(ROOT, src.ino, ROOT_INO, name)
        else:
            await fs.rename(ROOT, ROOT_INO, b"src", ROOT_INO, name)
    assert type(ei.value) is exc
    assert ei.value.errno == code
    assert await names(fs, ROOT_INO) == [b"src"]
    assert (await fs.getattr(src.ino)).nlink == 1
    assert (await fs.getattr(ROOT_INO)).nlink == 2


async def test_a_255_byte_name_is_accepted(fs: Filesystem) -> None:
    name = b"n" * 255
    f = await fs.create(ROOT, ROOT_INO, name)
    d = await fs.mkdir(ROOT, ROOT_INO, b"d" * 255)
    assert (await fs.lookup(ROOT, ROOT_INO, name)).ino == f.ino
    assert sorted(await names(fs, ROOT_INO)) == sorted([name, b"d" * 255])
    assert (await fs.lookup(ROOT, ROOT_INO, b"d" * 255)).ino == d.ino


async def test_names_are_bytes_and_need_not_be_utf8(fs: Filesystem) -> None:
    name = b"caf\xe9-\xff"
    f = await fs.create(ROOT, ROOT_INO, name)
    assert (await fs.lookup(ROOT, ROOT_INO, name)).ino == f.ino
    assert await names(fs, ROOT_INO) == [name]


# -- hard links -----------------------------------------------------------------------------------

async def test_link_adds_a_name_to_the_same_inode_and_counts_it(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    ino = await write_file(fs, ROOT_INO, b"a", b"shared bytes")
    linked = await fs.link(ROOT, ino, d.ino, b"b")
    assert linked.ino == ino
    assert linked.nlink == 2
    assert (await fs.getattr(ino)).nlink == 2
    assert (await fs.lookup(ROOT, d.ino, b"b")).ino == ino
    assert await read_file(fs, (await fs.lookup(ROOT, d.ino, b"b")).ino) == b"shared bytes"
    # the directory's link count is not about files
    assert (await fs.getattr(d.ino)).nlink == 2


async def test_writes_through_one_link_are_read_through_the_other(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"a", b"0123456789")
    await fs.link(ROOT, ino, ROOT_INO, b"b")
    b_ino = (await fs.lookup(ROOT, ROOT_INO, b"b")).ino
    h = await fs.open(ROOT, b_ino, os.O_WRONLY)
    await fs.write(h.fh, 3, b"XYZ")
    await fs.release(h.fh)
    assert await read_file(fs, ino) == b"012XYZ6789"


async def test_unlinking_one_name_keeps_the_other_readable(fs: Filesystem) -> None:
    data = os.urandom(3 * CHUNK + 20_000)  # four chunks (the tail is above INLINE_MAX)
    ino = await write_file(fs, ROOT_INO, b"a", data)
    await fs.link(ROOT, ino, ROOT_INO, b"b")
    await fs.unlink(ROOT, ROOT_INO, b"a")
    assert (await fs.getattr(ino)).nlink == 1
    with pytest.raises(NotFound):
        await fs.lookup(ROOT, ROOT_INO, b"a")
    assert await read_file(fs, ino) == data
    with fs.meta.read() as txn:
        assert txn.count("trash") == 0  # the bytes are still referenced
    await fs.unlink(ROOT, ROOT_INO, b"b")
    with pytest.raises(NotFound):
        await fs.getattr(ino)
    with fs.meta.read() as txn:
        assert txn.count("trash") == 4


async def test_link_to_a_directory_is_not_permitted(fs: Filesystem) -> None:
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    with pytest.raises(NotPermitted) as ei:
        await fs.link(ROOT, d.ino, ROOT_INO, b"d2")
    assert ei.value.errno == errno.EPERM
    assert await names(fs, ROOT_INO) == [b"d"]
    assert (await fs.getattr(d.ino)).nlink == 2


async def test_link_onto_an_existing_name_raises_exists(fs: Filesystem) -> None:
    a = await fs.create(ROOT, ROOT_INO, b"a")
    b = await fs.create(ROOT, ROOT_INO, b"b")
    with pytest.raises(Exists):
        await fs.link(ROOT, a.ino, ROOT_INO, b"b")
    assert (await fs.lookup(ROOT, ROOT_INO, b"b")).ino == b.ino
    assert (await fs.getattr(a.ino)).nlink == 1


async def test_link_into_a_file_raises_not_dir(fs: Filesystem) -> None:
    a = await fs.create(ROOT, ROOT_INO, b"a")
    with pytest.raises(NotDir):
        await fs.link(ROOT, a.ino, a.ino, b"b")
    assert (await fs.getattr(a.ino)).nlink == 1


# -- symlinks -------------------------------------------------------------------------------------

async def test_symlink_stores_its_target_and_readlink_returns_it(fs: Filesystem) -> None:
    target = b"../some/where/\xff-not-utf8"
    s = await fs.symlink(ALICE, await open_dir(fs), b"l", target)
    assert stat.S_ISLNK(s.mode)
    assert s.size == len(target)
    assert (s.uid, s.gid) == (1000, 1000)
    assert await fs.readlink(ALICE, s.ino) == target
    assert (await fs.getattr(s.ino)).size == len(target)


async def test_readlink_of_a_non_symlink_is_invalid(fs: Filesystem) -> None:
    f = await fs.create(ROOT, ROOT_INO, b"f")
    d = await fs.mkdir(ROOT, ROOT_INO, b"d")
    for ino in (f.ino, d.ino):
        with pytest.raises(Invalid) as ei:
            await fs.readlink(ROOT, ino)
        assert ei.value.errno == errno.EINVAL


@pytest.mark.parametrize("target", [b"", b"a\x00b", b"x" * 4097])
async def test_symlink_with_an_unusable_target_is_invalid(fs: Filesystem, target: bytes) -> None:
    with pytest.raises(Invalid):
        await fs.symlink(ROOT, ROOT_INO, b"l", target)
    assert await names(fs, ROOT_INO) == []


async def test_a_symlink_is_not_opened_as_a_file(fs: Filesystem) -> None:
    s = await fs.symlink(ROOT, ROOT_INO, b"l", b"target")
    with pytest.raises(FsError):
        await fs.open(ROOT, s.ino, os.O_RDONLY)


# -- readdir --------------------------------------------------------------------------------------

async def test_readdir_returns_every_entry_once_with_increasing_cookies(fs: Filesystem) -> None:
    d = (await fs.mkdir(ROOT, ROOT_INO, b"d")).ino
    files = {b"f%d" % i for i in range(20)}
    dirs = {b"sub%d" % i for i in range(5)}
    for n in sorted(files):
        await fs.create(ROOT, d, n)
    for n in sorted(dirs):
        await fs.mkdir(ROOT, d, n)
    await fs.symlink(ROOT, d, b"link", b"f0")
    entries = await fs.readdir(ROOT, d)
    got = [n for _, n, _ in entries]
    assert len(got) == len(set(got)) == 26
    assert set(got) == files | dirs | {b"link"}
    cookies = [c for c, _, _ in entries]
    assert cookies == sorted(cookies) and len(set(cookies)) == len(cookies)
    assert all(c > 0 for c in cookies)
    for _, n, inode in entries:
        assert not n.endswith(b"/")  # directory names come back without the sort suffix
        if n in dirs:
            assert stat.S_ISDIR(inode.mode)
        elif n in files:
            assert stat.S_ISREG(inode.mode)
        else:
            assert stat.S_ISLNK(inode.mode)
        assert (await fs.lookup(ROOT, d, n)).ino == inode.ino
    # resuming after the last cookie yields nothing
    assert await fs.readdir(ROOT, d, after=cookies[-1]) == []
    # limit is honoured and resuming from a cookie continues exactly after it
    first = await fs.readdir(ROOT, d, limit=10)
    rest = await fs.readdir(ROOT, d, after=first[-1][0])
    assert [n for _, n, _ in first + rest] == got


async def test_readdir_of_an_empty_directory_is_empty(fs: Filesystem) -> None:
    d = (await fs.mkdir(ROOT, ROOT_INO, b"d")).ino
    assert await fs.readdir(ROOT, d) == []


async def test_readdir_resume_survives_concurrent_inserts_and_deletes(fs: Filesystem) -> None:
    rng = random.Random(7)
    d = (await fs.mkdir(ROOT, ROOT_INO, b"d")).ino
    original = [b"e%03d" % i for i in range(300)]
    await asyncio.gather(*(fs.create(ROOT, d, n) for n in original[:150]))
    await asyncio.gather(*(fs.mkdir(ROOT, d, n) for n in original[150:]))
    present = set(original)
    touched: set[bytes] = set()
    deleted: set[bytes] = set()
    seen: list[bytes] = []
    seen_entries: list[tuple[bytes, int]] = []
    cookies: list[int] = []
    after = 0
    new_id = 0
    pages = 0
    while True:
        page = await fs.readdir(ROOT, d, after=after, limit=50)
        if not page:
            break
        for cookie, name, inode in page:
            assert name in present, f"{name!r} was deleted before this page but came back"
            seen.append(name)
            seen_entries.append((name, inode.ino))
            cookies.append(cookie)
        after = page[-1][0]
        pages += 1
        if pages > 5:
            continue  # stop mutating so that the walk ends
        # between pages: delete some seen and some unseen entries, insert new ones
        unseen = sorted(present - set(seen))
        seen_alive = sorted(present & set(seen))
        victims = rng.sample(unseen, min(5, len(unseen))) + rng.sample(seen_alive, min(5, len(seen_alive)))
        for v in victims:
            inode = await fs.lookup(ROOT, d, v)
            if stat.S_ISDIR(inode.mode):
                await fs.rmdir(ROOT, d, v)
            else:
                await fs.unlink(ROOT, d, v)
            present.discard(v)
            touched.add(v)
            deleted.add(v)
        for _ in range(7):
            n = b"new%03d" % new_id
            new_id += 1
            if new_id % 2:
                await fs.create(ROOT, d, n)
            else:
                await fs.mkdir(ROOT, d, n)
            present.add(n)
            touched.add(n)
        # re-create a name that was deleted earlier: it is a new entry (touched)
        if deleted:
            again = sorted(deleted)[0]
            deleted.discard(again)
            assert again not in present
            await fs.create(ROOT, d, again)
            present.add(again)
    # A name deleted and created again is a new entry and may be returned again;
    # the same entry (name and inode) never is.
    assert len(seen_entries) == len(set(seen_entries)), "an entry was returned twice"
    assert cookies == sorted(cookies) and len(set(cookies)) == len(cookies)
    untouched = set(original) - touched
    for name in untouched:
        assert seen.count(name) == 1, f"untouched {name!r} returned {seen.count(name)} times"
    assert len(untouched) > 150  # the test really exercised resumption across many pages
    # entries inserted (behind the cursor's seq) and never deleted show up too
    assert {b"new%03d" % i for i in range(new_id)} & present <= set(seen)
    assert set(seen) >= present - touched
