"""Tell the kernel to forget what other doors changed: names, attributes, page cache.

Two sources feed one ``KernelCache``:

* this process's commits (``serve --mount``): the engine's change feed calls
  ``on_batch`` on its writer thread right after each commit;
* other processes' commits (``samebytes mount`` beside ``samebytes serve``): ``tail``
  polls the LMDB change log every ``POLL_SECONDS`` with one short read transaction.

Changes the mount's own kernel requests made are skipped (the kernel made them and
knows). The rest are filtered by what the kernel can have cached: an inode only while
its lookup count is above zero, a name only under a directory the kernel knows. The
notifications go to the kernel from one thread of their own: ``invalidate_entry`` and
``invalidate_inode`` block until the kernel is done (it may wait for a request we are
serving), so they never run on the event loop or inside a handler.

The kernel orders a notification after a lookup or getattr it is waiting for (the
parent's lock, the attribute version), so a reply computed just before a commit
never re-caches the old state after the notification.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import queue
import threading
import time

import pyfuse3

from metadata import LmdbEngine
from metadata.changes import (
    ATTR, ENTRY, MOUNT_FLAG, Batch, read_since, register_tailer, unregister_tailer,
)
from metadata.schema import ROOT_INO

from ..vfs.core import MY_PID, MY_START, process_start_time

log = logging.getLogger(__name__)

# How often a mount looks for other processes' changes: the delay they show with.
POLL_SECONDS = 0.15
# Names answered recently, kept to drop them all when the log was missed (bounded:
# past it some dentries may stay until their timeout; logged).
MAX_RECENT_NAMES = 100_000
# Log records read per read transaction (short snapshots; FACTS.md).
TAIL_BATCHES = 1024

_ENTRY, _INODE, _STOP = 1, 2, 3


class KernelCache:
    """What the kernel may hold for this mount, and the thread that invalidates it."""

    def __init__(self, entry_timeout: float) -> None:
        # ino -> lookup count; ROOT is always known.
        self.lookups: dict[int, int] = {ROOT_INO: 1}
        self._entry_timeout = entry_timeout
        # (parent, name) -> when answered (positive or negative): the dentries the
        # kernel may still hold, for the "missed changes" fallback.
        self._recent: collections.OrderedDict[tuple[int, bytes], float] = collections.OrderedDict()
        self._recent_overflowed = 0.0
        self._queue: queue.SimpleQueue[tuple[int, int, bytes | bool]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.sent = 0  # notifications the kernel accepted (tests, debugging)

    # -- what the kernel knows (called on the event loop by the handlers) --------------

    def looked_up(self, ino: int, parent: int, name: bytes) -> None:
        """A reply that made the kernel count a lookup of ino under parent/name."""
        self.lookups[ino] = self.lookups.get(ino, 0) + 1
        self.answered(parent, name)

    def answered(self, parent: int, name: bytes) -> None:
        """The kernel may cache parent/name (positively or negatively) for a while."""
        now = time.monotonic()
        recent = self._recent
        key = (parent, name)
        if key in recent:
            recent.move_to_end(key)
        recent[key] = now
        horizon = now - self._entry_timeout
        while recent:
            first = next(iter(recent.values()))
            if first >= horizon and len(recent) <= MAX_RECENT_NAMES:
                break
            if first >= horizon:
                self._recent_overflowed = now  # dropped one the kernel may still hold
            recent.popitem(last=False)

    def forgot(self, ino: int, n: int) -> None:
        left = self.lookups.get(ino, 0) - n
        if left > 0 or ino == ROOT_INO:
            self.lookups[ino] = max(left, 1)
        else:
            self.lookups.pop(ino, None)

    # -- changes (any thread) ---------------------------------------------------------------

    def on_batch(self, batch: Batch, *, skip_own_mount: bool = True) -> None:
        """Queue invalidations for the changes of one committed batch."""
        known = self.lookups
        put = self._queue.put
        for kind, ino, name in batch.changes:
            if kind & MOUNT_FLAG and skip_own_mount:
                continue  # made by our own kernel requests
            kind &= ~MOUNT_FLAG
            if kind == ENTRY:
                if ino in known:
                    put((_ENTRY, ino, name))
            elif ino in known:
                put((_INODE, ino, kind == ATTR))  # DATA: the page cache goes too

    def drop_everything(self) -> None:
        """Changes were missed: invalidate every inode and recent name the kernel may hold."""
        if self._recent_overflowed and time.monotonic() - self._recent_overflowed < self._entry_timeout:
            log.warning("missed changes while tracking more than %d names: some names on the "
                        "mount may stay stale for up to %.0f s", MAX_RECENT_NAMES, self._entry_timeout)
        for ino in list(self.lookups):
            self._queue.put((_INODE, ino, False))
        for parent, name in list(self._recent):
            self._queue.put((_ENTRY, parent, name))

    # -- the notifier thread ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._notify_loop, name="fuse-invalidate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put((_STOP, 0, b""))
            self._thread.join(5)
            self._thread = None

    def _notify_loop(self) -> None:
        while True:
            what, ino, arg = self._queue.get()
            if what == _STOP:
                return
            try:
                if what == _ENTRY:
                    assert isinstance(arg, bytes)
                    log.debug("invalidate entry %d/%r", ino, arg)
                    pyfuse3.invalidate_entry(ino, arg)
                else:
                    log.debug("invalidate inode %d%s", ino, " attributes" if arg else "")
                    pyfuse3.invalidate_inode(ino, bool(arg))
                self.sent += 1
            except OSError as e:
                # ENOENT: the kernel holds nothing for it (already dropped): fine.
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    log.debug("invalidation of %d %r failed: %s", ino, arg, e)
            except Exception:
                log.exception("invalidation of %d %r failed", ino, arg)


def _alive(pid: int, start: int) -> bool:
    return process_start_time(pid) == start


async def register(engine: LmdbEngine) -> int:
    """Make other processes log their changes for this one (before the kernel can cache
    anything); returns the seq to tail from."""
    return await engine.write(lambda txn: register_tailer(txn, MY_PID, MY_START, _alive))


async def unregister(engine: LmdbEngine) -> None:
    await engine.write(lambda txn: unregister_tailer(txn, MY_PID, MY_START))


async def tail(engine: LmdbEngine, cache: KernelCache, after: int) -> None:
    """Follow other processes' changes in the LMDB change log (from seq `after` on)
    until cancelled."""
    me = os.getpid()
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            after = _follow(engine, cache, after, me)
        except Exception:  # the metadata store reopening, say: try again next poll
            log.exception("reading the change log failed")


def _follow(engine: LmdbEngine, cache: KernelCache, after: int, me: int) -> int:
    """Apply every batch after `after`; returns the newest seq applied."""
    while True:
        with engine.read() as txn:  # short: decoded, then released before any work
            t = read_since(txn, after, TAIL_BATCHES)
        if t.behind:
            log.warning("the mount fell behind the change log: dropping every cached entry")
            cache.drop_everything()
        after = t.last
        for batch in t.batches:
            if batch.pid != me:  # our own came through the in-process feed
                # Another process's mount flag means its kernel, not ours: invalidate.
                cache.on_batch(batch, skip_own_mount=False)
        if len(t.batches) < TAIL_BATCHES:
            return after
