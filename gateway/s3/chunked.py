"""Sans-IO decoder for `Content-Encoding: aws-chunked` request bodies (after HTTP de-chunking).

Works on a byte stream: pieces arrive in any sizes and never line up with the aws-chunks
(FACTS.md: 128 KiB HTTP chunks around 1 MiB aws-chunks). Feed bytes, pull events (like h11):

    ChunkHeader(size, signature)   "hex-size[;chunk-signature=sig]\\r\\n"
    Data(data)*                    that chunk's payload, emitted as it arrives (a piece that
                                   lies wholly inside a chunk is passed on without a copy)
    ChunkEnd()                     the CRLF after the data (not emitted for the 0-size chunk)
    ... ChunkHeader(0, sig)        the final chunk, then
    Trailer(name, value)*          lower-case name, e.g. x-amz-checksum-crc32, x-amz-trailer-signature
    End()                          the empty line that ends the body; nothing may follow

Layouts accepted (all one grammar, RFC 9112 chunked with S3's extension):
    unsigned + trailer (boto3 over HTTPS)  5\\r\\nhello\\r\\n0\\r\\nx-amz-checksum-crc32:NhCmhg==\\r\\n\\r\\n
    signed (no trailer)                    400;chunk-signature=<sig>\\r\\n<data>\\r\\n0;chunk-signature=<sig>\\r\\n\\r\\n
    signed + trailer                       ...0;chunk-signature=<sig>\\r\\nx-amz-checksum-crc32:..\\r\\n
                                           x-amz-trailer-signature:<sig>\\r\\n\\r\\n
Lenient: upper/lower-case hex and leading zeros in sizes; spaces/tabs around ';' and '=' and at
the end of a chunk line; unknown chunk extensions are ignored; the signature is any token (SigV4a
signatures are longer than 64 hex and the .NET SDK pads them with '*'); whitespace around trailer
values. Signatures and checksums are NOT checked here (the caller does that).
Strict: CRLF line ends only (a bare LF is an error); a chunk line or trailer line longer than
`max_header_line` fails as soon as that many bytes arrived without a line end; sizes above
`max_chunk_size` fail before any data is read; at most `max_trailers` trailer lines; data longer
than declared (no CRLF right after it) fails; bytes after End fail. Buffering is bounded: only a
partial line (<= max_header_line) plus the pieces fed but not yet pulled are held.
The final empty line after the trailers is REQUIRED (RFC 9112; botocore's encoder and the .NET
SDK's send it) and a body cut right after a trailer line cannot be told from a truncated one.
The AWS SigV4 trailer docs example as reproduced in s3s's tests (an extra CRLF between the 0-size
chunk and the trailers, no final CRLF) is therefore rejected; no SDK source seen sends it.
Errors: ChunkedError with .code "IncompleteBody" (input ended early, from close()),
"InvalidChunkSizeError" (bad or too large size), "MalformedTrailerError" (trailer section),
"InvalidRequest" (other framing). An error is sticky: later calls raise it again.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass


class ChunkedError(Exception):
    """Malformed or truncated aws-chunked framing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    size: int
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkEnd:
    pass


@dataclass(frozen=True, slots=True)
class Trailer:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class End:
    pass


class NeedData:
    """Sentinel returned by next_event() (the class itself): feed more bytes first."""


Event = ChunkHeader | Data | ChunkEnd | Trailer | End

_HEX = re.compile(rb"[0-9A-Fa-f]+")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\x20-\x7e\t]*")
_WS = b" \t"
_HEADER, _DATA, _DATA_CRLF, _TRAILER, _DONE = range(5)


class Decoder:
    def __init__(self, *, max_chunk_size: int = 16 << 20, max_header_line: int = 4096,
                 max_trailers: int = 16) -> None:
        self._max_chunk = max_chunk_size
        self._max_line = max_header_line
        self._max_trailers = max_trailers
        self._pieces: deque[bytes] = deque()  # fed, not yet consumed; never holds b""
        self._off = 0                          # read position in self._pieces[0]
        self._line = bytearray()               # a partial chunk/trailer line
        self._state = _HEADER
        self._left = 0                         # data bytes (or CRLF bytes) still due
        self._trailers = 0
        self._error: ChunkedError | None = None
        self._closed = False

    def feed(self, data: bytes) -> None:
        """Add the next bytes of the body (any size; b"" is ignored, it is not EOF)."""
        if self._closed:
            raise ChunkedError("InvalidRequest", "feed() after close()")
        if data:
            self._pieces.append(bytes(data))  # no copy for bytes

    def next_event(self) -> Event | type[NeedData]:
        if self._error is not None:
            raise self._error
        try:
            return self._step()
        except ChunkedError as e:
            self._error = e
            raise

    def close(self) -> None:
        """The input ended. Raises ChunkedError("IncompleteBody") unless End was reached."""
        self._closed = True
        if self._error is not None:
            raise self._error
        if self._state != _DONE:
            self._error = ChunkedError("IncompleteBody", "The aws-chunked body ended before its end")
            raise self._error
        if self._pieces:
            self._error = ChunkedError("InvalidRequest", "bytes after the end of the aws-chunked body")
            raise self._error

    # -- internals -------------------------------------------------------------------------

    def _advance(self, n: int) -> None:
        self._off += n
        if self._off == len(self._pieces[0]):
            self._pieces.popleft()
            self._off = 0

    def _step(self) -> Event | type[NeedData]:
        state = self._state
        if state == _DATA:
            if not self._pieces:
                return NeedData
            piece, off = self._pieces[0], self._off
            n = min(self._left, len(piece) - off)
            data = piece[off:off + n]  # the piece itself (no copy) when it is all data
            self._advance(n)
            self._left -= n
            if self._left == 0:
                self._state, self._left = _DATA_CRLF, 2
            return Data(data)
        if state == _DATA_CRLF:
            while self._left:
                if not self._pieces:
                    return NeedData
                if self._pieces[0][self._off] != b"\r\n"[2 - self._left]:
                    raise ChunkedError("InvalidRequest",
                                       "chunk data not followed by CRLF (longer than its declared size?)")
                self._advance(1)
                self._left -= 1
            self._state = _HEADER
            return ChunkEnd()
        if state == _DONE:
            if self._pieces:
                raise ChunkedError("InvalidRequest", "bytes after the end of the aws-chunked body")
            return NeedData
        code = "InvalidRequest" if state == _HEADER else "MalformedTrailerError"
        line = self._read_line(code)
        if line is None:
            return NeedData
        return self._chunk_header(line) if state == _HEADER else self._trailer(line)

    def _read_line(self, code: str) -> bytes | None:
        """The next CRLF-terminated line without its CRLF, or None if it is not all here."""
        while self._pieces:
            piece, off = self._pieces[0], self._off
            room = self._max_line - len(self._line)
            i = piece.find(b"\n", off, off + room)
            if i < 0:
                if len(piece) - off >= room:
                    raise ChunkedError(code, f"aws-chunked line longer than {self._max_line} bytes")
                self._line += memoryview(piece)[off:]
                self._advance(len(piece) - off)
                continue
            self._line += memoryview(piece)[off:i + 1]
            self._advance(i + 1 - off)
            line = bytes(self._line)
            self._line.clear()
            if not line.endswith(b"\r\n"):
                raise ChunkedError(code, "aws-chunked line not terminated by CRLF")
            return line[:-2]
        return None

    def _chunk_header(self, line: bytes) -> ChunkHeader:
        size_part, semi, ext = line.partition(b";")
        size_hex = size_part.rstrip(_WS)
        if not _HEX.fullmatch(size_hex):
            raise ChunkedError("InvalidChunkSizeError", "chunk size is not a hexadecimal number")
        if len(size_hex.lstrip(b"0")) > 16 or int(size_hex, 16) > self._max_chunk:
            raise ChunkedError("InvalidChunkSizeError",
                               f"chunk size exceeds the maximum of {self._max_chunk} bytes")
        size = int(size_hex, 16)
        signature: str | None = None
        for item in ext.split(b";") if semi else ():
            name, eq, value = item.partition(b"=")
            name, value = name.strip(_WS), value.strip(_WS)
            if not _TOKEN.fullmatch(name) or (eq and not _TOKEN.fullmatch(value)):
                raise ChunkedError("InvalidRequest", "malformed chunk extension")
            if name.lower() == b"chunk-signature":
                if signature is not None or not eq:
                    raise ChunkedError("InvalidRequest", "malformed chunk-signature")
                signature = value.decode("ascii")
        if size:
            self._state, self._left = _DATA, size
        else:
            self._state = _TRAILER
        return ChunkHeader(size, signature)

    def _trailer(self, line: bytes) -> Trailer | End:
        if not line:
            if self._pieces:
                raise ChunkedError("InvalidRequest", "bytes after the end of the aws-chunked body")
            self._state = _DONE
            return End()
        self._trailers += 1
        if self._trailers > self._max_trailers:
            raise ChunkedError("MalformedTrailerError", f"more than {self._max_trailers} trailers")
        name, colon, value = line.partition(b":")
        value = value.strip(_WS)
        if not colon or not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise ChunkedError("MalformedTrailerError", "malformed trailer line")
        return Trailer(name.decode("ascii").lower(), value.decode("ascii"))


async def decode_stream(source: AsyncIterator[bytes],
                        decoder: Decoder | None = None) -> AsyncIterator[Event]:
    """Decode an async stream of body pieces; raises ChunkedError on bad or truncated input."""
    dec = decoder if decoder is not None else Decoder()
    async for piece in source:
        dec.feed(piece)
        while not isinstance(event := dec.next_event(), type):
            yield event
    dec.close()
