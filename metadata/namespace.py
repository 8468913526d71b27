"""Typed namespace operations inside one transaction.

These are the building blocks the vfs composes into whole operations. They keep
the invariants of the schema (see ``schema``):

* a directory entry exists in ``dirent`` and ``dirseq`` together;
* a file's extents never overlap (a write trims and splits what it covers), so a
  read is one ordered range scan;
* ``chunk.refs`` counts the extents (of any inode or multipart part) that point at
  the chunk; at zero the chunk moves to ``trash`` and the collector deletes its
  bytes after a grace period, so a reader holding an older extent list finishes.

Nothing here checks permissions: that is policy, and policy lives in the vfs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from .changes import ATTR, DATA, ENTRY, born, note
from .engine import Txn
from .schema import (
    FIRST_INO, I64, ROOT_INO, U64, Extent, Inode, decode_chunk, decode_dirent,
    decode_extent, decode_inode, decode_inode_perm, decode_json, dirent_key, dirseq_key, encode_chunk, encode_dirent,
    encode_extent, encode_inode, encode_json, extent_key, part_key, read_u64, sortname,
    xattr_key,
)


class MetadataCorrupt(Exception):
    """A record that the schema says must exist does not."""


# -- counters ----------------------------------------------------------------------

def next_counter(txn: Txn, name: bytes, count: int = 1, first: int = 1) -> int:
    """Reserve count consecutive numbers; returns the first. Never reused."""
    raw = txn.get("counter", name)
    start = read_u64(raw) if raw else first
    txn.put("counter", name, U64.pack(start + count))
    return start


def alloc_ino(txn: Txn) -> int:
    ino = next_counter(txn, b"ino", 1, FIRST_INO)
    born(txn, ino)
    return ino


def reserve_chunk_ids(txn: Txn, count: int) -> int:
    return next_counter(txn, b"chunk", count, 1)


# -- inodes --------------------------------------------------------------------------

def get_inode(txn: Txn, ino: int) -> Inode | None:
    raw = txn.get("inode", U64.pack(ino))
    return decode_inode(ino, raw) if raw is not None else None


def get_inode_raw(txn: Txn, ino: int) -> bytes | None:
    """An inode's stored record, undecoded (to compare with one decoded earlier)."""
    return txn.get("inode", U64.pack(ino))


def get_inode_perm(txn: Txn, ino: int) -> tuple[int, int, int] | None:
    """(mode, uid, gid) of an inode, or None when there is none."""
    raw = txn.get("inode", U64.pack(ino))
    return decode_inode_perm(ino, raw) if raw is not None else None


def put_inode(txn: Txn, inode: Inode) -> None:
    txn.put("inode", U64.pack(inode.ino), encode_inode(inode))
    note(txn, ATTR, inode.ino)


def ensure_root(txn: Txn, now_ns: int, mode: int = 0o40755) -> Inode:
    root = get_inode(txn, ROOT_INO)
    if root is None:
        root = Inode(ROOT_INO, mode, 0, 0, nlink=2, atime_ns=now_ns, mtime_ns=now_ns,
                     ctime_ns=now_ns, btime_ns=now_ns, parent=ROOT_INO)
        put_inode(txn, root)
    return root


# -- directory entries ---------------------------------------------------------------

def lookup(txn: Txn, parent: int, name: bytes) -> tuple[int, bytes, int] | None:
    """(child ino, sortname, seq) of name in parent, file or directory form."""
    for sname in (name, name + b"/"):
        raw = txn.get("dirent", dirent_key(parent, sname))
        if raw is not None:
            child, seq = decode_dirent(raw)
            return child, sname, seq
    return None


def lookup_as(txn: Txn, parent: int, name: bytes, is_dir: bool) -> tuple[int, int] | None:
    """(child ino, seq) of name in parent in the one form asked for (a path walk knows
    which it needs: one get instead of lookup's two for directories)."""
    raw = txn.get("dirent", dirent_key(parent, name + b"/" if is_dir else name))
    return decode_dirent(raw) if raw is not None else None


def add_entry(txn: Txn, parent: Inode, name: bytes, child: int, is_dir: bool) -> int:
    """Insert name -> child; bumps parent.next_seq (the caller stores parent)."""
    seq = parent.next_seq
    parent.next_seq += 1
    sname = sortname(name, is_dir)
    txn.put("dirent", dirent_key(parent.ino, sname), encode_dirent(child, seq))
    txn.put("dirseq", dirseq_key(parent.ino, seq), sname)
    note(txn, ENTRY, parent.ino, name)
    return seq


def remove_entry(txn: Txn, parent: int, sname: bytes, seq: int) -> None:
    txn.delete("dirent", dirent_key(parent, sname))
    txn.delete("dirseq", dirseq_key(parent, seq))
    note(txn, ENTRY, parent, sname.removesuffix(b"/"))


def entries(txn: Txn, parent: int, start: bytes = b"") -> Iterator[tuple[bytes, int]]:
    """(sortname, child) in sortname order, from start (inclusive) on."""
    prefix = U64.pack(parent)
    for key, value in txn.prefix("dirent", prefix, start):
        yield key[8:], read_u64(value)


def entries_by_seq(txn: Txn, parent: int, after: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """(seq, sortname, child) in insertion order, for seq > after."""
    prefix = U64.pack(parent)
    for key, sname in txn.prefix("dirseq", prefix, U64.pack(after + 1)):
        seq = read_u64(key, 8)
        raw = txn.get("dirent", dirent_key(parent, sname))
        if raw is None:
            raise MetadataCorrupt(f"dirseq {parent}/{seq} without dirent")
        yield seq, sname, read_u64(raw)


def is_empty_dir(txn: Txn, ino: int) -> bool:
    for _ in txn.prefix("dirent", U64.pack(ino)):
        return False
    return True


# -- chunks and extents ----------------------------------------------------------------

def register_chunk(txn: Txn, chunk_id: int, size: int, sums: bytes) -> None:
    """Record a freshly written chunk with no references yet."""
    if not txn.insert("chunk", U64.pack(chunk_id), encode_chunk(0, size, sums)):
        raise MetadataCorrupt(f"chunk {chunk_id:016x} registered twice")


def get_chunk(txn: Txn, chunk_id: int) -> tuple[int, int, bytes] | None:
    raw = txn.get("chunk", U64.pack(chunk_id))
    return decode_chunk(raw) if raw is not None else None


def _adjust_refs(txn: Txn, chunk_id: int, delta: int, now_ns: int) -> None:
    if chunk_id == 0 or delta == 0:
        return
    key = U64.pack(chunk_id)
    raw = txn.get("chunk", key)
    if raw is None:
        raise MetadataCorrupt(f"extent points at unknown chunk {chunk_id:016x}")
    refs, size, sums = decode_chunk(raw)
    refs += delta
    if refs < 0:
        raise MetadataCorrupt(f"chunk {chunk_id:016x} reference count below zero")
    if refs == 0:
        txn.delete("chunk", key)
        txn.put("trash", key, I64.pack(now_ns))
    else:
        txn.put("chunk", key, encode_chunk(refs, size, sums))


def trash_if_unreferenced(txn: Txn, chunk_id: int, now_ns: int) -> None:
    info = get_chunk(txn, chunk_id)
    if info is not None and info[0] == 0:
        txn.delete("chunk", U64.pack(chunk_id))
        txn.put("trash", U64.pack(chunk_id), I64.pack(now_ns))


def extents(txn: Txn, ino: int, start: int = 0, end: int | None = None) -> list[Extent]:
    """The extents covering [start, end), clipped to it, in offset order."""
    if start == 0 and end is not None:
        # The common small object: one extent from offset 0 covers the whole range, and
        # extents never overlap (put_extent punches first): one get instead of a scan.
        raw = txn.get("extent", extent_key(ino, 0))
        if raw is not None:
            e = decode_extent(0, raw)
            if e.end >= end:
                return [e if e.end == end else e.slice(0, end)] if end > 0 else []
    out: list[Extent] = []
    # An extent that starts before `start` and reaches into it (none can when start is 0;
    # one starting exactly at `start` is the range scan's, not decoded twice).
    first = txn.floor("extent", extent_key(ino, start)) if start > 0 else None
    if first is not None and read_u64(first[0]) == ino and read_u64(first[0], 8) < start:
        e = decode_extent(read_u64(first[0], 8), first[1])
        if e.offset < start < e.end:
            out.append(e.slice(start, e.end if end is None else min(e.end, end)))
    stop = extent_key(ino + 1, 0) if end is None else extent_key(ino, end)
    for key, value in txn.range("extent", extent_key(ino, start), stop):
        e = decode_extent(read_u64(key, 8), value)
        if end is not None and e.end > end:
            e = e.slice(e.offset, end)
        out.append(e)
    return out


def _overlapping(txn: Txn, ino: int, start: int, end: int) -> list[Extent]:
    found: list[Extent] = []
    first = txn.floor("extent", extent_key(ino, start))
    if first is not None and read_u64(first[0]) == ino:
        e = decode_extent(read_u64(first[0], 8), first[1])
        if e.offset < start < e.end:
            found.append(e)
    for key, value in txn.range("extent", extent_key(ino, start), extent_key(ino, end)):
        found.append(decode_extent(read_u64(key, 8), value))
    return found


def punch(txn: Txn, ino: int, start: int, end: int, now_ns: int) -> None:
    """Remove file bytes [start, end) from the extent map (they read as a hole)."""
    note(txn, DATA, ino)
    for old in _overlapping(txn, ino, start, end):
        txn.delete("extent", extent_key(ino, old.offset))
        kept = 0
        if old.offset < start:
            left = old.slice(old.offset, start)
            txn.put("extent", extent_key(ino, left.offset), encode_extent(left))
            kept += 1
        if old.end > end:
            right = old.slice(end, old.end)
            txn.put("extent", extent_key(ino, right.offset), encode_extent(right))
            kept += 1
        _adjust_refs(txn, old.chunk_id, kept - 1, now_ns)


def put_extent(txn: Txn, ino: int, e: Extent, now_ns: int) -> None:
    """Write e over whatever the file had in its range."""
    punch(txn, ino, e.offset, e.end, now_ns)
    txn.put("extent", extent_key(ino, e.offset), encode_extent(e))
    _adjust_refs(txn, e.chunk_id, 1, now_ns)


def put_fresh_extent(txn: Txn, ino: int, e: Extent, now_ns: int) -> None:
    """put_extent for a file known to have nothing in e's range (a new object's
    extents, written in order): no punch, whose cursor scans found nothing to cut."""
    txn.put("extent", extent_key(ino, e.offset), encode_extent(e))
    _adjust_refs(txn, e.chunk_id, 1, now_ns)


def truncate_extents(txn: Txn, ino: int, size: int, now_ns: int) -> None:
    punch(txn, ino, size, 1 << 63, now_ns)


def drop_extents(txn: Txn, ino: int, now_ns: int) -> None:
    truncate_extents(txn, ino, 0, now_ns)


def share_extents(txn: Txn, src: list[Extent], ino: int, base: int, now_ns: int) -> None:
    """Point ino's range at base.. at the same bytes as src (copy without copying)."""
    first = src[0].offset if src else 0
    for e in src:
        moved = Extent(base + e.offset - first, e.length, e.chunk_id, e.chunk_off, e.data)
        put_extent(txn, ino, moved, now_ns)


# -- xattrs --------------------------------------------------------------------------

def get_xattr(txn: Txn, ino: int, name: bytes) -> bytes | None:
    return txn.get("xattr", xattr_key(ino, name))


def set_xattr(txn: Txn, ino: int, name: bytes, value: bytes) -> None:
    txn.put("xattr", xattr_key(ino, name), value)


def remove_xattr(txn: Txn, ino: int, name: bytes) -> bool:
    return txn.delete("xattr", xattr_key(ino, name))


def list_xattrs(txn: Txn, ino: int) -> list[tuple[bytes, bytes]]:
    return [(k[8:], v) for k, v in txn.prefix("xattr", U64.pack(ino))]


# -- orphans and freeing ------------------------------------------------------------------

def mark_orphan(txn: Txn, ino: int, now_ns: int) -> None:
    txn.put("orphan", U64.pack(ino), I64.pack(now_ns))


def orphans(txn: Txn) -> Iterator[tuple[int, int]]:
    for key, value in txn.range("orphan", b""):
        yield read_u64(key), int(I64.unpack(value)[0])


def free_inode(txn: Txn, ino: int, now_ns: int) -> None:
    """Delete an unlinked inode and release what it points at."""
    drop_extents(txn, ino, now_ns)
    for name, _ in list_xattrs(txn, ino):
        remove_xattr(txn, ino, name)
    txn.delete("inode", U64.pack(ino))
    txn.delete("orphan", U64.pack(ino))
    note(txn, DATA, ino)


_PENDING = struct.Struct(">IQ")


def add_pending(txn: Txn, chunk_id: int, pid: int, start_time: int) -> None:
    """A chunk written for an open file whose commit has not happened yet: known to
    metadata (refs 0) so the collector leaves it alone while its writer lives."""
    txn.put("pending", U64.pack(chunk_id), _PENDING.pack(pid, start_time))


def clear_pending(txn: Txn, chunk_id: int) -> None:
    txn.delete("pending", U64.pack(chunk_id))


def pending(txn: Txn) -> Iterator[tuple[int, int, int]]:
    """(chunk id, writer pid, writer start time)."""
    for key, value in txn.range("pending", b""):
        pid, start = _PENDING.unpack(value)
        yield read_u64(key), int(pid), int(start)


def trash(txn: Txn) -> Iterator[tuple[int, int]]:
    for key, value in txn.range("trash", b""):
        yield read_u64(key), int(I64.unpack(value)[0])


def forget_trash(txn: Txn, chunk_id: int) -> None:
    txn.delete("trash", U64.pack(chunk_id))


def chunk_known(txn: Txn, chunk_id: int) -> bool:
    key = U64.pack(chunk_id)
    return txn.get("chunk", key) is not None or txn.get("trash", key) is not None


def part_number(b: bytes) -> int:
    return int(struct.unpack(">I", b[-4:])[0])


# -- identities ------------------------------------------------------------------------------

def get_identity(txn: Txn, access_key: str) -> dict[str, Any] | None:
    raw = txn.get("identity", access_key.encode())
    return decode_json(raw) if raw is not None else None


def put_identity(txn: Txn, access_key: str, record: dict[str, Any]) -> None:
    txn.put("identity", access_key.encode(), encode_json(record))


# -- multipart uploads ---------------------------------------------------------------------------
# An upload's parts own their chunks (refs counted like a file's extents), so completing
# an upload moves extents to the new inode and copies no bytes, and aborting frees them.

def put_upload(txn: Txn, upload_id: bytes, record: dict[str, Any]) -> None:
    txn.put("upload", upload_id, encode_json(record))


def get_upload(txn: Txn, upload_id: bytes) -> dict[str, Any] | None:
    raw = txn.get("upload", upload_id)
    return decode_json(raw) if raw is not None else None


def uploads(txn: Txn, start: bytes = b"") -> Iterator[tuple[bytes, dict[str, Any]]]:
    for key, value in txn.range("upload", start):
        yield key, decode_json(value)


def put_part(txn: Txn, upload_id: bytes, number: int, exts: list[Extent],
             record: dict[str, Any], now_ns: int) -> None:
    """Store (or replace) part `number`: its record and the extents of its bytes."""
    drop_part(txn, upload_id, number, now_ns)
    rec = dict(record)
    rec["extents"] = [encode_extent(e).hex() for e in exts]
    rec["offsets"] = [e.offset for e in exts]
    for e in exts:
        _adjust_refs(txn, e.chunk_id, 1, now_ns)
    txn.put("part", part_key(upload_id, number), encode_json(rec))


def parts(txn: Txn, upload_id: bytes, after: int = 0) -> Iterator[tuple[int, dict[str, Any], list[Extent]]]:
    for key, value in txn.prefix("part", upload_id, struct.pack(">I", after + 1)):
        rec = decode_json(value)
        exts = [decode_extent(o, bytes.fromhex(h)) for o, h in zip(rec.pop("offsets"), rec.pop("extents"))]
        yield part_number(key), rec, exts


def drop_part(txn: Txn, upload_id: bytes, number: int, now_ns: int) -> bool:
    key = part_key(upload_id, number)
    raw = txn.get("part", key)
    if raw is None:
        return False
    rec = decode_json(raw)
    for o, h in zip(rec["offsets"], rec["extents"]):
        _adjust_refs(txn, decode_extent(o, bytes.fromhex(h)).chunk_id, -1, now_ns)
    txn.delete("part", key)
    return True


def drop_upload(txn: Txn, upload_id: bytes, now_ns: int) -> None:
    """Abort: free every part's chunks and forget the upload."""
    for number, _, _ in list(parts(txn, upload_id)):
        drop_part(txn, upload_id, number, now_ns)
    txn.delete("upload", upload_id)
