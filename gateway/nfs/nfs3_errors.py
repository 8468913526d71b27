"""The one place vfs errors become NFSv3 status codes."""

from __future__ import annotations

import errno as E

from ..vfs import errors as fe
from . import nfs3_types as t


class NfsError(Exception):
    """A procedure fails with this nfsstat3 (raised inside the NFS door only)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or str(status))
        self.status = status


# errno -> nfsstat3 (RFC 1813 section 2.6). Anything not listed is NFS3ERR_IO.
_BY_ERRNO = {
    E.EPERM: t.NFS3ERR_PERM,
    E.ENOENT: t.NFS3ERR_NOENT,
    E.EIO: t.NFS3ERR_IO,
    E.ENXIO: t.NFS3ERR_NXIO,
    E.EACCES: t.NFS3ERR_ACCES,
    E.EEXIST: t.NFS3ERR_EXIST,
    E.EXDEV: t.NFS3ERR_XDEV,
    E.ENODEV: t.NFS3ERR_NODEV,
    E.ENOTDIR: t.NFS3ERR_NOTDIR,
    E.EISDIR: t.NFS3ERR_ISDIR,
    E.EINVAL: t.NFS3ERR_INVAL,
    E.EFBIG: t.NFS3ERR_FBIG,
    E.E2BIG: t.NFS3ERR_FBIG,
    E.ENOSPC: t.NFS3ERR_NOSPC,
    E.EROFS: t.NFS3ERR_ROFS,
    E.EMLINK: t.NFS3ERR_MLINK,
    E.ENAMETOOLONG: t.NFS3ERR_NAMETOOLONG,
    E.ENOTEMPTY: t.NFS3ERR_NOTEMPTY,
    E.EDQUOT: t.NFS3ERR_DQUOT,
    E.ESTALE: t.NFS3ERR_STALE,
    E.ENOTSUP: t.NFS3ERR_NOTSUPP,
    E.EBUSY: t.NFS3ERR_JUKEBOX,  # try again later (Linux clients retry JUKEBOX)
}


def status_of(e: fe.FsError) -> int:
    """The nfsstat3 of a vfs error. Corrupt data and failed stores are plain I/O
    errors to the client (the server log names the chunk)."""
    if isinstance(e, (fe.DataCorrupt, fe.StorageError)):
        return t.NFS3ERR_IO
    return _BY_ERRNO.get(e.errno, t.NFS3ERR_IO)
