"""One HTTP/1.1 GET whose body lands in one preallocated buffer: the s3 store's chunk reads.

aiohttp's client hands a body over as the pieces the event loop read: a bytes copy of the
loop's read buffer, then another copy sliced out by its parser, which the store then joined
into segments; three copies of every byte and a Python callback per 64-256 KiB received,
about a third of the gateway's CPU per MB on a GET through the s3 backend (profiled with
perf: memmove 16 %, aiohttp's data_received and the joins the largest Python items). Here
the loop reads straight into the chunk's buffer (an ``asyncio.BufferedProtocol``): the
kernel's copy is the only one, and a 4 MiB body costs a handful of callbacks.

Deliberately small: GET only, keep-alive connections reused per host, bodies with a
Content-Length (what S3 stores send for an object). A success without one raises
``Unsupported`` and the caller reads it another way; proxies are the caller's business
too (it does not use this client when one is configured). Failures are ConnectionError
(OSError) or asyncio.TimeoutError, which the store's retry budget already treats as
retryable; ``read_timeout`` bounds the silence between two reads, as aiohttp's sock_read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .buffers import unfilled_buffer

# The first read of a response: its head and perhaps the first body bytes (those are
# copied into the body buffer once). A head may grow to HEAD_MAX before it is refused.
HEAD_READ = 16 << 10
HEAD_MAX = 64 << 10
# Of an error response only the start is kept: enough for S3's <Code> and <Message>.
ERROR_BODY_MAX = 4096
_NO_BODY = frozenset({204, 304})
# SO_RCVBUF of a connection, set before its handshake: the window it advertises then
# covers a whole 4 MiB chunk response from the start. Left to autotuning, a connection
# starts at tcp_rmem's default (128 KiB here) and grows over many round trips; a store
# that closes every connection (moto answers `Connection: close`) never got past that,
# and the gateway's kernel paid for every window update it sent (0.73-0.83 -> 0.51-0.62
# ms of gateway CPU per MB on a 64 MiB GET through the s3 backend against moto; a
# kept-alive store's autotuned connections measured the same either way). The kernel
# caps it at net.core.rmem_max (4 MiB here) and doubles it for its own bookkeeping.
RECV_BUFFER = 4 << 20


class Unsupported(Exception):
    """A response this client does not read (a success without a Content-Length)."""


class ProtocolError(ConnectionError):
    """The server broke HTTP/1.1 (a malformed head, bytes nobody asked for)."""


class StaleConnection(ConnectionError):
    """A kept-alive connection closed before answering (the server timed it out)."""


class WrongLength(Exception):
    """A success whose Content-Length is not the length asked for (not read)."""

    def __init__(self, length: int) -> None:
        super().__init__(f"Content-Length {length}")
        self.length = length


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytearray          # a success: the whole body; an error: its first bytes


class _GetProtocol(asyncio.BufferedProtocol):
    """One connection; reads one response at a time into the buffer ``begin`` names."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self._waiter: asyncio.Future[Response] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._head = bytearray(HEAD_READ)
        self._filled = 0
        self._expect = 0
        self._ok: tuple[int, ...] = ()
        self._resp: Response | None = None
        self._view: memoryview | None = None  # where body bytes go
        self._got = 0
        self._want = 0
        self._error_body = False  # reading an error's first bytes (length maybe unknown)
        self._received = False
        self._scratch = bytearray(1024)  # bytes between responses land here (and fail)

    # -- one exchange --------------------------------------------------------------------

    def begin(self, expect: int, ok: tuple[int, ...]) -> asyncio.Future[Response]:
        self._expect, self._ok = expect, ok
        self._filled = self._got = self._want = 0
        self._resp, self._view, self._error_body, self._received = None, None, False, False
        self.reusable = False
        self._waiter = self._loop.create_future()
        self._last = self._loop.time()
        self._timer = self._loop.call_later(self._read_timeout, self._check_idle)
        return self._waiter

    def _finish(self, exc: BaseException | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
        self._view = None
        if waiter is None or waiter.done():
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            assert self._resp is not None
            waiter.set_result(self._resp)

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        self._finish(exc)
        if self.transport is not None:
            self.transport.abort()

    def _check_idle(self) -> None:
        self._timer = None
        idle = self._loop.time() - self._last
        if idle >= self._read_timeout:
            self._fail(asyncio.TimeoutError(f"no response bytes for {self._read_timeout:g} s"))
        else:
            self._timer = self._loop.call_later(self._read_timeout - idle, self._check_idle)

    # -- asyncio.BufferedProtocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None:
            return
        if self._error_body and self._resp is not None:
            # An error body without a length ends with the connection: keep what came.
            self._resp.body = self._resp.body[:self._got]
            self._finish()
        elif not self._received:
            self._finish(StaleConnection("the connection closed before a response"))
        else:
            self._finish(ConnectionResetError(
                f"the connection closed mid-response ({exc or 'end of stream'})"))

    def eof_received(self) -> bool | None:
        return False  # close; connection_lost settles the exchange

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._view is not None:
            return self._view[self._got:]
        if self._waiter is None:
            return memoryview(self._scratch)
        if self._filled == len(self._head):
            if len(self._head) >= HEAD_MAX:
                # buffer_updated never runs for this; fail the exchange from here.
                self._fail(ProtocolError(f"response head longer than {HEAD_MAX} bytes"))
                return memoryview(self._scratch)
            # A new buffer, not extend(): the loop may still hold a view of the old one.
            grown = bytearray(2 * len(self._head))
            grown[:self._filled] = self._head
            self._head = grown
        return memoryview(self._head)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._last = self._loop.time()
        self._received = True
        if self._waiter is None:  # nobody asked: the connection is out of step
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            return
        if self._view is not None:
            self._got += nbytes
            self._body_progress()
            return
        self._filled += nbytes
        try:
            self._parse_head()
        except ProtocolError as e:
            self._fail(e)
        except (Unsupported, WrongLength) as e:
            self._fail(e)

    # -- the response --------------------------------------------------------------------

    def _parse_head(self) -> None:
        while True:
            end = self._head.find(b"\r\n\r\n", 0, self._filled)
            if end < 0:
                return
            head = bytes(self._head[:end]).decode("latin-1")
            rest = self._head[end + 4:self._filled]
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"malformed status line {lines[0][:80]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise ProtocolError(f"malformed header line {line[:80]!r}")
                headers[name.lower()] = value.strip()
            if 100 <= status < 200:  # an interim response: the real one follows
                self._head[:len(rest)] = rest
                self._filled = len(rest)
                continue
            break
        keep = headers.get("connection", "").lower()
        self.reusable = (keep != "close") if parts[0] == "HTTP/1.1" else (keep == "keep-alive")
        length_text = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if length_text is not None and not length_text.isdigit():
            raise ProtocolError(f"malformed Content-Length {length_text[:40]!r}")
        length = int(length_text) if length_text is not None and not chunked else None
        resp = Response(status, parts[2] if len(parts) > 2 else "", headers, bytearray())
        self._resp = resp
        if status in self._ok:
            if length is None:
                raise Unsupported("a success without a Content-Length")
            if length != self._expect:
                raise WrongLength(length)
            resp.body = unfilled_buffer(length)  # every byte is received into
            self._want = length
        elif status in _NO_BODY:
            self._want = 0
        else:
            # An error: keep its start; the connection is not reused after it.
            self.reusable = False
            self._want = ERROR_BODY_MAX if length is None else min(length, ERROR_BODY_MAX)
            self._error_body = length is None
            resp.body = bytearray(self._want)
        self._view = memoryview(resp.body)
        early = min(len(rest), self._want)
        if len(rest) > self._want and not self._error_body:
            raise ProtocolError("more bytes than the response's length")
        self._view[:early] = rest[:early]
        self._got = early
        self._body_progress()

    def _body_progress(self) -> None:
        if self._got >= self._want:
            self._finish()
        elif self._error_body and self._resp is not None and (
                b"\r\n0\r\n\r\n" in self._resp.body[:self._got]):
            self._resp.body = self._resp.body[:self._got]  # a chunked error body ended
            self._finish()


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    netloc: str


class GetClient:
    """Keep-alive HTTP/1.1 GETs to the origins of the URLs it is given.

    ``get`` returns a Response; a success's body is a bytearray of exactly ``expect``
    bytes (read in place), anything else raises WrongLength (not read) or Unsupported.
    The caller bounds how many run at once; idle connections beyond ``keep`` are closed.
    """

    def __init__(self, *, ssl: _ssl.SSLContext | None, connect_timeout: float,
                 read_timeout: float, keep: int = 32, recv_buffer: int = RECV_BUFFER) -> None:
        self._ssl = ssl
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keep = keep
        self._recv_buffer = recv_buffer  # 0: the kernel's default (autotuned)
        self._idle: dict[_Origin, list[_GetProtocol]] = {}
        self._closed = False

    async def get(self, url: str, headers: dict[str, str], expect: int,
                  ok: tuple[int, ...] = (200, 206)) -> Response:
        if self._closed:
            raise RuntimeError("GetClient is closed")
        origin, target = _split(url)
        head = [f"GET {target} HTTP/1.1", f"Host: {origin.netloc}"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        while True:
            proto = self._take_idle(origin)
            reused = proto is not None
            if proto is None:
                proto = await self._connect(origin)
            try:
                resp = await self._exchange(proto, request, expect, ok)
            except StaleConnection:
                if reused:
                    continue  # the server dropped an idle connection: a fresh one
                raise
            if proto.reusable and not proto.closed:
                self._give_back(origin, proto)
            elif proto.transport is not None:
                proto.transport.close()
            return resp

    async def _exchange(self, proto: _GetProtocol, request: bytes, expect: int,
                        ok: tuple[int, ...]) -> Response:
        assert proto.transport is not None
        waiter = proto.begin(expect, ok)
        try:
            proto.transport.write(request)
            return await waiter
        except BaseException:
            # Cancelled (a deadline) or failed: the connection is mid-response.
            proto.reusable = False
            proto.closed = True
            proto.transport.abort()
            raise

    def _take_idle(self, origin: _Origin) -> _GetProtocol | None:
        idle = self._idle.get(origin)
        while idle:
            proto = idle.pop()
            if not proto.closed and proto.transport is not None and not proto.transport.is_closing():
                return proto
        return None

    def _give_back(self, origin: _Origin, proto: _GetProtocol) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._keep or self._closed:
            assert proto.transport is not None
            proto.transport.close()
        else:
            idle.append(proto)

    async def _connect(self, origin: _Origin) -> _GetProtocol:
        loop = asyncio.get_running_loop()
        tls = self._ssl if origin.scheme == "https" else None
        async def connect() -> _GetProtocol:
            sock = await _connected_socket(loop, origin.host, origin.port, self._recv_buffer)
            try:
                _, proto = await loop.create_connection(
                    lambda: _GetProtocol(loop, self._read_timeout), sock=sock, ssl=tls,
                    server_hostname=origin.host if tls is not None else None)
            except BaseException:
                sock.close()
                raise
            return proto

        return await asyncio.wait_for(connect(), self._connect_timeout)

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for proto in idle:
                if proto.transport is not None:
                    proto.transport.close()
        self._idle.clear()


async def _connected_socket(loop: asyncio.AbstractEventLoop, host: str, port: int,
                            recv_buffer: int) -> socket.socket:
    """A TCP socket connected to host:port (each address in turn), its receive buffer set
    before the handshake so that the window it advertises covers a whole chunk."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            if recv_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, addr)
            return sock
        except OSError as e:
            sock.close()
            last = e
        except BaseException:
            sock.close()
            raise
    raise last or OSError(f"no address for {host}")


def _split(url: str) -> tuple[_Origin, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(parts.scheme, parts.hostname, port, parts.netloc), target


__all__ = ["GetClient", "ProtocolError", "Response", "StaleConnection", "Unsupported",
           "WrongLength"]
