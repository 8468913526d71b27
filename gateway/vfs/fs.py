"""The one filesystem every door goes through: POSIX semantics over metadata + chunks.

Each operation is one metadata transaction (run by the engine's writer thread, so
its reads and writes are atomic with respect to every other door and process) and
checks the caller against mode bits and ownership inside that transaction. Object
(S3) operations are in ``objects``; both halves share the helpers here, so S3 and
the mounts cannot disagree.

Timestamps are nanoseconds since the epoch. atime is not updated on read
(``noatime``): a read must not cost a metadata write.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any

from chunkstore import ChunkError, ChunkInfo
from chunkstore.select import BackendSpec, open_store
from metadata import Inode, ROOT_INO, Txn, open_engine
from metadata import namespace as ns
from metadata.namespace import MetadataCorrupt
from metadata.schema import U64, decode_inode, without_byte_facts

from . import data
from .errors import (
    Exists, FsError, Invalid, IsDir, NotDir, NotEmpty, NotFound,
    NotPermitted, Stale, StorageError,
)
from .files import OpenFile, Spill, WriteBuffer
from .keys import check_name
from .core import (
    DEFAULT_CHUNK_SIZE, DEFAULT_GRACE_SECONDS, MY_PID, MY_START, Handle, now_ns,
)
from .multipart import MultipartOps
from .perms import R, W, X, Caller, check, check_modify_dir, check_owner, check_sticky

log = logging.getLogger(__name__)



# Decoded identity records by their stored bytes (see Filesystem.identity).
_IDENTITIES: dict[bytes, tuple[str, Caller]] = {}

# Spills in flight per open file: a writer keeps going while this many chunks are
# being written (memory: about SPILL_WINDOW + 1 chunks per file being written).
SPILL_WINDOW = 4

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

# Inode.extra key of an exclusive create's verifier (hex), see create().
CREATE_VERIFIER = "createverf"

_SETATTR_NOW = -1  # atime/mtime value meaning "the current time" (utimensat UTIME_NOW)
UTIME_NOW = _SETATTR_NOW


def _register_pending(txn: Txn, chunks: list[ChunkInfo]) -> None:
    """Chunks written for an open file and not committed yet: known to metadata (refs
    0, pending for this process), so no collector takes them however long the file
    stays open. Chunks already known are left alone (this runs in the background and
    again in the commit, whichever comes first)."""
    for c in chunks:
        if ns.get_chunk(txn, c.chunk_id) is None:
            ns.register_chunk(txn, c.chunk_id, c.size, c.sums)
            ns.add_pending(txn, c.chunk_id, MY_PID, MY_START)


class Filesystem(MultipartOps):
    """The POSIX half, and the lifecycle; object operations come from the bases."""

    @classmethod
    def from_data_dir(cls, data_dir: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
             map_size: int | None = None, grace_seconds: float = DEFAULT_GRACE_SECONDS,
             chunks: BackendSpec | None = None) -> Filesystem:
        """LMDB in DATA/meta; chunks in DATA/chunks, or in the backend chunks names
        (checked against the one recorded in the data folder)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        kw: dict[str, Any] = {} if map_size is None else {"map_size": map_size}
        store = open_store(data_dir, chunks)  # refuses before LMDB opens
        engine = open_engine(data_dir / "meta", **kw)
        return cls(engine, store, chunk_size=chunk_size,
                   grace_seconds=grace_seconds)

    async def start(self) -> None:
        await self._write(lambda txn: ns.ensure_root(txn, now_ns()))

    async def ready(self) -> None:
        """Raise unless metadata and the chunk store both answer."""
        with self.meta.read() as txn:
            if ns.get_inode(txn, ROOT_INO) is None:
                raise StorageError("metadata has no root inode")
        await self.chunks.check()

    async def aclose(self) -> None:
        """Flush every open file, then close the stores."""
        for f in list(self._open.values()):
            try:
                await self._commit(f)
            except FsError:
                log.exception("flushing inode %d at shutdown", f.ino)
        await self.chunks.close()
        self.meta.close()

    # -- attributes --------------------------------------------------------------------

    async def getattr(self, ino: int) -> Inode:
        return self._with_open_state(self._read(lambda txn: self._inode(txn, ino)))

    async def lookup(self, caller: Caller, parent: int, name: bytes) -> Inode:
        def op(txn: Txn) -> Inode:
            check(caller, self._dir(txn, parent), X)
            if name == b".":
                return self._inode(txn, parent)
            if name == b"..":
                return self._inode(txn, self._inode(txn, parent).parent or ROOT_INO)
            check_name(name)
            return self._child(txn, parent, name)[0]
        return self._with_open_state(self._read(op))

    async def access(self, caller: Caller, ino: int, want: int) -> bool:
        from .perms import allowed
        return allowed(caller, self._read(lambda txn: self._inode(txn, ino)), want)

    async def setattr(self, caller: Caller, ino: int, *, mode: int | None = None,
                      uid: int | None = None, gid: int | None = None, size: int | None = None,
                      atime_ns: int | None = None, mtime_ns: int | None = None) -> Inode:
        """chmod/chown/truncate/utimens. UTIME_NOW for a time means "now"."""
        if size is not None and size < 0:
            raise Invalid("negative size")
        f = self._open.get(ino)
        if f is not None and (size is not None or mtime_ns is not None):
            # Buffered writes land first, so they cannot overwrite the new size or time.
            await self._commit(f)
        now = now_ns()

        def op(txn: Txn) -> Inode:
            inode = self._inode(txn, ino)
            if mode is not None:
                check_owner(caller, inode)
                new_mode = mode & 0o7777
                if not caller.is_root and not caller.in_group(inode.gid):
                    new_mode &= ~stat.S_ISGID
                inode.mode = stat.S_IFMT(inode.mode) | new_mode
            if uid is not None or gid is not None:
                owner = caller.uid == inode.uid
                # Linux chown_ok / chgrp_ok: even a no-op change needs ownership.
                if uid is not None and not caller.is_root and not (owner and uid == inode.uid):
                    raise NotPermitted("only root may change the owner")
                if gid is not None and not caller.is_root and not (
                        owner and (gid == inode.gid or caller.in_group(gid))):
                    raise NotPermitted("not the owner, or not a member of the group")
                if uid is not None:
                    inode.uid = uid
                if gid is not None:
                    inode.gid = gid
                if not inode.is_dir and not caller.is_root:
                    inode.mode &= ~stat.S_ISUID
                    if inode.mode & stat.S_IXGRP:
                        inode.mode &= ~stat.S_ISGID
            if atime_ns is not None or mtime_ns is not None:
                setting_now = atime_ns in (None, UTIME_NOW) and mtime_ns in (None, UTIME_NOW)
                if caller.uid != inode.uid and not caller.is_root:
                    if not setting_now:
                        raise NotPermitted("only the owner may set explicit times")
                    check(caller, inode, W)
                if atime_ns is not None:
                    inode.atime_ns = now if atime_ns == UTIME_NOW else atime_ns
                if mtime_ns is not None:
                    inode.mtime_ns = now if mtime_ns == UTIME_NOW else mtime_ns
            if size is not None:
                if inode.is_dir:
                    raise IsDir("cannot truncate a directory")
                if not inode.is_reg:
                    raise Invalid("truncate of a special file")
                check(caller, inode, W)
                if size < inode.size:
                    ns.truncate_extents(txn, ino, size, now)
                if size != inode.size:
                    inode.size = size
                    inode.mtime_ns = now
                    inode.etag = ""
                    inode.extra = without_byte_facts(inode.extra)
            inode.ctime_ns = now
            ns.put_inode(txn, inode)
            return inode

        inode = await self._write(op)
        f = self._open.get(ino)
        if f is not None:
            if size is not None:
                f.dirty.truncate(size)
                f.size = size
                f.note_truncate(size)
            if mtime_ns is not None and not f.dirty:
                f.mtime_ns = 0  # the time just set wins over the last write's
        return self._with_open_state(inode)

    # -- names ---------------------------------------------------------------------------

    async def _make(self, caller: Caller, parent: int, name: bytes, mode: int,
                    target: bytes = b"", rdev: int = 0, exclusive: bool = True,
                    verifier: bytes | None = None) -> Inode:
        check_name(name)
        now = now_ns()
        is_dir = stat.S_ISDIR(mode)

        def op(txn: Txn) -> Inode:
            p = self._dir(txn, parent)
            check(caller, p, X)
            found = ns.lookup(txn, parent, name)
            if found is not None:
                existing = self._inode(txn, found[0])
                if (verifier is not None and existing.is_reg
                        and existing.extra.get(CREATE_VERIFIER) == verifier.hex()):
                    return existing  # a retry of the exclusive create that made it
                if exclusive or not stat.S_ISREG(mode) or not existing.is_reg:
                    raise Exists(f"{name!r} exists")
                return existing  # O_CREAT without O_EXCL: an open, not a create
            check_modify_dir(caller, p)
            ino = ns.alloc_ino(txn)
            node = Inode(ino, mode, caller.uid, self._new_gid(caller, p),
                         nlink=2 if is_dir else 1, atime_ns=now, mtime_ns=now, ctime_ns=now,
                         btime_ns=now, parent=parent, target=target, rdev=rdev,
                         size=len(target))
            if verifier is not None:
                node.extra[CREATE_VERIFIER] = verifier.hex()
            if is_dir and p.mode & stat.S_ISGID:
                node.mode |= stat.S_ISGID
            elif not caller.is_root and not caller.in_group(node.gid):
                node.mode &= ~stat.S_ISGID  # no setgid for a group the creator is not in
            self._link_new(txn, p, name, node, now)
            return node

        return await self._write(op)

    async def create(self, caller: Caller, parent: int, name: bytes, mode: int = 0o644,
                     *, exclusive: bool = True, verifier: bytes | None = None) -> Inode:
        """A regular file. exclusive=False returns an existing file instead (O_CREAT).

        verifier (NFS EXCLUSIVE create): stored on the new file; a create of the same
        name with the same verifier returns that file instead of Exists, so a client
        retrying a create whose reply it lost succeeds exactly once.
        """
        return await self._make(caller, parent, name, stat.S_IFREG | (mode & 0o7777),
                                exclusive=exclusive, verifier=verifier)

    async def mkdir(self, caller: Caller, parent: int, name: bytes, mode: int = 0o755) -> Inode:
        return await self._make(caller, parent, name, stat.S_IFDIR | (mode & 0o7777))

    async def symlink(self, caller: Caller, parent: int, name: bytes, target: bytes) -> Inode:
        if not target or len(target) > 4096 or b"\x00" in target:
            raise Invalid("bad symlink target")
        return await self._make(caller, parent, name, stat.S_IFLNK | 0o777, target=target)

    async def mknod(self, caller: Caller, parent: int, name: bytes, mode: int, rdev: int = 0) -> Inode:
        if stat.S_IFMT(mode) not in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFREG):
            raise NotPermitted("device nodes are not supported")
        return await self._make(caller, parent, name, mode, rdev=rdev)

    async def readlink(self, caller: Caller, ino: int) -> bytes:
        inode = self._read(lambda txn: self._inode(txn, ino))
        if not inode.is_symlink:
            raise Invalid("not a symlink")
        return inode.target

    async def link(self, caller: Caller, ino: int, new_parent: int, new_name: bytes) -> Inode:
        check_name(new_name)
        now = now_ns()

        def op(txn: Txn) -> Inode:
            inode = self._inode(txn, ino)
            if inode.is_dir:
                raise NotPermitted("hard links to directories are not allowed")
            if inode.nlink == 0:
                raise NotFound("file was unlinked")
            p = self._dir(txn, new_parent)
            check_modify_dir(caller, p)
            if ns.lookup(txn, new_parent, new_name) is not None:
                raise Exists(f"{new_name!r} exists")
            ns.add_entry(txn, p, new_name, ino, False)
            p.mtime_ns = p.ctime_ns = now
            inode.nlink += 1
            inode.ctime_ns = now
            ns.put_inode(txn, p)
            ns.put_inode(txn, inode)
            return inode

        return await self._write(op)

    async def unlink(self, caller: Caller, parent: int, name: bytes) -> None:
        now = now_ns()

        def op(txn: Txn) -> None:
            p = self._dir(txn, parent)
            check_modify_dir(caller, p)
            child, sname, seq = self._child(txn, parent, name)
            if child.is_dir:
                raise IsDir(f"{name!r} is a directory")
            check_sticky(caller, p, child)
            ns.remove_entry(txn, parent, sname, seq)
            p.mtime_ns = p.ctime_ns = now
            ns.put_inode(txn, p)
            self._drop_link(txn, child, now)

        await self._write(op)

    async def rmdir(self, caller: Caller, parent: int, name: bytes) -> None:
        if name == b".":
            raise Invalid("cannot remove '.'")
        if name == b"..":
            raise NotEmpty("cannot remove '..'")
        now = now_ns()

        def op(txn: Txn) -> None:
            p = self._dir(txn, parent)
            check_modify_dir(caller, p)
            child, sname, seq = self._child(txn, parent, name)
            if not child.is_dir:
                raise NotDir(f"{name!r} is not a directory")
            check_sticky(caller, p, child)
            if not ns.is_empty_dir(txn, child.ino):
                raise NotEmpty(f"{name!r} is not empty")
            ns.remove_entry(txn, parent, sname, seq)
            p.nlink -= 1
            p.mtime_ns = p.ctime_ns = now
            ns.put_inode(txn, p)
            self._drop_link(txn, child, now)

        await self._write(op)

    def _is_ancestor(self, txn: Txn, maybe_ancestor: int, ino: int) -> bool:
        seen = 0
        while ino != ROOT_INO:
            if ino == maybe_ancestor:
                return True
            ino = self._inode(txn, ino).parent or ROOT_INO
            seen += 1
            if seen > 4096:
                raise StorageError("directory parent chain too deep or cyclic")
        return maybe_ancestor == ROOT_INO

    async def rename(self, caller: Caller, parent: int, name: bytes, new_parent: int,
                     new_name: bytes, flags: int = 0) -> None:
        check_name(new_name)
        if flags & RENAME_NOREPLACE and flags & RENAME_EXCHANGE:
            raise Invalid("RENAME_NOREPLACE with RENAME_EXCHANGE")
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
            raise Invalid("unsupported rename flags")
        now = now_ns()

        def op(txn: Txn) -> None:
            sp = self._dir(txn, parent)
            dp = sp if new_parent == parent else self._dir(txn, new_parent)
            check_modify_dir(caller, sp)
            check_modify_dir(caller, dp)
            src, s_sname, s_seq = self._child(txn, parent, name)
            check_sticky(caller, sp, src)
            found = ns.lookup(txn, new_parent, new_name)
            dst = self._inode(txn, found[0]) if found else None
            if src.is_dir and self._is_ancestor(txn, src.ino, new_parent):
                raise Invalid("cannot move a directory inside itself")
            if src.is_dir and parent != new_parent:
                check(caller, src, W)  # its ".." changes
            if dst is not None and dst.ino == src.ino:
                return  # same file: POSIX says do nothing
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise NotFound(f"{new_name!r} not found")
                if dst.is_dir and self._is_ancestor(txn, dst.ino, parent):
                    raise Invalid("cannot move a directory inside itself")
                if dst.is_dir and parent != new_parent:
                    check(caller, dst, W)
                check_sticky(caller, dp, dst)
                assert found is not None
                ns.remove_entry(txn, parent, s_sname, s_seq)
                ns.remove_entry(txn, new_parent, found[1], found[2])
                self._exchange(txn, sp, dp, name, src, new_name, dst, now)
                return
            if dst is not None:
                if flags & RENAME_NOREPLACE:
                    raise Exists(f"{new_name!r} exists")
                check_sticky(caller, dp, dst)
                if src.is_dir and not dst.is_dir:
                    raise NotDir(f"{new_name!r} is not a directory")
                if not src.is_dir and dst.is_dir:
                    raise IsDir(f"{new_name!r} is a directory")
                if dst.is_dir and not ns.is_empty_dir(txn, dst.ino):
                    raise NotEmpty(f"{new_name!r} is not empty")
                assert found is not None
                ns.remove_entry(txn, new_parent, found[1], found[2])
                if dst.is_dir:
                    dp.nlink -= 1
                self._drop_link(txn, dst, now)
            ns.remove_entry(txn, parent, s_sname, s_seq)
            if src.is_dir and parent != new_parent:
                sp.nlink -= 1
                dp.nlink += 1
            ns.add_entry(txn, dp, new_name, src.ino, src.is_dir)
            src.parent = new_parent if src.is_dir else src.parent
            src.ctime_ns = now
            sp.mtime_ns = sp.ctime_ns = dp.mtime_ns = dp.ctime_ns = now
            ns.put_inode(txn, src)
            ns.put_inode(txn, sp)
            if dp is not sp:
                ns.put_inode(txn, dp)

        await self._write(op)

    @staticmethod
    def _exchange(txn: Txn, sp: Inode, dp: Inode, name: bytes, src: Inode,
                  new_name: bytes, dst: Inode, now: int) -> None:
        ns.add_entry(txn, dp, new_name, src.ino, src.is_dir)
        ns.add_entry(txn, sp, name, dst.ino, dst.is_dir)
        if sp.ino != dp.ino:
            if src.is_dir:
                src.parent = dp.ino
                sp.nlink -= 1
                dp.nlink += 1
            if dst.is_dir:
                dst.parent = sp.ino
                dp.nlink -= 1
                sp.nlink += 1
        src.ctime_ns = dst.ctime_ns = now
        sp.mtime_ns = sp.ctime_ns = dp.mtime_ns = dp.ctime_ns = now
        for i in (src, dst, sp) if sp.ino == dp.ino else (src, dst, sp, dp):
            ns.put_inode(txn, i)

    async def readdir(self, caller: Caller, ino: int, after: int = 0,
                      limit: int = 1000) -> list[tuple[int, bytes, Inode]]:
        """Up to limit (cookie, name, attrs) after cookie `after`, in insertion order.

        Cookies are per-directory sequence numbers that are never reused, so a
        reader that resumes never repeats or skips an entry it has not seen change.
        """
        def op(txn: Txn) -> list[tuple[int, bytes, Inode]]:
            d = self._dir(txn, ino)
            check(caller, d, R)
            out = []
            for seq, sname, child in ns.entries_by_seq(txn, ino, after):
                inode = ns.get_inode(txn, child)
                if inode is None:
                    raise MetadataCorrupt(f"dirent {ino}/{sname!r} points at missing inode {child}")
                out.append((seq, sname.rstrip(b"/"), inode))
                if len(out) >= limit:
                    break
            return out
        return [(c, n, self._with_open_state(i)) for c, n, i in self._read(op)]

    # -- extended attributes -------------------------------------------------------------------

    async def getxattr(self, caller: Caller, ino: int, name: bytes) -> bytes:
        def op(txn: Txn) -> bytes:
            check(caller, self._inode(txn, ino), R)
            v = ns.get_xattr(txn, ino, name)
            if v is None:
                raise FsError("no such attribute", errno=errno.ENODATA)
            return v
        return self._read(op)

    async def listxattr(self, caller: Caller, ino: int) -> list[bytes]:
        def op(txn: Txn) -> list[bytes]:
            check(caller, self._inode(txn, ino), R)
            return [n for n, _ in ns.list_xattrs(txn, ino)]
        return self._read(op)

    async def setxattr(self, caller: Caller, ino: int, name: bytes, value: bytes,
                       *, create: bool = False, replace_only: bool = False) -> None:
        if not name or len(name) > 255:
            raise Invalid("bad attribute name")
        if len(value) > 64 * 1024:
            raise FsError("attribute value too large", errno=errno.E2BIG)
        now = now_ns()

        def op(txn: Txn) -> None:
            inode = self._inode(txn, ino)
            check_owner(caller, inode) if not name.startswith(b"user.") else check(caller, inode, W)
            exists = ns.get_xattr(txn, ino, name) is not None
            if create and exists:
                raise Exists("attribute exists")
            if replace_only and not exists:
                raise FsError("no such attribute", errno=errno.ENODATA)
            ns.set_xattr(txn, ino, name, value)
            inode.ctime_ns = now
            ns.put_inode(txn, inode)

        await self._write(op)

    async def removexattr(self, caller: Caller, ino: int, name: bytes) -> None:
        now = now_ns()

        def op(txn: Txn) -> None:
            inode = self._inode(txn, ino)
            check_owner(caller, inode) if not name.startswith(b"user.") else check(caller, inode, W)
            if not ns.remove_xattr(txn, ino, name):
                raise FsError("no such attribute", errno=errno.ENODATA)
            inode.ctime_ns = now
            ns.put_inode(txn, inode)

        await self._write(op)

    # -- open files ------------------------------------------------------------------------------

    async def open(self, caller: Caller, ino: int, flags: int = os.O_RDONLY) -> Handle:
        acc = flags & os.O_ACCMODE
        readable = acc in (os.O_RDONLY, os.O_RDWR)
        writable = acc in (os.O_WRONLY, os.O_RDWR)
        inode = self._read(lambda txn: self._inode(txn, ino))
        if inode.is_dir:
            if writable:
                raise IsDir("cannot open a directory for writing")
        elif not inode.is_reg:
            raise Invalid("not a regular file")
        check(caller, inode, (R if readable else 0) | (W if writable else 0))
        f = self._open.get(ino)
        if f is None and inode.nlink == 0 and not inode.is_dir:
            # Unlinked and open nowhere: its last release has already queued the free
            # (checked in the writer thread, which would not see this open in time).
            raise Stale(f"inode {ino} was deleted")
        if f is None:
            f = self._open[ino] = OpenFile(ino, inode.size, inode.size == 0)
        f.handles += 1
        h = Handle(self._next_fh, f, readable, writable, bool(flags & os.O_APPEND))
        self._next_fh += 1
        self._handles[h.fh] = h
        try:
            if flags & os.O_TRUNC and writable and inode.is_reg:
                await self.setattr(caller, ino, size=0)
        except BaseException:
            await self.release(h.fh)
            raise
        return h

    def handle(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:
            raise FsError("bad file handle", errno=errno.EBADF)
        return h

    def read_now(self, fh: int, offset: int, size: int) -> bytes | bytearray | None:
        """``read``, done right now without awaiting, or None: then call ``read`` (which
        also reports any error about the handle). For a door whose caller is the only
        request waiting on the event loop (a lone random reader of a mount): no
        coroutine, task or thread hop for the common small read. Only when the open
        file's cached plan is current (the same one LMDB get of its inode as ``read``),
        nothing of this process's own is unsettled, the range lies in one extent, it is
        not a sequential reader's next read (``read`` starts read-ahead for those) and
        the chunk store can read it at once (``ChunkStore.get_now``). The bytes are
        verified exactly as ``read``'s."""
        h = self._handles.get(fh)
        if h is None or h.plan is None or not h.readable:
            return None
        c = h.plan
        f = h.file
        end = offset + size
        if end > f.size:
            end = f.size
        if (offset >= end or offset == h.read_end or not offset or offset < c.start
                or end > c.stop or f.has_unsettled()
                or self.meta.get_one("inode", c.inode_key) != c.inode_raw):
            return None
        p = c.plan
        e = p.within(offset, end)
        if e is None:
            return None
        at = offset - e.offset
        if e.data is not None:
            got: bytes | bytearray | None = e.data[at:at + end - offset]
        else:
            try:
                got = self.chunks.get_now(p.infos[e.chunk_id], e.chunk_off + at, end - offset)
            except ChunkError as exc:
                raise data.chunk_errors(exc) from exc
            if got is None:
                return None
        h.read_end = end
        return got

    async def read(self, fh: int, offset: int, size: int, *,
                   alone: bool = False) -> bytes | bytearray:
        """Up to size bytes at offset. alone: the caller is the only request its door has
        waiting on the event loop, so the chunk store may read on the loop itself
        (``ChunkStore.get_alone``)."""
        h = self.handle(fh)
        if not h.readable:
            raise FsError("not open for reading", errno=errno.EBADF)
        f = h.file
        end = min(offset + size, f.size)
        if offset >= end:
            return b""

        # A sequential reader: have the store fetch (or the kernel read ahead) the
        # chunks after this read too.
        prefetching = offset == h.read_end or offset == 0
        h.read_end = end

        def op(txn: Txn) -> data.ReadPlan:
            raw = txn.get("inode", U64.pack(f.ino))
            if raw is None:
                raise NotFound(f"no inode {f.ino}")
            c = h.plan
            if c is None or c.inode_raw != raw or not c.covers(offset, end):
                size = decode_inode(f.ino, raw).size
                c = h.plan = data.cached_plan(txn, f.ino, raw, size, offset, min(end, size),
                                              first=c is None or c.inode_raw != raw)
            if prefetching:
                ahead = c.plan.covering(end, end + data.PREFETCH_BYTES)
                if ahead:
                    data.hint_ahead(self.chunks, c.plan, ahead)
            return c.plan

        # Newest last: committed extents, spilled-but-uncommitted extents, buffers.
        # The uncommitted state is captured together with the metadata snapshot
        # (no await between): a commit that lands while the chunks are read resets
        # f.spilled, but the snapshot predates it.
        c = h.plan
        if (c is not None and not prefetching and c.covers(offset, end)
                and self.meta.get_one("inode", c.inode_key) == c.inode_raw):
            plan = c.plan  # the cached plan is current: one LMDB get, nothing decoded
        else:
            plan = self._read(op)
        if not f.has_unsettled():
            # Nothing of this process's own is uncommitted: the snapshot is the file.
            return await data.read_range(self.chunks, plan, offset, end, alone)
        spilled = f.spilled
        layers = f.layers()
        buf = await data.read_into(self.chunks, plan, offset, end)
        await data.overlay(self.chunks, spilled, buf, offset)
        for layer in layers + [b for b in f.layers() if all(b is not x for x in layers)]:
            layer.overlay(buf, offset)  # then whatever was written meanwhile
        return buf

    async def write(self, fh: int, offset: int, payload: bytes) -> int:
        h = self.handle(fh)
        if not h.writable:
            raise FsError("not open for writing", errno=errno.EBADF)
        if offset < 0:
            raise Invalid("negative offset")
        f = h.file
        if not payload:
            return 0  # POSIX: a zero-length write changes nothing, even past EOF
        # Back-pressure before taking the bytes: a write that fails changes nothing.
        while len(f.pending) >= SPILL_WINDOW:
            await self._wait_oldest_spill(f)
        if h.append:
            offset = f.size
        f.dirty.write(offset, payload)
        f.note_write(offset, payload)
        f.size = max(f.size, offset + len(payload))
        f.mtime_ns = now_ns()
        if f.dirty.nbytes >= self.chunk_size:
            self._start_spill(f, whole_chunks=True)
        return len(payload)

    async def flush(self, fh: int) -> None:
        await self._commit(self.handle(fh).file)

    async def fsync(self, fh: int) -> None:
        # Every commit is already durable (sync LMDB, fsync'd chunks): flush is fsync.
        await self._commit(self.handle(fh).file)

    async def release(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if h is None:
            return
        f = h.file
        try:
            await self._commit(f)
        finally:
            f.handles -= 1
            if f.handles == 0 and self._open.get(f.ino) is f:
                del self._open[f.ino]
                await self._free_if_orphan(f.ino)

    async def _free_if_orphan(self, ino: int) -> None:
        now = now_ns()

        def op(txn: Txn) -> None:
            inode = ns.get_inode(txn, ino)
            if inode is not None and inode.nlink == 0 and ino not in self._open:
                ns.free_inode(txn, ino, now)
        await self._write(op)

    def _start_spill(self, f: OpenFile, whole_chunks: bool = False) -> Spill:
        """Detach the dirty buffer and write it to chunks in the background (with
        whole_chunks, a sequential writer's tail past the last whole chunk stays)."""
        buf = f.dirty
        f.dirty = buf.split_tail(self.chunk_size) if whole_chunks else WriteBuffer()
        s = Spill(f.next_seq, buf, asyncio.ensure_future(self._store_spill(f, buf)))
        f.next_seq += 1
        s.task.add_done_callback(lambda _: f.settle())
        f.pending.append(s)
        return s

    async def _store_spill(self, f: OpenFile, buf: WriteBuffer) -> data.Written:
        # Unsynced: the commit that publishes these chunks syncs them first (durability
        # order), so a writer never waits for the disk's flush between two chunks.
        written = await data.store_ranges(self.chunks, self.ids, self.chunk_size,
                                          buf.ranges(), durable=False)
        if written.chunks:
            # This process's collector knows them as ours at once; the pending record
            # (for collectors in other processes, past their grace period) commits in
            # the background, and the spill does not wait for that metadata flush.
            f.registering |= {c.chunk_id for c in written.chunks}
            f.registrations.append(asyncio.ensure_future(
                self._write(lambda txn: _register_pending(txn, written.chunks))))
        return written

    def _retry(self, f: OpenFile, s: Spill) -> None:
        s.task = asyncio.ensure_future(self._store_spill(f, s.buffer))
        s.task.add_done_callback(lambda _: f.settle())

    async def _wait_oldest_spill(self, f: OpenFile) -> None:
        """Wait for the oldest spill; if it failed, start it again and raise its error
        (its bytes stay readable and are retried, as a full disk may get room again)."""
        s = f.pending[0]
        await asyncio.wait([s.task])
        if not f.pending or f.pending[0] is not s:
            return  # settled or dropped meanwhile (a failed sync): look again
        err = s.failed()
        if err is None:
            f.settle()
            return
        if s.task.done():
            self._retry(f, s)
        raise err

    async def _settle_upto(self, f: OpenFile, upto: int) -> None:
        """Every spill up to seq upto stored; a failed one is tried once more, then its
        error is raised (its bytes stay pending for the next commit)."""
        while f.pending and f.pending[0].seq <= upto:
            s = f.pending[0]
            await asyncio.wait([s.task])
            if not f.pending or f.pending[0] is not s:
                continue
            err = s.failed()
            if err is None:
                f.settle()
                continue
            if s.retried:
                s.retried = False  # the next commit tries again
                raise err
            s.retried = True
            if f.pending and f.pending[0] is s and s.task.done():
                self._retry(f, s)

    def _drop_uncommitted(self, f: OpenFile, committed_size: int) -> None:
        """Chunks whose sync failed cannot be trusted (fsyncgate) and the bytes are no
        longer in memory: forget every uncommitted write of f, so that nothing later
        commits a file with silent holes. NFS clients resend (the verifier changes);
        a mount's fsync reports EIO, as Linux does after a failed writeback."""
        for s in f.pending:
            s.task.cancel()
        f.pending.clear()
        f.stored.clear()
        f.registering.clear()  # pending records of a live writer: the collector frees them
        f.dirty = WriteBuffer()
        f.size = committed_size
        f.mtime_ns = 0
        f.lose_etag()

    async def _commit(self, f: OpenFile) -> None:
        """Make everything written so far durable and visible to every door at once.

        Until this commit the file's metadata still describes its previous
        content: a crash in the middle of a large write leaves the old version
        whole, and the spilled chunks are unreferenced garbage for the collector.
        """
        async with f.lock:
            f.settle()
            if not f.has_unsettled() and not f.mtime_ns:
                return
            # What this commit publishes is fixed now, before anything awaits: writes
            # made meanwhile spill on and wait for the next commit.
            size, mtime = f.size, f.mtime_ns or now_ns()
            etag_at = f.etag()
            if f.dirty:
                self._start_spill(f)
            upto = f.next_seq - 1
            try:
                await self._settle_upto(f, upto)
            finally:
                etag = await etag_at
            taken = [w for seq, w in f.stored if seq <= upto]
            spilled = data.Written([], [])
            for w in taken:
                spilled.extend(w)
            # Background pending records done (a failed one is redone by this commit).
            registrations, f.registrations = f.registrations, []
            await asyncio.gather(*registrations, return_exceptions=True)
            try:
                await self.chunks.sync([c.chunk_id for c in spilled.chunks])
            except ChunkError as e:
                log.error("syncing chunks of inode %d failed; its uncommitted writes are lost: %s",
                          f.ino, e)
                try:
                    committed = self._read(lambda txn: self._inode(txn, f.ino)).size
                except FsError:
                    committed = 0
                self._drop_uncommitted(f, committed)
                raise data.chunk_errors(e) from e
            now = now_ns()

            def op(txn: Txn) -> None:
                inode = ns.get_inode(txn, f.ino)
                if inode is None:
                    raise NotFound(f"inode {f.ino} was removed")
                _register_pending(txn, spilled.chunks)  # those whose record failed
                for c in spilled.chunks:
                    ns.clear_pending(txn, c.chunk_id)
                for e in spilled.extents:  # in write order: later writes win
                    ns.put_extent(txn, f.ino, e, now)
                spilled.unreferenced(txn, now)
                if size < inode.size:
                    ns.truncate_extents(txn, f.ino, size, now)
                inode.size = size
                inode.mtime_ns = inode.ctime_ns = mtime
                # The old ETag and S3 checksums describe bytes that changed.
                inode.etag = etag
                inode.extra = without_byte_facts(inode.extra)
                ns.put_inode(txn, inode)

            await self._write(op)
            f.stored = [(seq, w) for seq, w in f.stored if seq > upto]
            f.registering -= {c.chunk_id for c in spilled.chunks}
            if f.mtime_ns == mtime:
                f.mtime_ns = 0

    # -- identities --------------------------------------------------------------------------------

    async def put_identity(self, access_key: str, secret_key: str, *, uid: int, gid: int,
                           groups: tuple[int, ...] = (), name: str = "") -> None:
        record = {"secret": secret_key, "uid": uid, "gid": gid, "groups": list(groups), "name": name}
        await self._write(lambda txn: ns.put_identity(txn, access_key, record))

    async def add_user(self, name: str, access_key: str, secret_key: str, *,
                       uid: int | None = None) -> int:
        """A new identity with its own uid (= gid); returns the uid."""
        def op(txn: Txn) -> int:
            n = uid if uid is not None else ns.next_counter(txn, b"uid", 1, 1000)
            ns.put_identity(txn, access_key, {"secret": secret_key, "uid": n, "gid": n,
                                              "groups": [], "name": name})
            return n
        return await self._write(op)

    def identity(self, access_key: str) -> tuple[str, Caller] | None:
        """(secret key, caller) for an access key, or None."""
        raw = self.meta.get_one("identity", access_key.encode())
        if raw is None:
            return None
        # Every S3 request asks: decode each stored record once. Keyed by the record's
        # bytes, so a changed identity (from any process) is read afresh.
        found = _IDENTITIES.get(raw)
        if found is None:
            rec = ns.decode_json(raw)
            groups = frozenset(int(g) for g in rec.get("groups", []))
            found = str(rec["secret"]), Caller(int(rec["uid"]), int(rec["gid"]), groups)
            if len(_IDENTITIES) >= 1024:
                _IDENTITIES.clear()
            _IDENTITIES[raw] = found
        return found

    # -- whole file system -------------------------------------------------------------------------

    async def statfs(self) -> dict[str, int]:
        st = os.statvfs(self.meta.path)
        def op(txn: Txn) -> int:
            return txn.count("inode")
        files = self._read(op)
        return {"bsize": st.f_frsize, "blocks": st.f_blocks, "bfree": st.f_bfree,
                "bavail": st.f_bavail, "files": files + st.f_ffree, "ffree": st.f_ffree,
                "namemax": 255}
