"""Typed NFSv3 calls for tests, over any RPC transport (tests/nfs_client.py).

Each method packs its arguments with the door's own codecs, sends one call and
decodes the whole reply (trailing bytes fail the test). Helpers at the bottom walk
paths, read and write whole files, and list whole directories.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.nfs import nfs3_types as t
from gateway.nfs.xdr import Packer, Unpacker

R = TypeVar("R", bound=t.Result)
# (procedure, packed arguments, credentials or None for the client's default) -> reply body
Transport = Callable[[int, bytes, Any], Awaitable[bytes]]

CHUNK = 1 << 20


class NfsCallError(AssertionError):
    def __init__(self, proc: int, res: t.Result) -> None:
        super().__init__(f"NFS procedure {proc} failed with status {res.status}: {res}")
        self.res = res
        self.status = res.status


class Nfs3:
    def __init__(self, transport: Transport, cred: Any = None) -> None:
        self.transport = transport
        self.cred = cred

    def as_(self, cred: Any) -> Nfs3:
        """The same connection speaking as other credentials."""
        return Nfs3(self.transport, cred)

    async def raw(self, proc: int, body: bytes) -> bytes:
        return await self.transport(proc, body, self.cred)

    async def call(self, proc: int, args: t.Struct | None) -> t.Result:
        p = Packer()
        if args is not None:
            args.pack(p)
        reply = await self.transport(proc, p.get_buffer(), self.cred)
        rtype = t.RESULTS[proc]
        assert rtype is not None
        u = Unpacker(reply)
        res = rtype.unpack(u)
        assert u.remaining() == 0, f"{u.remaining()} bytes after the result of {proc}"
        return res

    async def ok(self, proc: int, args: t.Struct | None) -> Any:
        res = await self.call(proc, args)
        if res.status != t.NFS3_OK:
            raise NfsCallError(proc, res)
        return res

    # -- one method per procedure (each returns the decoded result, any status) ----------

    async def null(self) -> bytes:
        return await self.transport(t.NULL, b"", self.cred)

    async def getattr(self, fh: bytes) -> t.GetattrRes:
        return await self.call(t.GETATTR, t.FhArgs(fh))  # type: ignore[return-value]

    async def setattr(self, fh: bytes, attrs: t.Sattr3, guard: int | None = None) -> t.WccRes:
        return await self.call(t.SETATTR, t.SetattrArgs(fh, attrs, guard))  # type: ignore[return-value]

    async def lookup(self, dir_fh: bytes, name: bytes) -> t.LookupRes:
        return await self.call(t.LOOKUP, t.DirOpArgs(t.DirOpArgs3(dir_fh, name)))  # type: ignore[return-value]

    async def access(self, fh: bytes, bits: int = 0x3F) -> t.AccessRes:
        return await self.call(t.ACCESS, t.AccessArgs(fh, bits))  # type: ignore[return-value]

    async def readlink(self, fh: bytes) -> t.ReadlinkRes:
        return await self.call(t.READLINK, t.FhArgs(fh))  # type: ignore[return-value]

    async def read(self, fh: bytes, offset: int, count: int) -> t.ReadRes:
        return await self.call(t.READ, t.ReadArgs(fh, offset, count))  # type: ignore[return-value]

    async def write(self, fh: bytes, offset: int, data: bytes,
                    stable: int = t.UNSTABLE) -> t.WriteRes:
        return await self.call(t.WRITE, t.WriteArgs(fh, offset, len(data), stable, data))  # type: ignore[return-value]

    async def create(self, dir_fh: bytes, name: bytes, mode: int = t.GUARDED,
                     attrs: t.Sattr3 | None = None, verf: bytes | None = None) -> t.CreateRes:
        how = (t.CreateHow(mode, verf=verf) if mode == t.EXCLUSIVE
               else t.CreateHow(mode, attrs or t.Sattr3(mode=0o644)))
        return await self.call(t.CREATE, t.CreateArgs(t.DirOpArgs3(dir_fh, name), how))  # type: ignore[return-value]

    async def mkdir(self, dir_fh: bytes, name: bytes, mode: int = 0o755) -> t.CreateRes:
        return await self.call(t.MKDIR, t.MkdirArgs(t.DirOpArgs3(dir_fh, name), t.Sattr3(mode=mode)))  # type: ignore[return-value]

    async def symlink(self, dir_fh: bytes, name: bytes, target: bytes) -> t.CreateRes:
        return await self.call(t.SYMLINK, t.SymlinkArgs(t.DirOpArgs3(dir_fh, name), t.Sattr3(), target))  # type: ignore[return-value]

    async def mknod(self, dir_fh: bytes, name: bytes, what: t.MknodData) -> t.CreateRes:
        return await self.call(t.MKNOD, t.MknodArgs(t.DirOpArgs3(dir_fh, name), what))  # type: ignore[return-value]

    async def remove(self, dir_fh: bytes, name: bytes) -> t.WccRes:
        return await self.call(t.REMOVE, t.DirOpArgs(t.DirOpArgs3(dir_fh, name)))  # type: ignore[return-value]

    async def rmdir(self, dir_fh: bytes, name: bytes) -> t.WccRes:
        return await self.call(t.RMDIR, t.DirOpArgs(t.DirOpArgs3(dir_fh, name)))  # type: ignore[return-value]

    async def rename(self, from_dir: bytes, from_name: bytes, to_dir: bytes,
                     to_name: bytes) -> t.RenameRes:
        return await self.call(t.RENAME, t.RenameArgs(t.DirOpArgs3(from_dir, from_name),  # type: ignore[return-value]
                                                      t.DirOpArgs3(to_dir, to_name)))

    async def link(self, fh: bytes, dir_fh: bytes, name: bytes) -> t.LinkRes:
        return await self.call(t.LINK, t.LinkArgs(fh, t.DirOpArgs3(dir_fh, name)))  # type: ignore[return-value]

    async def readdir(self, fh: bytes, cookie: int = 0, verf: bytes = bytes(8),
                      count: int = 8192) -> t.ReaddirRes:
        return await self.call(t.READDIR, t.ReaddirArgs(fh, cookie, verf, count))  # type: ignore[return-value]

    async def readdirplus(self, fh: bytes, cookie: int = 0, verf: bytes = bytes(8),
                          dircount: int = 8192, maxcount: int = 32768) -> t.ReaddirplusRes:
        return await self.call(t.READDIRPLUS, t.ReaddirplusArgs(fh, cookie, verf, dircount, maxcount))  # type: ignore[return-value]

    async def fsstat(self, fh: bytes) -> t.FsstatRes:
        return await self.call(t.FSSTAT, t.FhArgs(fh))  # type: ignore[return-value]

    async def fsinfo(self, fh: bytes) -> t.FsinfoRes:
        return await self.call(t.FSINFO, t.FhArgs(fh))  # type: ignore[return-value]

    async def pathconf(self, fh: bytes) -> t.PathconfRes:
        return await self.call(t.PATHCONF, t.FhArgs(fh))  # type: ignore[return-value]

    async def commit(self, fh: bytes, offset: int = 0, count: int = 0) -> t.CommitRes:
        return await self.call(t.COMMIT, t.CommitArgs(fh, offset, count))  # type: ignore[return-value]

    # -- helpers -------------------------------------------------------------------------

    async def walk(self, root: bytes, path: str) -> bytes:
        fh = root
        for part in path.strip("/").split("/"):
            if part:
                res = await self.lookup(fh, part.encode())
                if res.status != t.NFS3_OK:
                    raise NfsCallError(t.LOOKUP, res)
                assert res.object is not None
                fh = res.object
        return fh

    async def new_file(self, dir_fh: bytes, name: bytes, mode: int = 0o644) -> bytes:
        res = await self.create(dir_fh, name, t.GUARDED, t.Sattr3(mode=mode))
        if res.status != t.NFS3_OK:
            raise NfsCallError(t.CREATE, res)
        assert res.object is not None
        return res.object

    async def new_dir(self, dir_fh: bytes, name: bytes, mode: int = 0o755) -> bytes:
        res = await self.mkdir(dir_fh, name, mode)
        if res.status != t.NFS3_OK:
            raise NfsCallError(t.MKDIR, res)
        assert res.object is not None
        return res.object

    async def write_all(self, fh: bytes, data: bytes, stable: int = t.UNSTABLE,
                        chunk: int = CHUNK) -> bytes:
        """Write data from offset 0; returns the verifier of the last reply."""
        verf = b""
        for at in range(0, len(data), chunk):
            res = await self.write(fh, at, data[at:at + chunk], stable)
            if res.status != t.NFS3_OK:
                raise NfsCallError(t.WRITE, res)
            assert res.count == len(data[at:at + chunk])
            verf = res.verf or b""
        return verf

    async def read_all(self, fh: bytes, chunk: int = CHUNK) -> bytes:
        out = bytearray()
        while True:
            res = await self.read(fh, len(out), chunk)
            if res.status != t.NFS3_OK:
                raise NfsCallError(t.READ, res)
            assert res.data is not None
            out += res.data
            if res.eof:
                return bytes(out)
            assert res.data, "an empty READ must say eof"

    async def list_plus(self, fh: bytes, maxcount: int = 32768,
                        dircount: int = 8192) -> list[t.EntryPlus3]:
        """Every entry of a directory through READDIRPLUS pages."""
        out: list[t.EntryPlus3] = []
        cookie, verf = 0, bytes(8)
        while True:
            res = await self.readdirplus(fh, cookie, verf, dircount, maxcount)
            if res.status != t.NFS3_OK:
                raise NfsCallError(t.READDIRPLUS, res)
            assert res.entries is not None and res.cookieverf is not None
            out += res.entries
            if res.eof:
                return out
            assert res.entries, "a page without entries must say eof"
            cookie, verf = res.entries[-1].cookie, res.cookieverf
