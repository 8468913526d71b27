"""The RPC server over TCP: one asyncio Protocol per connection driving the codec.

Per connection: bytes go into a RecordReader; every complete call runs as its own
task, so one slow call (a COMMIT, a large READ) never holds up the others, and
replies are written as each finishes, in any order (clients match them by xid).
At most MAX_IN_FLIGHT calls run per connection: beyond that, and while the
client does not read its replies (transport write buffer full), we stop reading
from the socket, so a fast or hostile client is slowed by TCP, not by our memory.

A record over the limit, or one without even an RPC header, closes that
connection and nothing else. Connections idle for IDLE_TIMEOUT, or stuck in the
middle of a record for RECORD_TIMEOUT (a slow-loris client), are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from typing import cast

from .rpc import (
    MAX_RECORD, BadMessage, Body, RecordReader, RecordTooLarge, Registry, Rejected, RpcCall,
    parse_call, record_mark,
)

log = logging.getLogger("samebytes.nfs")

# Linux clients keep up to 64-128 RPC slots per connection (sunrpc.tcp_max_slot_table_entries
# is 65536, but the default in practice is adaptive from 2 up): 64 keeps a client's pipeline
# full while bounding what one connection can make us buffer (64 x 1 MiB writes).
MAX_IN_FLIGHT = 64
# Linux nfsd drops idle TCP connections after 6 minutes; clients reconnect transparently.
IDLE_TIMEOUT = 360.0
# A record begun but not finished within this long is a client not sending: drop it.
RECORD_TIMEOUT = 120.0
# Stop reading once this much reply data waits for a client that does not read it.
WRITE_HIGH_WATER = 4 << 20
SWEEP_INTERVAL = 5.0


class RpcConnection(asyncio.Protocol):
    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.reader = RecordReader(server.max_record)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.queue: deque[RpcCall] = deque()  # parsed calls waiting for a slot
        self.running: set[asyncio.Task[None]] = set()
        self.reading_paused = False
        self.writing_paused = False
        self.closing = False
        self.last_activity = time.monotonic()
        self.record_started = 0.0  # when the current incomplete record began; 0 = none

    # -- transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # small replies must not wait for Nagle
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.queue.clear()
        self.server.connections.discard(self)
        # Calls already running finish (a WRITE must not be torn in half); their
        # replies go nowhere.

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_activity = time.monotonic()
        try:
            records = self.reader.feed(data)
        except RecordTooLarge as e:
            self._abort(str(e))
            return
        self.record_started = (self.record_started or self.last_activity) \
            if self.reader.in_record else 0.0
        for record in records:
            try:
                call = parse_call(record, self.peer)
            except Rejected as e:
                self._write([e.reply])
                continue
            except BadMessage as e:
                self._abort(str(e))
                return
            self.queue.append(call)
        self._start_calls()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._start_calls()

    # -- calls -----------------------------------------------------------------------

    def _start_calls(self) -> None:
        while self.queue and len(self.running) < self.server.max_in_flight \
                and not self.writing_paused and not self.closing:
            task = asyncio.get_running_loop().create_task(self._run(self.queue.popleft()))
            self.running.add(task)
            task.add_done_callback(self._finished)
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        busy = bool(self.queue) or self.writing_paused \
            or len(self.running) >= self.server.max_in_flight
        if busy and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True
        elif not busy and self.reading_paused:
            self.transport.resume_reading()
            self.reading_paused = False

    async def _run(self, call: RpcCall) -> None:
        reply = await self.server.registry.dispatch(call)
        self._write(reply)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("RPC task failed", exc_info=task.exception())
        self.last_activity = time.monotonic()
        self._start_calls()

    def _write(self, pieces: list[Body]) -> None:
        if self.transport is None or self.closing:
            return
        size = sum(len(p) for p in pieces)
        # One record of one fragment; writelines avoids joining a 1 MiB READ body.
        self.transport.writelines([record_mark(size), *pieces])

    def _abort(self, reason: str) -> None:
        log.info("closing NFS connection from %s: %s", self.peer[0], reason)
        self.close()

    def close(self) -> None:
        self.closing = True
        self.queue.clear()
        if self.transport is not None:
            self.transport.close()

    def sweep(self, now: float) -> None:
        if self.running:
            return
        if self.record_started and now - self.record_started > self.server.record_timeout:
            self._abort("record not completed in time")
        elif now - self.last_activity > self.server.idle_timeout:
            log.debug("closing idle NFS connection from %s", self.peer[0])
            self.close()


class RpcServer:
    """A TCP listener serving the programs in a Registry."""

    def __init__(self, registry: Registry, *, max_record: int = MAX_RECORD,
                 max_in_flight: int = MAX_IN_FLIGHT, idle_timeout: float = IDLE_TIMEOUT,
                 record_timeout: float = RECORD_TIMEOUT,
                 sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.registry = registry
        self.max_record = max_record
        self.max_in_flight = max_in_flight
        self.idle_timeout = idle_timeout
        self.record_timeout = record_timeout
        self.sweep_interval = sweep_interval
        self.connections: set[RpcConnection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RpcConnection(self), host, port,
                                                reuse_address=True)
        self._sweeper = loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.sweep(now)

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop accepting, let running calls finish (up to timeout), close connections."""
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        conns = list(self.connections)
        for c in conns:
            c.queue.clear()  # calls not yet started are dropped; clients retry them
            if c.transport is not None and not c.reading_paused:
                c.transport.pause_reading()
                c.reading_paused = True
        running = [t for c in conns for t in c.running]
        if running:
            done, pending = await asyncio.wait(running, timeout=timeout)
            for t in pending:
                t.cancel()
        for c in conns:
            c.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
