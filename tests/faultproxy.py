"""A small fault-injecting HTTP proxy to put between a gateway and its chunk backend.

It runs its own event loop in a thread so synchronous tests can flip faults on and off
while a gateway talks through it:

- ``put_fail_rate``: this fraction of chunk PUTs answer 503 SlowDown (not forwarded);
- ``hold_puts``: chunk PUTs wait (not forwarded) until ``release()``; ``held`` counts them;
- ``flip_gets`` / ``flip_puts``: that many chunk GET / PUT bodies get one bit flipped;
- ``down()`` / ``up()``: stop and restart listening (connection refused in between).

Only chunk objects (keys ending in 16 hex digits) are faulted; bucket probes pass.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections import Counter

import aiohttp
from aiohttp import web

_CHUNK = re.compile(r"/[0-9a-f]{16}$")
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
_RESP_DROP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.put_fail_rate = 0.0
        self.flip_gets = 0
        self.flip_puts = 0
        self.counts: Counter[str] = Counter()
        self.held = 0
        self.gets_in_flight = 0
        self.max_gets_in_flight = 0  # most chunk GETs the backend had open at once
        self._down = False
        self._hold: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._start())
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- controls (called from the test's thread) ------------------------------------------

    def hold_puts(self) -> None:
        async def set_() -> None:
            self._hold = asyncio.Event()
        self._run(set_())

    def release(self) -> None:
        async def rel() -> None:
            if self._hold is not None:
                self._hold.set()
                self._hold = None
        self._run(rel())

    def down(self) -> None:
        async def stop() -> None:
            assert self._site is not None
            self._down = True  # kept-alive connections get reset, new ones refused
            await self._site.stop()
        self._run(stop())

    def up(self) -> None:
        async def start() -> None:
            assert self._runner is not None
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await self._site.start()
            self._down = False
        self._run(start())

    def close(self) -> None:
        async def stop() -> None:
            if self._hold is not None:
                self._hold.set()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()
        try:
            self._run(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- the proxy ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._down and request.transport is not None:
            request.transport.abort()
            raise ConnectionResetError("backend down")
        chunk = bool(_CHUNK.search(request.path))
        body = await request.read()
        if chunk and request.method == "PUT":
            self.counts["put"] += 1
            if random.random() < self.put_fail_rate:
                self.counts["put_503"] += 1
                return web.Response(status=503, content_type="application/xml", body=(
                    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                    b"<Message>Please reduce your request rate.</Message></Error>"))
            if self.flip_puts > 0 and body:
                self.flip_puts -= 1
                self.counts["put_flipped"] += 1
                body = _flip(body)
            if self._hold is not None:
                hold = self._hold
                self.held += 1
                try:
                    await hold.wait()
                finally:
                    self.held -= 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = request.headers.get("Host", "")
        assert self._session is not None
        counted = chunk and request.method == "GET"
        if counted:
            self.gets_in_flight += 1
            self.max_gets_in_flight = max(self.max_gets_in_flight, self.gets_in_flight)
        try:
            async with self._session.request(request.method, self.upstream + request.raw_path,
                                             headers=headers, data=body if body else None) as up:
                payload = await up.read()
                status = up.status
                out_headers = {k: v for k, v in up.headers.items()
                               if k.lower() not in _RESP_DROP}
                if counted:
                    await asyncio.sleep(0.02)  # a backend round-trip that read-ahead can hide
        finally:
            if counted:
                self.gets_in_flight -= 1
        if chunk and request.method == "GET" and status in (200, 206) and payload:
            self.counts["get"] += 1
            if self.flip_gets > 0:
                self.flip_gets -= 1
                self.counts["flipped"] += 1
                payload = _flip(payload)
        return web.Response(status=status, body=payload, headers=out_headers)


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[random.randrange(len(out))] ^= 1 << random.randrange(8)
    return bytes(out)
