"""The NFS door's open-file cache: one vfs handle per inode, shared by every READ,
WRITE and COMMIT, because NFSv3 has no open or close.

- Handles are opened by the server itself (ROOT, read-write); each call checks
  its own caller's permission before using one (nfs3.py), as knfsd does.
- UNSTABLE writes stay in the vfs write buffer of the handle; COMMIT and stable
  writes fsync it (metadata committed, chunks durable).
- A handle idle for IDLE_SECONDS is flushed, then released, so S3 and the other
  doors see the data even from clients that never COMMIT. A flush that fails
  keeps the handle (its bytes stay buffered, retried on the next sweep) and
  calls ``on_lost`` so the server changes its write verifier: clients then resend
  every unstable write they have not seen committed.
- ``aclose`` flushes and releases everything (server shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable

from ..vfs import Filesystem, FsError
from ..vfs.perms import ROOT

log = logging.getLogger(__name__)

# A client that stops writing sees its data through S3 about this long after.
# SAMEBYTES_NFS_IDLE_FLUSH overrides it (tests that crash the server with unstable
# writes still buffered set it high).
IDLE_SECONDS = float(os.environ.get("SAMEBYTES_NFS_IDLE_FLUSH", "3"))
SWEEP_SECONDS = 1.0
RELEASE_BATCH = 64


class _Entry:
    __slots__ = ("fh", "busy", "last")

    def __init__(self, fh: int) -> None:
        self.fh = fh
        self.busy = 0
        self.last = time.monotonic()


class OpenFiles:
    def __init__(self, fs: Filesystem, *, idle_seconds: float = IDLE_SECONDS,
                 on_lost: Callable[[], None] = lambda: None) -> None:
        self.fs = fs
        self.idle_seconds = idle_seconds
        self.on_lost = on_lost
        self._files: dict[int, _Entry] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def __contains__(self, ino: int) -> bool:
        return ino in self._files

    def __len__(self) -> int:
        return len(self._files)

    @contextlib.asynccontextmanager
    async def use(self, ino: int) -> AsyncIterator[int]:
        """The vfs handle of ino for the duration of one call (never released meanwhile)."""
        e = self._files.get(ino)
        if e is None:
            h = await self.fs.open(ROOT, ino, os.O_RDWR)
            e = self._files.get(ino)
            if e is None:
                e = self._files[ino] = _Entry(h.fh)
            else:  # another call opened it while we awaited
                await self.fs.release(h.fh)
            self._start_sweeper()
        e.busy += 1
        try:
            yield e.fh
        finally:
            e.busy -= 1
            e.last = time.monotonic()

    async def commit(self, ino: int) -> None:
        """Make every write to ino so far durable and visible (COMMIT). Nothing to do
        when no handle is open: an idle release already committed it."""
        if ino not in self._files:
            return
        async with self.use(ino) as fh:
            await self.fs.fsync(fh)

    async def forget(self, ino: int) -> None:
        """Release ino's handle now (the file was removed: free it, make handles stale)."""
        e = self._files.pop(ino, None)
        if e is not None:
            try:
                await self.fs.release(e.fh)
            except FsError:
                log.exception("releasing removed inode %d", ino)

    def _start_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await self.release_idle(self.idle_seconds)

    async def release_idle(self, idle_seconds: float) -> None:
        now = time.monotonic()
        idle = [(ino, e) for ino, e in self._files.items()
                if not e.busy and now - e.last >= idle_seconds]
        # Several at once: their metadata commits share group commits (an untar
        # leaves thousands of small files to close).
        for at in range(0, len(idle), RELEASE_BATCH):
            await asyncio.gather(*(self._close_entry(ino, e) for ino, e in idle[at:at + RELEASE_BATCH]
                                   if self._files.get(ino) is e))

    async def _close_entry(self, ino: int, e: _Entry) -> None:
        try:
            await self.fs.flush(e.fh)
        except FsError:
            # The bytes stay buffered (retried next sweep); clients must resend
            # what they wrote unstably, in case the retries never succeed.
            log.exception("flushing inode %d failed; changing the write verifier", ino)
            self.on_lost()
            return
        if e.busy or self._files.get(ino) is not e:
            return  # a call came in while we flushed: keep it open
        del self._files[ino]
        try:
            await self.fs.release(e.fh)
        except FsError:
            log.exception("releasing inode %d failed; changing the write verifier", ino)
            self.on_lost()

    async def aclose(self) -> None:
        """Flush and release every handle (shutdown)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for ino, e in list(self._files.items()):
            self._files.pop(ino, None)
            try:
                await self.fs.release(e.fh)
            except FsError:
                log.exception("releasing inode %d at shutdown", ino)
