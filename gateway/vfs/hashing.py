"""Hashes of a byte stream (the ETag MD5, S3 checksums) computed off the event loop,
in stream order.

MD5 is the slowest step of a large write (FACTS: ~0.5 GiB/s on one core, more than
receiving and writing the bytes cost together), so it must overlap with them and
never run on the event loop. hashlib releases the GIL for buffers over 2 KiB, so a
worker thread hashes while the loop keeps receiving.

Pieces are hashed one at a time per stream, in the order given (each job starts when
the previous one finished); different streams hash in parallel on the shared pool.
A piece is held until hashed: the caller must not change it afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

# One thread per core: more cannot hash faster, fewer would serialise uploads.
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="md5")
# Pieces up to this size are hashed inline when nothing is queued: a thread hop
# costs more than hashing a few KiB.
INLINE_MAX = 64 << 10

Piece = bytes | bytearray | memoryview


class _Updater(Protocol):
    def update(self, data: Piece, /) -> None: ...


class HashStream:
    """Objects with ``update`` (hashlib hashes, checksums) fed from the event loop
    thread, updated in a worker thread, every piece in the order given."""

    __slots__ = ("_hashers", "_queue", "_running", "_batch", "_error", "_idle", "_loop", "_first")

    def __init__(self, *hashers: _Updater) -> None:
        self._hashers = hashers
        self._first = hashers[0] if hashers else None  # what hexdigest_now reads
        # Pieces to hash, or futures to resolve with the digest of everything before.
        self._queue: deque[Piece | asyncio.Future[str]] = deque()
        self._running: asyncio.Future[None] | None = None
        self._batch = 0  # pieces in the running job
        self._error: BaseException | None = None
        self._idle: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def pending(self) -> int:
        """Pieces queued or being hashed (for back-pressure)."""
        return len(self._queue) + (self._batch if self._running is not None else 0)

    def update(self, data: Piece) -> None:
        if not self._queue and self._running is None and len(data) <= INLINE_MAX:
            self._apply(data)
            return
        self._queue.append(data)
        self._kick()

    def _apply(self, data: Piece) -> None:
        for h in self._hashers:
            h.update(data)

    def _apply_all(self, pieces: list[Piece]) -> None:
        for data in pieces:
            for h in self._hashers:
                h.update(data)

    async def drain(self) -> None:
        """Wait until every piece given so far is hashed (raises if hashing failed)."""
        await self.wait_below(1)

    def hexdigest_now(self) -> asyncio.Future[str]:
        """The hex digest of the first hasher over every piece given so far (later
        pieces are not in it)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        if self._error is not None:
            fut.set_exception(self._error)
        elif not self._queue and self._running is None:
            fut.set_result(self._digest())
        else:
            self._queue.append(fut)
        return fut

    async def hexdigest(self) -> str:
        return await self.hexdigest_now()

    def _digest(self) -> str:
        return self._first.hexdigest()  # type: ignore[union-attr,attr-defined,no-any-return]

    async def wait_below(self, n: int) -> None:
        """Wait until fewer than n pieces are queued or being hashed."""
        while self.pending() >= n and self._error is None:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)
        if self._error is not None:
            raise self._error

    def _kick(self) -> None:
        if self._running is not None:
            return
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        while self._queue:
            head = self._queue.popleft()
            if isinstance(head, asyncio.Future):
                if not head.done():
                    if self._error is not None:
                        head.set_exception(self._error)
                    else:
                        head.set_result(self._digest())
                continue
            if self._error is not None:
                continue  # a failed stream hashes nothing more
            # Every piece queued up to the next digest request goes in one job: a thread
            # hop costs tens of microseconds and a body arrives in 64-256 KiB pieces.
            batch = [head]
            queue = self._queue
            while queue and not isinstance(queue[0], asyncio.Future):
                batch.append(queue.popleft())  # type: ignore[arg-type]
            self._batch = len(batch)
            self._running = loop.run_in_executor(_POOL, self._apply_all, batch)
            self._running.add_done_callback(self._done)
            break
        self._wake()

    def _done(self, fut: asyncio.Future[None]) -> None:
        self._running = None
        if fut.cancelled():
            self._error = asyncio.CancelledError()
        elif fut.exception() is not None:
            self._error = fut.exception()
        self._kick()

    def _wake(self) -> None:
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)


class Md5Stream(HashStream):
    """The MD5 of a stream (an ETag), hashed in a worker thread."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(hashlib.md5())
