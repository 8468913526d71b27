"""Chunks as files in a local directory: root/xx/yy/<016x id>.

Which directory a chunk lives in is the store's layout, recorded beside the root in
<root>.layout (DATA/chunks.layout: a file of the data folder, so backups carry it, and
nothing under root but chunks) when a store is first used:

- layout 2 (every store made since): xx is the id's third byte and yy its second, so the
  sequential ids that metadata hands out fill one directory 256 at a time (a new
  directory every 256 chunks, 1 GiB of 4 MiB chunks) and, as the store grows, spread
  over 65536 directories instead of filling one.
- layout 1 (stores made before layouts were recorded: no layout file, chunk
  directories present): xx is the id's low byte and yy the next one. Consecutive ids land in
  different directories, so a store under 65536 chunks made a directory for nearly every
  chunk put, and fsynced three directories to make it durable: ~17% of a 64 MiB PUT's
  CPU here (a run with all 65536 directories made beforehand: 2.9 ms of CPU per MB
  against 3.5).

A put writes a temporary file in the final directory, fdatasyncs it, renames it over the
final name and fsyncs the directory: FACTS.md ("Chunk files") measured this as the durable
sequence. A large durable put from a page-aligned buffer writes with O_DIRECT (see
DIRECT_MIN) and then asks the kernel to read the chunk back into the page cache. All
blocking I/O runs in this store's own thread pool so that slow fsyncs never starve the
event loop or the default executor; the checksum and the verify run in the same
worker call as the I/O (xxh3 is ~18 GiB/s, a second thread hop would cost more).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from xxhash import xxh3_64_digest

from .base import (
    BLOCK_SIZE,
    SUM_SIZE,
    ChunkCorrupt,
    ChunkError,
    ChunkInfo,
    ChunkMissing,
    ChunkStore,
    ChunkStoreFull,
    ChunkUnavailable,
    block_count,
    block_sums,
    chunk_name,
    covering_range,
    verify_blocks,
)
from .buffers import BlockViews, page_aligned, unfilled_buffer
from .open_chunks import OpenChunks, RecentIds
from .workers import Workers

T = TypeVar("T")

TEMP_PREFIX = ".tmp-"
# Chunks recently handed to the kernel's read-ahead (prefetch): a sequential reader
# names the same chunks ahead of it on every read; advise each once.
ADVISED_IDS = 64
# get_now reads on the event loop only small ranges, and only while the disk answers
# them fast: READ_EWMA_WEIGHT smooths the time small reads take (on the loop or in a
# worker, queueing included), and above SLOW_READ reads go through the worker threads
# until fast reads bring the average down again. A healthy SSD or virtual disk answers a
# 4 KiB random read in ~0.1 ms (with rare spikes of a few ms on a shared machine),
# about what the thread round trip it saves costs; an average of 1 ms is a disk that is
# queueing, seeking or failing, and would stall every other request on the loop.
# A large cold read gains little from skipping the hop (the disk dominates) and would
# hold the loop longer: it always goes to a worker.
SMALL_READ = 64 * 1024
SLOW_READ = 0.001
READ_EWMA_WEIGHT = 1 / 8
# Durable puts of at least DIRECT_MIN bytes from a page-aligned buffer (BufferPool) are
# written with O_DIRECT: the disk reads them from the caller's buffer, and no page
# cache page is filled. Filling new page-cache pages was the dearest step of a 64 MiB
# PUT here (1.5-2.4 ms CPU per MB on this VM, more than the MD5; O_DIRECT + fdatasync
# 0.06 ms and 2.1-2.3 GB/s); the fdatasync that makes the chunk durable follows either
# way. The price: a chunk just put is not in the page cache, its first read comes
# from the disk unless the store reads it back into the page cache (_warm, the
# default). MinIO writes large objects with O_DIRECT for the same reason.
DIRECT_MIN = 256 * 1024
DIRECT_ALIGN = 4096  # O_DIRECT writes whole logical blocks; 4 KiB covers 512 B disks too
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_monotonic = time.monotonic
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _hex2(n: int) -> str:
    return f"{n & 0xFF:02x}"


Subdir = Callable[[int], tuple[str, str]]


def _subdir_v1(chunk_id: int) -> tuple[str, str]:
    return _hex2(chunk_id), _hex2(chunk_id >> 8)


def _subdir_v2(chunk_id: int) -> tuple[str, str]:
    return _hex2(chunk_id >> 16), _hex2(chunk_id >> 8)


LAYOUTS: dict[int, Subdir] = {1: _subdir_v1, 2: _subdir_v2}
NEW_LAYOUT = 2


def layout_file(root: Path) -> Path:
    return root.with_name(root.name + ".layout")


def store_layout(root: Path) -> int:
    """The layout of the store at root: the one its layout file names; 1 for a store
    that has chunk directories but no layout file (made before there was one); for a
    new or empty store, NEW_LAYOUT, recorded durably before any chunk is put. Two
    processes opening a new store at once both record the same."""
    path = layout_file(root)
    try:
        text = path.read_text()
    except FileNotFoundError:
        pass
    else:
        try:
            layout = int(text.strip())
        except ValueError:
            layout = 0
        if layout not in LAYOUTS:
            raise ChunkError(None, f"{path}: unknown chunk layout {text.strip()[:20]!r}")
        return layout
    if _list_hex_dirs(root):
        return 1
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{NEW_LAYOUT}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(root.parent)
    return NEW_LAYOUT


def _os_error(chunk_id: int | None, action: str, e: OSError) -> ChunkError:
    cls = ChunkStoreFull if e.errno in _FULL_ERRNOS else ChunkError
    return cls(chunk_id, f"{action}: {e.strerror or e}", errno=e.errno)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    # Cleanup after a failure must not mask the failure itself.
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _warm(fd: int, size: int) -> None:
    """Ask the kernel to read a chunk written with O_DIRECT back into the page cache, as
    a buffered write would have left it: the chunk just put is the one most likely read
    next (a GET after a PUT ran at half speed from the disk). The read-ahead fills the
    pages by DMA, without the CPU copy: 0.3-0.4 ms CPU per MB here against 1.5-2.4 for
    the buffered write. Advice only: a refusal changes nothing."""
    try:
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalChunkStore(ChunkStore):
    name = "local"

    def __init__(self, root: Path, *, threads: int = 8, direct_writes: bool = True,
                 warm_direct_writes: bool = True) -> None:
        self.root = Path(root)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chunkstore-local")
        # Reads that may wait for the disk: the leanest hop there is (a cold 4 KiB read
        # through the mount is mostly hop and disk latency).
        self._readers = Workers(threads, "chunkstore-read")
        self._reading = 0  # reads in the worker threads now (touched on the loop only)
        self._small_read_time = 0.0  # moving average of small chunk reads (seconds)
        self._closed = False
        self._fds = OpenChunks(self._open_chunk, _close_quietly)
        self._advised = RecentIds(ADVISED_IDS)
        self._fresh: set[str] = set()  # top directories made, not yet fsynced into parents
        self._fresh_lock = threading.Lock()
        self._direct = direct_writes
        self._warm = warm_direct_writes
        # Worked out at the first use, not here: a store whose root is unusable is still
        # made (its check() and health probe then say why) instead of failing the start.
        self.layout = 0
        self._layout_subdir: Subdir | None = None

    def _subdir(self, chunk_id: int) -> tuple[str, str]:
        """The chunk's directory (xx, yy) in this store's layout."""
        sub = self._layout_subdir
        if sub is None:
            with self._fresh_lock:
                if self._layout_subdir is None:
                    try:
                        layout = store_layout(self.root)
                    except OSError as e:
                        raise _os_error(None, f"reading the layout of {self.root}", e) from e
                    self.layout, self._layout_subdir = layout, LAYOUTS[layout]
                sub = self._layout_subdir
        return sub(chunk_id)

    def path(self, chunk_id: int) -> Path:
        xx, yy = self._subdir(chunk_id)
        return self.root / xx / yy / chunk_name(chunk_id)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise RuntimeError("LocalChunkStore is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # --- put -------------------------------------------------------------------------

    async def put(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        return await self._run(self._put_sync, chunk_id, data, True)

    async def put_unsynced(self, chunk_id: int, data: bytes | bytearray | memoryview) -> ChunkInfo:
        # The same tmp + rename (a crash never leaves a short file under the final name),
        # without the fdatasync and the directory fsync: sync() does both later.
        return await self._run(self._put_sync, chunk_id, data, False)

    async def sync(self, chunk_ids: list[int]) -> None:
        # One worker call per chunk directory, all at once: the disk (and ext4's journal)
        # merges concurrent flushes, so N chunks cost far less than N sequential
        # fdatasync + directory fsync pairs.
        by_dir: dict[tuple[str, str], list[int]] = {}
        for cid in dict.fromkeys(chunk_ids):
            by_dir.setdefault(self._subdir(cid), []).append(cid)
        if not by_dir:
            return
        tops = [xx for xx, _ in by_dir]
        try:
            await self._run(self._sync_fresh, tops)
        except OSError as e:
            raise _os_error(chunk_ids[0], "fsync of new chunk directories", e) from e
        results = await asyncio.gather(*(self._run(self._sync_dir, ids) for ids in by_dir.values()),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def _sync_dir(self, chunk_ids: list[int]) -> None:
        xx, yy = self._subdir(chunk_ids[0])
        for cid in chunk_ids:
            try:
                fd = os.open(self.path(cid), os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise _os_error(cid, "opening for fdatasync", e) from e
            try:
                # Never retried (fsyncgate): the caller takes a failure as lost bytes.
                os.fdatasync(fd)
            except OSError as e:
                raise _os_error(cid, "fdatasync", e) from e
            finally:
                os.close(fd)
        try:
            _fsync_dir(self.root / xx / yy)  # the renames into the final names
        except OSError as e:
            raise _os_error(chunk_ids[0], "fsync of chunk directory", e) from e

    def _open_dir(self, chunk_id: int, durable: bool = True) -> int:
        xx, yy = self._subdir(chunk_id)
        leaf = self.root / xx / yy
        try:
            fd = os.open(leaf, _DIR_FLAGS)
        except FileNotFoundError:
            os.makedirs(leaf, exist_ok=True)
            with self._fresh_lock:
                self._fresh.add(xx)
            fd = os.open(leaf, _DIR_FLAGS)
        if durable:
            try:
                self._sync_fresh([xx])
            except BaseException:
                os.close(fd)
                raise
        return fd

    def _sync_fresh(self, tops: list[str]) -> None:
        """A new directory's name is only durable once its parent is fsynced. Directories
        created here and not yet fsynced into their parents are remembered (``_fresh``), so
        that a put that finds one already made by another thread still waits for that,
        and an unsynced put leaves it to ``sync``."""
        with self._fresh_lock:
            todo = [xx for xx in dict.fromkeys(tops) if xx in self._fresh]
        if not todo:
            return
        for d in (self.root.parent, self.root, *(self.root / xx for xx in todo)):
            _fsync_dir(d)
        with self._fresh_lock:
            self._fresh.difference_update(todo)

    def _put_sync(self, chunk_id: int, data: bytes | bytearray | memoryview,
                  durable: bool = True) -> ChunkInfo:
        view = memoryview(data).cast("B")
        info = ChunkInfo(chunk_id, len(view), block_sums(view))
        final = chunk_name(chunk_id)
        tmp = f"{TEMP_PREFIX}{final}-{secrets.token_hex(8)}"
        try:
            dfd = self._open_dir(chunk_id, durable)
        except OSError as e:
            raise _os_error(chunk_id, "creating chunk directory", e) from e
        try:
            direct = (durable and self._direct and len(view) >= DIRECT_MIN
                      and page_aligned(view))
            try:
                fd = self._create(tmp, dfd, direct)
            except OSError as e:
                raise _os_error(chunk_id, "creating temporary file", e) from e
            try:
                step = "writing"
                try:
                    self._write(fd, view, direct)
                    if durable:
                        step = "fdatasync"
                        # Never retried: after a failed fsync the kernel may have dropped
                        # the dirty pages and a second fsync would "succeed" (fsyncgate).
                        os.fdatasync(fd)
                    if direct and self._warm:
                        _warm(fd, len(view))
                finally:
                    os.close(fd)
                step = "renaming"
                os.replace(tmp, final, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException as e:
                _unlink_quietly(tmp, dfd)
                if isinstance(e, OSError):
                    raise _os_error(chunk_id, step, e) from e
                raise
            try:
                if durable:
                    os.fsync(dfd)
            except OSError as e:
                # The name is visible but maybe not durable. It is left in place: it may be
                # a good copy from an earlier put of the same id that is already referenced.
                # If not, the caller never references it and the collector removes it.
                raise _os_error(chunk_id, "fsync of chunk directory", e) from e
        finally:
            os.close(dfd)
        return info

    def _create(self, tmp: str, dfd: int, direct: bool) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        if direct:
            try:
                return os.open(tmp, flags | os.O_DIRECT, 0o644, dir_fd=dfd)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._direct = False  # this file system has no O_DIRECT (tmpfs, some FUSE)
        return os.open(tmp, flags, 0o644, dir_fd=dfd)

    def _write(self, fd: int, view: memoryview, direct: bool) -> None:
        """All of view into fd. Direct: the whole pages straight from the buffer to the
        disk, then O_DIRECT is dropped for the short tail (O_DIRECT writes whole
        blocks only); a disk that refuses the direct write gets the rest buffered."""
        done = 0
        if direct:
            whole = len(view) - len(view) % DIRECT_ALIGN
            try:
                while done < whole:
                    done += os.write(fd, view[done:whole])
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._direct = False  # alignment this disk does not take: never again
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        while done < len(view):
            done += os.write(fd, view[done:])

    # --- get -------------------------------------------------------------------------

    async def get(self, info: ChunkInfo, offset: int = 0, length: int | None = None) -> bytes:
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        return await self._get(info, first_block, start, end)

    def get_now(self, info: ChunkInfo, offset: int = 0,
                length: int | None = None) -> bytes | None:
        # The caller is the only request waiting on the loop. Unless reads of others are
        # waiting for the disk in the workers (they would wait longer), the range is
        # large or the disk is slow lately, read right here: one pread, cached or not,
        # with no thread wake-ups and no second trip through the loop. For a lone 4 KiB
        # random reader of a mount that hop cost more CPU than the rest of the read.
        # covering_range, unrolled: this is every lone small read of a mount.
        if self._reading or self._small_read_time > SLOW_READ or self._closed:
            return None
        size = info.size
        end = size if length is None else offset + length
        if not 0 <= offset <= end <= size:
            covering_range(info, offset, length)  # raises its ValueError
        if offset == end:
            return b""
        block = info.block_size
        first_block = offset // block
        pos = first_block * block
        stop = -(-end // block) * block
        want = (size if stop > size else stop) - pos
        if want > SMALL_READ:
            return None
        t0 = _monotonic()
        try:
            return self._read_blocks(info, block, first_block, pos, want, offset, end)
        finally:
            self._small_read_time += (_monotonic() - t0 - self._small_read_time) * READ_EWMA_WEIGHT


    async def get_into(self, info: ChunkInfo, offset: int, length: int,
                       buf: bytearray) -> bytes | memoryview:
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        if len(buf) < _covered(info, first_block, end):
            return await self._get(info, first_block, start, end)
        return await self._get(info, first_block, start, end, buf)

    reads_now = True
    reads_blocking = True

    def get_blocking(self, info: ChunkInfo, offset: int, length: int, buf: bytearray,
                     views: BlockViews | None = None) -> bytes | memoryview:
        if self._closed:
            raise ChunkUnavailable(info.chunk_id, "the chunk store is closed")
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        block = info.block_size
        pos = first_block * block
        want = min(block_count(end, block) * block, info.size) - pos
        if len(buf) < want:
            return self._read_blocks(info, block, first_block, pos, want, start, end)
        if views is not None and views.buffer is not buf:
            views = None
        return self._read_blocks(info, block, first_block, pos, want, start, end, buf, views)

    def get_if_cached(self, info: ChunkInfo, offset: int, length: int,
                      into: bytearray | None) -> bytes | memoryview | None:
        if self._closed:
            return None
        first_block, start, end = covering_range(info, offset, length)
        if start == end:
            return b""
        if into is not None and len(into) < _covered(info, first_block, end):
            into = None
        try:
            return self._get_cached(info, first_block, start, end, into)
        except ChunkCorrupt:
            return None  # get() reads it again and reports it

    async def _get(self, info: ChunkInfo, first_block: int, start: int, end: int,
                   into: bytearray | None = None) -> bytes:
        if self._closed:
            raise RuntimeError("LocalChunkStore is closed")
        # Page-cached bytes of an already open chunk are read and verified right here:
        # a thread-pool hop costs more than the copy and the xxh3 (FACTS: ~18 GiB/s).
        fast = self._get_cached(info, first_block, start, end, into)
        if fast is not None:
            return fast
        self._reading += 1
        t0 = time.monotonic()
        try:
            return await self._readers.run(self._get_sync, info, first_block, start, end, into)
        finally:
            self._reading -= 1
            if _covered(info, first_block, end) <= SMALL_READ:
                self._note_small_read(t0)

    def _note_small_read(self, t0: float) -> None:
        self._small_read_time += (time.monotonic() - t0 - self._small_read_time) * READ_EWMA_WEIGHT

    def _get_cached(self, info: ChunkInfo, first_block: int, start: int, end: int,
                    into: bytearray | None = None) -> bytes | None:
        """The range from the page cache without blocking, or None (not open here, not
        all cached, or any error: the worker path then reads it again and reports).
        into: read there (big enough for the covering blocks) instead of a new buffer."""
        cid = info.chunk_id
        e = self._fds.acquire(cid)
        if e is None:
            return None
        try:
            block = info.block_size
            pos = first_block * block
            want = min(block_count(end, block) * block, info.size) - pos
            # A new buffer is dropped unless the read fills it; into is the caller's.
            buf = unfilled_buffer(want) if into is None else memoryview(into)[:want]
            try:
                # RWF_NOWAIT: EAGAIN (or a short read) instead of waiting for the disk.
                n = os.preadv(e.fd, [buf], pos, os.RWF_NOWAIT)
            except OSError:
                return None
            if n != want:
                return None
        finally:
            self._fds.release(e)
        return _verified(cid, buf, first_block, info.sums, block, start - pos, end - pos)

    def _open_chunk(self, cid: int, size: int) -> int:
        try:
            fd = os.open(self.path(cid), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise ChunkMissing(cid, "not found", errno=e.errno) from e
        except OSError as e:
            raise _os_error(cid, "opening", e) from e
        try:
            actual = os.fstat(fd).st_size
        except OSError as e:
            os.close(fd)
            raise _os_error(cid, "reading", e) from e
        # One fstat catches truncation (or growth) before trusting any block.
        if actual != size:
            os.close(fd)
            raise ChunkCorrupt(cid, min(actual, size) // BLOCK_SIZE,
                               f"file is {actual} bytes, expected {size}")
        return fd

    def _get_sync(self, info: ChunkInfo, first_block: int, start: int, end: int,
                  into: bytearray | None = None) -> bytes:
        block = info.block_size
        pos = first_block * block
        want = min(block_count(end, block) * block, info.size) - pos
        return self._read_blocks(info, block, first_block, pos, want, start, end, into)

    def _read_blocks(self, info: ChunkInfo, block: int, first_block: int, pos: int, want: int,
                     start: int, end: int, into: bytearray | None = None,
                     views: BlockViews | None = None) -> bytes:
        """Bytes [start, end) of the chunk, from one read of its blocks [pos, pos + want)
        (first_block on, of `block` bytes) verified whole, into the caller's buffer when
        given (then a read-only view of it). May block on the disk."""
        cid = info.chunk_id
        e = self._fds.acquire(cid) or self._fds.open(cid, info.size)
        fd = e.fd
        buf: bytes | memoryview
        try:
            try:
                if into is None:
                    buf = os.pread(fd, want, pos)
                    got = len(buf)
                else:
                    buf = memoryview(into)[:want]
                    got = os.preadv(fd, [buf], pos)
                # Regular files return short reads only at EOF, but a file truncated
                # since it was opened must not pass as good data.
                while got < want:
                    if into is None:
                        more = os.pread(fd, want - got, pos + got)
                        n = len(more)
                        buf += more  # type: ignore[operator]
                    else:
                        n = os.preadv(fd, [buf[got:]], pos + got)  # type: ignore[index]
                    if not n:
                        self._fds.forget(cid)
                        raise ChunkCorrupt(cid, (pos + got) // block,
                                           f"file ends at byte {pos + got}, "
                                           f"expected {info.size}")
                    got += n
            except OSError as exc:
                raise _os_error(cid, "reading", exc) from exc
        finally:
            self._fds.release(e)
        return _verified(cid, buf, first_block, info.sums, block, start - pos, end - pos,
                         views if into is not None else None)

    def prefetch(self, infos: list[ChunkInfo]) -> None:
        """Ask the kernel to read these chunks ahead (POSIX_FADV_WILLNEED) so that a
        sequential reader does not start every chunk file with a synchronous disk read
        (the kernel's own read-ahead stops at the end of each chunk file)."""
        if self._closed:
            return
        todo = [i for i in infos if self._advised.add(i.chunk_id)]
        if todo:
            asyncio.get_running_loop().run_in_executor(self._pool, self._willneed_sync, todo)

    def _willneed_sync(self, infos: list[ChunkInfo]) -> None:
        for info in infos:
            try:
                e = self._fds.open(info.chunk_id, info.size)
            except ChunkError:
                continue  # the read itself will report it
            try:
                os.posix_fadvise(e.fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass  # only a hint
            finally:
                self._fds.release(e)

    # --- the rest --------------------------------------------------------------------

    async def delete(self, chunk_id: int) -> None:
        await self._run(self._delete_sync, chunk_id)

    def _delete_sync(self, chunk_id: int) -> None:
        self._fds.forget(chunk_id)
        # No directory fsync: a delete undone by a crash leaves an unreferenced chunk, which
        # the collector finds again. Paying an fsync per delete would buy nothing.
        try:
            os.unlink(self.path(chunk_id))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise _os_error(chunk_id, "deleting", e) from e

    async def exists(self, chunk_id: int) -> bool:
        return await self._run(self._exists_sync, chunk_id)

    def _exists_sync(self, chunk_id: int) -> bool:
        try:
            os.stat(self.path(chunk_id))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise _os_error(chunk_id, "stat", e) from e
        return True

    async def ids(self) -> AsyncIterator[tuple[int, float]]:
        async for cid, mtime, _ in self.sized_ids():
            yield cid, mtime

    async def sized_ids(self) -> AsyncIterator[tuple[int, float, int | None]]:
        # One worker call per top-level directory: bounded memory for a huge store,
        # without a thread hop per file.
        try:
            tops = await self._run(_list_hex_dirs, self.root)
        except OSError as e:
            raise _os_error(None, f"listing {self.root}", e) from e
        for xx in tops:
            try:
                if self._layout_subdir is None:
                    await self._run(self._subdir, 0)  # reads or records the layout
                assert self._layout_subdir is not None
                found = await self._run(_scan_top, self.root / xx, self._layout_subdir)
            except OSError as e:
                raise _os_error(None, f"listing {self.root / xx}", e) from e
            for item in found:
                yield item

    async def check(self) -> None:
        await self._run(self._check_sync)

    def _check_sync(self) -> None:
        # No fsync: the probe runs often and a full disk or a read-only/broken mount already
        # fails at create or write. The temp prefix lets remove_stale_temp_files clean up
        # after a crash mid-probe.
        probe = self.root / f"{TEMP_PREFIX}check-{secrets.token_hex(8)}"
        payload = secrets.token_bytes(64)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(payload)
            try:
                back = probe.read_bytes()
            finally:
                probe.unlink()
        except OSError as e:
            raise _os_error(None, f"probe in {self.root}", e) from e
        if back != payload:
            raise ChunkError(None, f"probe in {self.root} read back different bytes")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Let in-flight puts finish (they are durable or cleaned up, never half-done);
        # wait off the loop because a put may be inside a slow fsync.
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        await asyncio.get_running_loop().run_in_executor(None, self._readers.close)
        self._fds.close_all()


def _covered(info: ChunkInfo, first_block: int, end: int) -> int:
    """Bytes a read ending at end reads from first_block on: whole blocks, to the end."""
    block = info.block_size
    return min(block_count(end, block) * block, info.size) - first_block * block


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _verified(cid: int, buf: bytes | bytearray | memoryview, first_block: int, sums: bytes,
              block: int, a: int, b: int, views: BlockViews | None = None) -> bytes:
    """buf[a:b] once every block of buf matches its checksum. A view of a caller's buffer
    (get_into) comes back as a read-only view of it, never copied. views: of the buffer
    buf starts at (spares slicing it into blocks)."""
    at = first_block * SUM_SIZE
    if len(buf) > block or xxh3_64_digest(buf) != sums[at:at + SUM_SIZE]:
        # Several blocks, or a mismatch to report (verify_blocks names the block).
        verify_blocks(cid, memoryview(buf), first_block, sums, block,
                      None if views is None else views.of(block))
    if isinstance(buf, memoryview):
        return buf[a:b].toreadonly()  # type: ignore[return-value]
    if a == 0 and b == len(buf):
        return buf  # type: ignore[return-value]  # a bytearray is as good to every caller
    return bytes(memoryview(buf)[a:b])


def _is_hex2(name: str) -> bool:
    return len(name) == 2 and all(c in "0123456789abcdef" for c in name)


def _list_hex_dirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as it:
            names = [e.name for e in it if _is_hex2(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    return sorted(names)


def _scan_top(top: Path, subdir: Subdir) -> list[tuple[int, float, int]]:
    """(id, mtime, size) of every chunk under one top-level directory."""
    out: list[tuple[int, float, int]] = []
    for yy in _list_hex_dirs(top):
        here = (top.name, yy)
        with os.scandir(top / yy) as it:
            for e in it:
                name = e.name
                if name.startswith(TEMP_PREFIX) or len(name) != 16:
                    continue
                try:
                    cid = int(name, 16)
                except ValueError:
                    continue
                # A stray file in the wrong directory is not a chunk: delete(id) would not
                # find it, so the collector must not be told about it.
                if name != chunk_name(cid) or subdir(cid) != here:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while we listed
                out.append((cid, st.st_mtime, st.st_size))
    return out


def _remove_stale_sync(root: Path, cutoff: float) -> int:
    removed = 0
    dirs = [root]
    for xx in _list_hex_dirs(root):
        dirs.append(root / xx)
        dirs.extend(root / xx / yy for yy in _list_hex_dirs(root / xx))
    for d in dirs:
        try:
            with os.scandir(d) as it:
                temps = [e for e in it if e.name.startswith(TEMP_PREFIX)]
        except FileNotFoundError:
            continue
        for e in temps:
            try:
                # A temp renamed into place since the scan is gone: not an error.
                if (e.is_file(follow_symlinks=False)
                        and e.stat(follow_symlinks=False).st_mtime < cutoff):
                    os.unlink(e.path)
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


async def remove_stale_temp_files(root: Path, older_than_seconds: float) -> int:
    """Remove temporary files a crash left under root; returns how many were removed.

    older_than_seconds must exceed the longest plausible put (a slow fsync on a busy disk
    can take seconds), since other processes may share the directory and still be writing.
    """
    cutoff = time.time() - older_than_seconds
    return await asyncio.to_thread(_remove_stale_sync, Path(root), cutoff)
