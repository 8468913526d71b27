"""NFSv3 procedures (RFC 1813) over the vfs: decode, check the export, call the vfs,
encode. Policy lives in the vfs; this file maps.

- The caller is the AUTH_SYS uid/gid after the export's squash rules; the vfs
  checks it. READ/WRITE go through a shared server-opened handle (open_files.py),
  so their permission is checked here per call with the vfs permission model,
  with knfsd's owner override (the owner may read and write their own file
  whatever its mode: a client checked the mode when it opened it, and the owner
  could chmod anyway).
- A handle whose inode is gone, or unlinked but still open somewhere, is
  NFS3ERR_STALE; a handle that does not decode (forged, altered, another
  export's key) is NFS3ERR_BADHANDLE.
- READDIR cookies: 1 is '.', 2 is '..', an entry's cookie is its per-directory
  sequence number + 2 (never reused), so a resumed listing repeats and skips
  nothing that was not itself renamed or removed. The cookie verifier is constant.
- Pre-operation attributes (wcc) are read just before the vfs call, not inside
  its transaction: a change by another client in between is possible.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import secrets
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from metadata import ROOT_INO, Inode

from ..vfs import Filesystem, FsError
from ..vfs.fs import UTIME_NOW
from ..vfs.perms import ROOT, Caller, R, W, X, allowed
from . import nfs3_types as t
from .nfs3_errors import NfsError, status_of
from .open_files import OpenFiles
from .rpc import Procedure, Program, RpcCall
from .xdr import XdrError

log = logging.getLogger(__name__)

RTMAX = WTMAX = 1 << 20  # largest READ/WRITE payload we announce and serve
DTPREF = 64 * 1024       # preferred READDIR size
MAXFILESIZE = (1 << 63) - 1
FSID = 0x73616d6562797465  # "samebyte": one file system for every export
COOKIEVERF = b"samebyt3"
# Entries fetched from the vfs per round while filling a READDIR reply: about what
# the budget holds (a short name's entry, with attributes and handle for PLUS).
READDIR_BATCH_MIN, READDIR_BATCH_MAX = 16, 4096
_ENTRY_GUESS, _ENTRYPLUS_GUESS = 32, 176
LINK_MAX = 0xFFFFFFFF
NAME_MAX = 255

_TYPE = {stat.S_IFREG: t.NF3REG, stat.S_IFDIR: t.NF3DIR, stat.S_IFBLK: t.NF3BLK,
         stat.S_IFCHR: t.NF3CHR, stat.S_IFLNK: t.NF3LNK, stat.S_IFSOCK: t.NF3SOCK,
         stat.S_IFIFO: t.NF3FIFO}


def new_write_verifier() -> bytes:
    """8 bytes that differ on every server start: start time plus randomness."""
    return (time.time_ns() // 1000 & 0xFFFFFFFF).to_bytes(4, "big") + secrets.token_bytes(4)


def fattr(i: Inode) -> t.Fattr3:
    size = 4096 if i.is_dir else i.size
    return t.Fattr3(
        type=_TYPE.get(stat.S_IFMT(i.mode), t.NF3REG), mode=i.mode & 0o7777, nlink=i.nlink,
        uid=i.uid, gid=i.gid, size=size, used=(size + 4095) // 4096 * 4096,
        rdev=(os.major(i.rdev), os.minor(i.rdev)), fsid=FSID, fileid=i.ino,
        atime=i.atime_ns, mtime=i.mtime_ns, ctime=i.ctime_ns)


def wcc_attr(i: Inode | None) -> t.WccAttr | None:
    if i is None:
        return None
    return t.WccAttr(4096 if i.is_dir else i.size, i.mtime_ns, i.ctime_ns)


@dataclass(slots=True)
class Ctx:
    """One decoded file handle: its export, the squashed caller, the inode now."""
    export: Any
    caller: Caller
    inode: Inode

    @property
    def ino(self) -> int:
        return self.inode.ino


Handler = Callable[[Any, Any, Any], Awaitable[t.Result]]


def procedure(args_type: type[t.Struct] | None, res_type: type[t.Result]) -> Callable[[Handler], Any]:
    """Decode args (XdrError -> GARBAGE_ARGS in rpc.py), run, encode; an NfsError or
    vfs error becomes the result's failure arm."""
    def wrap(fn: Handler) -> Any:
        @functools.wraps(fn)
        async def run(self: Nfs3, call: RpcCall) -> list[bytes | bytearray]:
            args = t.decode_args(args_type, call.args) if args_type is not None else None
            try:
                res = await fn(self, call, args)
            except NfsError as e:
                res = res_type(status=e.status)
            except FsError as e:
                res = res_type(status=status_of(e))
            except XdrError:
                raise
            except Exception:
                log.exception("NFS %s failed", fn.__name__)
                res = res_type(status=t.NFS3ERR_SERVERFAULT)
            return res.pieces()  # a READ's data is not copied into a packer
        return run
    return wrap


class Nfs3:
    def __init__(self, fs: Filesystem, handles: Any, exports: Any,
                 write_verifier: bytes | None = None, *, idle_seconds: float | None = None) -> None:
        self.fs = fs
        self.handles = handles
        self.exports = exports
        self.write_verifier = write_verifier or new_write_verifier()
        kw = {} if idle_seconds is None else {"idle_seconds": idle_seconds}
        self.files = OpenFiles(fs, on_lost=self._lost_writes, **kw)

    def _lost_writes(self) -> None:
        self.write_verifier = new_write_verifier()

    async def aclose(self) -> None:
        await self.files.aclose()

    # -- handles, exports, callers (the contract with handles.py and exports.py) ----------

    def _decode(self, call: Any, fh: bytes) -> tuple[Any, int, int]:
        # decode is a pure function of the handle's bytes (handles.BadHandle for a
        # forged or altered one): whatever it refuses is not a handle of ours.
        try:
            export, ino, gen = self.handles.decode(fh)
        except Exception as e:
            raise NfsError(t.NFS3ERR_BADHANDLE, str(e)) from None
        return export, ino, gen

    def _fh(self, export: Any, inode: Inode) -> bytes:
        return bytes(self.handles.encode(export, inode.ino, inode.generation))

    def _caller(self, call: Any, export: Any) -> Caller:
        if not export.allows(call.peer):
            raise NfsError(t.NFS3ERR_ACCES, "client not allowed by the export")
        return export.squash(call.cred)  # type: ignore[no-any-return]

    @staticmethod
    def _root_ino(export: Any) -> int:
        return int(getattr(export, "root_ino", ROOT_INO))

    async def _ctx(self, call: Any, fh: bytes, *, write: bool = False) -> Ctx:
        export, ino, gen = self._decode(call, fh)
        caller = self._caller(call, export)
        if write and export.read_only:
            raise NfsError(t.NFS3ERR_ROFS)
        return Ctx(export, caller, await self._inode(ino, gen))

    async def _inode(self, ino: int, gen: int | None = None) -> Inode:
        try:
            inode = await self.fs.getattr(ino)
        except FsError as e:
            if e.errno == errno.ENOENT:  # the inode behind the handle is gone
                raise NfsError(t.NFS3ERR_STALE) from None
            raise
        if (gen is not None and inode.generation != gen) or (inode.nlink == 0):
            raise NfsError(t.NFS3ERR_STALE)  # removed (maybe still open somewhere)
        return inode

    async def _attrs(self, ino: int) -> t.Fattr3 | None:
        """Post-operation attributes, or None when they cannot be had."""
        try:
            return fattr(await self.fs.getattr(ino))
        except FsError:
            return None

    async def _dir_ctx(self, call: Any, where: t.DirOpArgs3, *, write: bool) -> Ctx:
        ctx = await self._ctx(call, where.dir, write=write)
        if not ctx.inode.is_dir:
            raise NfsError(t.NFS3ERR_NOTDIR)
        return ctx

    # -- procedures -------------------------------------------------------------------------

    async def null(self, call: RpcCall) -> bytes:
        call.args.done()
        return b""

    @procedure(t.FhArgs, t.GetattrRes)
    async def getattr(self, call: Any, a: t.FhArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        return t.GetattrRes(t.NFS3_OK, fattr(ctx.inode))

    @procedure(t.SetattrArgs, t.WccRes)
    async def setattr(self, call: Any, a: t.SetattrArgs) -> t.Result:
        ctx = await self._ctx(call, a.object, write=True)
        before = wcc_attr(ctx.inode)
        if a.guard is not None and a.guard != ctx.inode.ctime_ns:
            return t.WccRes(t.NFS3ERR_NOT_SYNC, t.WccData(before, fattr(ctx.inode)))
        try:
            await self._apply(ctx.caller, ctx.inode, a.new_attributes)
        except FsError as e:
            return t.WccRes(status_of(e), t.WccData(before, await self._attrs(ctx.ino)))
        return t.WccRes(t.NFS3_OK, t.WccData(before, await self._attrs(ctx.ino)))

    async def _apply(self, caller: Caller, inode: Inode, s: t.Sattr3) -> Inode:
        """Set what a sattr3 asks for; truncation by the owner needs no write bit."""
        if s.size is not None:
            if inode.is_dir:
                raise NfsError(t.NFS3ERR_ISDIR)
            if not inode.is_reg:
                raise NfsError(t.NFS3ERR_INVAL)
            who = ROOT if caller.uid == inode.uid else caller
            inode = await self.fs.setattr(who, inode.ino, size=s.size)
        kw: dict[str, int] = {}
        if s.mode is not None:
            kw["mode"] = s.mode & 0o7777
        if s.uid is not None and s.uid != inode.uid:
            kw["uid"] = s.uid
        if s.gid is not None and s.gid != inode.gid:
            kw["gid"] = s.gid
        if s.atime is not None:
            kw["atime_ns"] = UTIME_NOW if s.atime == t.SERVER_TIME else s.atime
        if s.mtime is not None:
            kw["mtime_ns"] = UTIME_NOW if s.mtime == t.SERVER_TIME else s.mtime
        if kw:
            inode = await self.fs.setattr(caller, inode.ino, **kw)
        return inode

    @procedure(t.DirOpArgs, t.LookupRes)
    async def lookup(self, call: Any, a: t.DirOpArgs) -> t.Result:
        d = await self._dir_ctx(call, a.what, write=False)
        name = a.what.name
        if name == b".." and d.ino == self._root_ino(d.export):
            name = b"."  # never above the export's root
        try:
            child = await self.fs.lookup(d.caller, d.ino, name)
        except FsError as e:
            return t.LookupRes(status_of(e), dir_attributes=fattr(d.inode))
        return t.LookupRes(t.NFS3_OK, self._fh(d.export, child), fattr(child), fattr(d.inode))

    @procedure(t.AccessArgs, t.AccessRes)
    async def access(self, call: Any, a: t.AccessArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        i, c = ctx.inode, ctx.caller
        bits = 0
        if allowed(c, i, R):
            bits |= t.ACCESS3_READ
        if i.is_dir:
            if allowed(c, i, X):
                bits |= t.ACCESS3_LOOKUP
            if allowed(c, i, W | X):
                bits |= t.ACCESS3_MODIFY | t.ACCESS3_EXTEND | t.ACCESS3_DELETE
        else:
            if allowed(c, i, W):
                bits |= t.ACCESS3_MODIFY | t.ACCESS3_EXTEND
            if allowed(c, i, X):
                bits |= t.ACCESS3_EXECUTE
        if ctx.export.read_only:
            bits &= ~(t.ACCESS3_MODIFY | t.ACCESS3_EXTEND | t.ACCESS3_DELETE)
        return t.AccessRes(t.NFS3_OK, fattr(i), bits & a.access)

    @procedure(t.FhArgs, t.ReadlinkRes)
    async def readlink(self, call: Any, a: t.FhArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        if not ctx.inode.is_symlink:
            return t.ReadlinkRes(t.NFS3ERR_INVAL, fattr(ctx.inode))
        target = await self.fs.readlink(ctx.caller, ctx.ino)
        return t.ReadlinkRes(t.NFS3_OK, fattr(ctx.inode), target)

    def _check_io(self, ctx: Ctx, want: int) -> None:
        i = ctx.inode
        if i.is_dir:
            raise NfsError(t.NFS3ERR_ISDIR)
        if not i.is_reg:
            raise NfsError(t.NFS3ERR_INVAL)
        if ctx.caller.uid == i.uid and not ctx.caller.is_root:
            return  # owner override (module docstring)
        if want == R and (allowed(ctx.caller, i, R) or allowed(ctx.caller, i, X)):
            return  # executing a file needs its bytes
        if want != R and allowed(ctx.caller, i, want):
            return
        raise NfsError(t.NFS3ERR_ACCES)

    @procedure(t.ReadArgs, t.ReadRes)
    async def read(self, call: Any, a: t.ReadArgs) -> t.Result:
        ctx = await self._ctx(call, a.file)
        self._check_io(ctx, R)
        count = min(a.count, RTMAX)
        async with self.files.use(ctx.ino) as fh:
            data = await self.fs.read(fh, a.offset, count)
            inode = await self.fs.getattr(ctx.ino)
        eof = a.offset + len(data) >= inode.size
        return t.ReadRes(t.NFS3_OK, fattr(inode), len(data), eof, data)

    @procedure(t.WriteArgs, t.WriteRes)
    async def write(self, call: Any, a: t.WriteArgs) -> t.Result:
        ctx = await self._ctx(call, a.file, write=True)
        before = wcc_attr(ctx.inode)
        self._check_io(ctx, W)
        if len(a.data) < a.count:
            raise NfsError(t.NFS3ERR_INVAL, "fewer bytes than count")
        data = a.data[:a.count] if len(a.data) > a.count else a.data
        if a.offset + len(data) > MAXFILESIZE:
            raise NfsError(t.NFS3ERR_FBIG)
        verf = self.write_verifier
        try:
            async with self.files.use(ctx.ino) as fh:
                n = await self.fs.write(fh, a.offset, data)
                if a.stable != t.UNSTABLE:
                    await self.fs.fsync(fh)
        except FsError as e:
            return t.WriteRes(status_of(e), t.WccData(before, await self._attrs(ctx.ino)))
        after = await self._attrs(ctx.ino)
        committed = t.FILE_SYNC if a.stable != t.UNSTABLE else t.UNSTABLE
        # A verifier that changed while we wrote (a failed background flush) must not
        # vouch for this write either: answer with the one current before the write.
        return t.WriteRes(t.NFS3_OK, t.WccData(before, after), n, committed, verf)

    @procedure(t.CommitArgs, t.CommitRes)
    async def commit(self, call: Any, a: t.CommitArgs) -> t.Result:
        ctx = await self._ctx(call, a.file)
        before = wcc_attr(ctx.inode)
        if ctx.inode.is_dir:
            raise NfsError(t.NFS3ERR_ISDIR)
        verf = self.write_verifier
        try:
            await self.files.commit(ctx.ino)
        except FsError as e:
            # Unstable writes may be gone (a failed sync drops them, fsyncgate): a new
            # verifier makes clients resend whatever they have not seen committed.
            self._lost_writes()
            return t.CommitRes(status_of(e), t.WccData(before, await self._attrs(ctx.ino)))
        return t.CommitRes(t.NFS3_OK, t.WccData(before, await self._attrs(ctx.ino)), verf)

    # -- creating names ---------------------------------------------------------------------

    async def _made(self, d: Ctx, before: t.WccAttr | None, node: Inode) -> t.CreateRes:
        return t.CreateRes(t.NFS3_OK, self._fh(d.export, node), fattr(node),
                           t.WccData(before, await self._attrs(d.ino)))

    async def _failed(self, d: Ctx, before: t.WccAttr | None, e: FsError | NfsError) -> t.CreateRes:
        status = e.status if isinstance(e, NfsError) else status_of(e)
        return t.CreateRes(status, dir_wcc=t.WccData(before, await self._attrs(d.ino)))

    @procedure(t.CreateArgs, t.CreateRes)
    async def create(self, call: Any, a: t.CreateArgs) -> t.Result:
        d = await self._dir_ctx(call, a.where, write=True)
        before = wcc_attr(d.inode)
        how = a.how
        try:
            if how.mode == t.EXCLUSIVE:
                # Private until the client's SETATTR that follows sets the real mode.
                node = await self.fs.create(d.caller, d.ino, a.where.name, 0o600,
                                            verifier=how.verf)
            else:
                s = how.attributes or t.Sattr3()
                mode = 0o644 if s.mode is None else s.mode
                node = await self.fs.create(d.caller, d.ino, a.where.name, mode,
                                            exclusive=how.mode == t.GUARDED)
                rest = t.Sattr3(None, s.uid, s.gid, s.size, s.atime, s.mtime)
                if rest != t.Sattr3():
                    node = await self._apply(d.caller, node, rest)
        except (FsError, NfsError) as e:
            return await self._failed(d, before, e)
        return await self._made(d, before, node)

    @procedure(t.MkdirArgs, t.CreateRes)
    async def mkdir(self, call: Any, a: t.MkdirArgs) -> t.Result:
        d = await self._dir_ctx(call, a.where, write=True)
        before = wcc_attr(d.inode)
        s = a.attributes
        try:
            node = await self.fs.mkdir(d.caller, d.ino, a.where.name,
                                       0o755 if s.mode is None else s.mode)
            rest = t.Sattr3(None, s.uid, s.gid, None, s.atime, s.mtime)
            if rest != t.Sattr3():
                node = await self._apply(d.caller, node, rest)
        except (FsError, NfsError) as e:
            return await self._failed(d, before, e)
        return await self._made(d, before, node)

    @procedure(t.SymlinkArgs, t.CreateRes)
    async def symlink(self, call: Any, a: t.SymlinkArgs) -> t.Result:
        d = await self._dir_ctx(call, a.where, write=True)
        before = wcc_attr(d.inode)
        try:
            node = await self.fs.symlink(d.caller, d.ino, a.where.name, a.data)
        except (FsError, NfsError) as e:
            return await self._failed(d, before, e)
        return await self._made(d, before, node)

    @procedure(t.MknodArgs, t.CreateRes)
    async def mknod(self, call: Any, a: t.MknodArgs) -> t.Result:
        d = await self._dir_ctx(call, a.where, write=True)
        before = wcc_attr(d.inode)
        kind = a.what.type
        if kind in (t.NF3CHR, t.NF3BLK):
            return await self._failed(d, before, NfsError(t.NFS3ERR_NOTSUPP))
        if kind not in (t.NF3FIFO, t.NF3SOCK):
            return await self._failed(d, before, NfsError(t.NFS3ERR_BADTYPE))
        s = a.what.attributes or t.Sattr3()
        fmt = stat.S_IFIFO if kind == t.NF3FIFO else stat.S_IFSOCK
        try:
            node = await self.fs.mknod(d.caller, d.ino, a.where.name,
                                       fmt | (0o644 if s.mode is None else s.mode & 0o7777))
        except (FsError, NfsError) as e:
            return await self._failed(d, before, e)
        return await self._made(d, before, node)

    @procedure(t.LinkArgs, t.LinkRes)
    async def link(self, call: Any, a: t.LinkArgs) -> t.Result:
        f = await self._ctx(call, a.file, write=True)
        d = await self._dir_ctx(call, a.link, write=True)
        if d.export is not f.export and d.export != f.export:
            raise NfsError(t.NFS3ERR_XDEV)
        before = wcc_attr(d.inode)
        try:
            node = await self.fs.link(d.caller, f.ino, d.ino, a.link.name)
        except FsError as e:
            return t.LinkRes(status_of(e), await self._attrs(f.ino),
                             t.WccData(before, await self._attrs(d.ino)))
        return t.LinkRes(t.NFS3_OK, fattr(node), t.WccData(before, await self._attrs(d.ino)))

    # -- removing names ---------------------------------------------------------------------

    async def _victim(self, caller: Caller, parent: int, name: bytes) -> int | None:
        try:
            return (await self.fs.lookup(ROOT, parent, name)).ino if name not in (b".", b"..") else None
        except FsError:
            return None

    async def _forget_if_gone(self, ino: int | None) -> None:
        """A removed file's server-side handle goes now: its bytes are freed and
        its NFS handles turn stale at once."""
        if ino is None or ino not in self.files:
            return
        try:
            inode = await self.fs.getattr(ino)
        except FsError:
            inode = None
        if inode is None or inode.nlink == 0:
            await self.files.forget(ino)

    @procedure(t.DirOpArgs, t.WccRes)
    async def remove(self, call: Any, a: t.DirOpArgs) -> t.Result:
        d = await self._dir_ctx(call, a.what, write=True)
        before = wcc_attr(d.inode)
        victim = await self._victim(d.caller, d.ino, a.what.name)
        try:
            await self.fs.unlink(d.caller, d.ino, a.what.name)
        except FsError as e:
            return t.WccRes(status_of(e), t.WccData(before, await self._attrs(d.ino)))
        await self._forget_if_gone(victim)
        return t.WccRes(t.NFS3_OK, t.WccData(before, await self._attrs(d.ino)))

    @procedure(t.DirOpArgs, t.WccRes)
    async def rmdir(self, call: Any, a: t.DirOpArgs) -> t.Result:
        d = await self._dir_ctx(call, a.what, write=True)
        before = wcc_attr(d.inode)
        try:
            await self.fs.rmdir(d.caller, d.ino, a.what.name)
        except FsError as e:
            return t.WccRes(status_of(e), t.WccData(before, await self._attrs(d.ino)))
        return t.WccRes(t.NFS3_OK, t.WccData(before, await self._attrs(d.ino)))

    @procedure(t.RenameArgs, t.RenameRes)
    async def rename(self, call: Any, a: t.RenameArgs) -> t.Result:
        src = await self._dir_ctx(call, a.from_, write=True)
        dst = await self._dir_ctx(call, a.to, write=True)
        if src.export is not dst.export and src.export != dst.export:
            raise NfsError(t.NFS3ERR_XDEV)
        sb, db = wcc_attr(src.inode), wcc_attr(dst.inode)
        victim = await self._victim(dst.caller, dst.ino, a.to.name)
        try:
            if a.from_.name in (b".", b"..") or a.to.name in (b".", b".."):
                raise NfsError(t.NFS3ERR_INVAL)
            await self.fs.rename(src.caller, src.ino, a.from_.name, dst.ino, a.to.name)
            status = t.NFS3_OK
        except FsError as e:
            status = status_of(e)
        except NfsError as e:
            status = e.status
        if status == t.NFS3_OK:
            await self._forget_if_gone(victim)
        return t.RenameRes(status, t.WccData(sb, await self._attrs(src.ino)),
                           t.WccData(db, await self._attrs(dst.ino)))

    # -- directories ------------------------------------------------------------------------

    async def _listing(self, d: Ctx, cookie: int, verf: bytes, plus: bool,
                       budget: int, dir_budget: int) -> tuple[list[Any], bool]:
        """Entries after cookie that fit budget (the whole resok's bytes) and
        dir_budget (the bytes of the entries' names and cookies), and eof."""
        if cookie and verf not in (COOKIEVERF, bytes(8)):
            raise NfsError(t.NFS3ERR_BAD_COOKIE)
        if budget < t.READDIR_RESOK_OVERHEAD:
            raise NfsError(t.NFS3ERR_TOOSMALL)
        used = t.READDIR_RESOK_OVERHEAD
        dir_used = 0
        out: list[Any] = []

        def add(ino: int, name: bytes, ck: int, inode: Inode | None) -> bool:
            nonlocal used, dir_used
            if plus:
                fh = self._fh(d.export, inode) if inode is not None else None
                size = t.entryplus3_size(len(name), inode is not None,
                                         len(fh) if fh is not None else None)
                entry: Any = t.EntryPlus3(ino, name, ck, fattr(inode) if inode else None, fh)
            else:
                size = t.entry3_size(len(name))
                entry = t.Entry3(ino, name, ck)
            dsize = t.entry3_size(len(name))
            if used + size > budget or (out and dir_used + dsize > dir_budget):
                return False
            used += size
            dir_used += dsize
            out.append(entry)
            return True

        if cookie == 0:
            if not add(d.ino, b".", 1, d.inode):
                raise NfsError(t.NFS3ERR_TOOSMALL)
        if cookie <= 1:
            root = self._root_ino(d.export)
            parent_ino = d.ino if d.ino == root else (d.inode.parent or ROOT_INO)
            try:
                parent = await self.fs.getattr(parent_ino) if plus else None
            except FsError:
                parent = None
            if not add(parent_ino, b"..", 2, parent):
                if not out:
                    raise NfsError(t.NFS3ERR_TOOSMALL)
                return out, False
        after = max(cookie - 2, 0)
        want = min(max(budget // (_ENTRYPLUS_GUESS if plus else _ENTRY_GUESS) + 1,
                       READDIR_BATCH_MIN), READDIR_BATCH_MAX)
        while True:
            batch = await self.fs.readdir(d.caller, d.ino, after, want)
            for seq, name, inode in batch:
                if not add(inode.ino, name, seq + 2, inode):
                    if not out:
                        raise NfsError(t.NFS3ERR_TOOSMALL)
                    return out, False
                after = seq
            if len(batch) < want:
                return out, True

    @procedure(t.ReaddirArgs, t.ReaddirRes)
    async def readdir(self, call: Any, a: t.ReaddirArgs) -> t.Result:
        d = await self._ctx(call, a.dir)
        if not d.inode.is_dir:
            return t.ReaddirRes(t.NFS3ERR_NOTDIR, fattr(d.inode))
        try:
            entries, eof = await self._listing(d, a.cookie, a.cookieverf, False, a.count, a.count)
        except (FsError, NfsError) as e:
            return t.ReaddirRes(e.status if isinstance(e, NfsError) else status_of(e), fattr(d.inode))
        return t.ReaddirRes(t.NFS3_OK, fattr(d.inode), COOKIEVERF, entries, eof)

    @procedure(t.ReaddirplusArgs, t.ReaddirplusRes)
    async def readdirplus(self, call: Any, a: t.ReaddirplusArgs) -> t.Result:
        d = await self._ctx(call, a.dir)
        if not d.inode.is_dir:
            return t.ReaddirplusRes(t.NFS3ERR_NOTDIR, fattr(d.inode))
        try:
            entries, eof = await self._listing(d, a.cookie, a.cookieverf, True, a.maxcount,
                                               a.dircount)
        except (FsError, NfsError) as e:
            return t.ReaddirplusRes(e.status if isinstance(e, NfsError) else status_of(e),
                                    fattr(d.inode))
        return t.ReaddirplusRes(t.NFS3_OK, fattr(d.inode), COOKIEVERF, entries, eof)

    # -- the file system --------------------------------------------------------------------

    @procedure(t.FhArgs, t.FsstatRes)
    async def fsstat(self, call: Any, a: t.FhArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        st = await self.fs.statfs()
        bsize = st["bsize"]
        return t.FsstatRes(t.NFS3_OK, fattr(ctx.inode), st["blocks"] * bsize,
                           st["bfree"] * bsize, st["bavail"] * bsize, st["files"],
                           st["ffree"], st["ffree"], 0)

    @procedure(t.FhArgs, t.FsinfoRes)
    async def fsinfo(self, call: Any, a: t.FhArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        return t.FsinfoRes(
            t.NFS3_OK, fattr(ctx.inode), rtmax=RTMAX, rtpref=RTMAX, rtmult=4096,
            wtmax=WTMAX, wtpref=WTMAX, wtmult=4096, dtpref=DTPREF, maxfilesize=MAXFILESIZE,
            time_delta=1,
            properties=t.FSF3_LINK | t.FSF3_SYMLINK | t.FSF3_HOMOGENEOUS | t.FSF3_CANSETTIME)

    @procedure(t.FhArgs, t.PathconfRes)
    async def pathconf(self, call: Any, a: t.FhArgs) -> t.Result:
        ctx = await self._ctx(call, a.object)
        return t.PathconfRes(t.NFS3_OK, fattr(ctx.inode), linkmax=LINK_MAX, name_max=NAME_MAX,
                             no_trunc=True, chown_restricted=True, case_insensitive=False,
                             case_preserving=True)

    def program(self) -> Program:
        """Program 100003 version 3, to add to the server's registry. The server
        calls aclose() on shutdown (before closing the vfs)."""
        return Program(t.NFS_PROGRAM, t.NFS_V3, t.NFS_V3, self.procedures())

    def procedures(self) -> dict[tuple[int, int], Procedure]:
        table = {
            t.NULL: self.null, t.GETATTR: self.getattr, t.SETATTR: self.setattr,
            t.LOOKUP: self.lookup, t.ACCESS: self.access, t.READLINK: self.readlink,
            t.READ: self.read, t.WRITE: self.write, t.CREATE: self.create, t.MKDIR: self.mkdir,
            t.SYMLINK: self.symlink, t.MKNOD: self.mknod, t.REMOVE: self.remove,
            t.RMDIR: self.rmdir, t.RENAME: self.rename, t.LINK: self.link,
            t.READDIR: self.readdir, t.READDIRPLUS: self.readdirplus, t.FSSTAT: self.fsstat,
            t.FSINFO: self.fsinfo, t.PATHCONF: self.pathconf, t.COMMIT: self.commit,
        }
        return {(t.NFS_V3, proc): fn for proc, fn in table.items()}


def nfs3_program(fs: Filesystem, handles: Any, exports: Any,
                 write_verifier: bytes | None = None) -> tuple[Program, Nfs3]:
    """The NFSv3 program and the door behind it (whose aclose() the server awaits)."""
    door = Nfs3(fs, handles, exports, write_verifier)
    return door.program(), door
