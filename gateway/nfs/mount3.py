"""MOUNT version 3 (RFC 1813 appendix I), served on the NFS port.

MNT resolves an export path (or a folder below one) to a file handle, refusing
clients outside the export's networks; the mount list (DUMP) is what clients
told us, kept in memory only, as its only use is informational.
"""

from __future__ import annotations

import errno as E
import logging

from ..vfs import ROOT, Filesystem, FsError, NotDir
from .exports import Export, ExportError, Exports
from .handles import Handles
from .rpc import Program, RpcCall
from .xdr import Packer

log = logging.getLogger("samebytes.nfs")

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
MNT3ERR_SERVERFAULT = 10006

NULL, MNT, DUMP, UMNT, UMNTALL, EXPORT = range(6)


class Mount3:
    def __init__(self, fs: Filesystem, exports: Exports, handles: Handles[Export]) -> None:
        self.fs = fs
        self.exports = exports
        self.handles = handles
        self.mounts: dict[tuple[bytes, bytes], None] = {}  # (client, dirpath), in order

    async def resolve_root(self, export: Export) -> int:
        """The export's root inode (0 when its path does not exist yet)."""
        if not export.root_ino:
            ino = 1
            try:
                for name in export.segments:
                    ino = (await self.fs.lookup(ROOT, ino, name)).ino
            except FsError:
                return 0
            export.root_ino = ino
        return export.root_ino

    async def resolve_roots(self) -> None:
        """Resolve every export's root now; a missing one is retried at each MNT."""
        for e in self.exports:
            if not await self.resolve_root(e):
                log.warning("NFS export %s does not exist (yet): MNT answers NOENT", e.path)

    async def null(self, call: RpcCall) -> bytes:
        call.args.done()
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
            self.mounts[(call.peer[0].encode(), raw)] = None
        return p.get_buffer()

    async def _mnt(self, call: RpcCall, raw: bytes) -> tuple[int, bytes]:
        try:
            found = self.exports.match(raw)
        except ExportError:
            return MNT3ERR_INVAL, b""
        if found is None:
            return MNT3ERR_NOENT, b""
        export, below = found
        if not export.allows(call.peer):
            log.info("MNT %r refused to %s (not in the export's clients)", raw, call.peer[0])
            return MNT3ERR_ACCES, b""
        ino = await self.resolve_root(export)
        if not ino:
            return MNT3ERR_NOENT, b""
        caller = export.squash(call.cred)
        try:
            for name in below:
                if len(name) > MNTNAMLEN:
                    return MNT3ERR_NAMETOOLONG, b""
                ino = (await self.fs.lookup(caller, ino, name)).ino
            inode = await self.fs.getattr(ino)
            if not inode.is_dir:
                raise NotDir(raw.decode(errors="replace"))
        except FsError as e:
            return _MNT_ERR.get(e.errno, MNT3ERR_IO), b""
        return MNT3_OK, self.handles.encode(export, inode.ino, inode.generation)

    async def dump(self, call: RpcCall) -> bytes:
        call.args.done()
        p = Packer()
        for host, path in self.mounts:
            p.pack_bool(True)
            p.pack_string(host)
            p.pack_string(path)
        p.pack_bool(False)
        return p.get_buffer()

    async def umnt(self, call: RpcCall) -> bytes:
        raw = call.args.unpack_string(MNTPATHLEN)
        call.args.done()
        self.mounts.pop((call.peer[0].encode(), raw), None)
        return b""

    async def umntall(self, call: RpcCall) -> bytes:
        call.args.done()
        host = call.peer[0].encode()
        for key in [k for k in self.mounts if k[0] == host]:
            del self.mounts[key]
        return b""

    async def export(self, call: RpcCall) -> bytes:
        call.args.done()
        p = Packer()
        for e in self.exports:
            p.pack_bool(True)
            p.pack_string(e.path.encode())
            for net in e.clients:  # groups: who may mount it (empty = everyone)
                p.pack_bool(True)
                p.pack_string(str(net).encode())
            p.pack_bool(False)
        p.pack_bool(False)
        return p.get_buffer()

    def program(self) -> Program:
        table = {NULL: self.null, MNT: self.mnt, DUMP: self.dump, UMNT: self.umnt,
                 UMNTALL: self.umntall, EXPORT: self.export}
        return Program(MOUNT_PROG, MOUNT_V3, MOUNT_V3,
                       {(MOUNT_V3, proc): fn for proc, fn in table.items()})


_MNT_ERR = {E.ENOENT: MNT3ERR_NOENT, E.EACCES: MNT3ERR_ACCES, E.EPERM: MNT3ERR_PERM,
            E.ENOTDIR: MNT3ERR_NOTDIR, E.ENAMETOOLONG: MNT3ERR_NAMETOOLONG,
            E.EINVAL: MNT3ERR_INVAL}
