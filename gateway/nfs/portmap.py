"""A minimal portmapper (RFC 1833, PMAP version 2) for clients that insist on rpcbind:
it knows only this server's programs (NFS 3 and MOUNT 3 over TCP, on the NFS port)."""

from __future__ import annotations

from .rpc import Program, RpcCall
from .xdr import Packer

PMAP_PROG = 100000
PMAP_V2 = 2
IPPROTO_TCP = 6
NFS_PROG = 100003
MOUNT_PROG = 100005


def portmap_program(nfs_port: int) -> Program:
    mappings = [(NFS_PROG, 3, IPPROTO_TCP, nfs_port), (MOUNT_PROG, 3, IPPROTO_TCP, nfs_port)]

    async def null(call: RpcCall) -> bytes:
        return b""

    async def getport(call: RpcCall) -> bytes:
        prog, vers, prot = call.args.unpack_uint(), call.args.unpack_uint(), call.args.unpack_uint()
        call.args.unpack_uint()  # port: ignored in GETPORT
        call.args.done()
        port = next((m[3] for m in mappings if m[:3] == (prog, vers, prot)), 0)
        p = Packer()
        p.pack_uint(port)
        return p.get_buffer()

    async def refuse(call: RpcCall) -> bytes:  # SET / UNSET: registrations are not taken
        p = Packer()
        p.pack_bool(False)
        return p.get_buffer()

    async def dump(call: RpcCall) -> bytes:
        call.args.done()
        p = Packer()
        for m in mappings:
            p.pack_bool(True)
            for v in m:
                p.pack_uint(v)
        p.pack_bool(False)
        return p.get_buffer()

    procs = {0: null, 1: refuse, 2: refuse, 3: getport, 4: dump}
    return Program(PMAP_PROG, PMAP_V2, PMAP_V2, {(PMAP_V2, n): fn for n, fn in procs.items()})
