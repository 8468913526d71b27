"""The request body reader: claims about large bodies (hashed off the event loop, in
order) are checked exactly as for small ones."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import AsyncIterator

import pytest

from gateway.s3.body import Body
from gateway.s3.errors import S3Error

MiB = 1 << 20


class Content:
    """What Body reads: aiohttp's StreamReader.iter_any, pieces of uneven sizes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def iter_any(self) -> AsyncIterator[bytes]:
        at, step = 0, 300_000
        while at < len(self.data):
            yield self.data[at:at + step]
            at += step
            step = MiB + 7 if step == 300_000 else 300_000


def headers_for(data: bytes, **over: str) -> dict[str, str]:
    h = {"content-length": str(len(data)),
         "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
         "x-amz-checksum-crc32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
         "content-md5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    h.update(over)
    return h


async def read(data: bytes, headers: dict[str, str]) -> dict[str, object]:
    body = Body(Content(data), headers, None)
    got = bytearray()
    async for piece in body.pieces():
        got += piece
    assert got == data
    return body.verify(len(data), hashlib.md5(data).hexdigest())


async def test_a_large_body_with_true_claims_is_accepted_with_its_checksum() -> None:
    data = os.urandom(5 * MiB + 3)
    stored = await read(data, headers_for(data))
    assert stored == {"checksums": {"CRC32": headers_for(data)["x-amz-checksum-crc32"]}}


@pytest.mark.parametrize(("header", "code"), [
    ("x-amz-content-sha256", "XAmzContentSHA256Mismatch"),
    ("x-amz-checksum-crc32", "BadDigest"),
    ("content-md5", "BadDigest"),
])
async def test_a_large_body_with_one_false_claim_is_refused(header: str, code: str) -> None:
    data = os.urandom(4 * MiB + 1)
    other = data[:-1] + bytes([data[-1] ^ 1])  # the claim describes other bytes
    with pytest.raises(S3Error) as e:
        await read(data, headers_for(data, **{header: headers_for(other)[header]}))
    assert e.value.code == code


class _Connection:
    """The side of aiohttp's protocol a StreamReader calls: a connection that stays up
    (flow control is not what these tests are about)."""

    connected = True
    _reading_paused = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def aiohttp_stream(pieces: list[bytes], *, eof: bool = True) -> object:
    """aiohttp's own StreamReader (what a request's content is), fed these pieces."""
    import asyncio

    from aiohttp.streams import StreamReader
    loop = asyncio.get_running_loop()
    reader = StreamReader(_Connection(), 1 << 16, loop=loop)  # type: ignore[arg-type]
    for p in pieces:
        reader.feed_data(p)
    if eof:
        reader.feed_eof()
    return reader


async def test_pieces_received_by_aiohttp_are_passed_on_as_they_are_not_joined() -> None:
    pieces = [os.urandom(n) for n in (70_000, 300_000, 5, 1 * MiB)]
    data = b"".join(pieces)
    body = Body(aiohttp_stream(pieces), headers_for(data), None)
    got = [piece async for piece in body.pieces()]
    assert len(got) == len(pieces) and all(g is p for g, p in zip(got, pieces))
    assert body.verify(len(data), hashlib.md5(data).hexdigest()) == {
        "checksums": {"CRC32": headers_for(data)["x-amz-checksum-crc32"]}}


async def test_pieces_that_arrive_while_the_body_waits_are_read_in_order() -> None:
    import asyncio
    pieces = [os.urandom(200_000) for _ in range(5)]
    data = b"".join(pieces)
    reader = aiohttp_stream([], eof=False)
    loop = asyncio.get_running_loop()
    for i, p in enumerate(pieces):
        loop.call_later(0.01 * (i + 1), reader.feed_data, p)  # type: ignore[attr-defined]
    loop.call_later(0.01 * (len(pieces) + 1), reader.feed_eof)  # type: ignore[attr-defined]
    body = Body(reader, headers_for(data), None, idle_timeout=30)
    assert b"".join([piece async for piece in body.pieces()]) == data
    body.verify(len(data), hashlib.md5(data).hexdigest())


async def test_a_client_that_stops_sending_mid_body_gets_request_timeout() -> None:
    data = os.urandom(100_000)
    body = Body(aiohttp_stream([data[:50_000]], eof=False), headers_for(data), None,
                idle_timeout=0.2)
    got = []
    with pytest.raises(S3Error) as e:
        async for piece in body.pieces():
            got.append(piece)
    assert e.value.code == "RequestTimeout" and b"".join(got) == data[:50_000]


def _aws_chunked(data: bytes, piece: int = 64 * 1024) -> bytes:
    """data framed as an unsigned aws-chunked body (no trailer, no final chunk: cut short)."""
    return b"".join(b"%x\r\n" % len(data[i:i + piece]) + data[i:i + piece] + b"\r\n"
                    for i in range(0, len(data), piece))


@pytest.mark.parametrize("framing", ["http-chunked", "aws-chunked"])
async def test_a_body_of_no_declared_length_stops_at_the_size_limit(framing: str) -> None:
    """Without a declared length (HTTP chunked, or aws-chunked without
    x-amz-decoded-content-length) the body is still capped: EntityTooLarge once past the
    limit, before much more is read."""
    limit = 2 * MiB
    data = os.urandom(limit + MiB)
    if framing == "aws-chunked":
        body = Body(Content(_aws_chunked(data)), {
            "content-encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}, None, max_size=limit)
    else:
        body = Body(Content(data), {"transfer-encoding": "chunked"}, None, max_size=limit)
    got = 0
    with pytest.raises(S3Error) as e:
        async for piece in body.pieces():
            got += len(piece)
    assert e.value.code == "EntityTooLarge" and e.value.status == 400
    assert got <= limit
    # At the limit exactly, the body is whole.
    ok = Body(Content(data[:limit]), {"transfer-encoding": "chunked"}, None, max_size=limit)
    assert sum([len(p) async for p in ok.pieces()]) == limit
