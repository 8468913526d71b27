"""The collector: frees what committed metadata no longer needs.

Three kinds of garbage, all left behind on purpose so that nothing is ever
deleted while something may still read it:

* pending chunks: spilled by an open file and not yet committed; collected only
  once their writer process is gone (a crash), never by age;
* orphan inodes: unlinked while open; freed once closed here (and past the grace);
* trash: chunks whose last extent went away; bytes deleted after the grace period,
  so a reader holding an older extent list finishes;
* unreferenced chunks: bytes made durable by a write whose metadata never
  committed (a crash, a refused checksum). Found by listing the chunk store; the
  grace period keeps chunks of writes still in flight (in any process) safe.

The chunk store is listed once, before any chunk is deleted: the listing gives the
sizes that make ``bytes_freed`` (trash records keep no size) and the unreferenced
candidates. A long run reports progress through a Ticker (``samebytes gc`` prints it
on stderr, as fsck does).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from chunkstore import ChunkError
from metadata import Txn
from metadata import namespace as ns

from .progress import Progress, Ticker

if TYPE_CHECKING:
    from .core import Core as Filesystem

BATCH = 512


@dataclass(slots=True)
class GcReport:
    pending_chunks: int = 0
    orphan_inodes: int = 0
    trash_chunks: int = 0
    unreferenced_chunks: int = 0
    bytes_freed: int = 0    # of the chunks deleted from the store by this pass
    chunks_listed: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def collect(fs: Filesystem, grace_seconds: float, *, progress: Progress | None = None,
                  progress_every: float = 5.0) -> GcReport:
    """One collector pass; progress (if given) gets a line at most every progress_every
    seconds while the store is listed and chunks are deleted, and a summary at the end."""
    report = GcReport()
    tick = Ticker(progress, progress_every)
    now = time.time_ns()
    cutoff = now - int(grace_seconds * 1e9)

    # 0. Chunks spilled by writers that died before committing them.
    from .core import MY_PID, MY_START, process_start_time
    mine = {cid for f in fs._open.values() for cid in f.chunk_ids()}

    def abandoned(cid: int, pid: int, start: int) -> bool:
        if pid == MY_PID and start == MY_START:
            return cid not in mine
        return process_start_time(pid) != start

    dead = fs._read(lambda txn: [cid for cid, pid, st in ns.pending(txn) if abandoned(cid, pid, st)])
    for i in range(0, len(dead), BATCH):
        part = dead[i:i + BATCH]

        def drop(txn: Txn, part: list[int] = part) -> int:
            for cid in part:
                ns.clear_pending(txn, cid)
                ns.trash_if_unreferenced(txn, cid, cutoff)  # already past the grace
            return len(part)
        report.pending_chunks += await fs._write(drop)

    # 1. Orphan inodes nobody here has open any more.
    stale = fs._read(lambda txn: [ino for ino, t in ns.orphans(txn) if t <= cutoff])
    stale = [ino for ino in stale if not fs.is_open(ino)]
    for i in range(0, len(stale), BATCH):
        part = stale[i:i + BATCH]

        def free(txn: Txn, part: list[int] = part) -> int:
            n = 0
            for ino in part:
                inode = ns.get_inode(txn, ino)
                if inode is not None and inode.nlink == 0:
                    ns.free_inode(txn, ino, now)
                    n += 1
                else:
                    txn.delete("orphan", ns.U64.pack(ino))
            return n
        report.orphan_inodes += await fs._write(free)

    # 2. List the store (sizes of what gets deleted; crash leftovers past the grace).
    due = fs._read(lambda txn: [cid for cid, t in ns.trash(txn) if t <= cutoff])
    due_set = set(due)
    sizes: dict[int, int] = {}
    candidates: list[int] = []
    cutoff_s = time.time() - grace_seconds
    async for cid, mtime, size in fs.chunks.sized_ids():
        report.chunks_listed += 1
        if cid in due_set:
            sizes[cid] = size or 0
        elif mtime <= cutoff_s:
            candidates.append(cid)
            sizes[cid] = size or 0
        tick(lambda: f"gc: {report.chunks_listed:,} chunks listed")

    # 3. Trashed chunks past their grace.
    for i in range(0, len(due), BATCH):
        part = due[i:i + BATCH]
        done = []
        for cid in part:
            try:
                await fs.chunks.delete(cid)
                done.append(cid)
                report.bytes_freed += sizes.get(cid, 0)  # not listed: already gone
            except ChunkError:
                report.errors += 1
            tick(lambda: f"gc: {report.trash_chunks + len(done):,}/{len(due):,} trashed chunks "
                         f"deleted, {report.bytes_freed:,} bytes freed")

        def forget(txn: Txn, done: list[int] = done) -> None:
            for cid in done:
                ns.forget_trash(txn, cid)
        await fs._write(forget)
        report.trash_chunks += len(done)

    # 4. Chunks no metadata knows, older than the grace (crash leftovers). Known-ness is
    # read now, after the listing: a chunk committed meanwhile is known and stays.
    for i in range(0, len(candidates), BATCH):
        part = candidates[i:i + BATCH]
        # This process's uncommitted spills may not be known to metadata yet (their
        # pending record commits in the background): never crash leftovers. Taken
        # after the listing, so every spill the listing saw is either here or known.
        in_flight = {cid for f in fs._open.values() for cid in f.chunk_ids()}
        unknown = fs._read(lambda txn, part=part: [c for c in part if c not in in_flight
                                                   and not ns.chunk_known(txn, c)])
        for cid in unknown:
            try:
                await fs.chunks.delete(cid)
                report.unreferenced_chunks += 1
                report.bytes_freed += sizes[cid]
            except ChunkError:
                report.errors += 1
            tick(lambda: f"gc: {report.unreferenced_chunks:,} unreferenced chunks deleted "
                         f"({i + len(part):,}/{len(candidates):,} old enough checked), "
                         f"{report.bytes_freed:,} bytes freed")
    fs.meta.env.reader_check()
    tick.done(f"gc: done: {report.trash_chunks + report.unreferenced_chunks:,} chunks deleted, "
              f"{report.bytes_freed:,} bytes freed, {report.errors:,} errors")
    return report
