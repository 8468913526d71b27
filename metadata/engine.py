"""The transactional key-value engine under the namespace: LMDB, one writer thread.

The contract (what a distributed engine would have to provide too):

* ``read()`` gives a short, consistent snapshot. It must never be held across an
  ``await``: an open LMDB reader pins pages and the file grows without bound
  (FACTS.md: 300 updates grew data.mdb to 1.2 GiB).
* ``write(op)`` runs ``op(txn)`` inside a write transaction and resolves only after
  that transaction is durable. Operations queued together are group-committed:
  one fsync for the batch is what makes metadata writes fast (20-30k ops/s versus
  1-3k for one transaction per request). Each operation runs in a nested
  transaction, so one that raises is rolled back alone and the rest of its batch
  still commits.
* Write transactions begin and commit on the single writer thread: py-lmdb opens
  with MDB_NOTLS and a write txn that crosses threads is undefined behaviour.

Failure rules (FACTS.md): a full map is grown and the batch retried; a map grown
by another process is adopted (``set_mapsize(0)``); an error on commit (EIO from a
failed fsync or a full disk) fails the batch and reopens the environment, because
a retried fsync must never be counted as success.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from .changes import MOUNT_FLAG, THROUGH_MOUNT, Batch, Change, ChangeFeed

log = logging.getLogger(__name__)

T = TypeVar("T")

# Address space only, not disk: a large start means growth is rare.
DEFAULT_MAP_SIZE = 64 << 30
# Operations per group commit: bounds the latency one batch adds to the next.
MAX_BATCH = 1024
# Stale reader slots of killed processes are reclaimed this often.
READER_CHECK_SECONDS = 30.0
MAX_DBS = 32
MAX_READERS = 1024


class _ReadSnapshot:
    """The context manager `LmdbEngine.read` returns: a class, not @contextmanager, because
    every request opens one or two (the generator machinery was a visible part of a 4 KiB GET)."""

    __slots__ = ("_engine", "_txn")

    def __init__(self, engine: LmdbEngine) -> None:
        self._engine = engine
        self._txn: lmdb.Transaction | None = None

    def __enter__(self) -> Txn:
        self._txn = txn = self._engine._begin_read()
        return Txn(txn, self._engine._dbs)

    def __exit__(self, *exc: object) -> None:
        if self._txn is not None:
            self._txn.abort()
            self._txn = None


class EngineError(Exception):
    """The engine could not carry out a transaction; nothing of it was committed."""


class EngineIOError(EngineError):
    """The commit failed at the storage level (EIO, full disk). Not retried."""


class Txn:
    """A thin typed view of one LMDB transaction over named sub-databases."""

    __slots__ = ("_txn", "_dbs", "changes", "born")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self._txn = txn
        self._dbs = dbs
        self.changes: list[Change] = []  # noted by namespace mutators (see changes.py)
        self.born: set[int] | None = None  # inodes allocated here: no cache can hold them

    def get(self, db: str, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._dbs[db])

    def put(self, db: str, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=self._dbs[db])

    def insert(self, db: str, key: bytes, value: bytes) -> bool:
        """Put only if absent; False when the key exists."""
        return bool(self._txn.put(key, value, db=self._dbs[db], overwrite=False))

    def delete(self, db: str, key: bytes) -> bool:
        return bool(self._txn.delete(key, db=self._dbs[db]))

    def range(
        self, db: str, start: bytes, stop: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Items with start <= key < stop, in key order."""
        with self._txn.cursor(db=self._dbs[db]) as cur:
            if not cur.set_range(start):
                return
            for key, value in cur:
                if stop is not None and key >= stop:
                    return
                yield key, value

    def prefix(self, db: str, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with prefix (from prefix+start on), in key order."""
        begin = prefix + start if start else prefix
        with self._txn.cursor(db=self._dbs[db]) as cur:
            if not cur.set_range(begin):
                return
            for key, value in cur:
                if not key.startswith(prefix):
                    return
                yield key, value

    def floor(self, db: str, key: bytes) -> tuple[bytes, bytes] | None:
        """The item with the greatest key <= key, or None."""
        with self._txn.cursor(db=self._dbs[db]) as cur:
            if cur.set_range(key):
                if cur.key() == key:
                    return cur.item()
                if not cur.prev():
                    return None
                return cur.item()
            if not cur.last():
                return None
            return cur.item()

    def last(self, db: str) -> tuple[bytes, bytes] | None:
        """The item with the greatest key, or None."""
        with self._txn.cursor(db=self._dbs[db]) as cur:
            return cur.item() if cur.last() else None

    def count(self, db: str) -> int:
        return int(self._txn.stat(self._dbs[db])["entries"])


class _Op:
    __slots__ = ("fn", "done", "through_mount")

    def __init__(self, fn: Callable[[Txn], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        self.fn = fn
        self.done = done
        self.through_mount = THROUGH_MOUNT.get()  # the submitter's context, not the writer thread's


_STOP = object()


class LmdbEngine:
    """One LMDB environment per process, opened after any fork."""

    def __init__(
        self,
        path: Path,
        db_names: tuple[str, ...],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        sync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db_names = db_names
        self._map_size = map_size
        self._sync = sync
        self._env_lock = threading.Lock()  # guards reopen against readers
        self._open()
        # Every committed change of names and inodes, logged and published per batch.
        self.changes = ChangeFeed() if "changes" in db_names else None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0  # batches committed, for benchmarks and tests
        self._thread = threading.Thread(target=self._writer_loop, name="lmdb-writer", daemon=True)
        self._thread.start()

    # -- environment -----------------------------------------------------

    def _open(self) -> None:
        self.env = lmdb.open(
            str(self.path),
            map_size=self._map_size,
            max_dbs=MAX_DBS,
            max_readers=MAX_READERS,
            sync=self._sync,
            metasync=self._sync,
            writemap=False,  # writemap turns a full disk into SIGBUS
            readahead=False,
            lock=True,
        )
        self.env.reader_check()
        while True:
            try:
                self._dbs = {name: self.env.open_db(name.encode()) for name in self._db_names}
                break
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # another process grew the map meanwhile
        self._last_reader_check = time.monotonic()

    def _reopen(self) -> None:
        with self._env_lock:
            try:
                self.env.close()
            except lmdb.Error:
                log.exception("closing LMDB after a failed commit")
            self._open()

    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    # -- reads -------------------------------------------------------------

    def read(self) -> _ReadSnapshot:
        """A short read snapshot (``with engine.read() as txn``). Never hold it across an
        await."""
        return _ReadSnapshot(self)

    def get_one(self, db: str, key: bytes) -> bytes | None:
        """One value from a snapshot of its own: ``read()`` for a single get, at a third
        of its cost (a mount read checks its cached plan against the inode this way)."""
        with self._env_lock:  # _begin_read, inlined: a mount's every small read comes here
            try:
                txn = self.env.begin(write=False)
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)  # another process grew the map: adopt its size
                txn = self.env.begin(write=False)
        try:
            return txn.get(key, db=self._dbs[db])  # type: ignore[return-value]
        finally:
            txn.abort()

    def _begin_read(self) -> lmdb.Transaction:
        with self._env_lock:  # not while a failed commit reopens the environment
            try:
                return self.env.begin(write=False)
            except lmdb.MapResizedError:
                # Another process grew the map: adopt its size.
                self.env.set_mapsize(0)
                return self.env.begin(write=False)

    # -- writes ------------------------------------------------------------

    async def write(self, fn: Callable[[Txn], T]) -> T:
        """Run fn in a write transaction; resolves after the commit is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(_resolve, fut, result, exc)

        self._submit(_Op(fn, done))
        return await fut

    def write_sync(self, fn: Callable[[Txn], T]) -> T:
        """The same for code outside the event loop (CLI, tests, worker threads)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

        self._submit(_Op(fn, done))
        return fut.result()

    def _submit(self, op: _Op) -> None:
        if self._closed:
            raise EngineError("metadata engine is closed")
        self._queue.put(op)

    def _writer_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        while True:
            try:
                results, logged = self._try_batch(batch)
            except lmdb.MapFullError:
                self._grow()
                continue
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
                continue
            except Exception as exc:  # commit failed: EIO, full disk, ...
                log.error("metadata commit failed, reopening the environment: %s", exc)
                err = EngineIOError(f"metadata commit failed: {exc}")
                # Reopen before anyone hears of the failure, so a caller that retries
                # at once meets a fresh environment, never the closed one.
                try:
                    self._reopen()
                except Exception:
                    log.exception("reopening LMDB failed")
                for op in batch:
                    op.done(None, err)
                return
            self.commits += 1
            if logged is not None and self.changes is not None:
                # Before the writers hear back: a reply to them implies caches are told.
                self.changes.publish(logged)
            for op, (result, failure) in zip(batch, results):
                op.done(result, failure)
            if time.monotonic() - self._last_reader_check > READER_CHECK_SECONDS:
                self.env.reader_check()
                self._last_reader_check = time.monotonic()
            return

    def _try_batch(self, batch: list[_Op]) -> tuple[list[tuple[Any, BaseException | None]], Batch | None]:
        results: list[tuple[Any, BaseException | None]] = []
        changed: list[Change] = []
        logged: Batch | None = None
        txn = self.env.begin(write=True)
        try:
            for op in batch:
                child = self.env.begin(write=True, parent=txn)
                view = Txn(child, self._dbs)
                try:
                    result = op.fn(view)
                except lmdb.MapFullError:
                    child.abort()
                    raise
                except BaseException as exc:
                    child.abort()
                    results.append((None, exc))
                    continue
                child.commit()
                results.append((result, None))
                if view.changes:
                    if op.through_mount:
                        changed.extend((k | MOUNT_FLAG, i, n) for k, i, n in view.changes)
                    else:
                        changed.extend(view.changes)
            if changed and self.changes is not None:
                logged = self.changes.log(Txn(txn, self._dbs), changed)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return results, logged

    def _grow(self) -> None:
        # No write txn is open here (the batch aborted), which set_mapsize requires.
        new = self.map_size() * 2
        log.info("metadata map full: growing to %d bytes", new)
        self.env.set_mapsize(new)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self.env.close()


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)

