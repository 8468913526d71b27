"""Open chunk files kept for reuse by the local store's read path.

Opening a chunk file per read cost a path walk, an fstat and a close on every request,
and it threw away the kernel's per-file read-ahead state, so every read of a cold chunk
started over as a small synchronous disk read. Chunks are immutable, so a descriptor
opened once serves every later read of that chunk until it is evicted.

Descriptors are shared by the event loop (page-cached reads) and worker threads
(reads that may block): each use is counted, and an evicted or forgotten descriptor is
closed only when its last user lets go, so a number is never closed under a reader
(and never reused by another open while in use).
"""

from __future__ import annotations

import resource
import threading
from collections import OrderedDict
from collections.abc import Callable

# Bound on descriptors kept open: 512 chunks are 2 GiB of 4 MiB chunks, so random
# readers of files that size keep their descriptors (a 1 GiB file has 256 chunks); never
# more than a quarter of the process's descriptor limit (sockets need the rest).
OPEN_CHUNKS = 512


def _default_limit() -> int:
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 64
    if soft == resource.RLIM_INFINITY:
        return OPEN_CHUNKS
    return max(16, min(OPEN_CHUNKS, soft // 4))


class OpenChunk:
    __slots__ = ("fd", "users", "dead")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.dead = False


class OpenChunks:
    """A bounded LRU of open chunk files by chunk id."""

    def __init__(self, opener: Callable[[int, int], int], close: Callable[[int], None],
                 limit: int | None = None) -> None:
        self._opener = opener  # (chunk id, expected size) -> fd; raises ChunkError
        self._close = close
        self._limit = _default_limit() if limit is None else limit
        self._lock = threading.Lock()
        self._open: OrderedDict[int, OpenChunk] = OrderedDict()

    def acquire(self, chunk_id: int) -> OpenChunk | None:
        """The chunk's open file if it is open already (never blocks on I/O)."""
        with self._lock:
            e = self._open.get(chunk_id)
            if e is None:
                return None
            e.users += 1
            self._open.move_to_end(chunk_id)
            return e

    def open(self, chunk_id: int, size: int) -> OpenChunk:
        """The chunk's open file, opening it if needed (may block: worker threads only)."""
        e = self.acquire(chunk_id)
        if e is not None:
            return e
        fd = self._opener(chunk_id, size)
        doomed: list[int] = []
        with self._lock:
            e = self._open.get(chunk_id)
            if e is not None:  # another thread opened it meanwhile
                doomed.append(fd)
            else:
                e = self._open[chunk_id] = OpenChunk(fd)
                while len(self._open) > self._limit:
                    _, old = self._open.popitem(last=False)
                    old.dead = True
                    if old.users == 0:
                        doomed.append(old.fd)
            e.users += 1
            self._open.move_to_end(chunk_id)
        for d in doomed:
            self._close(d)
        return e

    def release(self, e: OpenChunk) -> None:
        with self._lock:
            e.users -= 1
            close = e.dead and e.users == 0
        if close:
            self._close(e.fd)

    def forget(self, chunk_id: int) -> None:
        """Stop reusing the chunk's descriptor (deleted, or found damaged)."""
        with self._lock:
            e = self._open.pop(chunk_id, None)
            if e is None:
                return
            e.dead = True
            close = e.users == 0
        if close:
            self._close(e.fd)

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
            for e in entries:
                e.dead = True
            idle = [e.fd for e in entries if e.users == 0]
        for fd in idle:
            self._close(fd)


class RecentIds:
    """The last `limit` ids added (a bounded set): add() is True for an id not seen lately."""

    def __init__(self, limit: int) -> None:
        self._limit = _default_limit() if limit is None else limit
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, chunk_id: int) -> bool:
        if chunk_id in self._ids:
            return False
        self._ids[chunk_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True
