"""The vfs layer (gateway.vfs.Filesystem) beside raw limits measured in the same run.

Figures (each: samebytes and limit interleaved, A B A B, medians and their ratio):

1. small_put / small_get: 4 KiB objects, 64 concurrent asyncio tasks through
   ``fs.put_object`` / ``fs.read_object``; limit: the same payloads as files
   (open/write/fsync/close) from 64 threads, and read back (open/read/close).
2. big_put / big_get: 64 MiB objects (body in 1 MiB pieces; get streamed); limit: one
   file written in 4 MiB pieces + fdatasync + rename + directory fsync, read back with
   1 MiB os.read calls. Page cache is warm for both reads (just written).
3. meta_write: acknowledged ``engine.write`` ops/s from 64 tasks (group commit); limit:
   raw LMDB, 1000 puts per sync txn on one thread; baseline: one sync txn per op.
4. list_*: paging through ``fs.list_objects`` (1000 keys a page); limit: a raw LMDB
   cursor scan over the same dirent entries.

    python -m bench.vfs [--quick] [--data DIR] [--rounds N] [--keep]
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import struct
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import uvloop

from gateway.vfs import ROOT, Filesystem
from metadata.schema import U64

from . import Figure, emit, interleave, log, machine_info, make_data_dir, parser, remove_data_dir

KiB = 1024
MiB = 1024 * KiB
CONCURRENCY = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class Sizes:
    phase_s: float        # duration of one time-bounded phase (small objects, metadata)
    small: int            # small object size
    big: int              # large object size
    big_count: int        # large objects per round
    list_keys: int        # keys per listing bucket
    tiny_phase_s: float   # repeat very short listings until this much time passed

    @staticmethod
    def pick(quick: bool) -> Sizes:
        if quick:
            return Sizes(phase_s=0.5, small=4 * KiB, big=16 * MiB, big_count=2,
                         list_keys=10_000, tiny_phase_s=0.05)
        return Sizes(phase_s=1.5, small=4 * KiB, big=64 * MiB, big_count=2,
                     list_keys=100_000, tiny_phase_s=0.3)


async def _body(*pieces: bytes) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_env(path: Path) -> lmdb.Environment:
    """A raw LMDB env with the options the engine opens with (sync + metasync, no writemap)."""
    path.mkdir()
    return lmdb.open(str(path), map_size=64 << 30, max_dbs=4, sync=True, metasync=True,
                     writemap=False, readahead=False, lock=True)


def _raw_group_puts(env: lmdb.Environment, per_txn: int, value: bytes, tag: bytes,
                    seconds: float) -> float:
    """Puts/s of distinct keys, per_txn puts per sync write txn, on this thread."""
    deadline = time.perf_counter() + seconds
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() < deadline:
        with env.begin(write=True) as t:
            for _ in range(per_txn):
                t.put(tag + struct.pack(">Q", n), value)
                n += 1
    return n / (time.perf_counter() - t0)


def _pool_run(pool: ThreadPoolExecutor, n: int, fn: Callable[[int], int]) -> int:
    """fn(worker) on n pool threads at once; the sum of what they return."""
    return sum(f.result() for f in [pool.submit(fn, w) for w in range(n)])


async def _tasks_run(n: int, fn: Callable[[int], Any]) -> int:
    return sum(await asyncio.gather(*(fn(w) for w in range(n))))


# -- 1. small objects ------------------------------------------------------------------------


async def bench_small(fs: Filesystem, data: Path, sz: Sizes, rounds: int,
                      pool: ThreadPoolExecutor) -> dict[str, Any]:
    await fs.create_bucket(ROOT, "small")
    payload = os.urandom(sz.small)
    limit_root = data / "limit-small"
    limit_root.mkdir()
    keys: dict[int, list[str]] = {}
    files: dict[int, list[str]] = {}

    async def sb_put(r: int) -> float:
        deadline = time.perf_counter() + sz.phase_s
        mine = keys[r] = []

        async def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                key = f"r{r}-w{w:02d}-{i:07d}"
                await fs.put_object(ROOT, "small", key, _body(payload))
                mine.append(key)
                i += 1
            return i

        t0 = time.perf_counter()
        n = await _tasks_run(CONCURRENCY, worker)
        return n / (time.perf_counter() - t0)

    async def sb_get(r: int) -> float:
        mine = keys[r]
        deadline = time.perf_counter() + sz.phase_s

        async def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                got = await fs.read_object(ROOT, "small", mine[(w + i * CONCURRENCY) % len(mine)])
                if len(got) != sz.small:
                    raise AssertionError(f"read {len(got)} bytes, expected {sz.small}")
                i += 1
            return i

        t0 = time.perf_counter()
        n = await _tasks_run(CONCURRENCY, worker)
        return n / (time.perf_counter() - t0)

    async def limit_put(r: int) -> float:
        d = limit_root / f"r{r}"
        d.mkdir()
        _fsync_dir(limit_root)
        mine = files[r] = []
        deadline = time.perf_counter() + sz.phase_s
        dfd = os.open(d, _DIR_FLAGS)

        def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                name = f"w{w:02d}-{i:07d}"
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644,
                             dir_fd=dfd)
                try:
                    os.write(fd, payload)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                mine.append(name)
                i += 1
            return i

        try:
            t0 = time.perf_counter()
            n = _pool_run(pool, CONCURRENCY, worker)
            return n / (time.perf_counter() - t0)
        finally:
            os.close(dfd)

    async def limit_get(r: int) -> float:
        mine = files[r]
        deadline = time.perf_counter() + sz.phase_s
        dfd = os.open(limit_root / f"r{r}", _DIR_FLAGS)

        def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                fd = os.open(mine[(w + i * CONCURRENCY) % len(mine)],
                             os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    got = os.read(fd, 1 << 16)
                finally:
                    os.close(fd)
                if len(got) != sz.small:
                    raise AssertionError(f"read {len(got)} bytes, expected {sz.small}")
                i += 1
            return i

        try:
            t0 = time.perf_counter()
            n = _pool_run(pool, CONCURRENCY, worker)
            return n / (time.perf_counter() - t0)
        finally:
            os.close(dfd)

    raw = _raw_env(data / "raw-lmdb-small")

    async def raw_put(r: int) -> float:
        return _raw_group_puts(raw, CONCURRENCY, payload, b"r%d-" % r, sz.phase_s)

    try:
        res = await interleave(rounds, [("samebytes_put", sb_put), ("limit_put", limit_put),
                                        ("raw_lmdb_put", raw_put),
                                        ("samebytes_get", sb_get), ("limit_get", limit_get)],
                               "small")
    finally:
        raw.close()
    put = Figure("small_put", "ops/s",
                 f"fs.put_object of {sz.small} B objects (distinct keys, one bucket) from "
                 f"{CONCURRENCY} concurrent asyncio tasks; acknowledged = durable (group commit; "
                 "objects this small are stored inline in metadata, no chunk file)",
                 f"the same {sz.small} B payload as new files: open(O_CREAT|O_EXCL)/write/fsync/"
                 f"close from a pool of {CONCURRENCY} threads, one directory per round "
                 "(no directory fsync: on ext4 a file's fsync commits its new directory entry "
                 "in the same journal transaction)",
                 res["samebytes_put"], res["limit_put"])
    get = Figure("small_get", "ops/s",
                 f"await fs.read_object of the objects just put, {CONCURRENCY} concurrent tasks",
                 f"open/read/close of the files just written, pool of {CONCURRENCY} threads "
                 "(page cache warm)",
                 res["samebytes_get"], res["limit_get"])
    put.other("raw_lmdb_group_of_64",
              f"raw LMDB (separate env, sync=True), one thread, {CONCURRENCY} puts of a "
              f"{sz.small} B value per write txn: the ceiling of storing small objects inline "
              "in metadata with group commit").extend(res["raw_lmdb_put"])
    put.extra["objects_per_round"] = [len(keys[r]) for r in range(rounds)]
    get.extra["distinct_objects_per_round"] = [len(keys[r]) for r in range(rounds)]
    return {"small_put": put.as_dict(), "small_get": get.as_dict()}


# -- 2. large objects ------------------------------------------------------------------------


async def bench_big(fs: Filesystem, data: Path, sz: Sizes, rounds: int) -> dict[str, Any]:
    await fs.create_bucket(ROOT, "big")
    payload = os.urandom(sz.big)
    view = memoryview(payload)
    pieces_1m = [payload[i:i + MiB] for i in range(0, sz.big, MiB)]
    digest = hashlib.md5(payload).hexdigest()
    limit_root = data / "limit-big"
    limit_root.mkdir()
    chunk_root = data / "limit-chunks"
    chunk_root.mkdir()
    _fsync_dir(data)
    total = sz.big * sz.big_count
    keys: dict[int, list[str]] = {}
    lfiles: dict[int, list[Path]] = {}

    async def sb_put(r: int) -> float:
        mine = keys[r] = [f"r{r}-{j}" for j in range(sz.big_count)]
        t0 = time.perf_counter()
        for key in mine:
            inode = await fs.put_object(ROOT, "big", key, _body(*pieces_1m))
            if inode.etag != digest or inode.size != sz.big:
                raise AssertionError("put_object stored something else")
        return total / (time.perf_counter() - t0) / 1e6

    async def sb_get(r: int) -> float:
        t0 = time.perf_counter()
        for key in keys[r]:
            got = await fs.get_object(ROOT, "big", key)
            n = 0
            async for piece in got.body:
                n += len(piece)
            if n != sz.big:
                raise AssertionError(f"streamed {n} bytes, expected {sz.big}")
        return total / (time.perf_counter() - t0) / 1e6

    def write_file(final: Path) -> None:
        tmp = final.with_name(final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            for at in range(0, sz.big, 4 * MiB):
                piece = view[at:at + 4 * MiB]
                done = 0
                while done < len(piece):
                    done += os.write(fd, piece[done:])
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    async def limit_put(r: int) -> float:
        mine = lfiles[r] = [limit_root / f"r{r}-{j}" for j in range(sz.big_count)]
        t0 = time.perf_counter()
        for p in mine:
            write_file(p)
        return total / (time.perf_counter() - t0) / 1e6

    async def limit_get(r: int) -> float:
        t0 = time.perf_counter()
        for p in lfiles[r]:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
            n = 0
            try:
                while True:
                    b = os.read(fd, MiB)
                    if not b:
                        break
                    n += len(b)
            finally:
                os.close(fd)
            if n != sz.big:
                raise AssertionError(f"read {n} bytes, expected {sz.big}")
        dt = time.perf_counter() - t0
        for p in lfiles[r]:  # bound the disk space the limit uses (not timed)
            p.unlink()
        return total / dt / 1e6

    async def chunk_put(r: int) -> float:
        # The design's own floor: 4 MiB chunk files, each durable on its own
        # (tmp + write + fdatasync + rename + directory fsync), one after the other.
        names = []
        t0 = time.perf_counter()
        for j in range(sz.big_count):
            for at in range(0, sz.big, 4 * MiB):
                final = chunk_root / f"r{r}-{j}-{at // (4 * MiB):04d}"
                tmp = chunk_root / (final.name + ".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                try:
                    piece = view[at:at + 4 * MiB]
                    done = 0
                    while done < len(piece):
                        done += os.write(fd, piece[done:])
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
                _fsync_dir(chunk_root)
                names.append(final)
        dt = time.perf_counter() - t0
        for p in names:
            p.unlink()
        return total / dt / 1e6

    def md5_only(r: int) -> float:
        t0 = time.perf_counter()
        for _ in range(sz.big_count):
            h = hashlib.md5()
            for p in pieces_1m:
                h.update(p)
        return total / (time.perf_counter() - t0) / 1e6

    async def md5_step(r: int) -> float:
        return md5_only(r)

    res = await interleave(rounds, [("samebytes_put", sb_put), ("limit_put", limit_put),
                                    ("chunk_files_put", chunk_put), ("md5", md5_step),
                                    ("samebytes_get", sb_get), ("limit_get", limit_get)], "big")
    put = Figure("big_put", "MB/s (1e6 B/s)",
                 f"fs.put_object of {sz.big // MiB} MiB objects, body yielded in 1 MiB pieces, "
                 f"{sz.big_count} objects one after the other per round (4 MiB chunks, MD5 etag)",
                 f"the same bytes to one file: 4 MiB os.write calls, one fdatasync at the end, "
                 "tmp + rename + directory fsync",
                 res["samebytes_put"], res["limit_put"])
    put.other("chunk_files_durable",
              "the same bytes as 4 MiB chunk files, each tmp + write + fdatasync + rename + "
              "directory fsync, sequential (what the chunk design costs on this disk)"
              ).extend(res["chunk_files_put"])
    put.other("md5_one_core", "hashlib.md5 over the body in 1 MiB pieces on one core (the put "
              "computes the MD5 etag beside the chunk writes)").extend(res["md5"])
    get = Figure("big_get", "MB/s (1e6 B/s)",
                 "r = await fs.get_object(...); async for piece in r.body (1 MiB pieces, "
                 "read-ahead 4, xxh3 block verify)",
                 "os.read of 1 MiB pieces from the file just written",
                 res["samebytes_get"], res["limit_get"])
    get.extra["page_cache"] = "warm for both: each reads what its put wrote moments earlier"
    return {"big_put": put.as_dict(), "big_get": get.as_dict()}


# -- 3. metadata writes --------------------------------------------------------------------------


async def bench_meta(fs: Filesystem, data: Path, sz: Sizes, rounds: int) -> dict[str, Any]:
    env = _raw_env(data / "raw-lmdb")
    value = b"v" * 32
    seq = 0
    batches: list[float] = []

    def next_key(tag: bytes) -> bytes:
        nonlocal seq
        seq += 1
        return b"\xff\xffbench-" + tag + struct.pack(">Q", seq)

    async def sb(r: int) -> float:
        deadline = time.perf_counter() + sz.phase_s
        c0 = fs.meta.commits

        async def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                k = next_key(b"e")
                await fs.meta.write(lambda txn, k=k: txn.put("xattr", k, value))
                i += 1
            return i

        t0 = time.perf_counter()
        n = await _tasks_run(CONCURRENCY, worker)
        dt = time.perf_counter() - t0
        batches.append(n / max(1, fs.meta.commits - c0))
        return n / dt

    def one_txn(k: bytes) -> None:
        with env.begin(write=True) as t:
            t.put(k, value)

    async def per_op(r: int) -> float:
        deadline = time.perf_counter() + sz.phase_s

        async def worker(w: int) -> int:
            i = 0
            while time.perf_counter() < deadline:
                await asyncio.to_thread(one_txn, next_key(b"o"))
                i += 1
            return i

        t0 = time.perf_counter()
        n = await _tasks_run(CONCURRENCY, worker)
        return n / (time.perf_counter() - t0)

    async def group(r: int) -> float:
        return _raw_group_puts(env, 1000, value, b"\xff\xffbench-g%d-" % r, sz.phase_s)

    async def group64(r: int) -> float:
        return _raw_group_puts(env, CONCURRENCY, value, b"\xff\xffbench-h%d-" % r, sz.phase_s)

    try:
        res = await interleave(rounds, [("samebytes", sb), ("limit_group", group),
                                        ("raw_group_64", group64),
                                        ("one_txn_per_op", per_op)], "meta")
    finally:
        env.close()
    fig = Figure("meta_write", "acknowledged ops/s",
                 f"await fs.meta.write(lambda txn: txn.put('xattr', key, 32 B)) from "
                 f"{CONCURRENCY} concurrent asyncio tasks, distinct keys (group commit on the "
                 "engine's writer thread, each op in a nested txn)",
                 "raw LMDB (separate env, same data dir, sync=True), one thread, 1000 puts of "
                 "the same key/value sizes per write txn",
                 res["samebytes"], res["limit_group"])
    fig.other("raw_group_of_64",
              f"raw LMDB, one thread, {CONCURRENCY} puts per sync write txn: the same batch "
              f"size that {CONCURRENCY} waiting tasks can give the engine at most"
              ).extend(res["raw_group_64"])
    fig.other("one_txn_per_op",
              f"raw LMDB, one sync write txn per op via asyncio.to_thread from {CONCURRENCY} "
              f"tasks (default executor: {min(32, (os.cpu_count() or 1) + 4)} threads)"
              ).extend(res["one_txn_per_op"])
    fig.extra["avg_batch_size"] = round(statistics.median(batches), 1)
    fig.extra["avg_batch_size_per_round"] = [round(b, 1) for b in batches]
    return {"meta_write": fig.as_dict()}


# -- 4. listing ----------------------------------------------------------------------------------


async def _create_keys(fs: Filesystem, bucket: str, keys: list[str], label: str) -> float:
    it = iter(keys)

    async def worker(w: int) -> int:
        n = 0
        for key in it:
            await fs.put_object(ROOT, bucket, key, _body())
            n += 1
        return n

    t0 = time.perf_counter()
    n = await _tasks_run(CONCURRENCY, worker)
    dt = time.perf_counter() - t0
    log(f"list: created {n:,} empty objects in {bucket} in {dt:.1f} s ({n / dt:,.0f}/s)")
    return n / dt


async def bench_list(fs: Filesystem, data: Path, sz: Sizes, rounds: int) -> dict[str, Any]:
    n = sz.list_keys
    ndirs = 100
    per_dir = n // ndirs
    flat_keys = [f"k{i:07d}" for i in range(n)]
    tree_keys = [f"d{d:02d}/k{i:06d}" for d in range(ndirs) for i in range(per_dir)]
    await fs.create_bucket(ROOT, "lflat")
    await fs.create_bucket(ROOT, "ltree")
    setup = {
        "keys_per_bucket": n,
        "tree_layout": f"{ndirs} directories x {per_dir} keys (d00/k000000 ...)",
        "create": f"put_object with 0-byte bodies from {CONCURRENCY} concurrent tasks",
        "create_flat_ops_per_s": round(await _create_keys(fs, "lflat", flat_keys, "flat")),
        "create_tree_ops_per_s": round(await _create_keys(fs, "ltree", tree_keys, "tree")),
    }
    flat_ino = (await fs.head_bucket(ROOT, "lflat")).ino
    tree_ino = (await fs.head_bucket(ROOT, "ltree")).ino

    async def list_all(bucket: str, delimiter: str | None) -> int:
        marker: bytes | None = None
        count = 0
        while True:
            page = await fs.list_objects(ROOT, bucket, after=marker, max_keys=1000,
                                         delimiter=delimiter)
            count += len(page.keys) + len(page.prefixes)
            if not page.truncated:
                return count
            marker = page.next_marker

    def scan(ino: int, nested: bool, inodes: bool = False) -> int:
        count = 0
        with fs.meta.read() as txn:
            for _, v in txn.prefix("dirent", U64.pack(ino)):
                if nested:
                    for _, v2 in txn.prefix("dirent", v[:8]):
                        if inodes and txn.get("inode", v2[:8]) is None:
                            raise AssertionError("dirent without inode")
                        count += 1
                else:
                    if inodes and txn.get("inode", v[:8]) is None:
                        raise AssertionError("dirent without inode")
                    count += 1
        return count

    def timed_sb(bucket: str, delimiter: str | None, expect: int) -> Callable[[int], Any]:
        async def step(r: int) -> float:
            t0 = time.perf_counter()
            reps = 0
            while True:
                got = await list_all(bucket, delimiter)
                if got != expect:
                    raise AssertionError(f"listed {got} entries in {bucket}, expected {expect}")
                reps += 1
                dt = time.perf_counter() - t0
                if dt >= sz.tiny_phase_s:
                    return reps * expect / dt
        return step

    def timed_scan(ino: int, nested: bool, expect: int, inodes: bool = False) -> Callable[[int], Any]:
        async def step(r: int) -> float:
            t0 = time.perf_counter()
            reps = 0
            while True:
                got = scan(ino, nested, inodes)
                if got != expect:
                    raise AssertionError(f"scanned {got} entries, expected {expect}")
                reps += 1
                dt = time.perf_counter() - t0
                if dt >= sz.tiny_phase_s:
                    return reps * expect / dt
        return step

    tree_n = ndirs * per_dir
    res = await interleave(rounds, [
        ("flat", timed_sb("lflat", None, n)),
        ("flat_scan", timed_scan(flat_ino, False, n)),
        ("flat_scan_inode", timed_scan(flat_ino, False, n, inodes=True)),
        ("tree", timed_sb("ltree", None, tree_n)),
        ("tree_scan", timed_scan(tree_ino, True, tree_n)),
        ("flat_delim", timed_sb("lflat", "/", n)),
        ("flat_delim_scan", timed_scan(flat_ino, False, n)),
        ("tree_top_delim", timed_sb("ltree", "/", ndirs)),
        ("tree_top_delim_scan", timed_scan(tree_ino, False, ndirs)),
    ], "list")
    scan_is = ("raw LMDB cursor scan over the same dirent entries in one read txn "
               "(fs.meta.read() + txn.prefix('dirent', parent ino), counting entries)")
    flat = Figure("list_flat", "keys/s",
                  f"paging through fs.list_objects(max_keys=1000, no delimiter) over {n:,} flat "
                  "keys until truncated is False", scan_is, res["flat"], res["flat_scan"])
    flat.other("scan_plus_inode_get",
               "the same scan plus one txn.get of each key's inode (raw bytes, not decoded): "
               "what a listing that returns size/etag/mtime must at least read"
               ).extend(res["flat_scan_inode"])
    tree = Figure("list_tree", "keys/s",
                  f"the same over {tree_n:,} keys spread over {ndirs} directories, no delimiter",
                  scan_is + ", walking the bucket's 100 directory entries and each one's "
                  "entries", res["tree"], res["tree_scan"])
    delim = Figure("list_flat_delimiter", "keys/s",
                   f"paging with delimiter '/' over the {n:,} flat keys (none contains '/')",
                   scan_is, res["flat_delim"], res["flat_delim_scan"])
    top = Figure("list_tree_top_delimiter", "entries/s",
                 f"fs.list_objects(delimiter='/') at the top of the tree bucket: one page of "
                 f"{ndirs} CommonPrefixes, repeated for {sz.tiny_phase_s} s",
                 f"cursor scan over the bucket's {ndirs} dirent entries, fresh read txn each, "
                 "repeated", res["tree_top_delim"], res["tree_top_delim_scan"])
    return {"list_setup": setup, "list_flat": flat.as_dict(), "list_tree": tree.as_dict(),
            "list_flat_delimiter": delim.as_dict(), "list_tree_top_delimiter": top.as_dict()}


# -- driver ----------------------------------------------------------------------------------


async def run(data: Path, sz: Sizes, rounds: int, quick: bool) -> dict[str, Any]:
    fs = Filesystem.from_data_dir(data / "samebytes")
    await fs.start()
    pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="bench-limit")
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    try:
        for name, coro in [
            ("small", lambda: bench_small(fs, data, sz, rounds, pool)),
            ("big", lambda: bench_big(fs, data, sz, rounds)),
            ("meta", lambda: bench_meta(fs, data, sz, rounds)),
            ("list", lambda: bench_list(fs, data, sz, rounds)),
        ]:
            t0 = time.perf_counter()
            log(f"{name}: start")
            figures.update(await coro())
            timings[name] = round(time.perf_counter() - t0, 1)
            log(f"{name}: done in {timings[name]} s")
    finally:
        pool.shutdown(wait=True)
        await fs.aclose()
    setup = figures.pop("list_setup")
    return {
        "benchmark": "vfs",
        "mode": "quick" if quick else "full",
        "machine": machine_info(data),
        "method": {
            "interleaving": f"each round runs the samebytes step and its limit back to back "
                            f"(A B A B ...), {rounds} rounds; values are medians over rounds; "
                            "ratio = median(samebytes) / median(limit)",
            "event_loop": "uvloop (uvloop.run), as the server",
            "concurrency": CONCURRENCY,
            "phase_seconds": sz.phase_s,
            "durability": "samebytes acknowledges only durable writes (sync LMDB commit, "
                          "fdatasync'd chunk files); every write limit is durable too",
        },
        "figures": figures,
        "list_setup": setup,
        "seconds_per_benchmark": timings,
    }


def main(argv: list[str] | None = None) -> None:
    opts = parser("samebytes vfs benchmark (figures beside raw limits, interleaved)").parse_args(argv)
    rounds = max(3, opts.rounds or (3 if opts.quick else 5))
    sz = Sizes.pick(opts.quick)
    data = make_data_dir(opts.data, "vfs")
    log(f"data dir {data} ({'quick' if opts.quick else 'full'}, {rounds} rounds)")
    t0 = time.perf_counter()
    try:
        doc = uvloop.run(run(data, sz, rounds, opts.quick))
    finally:
        remove_data_dir(data, opts.keep)
    doc["total_seconds"] = round(time.perf_counter() - t0, 1)
    emit(doc)


if __name__ == "__main__":
    main()
