"""The whole metadata key layout, and pure codecs for its records.

Integers in keys are big-endian and fixed-width, so LMDB's byte order is numeric
order and prefix scans work. Sub-databases:

=========  ====================================  ===========================================
db         key                                   value
=========  ====================================  ===========================================
inode      ino u64                               Inode record (see ``encode_inode``)
dirent     parent u64 + sortname                 child ino u64 + seq u64
dirseq     parent u64 + seq u64                  sortname (readdir order; cookies = seq)
extent     ino u64 + file offset u64             Extent record (chunk slice or inline bytes)
chunk      chunk id u64                          refs u32 + size u32 + xxh3 sums per block
                                                 (4, 16 or 64 KiB blocks: implied by size and
                                                 the count, chunkstore.base.block_size_of)
pending    chunk id u64                          writer pid u32 + its start time u64: spilled
                                                 by an open file, not yet committed (refs 0)
trash      chunk id u64                          freed at ns i64 (chunk deleted after grace)
orphan     ino u64                               unlinked at ns i64 (nlink 0, maybe still open)
xattr      ino u64 + name                        value
bucket     bucket name                           JSON: S3 bucket settings (public, ...)
upload     upload id                             JSON: multipart upload (bucket, key, owner, ...)
uploadkey  bucket + NUL + key + NUL + upload id  empty (ListMultipartUploads in key order)
part       upload id + part number u32           JSON: size, etag, extents of one part
identity   access key                            JSON: secret, uid, gid, groups, name
counter    name                                  u64 (next inode, next chunk id)
changes    batch seq u64                         writer pid u32 + flags u8 + changes (kind u8,
                                                 ino u64, name len u16, name): what one group
                                                 commit changed, for mounts' kernel caches;
                                                 the last LOG_KEEP batches (see changes.py)
tailers    pid u32 + process start time u64      empty: a mount process reading ``changes``
                                                 (others log only while one is registered)
=========  ====================================  ===========================================

``sortname`` is the entry name, plus ``/`` for a directory. A depth-first walk of
``dirent`` in key order therefore yields S3 keys in exact byte order: "a.txt" sorts
before "a/" (and so before every "a/..." key) because '.' < '/'. Names never
contain '/', so every key under "a/" sorts between "a/" and the next sibling.
A name is either a file or a directory, never both: lookups try ``name`` and
``name/``, and creation refuses a name taken in either form.

``seq`` is a per-directory insertion number, never reused: readdir walks
``dirseq`` so that a resume cookie survives concurrent inserts and deletes (an
entry that was not touched is never repeated or skipped).
"""

from __future__ import annotations

import json
import stat
import struct
from dataclasses import dataclass, field
from typing import Any

import xxhash

DBS = (
    "inode", "dirent", "dirseq", "extent", "chunk", "pending", "trash", "orphan",
    "xattr", "bucket", "upload", "uploadkey", "part", "identity", "counter", "changes",
    "tailers",
)

ROOT_INO = 1  # FUSE's root inode number; NFS handles name it too
FIRST_INO = 2

U64 = struct.Struct(">Q")
I64 = struct.Struct(">q")
U64U64 = struct.Struct(">QQ")

# Inline extents: a small object is one metadata record, not a chunk file and an
# fsync of its own (DESIGN.md: one group commit instead of a file create per object).
INLINE_MAX = 16 * 1024

# Keys of Inode.extra that describe the bytes (S3 checksums, multipart part sizes and
# part checksums): a
# write through a mount drops them at once, so S3 never serves a stale checksum. The
# rest (S3 headers like content-encoding, tags) describe the object and stay.
EXTRA_BYTE_FACTS = ("checksums", "parts", "part_checksums")


def without_byte_facts(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k not in EXTRA_BYTE_FACTS}


# Inode flags
FLAG_IMPLICIT = 1  # directory made as a side effect of an S3 put; vanishes when S3 empties it
FLAG_MARKER = 2    # directory that also exists as the S3 key "dir/" (a PUT of "dir/")


def u64(n: int) -> bytes:
    return U64.pack(n)


def read_u64(b: bytes, at: int = 0) -> int:
    return int(U64.unpack_from(b, at)[0])


# -- keys ----------------------------------------------------------------------

def sortname(name: bytes, is_dir: bool) -> bytes:
    return name + b"/" if is_dir else name


def dirent_key(parent: int, sname: bytes) -> bytes:
    return U64.pack(parent) + sname


def dirseq_key(parent: int, seq: int) -> bytes:
    return U64U64.pack(parent, seq)


def extent_key(ino: int, offset: int) -> bytes:
    return U64U64.pack(ino, offset)


def xattr_key(ino: int, name: bytes) -> bytes:
    return U64.pack(ino) + name


def part_key(upload_id: bytes, part: int) -> bytes:
    return upload_id + struct.pack(">I", part)


# -- inode ---------------------------------------------------------------------

_INODE = struct.Struct(">IIIIIQqqqqQQIIHHI")
_INODE_VERSION = 1


@dataclass(slots=True)
class Inode:
    ino: int
    mode: int  # st_mode: type and permission bits
    uid: int
    gid: int
    nlink: int = 1
    size: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    btime_ns: int = 0
    next_seq: int = 1   # directories: next dirseq number
    parent: int = 0     # directories: the one parent (for "..", and cycle checks on rename)
    flags: int = 0
    rdev: int = 0
    generation: int = 0
    etag: str = ""      # "" = not known (a mount write without a sequential MD5)
    content_type: str = ""
    target: bytes = b""  # symlink target
    extra: dict[str, Any] = field(default_factory=dict)  # S3 headers, checksums

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_reg(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


def encode_inode(i: Inode) -> bytes:
    etag = i.etag.encode()
    ctype = i.content_type.encode()
    extra = json.dumps(i.extra, separators=(",", ":")).encode() if i.extra else b""
    head = _INODE.pack(
        _INODE_VERSION, i.mode, i.uid, i.gid, i.nlink, i.size,
        i.atime_ns, i.mtime_ns, i.ctime_ns, i.btime_ns, i.next_seq, i.parent,
        i.flags, i.rdev, len(etag), len(ctype), len(extra),
    )
    return b"".join((head, struct.pack(">I", i.generation), etag, ctype, extra, i.target))


_INODE_PERM = struct.Struct(">IIII")  # the head of _INODE: version, mode, uid, gid


def decode_inode_perm(ino: int, b: bytes) -> tuple[int, int, int]:
    """(mode, uid, gid) of an inode record without decoding the rest (a path walk's
    permission check on each directory it passes)."""
    version, mode, uid, gid = _INODE_PERM.unpack_from(b, 0)
    if version != _INODE_VERSION:
        raise ValueError(f"inode {ino}: unknown record version {version}")
    return mode, uid, gid


def decode_inode(ino: int, b: bytes) -> Inode:
    (version, mode, uid, gid, nlink, size, atime, mtime, ctime, btime, next_seq,
     parent, flags, rdev, le, lc, lx) = _INODE.unpack_from(b, 0)
    if version != _INODE_VERSION:
        raise ValueError(f"inode {ino}: unknown record version {version}")
    at = _INODE.size
    (generation,) = struct.unpack_from(">I", b, at)
    at += 4
    etag = b[at:at + le].decode()
    at += le
    ctype = b[at:at + lc].decode()
    at += lc
    # str first: json.loads(bytes) sniffs the encoding in Python, twice the cost of decoding.
    extra = json.loads(str(b[at:at + lx], "utf-8")) if lx else {}
    at += lx
    return Inode(ino, mode, uid, gid, nlink, size, atime, mtime, ctime, btime,
                 next_seq, parent, flags, rdev, generation, etag, ctype, bytes(b[at:]), extra)


# -- dirent ----------------------------------------------------------------------

def encode_dirent(child: int, seq: int) -> bytes:
    return U64U64.pack(child, seq)


def decode_dirent(b: bytes) -> tuple[int, int]:
    child, seq = U64U64.unpack(b)
    return int(child), int(seq)


# -- extents -----------------------------------------------------------------------

_EXT_CHUNK = struct.Struct(">BQII")
_EXT_INLINE = struct.Struct(">BQ")
KIND_CHUNK = 1
KIND_INLINE = 2


@dataclass(frozen=True, slots=True)
class Extent:
    """length bytes of a file at offset: a slice of a chunk, or bytes kept inline."""

    offset: int
    length: int
    chunk_id: int = 0   # 0 for inline
    chunk_off: int = 0
    data: bytes | None = None  # inline bytes

    @property
    def end(self) -> int:
        return self.offset + self.length

    def slice(self, start: int, end: int) -> Extent:
        """The part of this extent covering file bytes [start, end)."""
        assert self.offset <= start < end <= self.end
        d = start - self.offset
        if self.data is not None:
            return Extent(start, end - start, data=self.data[d:d + end - start])
        return Extent(start, end - start, self.chunk_id, self.chunk_off + d)


def encode_extent(e: Extent) -> bytes:
    if e.data is not None:
        return _EXT_INLINE.pack(KIND_INLINE, xxhash.xxh3_64_intdigest(e.data)) + e.data
    return _EXT_CHUNK.pack(KIND_CHUNK, e.chunk_id, e.chunk_off, e.length)


class InlineCorrupt(ValueError):
    pass


def decode_extent(offset: int, b: bytes) -> Extent:
    if b[0] == KIND_INLINE:
        (_, digest) = _EXT_INLINE.unpack_from(b, 0)
        data = bytes(b[_EXT_INLINE.size:])
        if xxhash.xxh3_64_intdigest(data) != digest:
            raise InlineCorrupt(f"inline extent at offset {offset}: checksum mismatch")
        return Extent(offset, len(data), data=data)
    _, chunk_id, chunk_off, length = _EXT_CHUNK.unpack(b)
    return Extent(offset, length, chunk_id, chunk_off)


# -- chunks ------------------------------------------------------------------------

_CHUNK = struct.Struct(">II")


def encode_chunk(refs: int, size: int, sums: bytes) -> bytes:
    return _CHUNK.pack(refs, size) + sums


def decode_chunk(b: bytes) -> tuple[int, int, bytes]:
    refs, size = _CHUNK.unpack_from(b, 0)
    return int(refs), int(size), bytes(b[_CHUNK.size:])


# -- JSON records --------------------------------------------------------------------

def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def decode_json(b: bytes) -> Any:
    return json.loads(str(b, "utf-8"))  # see decode_inode: str first is cheaper
