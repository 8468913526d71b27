"""Open files of this process: the per-inode write buffer of the mount doors.

Writes land here first. At a size threshold the buffer is detached and spilled into
chunks in the background (a few spills in flight per file, so a writer keeps going
while earlier chunks are written); the metadata that points at those chunks commits
only on flush (fsync, FUSE flush/release, NFS COMMIT), so other doors never see a
half-written file. Spilled chunks are written without a flush to disk: the commit
syncs them all at once, before the metadata that points at them. Every handle of the
same inode shares one OpenFile, so a read through any handle sees bytes written
through another before they are flushed.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .data import Written

# The ETag MD5 of mount writes runs here, off the event loop (MD5 is ~0.5 GiB/s, the
# slowest step of a large write). One thread: updates run in submission order, which
# is write order for every file.
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vfs-md5")
# Writes smaller than this are hashed inline when nothing is queued: a thread hop
# costs more than hashing a few KiB.
HASH_INLINE_MAX = 64 << 10


class WriteBuffer:
    """Dirty byte ranges of one file: sorted, non-overlapping, merged when adjacent."""

    __slots__ = ("starts", "datas", "nbytes")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.datas: list[bytearray] = []
        self.nbytes = 0

    def __bool__(self) -> bool:
        return bool(self.starts)

    @property
    def end(self) -> int:
        return self.starts[-1] + len(self.datas[-1]) if self.starts else 0

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        end = offset + len(data)
        # Fast path: a sequential writer extends the last range.
        if self.starts and offset == self.end:
            self.datas[-1] += data
            self.nbytes += len(data)
            return
        # Ranges that overlap or touch [offset, end) merge into one.
        lo = bisect.bisect_left(self.starts, offset)
        if lo > 0 and self.starts[lo - 1] + len(self.datas[lo - 1]) >= offset:
            lo -= 1
        hi = bisect.bisect_right(self.starts, end)
        if lo == hi:
            self.starts.insert(lo, offset)
            self.datas.insert(lo, bytearray(data))
            self.nbytes += len(data)
            return
        new_start = min(offset, self.starts[lo])
        new_end = max(end, self.starts[hi - 1] + len(self.datas[hi - 1]))
        merged = bytearray(new_end - new_start)
        for s, d in zip(self.starts[lo:hi], self.datas[lo:hi]):
            merged[s - new_start:s - new_start + len(d)] = d
            self.nbytes -= len(d)
        merged[offset - new_start:end - new_start] = data
        self.starts[lo:hi] = [new_start]
        self.datas[lo:hi] = [merged]
        self.nbytes += len(merged)

    def truncate(self, size: int) -> None:
        while self.starts and self.starts[-1] >= size:
            self.starts.pop()
            self.nbytes -= len(self.datas.pop())
        if self.starts and self.end > size:
            cut = self.end - size
            del self.datas[-1][len(self.datas[-1]) - cut:]
            self.nbytes -= cut

    def overlay(self, buf: bytearray, offset: int) -> None:
        """Copy the dirty bytes that fall in [offset, offset+len(buf)) into buf."""
        end = offset + len(buf)
        i = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        for s, d in zip(self.starts[i:], self.datas[i:]):
            if s >= end:
                break
            a, b = max(s, offset), min(s + len(d), end)
            if a < b:
                buf[a - offset:b - offset] = memoryview(d)[a - s:b - s]

    def ranges(self) -> list[tuple[int, bytearray]]:
        return list(zip(self.starts, self.datas))


@dataclass(slots=True, eq=False)
class Spill:
    """A detached write buffer on its way to chunks (task), readable until it settles."""

    seq: int
    buffer: WriteBuffer
    task: asyncio.Future[Written]
    retried: bool = field(default=False)

    def failed(self) -> BaseException | None:
        t = self.task
        if not t.done():
            return None
        if t.cancelled():
            return asyncio.CancelledError()
        return t.exception()


class OpenFile:
    """What this process knows about one open inode beyond its committed metadata.

    Newest last: committed metadata, ``stored`` (spilled chunks, not yet committed),
    ``pending`` spills (buffers still being written), ``dirty``. Spills settle into
    ``stored`` strictly in the order they were started, so later writes always shadow
    earlier ones, whatever order the chunk writes finish in.
    """

    def __init__(self, ino: int, size: int, md5_from_zero: bool) -> None:
        self.ino = ino
        self.handles = 0
        self.dirty = WriteBuffer()
        self.pending: list[Spill] = []     # spills in flight (or failed), oldest first
        self.stored: list[tuple[int, Written]] = []  # (spill seq, chunks) not yet committed
        self.next_seq = 0
        self.size = size               # logical size including unflushed writes
        self.mtime_ns = 0              # last write time not yet committed (0: none)
        self.lock = asyncio.Lock()     # one commit at a time
        # ETag of a mount-written file is the MD5 of its bytes when they were written
        # sequentially from offset 0 (DESIGN.md); otherwise it stays unknown.
        self._md5: hashlib._Hash | None = hashlib.md5() if md5_from_zero else None
        self._md5_end = 0
        self._hashing: Future[None] | None = None  # the last update queued on _HASHER
        self.truncated = False

    # -- layers, as the read path sees them ----------------------------------------------

    @property
    def spilled(self) -> Written:
        """Every settled, uncommitted chunk, in spill order."""
        out = Written([], [])
        for _, w in self.stored:
            out.extend(w)
        return out

    @property
    def flushing(self) -> list[WriteBuffer]:
        return [s.buffer for s in self.pending]

    def layers(self) -> list[WriteBuffer]:
        """The in-memory layers over ``spilled``, oldest first. Detached buffers are never
        changed again, so a reader may keep this list across an await."""
        return [s.buffer for s in self.pending] + [self.dirty]

    def has_unsettled(self) -> bool:
        return bool(self.pending or self.stored or self.dirty)

    def settle(self) -> None:
        """Move finished spills, in order, from ``pending`` to ``stored``."""
        while self.pending and self.pending[0].task.done() and self.pending[0].failed() is None:
            s = self.pending.pop(0)
            self.stored.append((s.seq, s.task.result()))

    def first_failure(self) -> Spill | None:
        for s in self.pending:
            if s.failed() is not None:
                return s
        return None

    # -- the ETag ---------------------------------------------------------------------------

    def note_write(self, offset: int, data: bytes | memoryview) -> None:
        if self._md5 is None:
            return
        if offset != self._md5_end:
            self._md5 = None
            return
        self._md5_end += len(data)
        if len(data) <= HASH_INLINE_MAX and (self._hashing is None or self._hashing.done()):
            self._md5.update(data)
        else:
            # data is immutable (bytes) or never reused by its owner; the thread keeps it.
            self._hashing = _HASHER.submit(self._md5.update, data)

    def note_truncate(self, size: int) -> None:
        if size == 0:
            self._md5 = hashlib.md5()
            self._md5_end = 0
            self._hashing = None  # updates still queued go to the discarded object
        elif self._md5 is not None and size != self._md5_end:
            self._md5 = None

    def lose_etag(self) -> None:
        self._md5 = None

    def etag(self) -> asyncio.Future[str]:
        """The ETag for the bytes written so far (resolves once queued hashing is done);
        "" when the writes were not sequential from offset 0."""
        loop = asyncio.get_running_loop()
        if self._md5 is None or self._md5_end != self.size:
            fut: asyncio.Future[str] = loop.create_future()
            fut.set_result("")
            return fut
        md5 = self._md5
        if self._hashing is None or self._hashing.done():
            fut = loop.create_future()
            fut.set_result(md5.hexdigest())
            return fut
        # Queued behind the updates made so far, ahead of any made later.
        return asyncio.wrap_future(_HASHER.submit(lambda: md5.copy().hexdigest()), loop=loop)
