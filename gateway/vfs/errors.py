"""The one error currency below the doors: an exception that carries an errno.

Each door maps FsError to its protocol once (S3 error codes, NFS3ERR_*, FUSEError).
Subclasses exist where a door needs to tell cases apart that share an errno
(an S3 key no path can hold is EINVAL to POSIX but InvalidKey... to S3).
"""

from __future__ import annotations

import errno as E


class FsError(Exception):
    errno: int = E.EIO

    def __init__(self, message: str = "", *, errno: int | None = None) -> None:
        super().__init__(message or E.errorcode.get(errno or self.errno, "error"))
        if errno is not None:
            self.errno = errno

    @property
    def message(self) -> str:
        return str(self)


class NotFound(FsError):
    errno = E.ENOENT


class Exists(FsError):
    errno = E.EEXIST


class NotDir(FsError):
    errno = E.ENOTDIR


class IsDir(FsError):
    errno = E.EISDIR


class NotEmpty(FsError):
    errno = E.ENOTEMPTY


class AccessDenied(FsError):
    errno = E.EACCES


class NotPermitted(FsError):
    errno = E.EPERM


class NameTooLong(FsError):
    errno = E.ENAMETOOLONG


class Invalid(FsError):
    errno = E.EINVAL


class InvalidKey(Invalid):
    """An S3 key that no path can represent; nothing was stored."""


class KeyTooLong(InvalidKey):
    """An S3 key over S3's own limit of 1024 bytes (S3's KeyTooLongError); a segment
    no file system can name is a plain InvalidKey."""


class InvalidBucketName(Invalid):
    pass


class NoSpace(FsError):
    errno = E.ENOSPC


class Stale(FsError):
    errno = E.ESTALE


class DataCorrupt(FsError):
    """Stored bytes failed their checksum; the message names the chunk."""

    errno = E.EIO


class StorageError(FsError):
    """The metadata or chunk store failed; nothing of the operation was committed."""

    errno = E.EIO


class Unavailable(StorageError):
    """The chunk backend did not answer within its deadline; retrying later may work."""


class CrossDevice(FsError):
    errno = E.EXDEV


class TooManyLinks(FsError):
    errno = E.EMLINK


class Busy(FsError):
    errno = E.EBUSY
