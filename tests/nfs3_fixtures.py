"""Starting `samebytes serve --nfs` and connecting typed NFSv3 clients to it.

`connect` mounts an export with tests/nfs_client.py (MOUNT v3) and returns an
Nfs3 client over one pipelined asyncio connection (the RPC codec of
gateway.nfs.rpc): many calls in flight, replies matched by xid, so tests can
gather thousands of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
from collections.abc import Iterable
from pathlib import Path

from gateway.nfs.rpc import AcceptStat, AuthSys, RecordReader, Reply, encode_call, frame, parse_reply
from tests.conftest import Gateway, free_port, start_gateway
from tests.nfs3_calls import Nfs3

# The RPC server, MOUNT, handles and exports come from the nfs-core branch; until it
# is merged the integration tests of the procedures skip (in CI both are merged).
NFS_DOOR = all(importlib.util.find_spec(m) is not None
               for m in ("gateway.nfs.server", "gateway.nfs.handles", "tests.nfs_client"))
NFS_PROG = 100003

ANON = (65534, 65534)  # the anonymous uid/gid squashed callers become
ROOT_CRED = AuthSys(0, b"nfs3-tests", 0, 0, ())

_xids = itertools.count(0x7000_0000)


def user(uid: int, gid: int | None = None, groups: tuple[int, ...] = ()) -> AuthSys:
    return AuthSys(0, b"nfs3-tests", uid, uid if gid is None else gid, groups)


def start_nfs_gateway(data: Path, *, exports: Iterable[str] = (), env: dict[str, str] | None = None,
                      args: Iterable[str] = ()) -> Gateway:
    port = free_port()
    extra = ["--nfs", f"127.0.0.1:{port}"]
    for e in exports:
        extra += ["--export", e]
    gw = start_gateway(data, *extra, *args, env=env)
    assert gw.nfs_port == port
    return gw


class AsyncRpc:
    """One TCP connection with any number of calls in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiting: dict[int, asyncio.Future[Reply]] = {}
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int) -> AsyncRpc:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def _read(self) -> None:
        records = RecordReader(64 << 20)
        try:
            while data := await self.reader.read(1 << 20):
                for rec in records.feed(data):
                    reply = parse_reply(rec)
                    fut = self.waiting.pop(reply.xid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        finally:
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("server closed the connection"))

    async def call(self, prog: int, vers: int, proc: int, args: bytes,
                   cred: AuthSys | None) -> Reply:
        xid = next(_xids)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.waiting[xid] = fut
        self.writer.write(frame(encode_call(xid, prog, vers, proc, args, cred)))
        return await asyncio.wait_for(fut, 120)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.task.cancel()


async def connect(gw: Gateway, export: str = "/", cred: AuthSys = ROOT_CRED) -> tuple[Nfs3, bytes]:
    """The export mounted (as cred) and a client speaking as cred: (client, root handle).

    The connection closes with the test's event loop."""
    from tests.nfs_client import RpcClient

    port = gw.nfs_port
    assert port is not None, "the gateway serves no NFS"

    def mnt() -> bytes:
        with RpcClient(port, cred=cred) as c:
            return c.mount(export)

    root = await asyncio.to_thread(mnt)
    rpc = await AsyncRpc.open(port)

    async def transport(proc: int, body: bytes, c: AuthSys | None) -> bytes:
        reply = await rpc.call(NFS_PROG, 3, proc, body, c)
        assert reply.accepted and reply.accept_stat == AcceptStat.SUCCESS, reply
        assert reply.body is not None
        return bytes(reply.body.rest())

    return Nfs3(transport, cred), root
