"""S3 errors: one exception type, and the one place vfs errors become S3 codes."""

from __future__ import annotations


from ..vfs import errors as fe
from ..vfs import multipart as mp
from ..vfs import objects as vo

# HTTP status of each S3 error code we answer (from the S3 API reference).
STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "RequestTimeout": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NoSuchTagSet": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchWebsiteConfiguration": 404,
    "ServerSideEncryptionConfigurationNotFoundError": 404,
    "ObjectLockConfigurationNotFoundError": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "ConditionalRequestConflict": 409,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
    "InvalidObjectState": 403,
    "OperationAborted": 409,
    "IllegalLocationConstraintException": 400,
}


class S3Error(Exception):
    def __init__(self, code: str, message: str, status: int | None = None,
                 headers: dict[str, str] | None = None, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)
        self.headers = headers or {}
        self.extra = extra


def from_fs_error(e: fe.FsError, *, key: bool = True) -> S3Error:
    """The one mapping of vfs errors to S3 (key=False: the request named only a bucket)."""
    msg = e.message
    if isinstance(e, vo.NoSuchBucket):
        return S3Error("NoSuchBucket", "The specified bucket does not exist")
    if isinstance(e, mp.NoSuchUpload):
        return S3Error("NoSuchUpload", "The specified multipart upload does not exist")
    if isinstance(e, mp.InvalidPart):
        return S3Error("InvalidPart", msg)
    if isinstance(e, mp.InvalidPartOrder):
        return S3Error("InvalidPartOrder", msg)
    if isinstance(e, mp.EntityTooSmall):
        return S3Error("EntityTooSmall", msg)
    if isinstance(e, fe.InvalidBucketName):
        return S3Error("InvalidBucketName", msg)
    if isinstance(e, fe.KeyTooLong):
        return S3Error("KeyTooLongError", f"Your key is too long: {msg}", MaxSizeAllowed="1024")
    if isinstance(e, fe.InvalidKey):
        # Includes a segment over 255 bytes: a limit of paths, not of S3 (see DESIGN.md).
        return S3Error("InvalidArgument", f"Invalid key: {msg}")
    if isinstance(e, vo.KeyConflict):
        # AWS has no such case (it stores both); a file system cannot.
        return S3Error("InvalidRequest", msg, status=409)
    if isinstance(e, fe.NotFound):
        return S3Error("NoSuchKey" if key else "NoSuchBucket",
                       "The specified key does not exist" if key else "The specified bucket does not exist")
    if isinstance(e, (fe.AccessDenied, fe.NotPermitted)):
        return S3Error("AccessDenied", "Access Denied")
    if isinstance(e, fe.NotEmpty):
        return S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty")
    if isinstance(e, fe.NoSpace):
        return S3Error("ServiceUnavailable", "The gateway's storage is full; nothing was stored", status=507)
    if isinstance(e, fe.Unavailable):
        return S3Error("ServiceUnavailable", msg, status=503)
    if isinstance(e, (fe.StorageError, fe.DataCorrupt)):
        return S3Error("InternalError", msg, status=500)
    if isinstance(e, fe.Invalid):
        return S3Error("InvalidArgument", msg)
    return S3Error("InternalError", msg, status=500)
