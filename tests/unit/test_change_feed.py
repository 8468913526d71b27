"""The metadata change feed: logged in the committing transaction, published after it,
tailed by other processes; and the mount's filter of what to tell the kernel."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from metadata import changes, open_engine
from metadata import namespace as ns
from metadata.changes import ATTR, DATA, ENTRY, MOUNT_FLAG, THROUGH_MOUNT, Batch, read_since
from metadata.schema import ROOT_INO, Inode


def _tailed(path: Path):  # type: ignore[no-untyped-def]
    """An engine with another process (pid 1) registered as tailing its log."""
    e = open_engine(path)
    e.write_sync(lambda txn: changes.register_tailer(txn, 1, 0, lambda pid, start: True))
    return e


def _new_file(txn, name: bytes) -> int:  # type: ignore[no-untyped-def]
    root = ns.ensure_root(txn, 1)
    ino = ns.alloc_ino(txn)
    ns.add_entry(txn, root, name, ino, False)
    ns.put_inode(txn, root)
    ns.put_inode(txn, Inode(ino, 0o100644, 0, 0))
    return ino


def test_a_commit_logs_and_publishes_what_it_changed(tmp_path: Path) -> None:
    e = _tailed(tmp_path / "m")
    try:
        seen: list[Batch] = []
        assert e.changes is not None
        e.changes.subscribe(seen.append)
        ino = e.write_sync(lambda txn: _new_file(txn, b"a"))
        assert len(seen) == 1
        got = set(seen[0].changes)
        assert got == {(ENTRY, ROOT_INO, b"a"), (ATTR, ROOT_INO, b"")}
        # The new inode itself is not listed: no cache can hold an inode born in the commit.
        e.write_sync(lambda txn: ns.put_inode(txn, Inode(ino, 0o100600, 0, 0)))
        assert seen[1].changes == ((ATTR, ino, b""),)
        with e.read() as txn:
            tail = read_since(txn, 0)
        assert not tail.behind and tail.last == seen[1].seq
        assert tail.batches == seen
    finally:
        e.close()


def test_a_failed_operation_logs_nothing_and_names_lose_their_slash(tmp_path: Path) -> None:
    e = _tailed(tmp_path / "m")
    try:
        seen: list[Batch] = []
        assert e.changes is not None
        e.changes.subscribe(seen.append)

        def fails(txn):  # type: ignore[no-untyped-def]
            _new_file(txn, b"x")
            raise ValueError("no")
        with pytest.raises(ValueError):
            e.write_sync(fails)
        assert seen == []

        def mkdir_and_remove(txn):  # type: ignore[no-untyped-def]
            root = ns.ensure_root(txn, 1)
            seq = ns.add_entry(txn, root, b"d", 77, True)
            ns.remove_entry(txn, ROOT_INO, b"d/", seq)
            ns.punch(txn, 5, 0, 10, 1)
        e.write_sync(mkdir_and_remove)
        assert (ENTRY, ROOT_INO, b"d") in seen[0].changes
        assert (DATA, 5, b"") in seen[0].changes
    finally:
        e.close()


def test_changes_made_through_a_mount_carry_its_flag(tmp_path: Path) -> None:
    e = _tailed(tmp_path / "m")
    try:
        seen: list[Batch] = []
        assert e.changes is not None
        e.changes.subscribe(seen.append)

        async def through_mount() -> None:
            THROUGH_MOUNT.set(True)
            await e.write(lambda txn: _new_file(txn, b"m"))
        asyncio.run(through_mount())
        assert seen[0].changes and all(k & MOUNT_FLAG for k, _, _ in seen[0].changes)
        e.write_sync(lambda txn: _new_file(txn, b"n"))
        assert not any(k & MOUNT_FLAG for k, _, _ in seen[1].changes)
    finally:
        e.close()


def test_a_reader_past_the_trimmed_end_is_told_it_fell_behind(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "LOG_KEEP", 4)
    monkeypatch.setattr(changes, "TRIM_EVERY", 1)
    e = _tailed(tmp_path / "m")
    try:
        with e.read() as txn:
            start = changes.last_seq(txn)
        for i in range(3):
            e.write_sync(lambda txn, i=i: _new_file(txn, b"f%d" % i))
        with e.read() as txn:
            t = read_since(txn, start)
        assert not t.behind and len(t.batches) == 3
        for i in range(3, 10):
            e.write_sync(lambda txn, i=i: _new_file(txn, b"f%d" % i))
        with e.read() as txn:
            t2 = read_since(txn, t.last)
            assert txn.count("changes") == 4  # trimmed to the last LOG_KEEP
        assert t2.behind and t2.last == t.last + 7
        with e.read() as txn:
            assert read_since(txn, t2.last + 100).behind  # the log went backwards (a restore)
    finally:
        e.close()


def test_a_large_batch_is_logged_as_several_bounded_records(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_RECORD_CHANGES", 2)
    e = _tailed(tmp_path / "m")
    try:
        published: list[Batch] = []
        assert e.changes is not None
        e.changes.subscribe(published.append)
        e.write_sync(lambda txn: [_new_file(txn, b"big"), ns.put_inode(txn, Inode(99, 0o40755, 0, 0))])
        with e.read() as txn:
            t = read_since(txn, 0)
        assert [len(b.changes) for b in t.batches] == [2, 1]
        assert tuple(c for b in t.batches for c in b.changes) == published[0].changes
        assert published[0].seq == t.last
    finally:
        e.close()


def test_record_codec_round_trips() -> None:
    items = ((ENTRY, 3, b"name\xff"), (ATTR | MOUNT_FLAG, 1 << 60, b""), (DATA, 9, b""))
    b = changes.decode_record(5, changes.encode_record(123, items))
    assert b == Batch(5, 123, items)


def test_the_mount_tells_the_kernel_only_what_it_can_hold_and_did_not_make() -> None:
    pytest.importorskip("pyfuse3")
    from gateway.fuse.invalidate import KernelCache

    cache = KernelCache(30.0)
    queued = cache._queue  # the notifier thread is not started: inspect what it would send
    cache.looked_up(10, ROOT_INO, b"known")
    cache.on_batch(Batch(1, 1, (
        (ENTRY, ROOT_INO, b"new"),            # under a known directory: sent
        (ENTRY, 99, b"x"),                    # under a directory the kernel never saw
        (ATTR, 10, b""), (DATA, 10, b""),     # a known inode: attributes, then data too
        (DATA, 11, b""),                      # unknown inode
        (ENTRY | MOUNT_FLAG, ROOT_INO, b"mine"),  # made through our own kernel
    )))
    sent = []
    while not queued.empty():
        sent.append(queued.get())
    assert sent == [(1, ROOT_INO, b"new"), (2, 10, True), (2, 10, False)]
    cache.forgot(10, 1)
    cache.on_batch(Batch(2, 1, ((DATA, 10, b""),)))
    assert queued.empty()
    # Another process's mount flag is not ours: the tail passes skip_own_mount=False.
    cache.on_batch(Batch(3, 2, ((ENTRY | MOUNT_FLAG, ROOT_INO, b"theirs"),)), skip_own_mount=False)
    assert queued.get() == (1, ROOT_INO, b"theirs")
    # Missed changes: every known inode and recently answered name goes.
    cache.drop_everything()
    dropped = set()
    while not queued.empty():
        dropped.add(queued.get())
    assert (2, ROOT_INO, False) in dropped and (1, ROOT_INO, b"known") in dropped


def test_a_mount_that_fell_behind_the_log_drops_everything(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyfuse3")
    from gateway.fuse.invalidate import KernelCache, _follow

    monkeypatch.setattr(changes, "LOG_KEEP", 3)
    monkeypatch.setattr(changes, "TRIM_EVERY", 2)
    e = _tailed(tmp_path / "m")
    try:
        cache = KernelCache(30.0)  # not started: inspect what it would send
        cache.looked_up(42, ROOT_INO, b"cached")
        with e.read() as txn:
            after = changes.last_seq(txn)
        other_pid = 1  # the log is read as if another process wrote it

        def drained() -> list[tuple[int, int, object]]:
            out = []
            while not cache._queue.empty():
                out.append(cache._queue.get())
            return out

        e.write_sync(lambda txn: _new_file(txn, b"one"))
        after = _follow(e, cache, after, other_pid)
        assert set(drained()) == {(1, ROOT_INO, b"one"), (2, ROOT_INO, True)}
        # This process's own records are skipped (the in-process feed handled them).
        e.write_sync(lambda txn: _new_file(txn, b"two"))
        after = _follow(e, cache, after, os.getpid())
        assert drained() == []
        for i in range(5):  # more than the log keeps, unread
            e.write_sync(lambda txn, i=i: _new_file(txn, b"x%d" % i))
        _follow(e, cache, after, other_pid)
        sent = drained()
        assert (2, 42, False) in sent and (1, ROOT_INO, b"cached") in sent  # everything
    finally:
        e.close()


def test_the_log_is_written_only_while_another_process_tails_it(tmp_path: Path) -> None:
    e = open_engine(tmp_path / "m")
    try:
        seen: list[Batch] = []
        assert e.changes is not None
        e.changes.subscribe(seen.append)
        e.write_sync(lambda txn: _new_file(txn, b"a"))
        me, start = os.getpid(), 12345
        # This process tailing itself changes nothing: it hears its commits in memory.
        after = e.write_sync(lambda txn: changes.register_tailer(txn, me, start, lambda p, s: True))
        e.write_sync(lambda txn: _new_file(txn, b"b"))
        with e.read() as txn:
            assert txn.count("changes") == 0
        assert len(seen) == 2 and seen[-1].seq == 0  # published all the same
        # Another process registers (and a dead registration is cleared on the way).
        e.write_sync(lambda txn: changes.register_tailer(txn, 999_999, 1, lambda p, s: p != me))
        with e.read() as txn:
            assert [k for k, _ in txn.range("tailers", b"")] == [changes._TAILER.pack(999_999, 1)]
        e.write_sync(lambda txn: _new_file(txn, b"c"))
        with e.read() as txn:
            t = read_since(txn, after)
        assert [c for b in t.batches for c in b.changes if c[0] == ENTRY] == [(ENTRY, ROOT_INO, b"c")]
        e.write_sync(lambda txn: changes.unregister_tailer(txn, 999_999, 1))
        e.write_sync(lambda txn: _new_file(txn, b"d"))
        with e.read() as txn:
            assert changes.last_seq(txn) == t.last
    finally:
        e.close()
