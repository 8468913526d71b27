"""pyfuse3.Operations over the vfs: build a Caller, call the vfs, convert the result.

vfs inode numbers are the FUSE inode numbers (root is 1). Permissions are checked by
the vfs as the caller (no ``default_permissions``): one model for every door.

In pyfuse3's asyncio mode an exception other than FUSEError leaves the calling
process hung forever, so every handler goes through ``fuse_errors``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pyfuse3

from ..vfs import Filesystem, FsError
from ..vfs.fs import UTIME_NOW
from ..vfs.perms import ROOT, Caller, R
from .invalidate import KernelCache
from metadata import Inode

log = logging.getLogger(__name__)

# How long the kernel may cache names, "no such name" answers (Spark probes a .crc
# sidecar per file) and attributes. Long, because every change another door or
# process commits invalidates them at once (invalidate.py); the timeout bounds only
# what no commit announces (bytes in another door's unflushed write buffer).
# SAMEBYTES_FUSE_CACHE_SECONDS overrides it (tests set hours to prove invalidation).
CACHE_SECONDS = float(os.environ.get("SAMEBYTES_FUSE_CACHE_SECONDS", "30"))
ATTR_TIMEOUT = CACHE_SECONDS
ENTRY_TIMEOUT = CACHE_SECONDS
NEGATIVE_TIMEOUT = CACHE_SECONDS
READDIR_BATCH = 256

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Requests being handled now (fuse_errors counts them; pyfuse3 allows one mount per
# process): a read that is the only one is done right away (lone_read_first,
# Filesystem.read_now), or lets the chunk store read on the loop itself
# (Filesystem.read's alone), as a plain file system server would.
_in_flight = 0


def fuse_error(e: Exception, op: str) -> pyfuse3.FUSEError:
    """The FUSEError for an exception: errno of FsError/OSError, else a logged EIO."""
    if isinstance(e, pyfuse3.FUSEError):
        return e
    if isinstance(e, FsError):
        return pyfuse3.FUSEError(e.errno)
    if isinstance(e, OSError):
        return pyfuse3.FUSEError(e.errno or errno.EIO)
    log.error("FUSE %s failed", op, exc_info=e)
    return pyfuse3.FUSEError(errno.EIO)


def fuse_errors(fn: F) -> F:
    """Every exception becomes a FUSEError (``fuse_error``); counts requests in flight."""
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _in_flight
        _in_flight += 1
        try:
            return await fn(*args, **kwargs)
        except Exception as e:
            raise fuse_error(e, fn.__name__) from None
        finally:
            _in_flight -= 1
    return wrapper  # type: ignore[return-value]


def lone_read_first(fn: F) -> F:
    """``fuse_errors`` for read, and a read that is the only request in flight is first
    offered to ``Filesystem.read_now``, which answers at once or returns None (then fn
    runs); its errors are mapped the same way. For a lone random reader the coroutine
    layers of the general path were a visible part of each small read."""
    general = fuse_errors(fn)

    @functools.wraps(fn)
    async def read(self: Any, fh: int, off: int, size: int) -> Any:
        if not _in_flight:
            try:
                got = self.fs.read_now(fh, off, size)
            except Exception as e:
                raise fuse_error(e, "read") from None
            if got is not None:
                return got
        return await general(self, fh, off, size)
    return read  # type: ignore[return-value]


def caller_of(ctx: pyfuse3.RequestContext) -> Caller:
    """uid/gid from the request, supplementary groups from /proc/<pid>/status."""
    if ctx.uid == 0:
        # Root passes every check before groups are looked at (perms.py): skip the
        # open/read/close of /proc, a tenth of the mount's CPU on small-file work.
        return Caller(0, ctx.gid)
    groups: frozenset[int] = frozenset()
    try:
        with open(f"/proc/{ctx.pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    groups = frozenset(int(g) for g in line.split()[1:])
                    break
    except (OSError, ValueError):
        pass  # the process is gone (or a kernel thread): primary group only
    return Caller(ctx.uid, ctx.gid, groups)


def attrs(inode: Inode) -> pyfuse3.EntryAttributes:
    a = pyfuse3.EntryAttributes()
    a.st_ino = inode.ino
    a.generation = inode.generation
    a.entry_timeout = ENTRY_TIMEOUT
    a.attr_timeout = ATTR_TIMEOUT
    a.st_mode = inode.mode
    a.st_nlink = inode.nlink
    a.st_uid = inode.uid
    a.st_gid = inode.gid
    a.st_rdev = inode.rdev
    a.st_size = inode.size
    a.st_blksize = 1 << 20
    a.st_blocks = (inode.size + 511) // 512
    a.st_atime_ns = inode.atime_ns
    a.st_mtime_ns = inode.mtime_ns
    a.st_ctime_ns = inode.ctime_ns
    return a


def negative_entry() -> pyfuse3.EntryAttributes:
    """st_ino 0 with an entry timeout: the kernel caches "no such name" briefly."""
    a = pyfuse3.EntryAttributes()
    a.st_ino = 0
    a.entry_timeout = NEGATIVE_TIMEOUT
    return a


@contextlib.contextmanager
def stale_if_gone() -> Iterator[None]:
    """An inode the kernel still names (a cached dentry) but another door removed or
    replaced: ESTALE, on which the kernel walks the path again with revalidation
    (open and stat retry once with LOOKUP_REVAL), so the caller gets the new file
    instead of ENOENT during the entry timeout."""
    try:
        yield
    except FsError as e:
        if e.errno == errno.ENOENT:
            raise pyfuse3.FUSEError(errno.ESTALE) from None
        raise


def _is_now(value: int) -> bool:
    # pyfuse3 turns UTIME_NOW into the current time before calling us.
    return abs(time.time_ns() - value) < 1_000_000_000


class Operations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, fs: Filesystem, cache: KernelCache | None = None) -> None:
        super().__init__()
        self.fs = fs
        # What the kernel may hold (lookup counts, recent names): invalidations go there.
        self.cache = cache if cache is not None else KernelCache(max(ENTRY_TIMEOUT, NEGATIVE_TIMEOUT))
        self._dirs: dict[int, tuple[int, Caller]] = {}
        self._next_dirfh = 1
        # (size, mtime, ctime) of each inode when its last handle was opened or
        # closed: unchanged since then -> the kernel may keep its page cache.
        self._seen: dict[int, tuple[int, int, int]] = {}

    # -- names and attributes ---------------------------------------------------------

    @fuse_errors
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            node = await self.fs.lookup(caller_of(ctx), parent_inode, name)
        except FsError as e:
            if e.errno == errno.ENOENT:
                self.cache.answered(parent_inode, name)
                return negative_entry()
            raise
        return self._entry(node, parent_inode, name)

    def _entry(self, node: Inode, parent: int, name: bytes) -> pyfuse3.EntryAttributes:
        """The reply that makes the kernel count one more lookup of node."""
        self.cache.looked_up(node.ino, parent, name)
        return attrs(node)

    @fuse_errors
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        with stale_if_gone():
            return attrs(await self.fs.getattr(inode))

    @fuse_errors
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        caller = caller_of(ctx)
        kw: dict[str, Any] = {}
        if fields.update_mode:
            kw["mode"] = stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            kw["uid"] = attr.st_uid
        if fields.update_gid:
            kw["gid"] = attr.st_gid
        times = []
        if fields.update_atime:
            times.append(("atime_ns", attr.st_atime_ns))
        if fields.update_mtime:
            times.append(("mtime_ns", attr.st_mtime_ns))
        all_now = all(_is_now(v) for _, v in times) and len({v for _, v in times}) == 1
        for key, value in times:
            kw[key] = UTIME_NOW if all_now else value
        result = None
        if fields.update_size:
            # ftruncate on a descriptor open for writing needs no permission check.
            who = caller
            if fh is not None:
                try:
                    h = self.fs.handle(fh)
                except FsError:
                    h = None
                if h is not None and h.writable and h.file.ino == inode:
                    who = ROOT
            result = await self.fs.setattr(who, inode, size=attr.st_size)
        if kw or result is None:
            result = await self.fs.setattr(caller, inode, **kw)
        return attrs(result)

    @fuse_errors
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.fs.readlink(caller_of(ctx), inode)

    @fuse_errors
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        mode = stat.S_IFMT(mode) | (stat.S_IMODE(mode) & ~ctx.umask)
        return self._entry(await self.fs.mknod(caller_of(ctx), parent_inode, name, mode, rdev),
                           parent_inode, name)

    @fuse_errors
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.mkdir(caller_of(ctx), parent_inode, name,
                                               stat.S_IMODE(mode) & ~ctx.umask), parent_inode, name)

    @fuse_errors
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.symlink(caller_of(ctx), parent_inode, name, target),
                           parent_inode, name)

    @fuse_errors
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.link(caller_of(ctx), inode, new_parent_inode, new_name),
                           new_parent_inode, new_name)

    @fuse_errors
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.unlink(caller_of(ctx), parent_inode, name)

    @fuse_errors
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rmdir(caller_of(ctx), parent_inode, name)

    @fuse_errors
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rename(caller_of(ctx), parent_inode_old, name_old,
                             parent_inode_new, name_new, flags)

    @fuse_errors
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        want = (R if mode & os.R_OK else 0) | (2 if mode & os.W_OK else 0) | (1 if mode & os.X_OK else 0)
        return await self.fs.access(caller_of(ctx), inode, want)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # The vfs keeps no kernel lookup counts; the invalidation filter does.
        for ino, n in inode_list:
            self.cache.forgot(ino, n)

    # -- files --------------------------------------------------------------------------

    def _file_info(self, fh: int, inode: Inode) -> pyfuse3.FileInfo:
        state = (inode.size, inode.mtime_ns, inode.ctime_ns)
        keep = self._seen.get(inode.ino) == state
        self._seen[inode.ino] = state
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @fuse_errors
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        with stale_if_gone():
            node = await self.fs.getattr(inode)
            if node.nlink == 0 and not node.is_dir:
                # Unlinked (e.g. replaced through S3) but still named by a cached dentry:
                # make the kernel look the name up again instead of opening the old file
                # (opening it also races with its last release freeing it).
                raise pyfuse3.FUSEError(errno.ESTALE)
            h = await self.fs.open(caller_of(ctx), inode, flags & ~(os.O_CREAT | os.O_EXCL))
        return self._file_info(h.fh, await self.fs.getattr(inode))

    @fuse_errors
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        caller = caller_of(ctx)
        open_flags = flags & ~(os.O_CREAT | os.O_EXCL)
        try:
            node = await self.fs.create(caller, parent_inode, name,
                                        stat.S_IMODE(mode) & ~ctx.umask, exclusive=True)
            who = ROOT  # POSIX: the creator gets the access it asked for, whatever the mode
        except FsError as e:
            if e.errno != errno.EEXIST or flags & os.O_EXCL:
                raise
            # Made meanwhile (maybe through another door): an ordinary open.
            node = await self.fs.lookup(caller, parent_inode, name)
            who = caller
        h = await self.fs.open(who, node.ino, open_flags)
        node = await self.fs.getattr(node.ino)
        return self._file_info(h.fh, node), self._entry(node, parent_inode, name)

    @lone_read_first
    async def read(self, fh: int, off: int, size: int) -> bytes:
        # pyfuse3 replies from any buffer: the vfs's verified bytearray goes out uncopied.
        return await self.fs.read(fh, off, size, alone=_in_flight == 1)  # type: ignore[return-value]

    @fuse_errors
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.fs.write(fh, off, buf)

    @fuse_errors
    async def flush(self, fh: int) -> None:
        await self.fs.flush(fh)

    @fuse_errors
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.fs.fsync(fh)

    @fuse_errors
    async def release(self, fh: int) -> None:
        ino = self.fs.handle(fh).file.ino
        await self.fs.release(fh)
        try:
            i = await self.fs.getattr(ino)
            self._seen[i.ino] = (i.size, i.mtime_ns, i.ctime_ns)
        except FsError:
            self._seen.pop(ino, None)

    # -- directories --------------------------------------------------------------------

    @fuse_errors
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        caller = caller_of(ctx)
        node = await self.fs.getattr(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if not await self.fs.access(caller, inode, R):
            raise pyfuse3.FUSEError(errno.EACCES)
        fh = self._next_dirfh
        self._next_dirfh += 1
        self._dirs[fh] = (inode, caller)
        return fh

    @fuse_errors
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        ino, caller = self._dirs[fh]
        after = start_id
        while True:
            batch = await self.fs.readdir(caller, ino, after=after, limit=READDIR_BATCH)
            for cookie, name, node in batch:
                if not pyfuse3.readdir_reply(token, name, attrs(node), cookie):
                    return
                self.cache.looked_up(node.ino, ino, name)  # readdirplus counts a lookup
                after = cookie
            if len(batch) < READDIR_BATCH:
                return

    @fuse_errors
    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    @fuse_errors
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # every metadata commit is already durable

    # -- extended attributes ----------------------------------------------------------------

    @fuse_errors
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.fs.getxattr(caller_of(ctx), inode, name)

    @fuse_errors
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.setxattr(caller_of(ctx), inode, name, value)

    @fuse_errors
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return await self.fs.listxattr(caller_of(ctx), inode)

    @fuse_errors
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.removexattr(caller_of(ctx), inode, name)

    # -- whole file system ------------------------------------------------------------------

    @fuse_errors
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = await self.fs.statfs()
        d = pyfuse3.StatvfsData()
        d.f_bsize = d.f_frsize = s["bsize"]
        d.f_blocks, d.f_bfree, d.f_bavail = s["blocks"], s["bfree"], s["bavail"]
        d.f_files, d.f_ffree, d.f_favail = s["files"], s["ffree"], s["ffree"]
        d.f_namemax = s["namemax"]
        return d
