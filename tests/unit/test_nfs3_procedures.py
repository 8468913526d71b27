"""The NFSv3 procedures over a real vfs, in process: the codecs on both sides, the
vfs and the open-file cache are the real ones; file handles and exports are small
test doubles (their real versions, and the RPC server, are tested with a running
gateway in tests/integration/test_nfs3_procedures.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.nfs import nfs3_types as t
from gateway.nfs.nfs3 import Nfs3 as Door
from gateway.nfs.rpc import AuthSys, RpcCall
from gateway.nfs.xdr import Unpacker
from gateway.vfs import ROOT, Caller, Filesystem
from metadata import ROOT_INO
from tests.nfs3_calls import Nfs3

ROOT_CRED = AuthSys(0, b"unit", 0, 0, ())


@dataclass
class Export:
    """A test double of exports.Export: read-only flag, root squash, root inode."""
    index: int
    read_only: bool = False
    squash_root: bool = False
    root_ino: int = ROOT_INO

    def allows(self, peer: object) -> bool:
        return True

    def squash(self, cred: AuthSys | None) -> Caller:
        if cred is None or (self.squash_root and cred.uid == 0):
            return Caller(65534, 65534)
        return Caller(cred.uid, cred.gid, frozenset(cred.gids))


class Handles:
    """A test double of handles.py: export index, inode, generation and a checksum."""

    def __init__(self, exports: list[Export]) -> None:
        self.exports = exports

    def encode(self, export: Export, ino: int, gen: int) -> bytes:
        body = bytes([export.index]) + ino.to_bytes(8, "big") + gen.to_bytes(4, "big")
        return body + hashlib.sha256(body).digest()[:4]

    def decode(self, fh: bytes) -> tuple[Export, int, int]:
        if len(fh) != 17 or hashlib.sha256(fh[:13]).digest()[:4] != fh[13:] or fh[0] >= len(self.exports):
            raise ValueError("not one of ours")
        return self.exports[fh[0]], int.from_bytes(fh[1:9], "big"), int.from_bytes(fh[9:13], "big")


@dataclass
class Setup:
    fs: Filesystem
    door: Door
    exports: list[Export]

    def client(self, cred: AuthSys = ROOT_CRED) -> Nfs3:
        procs = self.door.procedures()

        async def transport(proc: int, body: bytes, c: AuthSys | None) -> bytes:
            out = await procs[(3, proc)](RpcCall(1, 100003, 3, proc, c, Unpacker(body)))
            return b"".join(out) if isinstance(out, list) else bytes(out)
        return Nfs3(transport, cred)

    def root(self, export: int = 0) -> bytes:
        e = self.exports[export]
        return self.door.handles.encode(e, e.root_ino, 0)


@pytest.fixture
async def nfs(tmp_path: Path) -> AsyncIterator[Setup]:
    fs = Filesystem.from_data_dir(tmp_path / "data", chunk_size=256 * 1024)
    await fs.start()
    bkt = await fs.create_bucket(ROOT, "bkt", 0o777)
    exports = [Export(0), Export(1, read_only=True, root_ino=bkt.ino),
               Export(2, squash_root=True, root_ino=bkt.ino)]
    door = Door(fs, Handles(exports), exports, b"verifier", idle_seconds=3600)
    try:
        yield Setup(fs, door, exports)
    finally:
        await door.aclose()
        await fs.aclose()


async def test_unstable_writes_are_committed_by_commit_with_the_start_verifier(nfs: Setup) -> None:
    c = nfs.client()
    bkt = await c.walk(nfs.root(), "bkt")
    f = await c.new_file(bkt, b"f")
    body = bytes(range(256)) * 4000  # spans chunks
    assert await c.write_all(f, body, t.UNSTABLE, chunk=100_000) == b"verifier"
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == b""
    assert await c.read_all(f) == body  # the writer's own reads see the buffer
    res = await c.commit(f)
    assert res.status == t.NFS3_OK and res.verf == b"verifier"
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == body


async def test_exclusive_create_is_exactly_once(nfs: Setup) -> None:
    c = nfs.client()
    results = await asyncio.gather(*(c.create(nfs.root(), b"x", t.EXCLUSIVE, verf=b"12345678")
                                     for _ in range(5)))
    assert {r.status for r in results} == {t.NFS3_OK} and len({r.object for r in results}) == 1
    assert (await c.create(nfs.root(), b"x", t.EXCLUSIVE, verf=b"87654321")).status == t.NFS3ERR_EXIST
    assert (await c.create(nfs.root(), b"x", t.GUARDED)).status == t.NFS3ERR_EXIST


async def test_listings_fit_their_budget_and_resume_from_any_cookie(nfs: Setup) -> None:
    c = nfs.client()
    d = await c.new_dir(nfs.root(), b"d")
    names = [b"n%04d" % i for i in range(500)]
    await asyncio.gather(*(c.new_file(d, n) for n in names))
    seen: list[bytes] = []
    cookie, verf = 0, bytes(8)
    while True:
        res = await c.readdirplus(d, cookie, verf, dircount=1024, maxcount=3000)
        assert res.status == t.NFS3_OK and res.entries is not None
        assert len(res.to_bytes()) - 4 <= 3000
        assert sum(t.entry3_size(len(e.name)) for e in res.entries[1:]) <= 1024
        seen += [e.name for e in res.entries]
        if res.eof:
            break
        cookie, verf = res.entries[-1].cookie, res.cookieverf or b""
    assert seen == [b".", b".."] + names  # insertion order, each once
    res = await c.readdir(d, 0, bytes(8), 200)
    assert res.status == t.NFS3_OK and res.entries and res.entries[0].name == b"."
    resumed = await c.readdir(d, res.entries[-1].cookie, res.cookieverf or b"", 100_000)
    assert [e.name for e in res.entries + (resumed.entries or [])] == [b".", b".."] + names


async def test_handles_go_stale_when_their_file_goes(nfs: Setup) -> None:
    c = nfs.client()
    f = await c.new_file(nfs.root(), b"f")
    await c.write(f, 0, b"held open by the server")
    assert (await c.remove(nfs.root(), b"f")).status == t.NFS3_OK
    assert (await c.getattr(f)).status == t.NFS3ERR_STALE
    assert not nfs.fs.is_open(int.from_bytes(f[1:9], "big"))
    assert (await c.getattr(b"\0" * 17)).status == t.NFS3ERR_BADHANDLE


async def test_read_only_exports_and_root_squash(nfs: Setup) -> None:
    c = nfs.client()
    ro = nfs.root(1)
    assert (await c.create(ro, b"f")).status == t.NFS3ERR_ROFS
    assert (await c.access(ro)).access == t.ACCESS3_READ | t.ACCESS3_LOOKUP
    squashed = await c.create(nfs.root(2), b"by-root")
    assert squashed.status == t.NFS3_OK and squashed.attributes
    assert (squashed.attributes.uid, squashed.attributes.gid) == (65534, 65534)


async def test_vfs_errors_map_to_nfs_statuses(nfs: Setup) -> None:
    c = nfs.client()
    d = await c.new_dir(nfs.root(), b"d")
    await c.new_file(d, b"f")
    assert (await c.rmdir(nfs.root(), b"d")).status == t.NFS3ERR_NOTEMPTY
    assert (await c.lookup(d, b"nope")).status == t.NFS3ERR_NOENT
    assert (await c.mkdir(d, b"n" * 300)).status == t.NFS3ERR_NAMETOOLONG
    other = nfs.client(AuthSys(0, b"unit", 1000, 1000, ()))
    assert (await other.create(d, b"g")).status == t.NFS3ERR_ACCES
    assert (await other.setattr(d, t.Sattr3(mode=0o777))).status == t.NFS3ERR_PERM


# -- durability of WRITE and COMMIT ----------------------------------------------------------------

class SyncSpy:
    """Records which chunks the store was asked to make durable (the real sync runs)."""

    def __init__(self, fs: Filesystem, fail: bool = False) -> None:
        self.synced: set[int] = set()
        self.durable_puts = 0
        self.fail = fail
        self._sync, self._put = fs.chunks.sync, fs.chunks.put
        fs.chunks.sync = self.sync  # type: ignore[method-assign]
        fs.chunks.put = self.put  # type: ignore[method-assign]

    async def sync(self, ids: list[int]) -> None:
        if self.fail and ids:
            from chunkstore import ChunkError
            raise ChunkError(ids[0], "fdatasync: Input/output error", errno=5)
        await self._sync(ids)
        self.synced.update(ids)

    async def put(self, chunk_id: int, data: object) -> object:
        self.durable_puts += 1
        return await self._put(chunk_id, data)  # type: ignore[arg-type]


def _chunk_ids(fs: Filesystem, ino: int) -> set[int]:
    from metadata import namespace as ns
    with fs.meta.read() as txn:
        return {e.chunk_id for e in ns.extents(txn, ino, 0, 1 << 62) if e.chunk_id}


async def _settled(fs: Filesystem, ino: int) -> None:
    f = fs._open[ino]
    while f.pending:
        await asyncio.wait([f.pending[0].task])


async def test_unstable_writes_are_not_flushed_to_disk_until_commit_flushes_them(nfs: Setup) -> None:
    spy = SyncSpy(nfs.fs)
    c = nfs.client()
    f = await c.new_file(await c.walk(nfs.root(), "bkt"), b"f")
    ino = nfs.door.handles.decode(f)[1]
    body = os.urandom(4 * 256 * 1024 + 5)  # four chunks and a tail
    await c.write_all(f, body, t.UNSTABLE, chunk=100_000)
    await _settled(nfs.fs, ino)
    assert spy.synced == set() and spy.durable_puts == 0  # written, not claimed durable
    assert _chunk_ids(nfs.fs, ino) == set()  # and nothing points at them yet
    res = await c.commit(f)
    assert res.status == t.NFS3_OK and res.verf == b"verifier"
    ids = _chunk_ids(nfs.fs, ino)
    assert len(ids) == 4 and ids <= spy.synced  # every chunk the file points at was synced
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == body


async def test_a_file_sync_write_is_durable_when_it_is_answered(nfs: Setup) -> None:
    spy = SyncSpy(nfs.fs)
    c = nfs.client()
    f = await c.new_file(await c.walk(nfs.root(), "bkt"), b"f")
    ino = nfs.door.handles.decode(f)[1]
    body = os.urandom(300 * 1024)
    res = await c.write(f, 0, body, t.FILE_SYNC)
    assert res.status == t.NFS3_OK and res.committed == t.FILE_SYNC
    ids = _chunk_ids(nfs.fs, ino)
    assert ids and ids <= spy.synced
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == body


async def test_a_commit_that_cannot_flush_fails_changes_the_verifier_and_loses_nothing_committed(
        nfs: Setup) -> None:
    c = nfs.client()
    f = await c.new_file(await c.walk(nfs.root(), "bkt"), b"f")
    first = os.urandom(600 * 1024)
    v1 = await c.write_all(f, first, t.UNSTABLE, chunk=100_000)
    assert (await c.commit(f)).verf == v1
    spy = SyncSpy(nfs.fs, fail=True)  # the disk fails the flush (EIO)
    await c.write_all(f, os.urandom(600 * 1024), t.UNSTABLE, chunk=100_000)
    res = await c.commit(f)
    assert res.status == t.NFS3ERR_IO
    v2 = nfs.door.write_verifier
    assert v2 != v1, "clients must resend what they wrote unstably"
    # The unflushable writes are gone, not half-committed: the file is its committed self.
    assert await c.read_all(f) == first
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == first
    spy.fail = False  # the client resends; now it holds
    again = os.urandom(600 * 1024)
    assert await c.write_all(f, again, t.UNSTABLE, chunk=100_000) == v2
    assert (await c.commit(f)).verf == v2
    assert await nfs.fs.read_object(ROOT, "bkt", "f") == again
