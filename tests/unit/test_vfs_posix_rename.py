"""POSIX half of the vfs: rename in all its forms (plain, over files and directories,
RENAME_NOREPLACE, RENAME_EXCHANGE, cycles, hard links), on a real LMDB + chunk store."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from gateway.vfs import (
    RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT, Exists, Filesystem, Invalid, IsDir, NotDir,
    NotEmpty, NotFound,
)
from metadata import ROOT_INO

CHUNK = 64 * 1024


async def write_file(fs: Filesystem, parent: int, name: bytes, data: bytes) -> int:
    ino = (await fs.create(ROOT, parent, name)).ino
    if data:
        h = await fs.open(ROOT, ino, os.O_WRONLY)
        await fs.write(h.fh, 0, data)
        await fs.release(h.fh)
    return ino


async def read_all(fs: Filesystem, ino: int) -> bytes:
    h = await fs.open(ROOT, ino, os.O_RDONLY)
    try:
        return await fs.read(h.fh, 0, (await fs.getattr(ino)).size + 1)
    finally:
        await fs.release(h.fh)


async def names(fs: Filesystem, ino: int) -> list[bytes]:
    return sorted(n for _, n, _ in await fs.readdir(ROOT, ino))


async def ino_of(fs: Filesystem, parent: int, name: bytes) -> int:
    return (await fs.lookup(ROOT, parent, name)).ino


async def nlink(fs: Filesystem, ino: int) -> int:
    return (await fs.getattr(ino)).nlink


async def mkdir(fs: Filesystem, parent: int, name: bytes) -> int:
    return (await fs.mkdir(ROOT, parent, name)).ino


# -- plain renames ----------------------------------------------------------------------------------

async def test_rename_within_a_directory_moves_the_name(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"a", b"data")
    await fs.setattr(ROOT, ROOT_INO, mtime_ns=1)
    await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b")
    with pytest.raises(NotFound):
        await fs.lookup(ROOT, ROOT_INO, b"a")
    assert await ino_of(fs, ROOT_INO, b"b") == ino
    assert await names(fs, ROOT_INO) == [b"b"]
    assert await read_all(fs, ino) == b"data"
    assert await nlink(fs, ino) == 1
    assert (await fs.getattr(ROOT_INO)).mtime_ns > 1


async def test_rename_of_a_file_across_directories(fs: Filesystem) -> None:
    src = await mkdir(fs, ROOT_INO, b"src")
    dst = await mkdir(fs, ROOT_INO, b"dst")
    ino = await write_file(fs, src, b"f", b"payload")
    await fs.rename(ROOT, src, b"f", dst, b"g")
    assert await names(fs, src) == []
    assert await names(fs, dst) == [b"g"]
    assert await ino_of(fs, dst, b"g") == ino
    assert await read_all(fs, ino) == b"payload"
    assert await nlink(fs, src) == 2 and await nlink(fs, dst) == 2  # files do not count


async def test_moving_a_directory_updates_both_parents_nlink_and_its_dotdot(fs: Filesystem) -> None:
    a = await mkdir(fs, ROOT_INO, b"a")
    b = await mkdir(fs, ROOT_INO, b"b")
    d = await mkdir(fs, a, b"d")
    await write_file(fs, d, b"inside", b"x")
    assert await nlink(fs, a) == 3 and await nlink(fs, b) == 2
    await fs.rename(ROOT, a, b"d", b, b"d2")
    assert await nlink(fs, a) == 2
    assert await nlink(fs, b) == 3
    assert await nlink(fs, d) == 2
    assert await ino_of(fs, b, b"d2") == d
    assert (await fs.lookup(ROOT, d, b"..")).ino == b
    assert await names(fs, d) == [b"inside"]
    assert await names(fs, a) == []
    # and the directory is still usable: rmdir of its old parent now works
    await fs.rmdir(ROOT, ROOT_INO, b"a")


async def test_renaming_a_directory_within_its_parent_keeps_nlink(fs: Filesystem) -> None:
    d = await mkdir(fs, ROOT_INO, b"d")
    await fs.rename(ROOT, ROOT_INO, b"d", ROOT_INO, b"e")
    assert await nlink(fs, ROOT_INO) == 3
    assert await ino_of(fs, ROOT_INO, b"e") == d
    assert stat.S_ISDIR((await fs.lookup(ROOT, ROOT_INO, b"e")).mode)
    assert (await fs.lookup(ROOT, d, b"..")).ino == ROOT_INO
    assert await names(fs, ROOT_INO) == [b"e"]


async def test_rename_of_a_missing_name_raises_not_found(fs: Filesystem) -> None:
    with pytest.raises(NotFound):
        await fs.rename(ROOT, ROOT_INO, b"nope", ROOT_INO, b"x")


async def test_rename_to_a_bad_name_is_refused_and_changes_nothing(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"a", b"")
    for bad in (b"", b".", b"..", b"x/y"):
        with pytest.raises(Invalid):
            await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, bad)
    assert await ino_of(fs, ROOT_INO, b"a") == ino


async def test_rename_into_a_file_raises_not_dir(fs: Filesystem) -> None:
    f = await write_file(fs, ROOT_INO, b"f", b"")
    await write_file(fs, ROOT_INO, b"g", b"")
    with pytest.raises(NotDir):
        await fs.rename(ROOT, ROOT_INO, b"g", f, b"x")
    assert await names(fs, ROOT_INO) == [b"f", b"g"]


# -- over existing targets --------------------------------------------------------------------------

async def test_rename_over_an_existing_file_replaces_it_and_frees_the_old_inode(fs: Filesystem) -> None:
    src = await write_file(fs, ROOT_INO, b"src", b"new bytes")
    old = await write_file(fs, ROOT_INO, b"dst", os.urandom(2 * CHUNK))
    await fs.rename(ROOT, ROOT_INO, b"src", ROOT_INO, b"dst")
    assert await ino_of(fs, ROOT_INO, b"dst") == src
    assert await names(fs, ROOT_INO) == [b"dst"]
    assert await read_all(fs, src) == b"new bytes"
    with pytest.raises(NotFound):
        await fs.getattr(old)
    with fs.meta.read() as txn:
        assert txn.count("trash") == 2  # the replaced file's chunks


async def test_rename_over_an_open_file_keeps_its_bytes_until_release(fs: Filesystem) -> None:
    old_bytes = os.urandom(CHUNK + 20_000)
    old = await write_file(fs, ROOT_INO, b"dst", old_bytes)
    await write_file(fs, ROOT_INO, b"src", b"new")
    h = await fs.open(ROOT, old, os.O_RDONLY)
    await fs.rename(ROOT, ROOT_INO, b"src", ROOT_INO, b"dst")
    assert await fs.read(h.fh, 0, len(old_bytes) + 1) == old_bytes
    assert (await fs.getattr(old)).nlink == 0
    await fs.release(h.fh)
    with pytest.raises(NotFound):
        await fs.getattr(old)


async def test_rename_over_a_hard_linked_file_keeps_the_other_link(fs: Filesystem) -> None:
    target = await write_file(fs, ROOT_INO, b"dst", b"kept")
    await fs.link(ROOT, target, ROOT_INO, b"other")
    await write_file(fs, ROOT_INO, b"src", b"src")
    await fs.rename(ROOT, ROOT_INO, b"src", ROOT_INO, b"dst")
    assert await nlink(fs, target) == 1
    assert await read_all(fs, await ino_of(fs, ROOT_INO, b"other")) == b"kept"


async def test_rename_of_a_directory_over_an_empty_directory(fs: Filesystem) -> None:
    a = await mkdir(fs, ROOT_INO, b"a")
    p = await mkdir(fs, ROOT_INO, b"p")
    empty = await mkdir(fs, p, b"empty")
    await write_file(fs, a, b"f", b"1")
    assert await nlink(fs, ROOT_INO) == 4
    await fs.rename(ROOT, ROOT_INO, b"a", p, b"empty")
    assert await ino_of(fs, p, b"empty") == a
    with pytest.raises(NotFound):
        await fs.getattr(empty)
    assert await nlink(fs, ROOT_INO) == 3  # lost "a"
    assert await nlink(fs, p) == 3         # one subdirectory, as before
    assert (await fs.lookup(ROOT, a, b"..")).ino == p
    assert await names(fs, a) == [b"f"]


async def test_rename_of_a_directory_over_an_empty_sibling_in_the_same_parent(fs: Filesystem) -> None:
    a = await mkdir(fs, ROOT_INO, b"a")
    b = await mkdir(fs, ROOT_INO, b"b")
    await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b")
    assert await ino_of(fs, ROOT_INO, b"b") == a
    assert await names(fs, ROOT_INO) == [b"b"]
    assert await nlink(fs, ROOT_INO) == 3
    with pytest.raises(NotFound):
        await fs.getattr(b)


async def test_rename_over_a_non_empty_directory_raises_not_empty(fs: Filesystem) -> None:
    a = await mkdir(fs, ROOT_INO, b"a")
    b = await mkdir(fs, ROOT_INO, b"b")
    await write_file(fs, b, b"f", b"1")
    with pytest.raises(NotEmpty) as ei:
        await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b")
    assert ei.value.errno == errno.ENOTEMPTY
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert await ino_of(fs, ROOT_INO, b"b") == b
    assert await names(fs, b) == [b"f"]
    assert await nlink(fs, ROOT_INO) == 4


async def test_rename_of_a_directory_over_a_file_raises_not_dir(fs: Filesystem) -> None:
    d = await mkdir(fs, ROOT_INO, b"d")
    f = await write_file(fs, ROOT_INO, b"f", b"x")
    with pytest.raises(NotDir) as ei:
        await fs.rename(ROOT, ROOT_INO, b"d", ROOT_INO, b"f")
    assert ei.value.errno == errno.ENOTDIR
    assert await ino_of(fs, ROOT_INO, b"d") == d
    assert await ino_of(fs, ROOT_INO, b"f") == f


async def test_rename_of_a_file_over_a_directory_raises_is_dir(fs: Filesystem) -> None:
    d = await mkdir(fs, ROOT_INO, b"d")
    f = await write_file(fs, ROOT_INO, b"f", b"x")
    with pytest.raises(IsDir) as ei:
        await fs.rename(ROOT, ROOT_INO, b"f", ROOT_INO, b"d")
    assert ei.value.errno == errno.EISDIR
    assert await ino_of(fs, ROOT_INO, b"d") == d
    assert await ino_of(fs, ROOT_INO, b"f") == f


# -- cycles ---------------------------------------------------------------------------------------

async def test_moving_a_directory_into_its_own_subdirectory_is_invalid(fs: Filesystem) -> None:
    a = await mkdir(fs, ROOT_INO, b"a")
    b = await mkdir(fs, a, b"b")
    c = await mkdir(fs, b, b"c")
    for target in (b, c):
        with pytest.raises(Invalid) as ei:
            await fs.rename(ROOT, ROOT_INO, b"a", target, b"moved")
        assert ei.value.errno == errno.EINVAL
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert (await fs.lookup(ROOT, a, b"..")).ino == ROOT_INO
    assert await names(fs, b) == [b"c"]


async def test_moving_a_directory_into_itself_is_invalid(fs: Filesystem) -> None:
    # mv a a/x
    a = await mkdir(fs, ROOT_INO, b"a")
    with pytest.raises(Invalid):
        await fs.rename(ROOT, ROOT_INO, b"a", a, b"x")
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert await names(fs, a) == []
    assert (await fs.lookup(ROOT, a, b"..")).ino == ROOT_INO
    assert await nlink(fs, ROOT_INO) == 3 and await nlink(fs, a) == 2


async def test_exchanging_a_directory_with_its_own_child_is_invalid(fs: Filesystem) -> None:
    # renameat2(a, "x", root, "a", RENAME_EXCHANGE) would put a inside itself
    a = await mkdir(fs, ROOT_INO, b"a")
    x = await write_file(fs, a, b"x", b"x")
    with pytest.raises(Invalid):
        await fs.rename(ROOT, a, b"x", ROOT_INO, b"a", RENAME_EXCHANGE)
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert await ino_of(fs, a, b"x") == x
    assert (await fs.lookup(ROOT, a, b"..")).ino == ROOT_INO


async def test_moving_a_directory_to_a_sibling_subtree_is_allowed(fs: Filesystem) -> None:
    # /a/b -> /ab/b: "ab" shares a prefix with "a" but is not inside it
    a = await mkdir(fs, ROOT_INO, b"a")
    ab = await mkdir(fs, ROOT_INO, b"ab")
    b = await mkdir(fs, a, b"b")
    await fs.rename(ROOT, a, b"b", ab, b"b")
    assert await ino_of(fs, ab, b"b") == b
    assert (await fs.lookup(ROOT, b, b"..")).ino == ab


# -- flags ----------------------------------------------------------------------------------------

async def test_rename_noreplace_onto_an_existing_name_raises_exists(fs: Filesystem) -> None:
    a = await write_file(fs, ROOT_INO, b"a", b"A")
    b = await write_file(fs, ROOT_INO, b"b", b"B")
    d = await mkdir(fs, ROOT_INO, b"d")
    for target in (b"b", b"d"):
        with pytest.raises(Exists) as ei:
            await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, target, RENAME_NOREPLACE)
        assert ei.value.errno == errno.EEXIST
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert await ino_of(fs, ROOT_INO, b"b") == b
    assert await ino_of(fs, ROOT_INO, b"d") == d
    assert await read_all(fs, b) == b"B"
    await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"c", RENAME_NOREPLACE)
    assert await ino_of(fs, ROOT_INO, b"c") == a


async def test_rename_exchange_swaps_two_files(fs: Filesystem) -> None:
    a = await write_file(fs, ROOT_INO, b"a", b"A")
    d = await mkdir(fs, ROOT_INO, b"d")
    b = await write_file(fs, d, b"b", b"B")
    await fs.rename(ROOT, ROOT_INO, b"a", d, b"b", RENAME_EXCHANGE)
    assert await ino_of(fs, ROOT_INO, b"a") == b
    assert await ino_of(fs, d, b"b") == a
    assert await read_all(fs, await ino_of(fs, ROOT_INO, b"a")) == b"B"
    assert await read_all(fs, await ino_of(fs, d, b"b")) == b"A"
    assert await nlink(fs, a) == 1 and await nlink(fs, b) == 1
    assert await names(fs, ROOT_INO) == [b"a", b"d"]
    assert await names(fs, d) == [b"b"]


async def test_rename_exchange_swaps_a_file_and_a_directory_in_one_parent(fs: Filesystem) -> None:
    f = await write_file(fs, ROOT_INO, b"f", b"file")
    d = await mkdir(fs, ROOT_INO, b"d")
    await write_file(fs, d, b"inner", b"i")
    await fs.rename(ROOT, ROOT_INO, b"f", ROOT_INO, b"d", RENAME_EXCHANGE)
    got_f = await fs.lookup(ROOT, ROOT_INO, b"f")
    got_d = await fs.lookup(ROOT, ROOT_INO, b"d")
    assert got_f.ino == d and stat.S_ISDIR(got_f.mode)
    assert got_d.ino == f and stat.S_ISREG(got_d.mode)
    entries = {n: i.ino for _, n, i in await fs.readdir(ROOT, ROOT_INO)}
    assert entries == {b"f": d, b"d": f}
    assert await names(fs, d) == [b"inner"]
    assert await nlink(fs, ROOT_INO) == 3
    # the directory is usable under its new name
    await fs.unlink(ROOT, d, b"inner")
    await fs.rmdir(ROOT, ROOT_INO, b"f")
    assert await names(fs, ROOT_INO) == [b"d"]


async def test_rename_exchange_of_a_directory_and_a_file_across_parents(fs: Filesystem) -> None:
    p = await mkdir(fs, ROOT_INO, b"p")
    q = await mkdir(fs, ROOT_INO, b"q")
    d = await mkdir(fs, p, b"d")
    f = await write_file(fs, q, b"f", b"F")
    await fs.rename(ROOT, p, b"d", q, b"f", RENAME_EXCHANGE)
    assert await ino_of(fs, p, b"d") == f
    assert await ino_of(fs, q, b"f") == d
    assert await nlink(fs, p) == 2  # lost its subdirectory
    assert await nlink(fs, q) == 3  # gained it
    assert (await fs.lookup(ROOT, d, b"..")).ino == q


async def test_rename_exchange_needs_an_existing_target(fs: Filesystem) -> None:
    a = await write_file(fs, ROOT_INO, b"a", b"A")
    with pytest.raises(NotFound):
        await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"missing", RENAME_EXCHANGE)
    assert await ino_of(fs, ROOT_INO, b"a") == a
    assert await names(fs, ROOT_INO) == [b"a"]


async def test_rename_exchange_with_noreplace_is_invalid(fs: Filesystem) -> None:
    await write_file(fs, ROOT_INO, b"a", b"A")
    await write_file(fs, ROOT_INO, b"b", b"B")
    with pytest.raises(Invalid):
        await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b", RENAME_EXCHANGE | RENAME_NOREPLACE)
    with pytest.raises(Invalid):
        await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b", 4)


async def test_renaming_onto_a_hard_link_of_the_same_inode_does_nothing(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"a", b"same")
    await fs.link(ROOT, ino, ROOT_INO, b"b")
    await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"b")
    assert await names(fs, ROOT_INO) == [b"a", b"b"]
    assert await ino_of(fs, ROOT_INO, b"a") == ino
    assert await ino_of(fs, ROOT_INO, b"b") == ino
    assert await nlink(fs, ino) == 2
    assert await read_all(fs, ino) == b"same"


async def test_renaming_a_name_onto_itself_does_nothing(fs: Filesystem) -> None:
    ino = await write_file(fs, ROOT_INO, b"a", b"same")
    d = await mkdir(fs, ROOT_INO, b"d")
    await fs.rename(ROOT, ROOT_INO, b"a", ROOT_INO, b"a")
    await fs.rename(ROOT, ROOT_INO, b"d", ROOT_INO, b"d")
    assert await ino_of(fs, ROOT_INO, b"a") == ino
    assert await ino_of(fs, ROOT_INO, b"d") == d
    assert await nlink(fs, ino) == 1
    assert await nlink(fs, ROOT_INO) == 3
