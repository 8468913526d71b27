"""Chunks as objects in any S3-compatible store: BUCKET/PREFIX/xx/yy/<016x id>.

xx/yy are the id's two low bytes (as in the local store): chunk ids are handed out
sequentially, so leading with the fast-moving bytes spreads writes over 65536 key
prefixes that a real store can partition.

One aiobotocore client serves listings, deletes and probes; chunk GETs and PUTs skip
botocore's request machinery (~1.5 ms of CPU per request, a fifth of the gateway's CPU per
MB moved) and go out as presigned URLs (presign.py signs them once the store's URL shape
is learned from botocore). An aiohttp session sends the PUTs; the GETs are received
straight into one buffer per chunk by http_get.py (aiohttp copied every byte three
times), or through aiohttp when the environment names a proxy for the store. A semaphore
bounds requests in flight to the pools' size so a burst queues here instead of in a pool.
botocore's own retries are off: this module owns the budget (bounded attempts, full-jitter
exponential backoff, one deadline per request), so a stalled backend turns into a clean
error within a known time instead of stacking botocore's retries under ours.

Uploads carry x-amz-checksum-crc32c, which the store verifies before it stores (AWS,
MinIO, recent Ceph RGW, samebytes itself); CRC32C runs at ~40 GB/s here against MD5's
0.6 GB/s, and on a 2-core box the upload path is CPU-bound.
Every read is verified against the chunk's xxh3 block sums (kept in metadata), once per
fetched range; a mismatch is fetched once more (a flipped bit on the wire) and then raised
as ChunkCorrupt.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import re
import socket
import ssl
import time
from datetime import datetime, timezone
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from awscrt.checksums import crc32c

from . import http_get
from .presign import Credentials, UrlShape
from .base import (
    ChunkCorrupt,
    ChunkError,
    ChunkInfo,
    ChunkMissing,
    ChunkStore,
    ChunkUnavailable,
    block_count,
    block_sums,
    chunk_name,
    covering_range,
    verify_blocks,
)

T = TypeVar("T")
# A piece of a fetched chunk: a read-only view of the buffer it was received into.
Segment = bytes | memoryview
log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({500, 502, 503, 504})
# BadDigest / XAmzContentSHA256Mismatch: the backend got other bytes than we sent (the
# wire flipped a bit); ours are still good, so sending them again is the fix.
_RETRY_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout",
                          "RequestTimeTooSkewed", "Throttling", "ThrottlingException",
                          "BadDigest", "XAmzContentSHA256Mismatch"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where chunks live and how to reach the store."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    addressing: str = "path"  # or "virtual"
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> S3Location:
        """s3://BUCKET/PREFIX -> S3Location (the prefix may be empty)."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"chunk backend {url!r}: expected s3://BUCKET/PREFIX")
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"), **kw)

    def with_env_credentials(self) -> S3Location:
        """Fill credentials from SAMEBYTES_CHUNKS_* (else botocore reads AWS_* itself)."""
        ak = self.access_key or os.environ.get("SAMEBYTES_CHUNKS_ACCESS_KEY")
        sk = self.secret_key or os.environ.get("SAMEBYTES_CHUNKS_SECRET_KEY")
        return S3Location(self.bucket, self.prefix, self.endpoint, self.region,
                          self.addressing, ak, sk)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6           # total tries per request
    deadline: float = 30.0      # seconds for one request, all attempts and backoff included
    base_delay: float = 0.05    # first backoff cap; doubles per attempt
    max_delay: float = 2.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0

    def backoff(self, attempt: int) -> float:
        # Full jitter: uniform over [0, cap) spreads a herd of clients retrying together.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))


class _Retryable(Exception):
    """A failure worth another attempt; detail says what happened."""


class _HttpError(Exception):
    """A plain-HTTP request (a presigned GET) answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code or status}: {message}".rstrip(": "))
        self.status, self.code = status, code


_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]{0,300})</Message>")


def _classify(exc: BaseException) -> tuple[str, bool, bool]:
    """(detail, retryable, missing) for an exception raised by one attempt."""
    from botocore.exceptions import BotoCoreError, ClientError
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code or status}: {err.get('Message', '')}".rstrip(": ")
        if code in _MISSING_CODES or status == 404:
            return detail, False, True
        return detail, code in _RETRY_CODES or status in _RETRY_STATUS, False
    if isinstance(exc, _HttpError):
        if exc.code in _MISSING_CODES or exc.status == 404:
            return str(exc), False, True
        return str(exc), exc.code in _RETRY_CODES or exc.status in _RETRY_STATUS, False
    if isinstance(exc, _Retryable):
        return str(exc), True, False
    if isinstance(exc, (asyncio.TimeoutError, BotoCoreError, OSError)):
        return f"{type(exc).__name__}: {exc}", True, False
    import aiohttp
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__}: {exc}", True, False
    return f"{type(exc).__name__}: {exc}", False, False


def _http_error(status: int, text: bytes, reason: str | None) -> _HttpError:
    """The error an S3 error response describes (its <Code> and <Message>, if any)."""
    code = _ERROR_CODE.search(text)
    msg = _ERROR_MESSAGE.search(text)
    return _HttpError(status, code[1].decode() if code else "",
                      msg[1].decode(errors="replace") if msg else reason or "")


async def _check_status(resp: Any, ok: tuple[int, ...]) -> None:
    """Raise _HttpError (status, S3 error code and message) unless resp.status is ok."""
    if resp.status in ok:
        return
    raise _http_error(resp.status, await resp.content.read(4096), resp.reason)


async def _read_stream(content: Any, expect: int, segment: int) -> list[bytes]:
    """A whole response body (an aiohttp StreamReader) as pieces of `segment` bytes (the
    last one short; more bytes than expected make a longer last piece), each byte copied
    once: the pieces as received, joined at segment boundaries.

    StreamingBody.read() costs two copies of every byte (aiohttp joins what is buffered,
    then joins those joins); readchunk() hands over each received piece as it is. The
    limits are raised to the expected size so aiohttp does not pause and resume the
    socket every 128 KiB.
    """
    content.set_read_chunk_size(max(expect, 1 << 16))
    out: list[bytes] = []
    parts: list[bytes | memoryview] = []
    have = 0    # bytes in parts
    closed = 0  # bytes in out
    while True:
        piece, chunk_end = await content.readchunk()
        if not piece:
            if chunk_end:  # the end of one piece of a chunked encoding; more follow
                continue
            break
        view = memoryview(piece)
        # Cut whole segments while more than one is expected after them; the last takes
        # whatever remains, so a body of the wrong length keeps its length for the check.
        while have + len(view) >= segment and closed + segment < expect:
            take = segment - have
            parts.append(view[:take])
            out.append(b"".join(parts))
            closed += segment
            parts, have, view = [], 0, view[take:]
        if len(view):
            parts.append(piece if len(view) == len(piece) else view)
            have += len(view)
    if parts:
        out.append(b"".join(parts))
    return out


def _verified_segments(info: ChunkInfo, got: bytearray | list[bytes], pos: int, stop: int,
                       segment: int) -> list[Segment]:
    """The fetched bytes [pos, stop) as `segment`-sized pieces, checked against the chunk's
    sums first (ChunkCorrupt names the first bad block)."""
    cid = info.chunk_id
    block = info.block_size
    size = len(got) if isinstance(got, bytearray) else sum(len(s) for s in got)
    if size != stop - pos:
        raise ChunkCorrupt(cid, (pos + min(size, stop - pos)) // block,
                           f"backend returned {size} bytes for {pos}..{stop}")
    if isinstance(got, list):
        for i, seg in enumerate(got):
            verify_blocks(cid, seg, (pos + i * segment) // block, info.sums, block)
        return list(got)
    # One pass over the whole range; then read-only views, so no holder can change bytes
    # that others were promised are verified.
    view = memoryview(got).toreadonly()
    verify_blocks(cid, view, pos // block, info.sums, block)
    return [view[i:i + segment] for i in range(0, size, segment)]


# SO_SNDBUF of an upload connection: a whole 4 MiB chunk body fits the socket at once,
# from the connection's first request. Autotuning starts at tcp_wmem's default (16 KiB
# here) and a store that closes every connection (moto) never let it grow: the gateway
# then woke for every few hundred KiB sent (gateway kernel CPU on a 64 MiB PUT 0.53 ->
# 0.44 ms/MB). Capped by net.core.wmem_max.
UPLOAD_SEND_BUFFER = 4 << 20


def _upload_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket_factory for the upload connections."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UPLOAD_SEND_BUFFER)
    except OSError:  # not fatal: the kernel's autotuned buffer still works
        pass
    return sock


def _chunk_body_type() -> type:
    from aiohttp.payload import BytesPayload

    class ChunkBody(BytesPayload):
        """A chunk upload's body, sent from its own buffer without a copy. aiohttp's own
        BytesPayload copies a bytearray twice: it slices it to the Content-Length (a
        bytearray slice is a copy), and on Python before 3.12.9 its writer joins the
        request head with the first body write into one new bytes. Here the first write
        is one byte (the join copies the head and that byte) and the rest goes as a
        memoryview, which the transport sends from the buffer itself."""

        async def write(self, writer: Any) -> None:
            await self.write_with_length(writer, None)

        async def write_with_length(self, writer: Any, content_length: int | None) -> None:
            view = memoryview(self._value)
            if content_length is not None:
                view = view[:content_length]
            await writer.write(view[:1])
            if len(view) > 1:
                await writer.write(view[1:])

    return ChunkBody


_chunk_body: type | None = None


def _chunk_body_of(body: bytes | bytearray | memoryview) -> Any:
    """The aiohttp payload that uploads body (a ChunkBody)."""
    global _chunk_body
    if _chunk_body is None:  # aiohttp is imported with the store's client, not before
        _chunk_body = _chunk_body_type()
    return _chunk_body(body)


class S3ChunkStore(ChunkStore):
    name = "s3"
    # 4 in flight left a second samebytes gateway as the store waiting on its
    # per-chunk fsync + commit (bench.chunks_s3 put_gateway 68 MB/s; 12 gave 134-147).
    write_ahead = 8

    def __init__(self, location: S3Location, *, concurrency: int = 32,
                 policy: RetryPolicy | None = None, list_page: int = 1000) -> None:
        self.list_page = list_page
        self.location = location.with_env_credentials()
        self.policy = policy or RetryPolicy()
        self._concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        self._http: Any = None  # aiohttp.ClientSession for presigned PUTs (and proxied GETs)
        self._getter: http_get.GetClient | None = None  # chunk GETs straight into a buffer
        self._proxies: dict[str, tuple[Any, Any]] = {}  # origin -> (proxy, auth) or (None, None)
        self._shapes: dict[str, UrlShape | None] = {}  # op -> learned URL shape (None: botocore)
        self._expires = int(self.policy.deadline) + 300  # presigned URLs outlive a request
        self._closed = False

    @staticmethod
    def _rel(chunk_id: int) -> str:
        name = chunk_name(chunk_id)
        return f"{name[14:16]}/{name[12:14]}/{name}"

    def key(self, chunk_id: int) -> str:
        rel = self._rel(chunk_id)
        return f"{self.location.prefix}/{rel}" if self.location.prefix else rel

    async def _presigned(self, client: Any, op: str, chunk_id: int, params: dict[str, Any],
                         signed: dict[str, str]) -> str:
        """A presigned URL for op on the chunk, signing the headers `signed` (lower-case
        names) besides host. The first URL of each op comes from botocore and teaches
        UrlShape the store's URL shape; later ones are signed here (presign.py) unless
        that shape could not reproduce botocore's signature."""
        method = "GET" if op == "get_object" else "PUT"
        shape = self._shapes.get(op)
        creds = None
        raw = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if raw is not None and (shape is not None or op not in self._shapes):
            frozen = await raw.get_frozen_credentials()
            creds = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        if shape is not None and creds is not None:
            return shape.url(method, self._rel(chunk_id), creds, self._expires,
                             datetime.now(timezone.utc), signed)
        url: str = await client.generate_presigned_url(op, Params=params,
                                                       ExpiresIn=self._expires)
        if op not in self._shapes:
            learned = (UrlShape.learn(url, self._rel(chunk_id), creds, method, signed)
                       if creds is not None else None)
            self._shapes[op] = learned
            if learned is None:
                log.info("s3 chunks: %s URLs keep botocore's presigner (own signature differs)",
                         op)
        return url

    def _id_of(self, key: str) -> int | None:
        base = key.rsplit("/", 1)[-1]
        if len(base) != 16:
            return None
        try:
            cid = int(base, 16)
        except ValueError:
            return None
        return cid if chunk_name(cid) == base and self.key(cid) == key else None

    async def client(self) -> Any:
        if self._closed:
            raise RuntimeError("S3ChunkStore is closed")
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session
                loc, pol = self.location, self.policy
                cfg = AioConfig(
                    max_pool_connections=self._concurrency,
                    connect_timeout=pol.connect_timeout, read_timeout=pol.read_timeout,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    # SigV4 for presigned URLs too (botocore would presign with SigV2,
                    # which newer AWS regions and some stores refuse).
                    signature_version="s3v4",
                    # No SHA-256 of a body in a signature (botocore signs it over plain
                    # http by default; it cost ~0.75 ms/MB on each side): chunk uploads,
                    # presigned below, carry x-amz-checksum-crc32c, which the store checks.
                    s3={"addressing_style": loc.addressing, "payload_signing_enabled": False},
                    # Our own xxh3 verifies every read; the CRC32C header every upload.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(get_session().create_client(
                    "s3", endpoint_url=loc.endpoint, region_name=loc.region,
                    aws_access_key_id=loc.access_key, aws_secret_access_key=loc.secret_key,
                    config=cfg))
                # Chunk GETs and PUTs skip botocore's request machinery: a presigned URL
                # (signed locally, ~0.2 ms) sent with plain aiohttp costs ~0.7 ms of CPU
                # per request where get_object costs ~2.3 ms (measured against moto; 16
                # requests per 64 MiB made that a fifth of the gateway's CPU per MB), and
                # a chunk body goes out from its own buffer (ChunkBody; botocore copied
                # each chunk, and so does aiohttp's own payload for a bytearray).
                import aiohttp
                # As botocore would: HTTP(S)_PROXY from the environment, AWS_CA_BUNDLE.
                bundle = os.environ.get("AWS_CA_BUNDLE")
                tls: Any = ssl.create_default_context(cafile=bundle) if bundle else True
                # trust_env stays off: with it aiohttp looks up the proxy and ~/.netrc in a
                # worker thread on EVERY request (two thread hops per chunk); _proxy()
                # looks the proxy up once per origin instead, and a netrc Authorization
                # header has no business on a presigned request anyway.
                self._http = await stack.enter_async_context(aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self._concurrency, ssl=tls,
                                                   socket_factory=_upload_socket),
                    timeout=aiohttp.ClientTimeout(sock_connect=pol.connect_timeout,
                                                  sock_read=pol.read_timeout),
                    auto_decompress=False, skip_auto_headers=("User-Agent",)))
                self._getter = http_get.GetClient(
                    ssl=tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context(),
                    connect_timeout=pol.connect_timeout, read_timeout=pol.read_timeout,
                    keep=self._concurrency)
                stack.callback(self._getter.close)
                self._stack = stack
        return self._client

    def _proxy(self, url: str) -> tuple[Any, Any]:
        """(proxy URL, proxy auth) for url's origin from HTTP(S)_PROXY / NO_PROXY, as
        aiohttp's trust_env would find them; (None, None) when it goes direct."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(origin)
        if found is None:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL
            try:
                found = get_env_proxy_for_url(URL(origin))
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    async def _call(self, chunk_id: int | None, what: str,
                    attempt_fn: Callable[[Any], Awaitable[T]],
                    policy: RetryPolicy | None = None) -> T:
        """Run attempt_fn(client) under the retry budget; map failures to ChunkError."""
        pol = policy or self.policy
        deadline = time.monotonic() + pol.deadline
        last = "no attempt made"
        for attempt in range(pol.attempts):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                client = await self.client()
                async with self._sem:
                    return await asyncio.wait_for(attempt_fn(client), left)
            except (ChunkError, asyncio.CancelledError):
                raise
            except Exception as e:  # classified below; anything unknown is not retried
                last, retryable, missing = _classify(e)
                if missing:
                    raise ChunkMissing(chunk_id, f"{what}: not found in the backend") from e
                if not retryable:
                    raise ChunkError(chunk_id, f"{what}: {last}") from e
                log.debug("%s %s attempt %d: %s", what, chunk_id, attempt + 1, last)
            if attempt + 1 < pol.attempts:
                await asyncio.sleep(min(pol.backoff(attempt), max(0.0, deadline - time.monotonic())))
        raise ChunkUnavailable(chunk_id, f"{what}: backend unavailable after {attempt + 1} attempts "
                                   f"within {pol.deadline:g}s (last: {last})")

    # --- put -------------------------------------------------------------------------

    async def put(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        # The body goes out from the caller's buffer as it is (bytes, bytearray, or a
        # view of a pooled buffer, which the caller reuses only after this returns):
        # a copy of a 4 MiB chunk into fresh memory costs more than the upload's CPU.
        body = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B")

        sums = block_sums(body)  # xxh3: ~1 ms for a 4 MiB chunk, no thread hop needed
        crc = base64.b64encode(crc32c(body).to_bytes(4, "big")).decode()
        key = self.key(chunk_id)

        # The checksum and the length are signed into the URL, so the store checks the
        # bytes against the CRC32C we computed; the body goes out from its buffer as it
        # is (ChunkBody).
        params = {"Bucket": self.location.bucket, "Key": key, "ChecksumCRC32C": crc,
                  "ContentLength": len(body)}
        headers = {"x-amz-checksum-crc32c": crc, "Content-Length": str(len(body))}

        signed = {"content-length": str(len(body)), "x-amz-checksum-crc32c": crc}

        async def attempt(client: Any) -> None:
            url = await self._presigned(client, "put_object", chunk_id, params, signed)
            proxy, proxy_auth = self._proxy(url)
            async with self._http.put(url, data=_chunk_body_of(body), headers=headers,
                                      proxy=proxy, proxy_auth=proxy_auth) as resp:
                await _check_status(resp, (200,))
                await resp.read()

        await self._call(chunk_id, "upload", attempt)
        return ChunkInfo(chunk_id, len(body), sums)

    # --- get -------------------------------------------------------------------------

    async def get(self, info: ChunkInfo, offset: int = 0, length: int | None = None) -> bytes:
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        block = info.block_size
        pos = first_block * block
        stop = min(block_count(end, block) * block, info.size)
        buf = await self.fetch_verified(info, pos, stop)
        if pos == start and stop == end:
            return buf
        return buf[start - pos:end - pos]

    async def fetch_verified(self, info: ChunkInfo, pos: int, stop: int) -> bytes:
        """Bytes [pos, stop) (block-aligned, or to the chunk's end), verified; one re-fetch
        on a mismatch, then ChunkCorrupt. Bad bytes never leave this method."""
        if stop <= pos:
            return b""
        block = info.block_size
        segs = await self.fetch_segments(info, pos, stop, block_count(stop - pos, block) * block)
        return bytes(segs[0]) if len(segs) == 1 else b"".join(segs)

    async def fetch_segments(self, info: ChunkInfo, pos: int, stop: int,
                             segment: int) -> list[Segment]:
        """fetch_verified, as pieces of `segment` bytes (a multiple of the chunk's block
        size; the last may be short): read-only views of the one buffer the body was
        received into (or, through a proxy, bytes joined once from what aiohttp received).
        A reader that takes the chunk in pieces of that size gets them without a copy."""
        block = info.block_size
        if segment % block or segment <= 0:
            raise ValueError(f"segment {segment} is not a positive multiple of {block}")
        cid = info.chunk_id
        key = self.key(cid)
        whole = pos == 0 and stop == info.size

        headers = {} if whole else {"Range": f"bytes={pos}-{stop - 1}"}
        params = {"Bucket": self.location.bucket, "Key": key}

        async def attempt(client: Any) -> bytearray | list[bytes]:
            url = await self._presigned(client, "get_object", cid, params, {})
            proxy, proxy_auth = self._proxy(url)
            getter = self._getter
            if getter is not None and proxy is None:
                try:
                    resp = await getter.get(url, headers, stop - pos)
                except http_get.WrongLength as e:
                    raise ChunkCorrupt(cid, (pos + min(e.length, stop - pos)) // block,
                                       f"backend returned {e.length} bytes for {pos}..{stop}"
                                       ) from e
                except http_get.Unsupported as e:
                    log.warning("s3 chunks: %s answers GETs without a Content-Length (%s); "
                                "reading them through aiohttp from now on", url.split("?")[0], e)
                    self._getter = None
                else:
                    if resp.status not in (200, 206):
                        raise _http_error(resp.status, bytes(resp.body), resp.reason)
                    return resp.body
            async with self._http.get(url, headers=headers, proxy=proxy,
                                      proxy_auth=proxy_auth) as aresp:
                await _check_status(aresp, (200, 206))
                return await _read_stream(aresp.content, stop - pos, segment)

        for tries in (1, 2):
            try:
                got = await self._call(cid, "download", attempt)
                return _verified_segments(info, got, pos, stop, segment)
            except ChunkCorrupt:
                if tries == 2:
                    raise
                log.warning("chunk %s: corrupt bytes from the backend, fetching again",
                            chunk_name(cid))
        raise AssertionError("unreachable")

    # --- the rest --------------------------------------------------------------------

    async def delete(self, chunk_id: int) -> None:
        key = self.key(chunk_id)

        async def attempt(client: Any) -> None:
            await client.delete_object(Bucket=self.location.bucket, Key=key)

        try:
            await self._call(chunk_id, "delete", attempt)
        except ChunkMissing:
            pass

    async def exists(self, chunk_id: int) -> bool:
        key = self.key(chunk_id)

        async def attempt(client: Any) -> None:
            await client.head_object(Bucket=self.location.bucket, Key=key)

        try:
            await self._call(chunk_id, "head", attempt)
        except ChunkMissing:
            return False
        return True

    async def ids(self) -> AsyncIterator[tuple[int, float]]:
        async for cid, mtime, _ in self.sized_ids():
            yield cid, mtime

    async def sized_ids(self) -> AsyncIterator[tuple[int, float, int | None]]:
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        token: str | None = None
        while True:
            async def attempt(client: Any, token: str | None = token) -> dict[str, Any]:
                kw: dict[str, Any] = {"ContinuationToken": token} if token else {}
                return await client.list_objects_v2(Bucket=self.location.bucket, Prefix=prefix,
                                                    MaxKeys=self.list_page, **kw)

            page = await self._call(None, "listing", attempt)
            for obj in page.get("Contents", ()):
                cid = self._id_of(obj["Key"])
                if cid is not None:
                    yield cid, obj["LastModified"].timestamp(), int(obj.get("Size", 0))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def check(self) -> None:
        async def attempt(client: Any) -> None:
            await client.head_bucket(Bucket=self.location.bucket)

        # A readiness probe must answer quickly, not wait out a full request deadline.
        quick = RetryPolicy(attempts=2, deadline=min(5.0, self.policy.deadline),
                            connect_timeout=self.policy.connect_timeout,
                            read_timeout=self.policy.read_timeout)
        try:
            await self._call(None, "probe", attempt, quick)
        except ChunkMissing as e:
            raise ChunkError(None, f"bucket {self.location.bucket!r} does not exist") from e

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
