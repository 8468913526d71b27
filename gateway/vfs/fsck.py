"""`samebytes fsck`: check that metadata and chunks agree, and report what does not.

Never repairs: a finding says what is wrong and where, so an operator (or a later
tool) decides. Checked:

- every dirent names a live inode, and its readdir sequence entry agrees;
- every non-directory inode's nlink equals the dirents that name it; one with nlink 0
  (unlinked while open) has an orphan record, else nothing would ever free it;
- every directory's nlink is 2 plus its subdirectories;
- inline extents match their xxh3; every chunk extent's chunk has a record, and no
  extent reads past the end of its chunk;
- each chunk record's reference count equals the extents (of files and of multipart
  parts) that point at it;
- every referenced chunk exists in the chunk store, and with ``verify`` reads back
  whole with every checksum block matching its xxh3.

The metadata is read in one read transaction (a consistent snapshot); chunk checks run
afterwards with bounded concurrency, so a long fsck never holds the metadata open
across its I/O.
"""

from __future__ import annotations

import asyncio
import stat
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chunkstore import ChunkCorrupt, ChunkError, ChunkInfo, ChunkMissing
from metadata.schema import (InlineCorrupt, decode_chunk, decode_dirent, decode_extent, decode_inode,
                             decode_json, read_u64)

from .fs import Filesystem
from .progress import Progress, Ticker

CONCURRENCY = 16


@dataclass(frozen=True)
class Finding:
    kind: str    # what is wrong, e.g. "chunk-missing", "refcount-mismatch"
    detail: str  # where and by how much, in words
    ino: int | None = None
    chunk: int | None = None


@dataclass
class FsckReport:
    inodes: int = 0
    dirents: int = 0
    extents: int = 0
    chunks_referenced: int = 0
    chunks_verified: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clean"] = self.clean
        return d


def _scan_metadata(fs: Filesystem, report: FsckReport, tick: Ticker) -> dict[int, tuple[int, bytes]]:
    """Check everything that is metadata alone; return the referenced chunks' (size, sums)."""
    add = report.findings.append
    nlink: dict[int, int] = {}
    dir_nlink: dict[int, int] = {}
    links: Counter[int] = Counter()
    subdirs: Counter[int] = Counter()
    refs: Counter[int] = Counter()
    # per chunk: the furthest byte an extent reads, and one inode that reads it there
    reach: dict[int, tuple[int, int]] = {}
    with fs.meta.read() as txn:
        for key, value in txn.range("inode", b""):
            ino = read_u64(key)
            node = decode_inode(ino, value)
            report.inodes += 1
            if stat.S_ISDIR(node.mode):
                dir_nlink[ino] = node.nlink
            else:
                nlink[ino] = node.nlink
            tick(lambda: f"fsck: {report.inodes:,} inodes")
        orphans = {read_u64(k) for k, _ in txn.range("orphan", b"")}
        for key, value in txn.range("dirent", b""):
            parent, sname = read_u64(key), bytes(key[8:])
            child, seq = decode_dirent(value)
            report.dirents += 1
            if txn.get("inode", key[:8]) is None:
                add(Finding("dirent-in-missing-directory", f"entry {sname!r} under missing inode {parent}",
                            ino=parent))
            if txn.get("inode", struct.pack(">Q", child)) is None:
                add(Finding("dangling-dirent", f"entry {sname!r} in directory {parent} names missing inode "
                                               f"{child}", ino=child))
            else:
                links[child] += 1
                if child in dir_nlink:
                    subdirs[parent] += 1
            if txn.get("dirseq", struct.pack(">QQ", parent, seq)) != sname:
                add(Finding("dirseq-mismatch", f"entry {sname!r} in directory {parent}: readdir sequence "
                                               f"{seq} does not name it", ino=parent))
            tick(lambda: f"fsck: {report.dirents:,} entries")
        for key, value in txn.range("extent", b""):
            ino, offset = read_u64(key), read_u64(key, 8)
            report.extents += 1
            try:
                e = decode_extent(offset, value)
            except InlineCorrupt as err:
                add(Finding("inline-corrupt", f"inode {ino}: {err}", ino=ino))
                continue
            if txn.get("inode", key[:8]) is None:
                add(Finding("extent-without-inode", f"extent at offset {offset} of missing inode {ino}",
                            ino=ino))
            if e.chunk_id:
                refs[e.chunk_id] += 1
                end = e.chunk_off + e.length
                if end > reach.get(e.chunk_id, (0, 0))[0]:
                    reach[e.chunk_id] = (end, ino)
            tick(lambda: f"fsck: {report.extents:,} extents")
        for key, value in txn.range("part", b""):
            rec = decode_json(value)
            for off, raw in zip(rec.get("offsets", []), rec.get("extents", [])):
                e = decode_extent(off, bytes.fromhex(raw))
                if e.chunk_id:
                    refs[e.chunk_id] += 1
        records: dict[int, tuple[int, int, bytes]] = {}
        for key, value in txn.range("chunk", b""):
            records[read_u64(key)] = decode_chunk(value)
    for ino, n in nlink.items():
        counted = links.get(ino, 0)
        if n == 0 and counted == 0:
            # Unlinked while open: only the orphan record lets gc free it after the close.
            if ino not in orphans:
                add(Finding("orphan-untracked", f"inode {ino} has nlink 0 but no orphan record "
                                                "(nothing will ever free it)", ino=ino))
        elif counted != n:
            add(Finding("nlink-mismatch", f"inode {ino} has nlink {n} but {counted} entries name it",
                        ino=ino))
    for ino, n in dir_nlink.items():
        want = 2 + subdirs.get(ino, 0)  # "." and the parent's entry, and each child's ".."
        if n != want and not (n == 0 and ino in orphans):
            add(Finding("nlink-mismatch", f"directory {ino} has nlink {n}, expected {want} "
                                          f"(2 + {subdirs.get(ino, 0)} subdirectories)", ino=ino))
    referenced: dict[int, tuple[int, bytes]] = {}
    for cid, count in refs.items():
        rec = records.get(cid)
        if rec is None:
            add(Finding("chunk-record-missing", f"chunk {cid} is referenced {count} times but has no record",
                        chunk=cid))
            continue
        if rec[0] != count:
            add(Finding("refcount-mismatch", f"chunk {cid} records {rec[0]} references, extents hold "
                                             f"{count}", chunk=cid))
        referenced[cid] = (rec[1], rec[2])
        end, ino = reach.get(cid, (0, 0))
        if end > rec[1]:
            add(Finding("extent-past-chunk-end", f"inode {ino} reads chunk {cid} up to byte {end}, "
                                                 f"but the chunk holds {rec[1]}", ino=ino, chunk=cid))
    for cid, (recorded, _, _) in records.items():
        if recorded and cid not in refs:
            add(Finding("refcount-mismatch", f"chunk {cid} records {recorded} references, extents hold 0",
                        chunk=cid))
    report.chunks_referenced = len(referenced)
    return referenced


async def fsck(fs: Filesystem, *, verify: bool = False, progress: Progress | None = None) -> FsckReport:
    report = FsckReport()
    tick = Ticker(progress)
    referenced = await asyncio.to_thread(_scan_metadata, fs, report, tick)
    sem = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def check(cid: int, size: int, sums: bytes) -> None:
        nonlocal done
        async with sem:
            try:
                if verify:
                    await fs.chunks.get(ChunkInfo(cid, size, sums))
                    report.chunks_verified += 1
                elif not await fs.chunks.exists(cid):
                    raise ChunkMissing(cid, "not in the chunk store")
            except ChunkCorrupt as e:
                report.findings.append(Finding("chunk-corrupt", str(e), chunk=cid))
            except ChunkMissing as e:
                report.findings.append(Finding("chunk-missing", str(e), chunk=cid))
            except ChunkError as e:
                report.findings.append(Finding("chunk-unreadable", str(e), chunk=cid))
            done += 1
            tick(lambda: f"fsck: {done:,}/{len(referenced):,} chunks checked")

    await asyncio.gather(*(check(cid, size, sums) for cid, (size, sums) in referenced.items()))
    report.findings.sort(key=lambda f: (f.kind, f.ino or 0, f.chunk or 0))
    return report
