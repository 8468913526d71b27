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
from dataclasses import dataclass, field

from .data import Written
from .hashing import Md5Stream

# A file written through a mount keeps an MD5 ETag only up to this size. MD5 costs
# more CPU per byte than the whole rest of the write path (FACTS: ~0.5 GiB/s a core),
# and S3 clients never rely on a large object's ETag being its MD5: they upload
# anything above 8 MiB as multipart by default (aws cli, boto3 upload_file), whose
# ETag is not one either. Past this size the S3 door serves the stable non-MD5 form.
MOUNT_MD5_MAX = 16 << 20


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

    def split_tail(self, unit: int) -> WriteBuffer:
        """For a single range (a sequential writer): cut off and return the bytes past
        its last whole ``unit``, so that a spill writes whole chunks and the tail keeps
        growing in memory. Several ranges: nothing is cut (an empty buffer)."""
        tail = WriteBuffer()
        if len(self.starts) != 1:
            return tail
        data = self.datas[0]
        keep = len(data) // unit * unit
        if 0 < keep < len(data):
            tail.write(self.starts[0] + keep, memoryview(data)[keep:])
            del data[keep:]
            self.nbytes = keep
        return tail

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
        self.registering: set[int] = set()  # chunk ids spilled, not yet committed or dropped
        self.registrations: list[asyncio.Future[None]] = []  # their pending records, committing
        self.next_seq = 0
        self.size = size               # logical size including unflushed writes
        self.mtime_ns = 0              # last write time not yet committed (0: none)
        self.lock = asyncio.Lock()     # one commit at a time
        # ETag of a mount-written file is the MD5 of its bytes when they were written
        # sequentially from offset 0 (DESIGN.md); otherwise it stays unknown.
        # Hashed off the event loop, in write order (hashing.py).
        self._md5: Md5Stream | None = Md5Stream() if md5_from_zero else None
        self._md5_end = 0
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

    def chunk_ids(self) -> set[int]:
        """Every uncommitted chunk of this file known to metadata as pending (the
        collector must not take them while this process lives)."""
        return self.registering | {c.chunk_id for _, w in self.stored for c in w.chunks}

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
        if offset != self._md5_end or offset + len(data) > MOUNT_MD5_MAX:
            self._md5 = None
            return
        self._md5_end += len(data)
        self._md5.update(data)  # data is bytes, never changed by its owner

    def note_truncate(self, size: int) -> None:
        if size == 0:
            self._md5 = Md5Stream()
            self._md5_end = 0
        elif self._md5 is not None and size != self._md5_end:
            self._md5 = None

    def lose_etag(self) -> None:
        self._md5 = None

    def etag(self) -> asyncio.Future[str]:
        """The ETag for the bytes written so far (resolves once they are hashed; writes
        made later are not in it); "" when the writes were not sequential from offset 0."""
        if self._md5 is None or self._md5_end != self.size:
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            fut.set_result("")
            return fut
        return self._md5.hexdigest_now()
