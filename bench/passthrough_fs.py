"""A minimal pyfuse3 pass-through of a local directory: the Python FUSE ceiling.

bench/mount.py runs the same jobs on the local disk (the limit), on this file system
(what any Python FUSE server can reach on this machine: the kernel round trips plus
pyfuse3's per-request cost, no storage logic at all) and on the samebytes mount. It
uses the same mount options as the samebytes mount (1 MiB requests, read-ahead) and
does its file I/O inline on the event loop, so nothing here is slower than it must be.

    python -m bench.passthrough_fs SOURCE MOUNTPOINT     # until SIGTERM / fusermount3 -u
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import sys
from pathlib import Path

import pyfuse3
import pyfuse3.asyncio

from gateway.fuse.mount import _set_read_ahead, mount_options


def _fail(e: OSError) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(e.errno or errno.EIO)


class Passthrough(pyfuse3.Operations):
    """Inodes are the source's st_ino (the source's root is ROOT_INODE)."""

    enable_writeback_cache = False

    def __init__(self, source: Path) -> None:
        super().__init__()
        self.root_ino = os.lstat(source).st_ino
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: str(source)}
        self.fds: dict[int, int] = {}

    def _ino(self, st_ino: int) -> int:
        return pyfuse3.ROOT_INODE if st_ino == self.root_ino else st_ino

    def _attrs(self, path: str) -> pyfuse3.EntryAttributes:
        try:
            st = os.lstat(path)
        except OSError as e:
            raise _fail(e) from None
        a = pyfuse3.EntryAttributes()
        a.st_ino = self._ino(st.st_ino)
        a.generation = 0
        a.entry_timeout = a.attr_timeout = 1.0
        a.st_mode, a.st_nlink, a.st_uid, a.st_gid = st.st_mode, st.st_nlink, st.st_uid, st.st_gid
        a.st_rdev, a.st_size, a.st_blksize, a.st_blocks = st.st_rdev, st.st_size, 4096, st.st_blocks
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        self.paths[a.st_ino] = path
        return a

    def _child(self, parent: int, name: bytes) -> str:
        return os.path.join(self.paths[parent], os.fsdecode(name))

    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self._child(parent_inode, name))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.paths[inode])

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path = self.paths[inode]
        try:
            if fields.update_size:
                os.truncate(path, attr.st_size)
            if fields.update_mode:
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_mtime or fields.update_atime:
                st = os.lstat(path)
                os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                   attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
        except OSError as e:
            raise _fail(e) from None
        return self._attrs(path)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        names = sorted(os.listdir(self.paths[fh]))
        for i, name in enumerate(names[start_id:], start_id + 1):
            if not pyfuse3.readdir_reply(token, os.fsencode(name),
                                         self._attrs(os.path.join(self.paths[fh], name)), i):
                return

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path = self._child(parent_inode, name)
        try:
            os.mkdir(path, mode)
        except OSError as e:
            raise _fail(e) from None
        return self._attrs(path)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        try:
            os.rmdir(self._child(parent_inode, name))
        except OSError as e:
            raise _fail(e) from None

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        try:
            os.unlink(self._child(parent_inode, name))
        except OSError as e:
            raise _fail(e) from None

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        path = self._child(parent_inode, name)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_TRUNC, mode)
        except OSError as e:
            raise _fail(e) from None
        self.fds[fd] = fd
        return pyfuse3.FileInfo(fh=fd), self._attrs(path)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        try:
            fd = os.open(self.paths[inode], flags & ~os.O_CREAT)
        except OSError as e:
            raise _fail(e) from None
        self.fds[fd] = fd
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return os.pread(fh, size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return os.pwrite(fh, buf, off)

    async def flush(self, fh: int) -> None:
        pass

    async def fsync(self, fh: int, datasync: bool) -> None:
        os.fdatasync(fh) if datasync else os.fsync(fh)

    async def release(self, fh: int) -> None:
        os.close(self.fds.pop(fh))

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = os.statvfs(self.paths[pyfuse3.ROOT_INODE])
        out = pyfuse3.StatvfsData()
        for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                  "f_favail", "f_namemax"):
            setattr(out, f, getattr(st, f))
        return out


async def serve(source: Path, mountpoint: Path) -> None:
    pyfuse3.asyncio.enable()
    pyfuse3.init(Passthrough(source), str(mountpoint), mount_options() - {"fsname=samebytes", "subtype=samebytes"}
                 | {"fsname=passthrough"})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pyfuse3.terminate)
    main = asyncio.ensure_future(pyfuse3.main())
    await asyncio.to_thread(_set_read_ahead, mountpoint)
    print("mounted", flush=True)
    try:
        await main
    finally:
        pyfuse3.close(unmount=True)


def main() -> None:
    import uvloop
    uvloop.run(serve(Path(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
