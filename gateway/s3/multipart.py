"""Multipart upload operations of the S3 door."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from aiohttp import web

from ..vfs import Inode
from . import checksums as checksums_mod
from . import xml
from .body import Body, read_small_body
from .buckets import encoding_type, ts, xml_response
from .context import Ctx
from .crc_combine import CRC_WIDTH, combine_all
from .errors import S3Error
from .objects import (
    _object_extra, _preconditions_for_write, object_etag, parse_copy_source, quote_etag,
)
from .request import check_conditions, parse_int, user_metadata

MAX_COMPLETE_BODY = 4 << 20  # 10,000 parts with checksums fit comfortably
MAX_PART_SIZE = 5 << 30


def _part_number(ctx: Ctx) -> int:
    n = parse_int(ctx.query.get("partNumber"), "partNumber", 0, 1)
    if not 1 <= n <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
    return n


def _upload_id(ctx: Ctx) -> str:
    uid = ctx.query.get("uploadId", "")
    if not uid:
        raise S3Error("InvalidArgument", "uploadId must not be empty")
    return uid


def _checksum_choice(ctx: Ctx) -> tuple[str, str]:
    """(algorithm, type) an upload asks for: ("", "") for none.

    As S3: CRC64NVME exists only as FULL_OBJECT and is that by default; the other CRCs
    default to COMPOSITE and may ask for FULL_OBJECT; SHA-1/SHA-256 cannot be combined,
    so they are COMPOSITE only."""
    alg = (ctx.headers.get("x-amz-checksum-algorithm") or "").strip().upper()
    kind = (ctx.headers.get("x-amz-checksum-type") or "").strip().upper()
    if alg and alg not in checksums_mod.ALGORITHMS:
        raise S3Error("InvalidRequest", f"Checksum algorithm {alg!r} is not supported")
    if kind and kind not in ("COMPOSITE", "FULL_OBJECT"):
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid")
    if kind and not alg:
        raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used "
                      "with the x-amz-checksum-algorithm header")
    if not alg:
        return "", ""
    kind = kind or ("FULL_OBJECT" if alg == "CRC64NVME" else "COMPOSITE")
    if kind == "FULL_OBJECT" and alg not in CRC_WIDTH:
        raise S3Error("InvalidRequest", f"The FULL_OBJECT checksum type cannot be used with the "
                      f"{alg.lower()} checksum algorithm")
    if kind == "COMPOSITE" and alg == "CRC64NVME":
        raise S3Error("InvalidRequest", "The COMPOSITE checksum type cannot be used with the "
                      "crc64nvme checksum algorithm")
    return alg, kind


async def create(ctx: Ctx) -> web.StreamResponse:
    extra = _object_extra(ctx)
    alg, kind = _checksum_choice(ctx)
    if alg:
        extra["checksum_algorithm"] = alg
        extra["checksum_type"] = kind
    upload_id = await ctx.door.fs.create_upload(
        ctx.caller, ctx.bucket, ctx.key, content_type=ctx.headers.get("content-type", ""),
        extra=extra, xattrs=user_metadata(ctx.headers))
    headers = {"x-amz-checksum-algorithm": alg, "x-amz-checksum-type": kind} if alg else {}
    return web.Response(status=200, body=xml.initiate_multipart(ctx.bucket, ctx.key, upload_id),
                        content_type="application/xml", headers=headers)


async def upload_part(ctx: Ctx) -> web.StreamResponse:
    number = _part_number(ctx)
    body = Body(ctx.request.content, ctx.headers, ctx.verified, max_size=MAX_PART_SIZE,
                idle_timeout=ctx.door.body_timeout)

    def verify(size: int, md5: str) -> dict[str, Any]:
        return body.verify(size, md5)

    part = await ctx.door.fs.upload_part(ctx.caller, ctx.bucket, ctx.key, _upload_id(ctx), number,
                                         body.pieces(), before_commit=verify)
    headers = {"ETag": quote_etag(part.etag)}
    headers.update({f"x-amz-checksum-{a.lower()}": v for a, v in part.checksums.items()})
    return web.Response(status=200, headers=headers)


def _copy_range(value: str | None) -> tuple[int, int | None]:
    if not value:
        return 0, None
    unit, _, spec = value.partition("=")
    first, dash, last = spec.partition("-")
    try:
        if unit != "bytes" or not dash:
            raise ValueError
        start, end = int(first), int(last) + 1
        if start < 0 or end <= start:
            raise ValueError
    except ValueError:
        raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                      "bytes=first-last where first and last are the zero-based offsets of the first "
                      "and last bytes to copy") from None
    return start, end


async def upload_part_copy(ctx: Ctx) -> web.StreamResponse:
    number = _part_number(ctx)
    src_bucket, src_key = parse_copy_source(ctx.headers["x-amz-copy-source"])
    start, end = _copy_range(ctx.headers.get("x-amz-copy-source-range"))

    def source_ok(src: Inode | None) -> None:
        assert src is not None
        check_conditions(ctx.headers, object_etag(src), src.mtime_ns, prefix="x-amz-copy-source-")
        if end is not None and end > src.size:
            # S3's answer here (not InvalidRange/416, which a GET's Range gets).
            raise S3Error("InvalidArgument",
                          f"Range specified is not valid for source object of size: {src.size}",
                          ArgumentName="x-amz-copy-source-range")

    part = await ctx.door.fs.upload_part_copy(ctx.caller, ctx.bucket, ctx.key, _upload_id(ctx), number,
                                              src_bucket, src_key, start, end, precondition=source_ok)
    return xml_response(xml.copy_part_result(part.etag, ts(part.mtime_ns)))


async def complete(ctx: Ctx) -> web.StreamResponse:
    raw = await read_small_body(ctx.request.content, ctx.headers, ctx.verified, MAX_COMPLETE_BODY,
                                "CompleteMultipartUpload", checksum_headers=False)
    try:
        parts = xml.parse_complete_multipart(raw)
    except xml.XmlError as e:
        raise S3Error(e.code, e.message) from e

    def check_part(number: int, rec: dict[str, Any]) -> None:
        sent = next((p for p in parts if p.part_number == number), None)
        stored = rec.get("checksums", {})
        if sent is not None:
            for alg, value in sent.checksums.items():
                if stored.get(alg) not in (None, value):
                    raise S3Error("InvalidPart", f"The {alg} checksum of part {number} does not match")

    expected_size = ctx.headers.get("x-amz-mp-object-size")
    sent_sums = {alg: ctx.headers[h] for alg, h in checksums_mod.HEADER.items() if h in ctx.headers}

    def summarize(upload_extra: dict[str, Any], recs: list[dict[str, Any]]) -> dict[str, Any]:
        if expected_size is not None and expected_size.strip() != str(sum(r["size"] for r in recs)):
            raise S3Error("InvalidRequest", "The provided x-amz-mp-object-size header value "
                          f"{expected_size!r} does not match the object's size")
        out = _object_checksum(upload_extra, recs)
        for alg, value in sent_sums.items():
            have = out.get("checksums", {}).get(alg)
            if have is None:
                raise S3Error("InvalidRequest", f"The upload does not carry a {alg} checksum "
                              "to compare the x-amz-checksum header with")
            if value.strip() != have:
                raise S3Error("BadDigest", f"The {alg} you specified did not match the calculated "
                              "checksum of the object")
        return out

    inode = await ctx.door.fs.complete_upload(
        ctx.caller, ctx.bucket, ctx.key, _upload_id(ctx), [(p.part_number, p.etag) for p in parts],
        min_part_size=ctx.door.min_part_size, precondition=_preconditions_for_write(ctx),
        check_part=check_part, summarize=summarize)
    location = f"/{ctx.bucket}/{urllib.parse.quote(ctx.key)}"
    sums = inode.extra.get("checksums", {})
    return xml_response(xml.complete_multipart_result(
        location, ctx.bucket, ctx.key, object_etag(inode), sums,
        checksums_mod.checksum_type(next(iter(sums.values()))) if sums else None))


def _object_checksum(upload_extra: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The object's checksum when the upload named an algorithm and every part carries a
    checksum of it (S3 refuses the parts otherwise; we store none then): COMPOSITE (a
    checksum of the part checksums, "-N") or FULL_OBJECT (the part CRCs combined into
    the CRC of the whole object, as if it had been one PUT)."""
    alg = upload_extra.get("checksum_algorithm")
    values = [p.get("checksums", {}).get(alg) for p in parts]
    if not alg or any(v is None for v in values):
        return {}
    # Kept for GetObjectAttributes' ObjectParts, which lists them part by part.
    per_part = {"part_checksums": {alg: values}}
    if upload_extra.get("checksum_type") != "FULL_OBJECT":
        return {"checksums": {alg: checksums_mod.composite(alg, values)}, **per_part}
    crc = combine_all(alg, [(int.from_bytes(base64.b64decode(v), "big"), p["size"])
                            for v, p in zip(values, parts)])
    raw = crc.to_bytes(CRC_WIDTH[alg] // 8, "big")
    return {"checksums": {alg: base64.b64encode(raw).decode("ascii")}, **per_part}


async def abort(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.abort_upload(ctx.caller, ctx.bucket, ctx.key, _upload_id(ctx))
    return web.Response(status=204)


async def list_parts(ctx: Ctx) -> web.StreamResponse:
    marker = parse_int(ctx.query.get("part-number-marker"), "part-number-marker", 0, 0)
    max_parts = parse_int(ctx.query.get("max-parts"), "max-parts", 1000, 0, 1000)
    up, parts, truncated = await ctx.door.fs.list_parts(ctx.caller, ctx.bucket, ctx.key,
                                                        _upload_id(ctx), marker, max_parts)
    entries = [xml.PartEntry(p.number, ts(p.mtime_ns), p.etag, p.size, p.checksums) for p in parts]
    body = xml.list_parts(
        bucket=ctx.bucket, key=ctx.key, upload_id=up.upload_id, part_number_marker=marker,
        next_part_number_marker=parts[-1].number if parts else marker, max_parts=max_parts,
        is_truncated=truncated, parts=entries, owner_id=str(up.uid), initiator_id=str(up.uid),
        storage_class="STANDARD")
    return xml_response(body)


async def list_uploads(ctx: Ctx) -> web.StreamResponse:
    q = ctx.query
    max_uploads = parse_int(q.get("max-uploads"), "max-uploads", 1000, 0, 1000)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    key_marker, id_marker = q.get("key-marker", ""), q.get("upload-id-marker", "")
    uploads, prefixes, truncated = await ctx.door.fs.list_uploads(
        ctx.caller, ctx.bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        upload_id_marker=id_marker, max_uploads=max_uploads)
    entries = [xml.UploadEntry(u.key, u.upload_id, ts(u.initiated_ns), str(u.uid)) for u in uploads]
    body = xml.list_multipart_uploads(
        bucket=ctx.bucket, key_marker=key_marker, upload_id_marker=id_marker,
        next_key_marker=uploads[-1].key if truncated and uploads else None,
        next_upload_id_marker=uploads[-1].upload_id if truncated and uploads else None,
        prefix=prefix, delimiter=delimiter, max_uploads=max_uploads, is_truncated=truncated,
        uploads=entries, common_prefixes=prefixes, encoding_type=encoding_type(ctx))
    return xml_response(body)
