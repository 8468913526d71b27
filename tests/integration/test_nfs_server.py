"""The RPC server's connection handling, in process over real loopback sockets, with
procedures whose finishing order the test controls: out-of-order replies, the bound
on calls in flight, slow and idle clients, and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.nfs.rpc import (
    AcceptStat, Program, RecordReader, Registry, Reply, RpcCall, encode_call, frame, parse_reply,
    record_mark,
)
from gateway.nfs.server import RpcServer
from gateway.nfs.xdr import Packer

PROG = 400_000
IN_FLIGHT = 8


class Gate:
    """Procedure 1 holds each call until the test opens its gate (by its argument)."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.running = 0
        self.most_running = 0

    def gate(self, n: int) -> asyncio.Event:
        return self.gates.setdefault(n, asyncio.Event())

    async def held(self, call: RpcCall) -> bytes:
        n = call.args.unpack_uint()
        call.args.done()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate(n).wait()
        finally:
            self.running -= 1
        p = Packer()
        p.pack_uint(n)
        return p.get_buffer()

    async def null(self, call: RpcCall) -> bytes:
        return b""


class Conn:
    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w
        self.records = RecordReader()
        self.ready: list[bytes] = []

    def send(self, xid: int, proc: int, arg: int | None = None) -> None:
        args = b"" if arg is None else arg.to_bytes(4, "big")
        self.w.write(frame(encode_call(xid, PROG, 1, proc, args)))

    async def reply(self) -> Reply:
        while not self.ready:
            data = await asyncio.wait_for(self.r.read(1 << 16), 60)
            if not data:
                raise ConnectionError("closed")
            self.ready += self.records.feed(data)
        return parse_reply(self.ready.pop(0))

    async def closed(self) -> bool:
        while await asyncio.wait_for(self.r.read(1 << 16), 60):
            pass
        return True


@pytest.fixture
async def served() -> AsyncIterator[tuple[RpcServer, Gate, int]]:
    gate = Gate()
    server = RpcServer(Registry([Program(PROG, 1, 1, {(1, 0): gate.null, (1, 1): gate.held})]),
                       max_in_flight=IN_FLIGHT, idle_timeout=1.0, record_timeout=0.5,
                       sweep_interval=0.1)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, gate, port
    finally:
        for ev in gate.gates.values():
            ev.set()
        await server.aclose(timeout=10)


async def connect(port: int) -> Conn:
    return Conn(*await asyncio.open_connection("127.0.0.1", port))


async def until(cond, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def test_replies_come_back_in_the_order_calls_finish(served) -> None:  # type: ignore[no-untyped-def]
    _, gate, port = served
    c = await connect(port)
    for n in range(5):
        c.send(100 + n, 1, n)
    await until(lambda: gate.running == 5)
    for n in reversed(range(5)):  # the last call sent finishes first
        gate.gate(n).set()
        r = await c.reply()
        assert r.xid == 100 + n and r.body is not None and r.body.unpack_uint() == n


async def test_calls_in_flight_per_connection_are_bounded_and_all_answered(served) -> None:  # type: ignore[no-untyped-def]
    _, gate, port = served
    c = await connect(port)
    for n in range(10 * IN_FLIGHT):
        c.send(n, 1, n)
    await until(lambda: gate.running == IN_FLIGHT)
    await asyncio.sleep(0.2)  # give a server that ignores its bound time to overrun it
    assert gate.most_running == IN_FLIGHT
    for n in range(10 * IN_FLIGHT):
        gate.gate(n).set()
    xids = {(await c.reply()).xid for _ in range(10 * IN_FLIGHT)}
    assert xids == set(range(10 * IN_FLIGHT)) and gate.most_running == IN_FLIGHT


async def test_a_client_stuck_mid_record_is_dropped_and_an_idle_one_too(served) -> None:  # type: ignore[no-untyped-def]
    server, _, port = served
    slow, idle = await connect(port), await connect(port)
    slow.w.write(record_mark(100) + b"\0" * 10)
    idle.send(1, 0)
    assert (await idle.reply()).accept_stat == AcceptStat.SUCCESS
    assert await slow.closed() and await idle.closed()
    busy = await connect(port)
    busy.send(2, 0)  # a fresh call on a fresh connection is served as ever
    assert (await busy.reply()).xid == 2


async def test_shutdown_lets_running_calls_finish_and_closes_connections(served) -> None:  # type: ignore[no-untyped-def]
    server, gate, port = served
    c = await connect(port)
    c.send(7, 1, 7)
    await until(lambda: gate.running == 1)
    closing = asyncio.create_task(server.aclose(timeout=30))
    await asyncio.sleep(0.1)
    assert not closing.done()  # waiting for the running call
    gate.gate(7).set()
    r = await c.reply()
    assert r.xid == 7
    await closing
    assert await c.closed()
    with pytest.raises(OSError):
        await connect(port)
