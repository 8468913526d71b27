"""MOUNT version 3 (RFC 1813, appendix I), served on the NFS port itself so clients
need no rpcbind: ``mount -o nfsvers=3,proto=tcp,port=P,mountport=P,mountproto=tcp``.

MNT of an export's path (or of a directory below it) returns its root handle and
AUTH_SYS as the only flavor; the mount list that DUMP shows is kept in memory (it is
advisory in NFSv3: nothing depends on it).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

from metadata import ROOT_INO

from ..vfs import Filesystem, FsError
from ..vfs.perms import ROOT, Caller
from .exports import Exports
from .handles import HandleCodec
from .rpc import Program, RpcCall
from .xdr import Packer

log = logging.getLogger(__name__)

MOUNT_PROG = 100005
MOUNT_V3 = 3
MNTPATHLEN = 1024
MNTNAMLEN = 255
AUTH_SYS = 1

MNT3_OK = 0
MNT3ERR_PERM = 1
MNT3ERR_NOENT = 2
MNT3ERR_IO = 5
MNT3ERR_ACCES = 13
MNT3ERR_NOTDIR = 20
MNT3ERR_INVAL = 22
MNT3ERR_NAMETOOLONG = 63
MNT3ERR_NOTSUPP = 10004
MNT3ERR_SERVERFAULT = 10006

_FROM_ERRNO = {errno.ENOENT: MNT3ERR_NOENT, errno.EACCES: MNT3ERR_ACCES, errno.EPERM: MNT3ERR_PERM,
               errno.ENOTDIR: MNT3ERR_NOTDIR, errno.ENAMETOOLONG: MNT3ERR_NAMETOOLONG,
               errno.EINVAL: MNT3ERR_INVAL, errno.EIO: MNT3ERR_IO}


class MountService:
    def __init__(self, fs: Filesystem, exports: Exports, handles: HandleCodec) -> None:
        self.fs = fs
        self.exports = exports
        self.handles = handles
        self.mounted: dict[tuple[str, str], None] = {}  # (client host, path), in mount order

    async def resolve_roots(self) -> None:
        """Find each export's root inode (a bucket made later is found at its MNT)."""
        for e in self.exports:
            if e.root_ino is None:
                try:
                    e.root_ino = await self._walk(e.path.split("/")[1:], ROOT)
                except FsError as err:
                    log.warning("export %s: %s (clients get MNT3ERR_NOENT until it exists)", e.path, err)

    async def _walk(self, names: list[str], caller: Caller) -> int:
        ino = ROOT_INO
        for name in names:
            if not name:
                continue
            node = await self.fs.lookup(caller, ino, name.encode())
            if not node.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, f"{name} is not a directory")
            ino = node.ino
        return ino

    # -- procedures ----------------------------------------------------------------------

    async def null(self, call: RpcCall) -> bytes:
        return b""

    async def mnt(self, call: RpcCall) -> bytes:
        raw = call.args.unpack_string(MNTPATHLEN)
        call.args.done()
        p = Packer()
        status, fh = await self._mnt(call, raw)
        p.pack_enum(status)
        if status == MNT3_OK:
            p.pack_opaque(fh)
            p.pack_array([AUTH_SYS], p.pack_uint)
        return p.get_buffer()

    async def _mnt(self, call: RpcCall, raw: bytes) -> tuple[int, bytes]:
        try:
            path = raw.decode()
        except UnicodeDecodeError:
            return MNT3ERR_INVAL, b""
        found = self.exports.match(path)
        if found is None:
            return MNT3ERR_NOENT, b""
        export, below = found
        if not export.allows(call.peer):
            log.info("MNT %s refused for %s: not in the export's clients", path, call.peer[0])
            return MNT3ERR_ACCES, b""
        try:
            if export.root_ino is None:
                export.root_ino = await self._walk(export.path.split("/")[1:], ROOT)
            ino = export.root_ino
            if below:
                # Below the export's root, as the squashed caller (search permission).
                caller = export.squash(call.cred)
                for name in below:
                    node = await self.fs.lookup(caller, ino, name.encode())
                    if not node.is_dir:
                        return MNT3ERR_NOTDIR, b""
                    ino = node.ino
            inode = await self.fs.getattr(ino)
        except FsError as e:
            return _FROM_ERRNO.get(e.errno, MNT3ERR_SERVERFAULT), b""
        except NotADirectoryError:
            return MNT3ERR_NOTDIR, b""
        self.mounted[(call.peer[0], path)] = None
        return MNT3_OK, self.handles.encode(export, inode.ino, inode.generation)

    async def dump(self, call: RpcCall) -> bytes:
        call.args.done()
        p = Packer()
        for host, path in self.mounted:
            p.pack_bool(True)
            p.pack_string(host.encode()[:MNTNAMLEN])
            p.pack_string(path.encode())
        p.pack_bool(False)
        return p.get_buffer()

    async def umnt(self, call: RpcCall) -> bytes:
        raw = call.args.unpack_string(MNTPATHLEN)
        call.args.done()
        self.mounted.pop((call.peer[0], raw.decode(errors="replace")), None)
        return b""

    async def umntall(self, call: RpcCall) -> bytes:
        call.args.done()
        for key in [k for k in self.mounted if k[0] == call.peer[0]]:
            del self.mounted[key]
        return b""

    async def export(self, call: RpcCall) -> bytes:
        call.args.done()
        p = Packer()
        for e in self.exports:
            p.pack_bool(True)
            p.pack_string(e.path.encode())
            for group in e.groups_text():
                p.pack_bool(True)
                p.pack_string(group)
            p.pack_bool(False)
        p.pack_bool(False)
        return p.get_buffer()

    def program(self) -> Program:
        procs: dict[int, Callable[[RpcCall], Awaitable[bytes]]] = {
            0: self.null, 1: self.mnt, 2: self.dump, 3: self.umnt, 4: self.umntall, 5: self.export}
        # v1 and v2 share the procedure numbers; Linux and libnfs ask for v3.
        return Program(MOUNT_PROG, MOUNT_V3, MOUNT_V3,
                       {(MOUNT_V3, n): fn for n, fn in procs.items()})
