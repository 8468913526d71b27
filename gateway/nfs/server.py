"""The ONC RPC server over TCP (asyncio): record marking in, concurrent dispatch,
replies out in the order they finish.

Each connection reads records and starts one task per call, up to MAX_IN_FLIGHT at
once (then it stops reading: TCP backpressure), so a slow COMMIT does not hold up the
READs behind it. Replies carry the call's xid; clients match them. A record over the
size limit, or a stream that is not RPC, closes that connection only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .rpc import (BadMessage, Body, RecordReader, RecordTooLarge, Registry, Rejected,
                  parse_call, record_mark)

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
READ_SIZE = 1 << 20


class RpcServer:
    def __init__(self, registry: Registry, *, max_record: int | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.registry = registry
        self.max_record = max_record
        self.max_in_flight = max_in_flight
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (port 0 picks one)."""
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True,
                                                  backlog=256, limit=READ_SIZE)
        return int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._connections):
            t.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername") or ("", 0)
        peer = (str(peer[0]), int(peer[1]))
        conn = _Connection(self, reader, writer, peer)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("NFS connection from %s failed", peer)
        finally:
            await conn.finish()
            self._connections.discard(task)


class _Connection:
    def __init__(self, server: RpcServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: tuple[str, int]) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.slots = asyncio.Semaphore(server.max_in_flight)
        self.calls: set[asyncio.Task[None]] = set()
        kw: dict[str, Any] = {} if server.max_record is None else {"max_record": server.max_record}
        self.records = RecordReader(**kw)

    async def run(self) -> None:
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data:
                return
            try:
                records = self.records.feed(data)
            except RecordTooLarge as e:
                log.warning("closing NFS connection from %s: %s", self.peer[0], e)
                return
            for record in records:
                try:
                    call = parse_call(record, self.peer)
                except Rejected as e:
                    await self._send([e.reply])
                    continue
                except BadMessage as e:
                    # No xid to answer (or not a call): this is not an RPC client.
                    log.warning("closing NFS connection from %s: %s", self.peer[0], e)
                    return
                await self.slots.acquire()
                t = asyncio.get_running_loop().create_task(self._answer(call))
                self.calls.add(t)
                t.add_done_callback(self.calls.discard)

    async def _answer(self, call: Any) -> None:
        try:
            pieces = await self.server.registry.dispatch(call)
            await self._send(pieces)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.slots.release()

    async def _send(self, pieces: list[Body]) -> None:
        if self.writer.is_closing():
            return
        size = sum(len(p) for p in pieces)
        self.writer.writelines([record_mark(size), *pieces])
        await self.writer.drain()

    async def finish(self) -> None:
        # Calls already running finish (their effects are committed or not, atomically)
        # but their replies go nowhere once the socket is closed.
        if self.calls:
            await asyncio.gather(*list(self.calls), return_exceptions=True)
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
