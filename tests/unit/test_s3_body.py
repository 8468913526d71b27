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
