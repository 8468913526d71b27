"""chunkstore/http_get.py (the s3 store's chunk GETs, received straight into one buffer)
against a real TCP server on loopback that answers from a script: the well-behaved
answers and the ways a backend or the network breaks an exchange."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from chunkstore.http_get import (RECV_BUFFER, GetClient, ProtocolError, Unsupported,
                                 WrongLength)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


@dataclass
class Scripted:
    """A server whose every request is answered by `handler` (False: close after it)."""

    handler: Handler
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                if not await self.handler(reader, writer, head):
                    return
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bucket/key?X-Amz-Signature=abc"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Scripted]]]:
    started: list[Scripted] = []

    async def start(handler: Handler) -> Scripted:
        s = Scripted(handler)
        s.server = await asyncio.start_server(s._serve, "127.0.0.1", 0)
        s.port = s.server.sockets[0].getsockname()[1]
        started.append(s)
        return s

    yield start
    for s in started:
        assert s.server is not None
        s.server.close()


@pytest.fixture
async def client() -> AsyncIterator[GetClient]:
    c = GetClient(ssl=None, connect_timeout=5, read_timeout=2)
    yield c
    c.close()


def answer(body: bytes, status: str = "200 OK", headers: str = "") -> Handler:
    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode()
                     + body)
        await writer.drain()
        return True
    return h


async def test_a_body_arrives_whole_and_the_connection_is_kept_for_the_next_get(
        serve, client: GetClient) -> None:
    body = os.urandom(3 << 20)
    srv = await serve(answer(body))
    for _ in range(3):
        resp = await client.get(srv.url, {"Range": "bytes=0-3145727"}, len(body))
        assert resp.status == 200 and resp.body == body
    assert srv.connections == 1
    assert b"GET /bucket/key?X-Amz-Signature=abc HTTP/1.1\r\n" in srv.requests[0]
    assert f"Host: 127.0.0.1:{srv.port}\r\n".encode() in srv.requests[0]
    assert b"Range: bytes=0-3145727\r\n" in srv.requests[0]


async def test_a_kept_connection_the_server_closed_unanswered_is_replaced_without_an_error(
        serve, client: GetClient) -> None:
    body = b"x" * 100_000
    seen = 0

    async def second_unanswered(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        nonlocal seen
        seen += 1
        if seen == 2:
            return False  # a server timing out its idle side just as the request came
        return await answer(body)(reader, writer, head)

    srv = await serve(second_unanswered)
    assert (await client.get(srv.url, {}, len(body))).body == body
    assert (await client.get(srv.url, {}, len(body))).body == body
    assert srv.connections == 2 and seen == 3


async def test_a_fresh_connection_closed_unanswered_is_an_error(serve, client: GetClient) -> None:
    async def never(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        return False

    srv = await serve(never)
    with pytest.raises(ConnectionError):
        await client.get(srv.url, {}, 10)
    assert srv.connections == 1


async def test_an_error_answer_keeps_the_start_of_its_body_for_the_s3_code(
        serve, client: GetClient) -> None:
    xml = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
           b"<Message>Please reduce your request rate.</Message></Error>")
    srv = await serve(answer(xml, "503 Service Unavailable"))
    resp = await client.get(srv.url, {}, 4 << 20)
    assert resp.status == 503 and resp.reason == "Service Unavailable"
    assert b"<Code>SlowDown</Code>" in resp.body
    resp = await client.get(srv.url, {}, 4 << 20)  # the server keeps serving; so do we
    assert resp.status == 503
    assert srv.connections == 2  # an error's connection is not reused


async def test_a_chunked_error_body_ends_at_its_last_chunk(serve, client: GetClient) -> None:
    async def chunked(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        body = b"<Error><Code>NoSuchKey</Code></Error>"
        writer.write(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(30)  # holds the connection open: the end is the last chunk
        return False

    srv = await serve(chunked)
    resp = await asyncio.wait_for(client.get(srv.url, {}, 100), 20)
    assert resp.status == 404 and b"<Code>NoSuchKey</Code>" in resp.body


async def test_a_success_of_another_length_is_refused_unread(serve, client: GetClient) -> None:
    srv = await serve(answer(b"y" * 1000))
    with pytest.raises(WrongLength) as e:
        await client.get(srv.url, {}, 999)
    assert e.value.length == 1000


async def test_a_success_without_content_length_is_unsupported(serve, client: GetClient) -> None:
    async def chunked(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        await writer.drain()
        return True

    srv = await serve(chunked)
    with pytest.raises(Unsupported):
        await client.get(srv.url, {}, 3)


async def test_a_connection_cut_mid_body_is_a_connection_error(serve, client: GetClient) -> None:
    async def cut(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 5000)
        await writer.drain()
        writer.transport.abort()
        return False

    srv = await serve(cut)
    with pytest.raises(ConnectionError):
        await client.get(srv.url, {}, 1_000_000)


async def test_a_server_that_stops_sending_times_out_after_the_read_timeout(
        serve, client: GetClient) -> None:
    async def stall(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"s" * 10)
        await writer.drain()
        await asyncio.sleep(60)
        return False

    srv = await serve(stall)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(client.get(srv.url, {}, 1000), 30)  # read_timeout is 2 s


async def test_a_malformed_head_is_a_protocol_error(serve, client: GetClient) -> None:
    async def junk(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        writer.write(b"SPDY/9 whatever\r\n\r\n")
        await writer.drain()
        return True

    srv = await serve(junk)
    with pytest.raises(ProtocolError):
        await client.get(srv.url, {}, 10)


async def test_an_interim_100_continue_is_skipped(serve, client: GetClient) -> None:
    async def interim(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\n"
                     b"Content-Length: 4\r\n\r\nbody")
        await writer.drain()
        return True

    srv = await serve(interim)
    resp = await client.get(srv.url, {}, 4)
    assert resp.status == 206 and resp.body == b"body"


async def test_a_cancelled_get_drops_its_connection_and_the_next_get_works(
        serve, client: GetClient) -> None:
    calls = 0

    async def slow_first(reader, writer, head) -> bool:  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(60)
            return False
        return await answer(b"ok")(reader, writer, head)

    srv = await serve(slow_first)
    task = asyncio.ensure_future(client.get(srv.url, {}, 2))
    for _ in range(500):
        if srv.requests:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.get(srv.url, {}, 2)).body == b"ok"
    assert srv.connections == 2


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return RECV_BUFFER


async def test_a_connection_receives_into_a_chunk_sized_socket_buffer_from_its_handshake(
        serve) -> None:
    body = os.urandom(1 << 20)
    srv = await serve(answer(body))
    sizes = {}
    for name, recv_buffer in (("set", RECV_BUFFER), ("default", 0)):
        c = GetClient(ssl=None, connect_timeout=5, read_timeout=5, recv_buffer=recv_buffer)
        try:
            # By name: the address is looked up, then each tried with the option set.
            url = srv.url.replace("127.0.0.1", "localhost")
            assert (await c.get(url, {}, len(body))).body == body
            [proto] = [p for idle in c._idle.values() for p in idle]
            assert proto.transport is not None
            sock = proto.transport.get_extra_info("socket")
            sizes[name] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            c.close()
    # Linux reports twice what was set (its bookkeeping), capped by rmem_max.
    assert sizes["set"] >= min(RECV_BUFFER, _rmem_max()), sizes
    assert sizes["set"] > sizes["default"], sizes


async def test_an_unreachable_port_is_a_connection_error(client: GetClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connect is refused
        with pytest.raises(ConnectionError):
            await client.get(f"http://127.0.0.1:{port}/b/k", {}, 10)
