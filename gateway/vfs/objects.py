"""Object (S3) operations on the same namespace the mounts see.

* A bucket is a top-level directory; key ``a/b/c`` is the file ``/bucket/a/b/c``.
* A put is atomic: the body is made durable in chunks first, then one metadata
  transaction makes missing parent directories (flagged implicit), and swaps the
  new inode in under the name. A reader sees the old object or the new one, never
  a mix; the old inode is unlinked (and stays readable through handles already
  open on a mount until they close).
* Directories that puts created implicitly vanish when a delete through S3
  empties them; directories made explicitly (mkdir, a PUT of ``dir/``) stay.
* A copy shares the source's chunks (reference counts) and copies no bytes.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from chunkstore import ChunkStore
from metadata import FLAG_IMPLICIT, FLAG_MARKER, Extent, Inode, ROOT_INO, Txn
from metadata.schema import decode_inode
from metadata import namespace as ns

from . import data
from .errors import (
    AccessDenied, Exists, FsError, InvalidKey, NotEmpty, NotFound, NotPermitted,
)
from .keys import check_bucket_name, split_key, split_key_cached
from .listing import ListPage, list_page
from .core import Core
from .perms import R, W, X, Caller, allowed, check, check_modify_dir, check_search, check_sticky


OBJECT_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755

Precondition = Callable[[Inode | None], None]
BeforeCommit = Callable[[int, str], "dict[str, Any] | None"]


class KeyConflict(FsError):
    """The key needs a directory where a file is, or a file where a directory is."""

    errno = 17  # EEXIST


class NoSuchBucket(NotFound):
    pass


@dataclass(slots=True)
class ObjectRead:
    """An object opened for reading: its attributes and a consistent snapshot of
    where all its bytes are. Any range of it can be streamed from the snapshot, so
    conditional and range decisions made on `inode` match the bytes served."""

    inode: Inode
    start: int
    end: int
    plan: data.ReadPlan | None
    chunks: ChunkStore
    xattrs: dict[bytes, bytes] = field(default_factory=dict)  # read in the same snapshot

    @property
    def body(self) -> AsyncIterator[bytes | memoryview]:
        """The bytes [start, end) asked for at open."""
        return self.stream(self.start, self.end)

    def stream(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        end = min(end, self.inode.size)
        if self.plan is None or start >= end:
            return _empty()
        return data.stream(self.chunks, self.plan, start, end)

    def blocking_pieces(self, start: int, end: int) -> data.BlockingPieces | None:
        """[start, end) as pieces a worker thread reads (data.BlockingPieces), or None
        when the chunk store has no blocking reads (then use ``stream``)."""
        end = min(end, self.inode.size)
        if self.plan is None or start >= end or not self.chunks.reads_blocking:
            return None
        pieces = data.BlockingPieces(self.chunks, self.plan, start, end)
        # The first chunks to the kernel's read-ahead at once (as stream() does); later
        # ones rely on the kernel's own read-ahead within each chunk file.
        first = self.plan.covering(start, min(end, start + data.PREFETCH_BYTES))
        data.hint_ahead(self.chunks, self.plan, first)
        return pieces

    def inline_bytes(self, start: int, end: int) -> bytes | None:
        """The bytes [start, end) when the snapshot already holds all of them (inline
        extents, whose checksums were verified when read, and holes), else None: a
        small object is then served without a chunk fetch or a stream."""
        end = min(end, self.inode.size)
        if self.plan is None or start >= end:
            return b""
        out: list[bytes] = []
        at = start
        for e in self.plan.extents:
            if e.offset + e.length <= start or e.offset >= end:
                continue
            if e.data is None:
                return None
            if e.offset > at:
                out.append(bytes(e.offset - at))
            hi = min(e.offset + e.length, end)
            out.append(e.data[at - e.offset:hi - e.offset] if at > e.offset else e.data[:hi - e.offset])
            at = hi
        if at < end:
            out.append(bytes(end - at))
        return out[0] if len(out) == 1 else b"".join(out)


# Small files opened by GET lately, per process: a repeated GET of one skips decoding
# its record, extents (inline bytes checked against their xxh3 when first read) and
# xattrs. An entry is used only while the file's inode record is byte for byte the one
# it was built from: every change to a file's bytes, extents or xattrs rewrites that
# record in the same transaction (new size, mtime or ctime; see data.CachedPlan), and a
# replaced or deleted key no longer leads to that inode. Folders are never kept (whether
# one is a key depends on its children, not on its record).
RECENT_OBJECTS = 1024
RECENT_OBJECT_BYTES = 64 << 10   # at most 64 MiB of inline bytes held in all
RECENT_OBJECT_EXTENTS = 16


@dataclass(frozen=True, slots=True)
class RecentObject:
    raw: bytes                   # the inode record the rest was decoded from
    inode: Inode
    plan: data.ReadPlan
    xattrs: dict[bytes, bytes]


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover  (makes this an async generator)


def _name(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class ObjectOps(Core):
    """The object (S3) half of the vfs."""

    # -- buckets ---------------------------------------------------------------------

    def _bucket(self, txn: Txn, bucket: str) -> Inode:
        found = ns.lookup_as(txn, ROOT_INO, bucket.encode(), True)  # a bucket is a directory
        if found is None:
            raise NoSuchBucket(f"no bucket {bucket!r}")
        return self._inode(txn, found[0])

    async def create_bucket(self, caller: Caller, bucket: str, mode: int = 0o755) -> Inode:
        """Any identity may create a bucket: the bucket namespace belongs to S3, not
        to the root directory's mode bits. The caller owns it."""
        check_bucket_name(bucket)
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            root = self._inode(txn, ROOT_INO)
            found = ns.lookup(txn, ROOT_INO, bucket.encode())
            if found is not None:
                existing = self._inode(txn, found[0])
                raise Exists(f"bucket {bucket!r} exists"
                             + (" (yours)" if existing.uid == caller.uid else ""))
            ino = ns.alloc_ino(txn)
            node = Inode(ino, stat.S_IFDIR | (mode & 0o7777), caller.uid, caller.gid, nlink=2,
                         atime_ns=now, mtime_ns=now, ctime_ns=now, btime_ns=now, parent=ROOT_INO)
            self._link_new(txn, root, bucket.encode(), node, now)
            return node

        return await self._write(op)

    async def delete_bucket(self, caller: Caller, bucket: str) -> None:
        now = time.time_ns()

        def op(txn: Txn) -> None:
            b = self._bucket(txn, bucket)
            if not caller.is_root and caller.uid != b.uid:
                raise AccessDenied(f"bucket {bucket!r} belongs to another user")
            if not ns.is_empty_dir(txn, b.ino):
                raise NotEmpty(f"bucket {bucket!r} is not empty")
            root = self._inode(txn, ROOT_INO)
            found = ns.lookup(txn, ROOT_INO, bucket.encode())
            assert found is not None
            ns.remove_entry(txn, ROOT_INO, found[1], found[2])
            root.nlink -= 1
            root.mtime_ns = root.ctime_ns = now
            ns.put_inode(txn, root)
            txn.delete("bucket", bucket.encode())
            self._drop_link(txn, b, now)

        await self._write(op)

    async def head_bucket(self, caller: Caller, bucket: str) -> Inode:
        def op(txn: Txn) -> Inode:
            b = self._bucket(txn, bucket)
            check(caller, b, X)
            return b
        return self._read(op)

    async def list_buckets(self, caller: Caller) -> list[tuple[str, Inode]]:
        """Top-level directories with valid bucket names that the caller can enter."""
        def op(txn: Txn) -> list[tuple[str, Inode]]:
            out = []
            for sname, child in ns.entries(txn, ROOT_INO):
                if not sname.endswith(b"/"):
                    continue
                name = _name(sname[:-1])
                try:
                    check_bucket_name(name)
                except FsError:
                    continue
                inode = ns.get_inode(txn, child)
                if inode is not None and allowed(caller, inode, X):
                    out.append((name, inode))
            return out
        return self._read(op)

    def bucket_owner(self, bucket: str) -> Caller:
        """The owner of a bucket's directory, as a caller (its uid and gid)."""
        b = self._read(lambda txn: self._bucket(txn, bucket))
        return Caller(b.uid, b.gid)

    def bucket_settings(self, bucket: str) -> dict[str, Any]:
        """S3 settings of a bucket ({} when none were set)."""
        raw = self._read(lambda txn: txn.get("bucket", bucket.encode()))
        return ns.decode_json(raw) if raw else {}

    async def set_bucket_settings(self, caller: Caller, bucket: str, **settings: Any) -> None:
        """Change S3 settings (e.g. public=True); owner or root only."""
        def op(txn: Txn) -> None:
            b = self._bucket(txn, bucket)
            if not caller.is_root and caller.uid != b.uid:
                raise AccessDenied(f"bucket {bucket!r} belongs to another user")
            raw = txn.get("bucket", bucket.encode())
            rec = ns.decode_json(raw) if raw else {}
            rec.update(settings)
            txn.put("bucket", bucket.encode(), ns.encode_json(rec))
        await self._write(op)

    # -- paths ---------------------------------------------------------------------------

    def _walk(self, txn: Txn, caller: Caller, bucket: str,
              segs: list[bytes]) -> list[tuple[Inode, bytes, bytes, int]]:
        """The directories down to segs' parent: [(dir, name, sortname, seq)], bucket first."""
        b = self._bucket(txn, bucket)
        chain: list[tuple[Inode, bytes, bytes, int]] = [(b, bucket.encode(), b"", 0)]
        cur = b
        for seg in segs:
            check(caller, cur, X)
            # Only a directory continues the path (a file there means no such key).
            found = ns.lookup_as(txn, cur.ino, seg, True)
            if found is None:
                raise NotFound("no such key")
            child, seq = found
            cur = self._inode(txn, child)
            chain.append((cur, seg, seg + b"/", seq))
        check(caller, cur, X)
        return chain

    def _make_parents(self, txn: Txn, caller: Caller, bucket: str,
                      segs: list[bytes], now: int) -> Inode:
        cur = self._bucket(txn, bucket)
        for i, seg in enumerate(segs):
            check(caller, cur, X)
            found = ns.lookup(txn, cur.ino, seg)
            if found is not None:
                if not found[1].endswith(b"/"):
                    raise KeyConflict("an object exists at prefix "
                                      f"{_name(b'/'.join(segs[:i + 1]))!r}; it cannot also be a folder")
                cur = self._inode(txn, found[0])
                continue
            check_modify_dir(caller, cur)
            ino = ns.alloc_ino(txn)
            gid = cur.gid if cur.mode & stat.S_ISGID else caller.gid
            node = Inode(ino, DIR_MODE | (cur.mode & stat.S_ISGID), caller.uid, gid, nlink=2,
                         atime_ns=now, mtime_ns=now, ctime_ns=now, btime_ns=now,
                         parent=cur.ino, flags=FLAG_IMPLICIT)
            self._link_new(txn, cur, seg, node, now)
            cur = node
        check_modify_dir(caller, cur)
        return cur

    def _prune(self, txn: Txn, chain: list[tuple[Inode, bytes, bytes, int]], now: int) -> None:
        """Remove implicit directories that are now empty, deepest first (never the bucket)."""
        for depth in range(len(chain) - 1, 0, -1):
            d, _, sname, seq = chain[depth]
            d = self._inode(txn, d.ino)
            if not d.flags & FLAG_IMPLICIT or d.flags & FLAG_MARKER or not ns.is_empty_dir(txn, d.ino):
                return
            parent = self._inode(txn, chain[depth - 1][0].ino)
            ns.remove_entry(txn, parent.ino, sname, seq)
            parent.nlink -= 1
            parent.mtime_ns = parent.ctime_ns = now
            ns.put_inode(txn, parent)
            self._drop_link(txn, d, now)

    # -- objects ----------------------------------------------------------------------------

    async def put_object(self, caller: Caller, bucket: str, key: str | bytes,
                         body: AsyncIterator[bytes], *, content_type: str = "",
                         extra: dict[str, Any] | None = None,
                         xattrs: dict[bytes, bytes] | None = None,
                         precondition: Precondition | None = None,
                         before_commit: BeforeCommit | None = None) -> Inode:
        """Store body under key atomically; returns the new inode (etag = MD5 hex).

        before_commit(size, md5_hex) runs once the body is durable and before the
        commit: it may raise to refuse the object (BadDigest: nothing is stored) or
        return entries to merge into the inode's extra (verified checksums);
        precondition(existing) runs inside the commit and may raise to refuse it
        (If-Match / If-None-Match).
        """
        segs, is_dir = split_key(key)
        # Fail before reading the body when the bucket is missing or the path is taken.
        self._read(lambda txn: self._precheck(txn, caller, bucket, segs))
        if is_dir:
            async for piece in body:
                if piece:
                    raise InvalidKey("a key ending in '/' names a folder and must have an empty body")
            return await self._put_folder(caller, bucket, segs, xattrs or {})
        written, size, md5 = await data.store_stream(self.chunks, self.ids, self.chunk_size,
                                                     body)
        try:
            extra = dict(extra or {})
            if before_commit is not None:
                extra.update(before_commit(size, md5) or {})
        except BaseException:
            await self._discard(written)
            raise
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            parent = self._make_parents(txn, caller, bucket, segs[:-1], now)
            name = segs[-1]
            found = ns.lookup(txn, parent.ino, name)
            old = self._inode(txn, found[0]) if found else None
            if old is not None and old.is_dir:
                raise KeyConflict(f"a folder exists at key {_name(b'/'.join(segs))!r}")
            if precondition is not None:
                precondition(old)
            if old is not None:
                check_sticky(caller, parent, old)
            ino = ns.alloc_ino(txn)
            node = Inode(ino, OBJECT_MODE, caller.uid, self._new_gid(caller, parent), size=size,
                         atime_ns=now, mtime_ns=now, ctime_ns=now, btime_ns=now,
                         parent=parent.ino, etag=md5, content_type=content_type,
                         extra=extra)
            written.register(txn)
            self._install(txn, parent, name, found, old, node, written.extents, xattrs or {}, now)
            return node

        try:
            return await self._write(op)
        except BaseException:
            await self._discard(written)
            raise

    def _install(self, txn: Txn, parent: Inode, name: bytes,
                 found: tuple[int, bytes, int] | None, old: Inode | None, node: Inode,
                 exts: list[Extent], xattrs: dict[bytes, bytes], now: int) -> None:
        """Swap a new object inode in under name (rename-over of any old one)."""
        for e in exts:
            ns.put_fresh_extent(txn, node.ino, e, now)  # node is new; exts never overlap
        for k, v in xattrs.items():
            ns.set_xattr(txn, node.ino, k, v)
        if found is not None:
            ns.remove_entry(txn, parent.ino, found[1], found[2])
        self._link_new(txn, parent, name, node, now)
        if old is not None:
            self._drop_link(txn, old, now)

    async def _discard(self, written: data.Written) -> None:
        await data.discard(self.chunks, written)

    def _precheck(self, txn: Txn, caller: Caller, bucket: str, segs: list[bytes]) -> None:
        cur = self._bucket(txn, bucket)
        for i, seg in enumerate(segs[:-1]):
            check(caller, cur, X)
            found = ns.lookup(txn, cur.ino, seg)
            if found is None:
                check_modify_dir(caller, cur)
                return
            if not found[1].endswith(b"/"):
                raise KeyConflict("an object exists at prefix "
                                  f"{_name(b'/'.join(segs[:i + 1]))!r}; it cannot also be a folder")
            cur = self._inode(txn, found[0])
        check_modify_dir(caller, cur)

    async def _put_folder(self, caller: Caller, bucket: str, segs: list[bytes],
                          xattrs: dict[bytes, bytes]) -> Inode:
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            parent = self._make_parents(txn, caller, bucket, segs, now)
            parent.flags = (parent.flags & ~FLAG_IMPLICIT) | FLAG_MARKER
            parent.mtime_ns = parent.ctime_ns = now
            for k, v in xattrs.items():
                ns.set_xattr(txn, parent.ino, k, v)
            ns.put_inode(txn, parent)
            return parent

        return await self._write(op)

    def _object(self, txn: Txn, caller: Caller, bucket: str,
                key: str | bytes) -> tuple[Inode, list[tuple[Inode, bytes, bytes, int]], bytes, int]:
        segs, is_dir = split_key(key)
        chain = self._walk(txn, caller, bucket, segs[:-1])
        found = ns.lookup_as(txn, chain[-1][0].ino, segs[-1], is_dir)
        if found is None:
            raise NotFound("no such key")  # absent, or there only in the other form
        inode = self._inode(txn, found[0])
        if is_dir and not (inode.flags & FLAG_MARKER or ns.is_empty_dir(txn, inode.ino)):
            raise NotFound("no such key")  # a folder that is only a prefix, not a key
        return inode, chain, segs[-1] + b"/" if is_dir else segs[-1], found[1]

    def _search(self, txn: Txn, caller: Caller, ino: int) -> None:
        """check(caller, directory ino, X) from its permission fields alone."""
        perm = ns.get_inode_perm(txn, ino)
        if perm is None:
            raise NotFound(f"no inode {ino}")
        check_search(caller, ino, *perm)

    def _object_record(self, txn: Txn, caller: Caller, bucket: str,
                       key: str | bytes) -> tuple[int, bytes, bool]:
        """(ino, stored inode record, names a folder) of key, walked with the search
        permission checked on every directory on the way, decoding none of them (only
        their permission fields): a GET's walk. The object itself is not checked yet."""
        segs, is_dir = split_key_cached(key)
        found = ns.lookup_as(txn, ROOT_INO, bucket.encode(), True)
        if found is None:
            raise NoSuchBucket(f"no bucket {bucket!r}")
        cur = found[0]
        for seg in segs[:-1]:
            self._search(txn, caller, cur)
            # Only a directory continues the path (a file there means no such key).
            found = ns.lookup_as(txn, cur, seg, True)
            if found is None:
                raise NotFound("no such key")
            cur = found[0]
        self._search(txn, caller, cur)
        found = ns.lookup_as(txn, cur, segs[-1], is_dir)
        if found is None:
            raise NotFound("no such key")  # absent, or there only in the other form
        raw = ns.get_inode_raw(txn, found[0])
        if raw is None:
            raise NotFound(f"no inode {found[0]}")
        return found[0], raw, is_dir

    def _readable_object(self, txn: Txn, caller: Caller, bucket: str, key: str | bytes) -> Inode:
        """The inode of key, checked as `_object` then check(R) would."""
        ino, raw, is_dir = self._object_record(txn, caller, bucket, key)
        inode = decode_inode(ino, raw)
        if is_dir and not (inode.flags & FLAG_MARKER or ns.is_empty_dir(txn, inode.ino)):
            raise NotFound("no such key")  # a folder that is only a prefix, not a key
        check(caller, inode, R)
        return inode

    async def stat_object(self, caller: Caller, bucket: str, key: str | bytes) -> Inode:
        def op(txn: Txn) -> Inode:
            return self._readable_object(txn, caller, bucket, key)
        return self._read(op)  # committed state only, like get_object: S3 sees closed files

    async def object_xattrs(self, caller: Caller, bucket: str,
                            key: str | bytes) -> dict[bytes, bytes]:
        def op(txn: Txn) -> dict[bytes, bytes]:
            inode = self._object(txn, caller, bucket, key)[0]
            check(caller, inode, R)
            return dict(ns.list_xattrs(txn, inode.ino))
        return self._read(op)

    async def get_object(self, caller: Caller, bucket: str, key: str | bytes,
                         start: int = 0, end: int | None = None) -> ObjectRead:
        """Open an object: attributes and a snapshot of all its bytes, from one read txn.
        The inode and xattrs returned may be shared with other opens: read them only."""
        def op(txn: Txn) -> tuple[Inode, data.ReadPlan | None, dict[bytes, bytes]]:
            ino, raw, is_dir = self._object_record(txn, caller, bucket, key)
            recent = self._recent_objects
            hit = recent.get(ino)
            if hit is not None and hit.raw == raw:
                # The same record: the same attributes, extents and xattrs (see
                # RecentObject). The permission check is made afresh.
                check(caller, hit.inode, R)
                return hit.inode, hit.plan, hit.xattrs
            inode = decode_inode(ino, raw)
            if is_dir and not (inode.flags & FLAG_MARKER or ns.is_empty_dir(txn, inode.ino)):
                raise NotFound("no such key")  # a folder that is only a prefix, not a key
            check(caller, inode, R)
            xattrs = dict(ns.list_xattrs(txn, inode.ino))
            if inode.is_dir:
                return inode, None, xattrs
            p = data.plan(txn, inode.ino, inode.size, 0, inode.size)
            if inode.is_reg and inode.size <= RECENT_OBJECT_BYTES and len(p.extents) <= RECENT_OBJECT_EXTENTS:
                if len(recent) >= RECENT_OBJECTS:
                    del recent[next(iter(recent))]  # the oldest entry
                recent[ino] = RecentObject(raw, inode, p, xattrs)
            return inode, p, xattrs

        inode, p, xattrs = self._read(op)
        stop = inode.size if end is None else min(end, inode.size)
        return ObjectRead(inode, min(start, stop), stop, p, self.chunks, xattrs)

    async def read_object(self, caller: Caller, bucket: str, key: str | bytes,
                          start: int = 0, end: int | None = None) -> bytes:
        """The whole (or ranged) object in memory: for tests and small objects."""
        r = await self.get_object(caller, bucket, key, start, end)
        return b"".join([piece async for piece in r.body])

    async def set_object_extra(self, caller: Caller, bucket: str, key: str | bytes,
                               name: str, value: Any) -> Inode:
        """Set (None: remove) one entry of an object's extra, e.g. its tags. The bytes,
        ETag and mtime stay; ctime moves."""
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            inode = self._object(txn, caller, bucket, key)[0]
            check(caller, inode, W)
            if value is None:
                inode.extra.pop(name, None)
            else:
                inode.extra[name] = value
            inode.ctime_ns = now
            ns.put_inode(txn, inode)
            return inode

        return await self._write(op)

    async def delete_object(self, caller: Caller, bucket: str, key: str | bytes) -> None:
        """Remove key; NotFound when there is no such key (S3 doors answer 204 anyway)."""
        now = time.time_ns()

        def op(txn: Txn) -> None:
            inode, chain, sname, seq = self._object(txn, caller, bucket, key)
            parent = self._inode(txn, chain[-1][0].ino)
            check_modify_dir(caller, parent)
            check_sticky(caller, parent, inode)
            if inode.is_dir and not ns.is_empty_dir(txn, inode.ino):
                # Deleting "dir/" of a folder with objects: the key goes, the prefix stays
                # until its objects are gone (as on S3).
                inode.flags = (inode.flags & ~FLAG_MARKER) | FLAG_IMPLICIT
                inode.ctime_ns = now
                ns.put_inode(txn, inode)
                return
            ns.remove_entry(txn, parent.ino, sname, seq)
            if inode.is_dir:
                parent.nlink -= 1
            parent.mtime_ns = parent.ctime_ns = now
            ns.put_inode(txn, parent)
            self._drop_link(txn, inode, now)
            self._prune(txn, chain, now)

        await self._write(op)

    async def copy_object(self, caller: Caller, src_bucket: str, src_key: str | bytes,
                          dst_bucket: str, dst_key: str | bytes, *,
                          content_type: str | None = None, extra: dict[str, Any] | None = None,
                          xattrs: dict[bytes, bytes] | None = None,
                          precondition: Precondition | None = None) -> Inode:
        """Server-side copy sharing the source's chunks. None for content_type/extra/
        xattrs keeps the source's (S3's metadata directive COPY)."""
        dsegs, dst_is_dir = split_key(dst_key)
        if dst_is_dir:
            raise InvalidKey("cannot copy onto a folder key")
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            src = self._object(txn, caller, src_bucket, src_key)[0]
            check(caller, src, R)
            if src.is_dir:
                raise InvalidKey("cannot copy a folder key")
            if precondition is not None:
                precondition(src)
            src_exts = ns.extents(txn, src.ino)
            src_xattrs = dict(ns.list_xattrs(txn, src.ino))
            parent = self._make_parents(txn, caller, dst_bucket, dsegs[:-1], now)
            name = dsegs[-1]
            found = ns.lookup(txn, parent.ino, name)
            old = self._inode(txn, found[0]) if found else None
            if old is not None and old.is_dir:
                raise KeyConflict("a folder exists at the destination key")
            if old is not None and old.ino == src.ino and content_type is None and extra is None \
                    and xattrs is None:
                raise NotPermitted("copying an object onto itself without changing it")
            ino = ns.alloc_ino(txn)
            node = Inode(ino, OBJECT_MODE, caller.uid, self._new_gid(caller, parent),
                         size=src.size, atime_ns=now, mtime_ns=now, ctime_ns=now, btime_ns=now,
                         parent=parent.ino, etag=src.etag,
                         content_type=src.content_type if content_type is None else content_type,
                         extra=dict(src.extra if extra is None else extra))
            self._install(txn, parent, name, found, old, node, src_exts,
                          src_xattrs if xattrs is None else xattrs, now)
            return node

        return await self._write(op)

    async def list_objects(self, caller: Caller, bucket: str, *,
                           prefix: str | bytes = b"", delimiter: str | bytes | None = None,
                           after: str | bytes | None = None, max_keys: int = 1000) -> ListPage:
        """One page of keys > after under prefix, in byte order (one read txn per page)."""
        p = prefix.encode() if isinstance(prefix, str) else prefix
        d = delimiter.encode() if isinstance(delimiter, str) else delimiter
        a = after.encode() if isinstance(after, str) else after

        def op(txn: Txn) -> ListPage:
            b = self._bucket(txn, bucket)
            check(caller, b, R | X)
            return list_page(txn, b.ino, prefix=p, delimiter=d, after=a or None,
                             max_keys=max_keys, can_list=lambda i: allowed(caller, i, R | X))

        # A page is up to 1000 inode reads: off the event loop.
        return await asyncio.to_thread(self._read, op)
