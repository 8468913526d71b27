"""A small ONC RPC client over TCP for the NFS door's protocol tests.

It speaks our own XDR codec (gateway.nfs.xdr) and record marking, synchronously,
and can pipeline: `send_call` several times, then `recv_reply` each (replies may
come back in any order; match them by xid). Use from a thread in async tests.

    with RpcClient(gw.nfs_port) as c:
        fh = c.mount("/")                     # MOUNT v3 MNT -> root handle
        r = c.call(NFS_PROG, 3, 1, args)      # any call -> Reply (check accept_stat)
        body = c.call_ok(NFS_PROG, 3, 1, args)  # -> Unpacker at the results, or AssertionError
"""

from __future__ import annotations

import itertools
import socket
from typing import Any

from gateway.nfs.rpc import (
    AcceptStat, AuthSys, RecordReader, Reply, encode_call, frame, parse_reply,
)
from gateway.nfs.xdr import Packer, Unpacker

PORTMAP_PROG = 100000
NFS_PROG = 100003
MOUNT_PROG = 100005
NLM_PROG = 100021
NFSACL_PROG = 100227

# MOUNT v3 procedures (RFC 1813 appendix I)
MOUNTPROC3_NULL, MOUNTPROC3_MNT, MOUNTPROC3_DUMP = 0, 1, 2
MOUNTPROC3_UMNT, MOUNTPROC3_UMNTALL, MOUNTPROC3_EXPORT = 3, 4, 5
MNT3_OK = 0

ROOT_CRED = AuthSys(0, b"testclient", 0, 0, ())
USER_CRED = AuthSys(0, b"testclient", 1000, 1000, (1000,))

_DEFAULT: Any = object()
_xids = itertools.count(0x5000_0000)


class MountError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"MNT failed with status {status}")
        self.status = status


class RpcClient:
    """One TCP connection to an RPC server; AUTH_SYS root by default."""

    def __init__(self, port: int, host: str = "127.0.0.1", cred: AuthSys | None = ROOT_CRED,
                 timeout: float = 60.0, max_record: int = 64 << 20) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cred = cred
        self.reader = RecordReader(max_record)
        self.pending: list[bytearray] = []

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- raw ---------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_record(self) -> bytearray:
        while not self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.pending += self.reader.feed(data)
        return self.pending.pop(0)

    def wait_closed(self) -> bool:
        """True once the server closes the connection (reads and drops anything before)."""
        try:
            while self.sock.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        return True

    # -- calls -------------------------------------------------------------------

    def send_call(self, prog: int, vers: int, proc: int, args: bytes = b"",
                  cred: AuthSys | None = _DEFAULT, xid: int | None = None) -> int:
        xid = next(_xids) if xid is None else xid
        c = self.cred if cred is _DEFAULT else cred
        self.send_raw(frame(encode_call(xid, prog, vers, proc, args, c)))
        return xid

    def recv_reply(self) -> Reply:
        return parse_reply(self.recv_record())

    def call(self, prog: int, vers: int, proc: int, args: bytes = b"",
             cred: AuthSys | None = _DEFAULT) -> Reply:
        xid = self.send_call(prog, vers, proc, args, cred)
        reply = self.recv_reply()
        assert reply.xid == xid, f"reply xid {reply.xid:#x} for call {xid:#x}"
        return reply

    def call_ok(self, prog: int, vers: int, proc: int, args: bytes = b"",
                cred: AuthSys | None = _DEFAULT) -> Unpacker:
        reply = self.call(prog, vers, proc, args, cred)
        assert reply.accepted and reply.accept_stat == AcceptStat.SUCCESS, reply
        assert reply.body is not None
        return reply.body

    # -- MOUNT v3 ----------------------------------------------------------------

    def mount(self, path: str | bytes = "/", cred: AuthSys | None = _DEFAULT) -> bytes:
        """MNT: the export's root file handle (raises MountError on a MNT3ERR_*)."""
        body = self.call_ok(MOUNT_PROG, 3, MOUNTPROC3_MNT, pack_dirpath(path), cred)
        status = body.unpack_uint()
        if status != MNT3_OK:
            raise MountError(status)
        fh = body.unpack_opaque(64)
        body.unpack_array(body.unpack_uint)  # auth flavors
        body.done()
        return fh


def pack_dirpath(path: str | bytes) -> bytes:
    p = Packer()
    p.pack_string(path.encode() if isinstance(path, str) else path)
    return p.get_buffer()
