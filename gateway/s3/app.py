"""The S3 door: one aiohttp handler that authenticates, routes by method, target
and sub-resource, and renders every failure as an S3 XML error.

Doors are thin: handlers decode the request, call the vfs, encode the answer.
vfs errors become S3 errors in one place (`errors.from_fs_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..vfs import Caller, Filesystem, FsError, MIN_PART_SIZE
from . import sigv4, xml
from .context import HOST_ID, Ctx, build_ctx, new_request_id, now
from .errors import S3Error, from_fs_error

log = logging.getLogger(__name__)

Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]

# Operations an anonymous caller may perform on a public bucket (read-only).
ANONYMOUS_READS = {"GetObject", "HeadObject", "ListObjects", "ListObjectsV2", "HeadBucket",
                   "GetBucketLocation"}

# Sub-resources we answer "not configured" for, so SDK probes get AWS's answer.
NOT_CONFIGURED = {
    "policy": "NoSuchBucketPolicy",
    "cors": "NoSuchCORSConfiguration",
    "lifecycle": "NoSuchLifecycleConfiguration",
    "website": "NoSuchWebsiteConfiguration",
    "encryption": "ServerSideEncryptionConfigurationNotFoundError",
    "object-lock": "ObjectLockConfigurationNotFoundError",
}


class S3Door:
    def __init__(self, fs: Filesystem, *, region: str = "us-east-1", domain: str | None = None,
                 min_part_size: int = MIN_PART_SIZE, body_timeout: float | None = None) -> None:
        self.fs = fs
        self.body_timeout = body_timeout  # idle seconds allowed between body reads
        self.region = region
        self.domain = domain
        self.min_part_size = min_part_size
        from . import buckets, multipart, objects
        self._routes: dict[str, Handler] = {
            "ListBuckets": buckets.list_buckets,
            "CreateBucket": buckets.create_bucket,
            "DeleteBucket": buckets.delete_bucket,
            "HeadBucket": buckets.head_bucket,
            "GetBucketLocation": buckets.get_location,
            "GetBucketVersioning": buckets.get_versioning,
            "ListObjects": buckets.list_objects_v1,
            "ListObjectsV2": buckets.list_objects_v2,
            "DeleteObjects": objects.delete_objects,
            "PutObject": objects.put_object,
            "CopyObject": objects.copy_object,
            "GetObject": objects.get_object,
            "HeadObject": objects.get_object,
            "DeleteObject": objects.delete_object,
            "PutObjectTagging": objects.put_tagging,
            "GetObjectTagging": objects.get_tagging,
            "DeleteObjectTagging": objects.delete_tagging,
            "GetObjectAttributes": objects.get_attributes,
            "CreateMultipartUpload": multipart.create,
            "UploadPart": multipart.upload_part,
            "UploadPartCopy": multipart.upload_part_copy,
            "CompleteMultipartUpload": multipart.complete,
            "AbortMultipartUpload": multipart.abort,
            "ListParts": multipart.list_parts,
            "ListMultipartUploads": multipart.list_uploads,
        }

    # -- routing -----------------------------------------------------------------------

    @staticmethod
    def operation(ctx: Ctx) -> str:
        m, q, t, h = ctx.request.method, ctx.query, ctx.target, ctx.headers
        if t.bucket is None:
            if m == "GET":
                return "ListBuckets"
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
        for sub, code in NOT_CONFIGURED.items() if t.key is None and q else ():
            if sub in q:
                if m == "GET":
                    raise S3Error(code, f"The bucket has no {sub} configuration")
                raise S3Error("NotImplemented", f"Setting the bucket {sub} is not supported")
        if t.key is None:
            if m == "GET":
                if "location" in q:
                    return "GetBucketLocation"
                if "versioning" in q:
                    return "GetBucketVersioning"
                if "uploads" in q:
                    return "ListMultipartUploads"
                if "tagging" in q:
                    raise S3Error("NoSuchTagSet", "The TagSet does not exist")
                if set(q) & {"acl", "versions", "logging", "notification", "replication",
                             "accelerate", "requestPayment", "ownershipControls", "analytics",
                             "metrics", "inventory", "intelligent-tiering", "publicAccessBlock"}:
                    raise S3Error("NotImplemented", "This bucket sub-resource is not supported")
                return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            if m == "PUT":
                if q:
                    raise S3Error("NotImplemented", "This bucket sub-resource is not supported")
                return "CreateBucket"
            if m == "HEAD":
                return "HeadBucket"
            if m == "DELETE":
                if q:
                    raise S3Error("NotImplemented", "This bucket sub-resource is not supported")
                return "DeleteBucket"
            if m == "POST" and "delete" in q:
                return "DeleteObjects"
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
        if m == "PUT":
            if "tagging" in q:
                return "PutObjectTagging"
            if "uploadId" in q or "partNumber" in q:
                return "UploadPartCopy" if "x-amz-copy-source" in h else "UploadPart"
            if "x-amz-copy-source" in h:
                return "CopyObject"
            if q.keys() & {"acl", "retention", "legal-hold"}:
                raise S3Error("NotImplemented", "This object sub-resource is not supported")
            return "PutObject"
        if m in ("GET", "HEAD"):
            if m == "GET" and "uploadId" in q:
                return "ListParts"
            if m == "GET" and "tagging" in q:
                return "GetObjectTagging"
            if m == "GET" and "attributes" in q:
                return "GetObjectAttributes"
            if q.keys() & {"acl", "torrent", "retention", "legal-hold"}:
                raise S3Error("NotImplemented", "This object sub-resource is not supported")
            return "GetObject" if m == "GET" else "HeadObject"
        if m == "DELETE":
            if "uploadId" in q:
                return "AbortMultipartUpload"
            if "tagging" in q:
                return "DeleteObjectTagging"
            return "DeleteObject"
        if m == "POST":
            if "uploads" in q:
                return "CreateMultipartUpload"
            if "uploadId" in q:
                return "CompleteMultipartUpload"
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, ctx: Ctx) -> None:
        req = ctx.sigv4_request()
        try:
            auth = sigv4.parse(req)
            if auth is None:
                return  # anonymous: allowed only for reads of public buckets
            ident = self.fs.identity(auth.credential.access_key)
            if ident is None:
                raise S3Error("InvalidAccessKeyId",
                              "The AWS Access Key Id you provided does not exist in our records.")
            secret, caller = ident
            ctx.verified = sigv4.verify(req, auth, secret, now())
        except sigv4.AuthError as e:
            raise S3Error(e.code, e.message, **e.extra) from e
        ctx.access_key = auth.credential.access_key
        ctx.caller = caller

    def _check_anonymous(self, ctx: Ctx, op: str) -> None:
        if not ctx.anonymous:
            return
        if op in ANONYMOUS_READS and ctx.target.bucket and self.is_public(ctx.target.bucket):
            # A public bucket is readable by everyone: read as its owner would, but
            # only read operations get here.
            ctx.caller = self.public_reader(ctx.target.bucket)
            return
        raise S3Error("AccessDenied", "Access Denied")

    def is_public(self, bucket: str) -> bool:
        rec = self.fs.bucket_settings(bucket)
        return bool(rec.get("public"))

    def public_reader(self, bucket: str) -> Caller:
        # Not root: a file inside the bucket that its owner may not read (written through
        # a mount by another user, mode 0600) stays private to anonymous readers too.
        return self.fs.bucket_owner(bucket)

    # -- the handler ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ctx: Ctx | None = None
        try:
            ctx = build_ctx(self, request)
            op = self.operation(ctx)
            self.authenticate(ctx)
            self._check_anonymous(ctx, op)
            resp = await self._routes[op](ctx)
        except S3Error as e:
            return self.error_response(request, ctx, e)
        except FsError as e:
            key_op = ctx is not None and ctx.target.key is not None
            return self.error_response(request, ctx, from_fs_error(e, key=key_op))
        if not resp.prepared:  # a streamed GET sent its head (with both ids) already
            resp.headers["x-amz-request-id"] = ctx.request_id
            resp.headers["x-amz-id-2"] = HOST_ID
        return resp

    def error_response(self, request: web.Request, ctx: Ctx | None, e: S3Error) -> web.Response:
        rid = ctx.request_id if ctx else new_request_id()  # refused before its Ctx was made
        headers = {"x-amz-request-id": rid, "x-amz-id-2": HOST_ID, **e.headers}
        if e.status >= 500 and e.code != "NotImplemented":
            log.error("%s %s -> %s: %s", request.method, request.path, e.code, e.message)
        if request.method == "HEAD" or e.status == 304:
            return web.Response(status=e.status, headers=headers)
        body = xml.error(e.code, e.message, resource=request.path, request_id=rid,
                         host_id=HOST_ID, extra=e.extra)
        return web.Response(status=e.status, body=body, headers=headers,
                            content_type="application/xml")

