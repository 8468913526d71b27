"""What the metadata change feed costs a small PUT: the same vfs with the feed on and off.

Figure ``change_feed_put`` (ops/s), interleaved A B A B in one process:

* samebytes: ``fs.put_object`` of 4 KiB objects (distinct keys) from 64 concurrent
  asyncio tasks with the feed on and a separate mount process registered (the costly
  case; without one nothing is logged): every batch logs one record in the ``changes``
  sub-database and publishes it to a mount's filter (``KernelCache.on_batch``, which
  knows the bucket, as after ``ls`` on ``serve --mount``; its queue is drained by a
  thread that makes no kernel call, since there is no mount here);
* limit: the same Filesystem with the feed off (no notes, no log record, no subscriber).

``cpu_us_per_op`` gives process CPU (all threads) per acknowledged PUT for both;
``tail`` what a separate mount's poll costs per batch read back from the log.

Figure ``change_feed_small_files`` (files/s), the worst case for a per-commit cost:
one task doing create + write 4 KiB + release + getattr + unlink through the vfs (every
commit a batch of one record), feed on vs off, the folder known to the mount's filter
(so each commit also wakes the notifier thread: what another door's writes into a folder
a mount has cached cost; a mount's own writes skip the filter).

    python -m bench.changes [--quick] [--data DIR] [--rounds N] [--keep]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvloop

from gateway.fuse.invalidate import KernelCache
from gateway.vfs import ROOT, Filesystem
from metadata import changes
from metadata import namespace as ns
from metadata.schema import ROOT_INO

from . import Figure, emit, interleave, log, machine_info, make_data_dir, parser, remove_data_dir

CONCURRENCY = 64
SMALL = 4096


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _puts(fs: Filesystem, bucket: str, prefix: str, seconds: float) -> tuple[float, float]:
    """(ops/s, CPU µs per op) of put_object from CONCURRENCY tasks for `seconds`."""
    body = b"x" * SMALL
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            await fs.put_object(ROOT, bucket, f"{prefix}/{w}/{i}", _body(body))
            i += 1
            done += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return done / wall, cpu / done * 1e6


async def _small_files(fs: Filesystem, parent: int, prefix: str, seconds: float) -> tuple[float, float]:
    """(files/s, CPU µs per file) of a serial create + write + release + getattr + unlink cycle."""
    body = b"y" * SMALL
    deadline = time.perf_counter() + seconds
    n = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() < deadline:
        name = f"{prefix}-{n}".encode()
        node = await fs.create(ROOT, parent, name, 0o644, exclusive=True)
        h = await fs.open(ROOT, node.ino, os.O_WRONLY)
        await fs.write(h.fh, 0, body)
        await fs.release(h.fh)
        await fs.getattr(node.ino)
        await fs.unlink(ROOT, parent, name)
        n += 1
    return n / (time.perf_counter() - t0), (time.process_time() - cpu0) / max(n, 1) * 1e6


async def run(data: Path, rounds: int, seconds: float) -> dict[str, Any]:
    fs = Filesystem.from_data_dir(data / "samebytes")
    await fs.start()
    feed = fs.meta.changes
    assert feed is not None, "the engine has no change feed"
    real_note = ns.note
    cache = KernelCache(30.0)
    stop = threading.Event()

    def drain() -> None:  # stands in for the notifier thread, minus the kernel calls
        q = cache._queue
        while not stop.is_set():
            try:
                while True:
                    q.get(timeout=0.1)
            except Exception:
                pass

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    unsubscribe = None
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    try:
        # As if a separate `samebytes mount` tailed the log (pid 1 never goes away).
        await fs.meta.write(lambda txn: changes.register_tailer(txn, 1, 0, lambda p, s: True))
        await fs.create_bucket(ROOT, "feed")
        bucket_ino = (await fs.lookup(ROOT, ROOT_INO, b"feed")).ino
        cache.looked_up(bucket_ino, ROOT_INO, b"feed")

        def feed_on() -> None:
            nonlocal unsubscribe
            ns.note = real_note  # type: ignore[attr-defined]
            fs.meta.changes = feed
            unsubscribe = feed.subscribe(cache.on_batch)

        def feed_off() -> None:
            ns.note = lambda *a, **k: None  # type: ignore[attr-defined]
            fs.meta.changes = None
            if unsubscribe is not None:
                unsubscribe()

        async def on(r: int) -> float:
            feed_on()
            rate, us = await _puts(fs, "feed", f"on{r}", seconds)
            cpu["on"].append(us)
            return rate

        async def off(r: int) -> float:
            feed_off()
            rate, us = await _puts(fs, "feed", f"off{r}", seconds)
            cpu["off"].append(us)
            return rate

        res = await interleave(rounds, [("feed_on", on), ("feed_off", off)], "put")
        small_dir = (await fs.mkdir(ROOT, bucket_ino, b"small")).ino
        cache.looked_up(small_dir, bucket_ino, b"small")

        files_cpu: dict[str, list[float]] = {"on": [], "off": []}

        async def files_on(r: int) -> float:
            feed_on()
            rate, us = await _small_files(fs, small_dir, f"on{r}", seconds)
            files_cpu["on"].append(us)
            return rate

        async def files_off(r: int) -> float:
            feed_off()
            rate, us = await _small_files(fs, small_dir, f"off{r}", seconds)
            files_cpu["off"].append(us)
            return rate

        res_files = await interleave(rounds, [("feed_on", files_on), ("feed_off", files_off)], "files")
        feed_on()
        # What a separate mount's poll costs: read the whole log back, batch by batch.
        with fs.meta.read() as txn:
            newest = changes.last_seq(txn)
            kept = txn.count("changes")
            sizes = [len(v) for _, v in txn.range("changes", b"")]
        t0 = time.perf_counter()
        after, read = newest - kept, 0
        while read < kept:
            with fs.meta.read() as txn:
                tail = changes.read_since(txn, after, 1024)
            if not tail.batches:
                break
            read += len(tail.batches)
            after = tail.last
        tail_s = time.perf_counter() - t0
    finally:
        ns.note = real_note  # type: ignore[attr-defined]
        fs.meta.changes = feed
        stop.set()
        drainer.join()
        await fs.aclose()
    fig = Figure("change_feed_put", "acknowledged ops/s",
                 f"fs.put_object of {SMALL} B objects, {CONCURRENCY} concurrent tasks, with the "
                 "change feed on (log record per group commit + a mount's filter subscribed)",
                 "the same with the feed off (no notes, no log, no subscriber)",
                 res["feed_on"], res["feed_off"])
    fig.extra["cpu_us_per_op"] = {"feed_on": round(statistics.median(cpu["on"]), 1),
                                  "feed_off": round(statistics.median(cpu["off"]), 1),
                                  "per_round": cpu}
    fig.extra["log"] = {"records_kept": kept, "keep_limit": changes.LOG_KEEP,
                        "median_record_bytes": statistics.median(sizes) if sizes else 0}
    fig.extra["tail"] = {"batches_read": read, "seconds": round(tail_s, 4),
                         "us_per_batch": round(tail_s / max(read, 1) * 1e6, 2)}
    files = Figure("change_feed_small_files", "files/s",
                   f"one task: vfs create + write {SMALL} B + release + getattr + unlink (each "
                   "commit a batch of one), change feed on",
                   "the same with the feed off", res_files["feed_on"], res_files["feed_off"])
    files.extra["cpu_us_per_file"] = {"feed_on": round(statistics.median(files_cpu["on"]), 1),
                                      "feed_off": round(statistics.median(files_cpu["off"]), 1),
                                      "per_round": files_cpu}
    return {"benchmark": "changes", "machine": machine_info(data),
            "method": {"interleaving": f"feed on / feed off back to back, {rounds} rounds, "
                                       "medians; ratio = on / off",
                       "phase_seconds": seconds, "concurrency": CONCURRENCY},
            "figures": {"change_feed_put": fig.as_dict(),
                        "change_feed_small_files": files.as_dict()}}


def main(argv: list[str] | None = None) -> None:
    opts = parser("the change feed's cost per small PUT (feed on vs off, interleaved)").parse_args(argv)
    rounds = max(3, opts.rounds or (3 if opts.quick else 6))
    seconds = 1.0 if opts.quick else 5.0
    data = make_data_dir(opts.data, "changes")
    log(f"data dir {data} ({rounds} rounds of {seconds} s)")
    try:
        doc = uvloop.run(run(data, rounds, seconds))
    finally:
        remove_data_dir(data, opts.keep)
    emit(doc)


if __name__ == "__main__":
    main()
