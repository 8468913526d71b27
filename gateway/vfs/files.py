"""Open files of this process: the per-inode write buffer of the mount doors.

Writes land here first. At a size threshold they spill into durable chunks; the
metadata that points at those chunks commits only on flush (fsync, FUSE
flush/release, NFS COMMIT), so other doors never see a half-written file. Every handle of the same inode
shares one OpenFile, so a read through any handle sees bytes written through
another before they are flushed.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib

from .data import Written


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


class OpenFile:
    """What this process knows about one open inode beyond its committed metadata."""

    def __init__(self, ino: int, size: int, md5_from_zero: bool) -> None:
        self.ino = ino
        self.handles = 0
        self.dirty = WriteBuffer()
        self.flushing = WriteBuffer()  # detached for a spill in progress; still readable
        self.spilled = Written([], [])  # durable chunks not yet committed to metadata
        self.size = size               # logical size including unflushed writes
        self.mtime_ns = 0              # last write time not yet committed (0: none)
        self.lock = asyncio.Lock()     # one flush at a time
        # ETag of a mount-written file is the MD5 of its bytes when they were written
        # sequentially from offset 0 (DESIGN.md); otherwise it stays unknown.
        self._md5: hashlib._Hash | None = hashlib.md5() if md5_from_zero else None
        self._md5_end = 0
        self.truncated = False

    def note_write(self, offset: int, data: bytes | memoryview) -> None:
        if self._md5 is not None:
            if offset == self._md5_end:
                self._md5.update(data)
                self._md5_end += len(data)
            else:
                self._md5 = None

    def note_truncate(self, size: int) -> None:
        if size == 0:
            self._md5 = hashlib.md5()
            self._md5_end = 0
        elif self._md5 is not None and size != self._md5_end:
            self._md5 = None

    def etag(self) -> str:
        if self._md5 is not None and self._md5_end == self.size:
            return self._md5.hexdigest()
        return ""
