"""Buffers for chunk bytes: read buffers without the zero fill, and reusable
page-aligned write buffers.

``bytearray(n)`` writes n zeros before anything is read into it: ~160 us per 4 MiB here,
6 % of the gateway's CPU on a chunk GET from an object store and about as much of a
page-cache read of a local chunk. CPython's own constructor leaves the bytes
uninitialised when given no source. Only for a buffer that is filled completely before
anyone sees it: a read that comes up short must drop the buffer, never hand it on.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable


def _uninitialized() -> Callable[[int], bytearray]:
    try:
        import ctypes
        make = ctypes.pythonapi.PyByteArray_FromStringAndSize
    except (ImportError, AttributeError):  # not CPython: the plain, zero-filled one
        return bytearray
    make.restype = ctypes.py_object
    make.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    return lambda n: make(None, n)  # type: ignore[no-any-return]


unfilled_buffer: Callable[[int], bytearray] = _uninitialized()


# Buffers start on a page: what O_DIRECT asks of the memory it writes from (the
# logical block size of any disk here divides it).
PAGE = mmap.PAGESIZE
# Idle buffer bytes kept: a stored stream has up to its write-ahead (8 chunks for a
# remote store), the chunks its MD5 has still to read and the one it fills out at once;
# a pool smaller than that unmapped buffers at the end of every PUT and the next one
# paid for fresh pages again (+0.3 ms CPU per MB on the gateway's loop). 64 MiB is
# sixteen 4 MiB chunks.
POOL_IDLE_BYTES = 64 << 20


class BufferPool:
    """Page-aligned, reusable write buffers (anonymous mmaps) of one size each.

    Fresh memory is the dearest part of a large write on a virtual machine: the first
    touch of every new page costs a fault in the guest and often one in the host
    (measured here: 1.5-2.4 ms of CPU per MB written into new pages, against 0.2 ms
    into recycled ones). A stored stream fills, writes and hands back the same few
    buffers instead. A buffer is given back only once nothing reads it any more; one
    never given back (an error path) is simply freed when unreferenced."""

    def __init__(self, idle_bytes: int = POOL_IDLE_BYTES) -> None:
        self._idle_bytes = idle_bytes
        self._free: dict[int, list[mmap.mmap]] = {}
        self._held = 0  # bytes of the idle buffers
        self._lock = threading.Lock()  # given back from any thread

    def take(self, size: int) -> mmap.mmap:
        with self._lock:
            free = self._free.get(size)
            if free:
                self._held -= size
                return free.pop()
        return mmap.mmap(-1, size)

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            if self._held + len(buf) <= self._idle_bytes:
                self._free.setdefault(len(buf), []).append(buf)
                self._held += len(buf)
                return
        try:
            buf.close()
        except BufferError:  # still exported somewhere: the collector frees it later
            pass


def page_aligned(view: memoryview) -> bool:
    """True if view's memory starts on a page boundary (so O_DIRECT may write from it).
    Read-only buffers (bytes) are never taken as aligned: only writable ones can be
    asked for their address without a copy."""
    if view.readonly or not view.c_contiguous:
        return False
    try:
        import ctypes
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (ImportError, TypeError, ValueError):
        return False
    return address % PAGE == 0


pool = BufferPool()


class BlockViews:
    """A view of each whole block of one reusable buffer, made once per block size:
    verifying a read into that buffer (whose blocks start at the buffer's start) hashes
    these instead of slicing new views, half of block_sums' time for 4 KiB blocks (54 ->
    30 us a MiB). It holds the buffer, never the other way round: no reference cycle,
    so both go with their owner's last reference."""

    __slots__ = ("buffer", "_block", "_views")

    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer
        self._block = 0
        self._views: list[memoryview] = []

    def of(self, block: int) -> list[memoryview]:
        if self._block != block:
            whole = memoryview(self.buffer)
            self._views = [whole[i:i + block] for i in range(0, len(whole) - block + 1, block)]
            self._block = block
        return self._views
