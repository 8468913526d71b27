"""Service and bucket operations: list/create/delete/head buckets, location,
versioning, and object listings (v1 and v2)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone

from aiohttp import web

from ..vfs import Exists, Inode, ListPage
from . import xml
from .body import read_small_body
from .context import Ctx
from .errors import S3Error
from .request import parse_int

XML = "application/xml"
MAX_KEYS = 1000
# S3-created buckets are private: only their owner (and root) reach them through
# any door. `samebytes bucket public NAME` opens them for anonymous reads.
BUCKET_MODE = 0o700


def ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc)


def xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=XML)


def key_str(key: bytes) -> str:
    # Keys written through S3 are UTF-8; names made on a mount may not be.
    return key.decode("utf-8", "replace")


def owner_of(ctx: Ctx, inode: Inode) -> tuple[str, str]:
    return str(inode.uid), ("root" if inode.uid == 0 else f"uid-{inode.uid}")


async def list_buckets(ctx: Ctx) -> web.StreamResponse:
    buckets = await ctx.door.fs.list_buckets(ctx.caller)
    oid, oname = str(ctx.caller.uid), "root" if ctx.caller.is_root else f"uid-{ctx.caller.uid}"
    return xml_response(xml.list_buckets(oid, oname, [(n, ts(i.btime_ns)) for n, i in buckets]))


async def create_bucket(ctx: Ctx) -> web.StreamResponse:
    body = await read_small_body(ctx.request.content, ctx.headers, ctx.verified, 64 * 1024,
                                 "CreateBucketConfiguration")
    try:
        location = xml.parse_create_bucket(body)
    except xml.XmlError as e:
        raise S3Error(e.code, e.message) from e
    if location not in (None, "", ctx.door.region):
        raise S3Error("IllegalLocationConstraintException",
                      f"The {location} location constraint is incompatible for the region specific "
                      f"endpoint this request was sent to ({ctx.door.region}).")
    try:
        await ctx.door.fs.create_bucket(ctx.caller, ctx.bucket, mode=BUCKET_MODE)
    except Exists:
        mine = False
        try:
            mine = (await ctx.door.fs.head_bucket(ctx.caller, ctx.bucket)).uid == ctx.caller.uid
        except Exception:
            pass
        if mine:
            raise S3Error("BucketAlreadyOwnedByYou",
                          "Your previous request to create the named bucket succeeded and you already own it.")
        raise S3Error("BucketAlreadyExists", "The requested bucket name is not available.") from None
    return web.Response(status=200, headers={"Location": "/" + ctx.bucket})


async def delete_bucket(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.delete_bucket(ctx.caller, ctx.bucket)
    return web.Response(status=204)


async def head_bucket(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.head_bucket(ctx.caller, ctx.bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.door.region})


async def get_location(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.head_bucket(ctx.caller, ctx.bucket)
    region = ctx.door.region
    return xml_response(xml.location(None if region == "us-east-1" else region))


async def get_versioning(ctx: Ctx) -> web.StreamResponse:
    await ctx.door.fs.head_bucket(ctx.caller, ctx.bucket)
    return xml_response(xml.versioning())


def encoding_type(ctx: Ctx) -> str | None:
    enc = ctx.query.get("encoding-type")
    if enc not in (None, "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return enc


def _entries(ctx: Ctx, page: ListPage, fetch_owner: bool) -> list[xml.ObjectEntry]:
    from .objects import object_etag  # objects imports this module
    out = []
    entry = xml.ObjectEntry
    oid = oname = alg = None
    for key, inode in page.keys:
        if fetch_owner:
            oid, oname = owner_of(ctx, inode)
        sums = inode.extra.get("checksums") if inode.extra else None
        alg = next(iter(sums)) if sums else None
        try:
            name = key.decode()
        except UnicodeDecodeError:
            name = key_str(key)
        out.append(entry(name, inode.mtime_ns, object_etag(inode),
                         0 if inode.mode & 0o170000 == 0o040000 else inode.size,
                         "STANDARD", oid, oname, alg))
    return out


async def _page(ctx: Ctx, prefix: str, delimiter: str, after: str | None, max_keys: int) -> ListPage:
    if max_keys == 0:
        return ListPage()
    return await ctx.door.fs.list_objects(ctx.caller, ctx.bucket, prefix=prefix,
                                          delimiter=delimiter or None, after=after or None,
                                          max_keys=max_keys)


async def list_objects_v1(ctx: Ctx) -> web.StreamResponse:
    q = ctx.query
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    max_keys = parse_int(q.get("max-keys"), "max-keys", MAX_KEYS, 0, MAX_KEYS)
    enc = encoding_type(ctx)
    page = await _page(ctx, prefix, delimiter, marker, max_keys)
    next_marker = key_str(page.next_marker) if page.truncated and delimiter and page.next_marker else None
    body = xml.list_objects_v1(
        bucket=ctx.bucket, prefix=prefix, marker=marker, delimiter=delimiter, max_keys=max_keys,
        is_truncated=page.truncated, next_marker=next_marker,
        contents=_entries(ctx, page, True), common_prefixes=[key_str(p) for p in page.prefixes],
        encoding_type=enc)
    return xml_response(body)


def _token(marker: bytes) -> str:
    return base64.urlsafe_b64encode(marker).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None


async def list_objects_v2(ctx: Ctx) -> web.StreamResponse:
    q = ctx.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    max_keys = parse_int(q.get("max-keys"), "max-keys", MAX_KEYS, 0, MAX_KEYS)
    token = q.get("continuation-token")
    start_after = q.get("start-after")
    after = _untoken(token) if token else start_after
    enc = encoding_type(ctx)
    page = await _page(ctx, prefix, delimiter, after, max_keys)
    body = xml.list_objects_v2(
        bucket=ctx.bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
        is_truncated=page.truncated, key_count=len(page.keys) + len(page.prefixes),
        continuation_token=token,
        next_continuation_token=_token(page.next_marker) if page.truncated and page.next_marker else None,
        start_after=start_after, contents=_entries(ctx, page, q.get("fetch-owner") == "true"),
        common_prefixes=[key_str(p) for p in page.prefixes], encoding_type=enc,
        fetch_owner=q.get("fetch-owner") == "true")
    return xml_response(body)
