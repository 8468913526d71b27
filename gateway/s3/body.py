"""The request body of a PUT or UploadPart: payload bytes out of the wire format,
and every integrity claim the client made checked before anything commits.

Formats: a plain body (x-amz-content-sha256 = hex digest or UNSIGNED-PAYLOAD), and
aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] with a signature
per chunk, STREAMING-UNSIGNED-PAYLOAD-TRAILER with a checksum trailer; FACTS.md).
Claims: Content-Length / x-amz-decoded-content-length, x-amz-content-sha256,
Content-MD5, x-amz-checksum-* as a header or as a trailer. A claim that does not
hold raises S3Error, and the vfs then discards the chunks it wrote.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..vfs.hashing import HashStream
from . import chunked, checksums, sigv4
from .errors import S3Error

# Largest single PUT S3 accepts.
MAX_PUT_SIZE = 5 << 30
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _is_hex_sha256(v: str) -> bool:
    return len(v) == 64 and all(c in "0123456789abcdef" for c in v.lower())


def _request_timeout() -> S3Error:
    return S3Error("RequestTimeout", "Your socket connection to the server was not read from "
                   "or written to within the timeout period. Idle connections will be closed.")


class Body:
    def __init__(self, content: Any, headers: Mapping[str, str],
                 verified: sigv4.Verified | None, *, max_size: int = MAX_PUT_SIZE,
                 idle_timeout: float | None = None) -> None:
        self._content = content  # aiohttp StreamReader (anything with iter_chunked/iter_any)
        self._idle = idle_timeout  # seconds a read may wait for bytes; None: forever
        self._headers = headers
        self._verified = verified
        mode = headers.get("x-amz-content-sha256", "")
        encoding = headers.get("content-encoding", "")
        self.streaming = mode.startswith("STREAMING-") or "aws-chunked" in encoding
        self.signed_chunks = mode in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER)
        if self.signed_chunks and verified is None:
            raise S3Error("InvalidRequest", "a signed streaming upload needs a signed request")
        self._sha256 = hashlib.sha256() if _is_hex_sha256(mode) else None
        self._expect_sha256 = mode.lower() if self._sha256 else None
        if self.streaming:
            declared = headers.get("x-amz-decoded-content-length")
        else:
            declared = headers.get("content-length")
            if declared is None and headers.get("transfer-encoding", "").lower() != "chunked":
                raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
        try:
            self.declared = int(declared) if declared is not None else None
        except ValueError:
            raise S3Error("InvalidArgument", "the content length is not a number") from None
        if self.declared is not None and (self.declared < 0 or self.declared > max_size):
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                          status=400)
        self._max_size = max_size  # also a body of no declared length stops there
        self._expected: dict[str, str] = {}
        for name, value in headers.items():
            alg = checksums.algorithm_for_header(name)
            if alg is not None:
                if not checksums.valid_b64(alg, value):
                    raise S3Error("InvalidRequest", f"Value for {name} header is invalid.")
                self._expected[alg] = value
        if len(self._expected) > 1:
            raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header. "
                          "Multiple checksum Types are not allowed.")
        self._trailer_alg: str | None = None
        for name in (n.strip().lower() for n in headers.get("x-amz-trailer", "").split(",") if n.strip()):
            alg = checksums.algorithm_for_header(name)
            if alg is None:
                raise S3Error("InvalidRequest", f"unsupported trailer {name}")
            self._trailer_alg = alg
        wanted = set(self._expected)
        if self._trailer_alg:
            wanted.add(self._trailer_alg)
        sdk_alg = (headers.get("x-amz-sdk-checksum-algorithm") or headers.get("x-amz-checksum-algorithm") or "").upper()
        if sdk_alg:
            if sdk_alg not in checksums.ALGORITHMS:
                raise S3Error("InvalidRequest", f"unsupported checksum algorithm {sdk_alg}")
            wanted.add(sdk_alg)
        self._hashers = {alg: checksums.Checksum(alg) for alg in wanted}
        md5 = headers.get("content-md5")
        self._content_md5: str | None = None
        if md5 is not None:
            try:
                raw = base64.b64decode(md5, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 16:
                raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
            self._content_md5 = raw.hex()
        self._trailers: dict[str, str] = {}
        self.size = 0
        # x-amz-content-sha256 and the checksums run off the event loop, in body
        # order, beside the vfs's MD5 (a boto3 PutObject over HTTP carries both a
        # SHA-256 and a CRC32: on the loop they cost more than receiving the body).
        updaters = ([self._sha256] if self._sha256 is not None else []) + list(self._hashers.values())
        self._hashing = HashStream(*updaters) if updaters else None

    def _take(self, data: bytes) -> None:
        self.size += len(data)
        if self.declared is not None:
            if self.size > self.declared:
                raise S3Error("IncompleteBody", "The body is longer than its declared length")
        elif self.size > self._max_size:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                          status=400)
        if self._hashing is not None:
            self._hashing.update(data)  # bytes: never changed after this

    async def _timed(self, content: Any) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive; a client that sends nothing for idle_timeout
        seconds gets 400 RequestTimeout (S3's answer) instead of holding the request open
        forever. Bytes already buffered are taken without arming the timer (a small
        body arrives with its headers: the timer's set-up was a visible part of a PUT)."""
        buffered = getattr(content, "_buffer", None)  # aiohttp StreamReader's received pieces
        readchunk = getattr(content, "readchunk", None)
        if buffered is not None and readchunk is not None:
            # One received piece at a time, as it is: read_nowait() and iter_any() join
            # whatever is buffered into a new bytes, a copy of most of a large body (4 %
            # of the gateway's CPU on a 64 MiB PUT, and the page faults of its buffers).
            while True:
                if buffered:
                    data, chunk_end = await readchunk()  # returns without waiting
                else:
                    try:
                        async with asyncio.timeout(self._idle):
                            data, chunk_end = await readchunk()
                    except TimeoutError:
                        raise _request_timeout() from None
                if data:
                    yield data
                elif not chunk_end:  # (b"", False): the end of the body
                    return
        read_nowait = getattr(content, "read_nowait", None)
        it = content.iter_any().__aiter__()
        while True:
            if read_nowait is not None:
                data = read_nowait()
                if data:
                    yield data
                    continue
                if content.at_eof():
                    return
            try:
                async with asyncio.timeout(self._idle):
                    data = await it.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _request_timeout() from None
            yield data

    async def pieces(self) -> AsyncIterator[bytes]:
        """The payload bytes, in order, as they arrive."""
        if not self.streaming:
            # Pieces as they arrive: the vfs copies them into chunk buffers anyway, and
            # fixed-size reads would join them into a new buffer first.
            async for data in self._timed(self._content):
                self._take(data)
                yield data
            await self._hashed()
            return
        dec = chunked.Decoder()
        prev = self._verified.seed_signature if self._verified else ""
        chunk_sig: str | None = None
        chunk_hash = hashlib.sha256()
        ended = False
        try:
            async for raw in self._timed(self._content):
                dec.feed(raw)
                while True:
                    ev = dec.next_event()
                    if ev is chunked.NeedData:
                        break
                    if isinstance(ev, chunked.ChunkHeader):
                        chunk_sig, chunk_hash = ev.signature, hashlib.sha256()
                        if self.signed_chunks:
                            if chunk_sig is None:
                                raise S3Error("IncompleteBody", "a chunk of a signed upload has no signature")
                            if ev.size == 0:
                                prev = self._check_chunk(prev, chunk_sig, _EMPTY_SHA256)
                    elif isinstance(ev, chunked.Data):
                        if self.signed_chunks:
                            chunk_hash.update(ev.data)
                        self._take(ev.data)
                        yield ev.data
                    elif isinstance(ev, chunked.ChunkEnd):
                        if self.signed_chunks and chunk_sig is not None:
                            prev = self._check_chunk(prev, chunk_sig, chunk_hash.hexdigest())
                    elif isinstance(ev, chunked.Trailer):
                        self._trailers[ev.name] = ev.value
                    elif isinstance(ev, chunked.End):
                        ended = True
                        if self.signed_chunks and self._trailer_alg is not None:
                            self._check_trailer(prev)
            dec.close()
        except chunked.ChunkedError as e:
            raise S3Error(e.code if e.code in ("IncompleteBody", "InvalidRequest") else "InvalidRequest",
                          e.message) from e
        if not ended:
            raise S3Error("IncompleteBody", "The aws-chunked body ended early")
        await self._hashed()

    async def _hashed(self) -> None:
        """Every piece hashed: verify() may read the digests once pieces() has ended."""
        if self._hashing is not None:
            await self._hashing.drain()

    def _check_chunk(self, prev: str, claimed: str, chunk_sha256: str) -> str:
        assert self._verified is not None
        expected = sigv4.chunk_signature(self._verified, prev, chunk_sha256)
        if not hmac.compare_digest(expected, claimed.lower()):
            raise S3Error("SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.")
        return claimed.lower()

    def _check_trailer(self, prev: str) -> None:
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the trailers are signed too,
        chained to the final chunk's signature."""
        assert self._verified is not None
        claimed = self._trailers.get("x-amz-trailer-signature")
        if claimed is None:
            raise S3Error("IncompleteBody", "The signed trailer has no x-amz-trailer-signature")
        expected = sigv4.trailer_signature(self._verified, prev,
                                           sigv4.canonical_trailer(self._trailers.items()))
        if not hmac.compare_digest(expected, claimed.lower()):
            raise S3Error("SignatureDoesNotMatch", "The trailer signature does not match.")

    def verify(self, size: int, md5_hex: str) -> dict[str, Any]:
        """Every claim about the body, checked once it is all stored; returns the
        checksums to keep with the object."""
        if self.declared is not None and size != self.declared:
            raise S3Error("IncompleteBody", "You did not provide the number of bytes specified by the "
                          "Content-Length HTTP header")
        if self._sha256 is not None and self._sha256.hexdigest() != self._expect_sha256:
            raise S3Error("XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was computed.")
        if self._content_md5 is not None and self._content_md5 != md5_hex:
            raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
        expected = dict(self._expected)
        if self._trailer_alg is not None:
            name = checksums.HEADER[self._trailer_alg]
            value = self._trailers.get(name)
            if value is None:
                raise S3Error("IncompleteBody", f"The trailer {name} promised in x-amz-trailer is missing")
            expected[self._trailer_alg] = value
        stored: dict[str, str] = {}
        for alg, h in self._hashers.items():
            got = h.b64()
            if alg in expected and expected[alg] != got:
                raise S3Error("BadDigest", f"The {alg} you specified did not match the calculated checksum.")
            stored[alg] = got
        return {"checksums": stored} if stored else {}


class _OneShot:
    """A body already read, shaped like aiohttp's StreamReader for Body."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        if self._data:
            yield self._data

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._data:
            yield self._data


async def read_small_body(content: Any, headers: Mapping[str, str], verified: sigv4.Verified | None,
                          limit: int, what: str, *, checksum_headers: bool = True) -> bytes:
    """A request's whole (XML) body of at most limit bytes, once every claim about it held:
    its signed x-amz-content-sha256, Content-MD5, and (checksum_headers) its
    x-amz-checksum-* header; refused as the big bodies are (XAmzContentSHA256Mismatch,
    BadDigest). checksum_headers=False where those headers describe something else
    (CompleteMultipartUpload: the whole object's checksum)."""
    raw = await content.read(limit + 1)
    if len(raw) > limit:
        raise S3Error("MalformedXML", f"The {what} body is too large")
    claims = {k: v for k, v in headers.items()
              if checksum_headers or not (k.startswith("x-amz-checksum-")
                                          or k in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer"))}
    claims["content-length"] = str(len(raw))
    body = Body(_OneShot(raw), claims, verified)
    async for _ in body.pieces():
        pass
    body.verify(len(raw), hashlib.md5(raw).hexdigest())
    return raw
