"""The change feed: which names and inodes each metadata commit changed, for the
kernel caches of FUSE mounts.

Namespace mutators note each change on their transaction (``note``). Per
group-commit batch the engine then

1. appends ONE record to the ``changes`` log inside the same write transaction
   (so the log never names a change that did not commit, nor misses one that did),
   and trims the record ``LOG_KEEP`` batches back;
2. after the commit, before any writer of the batch hears back, hands the batch to
   this process's subscribers (the FUSE door of ``serve --mount``).

A mount in another process (``samebytes mount``) registers in ``tailers`` and tails
the log with one short read transaction per poll (``read_since``). A process writes
the log only while some OTHER process is registered: ``serve`` alone or ``serve
--mount`` (which hears its own commits in memory) pay nothing for it but one lookup
in a tiny sub-database per commit. A reader that fell further behind than the
trimmed end, or sees the log go backwards (a restore), cannot know what it missed
and must drop everything it has cached (``Tail.behind``).

What the feed guarantees: every committed change of a name (``ENTRY``), of an inode's
attributes (``ATTR``) or of its bytes (``DATA``) is in it, in commit order. What it
does not: it says nothing about changes that never reached metadata (bytes still in
an open file's write buffer), and a change may be listed more than once.

Changes made by a FUSE handler carry ``THROUGH_MOUNT`` (set by the mount in its
handlers' context): the kernel made those itself and already knows them.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Txn

# Change kinds (low 7 bits of the kind byte).
ENTRY = 1  # (parent ino, name): a name appeared, vanished or now names another inode
ATTR = 2   # ino: attributes changed (size, times, mode, nlink, ...)
DATA = 3   # ino: bytes changed (or the inode was freed)
MOUNT_FLAG = 0x80  # made through a FUSE mount's kernel requests

Change = tuple[int, int, bytes]  # (kind | MOUNT_FLAG?, ino, name)

# Records kept. A group commit writes one record (more when it changed more than
# MAX_RECORD_CHANGES), so a mount polling every 150 ms falls behind only when it
# stalls for thousands of commits (seconds at the ~1k commits/s a disk's fsync
# allows); then it drops everything (see Tail.behind). Space: a 4 KiB PUT adds about
# 55 B (4 changes), a record of 64 PUTs ~3.5 KiB, the log ~7 MiB; at most
# LOG_KEEP x MAX_RECORD_CHANGES changes.
LOG_KEEP = 2048
TRIM_EVERY = 128  # records; the log holds LOG_KEEP to LOG_KEEP + TRIM_EVERY - 1
MAX_RECORD_CHANGES = 1024

# True in the context of a FUSE door's request handlers. Tasks they start inherit it
# (asyncio copies the context): a long-lived task started lazily from a handler that
# later commits for other doors must be created with a fresh contextvars.Context().
THROUGH_MOUNT: ContextVar[bool] = ContextVar("samebytes_through_mount", default=False)

_HEAD = struct.Struct(">IB")   # writer pid, flags
_ITEM = struct.Struct(">BQH")  # kind, ino, name length
_SEQ = struct.Struct(">Q")
_TAILER = struct.Struct(">IQ")  # pid, process start time (a pid alone can be reused)

log = logging.getLogger(__name__)


def note(txn: Txn, kind: int, ino: int, name: bytes = b"") -> None:
    """Record a change on txn (the engine logs it if txn commits)."""
    if kind != ENTRY and txn.born is not None and ino in txn.born:
        return  # allocated in this very transaction: no cache anywhere holds it yet
    txn.changes.append((kind, ino, name))


def born(txn: Txn, ino: int) -> None:
    """ino was allocated in txn: its own attribute and data changes need no note."""
    if txn.born is None:
        txn.born = set()
    txn.born.add(ino)


@dataclass(frozen=True, slots=True)
class Batch:
    """The changes of one group commit."""

    seq: int
    pid: int            # the writing process
    changes: tuple[Change, ...]


# -- record codec (pure) ------------------------------------------------------------

def encode_record(pid: int, changes: Iterable[Change]) -> bytes:
    parts = [_HEAD.pack(pid, 0)]
    for kind, ino, name in changes:
        parts.append(_ITEM.pack(kind, ino, len(name)))
        parts.append(name)
    return b"".join(parts)


def decode_record(seq: int, b: bytes) -> Batch:
    pid, _flags = _HEAD.unpack_from(b, 0)
    out: list[Change] = []
    at = _HEAD.size
    while at < len(b):
        kind, ino, n = _ITEM.unpack_from(b, at)
        at += _ITEM.size
        out.append((kind, ino, bytes(b[at:at + n])))
        at += n
    return Batch(seq, pid, tuple(out))


# -- the log --------------------------------------------------------------------------

def last_seq(txn: Txn) -> int:
    """The newest batch number in the log (0: empty)."""
    last = txn.last("changes")
    return int(_SEQ.unpack(last[0])[0]) if last is not None else 0


@dataclass(slots=True)
class Tail:
    batches: list[Batch]
    behind: bool  # records between `after` and the first returned were trimmed (or the log restarted)
    last: int     # the newest seq seen (pass it as `after` next time)


def read_since(txn: Txn, after: int, limit: int = 1024) -> Tail:
    """Up to limit batches with seq > after, oldest first."""
    newest = last_seq(txn)
    if newest < after:  # the log went backwards: a restore replaced the metadata
        return Tail([], True, newest)
    batches: list[Batch] = []
    for key, value in txn.range("changes", _SEQ.pack(after + 1)):
        seq = int(_SEQ.unpack(key)[0])
        batches.append(decode_record(seq, value))
        if len(batches) >= limit:
            break
    behind = bool(batches) and batches[0].seq != after + 1
    return Tail(batches, behind, batches[-1].seq if batches else after)


def register_tailer(txn: Txn, pid: int, start: int,
                    alive: Callable[[int, int], bool]) -> int:
    """Ask every other process to log its changes for (pid, start); forget registrations
    of processes that are gone. Returns the newest seq: tail from there."""
    for key, _ in list(txn.range("tailers", b"")):
        other_pid, other_start = _TAILER.unpack(key)
        if not alive(other_pid, other_start):
            txn.delete("tailers", key)
    txn.put("tailers", _TAILER.pack(pid, start), b"")
    return last_seq(txn)


def unregister_tailer(txn: Txn, pid: int, start: int) -> None:
    txn.delete("tailers", _TAILER.pack(pid, start))


def _someone_else_tails(txn: Txn, pid: int) -> bool:
    for key, _ in txn.range("tailers", b""):  # a handful of mounts at most
        if _TAILER.unpack(key)[0] != pid:
            return True
    return False


class ChangeFeed:
    """Logs each batch's changes and hands them to this process's subscribers.

    ``log`` runs inside the batch's write transaction and ``publish`` after its
    commit, both on the engine's writer thread: subscribers must be quick and
    thread-safe (queue the work, never block)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Batch], None]] = []

    def subscribe(self, fn: Callable[[Batch], None]) -> Callable[[], None]:
        """Call fn with every committed batch from now on; returns unsubscribe."""
        self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not fn]
        return unsubscribe

    def log(self, txn: Txn, changes: list[Change]) -> Batch:
        """Append the batch's changes as one record (several when it is large), if
        another process tails the log; the batch to publish in this process."""
        unique = tuple(dict.fromkeys(changes))
        pid = os.getpid()  # not cached at import: workers fork after importing
        if not _someone_else_tails(txn, pid):
            return Batch(0, pid, unique)  # seq 0: not in the log
        seq = last_seq(txn)
        for at in range(0, len(unique), MAX_RECORD_CHANGES):
            seq += 1
            txn.put("changes", _SEQ.pack(seq), encode_record(pid, unique[at:at + MAX_RECORD_CHANGES]))
            if seq % TRIM_EVERY == 0 and seq > LOG_KEEP:
                # In bulk, now and then: a delete per commit dirties another page per commit.
                for old, _ in list(txn.range("changes", b"", _SEQ.pack(seq - LOG_KEEP + 1))):
                    txn.delete("changes", old)
        return Batch(seq, pid, unique)

    def publish(self, batch: Batch) -> None:
        for fn in self._subscribers:
            try:
                fn(batch)
            except Exception:  # a subscriber's bug must never fail the writers
                log.exception("change subscriber failed")
