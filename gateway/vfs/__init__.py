"""The one filesystem under every door: POSIX and object semantics, one permission model."""

from metadata import Inode

from .errors import (
    AccessDenied, CrossDevice, DataCorrupt, Exists, FsError, Invalid, InvalidBucketName,
    InvalidKey, IsDir, NameTooLong, NoSpace, NotDir, NotEmpty, NotFound, NotPermitted, Stale,
    StorageError,
)
from .fs import (
    DEFAULT_CHUNK_SIZE, DEFAULT_GRACE_SECONDS, RENAME_EXCHANGE, RENAME_NOREPLACE, UTIME_NOW,
    Filesystem, Handle,
)
from .gc import GcReport, collect
from .keys import check_bucket_name, split_key
from .listing import ListPage
from .multipart import (
    MIN_PART_SIZE, EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload, Part, Upload,
    multipart_etag, part_range,
)
from .objects import KeyConflict, NoSuchBucket, ObjectRead
from .perms import ROOT, Caller

__all__ = [
    "AccessDenied", "Caller", "Inode", "CrossDevice", "DEFAULT_CHUNK_SIZE", "DEFAULT_GRACE_SECONDS",
    "DataCorrupt", "Exists", "Filesystem", "FsError", "GcReport", "Handle", "Invalid",
    "InvalidBucketName", "InvalidKey", "IsDir", "KeyConflict", "ListPage", "NameTooLong",
    "NoSpace", "NoSuchBucket", "NotDir", "NotEmpty", "NotFound", "NotPermitted", "ObjectRead",
    "RENAME_EXCHANGE", "RENAME_NOREPLACE", "ROOT", "Stale", "StorageError", "UTIME_NOW",
    "check_bucket_name", "collect", "split_key", "MIN_PART_SIZE", "EntityTooSmall", "InvalidPart",
    "InvalidPartOrder", "NoSuchUpload", "Part", "Upload", "multipart_etag", "part_range",
]
