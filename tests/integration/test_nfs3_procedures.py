"""Every NFSv3 procedure at the RPC level against a real `samebytes serve --nfs`,
with its error cases, and the S3 door reading and writing the same bytes.

The gateway runs with a long idle flush (SAMEBYTES_NFS_IDLE_FLUSH) so that what an
UNSTABLE write leaves buffered stays buffered until COMMIT, unless a test says
otherwise.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from gateway.nfs import nfs3_types as t
from gateway.nfs.rpc import AcceptStat
from gateway.nfs.xdr import Packer
from tests.conftest import IN_CI, Gateway
from tests.integration.conftest import client_for
from tests.nfs3_calls import Nfs3
from tests.nfs3_fixtures import ANON, NFS_DOOR, NFS_PROG, ROOT_CRED, connect, start_nfs_gateway, user

@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_nfs_gateway(tmp_path_factory.mktemp("nfs3") / "data",
                          exports=["/:no_root_squash", "/robkt:ro,no_root_squash", "/sqbkt"],
                          env={"SAMEBYTES_NFS_IDLE_FLUSH": "3600"})
    s3 = client_for(g)
    for b in ("bkt", "robkt", "sqbkt"):
        s3.create_bucket(Bucket=b)
    try:
        yield g
    finally:
        g.stop()

pytestmark = pytest.mark.skipif(not NFS_DOOR and not IN_CI, reason="the NFS server (nfs-core branch) is not merged")


@pytest.fixture
def s3(gw: Gateway) -> object:
    return client_for(gw)


async def _bkt(gw: Gateway, name: str) -> tuple[Nfs3, bytes]:
    """A client as root on export / and a fresh directory of its own in bucket bkt."""
    nfs, root = await connect(gw, "/", ROOT_CRED)
    bkt = await nfs.walk(root, "bkt")
    return nfs, await nfs.new_dir(bkt, name.encode(), 0o777)


def _s3_body(s3: object, key: str, bucket: str = "bkt") -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]


# -- attributes and names -------------------------------------------------------------------

async def test_getattr_and_lookup_describe_what_s3_wrote(gw: Gateway, s3: object) -> None:
    s3.put_object(Bucket="bkt", Key="attrs/a.txt", Body=b"hello s3")  # type: ignore[attr-defined]
    nfs, root = await connect(gw, "/", ROOT_CRED)
    d = await nfs.walk(root, "bkt/attrs")
    res = await nfs.lookup(d, b"a.txt")
    assert res.status == t.NFS3_OK and res.object
    assert res.obj_attributes and res.obj_attributes.type == t.NF3REG
    assert res.obj_attributes.size == 8
    assert res.dir_attributes and res.dir_attributes.type == t.NF3DIR
    got = await nfs.getattr(res.object)
    assert got.attributes == res.obj_attributes
    assert await nfs.read_all(res.object) == b"hello s3"


async def test_lookup_of_a_missing_name_is_noent_with_the_directory_attributes(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "noent")
    res = await nfs.lookup(d, b"nope")
    assert res.status == t.NFS3ERR_NOENT
    assert res.dir_attributes is not None and res.dir_attributes.type == t.NF3DIR
    f = await nfs.new_file(d, b"f")
    assert (await nfs.lookup(f, b"x")).status == t.NFS3ERR_NOTDIR
    assert (await nfs.lookup(d, b"n" * 256)).status == t.NFS3ERR_NAMETOOLONG


async def test_lookup_of_dot_dot_never_leaves_the_export(gw: Gateway) -> None:
    nfs, root = await connect(gw, "/robkt", ROOT_CRED)
    up = await nfs.lookup(root, b"..")
    assert up.status == t.NFS3_OK
    assert up.obj_attributes and up.dir_attributes
    assert up.obj_attributes.fileid == up.dir_attributes.fileid


async def test_setattr_with_a_stale_guard_is_not_sync_and_changes_nothing(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "guard")
    f = await nfs.new_file(d, b"f", 0o644)
    attrs = (await nfs.getattr(f)).attributes
    assert attrs is not None
    bad = await nfs.setattr(f, t.Sattr3(mode=0o600), guard=attrs.ctime + 1)
    assert bad.status == t.NFS3ERR_NOT_SYNC
    assert (await nfs.getattr(f)).attributes.mode == 0o644  # type: ignore[union-attr]
    good = await nfs.setattr(f, t.Sattr3(mode=0o600), guard=attrs.ctime)
    assert good.status == t.NFS3_OK
    assert good.wcc.before is not None and good.wcc.before.ctime == attrs.ctime
    assert good.wcc.after is not None and good.wcc.after.mode == 0o600


async def test_setattr_truncates_extends_and_sets_times(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "setattr")
    f = await nfs.new_file(d, b"f")
    await nfs.write_all(f, b"0123456789", t.FILE_SYNC)
    assert (await nfs.setattr(f, t.Sattr3(size=4))).status == t.NFS3_OK
    assert await nfs.read_all(f) == b"0123"
    assert (await nfs.setattr(f, t.Sattr3(size=6))).status == t.NFS3_OK
    assert await nfs.read_all(f) == b"0123\0\0"
    when = 1_600_000_000_123_456_789
    res = await nfs.setattr(f, t.Sattr3(atime=when, mtime=when))
    assert res.status == t.NFS3_OK and res.wcc.after is not None
    assert res.wcc.after.mtime == when and res.wcc.after.atime == when
    before = time.time_ns()
    res = await nfs.setattr(f, t.Sattr3(mtime=t.SERVER_TIME))
    assert res.wcc.after is not None and res.wcc.after.mtime >= before - 10**9
    assert (await nfs.setattr(d, t.Sattr3(size=0))).status == t.NFS3ERR_ISDIR


async def test_setattr_by_someone_else_is_perm(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "setattr-perm")
    f = await nfs.new_file(d, b"f")
    other = nfs.as_(user(1234))
    assert (await other.setattr(f, t.Sattr3(mode=0o777))).status == t.NFS3ERR_PERM
    assert (await other.setattr(f, t.Sattr3(uid=1234))).status == t.NFS3ERR_PERM


async def test_access_follows_the_mode_bits_of_the_caller(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "access")
    f = await nfs.new_file(d, b"f", 0o640)
    assert (await nfs.setattr(f, t.Sattr3(uid=1000, gid=2000))).status == t.NFS3_OK
    all_bits = 0x3F
    owner = (await nfs.as_(user(1000, 1000)).access(f, all_bits)).access
    group = (await nfs.as_(user(1500, 2000)).access(f, all_bits)).access
    other = (await nfs.as_(user(1500, 1500)).access(f, all_bits)).access
    assert owner == t.ACCESS3_READ | t.ACCESS3_MODIFY | t.ACCESS3_EXTEND
    assert group == t.ACCESS3_READ
    assert other == 0
    dres = await nfs.as_(user(1500, 1500)).access(d, all_bits)  # d is 0777
    assert dres.access == (t.ACCESS3_READ | t.ACCESS3_LOOKUP | t.ACCESS3_MODIFY
                           | t.ACCESS3_EXTEND | t.ACCESS3_DELETE)
    assert (await nfs.access(f, t.ACCESS3_READ)).access == t.ACCESS3_READ  # only what was asked


async def test_readlink_returns_the_target_and_inval_on_a_file(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "links")
    res = await nfs.symlink(d, b"l", b"../some/where")
    assert res.status == t.NFS3_OK and res.object and res.attributes
    assert res.attributes.type == t.NF3LNK
    link = await nfs.readlink(res.object)
    assert link.status == t.NFS3_OK and link.data == b"../some/where"
    f = await nfs.new_file(d, b"f")
    assert (await nfs.readlink(f)).status == t.NFS3ERR_INVAL
    assert (await nfs.symlink(d, b"l", b"x")).status == t.NFS3ERR_EXIST


# -- data -----------------------------------------------------------------------------------

async def test_read_reports_eof_and_never_returns_more_than_rtmax(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "read")
    f = await nfs.new_file(d, b"f")
    body = os.urandom(3 * (1 << 20) + 5)
    await nfs.write_all(f, body, t.FILE_SYNC)
    first = await nfs.read(f, 0, 4 << 20)  # more than rtmax: capped, not refused
    assert first.status == t.NFS3_OK and first.count == 1 << 20 and not first.eof
    assert first.data == body[:1 << 20]
    last = await nfs.read(f, len(body) - 5, 100)
    assert last.count == 5 and last.eof and last.data == body[-5:]
    past = await nfs.read(f, len(body) + 10, 100)
    assert past.status == t.NFS3_OK and past.count == 0 and past.eof
    assert (await nfs.read(d, 0, 10)).status == t.NFS3ERR_ISDIR
    info = await nfs.fsinfo(f)
    assert info.rtmax == info.wtmax == 1 << 20


async def test_unstable_writes_reach_s3_at_commit_byte_for_byte(gw: Gateway, s3: object) -> None:
    nfs, d = await _bkt(gw, "unstable")
    f = await nfs.new_file(d, b"f")
    body = os.urandom(5 * (1 << 20) + 123)  # more than a chunk: some of it spills early
    verf = await nfs.write_all(f, body, t.UNSTABLE)
    assert (await nfs.getattr(f)).attributes.size == len(body)  # type: ignore[union-attr]
    assert _s3_body(s3, "unstable/f") == b""  # nothing committed yet: S3 sees the old file
    res = await nfs.commit(f)
    assert res.status == t.NFS3_OK and res.verf == verf
    assert _s3_body(s3, "unstable/f") == body


async def test_stable_writes_are_visible_at_once_and_answer_file_sync(gw: Gateway, s3: object) -> None:
    nfs, d = await _bkt(gw, "stable")
    f = await nfs.new_file(d, b"f")
    for how in (t.DATA_SYNC, t.FILE_SYNC):
        res = await nfs.write(f, 0, b"stable %d" % how, how)
        assert res.status == t.NFS3_OK and res.committed == t.FILE_SYNC
        assert res.wcc.after is not None and res.wcc.after.size == 8
        assert _s3_body(s3, "stable/f") == b"stable %d" % how


async def test_writes_report_weak_cache_consistency_data(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "wcc")
    f = await nfs.new_file(d, b"f")
    a = await nfs.write(f, 0, b"abc")
    b = await nfs.write(f, 3, b"def")
    assert a.wcc.before is not None and a.wcc.before.size == 0
    assert b.wcc.before is not None and b.wcc.before.size == 3
    assert b.wcc.after is not None and b.wcc.after.size == 6
    assert a.verf == b.verf and len(a.verf or b"") == 8


async def test_write_refusals(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "write-errors")
    f = await nfs.new_file(d, b"f", 0o644)
    assert (await nfs.write(d, 0, b"x")).status == t.NFS3ERR_ISDIR
    stranger = nfs.as_(user(4321))
    assert (await stranger.write(f, 0, b"x")).status == t.NFS3ERR_ACCES
    # The owner may write a file whose mode forbids it (as knfsd: the client checked at open).
    own = await nfs.new_file(d, b"mine", 0o666)
    assert (await nfs.setattr(own, t.Sattr3(uid=4321))).status == t.NFS3_OK
    assert (await stranger.setattr(own, t.Sattr3(mode=0o444))).status == t.NFS3_OK
    assert (await stranger.write(own, 0, b"ok", t.FILE_SYNC)).status == t.NFS3_OK
    # A WRITE whose count is larger than its data is garbage-free but invalid.
    bad = t.WriteArgs(f, 0, 10, t.UNSTABLE, b"short")
    assert (await nfs.call(t.WRITE, bad)).status == t.NFS3ERR_INVAL


# -- creating names ---------------------------------------------------------------------------

async def test_guarded_and_unchecked_create(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "create")
    res = await nfs.create(d, b"f", t.GUARDED, t.Sattr3(mode=0o640))
    assert res.status == t.NFS3_OK and res.object and res.attributes
    assert res.attributes.mode == 0o640 and res.attributes.uid == 0
    assert res.dir_wcc.before is not None and res.dir_wcc.after is not None
    assert res.dir_wcc.after.mtime >= res.dir_wcc.before.mtime
    await nfs.write_all(res.object, b"content", t.FILE_SYNC)
    again = await nfs.create(d, b"f", t.GUARDED)
    assert again.status == t.NFS3ERR_EXIST
    same = await nfs.create(d, b"f", t.UNCHECKED, t.Sattr3(mode=0o640))
    assert same.status == t.NFS3_OK and same.object == res.object  # no truncation asked
    assert await nfs.read_all(res.object) == b"content"
    trunc = await nfs.create(d, b"f", t.UNCHECKED, t.Sattr3(size=0))
    assert trunc.status == t.NFS3_OK and trunc.attributes and trunc.attributes.size == 0
    sub = await nfs.new_dir(d, b"sub")
    assert (await nfs.create(d, b"sub", t.UNCHECKED)).status == t.NFS3ERR_EXIST
    assert (await nfs.create(sub, b"x" * 256)).status == t.NFS3ERR_NAMETOOLONG


async def test_exclusive_create_succeeds_once_and_again_only_for_the_same_verifier(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "exclusive")
    first = await nfs.create(d, b"f", t.EXCLUSIVE, verf=b"verf0001")
    assert first.status == t.NFS3_OK and first.object
    retry = await nfs.create(d, b"f", t.EXCLUSIVE, verf=b"verf0001")  # the reply was lost
    assert retry.status == t.NFS3_OK and retry.object == first.object
    other = await nfs.create(d, b"f", t.EXCLUSIVE, verf=b"verf0002")
    assert other.status == t.NFS3ERR_EXIST
    # What a client does next: set the real attributes.
    assert (await nfs.setattr(first.object, t.Sattr3(mode=0o640))).status == t.NFS3_OK
    plain = await nfs.new_file(d, b"g")
    assert plain
    assert (await nfs.create(d, b"g", t.EXCLUSIVE, verf=b"verf0001")).status == t.NFS3ERR_EXIST


async def test_concurrent_exclusive_retries_make_one_file(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "exclusive-race")
    results = await asyncio.gather(*(nfs.create(d, b"f", t.EXCLUSIVE, verf=b"samesame")
                                     for _ in range(16)))
    assert {r.status for r in results} == {t.NFS3_OK}
    assert len({r.object for r in results}) == 1


async def test_mkdir_and_mknod(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "mk")
    res = await nfs.mkdir(d, b"sub", 0o750)
    assert res.status == t.NFS3_OK and res.attributes
    assert res.attributes.type == t.NF3DIR and res.attributes.mode == 0o750
    assert (await nfs.mkdir(d, b"sub")).status == t.NFS3ERR_EXIST
    fifo = await nfs.mknod(d, b"fifo", t.MknodData(t.NF3FIFO, t.Sattr3(mode=0o600)))
    assert fifo.status == t.NFS3_OK and fifo.attributes and fifo.attributes.type == t.NF3FIFO
    sock = await nfs.mknod(d, b"sock", t.MknodData(t.NF3SOCK, t.Sattr3()))
    assert sock.status == t.NFS3_OK and sock.attributes and sock.attributes.type == t.NF3SOCK
    chr_ = await nfs.mknod(d, b"null", t.MknodData(t.NF3CHR, t.Sattr3(), (1, 3)))
    assert chr_.status == t.NFS3ERR_NOTSUPP
    reg = await nfs.mknod(d, b"reg", t.MknodData(t.NF3REG))
    assert reg.status == t.NFS3ERR_BADTYPE
    assert (await nfs.lookup(d, b"null")).status == t.NFS3ERR_NOENT


# -- removing and renaming ----------------------------------------------------------------------

async def test_remove_and_rmdir_with_their_errors(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "rm")
    await nfs.new_file(d, b"f")
    sub = await nfs.new_dir(d, b"sub")
    await nfs.new_file(sub, b"inner")
    assert (await nfs.remove(d, b"sub")).status == t.NFS3ERR_ISDIR
    assert (await nfs.rmdir(d, b"f")).status == t.NFS3ERR_NOTDIR
    assert (await nfs.rmdir(d, b"sub")).status == t.NFS3ERR_NOTEMPTY
    assert (await nfs.remove(d, b"nope")).status == t.NFS3ERR_NOENT
    res = await nfs.remove(d, b"f")
    assert res.status == t.NFS3_OK and res.wcc.after is not None
    assert (await nfs.remove(sub, b"inner")).status == t.NFS3_OK
    assert (await nfs.rmdir(d, b"sub")).status == t.NFS3_OK
    assert [e.name for e in await nfs.list_plus(d)] == [b".", b".."]


async def test_a_removed_files_handle_is_stale_even_while_it_was_being_written(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "stale")
    f = await nfs.new_file(d, b"f")
    await nfs.write(f, 0, b"buffered, never committed")  # the server holds it open
    assert (await nfs.remove(d, b"f")).status == t.NFS3_OK
    for res in (await nfs.getattr(f), await nfs.read(f, 0, 10), await nfs.write(f, 0, b"x"),
                await nfs.commit(f), await nfs.setattr(f, t.Sattr3(mode=0o600))):
        assert res.status == t.NFS3ERR_STALE, res
    sub = await nfs.new_dir(d, b"sub")
    assert (await nfs.rmdir(d, b"sub")).status == t.NFS3_OK
    assert (await nfs.getattr(sub)).status == t.NFS3ERR_STALE
    assert (await nfs.create(sub, b"x")).status == t.NFS3ERR_STALE


async def test_an_s3_overwrite_makes_the_old_handle_stale(gw: Gateway, s3: object) -> None:
    s3.put_object(Bucket="bkt", Key="over/f", Body=b"v1")  # type: ignore[attr-defined]
    nfs, root = await connect(gw, "/", ROOT_CRED)
    f = await nfs.walk(root, "bkt/over/f")
    assert await nfs.read_all(f) == b"v1"
    s3.put_object(Bucket="bkt", Key="over/f", Body=b"v2")  # type: ignore[attr-defined]
    assert (await nfs.getattr(f)).status == t.NFS3ERR_STALE
    assert await nfs.read_all(await nfs.walk(root, "bkt/over/f")) == b"v2"


async def test_rename_moves_and_replaces_with_wcc_for_both_directories(gw: Gateway, s3: object) -> None:
    nfs, d = await _bkt(gw, "mv")
    a = await nfs.new_dir(d, b"a")
    b = await nfs.new_dir(d, b"b")
    f = await nfs.new_file(a, b"f")
    await nfs.write_all(f, b"moved", t.FILE_SYNC)
    old = await nfs.new_file(b, b"g")
    res = await nfs.rename(a, b"f", b, b"g")
    assert res.status == t.NFS3_OK
    assert res.fromdir_wcc.before and res.fromdir_wcc.after and res.todir_wcc.after
    assert (await nfs.getattr(old)).status == t.NFS3ERR_STALE
    assert await nfs.read_all(await nfs.walk(b, "g")) == b"moved"
    assert _s3_body(s3, "mv/b/g") == b"moved"
    assert (await nfs.rename(a, b"missing", b, b"x")).status == t.NFS3ERR_NOENT
    sub = await nfs.new_dir(b, b"sub")
    assert (await nfs.rename(d, b"b", sub, b"inside")).status == t.NFS3ERR_INVAL
    await nfs.new_file(sub, b"keep")
    assert (await nfs.rename(d, b"a", b, b"sub")).status == t.NFS3ERR_NOTEMPTY


async def test_link_adds_a_name_and_counts_it(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "ln")
    f = await nfs.new_file(d, b"f")
    res = await nfs.link(f, d, b"g")
    assert res.status == t.NFS3_OK and res.attributes and res.attributes.nlink == 2
    assert res.linkdir_wcc.after is not None
    assert (await nfs.walk(d, "g")) and (await nfs.lookup(d, b"g")).obj_attributes.fileid == res.attributes.fileid  # type: ignore[union-attr]
    assert (await nfs.link(f, d, b"g")).status == t.NFS3ERR_EXIST
    sub = await nfs.new_dir(d, b"sub")
    assert (await nfs.link(sub, d, b"dirlink")).status in (t.NFS3ERR_PERM, t.NFS3ERR_ISDIR)


# -- directories ---------------------------------------------------------------------------------

async def test_readdir_lists_dot_entries_and_everything_once_within_the_byte_budget(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "ls")
    names = {b"file-%03d-%s" % (i, b"x" * (i % 37)) for i in range(300)}
    await asyncio.gather(*(nfs.new_file(d, n) for n in names))
    seen: list[bytes] = []
    cookie, verf = 0, bytes(8)
    for count in (600, 1024, 4096, 700, 9000) * 100:
        res = await nfs.readdir(d, cookie, verf, count)
        assert res.status == t.NFS3_OK and res.entries is not None and res.cookieverf
        assert len(res.to_bytes()) - 4 <= count  # the resok, XDR overhead included
        seen += [e.name for e in res.entries]
        if res.eof:
            break
        assert res.entries
        cookie, verf = res.entries[-1].cookie, res.cookieverf
    assert seen[:2] == [b".", b".."]
    assert sorted(seen[2:]) == sorted(names)


async def test_readdirplus_pages_fit_maxcount_and_carry_handles_and_attributes(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "lsplus")
    await asyncio.gather(*(nfs.new_file(d, b"f%d" % i) for i in range(200)))
    cookie, verf = 0, bytes(8)
    entries: list[t.EntryPlus3] = []
    while True:
        res = await nfs.readdirplus(d, cookie, verf, dircount=4096, maxcount=2048)
        assert res.status == t.NFS3_OK and res.entries is not None
        assert len(res.to_bytes()) - 4 <= 2048
        entries += res.entries
        if res.eof:
            break
        cookie, verf = res.entries[-1].cookie, res.cookieverf or b""
    files = [e for e in entries if e.name.startswith(b"f")]
    assert len(files) == 200
    for e in files[:20]:
        assert e.handle and e.attributes and e.attributes.fileid == e.fileid
        assert (await nfs.getattr(e.handle)).attributes == e.attributes


async def test_a_budget_too_small_for_one_entry_is_toosmall(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "toosmall")
    assert (await nfs.readdir(d, 0, bytes(8), 50)).status == t.NFS3ERR_TOOSMALL
    assert (await nfs.readdirplus(d, 0, bytes(8), 8192, 150)).status == t.NFS3ERR_TOOSMALL


async def test_a_foreign_cookie_verifier_is_bad_cookie(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "badcookie")
    await nfs.new_file(d, b"f")
    assert (await nfs.readdir(d, 3, b"nonsense", 4096)).status == t.NFS3ERR_BAD_COOKIE
    assert (await nfs.readdir(f := await nfs.walk(d, "f"), 0, bytes(8), 4096)).status == t.NFS3ERR_NOTDIR
    assert f


async def test_readdirplus_pages_a_20k_entry_directory_without_repeats_or_losses(gw: Gateway) -> None:
    """20k entries (~7 s here); SAMEBYTES_TEST_NFS_DIR_ENTRIES=100000 runs the 100k case (~40 s here)."""
    nfs, d = await _bkt(gw, "big")
    n = int(os.environ.get("SAMEBYTES_TEST_NFS_DIR_ENTRIES", "20000"))
    sem = asyncio.Semaphore(64)

    async def make(i: int) -> None:
        async with sem:
            res = await nfs.create(d, b"entry-%06d" % i, t.GUARDED)
            assert res.status == t.NFS3_OK

    await asyncio.gather(*(make(i) for i in range(n)))
    entries = await nfs.list_plus(d, maxcount=65536, dircount=16384)
    names = [e.name for e in entries[2:]]
    assert len(names) == n and len(set(names)) == n
    assert all(e.handle and e.attributes for e in entries)


async def test_paging_survives_concurrent_creates_and_removes(gw: Gateway) -> None:
    nfs, d = await _bkt(gw, "churn")
    stay = [b"stay-%04d" % i for i in range(600)]
    go = [b"go-%04d" % i for i in range(300)]
    for batch in (stay, go):
        await asyncio.gather(*(nfs.new_file(d, n) for n in batch))
    seen: list[bytes] = []
    cookie, verf = 0, bytes(8)
    page = 0
    while True:
        res = await nfs.readdirplus(d, cookie, verf, 2048, 4096)
        assert res.status == t.NFS3_OK and res.entries is not None
        seen += [e.name for e in res.entries]
        if res.eof:
            break
        cookie, verf = res.entries[-1].cookie, res.cookieverf or b""
        # Between pages: remove some of the others, add new ones.
        await asyncio.gather(*(nfs.remove(d, name) for name in go[page * 10:page * 10 + 10]),
                             *(nfs.new_file(d, b"new-%d-%d" % (page, i)) for i in range(5)))
        page += 1
    assert page > 10
    listed = [n for n in seen if n.startswith(b"stay-")]
    assert sorted(listed) == stay  # every untouched entry exactly once
    assert len(seen) == len(set(seen))


# -- the file system ---------------------------------------------------------------------------

async def test_fsstat_fsinfo_and_pathconf(gw: Gateway) -> None:
    nfs, root = await connect(gw, "/", ROOT_CRED)
    st = await nfs.fsstat(root)
    vfs = os.statvfs(gw.data)
    assert st.status == t.NFS3_OK and st.attributes
    assert st.tbytes == vfs.f_blocks * vfs.f_frsize
    assert 0 < (st.abytes or 0) <= (st.fbytes or 0) <= (st.tbytes or 0)
    assert (st.tfiles or 0) >= (st.ffiles or 0) > 0
    info = await nfs.fsinfo(root)
    assert info.status == t.NFS3_OK
    assert info.rtmax == info.rtpref == info.wtmax == info.wtpref == 1 << 20
    assert info.time_delta == 1 and (info.dtpref or 0) > 0 and (info.maxfilesize or 0) >= 1 << 62
    assert info.properties == (t.FSF3_LINK | t.FSF3_SYMLINK | t.FSF3_HOMOGENEOUS
                               | t.FSF3_CANSETTIME)
    pc = await nfs.pathconf(root)
    assert pc.status == t.NFS3_OK and pc.name_max == 255 and (pc.linkmax or 0) > 1
    assert pc.no_trunc and pc.chown_restricted and not pc.case_insensitive and pc.case_preserving


async def test_null_answers_and_a_garbage_handle_is_badhandle(gw: Gateway) -> None:
    nfs, root = await connect(gw, "/", ROOT_CRED)
    assert await nfs.null() == b""
    forged = bytes(len(root))
    assert (await nfs.getattr(forged)).status == t.NFS3ERR_BADHANDLE
    flipped = root[:-1] + bytes([root[-1] ^ 1])
    assert (await nfs.getattr(flipped)).status == t.NFS3ERR_BADHANDLE


# -- exports and identities ---------------------------------------------------------------------

async def test_a_read_only_export_refuses_every_change_with_rofs(gw: Gateway, s3: object) -> None:
    s3.put_object(Bucket="robkt", Key="f", Body=b"read me")  # type: ignore[attr-defined]
    nfs, root = await connect(gw, "/robkt", ROOT_CRED)
    f = await nfs.walk(root, "f")
    assert await nfs.read_all(f) == b"read me"
    assert (await nfs.access(f)).access == t.ACCESS3_READ
    checks = [
        await nfs.write(f, 0, b"x"), await nfs.setattr(f, t.Sattr3(mode=0o600)),
        await nfs.create(root, b"new"), await nfs.mkdir(root, b"d"),
        await nfs.symlink(root, b"l", b"f"), await nfs.remove(root, b"f"),
        await nfs.rmdir(root, b"f"), await nfs.rename(root, b"f", root, b"g"),
        await nfs.link(f, root, b"h"),
        await nfs.mknod(root, b"p", t.MknodData(t.NF3FIFO, t.Sattr3())),
    ]
    assert [r.status for r in checks] == [t.NFS3ERR_ROFS] * len(checks)
    assert _s3_body(s3, "f", "robkt") == b"read me"


async def test_root_squash_makes_uid_0_anonymous(gw: Gateway) -> None:
    nfs, root = await connect(gw, "/sqbkt", ROOT_CRED)  # /sqbkt squashes root (the default)
    assert (await nfs.create(root, b"as-root")).status == t.NFS3ERR_ACCES  # bucket is 0755 root
    admin, admin_root = await connect(gw, "/", ROOT_CRED)
    sq = await admin.walk(admin_root, "sqbkt")
    assert (await admin.setattr(sq, t.Sattr3(mode=0o777))).status == t.NFS3_OK
    res = await nfs.create(root, b"as-root")
    assert res.status == t.NFS3_OK and res.attributes
    assert (res.attributes.uid, res.attributes.gid) == ANON
    mine = await nfs.as_(user(1000, 1000)).create(root, b"as-1000")
    assert mine.attributes and (mine.attributes.uid, mine.attributes.gid) == (1000, 1000)


# -- garbage -------------------------------------------------------------------------------------

def _garbage_bodies(root: bytes) -> list[tuple[int, bytes]]:
    fh = t.FhArgs(root)
    p = Packer()
    fh.pack(p)
    good_fh = p.get_buffer()
    w = Packer()
    t.WriteArgs(root, 0, 100, t.UNSTABLE, b"x" * 100).pack(w)
    c = Packer()
    t.DirOpArgs3(root, b"n").pack(c)
    c.pack_enum(7)  # no such createmode3
    s = Packer()
    s.pack_opaque(root)
    for _ in range(5):
        s.pack_bool(False)
    s.pack_enum(9)  # no such time_how
    s.pack_bool(False)
    return [
        (t.GETATTR, b""),                                   # no handle at all
        (t.GETATTR, good_fh + b"\0\0\0\0"),                 # trailing bytes
        (t.GETATTR, b"\0\0\0\x41" + bytes(68)),             # a 65-byte handle
        (t.WRITE, w.get_buffer()[:-40]),                    # data cut short
        (t.CREATE, c.get_buffer()),
        (t.SETATTR, s.get_buffer()),
        (t.READDIR, good_fh + b"\0\0\0\0"),                 # cookie cut short
        (t.LOOKUP, good_fh + b"\xff\xff\xff\xff"),          # a name longer than the record
    ]


def test_malformed_arguments_are_garbage_args_and_the_connection_keeps_serving(gw: Gateway) -> None:
    from tests.nfs_client import RpcClient
    assert gw.nfs_port is not None
    with RpcClient(gw.nfs_port) as c:
        root = c.mount("/")
        for proc, body in _garbage_bodies(root):
            reply = c.call(NFS_PROG, 3, proc, body)
            assert reply.accepted and reply.accept_stat == AcceptStat.GARBAGE_ARGS, (proc, reply)
        ok = c.call_ok(NFS_PROG, 3, t.GETATTR, _packed(t.FhArgs(root)))
        assert t.GetattrRes.unpack(ok).status == t.NFS3_OK


def _packed(v: t.Struct) -> bytes:
    p = Packer()
    v.pack(p)
    return p.get_buffer()
