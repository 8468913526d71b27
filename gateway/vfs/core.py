"""What every half of the vfs shares: the stores, this process's open files, and
the transaction plumbing (one metadata transaction per operation, errors mapped to
FsError once)."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from chunkstore import ChunkStore
from metadata import EngineIOError, Inode, LmdbEngine, Txn
from metadata import namespace as ns
from metadata.namespace import MetadataCorrupt
from metadata.schema import InlineCorrupt

from . import data
from .errors import DataCorrupt, NotDir, NotFound, StorageError
from .files import OpenFile
from .perms import Caller

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHUNK_SIZE = 4 << 20
# How long freed chunks and unlinked inodes wait before their bytes are deleted:
# a reader that took its extent list just before the delete still finishes.
DEFAULT_GRACE_SECONDS = 60.0


def now_ns() -> int:
    return time.time_ns()


def process_start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot (None: no such process). With the
    pid it names one process for good: a reused pid has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after ')'.
    return int(stat_line.rsplit(b")", 1)[1].split()[19])


MY_PID = os.getpid()
MY_START = process_start_time(MY_PID) or 0


class Handle:
    """One open() of a file: the inode's shared OpenFile plus this open's mode."""

    __slots__ = ("fh", "file", "readable", "writable", "append", "read_end", "plan")

    def __init__(self, fh: int, file: OpenFile, readable: bool, writable: bool, append: bool) -> None:
        self.fh = fh
        self.file = file
        self.readable = readable
        self.writable = writable
        self.append = append
        self.read_end = -1  # where the last read ended: the next one there is sequential
        self.plan: data.CachedPlan | None = None  # extents read lately (vfs.fs.read)


class Core:
    def __init__(self, engine: LmdbEngine, chunks: ChunkStore, *,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.meta = engine
        self.chunks = chunks
        self.chunk_size = chunk_size
        self.grace_ns = int(grace_seconds * 1e9)
        self.ids = data.ChunkIds(engine)
        self._open: dict[int, OpenFile] = {}
        self._handles: dict[int, Handle] = {}
        self._next_fh = 1
        # ObjectOps.get_object's recently opened small files (see objects.RecentObject).
        self._recent_objects: dict[int, Any] = {}

    # -- plumbing shared with objects ------------------------------------------------

    async def _write(self, fn: Callable[[Txn], T]) -> T:
        try:
            return await self.meta.write(fn)
        except EngineIOError as e:
            raise StorageError(str(e)) from e
        except InlineCorrupt as e:
            raise DataCorrupt(str(e)) from e
        except MetadataCorrupt as e:
            log.error("metadata inconsistency: %s", e)
            raise StorageError(str(e)) from e

    def _read(self, fn: Callable[[Txn], T]) -> T:
        try:
            with self.meta.read() as txn:
                return fn(txn)
        except InlineCorrupt as e:
            raise DataCorrupt(str(e)) from e
        except MetadataCorrupt as e:
            raise StorageError(str(e)) from e

    @staticmethod
    def _inode(txn: Txn, ino: int) -> Inode:
        inode = ns.get_inode(txn, ino)
        if inode is None:
            raise NotFound(f"no inode {ino}")
        return inode

    def _dir(self, txn: Txn, ino: int) -> Inode:
        inode = self._inode(txn, ino)
        if not inode.is_dir:
            raise NotDir(f"inode {ino} is not a directory")
        return inode

    def _child(self, txn: Txn, parent: int, name: bytes) -> tuple[Inode, bytes, int]:
        if b"/" in name or not name:
            raise NotFound(f"{name!r} not found")  # never a directory's stored form
        found = ns.lookup(txn, parent, name)
        if found is None:
            raise NotFound(f"{name!r} not found")
        child, sname, seq = found
        return self._inode(txn, child), sname, seq

    @staticmethod
    def _new_gid(caller: Caller, parent: Inode) -> int:
        return parent.gid if parent.mode & stat.S_ISGID else caller.gid

    @staticmethod
    def _link_new(txn: Txn, parent: Inode, name: bytes, node: Inode, now: int) -> None:
        """Store a new inode under a free name of parent (stores both inodes)."""
        ns.add_entry(txn, parent, name, node.ino, node.is_dir)
        if node.is_dir:
            parent.nlink += 1
        parent.mtime_ns = parent.ctime_ns = now
        ns.put_inode(txn, parent)
        ns.put_inode(txn, node)

    def _drop_link(self, txn: Txn, inode: Inode, now: int) -> None:
        """One name of inode is gone; free it when none is left and no one has it open."""
        inode.nlink = 0 if inode.is_dir else inode.nlink - 1
        inode.ctime_ns = now
        if inode.nlink > 0:
            ns.put_inode(txn, inode)
        elif inode.ino in self._open:
            # Still open here: readable until the last close (POSIX unlink semantics).
            ns.put_inode(txn, inode)
            ns.mark_orphan(txn, inode.ino, now)
        else:
            ns.free_inode(txn, inode.ino, now)

    def _with_open_state(self, inode: Inode) -> Inode:
        f = self._open.get(inode.ino)
        if f is not None and (f.dirty or f.flushing or f.spilled or f.mtime_ns):
            inode = replace(inode, size=f.size)
            if f.mtime_ns:
                inode.mtime_ns = inode.ctime_ns = f.mtime_ns
        return inode

    def is_open(self, ino: int) -> bool:
        return ino in self._open
