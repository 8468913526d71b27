"""Multipart uploads: parts are stored as durable chunks owned by the upload;
completion moves their extents into the new object in one transaction and copies
no bytes; abort frees them.

The object's ETag is the MD5 of the concatenated binary part MD5s, plus "-N"
(what every S3 client expects). Part sizes are kept in the inode's extra as
"parts" so that GET ?partNumber=N and GetObjectAttributes can answer.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from metadata import Extent, Inode, Txn
from metadata import namespace as ns

from . import data
from .errors import AccessDenied, Invalid, InvalidKey, NotFound
from .keys import split_key
from .objects import OBJECT_MODE, BeforeCommit, KeyConflict, ObjectOps, Precondition, _name
from .perms import Caller


MIN_PART_SIZE = 5 << 20    # S3's minimum for every part but the last
MAX_PART_NUMBER = 10000
MAX_PARTS = 10000


class NoSuchUpload(NotFound):
    pass


class InvalidPart(Invalid):
    pass


class InvalidPartOrder(Invalid):
    pass


class EntityTooSmall(Invalid):
    pass


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    uid: int
    gid: int
    initiated_ns: int
    content_type: str
    extra: dict[str, Any]
    xattrs: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    size: int
    etag: str          # MD5 hex
    mtime_ns: int
    checksums: dict[str, str]


def _upload_key(bucket: str, key: str, upload_id: str) -> bytes:
    return b"\x00".join((bucket.encode(), key.encode("utf-8", "surrogateescape"), upload_id.encode()))


def _decode_upload(upload_id: str, rec: dict[str, Any]) -> Upload:
    return Upload(upload_id, rec["bucket"], rec["key"], rec["uid"], rec["gid"], rec["initiated"],
                  rec.get("content_type", ""), rec.get("extra", {}),
                  {bytes.fromhex(k): bytes.fromhex(v) for k, v in rec.get("xattrs", {}).items()})


def _part(number: int, rec: dict[str, Any]) -> Part:
    return Part(number, rec["size"], rec["etag"], rec["mtime"], rec.get("checksums", {}))


def multipart_etag(part_md5s: list[str]) -> str:
    digest = hashlib.md5(b"".join(binascii.unhexlify(m) for m in part_md5s)).hexdigest()
    return f"{digest}-{len(part_md5s)}"


class MultipartOps(ObjectOps):
    """Multipart uploads, on top of the object half."""

    def _upload(self, txn: Txn, caller: Caller, bucket: str, key: str,
                upload_id: str) -> Upload:
        rec = ns.get_upload(txn, upload_id.encode())
        if rec is None or rec["bucket"] != bucket or rec["key"] != key:
            raise NoSuchUpload("no such upload")
        up = _decode_upload(upload_id, rec)  # type: ignore[arg-type]
        if not caller.is_root and caller.uid != up.uid:
            raise AccessDenied("the upload belongs to another user")
        return up

    async def create_upload(self, caller: Caller, bucket: str, key: str, *,
                            content_type: str = "", extra: dict[str, Any] | None = None,
                            xattrs: dict[bytes, bytes] | None = None) -> str:
        segs, is_dir = split_key(key)
        if is_dir:
            raise InvalidKey("a key ending in '/' names a folder, not an object")
        upload_id = secrets.token_urlsafe(24)
        now = time.time_ns()

        def op(txn: Txn) -> None:
            self._precheck(txn, caller, bucket, segs)
            ns.put_upload(txn, upload_id.encode(), {
                "bucket": bucket, "key": key, "uid": caller.uid, "gid": caller.gid,
                "initiated": now, "content_type": content_type, "extra": extra or {},
                "xattrs": {k.hex(): v.hex() for k, v in (xattrs or {}).items()},
            })
            txn.put("uploadkey", _upload_key(bucket, key, upload_id), b"")

        await self._write(op)
        return upload_id

    async def _store_part(self, caller: Caller, bucket: str, key: str, upload_id: str,
                          number: int, written: data.Written, size: int, md5: str,
                          extra: dict[str, Any]) -> Part:
        now = time.time_ns()

        def op(txn: Txn) -> Part:
            self._upload(txn, caller, bucket, key, upload_id)
            written.register(txn)
            rec = {"size": size, "etag": md5, "mtime": now, **extra}
            ns.put_part(txn, upload_id.encode(), number, written.extents, rec, now)
            written.unreferenced(txn, now)
            return _part(number, rec)

        try:
            return await self._write(op)
        except BaseException:
            await data.discard(self.chunks, written)
            raise

    async def upload_part(self, caller: Caller, bucket: str, key: str, upload_id: str,
                          number: int, body: AsyncIterator[bytes], *,
                          before_commit: BeforeCommit | None = None) -> Part:
        if not 1 <= number <= MAX_PART_NUMBER:
            raise Invalid(f"part number must be 1..{MAX_PART_NUMBER}")
        self._read(lambda txn: self._upload(txn, caller, bucket, key, upload_id))
        written, size, md5 = await data.store_stream(self.chunks, self.ids, self.chunk_size,
                                                     body)
        try:
            extra = (before_commit(size, md5) or {}) if before_commit else {}
        except BaseException:
            await data.discard(self.chunks, written)
            raise
        return await self._store_part(caller, bucket, key, upload_id, number, written, size, md5, extra)

    async def upload_part_copy(self, caller: Caller, bucket: str, key: str,
                               upload_id: str, number: int, src_bucket: str, src_key: str,
                               start: int = 0, end: int | None = None,
                               precondition: Precondition | None = None) -> Part:
        """A part made of a source object's bytes [start, end): shares its chunks."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise Invalid(f"part number must be 1..{MAX_PART_NUMBER}")
        now = time.time_ns()

        def snapshot(txn: Txn) -> tuple[Inode, list[Extent], data.ReadPlan]:
            self._upload(txn, caller, bucket, key, upload_id)
            src = self.readable_object(txn, caller, src_bucket, src_key)
            if precondition is not None:
                precondition(src)
            stop = src.size if end is None else end
            if start < 0 or stop > src.size or start > stop:
                raise Invalid("the copy range is outside the source object")
            exts = ns.extents(txn, src.ino, start, stop)
            return src, exts, data.plan(txn, src.ino, src.size, start, stop)

        src, exts, plan = self._read(snapshot)
        stop = src.size if end is None else end
        whole = start == 0 and stop == src.size
        if whole and src.etag and "-" not in src.etag:
            md5 = src.etag
        else:
            # The part's ETag is the MD5 of its bytes: read them (no bytes are written).
            h = hashlib.md5()
            async for piece in data.stream(self.chunks, plan, start, stop):
                await asyncio.to_thread(h.update, piece) if len(piece) > 65536 else h.update(piece)
            md5 = h.hexdigest()
        shifted = [Extent(e.offset - start, e.length, e.chunk_id, e.chunk_off, e.data) for e in exts]

        def op(txn: Txn) -> Part:
            self._upload(txn, caller, bucket, key, upload_id)
            for e in shifted:  # the source may have been deleted meanwhile
                if e.chunk_id and ns.get_chunk(txn, e.chunk_id) is None:
                    raise NotFound("the source object changed during the copy")
            rec = {"size": stop - start, "etag": md5, "mtime": now}
            ns.put_part(txn, upload_id.encode(), number, shifted, rec, now)
            return _part(number, rec)

        return await self._write(op)

    async def complete_upload(self, caller: Caller, bucket: str, key: str,
                              upload_id: str, parts: list[tuple[int, str]], *,
                              min_part_size: int = MIN_PART_SIZE,
                              precondition: Precondition | None = None,
                              check_part: Callable[[int, dict[str, Any]], None] | None = None,
                              summarize: Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
                              | None = None,
                              ) -> Inode:
        """Assemble the listed parts (ascending numbers, matching MD5 ETags) into key.
        ``summarize(upload_extra, part_records)`` returns further extra fields of the
        object (the door's composite checksums)."""
        if not parts:
            raise Invalid("no parts given")
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder("parts must be listed in ascending order, each once")
        segs, _ = split_key(key)
        now = time.time_ns()

        def op(txn: Txn) -> Inode:
            up = self._upload(txn, caller, bucket, key, upload_id)
            stored = {n: (rec, exts) for n, rec, exts in ns.parts(txn, upload_id.encode())}
            exts_out: list[Extent] = []
            sizes: list[int] = []
            md5s: list[str] = []
            recs: list[dict[str, Any]] = []
            offset = 0
            for i, (n, etag) in enumerate(parts):
                got = stored.get(n)
                if got is None or got[0]["etag"] != etag.strip('"').lower():
                    raise InvalidPart(f"part {n} was not uploaded or its ETag does not match")
                rec, exts = got
                if check_part is not None:
                    check_part(n, rec)
                if rec["size"] < min_part_size and i < len(parts) - 1:
                    raise EntityTooSmall(f"part {n} is smaller than the {min_part_size} byte minimum")
                exts_out += [Extent(offset + e.offset, e.length, e.chunk_id, e.chunk_off, e.data)
                             for e in exts]
                sizes.append(rec["size"])
                md5s.append(rec["etag"])
                recs.append(rec)
                offset += rec["size"]
            parent = self._make_parents(txn, caller, bucket, segs[:-1], now)
            name = segs[-1]
            found = ns.lookup(txn, parent.ino, name)
            old = self._inode(txn, found[0]) if found else None
            if old is not None and old.is_dir:
                raise KeyConflict(f"a folder exists at key {_name(b'/'.join(segs))!r}")
            if precondition is not None:
                precondition(old)
            ino = ns.alloc_ino(txn)
            node = Inode(ino, OBJECT_MODE, up.uid, self._new_gid(caller, parent), size=offset,
                         atime_ns=now, mtime_ns=now, ctime_ns=now, btime_ns=now,
                         parent=parent.ino, etag=multipart_etag(md5s),
                         content_type=up.content_type,
                         extra={**up.extra, "parts": sizes,
                                **(summarize(up.extra, recs) if summarize is not None else {})})
            # The object takes its own references before the upload drops the parts'.
            self._install(txn, parent, name, found, old, node, exts_out, up.xattrs, now)
            ns.drop_upload(txn, upload_id.encode(), now)
            txn.delete("uploadkey", _upload_key(bucket, key, upload_id))
            return node

        return await self._write(op)

    async def abort_upload(self, caller: Caller, bucket: str, key: str,
                           upload_id: str) -> None:
        now = time.time_ns()

        def op(txn: Txn) -> None:
            self._upload(txn, caller, bucket, key, upload_id)
            ns.drop_upload(txn, upload_id.encode(), now)
            txn.delete("uploadkey", _upload_key(bucket, key, upload_id))

        await self._write(op)

    async def list_parts(self, caller: Caller, bucket: str, key: str, upload_id: str,
                         after: int = 0, max_parts: int = 1000) -> tuple[Upload, list[Part], bool]:
        def op(txn: Txn) -> tuple[Upload, list[Part], bool]:
            up = self._upload(txn, caller, bucket, key, upload_id)
            out: list[Part] = []
            for n, rec, _ in ns.parts(txn, upload_id.encode(), after):
                if len(out) >= max_parts:
                    return up, out, True
                out.append(_part(n, rec))
            return up, out, False
        return self._read(op)

    async def list_uploads(self, caller: Caller, bucket: str, *, prefix: str = "",
                           delimiter: str = "", key_marker: str = "", upload_id_marker: str = "",
                           max_uploads: int = 1000) -> tuple[list[Upload], list[str], bool]:
        """In-progress uploads in (key, upload id) order, after the markers."""
        def op(txn: Txn) -> tuple[list[Upload], list[str], bool]:
            b = self._bucket(txn, bucket)
            from .perms import R, X, check
            check(caller, b, R | X)
            base = bucket.encode() + b"\x00"
            start = base + prefix.encode()
            if key_marker:
                mk = key_marker.encode()
                start = max(start, base + mk + b"\x00" + (upload_id_marker.encode() + b"\x01"
                                                          if upload_id_marker else b"\xff"))
            uploads: list[Upload] = []
            prefixes: list[str] = []
            for k, _ in txn.range("uploadkey", start):
                if not k.startswith(base):
                    break
                _, key_b, uid_b = k.split(b"\x00")
                key = key_b.decode("utf-8", "surrogateescape")
                if not key.startswith(prefix):
                    break
                if len(uploads) + len(prefixes) >= max_uploads:
                    return uploads, prefixes, True
                if delimiter and delimiter in key[len(prefix):]:
                    rel = key[len(prefix):]
                    cp = prefix + rel[:rel.index(delimiter) + len(delimiter)]
                    if cp not in prefixes and cp > key_marker:
                        prefixes.append(cp)
                    continue
                rec = ns.get_upload(txn, uid_b)
                if rec is not None:
                    uploads.append(_decode_upload(uid_b.decode(), rec))  # type: ignore[arg-type]
            return uploads, prefixes, False
        return self._read(op)

    def readable_object(self, txn: Txn, caller: Caller, bucket: str, key: str) -> Inode:
        from .perms import R, check
        src = self._object(txn, caller, bucket, key)[0]
        check(caller, src, R)
        if src.is_dir:
            raise InvalidKey("a folder key has no bytes")
        return src


def part_range(inode: Inode, number: int) -> tuple[int, int] | None:
    """Byte range of part `number` of a multipart object (None: no such part).
    A single-part object has one part, the whole body."""
    sizes = inode.extra.get("parts") or [inode.size]
    if not 1 <= number <= len(sizes):
        return None
    start = sum(sizes[:number - 1])
    return start, start + sizes[number - 1]
