"""Object operations of the S3 door: put, get/head, delete, copy, tagging,
attributes, multi-delete."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiohttp import web

from .. import body_threads
from ..vfs import FsError, Inode, NoSuchBucket, NotFound, ObjectRead, part_range
from . import xml
from .checksums import checksum_type
from .body import Body, read_small_body
from .buckets import XML, ts, xml_response
from .context import HOST_ID, Ctx
from .errors import S3Error, from_fs_error
from .request import (
    META_PREFIX, XATTR_META, check_conditions, decode_component, http_date, object_encoding,
    parse_int, parse_range, parse_tagging_header, stored_headers, user_metadata,
)

RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
DEFAULT_TYPE = "binary/octet-stream"
MAX_DELETE_BODY = 2 << 20
# Bodies up to this size are read whole and sent with their headers in one write.
SMALL_BODY = 256 << 10
# Bodies from this size on are read and sent by two worker threads (body_threads) when
# the connection and the chunk store allow: starting two threads and their buffers
# costs ~0.2 ms, which a body this large repays many times over.
THREADED_BODY = 8 << 20

log = logging.getLogger(__name__)


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def object_etag(inode: Inode) -> str:
    """The stored ETag, or for a file changed through a mount without a sequential
    MD5, a stable non-MD5 form derived from its identity and change time. A folder
    key (`dir/`) reads as an empty body: its ETag is the MD5 of no bytes, as on S3
    (SDKs such as aws-sdk-java v1 check a PUT's ETag against the body's MD5)."""
    if inode.etag:
        return inode.etag
    if inode.is_dir:
        return EMPTY_MD5
    h = hashlib.md5(f"{inode.ino}:{inode.size}:{inode.mtime_ns}:{inode.ctime_ns}".encode()).hexdigest()
    return f"{h}-0"


def _preconditions_for_write(ctx: Ctx) -> Any:
    if_none = ctx.headers.get("if-none-match")
    if_match = ctx.headers.get("if-match")
    if if_none is None and if_match is None:
        return None
    if if_none is not None and if_none.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on PUT supports only '*'")

    def check(existing: Inode | None) -> None:
        if if_none is not None and existing is not None:
            raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                          Condition="If-None-Match")
        if if_match is not None:
            if existing is None:
                raise S3Error("NoSuchKey", "The specified key does not exist")
            tags = [t.strip().strip('"') for t in if_match.split(",")]
            if "*" not in tags and object_etag(existing) not in tags:
                raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                              Condition="If-Match")
    return check


def _object_extra(ctx: Ctx) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    headers = stored_headers(ctx.headers)
    if headers:
        extra["headers"] = headers
    if "x-amz-tagging" in ctx.headers:
        extra["tags"] = parse_tagging_header(ctx.headers["x-amz-tagging"])
    return extra


def _checksum_headers(inode: Inode) -> dict[str, str]:
    sums = inode.extra.get("checksums", {})
    out = {f"x-amz-checksum-{alg.lower()}": v for alg, v in sums.items()}
    if sums:
        out["x-amz-checksum-type"] = checksum_type(next(iter(sums.values())))
    return out


async def put_object(ctx: Ctx) -> web.StreamResponse:
    body = Body(ctx.request.content, ctx.headers, ctx.verified, idle_timeout=ctx.door.body_timeout)
    inode = await ctx.door.fs.put_object(
        ctx.caller, ctx.bucket, ctx.key, body.pieces(),
        content_type=ctx.headers.get("content-type", ""), extra=_object_extra(ctx),
        xattrs=user_metadata(ctx.headers), precondition=_preconditions_for_write(ctx),
        before_commit=body.verify)
    headers = {"ETag": quote_etag(object_etag(inode)), **_checksum_headers(inode)}
    return web.Response(status=200, headers=headers)


def _object_headers(ctx: Ctx, inode: Inode, xattrs: dict[bytes, bytes], etag: str) -> dict[str, str]:
    h = {
        "ETag": f'"{etag}"',
        "Last-Modified": http_date(inode.mtime_ns),
        "Content-Type": inode.content_type or DEFAULT_TYPE,
        "Accept-Ranges": "bytes",
        # Set here, not after the handler: a streamed body's headers are sent before it returns.
        "x-amz-request-id": ctx.request_id,
        "x-amz-id-2": HOST_ID,
    }
    extra = inode.extra
    if extra:
        for name, value in extra.get("headers", {}).items():
            if name == "content-encoding":
                # Objects stored before aws-chunked was dropped on write still carry it.
                value = object_encoding(value)
                if not value:
                    continue
            h[name.title()] = value
        if extra.get("tags"):
            h["x-amz-tagging-count"] = str(len(extra["tags"]))
    for name, value in xattrs.items():
        if name.startswith(XATTR_META):
            h[META_PREFIX + name[len(XATTR_META):].decode("latin-1")] = value.decode("latin-1")
    return h


async def get_object(ctx: Ctx) -> web.StreamResponse:
    fs = ctx.door.fs
    head = ctx.request.method == "HEAD"
    opened = await fs.get_object(ctx.caller, ctx.bucket, ctx.key)
    inode = opened.inode
    etag = object_etag(inode)
    check_conditions(ctx.headers, etag, inode.mtime_ns)
    headers = _object_headers(ctx, inode, opened.xattrs, etag)
    size = inode.size
    status = 200
    start, end = 0, size
    query = ctx.query
    part = query.get("partNumber")
    if part is not None:
        if "range" in ctx.headers:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
        n = parse_int(part, "partNumber", 1, 1, 10000)
        rng = part_range(inode, n)
        if rng is None:
            raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416)
        start, end = rng
        parts = inode.extra.get("parts")
        if parts:
            headers["x-amz-mp-parts-count"] = str(len(parts))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    elif "range" in ctx.headers:
        rng = parse_range(ctx.headers["range"], size)
        if rng is not None:
            start, end = rng
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    # A full-object checksum describes the whole body only: never on a partial one.
    if status == 200 and ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers.update(_checksum_headers(inode))
    if query and not RESPONSE_OVERRIDES.keys().isdisjoint(query):  # presigned URLs carry a query
        if ctx.anonymous:  # as S3: a public object's headers are its owner's to set
            raise S3Error("InvalidRequest",
                          "Request specific response headers cannot be used for anonymous GET requests.")
        for param, header in RESPONSE_OVERRIDES.items():
            if param in query:
                headers[header] = query[param]
    headers["Content-Length"] = str(end - start)
    if head:
        return web.Response(status=status, headers=headers)
    if end - start <= SMALL_BODY:
        # Headers and body in one write (StreamResponse sends them separately: two
        # syscalls, a third of a 4 KiB GET's server time in the profile).
        body = opened.inline_bytes(start, end)
        if body is None:
            body = b"".join([piece async for piece in opened.stream(start, end)])
        return web.Response(status=status, headers=headers, body=body)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = end - start
    await resp.prepare(ctx.request)
    if end - start >= THREADED_BODY and await _send_from_threads(ctx, opened, start, end):
        await resp.write_eof()
        return resp
    try:
        async for piece in opened.stream(start, end):
            await resp.write(piece)
            del piece  # let the stream recycle its buffer once the socket has sent it
    except FsError as e:
        # Headers are gone already: cut the connection so the client sees a short body.
        log.error("GET /%s/%s: read failed mid-body, connection cut: %s", ctx.bucket, ctx.key, e)
        raise ConnectionResetError(f"read failed mid-body: {e}") from e
    await resp.write_eof()
    return resp


async def _send_from_threads(ctx: Ctx, opened: ObjectRead, start: int, end: int) -> bool:
    """Send the body [start, end) with a reader and a sender thread on the connection's
    socket (gateway/body_threads.py): True once sent; False when this connection or
    store cannot (TLS, a remote chunk store, a client not taking the head), and the
    caller streams it on the loop. A failed read raises ConnectionResetError after
    logging it: the head is gone, so the client must see the connection cut."""
    pieces = opened.blocking_pieces(start, end)
    if pieces is None or not body_threads.has_room():
        return False
    transport = ctx.request.transport
    sock = body_threads.plain_socket(transport)
    if sock is None or not await body_threads.wait_until_flushed(transport):  # type: ignore[arg-type]
        return False
    try:
        return await body_threads.send_body(sock, len(pieces), pieces.read,
                                            buffer_size=pieces.buffer_size)
    except FsError as e:
        log.error("GET /%s/%s: read failed mid-body, connection cut: %s", ctx.bucket, ctx.key, e)
        raise ConnectionResetError(f"read failed mid-body: {e}") from e


async def delete_object(ctx: Ctx) -> web.StreamResponse:
    try:
        await ctx.door.fs.delete_object(ctx.caller, ctx.bucket, ctx.key)
    except NoSuchBucket:
        raise
    except NotFound:
        pass  # deleting a missing key succeeds, as on S3
    return web.Response(status=204)


async def delete_objects(ctx: Ctx) -> web.StreamResponse:
    raw = await read_small_body(ctx.request.content, ctx.headers, ctx.verified, MAX_DELETE_BODY, "Delete")
    try:
        quiet, keys = xml.parse_delete(raw)
    except xml.XmlError as e:
        raise S3Error(e.code, e.message) from e
    await ctx.door.fs.head_bucket(ctx.caller, ctx.bucket)
    deleted: list[str] = []
    errors: list[tuple[str, str, str]] = []
    for key, _version in keys:
        if not key:
            errors.append((key, "UserKeyMustBeSpecified", "The key must not be empty"))
            continue
        try:
            await ctx.door.fs.delete_object(ctx.caller, ctx.bucket, key)
            deleted.append(key)
        except NotFound:
            deleted.append(key)
        except FsError as e:
            err = from_fs_error(e)
            errors.append((key, err.code, err.message))
    return xml_response(xml.delete_result([] if quiet else deleted, errors, ctx.query.get("encoding-type")))


def parse_copy_source(value: str) -> tuple[str, str]:
    src = value.split("?", 1)
    if len(src) == 2 and src[1] and src[1] != "versionId=null":
        raise S3Error("NotImplemented", "Versioned copy sources are not supported")
    path = decode_component(src[0], "copy source").lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
    return bucket, key


async def copy_object(ctx: Ctx) -> web.StreamResponse:
    src_bucket, src_key = parse_copy_source(ctx.headers["x-amz-copy-source"])
    directive = ctx.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    tag_directive = ctx.headers.get("x-amz-tagging-directive", "COPY").upper()

    def source_ok(src: Inode | None) -> None:
        assert src is not None
        check_conditions(ctx.headers, object_etag(src), src.mtime_ns, prefix="x-amz-copy-source-")

    kwargs: dict[str, Any] = {}
    if directive == "REPLACE":
        extra = _object_extra(ctx)
        kwargs = {"content_type": ctx.headers.get("content-type", ""),
                  "extra": extra, "xattrs": user_metadata(ctx.headers)}
    elif tag_directive == "REPLACE":
        raise S3Error("NotImplemented", "x-amz-tagging-directive REPLACE needs metadata directive REPLACE")
    same = (src_bucket, src_key) == (ctx.bucket, ctx.key)
    if same and directive == "COPY":
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object "
                      "to itself without changing the object's metadata, storage class, website redirect "
                      "location or encryption attributes.")
    inode = await ctx.door.fs.copy_object(ctx.caller, src_bucket, src_key, ctx.bucket, ctx.key,
                                          precondition=source_ok, **kwargs)
    body = xml.copy_object_result(object_etag(inode), ts(inode.mtime_ns),
                                  inode.extra.get("checksums", {}))
    return xml_response(body)


async def put_tagging(ctx: Ctx) -> web.StreamResponse:
    raw = await read_small_body(ctx.request.content, ctx.headers, ctx.verified, 64 * 1024, "Tagging")
    try:
        tags = xml.parse_tagging(raw)
    except xml.XmlError as e:
        raise S3Error(e.code, e.message) from e
    await ctx.door.fs.set_object_extra(ctx.caller, ctx.bucket, ctx.key, "tags", [list(t) for t in tags])
    return web.Response(status=200)


async def get_tagging(ctx: Ctx) -> web.StreamResponse:
    inode = await ctx.door.fs.stat_object(ctx.caller, ctx.bucket, ctx.key)
    return xml_response(xml.tagging([tuple(t) for t in inode.extra.get("tags", [])]))


async def delete_tagging(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.set_object_extra(ctx.caller, ctx.bucket, ctx.key, "tags", None)
    return web.Response(status=204)


async def get_attributes(ctx: Ctx) -> web.StreamResponse:
    wanted = {a.strip() for a in ctx.headers.get("x-amz-object-attributes", "").split(",") if a.strip()}
    if not wanted:
        raise S3Error("InvalidArgument", "x-amz-object-attributes header specifying the attributes to be "
                      "retrieved is either missing or empty")
    max_parts = parse_int(ctx.headers.get("x-amz-max-parts"), "x-amz-max-parts", 1000, 0, 1000)
    marker = parse_int(ctx.headers.get("x-amz-part-number-marker"), "x-amz-part-number-marker",
                       0, 0, 10000)
    inode = await ctx.door.fs.stat_object(ctx.caller, ctx.bucket, ctx.key)
    check_conditions(ctx.headers, object_etag(inode), inode.mtime_ns)
    parts = inode.extra.get("parts")
    sums = inode.extra.get("checksums", {})
    page: dict[str, Any] = {}
    if parts and "ObjectParts" in wanted:
        page["parts_count"] = len(parts)
        # S3 lists the parts one by one only when they carry checksums; their numbers
        # are the object's (1..N, as GET ?partNumber= counts them).
        per_part = inode.extra.get("part_checksums") or {}
        if per_part:
            alg, values = next(iter(per_part.items()))
            chosen = list(range(marker, min(len(parts), marker + max_parts)))
            page.update(
                parts=[xml.PartEntry(i + 1, None, "", parts[i], {alg: values[i]}) for i in chosen],
                part_number_marker=marker,
                next_part_number_marker=chosen[-1] + 1 if chosen else marker,
                max_parts=max_parts, is_truncated=marker + max_parts < len(parts))
    body = xml.get_object_attributes(
        etag=object_etag(inode) if "ETag" in wanted else None,
        size=inode.size if "ObjectSize" in wanted else None,
        storage_class="STANDARD" if "StorageClass" in wanted else None,
        checksums=sums if "Checksum" in wanted else None,
        checksum_type=checksum_type(next(iter(sums.values()))) if sums and "Checksum" in wanted else None,
        **page)
    return web.Response(status=200, body=body, content_type=XML,
                        headers={"Last-Modified": http_date(inode.mtime_ns)})

