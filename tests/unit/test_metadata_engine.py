"""The LMDB engine: group commit, isolation of failing ops, map growth, processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from metadata import EngineIOError, open_engine
from metadata.engine import LmdbEngine, Txn
from metadata.schema import DBS


@pytest.fixture
def engine(tmp_path: Path):
    e = open_engine(tmp_path / "meta")
    yield e
    e.close()


async def test_concurrent_writes_are_group_committed_and_all_acknowledged(engine: LmdbEngine) -> None:
    async def put(i: int) -> int:
        await engine.write(lambda txn: txn.put("counter", b"k%05d" % i, b"v"))
        return i

    before = engine.commits
    done = await asyncio.gather(*(put(i) for i in range(2000)))
    assert sorted(done) == list(range(2000))
    with engine.read() as txn:
        assert sum(1 for _ in txn.prefix("counter", b"k")) == 2000
    # 2000 operations needed far fewer commits: they were batched.
    assert engine.commits - before < 2000


async def test_a_failing_operation_does_not_sink_its_batch(engine: LmdbEngine) -> None:
    class Boom(Exception):
        pass

    def bad(txn: Txn) -> None:
        txn.put("counter", b"bad", b"partial")  # must be rolled back
        raise Boom()

    ops = [engine.write(lambda txn, i=i: txn.put("counter", b"good%d" % i, b"1")) for i in range(50)]
    ops.insert(25, engine.write(bad))
    results = await asyncio.gather(*ops, return_exceptions=True)
    assert isinstance(results[25], Boom)
    assert sum(r is None for r in results) == 50
    with engine.read() as txn:
        assert txn.get("counter", b"bad") is None
        assert sum(1 for _ in txn.prefix("counter", b"good")) == 50


async def test_write_returns_the_operations_result(engine: LmdbEngine) -> None:
    assert await engine.write(lambda txn: 41 + 1) == 42
    assert engine.write_sync(lambda txn: "sync") == "sync"


def test_insert_refuses_an_existing_key(engine: LmdbEngine) -> None:
    assert engine.write_sync(lambda txn: txn.insert("counter", b"x", b"1")) is True
    assert engine.write_sync(lambda txn: txn.insert("counter", b"x", b"2")) is False
    with engine.read() as txn:
        assert txn.get("counter", b"x") == b"1"


def test_floor_finds_the_greatest_key_not_above(engine: LmdbEngine) -> None:
    def fill(txn: Txn) -> None:
        for k in (b"b", b"d", b"f"):
            txn.put("counter", k, k)
    engine.write_sync(fill)
    with engine.read() as txn:
        assert txn.floor("counter", b"a") is None
        assert txn.floor("counter", b"b") == (b"b", b"b")
        assert txn.floor("counter", b"c") == (b"b", b"b")
        assert txn.floor("counter", b"z") == (b"f", b"f")
        assert list(txn.range("counter", b"c", b"f")) == [(b"d", b"d")]


async def test_a_full_map_grows_instead_of_failing(tmp_path: Path) -> None:
    engine = open_engine(tmp_path / "meta", map_size=256 * 1024)
    try:
        start = engine.map_size()
        value = os.urandom(4000)
        await asyncio.gather(*(engine.write(lambda txn, i=i: txn.put("xattr", b"%06d" % i, value))
                               for i in range(2000)))  # ~8 MB: many times the initial map
        assert engine.map_size() > start
        with engine.read() as txn:
            assert txn.count("xattr") == 2000
            assert txn.get("xattr", b"001999") == value
    finally:
        engine.close()


def _writer_process(path: str, tag: str, n: int, value_size: int) -> None:
    e = LmdbEngine(Path(path), DBS, map_size=256 * 1024)
    value = b"x" * value_size

    async def main() -> None:
        await asyncio.gather(*(e.write(lambda txn, i=i: txn.put("xattr", b"%s-%06d" % (tag.encode(), i), value))
                               for i in range(n)))
    asyncio.run(main())
    e.close()


def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    open_engine(path, map_size=256 * 1024).close()
    ctx = multiprocessing.get_context("spawn")  # the env must be opened after any fork
    procs = [ctx.Process(target=_writer_process, args=(str(path), tag, 3000, 1000)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    e = open_engine(path, map_size=256 * 1024)
    try:
        with e.read() as txn:
            assert sum(1 for _ in txn.prefix("xattr", b"a-")) == 3000
            assert sum(1 for _ in txn.prefix("xattr", b"b-")) == 3000
    finally:
        e.close()


def test_a_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    mine = open_engine(path, map_size=256 * 1024)
    try:
        before = mine.map_size()
        code = (f"from tests.unit.test_metadata_engine import _writer_process;"
                f"_writer_process({str(path)!r}, 'other', 2000, 4000)")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                       cwd=Path(__file__).parents[2])
        # Our environment still has the small map; reading and writing adopt the new one.
        with mine.read() as txn:
            assert txn.count("xattr") == 2000
        mine.write_sync(lambda txn: txn.put("xattr", b"mine", b"1"))
        assert mine.map_size() > before
        with mine.read() as txn:
            assert txn.get("xattr", b"mine") == b"1"
    finally:
        mine.close()


def _tiny_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


async def test_a_full_disk_fails_the_commit_cleanly_and_the_engine_keeps_serving(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not _tiny_tmpfs(disk, "2m"):
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail("cannot mount a tmpfs as root in CI")
        pytest.skip("mounting a tmpfs needs root")
    try:
        engine = open_engine(disk / "meta", map_size=64 << 20)
        try:
            await engine.write(lambda txn: txn.put("counter", b"kept", b"yes"))
            big = os.urandom(512 * 1024)
            with pytest.raises(EngineIOError):
                for i in range(16):  # 8 MiB into a 2 MiB disk
                    await engine.write(lambda txn, i=i: txn.put("xattr", b"%d" % i, big))
            # The failed commits lost nothing that was acknowledged; the engine still works.
            with engine.read() as txn:
                assert txn.get("counter", b"kept") == b"yes"
            await engine.write(lambda txn: txn.put("counter", b"after", b"ok"))
            with engine.read() as txn:
                assert txn.get("counter", b"after") == b"ok"
        finally:
            engine.close()
        reopened = open_engine(disk / "meta", map_size=64 << 20)
        try:
            with reopened.read() as txn:
                assert txn.get("counter", b"kept") == b"yes"
                assert txn.get("counter", b"after") == b"ok"
        finally:
            reopened.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_write_transactions_run_on_one_thread(engine: LmdbEngine) -> None:
    seen: set[int] = set()

    def op(txn: Txn) -> None:
        seen.add(threading.get_ident())

    threads = [threading.Thread(target=lambda: [engine.write_sync(op) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 1 and threading.get_ident() not in seen


def test_closed_engine_refuses_writes(tmp_path: Path) -> None:
    e = open_engine(tmp_path / "meta")
    e.close()
    from metadata import EngineError
    with pytest.raises(EngineError):
        e.write_sync(lambda txn: None)
