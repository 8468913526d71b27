"""Deadlines aiohttp does not have: a connection must deliver a complete request head
within ``header_timeout`` seconds (slowloris), and a request body must keep moving
(``body_timeout`` seconds between reads, enforced by the S3 door's body reader).

aiohttp's keep-alive timer only runs between requests, after a response: a client
that connects and sends nothing, or dribbles one header byte at a time, would hold its
connection (and a file descriptor) forever. ``HeadDeadline`` wraps each connection's
protocol: its clock starts when the connection opens and again when the first byte of
a later request arrives, and stops when the application sees the request (the
``marks_requests`` handler wrapper); a periodic sweep closes a connection whose clock
ran past the timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 20.0  # what S3 clients tolerate for a slow start
DEFAULT_BODY_TIMEOUT = 60.0    # idle seconds between body reads before RequestTimeout

_BY_TRANSPORT: dict[asyncio.BaseTransport, HeadDeadline] = {}
# One sweep per event loop checks every connection's pending head, instead of a timer
# armed and cancelled per request (call_later + cancel cost a small GET ~2 us).
_SWEEPS: dict[asyncio.AbstractEventLoop, tuple[asyncio.TimerHandle, float]] = {}
# A late head is noticed within this fraction of its timeout after the deadline.
SWEEP_FRACTION = 0.25


def _schedule_sweep(loop: asyncio.AbstractEventLoop, interval: float) -> None:
    current = _SWEEPS.get(loop)
    if current is not None:
        if current[1] <= interval:
            return
        current[0].cancel()  # a connection with a shorter timeout: sweep more often
    _SWEEPS[loop] = (loop.call_later(interval, _sweep, loop, interval), interval)


def _sweep(loop: asyncio.AbstractEventLoop, interval: float) -> None:
    del _SWEEPS[loop]
    now = loop.time()
    watched = False
    for guard in list(_BY_TRANSPORT.values()):
        if guard._loop is loop:
            watched = True
            guard._check(now)
    if watched:
        _schedule_sweep(loop, interval)


class HeadDeadline(asyncio.Protocol):
    """A protocol in front of aiohttp's RequestHandler that closes a connection whose
    request head is late (by up to SWEEP_FRACTION of the timeout)."""

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()  # protocols are made by the loop
        self._since: float | None = None  # loop time the pending request head began
        self._transport: asyncio.BaseTransport | None = None
        self._active = 0  # requests the application is handling on this connection

    def _check(self, now: float) -> None:
        since = self._since
        if (since is not None and self._active == 0 and now - since >= self._timeout
                and self._transport is not None):
            self._since = None
            log.info("closing a connection whose request head did not arrive within %.0f s",
                     self._timeout)
            self._transport.abort()

    def request_started(self) -> None:
        self._active += 1
        self._since = None

    def request_finished(self) -> None:
        self._active -= 1

    # -- asyncio.Protocol, forwarded ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        _BY_TRANSPORT[transport] = self
        self._since = self._loop.time()
        _schedule_sweep(self._loop, max(0.01, self._timeout * SWEEP_FRACTION))
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._active == 0 and self._since is None:
            # the first bytes of the next request: its head has a deadline
            self._since = self._loop.time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._since = None
        if self._transport is not None:
            _BY_TRANSPORT.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def marks_requests(handler: Handler) -> Handler:
    """The handler, telling the connection's HeadDeadline that a request head arrived.
    (A wrapper, not an aiohttp middleware: the S3 port runs aiohttp's low-level server.)"""
    async def marked(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        guard = _BY_TRANSPORT.get(transport) if transport is not None else None
        if guard is None:
            return await handler(request)
        guard.request_started()
        try:
            return await handler(request)
        finally:
            guard.request_finished()
    return marked


async def start_server(runner: web.BaseRunner, host: str, port: int, *, ssl: Any = None,
                       header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                       sock: socket.socket | None = None) -> asyncio.AbstractServer:
    """Listen for the runner's application with head deadlines (instead of web.TCPSite),
    on host:port or on an already listening sock."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    factory = lambda: HeadDeadline(server(), header_timeout)  # noqa: E731
    if sock is not None:
        return await loop.create_server(factory, sock=sock, ssl=ssl)
    return await loop.create_server(factory, host, port, ssl=ssl, reuse_address=True,
                                    backlog=1024)
