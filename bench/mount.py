"""The FUSE door (`samebytes mount`) beside the local disk and a pyfuse3 pass-through.

Three targets, the same jobs, interleaved round by round (disk, passthrough, samebytes,
disk, ...), medians and ratios:

* disk: a directory on the benchmark's data disk, used directly (the limit).
* passthrough: bench/passthrough_fs.py, a minimal pyfuse3 file system mirroring a local
  directory, with the samebytes mount's options (1 MiB requests): the Python FUSE ceiling.
* samebytes: ``python -m gateway.cli mount MNT --data DIR`` (its own process), in a bucket.

Jobs, each as a program would do it (one thread, plain syscalls):

1. seq_write: a file of SIZE written in 1 MiB pieces, then fsync and close (MB/s).
2. seq_read_first: the page cache dropped (``/proc/sys/vm/drop_caches``, root; else
   posix_fadvise DONTNEED on the file), then read in 1 MiB pieces (MB/s).
3. seq_read_cached: read again at once: the page cache should serve it (MB/s). Beside
   it, ``page_cache_folios``: how much of the cached file sits in large folios (from
   /proc/self/pagemap and /proc/kpageflags, root only). A cached read costs per folio
   (lookup, reference, LRU activation on this second touch), so a file cached in 4 KiB
   pages reads from the page cache at about half the speed of one in large folios.
4. rand_read_4k: page cache dropped, POSIX_FADV_RANDOM, 4 KiB preads at random
   4 KiB-aligned offsets for a fixed time (reads/s).
5. small_files: create (4 KiB written) + stat + unlink of N files in one directory,
   each phase over all files (files/s for the whole cycle).

Beside each figure, ``server_cpu_seconds``: the CPU time (user + system) the FUSE server
process spent during the job, median over rounds. It is far less noisy than throughput
on a shared machine, and it shows what the kernel serves alone: a cached re-read that
costs the server nothing is served from the page cache.

Beside each figure also ``disk_reads``: read requests the data disk completed during the
job and the KiB they moved, per operation (rand_read_4k: per 4 KiB pread), median over
rounds, from /proc/diskstats of the device holding the data directory. It shows read
amplification (a 4 KiB read that makes the server read 64 KiB) apart from latency.

    python -m bench.mount [--quick] [--data DIR] [--rounds N] [--keep] [--jobs rand_read_4k,...]

--jobs narrows the run to some jobs (seq_write always runs when a read job needs its file).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import Figure, emit, log, machine_info, make_data_dir, parser, remove_data_dir

KiB = 1024
MiB = 1024 * KiB
PIECE = MiB
REPO = Path(__file__).resolve().parents[1]
TARGETS = ("disk", "passthrough", "samebytes")


@dataclass(frozen=True)
class Sizes:
    file: int           # sequential file size
    rand_s: float       # random-read phase length
    small_files: int    # files per small-file cycle

    @staticmethod
    def pick(quick: bool) -> Sizes:
        if quick:
            return Sizes(file=64 * MiB, rand_s=0.5, small_files=300)
        return Sizes(file=1024 * MiB, rand_s=3.0, small_files=10_000)


# -- the mounts --------------------------------------------------------------------------------


@dataclass
class Mount:
    name: str
    mountpoint: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def stop(self) -> None:
        if self.proc is None:
            return
        subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], capture_output=True)


def _wait_mounted(m: Mount, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(m.mountpoint):
        assert m.proc is not None
        if m.proc.poll() is not None or time.monotonic() > deadline:
            text = m.log_path.read_text(errors="replace")[-3000:] if m.log_path else ""
            raise RuntimeError(f"{m.name} did not mount: {text}")
        time.sleep(0.05)


def _start(name: str, cmd: list[str], mountpoint: Path, log_path: Path) -> Mount:
    mountpoint.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=REPO)
    m = Mount(name, mountpoint, proc, log_path)
    _wait_mounted(m)
    return m


def start_mounts(run: Path) -> dict[str, tuple[Mount, Path]]:
    """Each target and the directory its jobs work in."""
    disk = run / "disk"
    disk.mkdir()
    source = run / "passthrough-source"
    source.mkdir()
    pt = _start("passthrough", [sys.executable, "-m", "bench.passthrough_fs", str(source),
                                str(run / "passthrough-mnt")],
                run / "passthrough-mnt", run / "passthrough.log")
    sb = _start("samebytes", [sys.executable, "-m", "gateway.cli", "mount", str(run / "samebytes-mnt"),
                              "--data", str(run / "samebytes-data")],
                run / "samebytes-mnt", run / "samebytes.log")
    bucket = sb.mountpoint / "bench"
    bucket.mkdir()
    return {"disk": (Mount("disk", disk), disk), "passthrough": (pt, pt.mountpoint),
            "samebytes": (sb, bucket)}


# -- the jobs ----------------------------------------------------------------------------------


def drop_caches(path: Path) -> str:
    """Drop the page cache (all of it when allowed, else this file's): 'global' or 'file'."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return "global"
    except OSError:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return "file"


def seq_write(path: Path, size: int) -> float:
    buf = os.urandom(PIECE)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        while done < size:
            done += os.write(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)
    return size / MiB / (time.perf_counter() - t0)


def seq_read(path: Path) -> float:
    buf = bytearray(PIECE)
    t0 = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total / MiB / (time.perf_counter() - t0)


def page_cache_folios(path: Path, span: int = 128 * MiB) -> dict[str, float] | None:
    """Of the first `span` bytes of a cached file: the share of its 4 KiB pages that belong
    to large folios and the mean folio size in KiB; None where the page flags cannot be
    read (not root). Touches each page through a read-only mapping, so call it only on a
    file the page cache holds (a miss would be read in and counted)."""
    size = min(os.path.getsize(path), span)
    if size < 4 * KiB:
        return None
    try:
        pagemap = open("/proc/self/pagemap", "rb")
        kpageflags = open("/proc/kpageflags", "rb")
    except OSError:
        return None
    # A private mapping that is only read maps the page cache's own pages (and, unlike
    # a read-only one, lets ctypes tell its address).
    with pagemap, kpageflags, open(path, "rb") as f, \
            mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        view = memoryview(m)
        anchor = ctypes.c_char.from_buffer(m)
        base = ctypes.addressof(anchor)
        del anchor
        pages = heads = tails = 0
        for off in range(0, size - size % (4 * KiB), 4 * KiB):
            view[off]  # fault the cached page into the mapping
            pagemap.seek((base + off) // (4 * KiB) * 8)
            entry = int.from_bytes(pagemap.read(8), "little")
            if not entry >> 63:
                continue
            kpageflags.seek((entry & ((1 << 55) - 1)) * 8)
            flags = int.from_bytes(kpageflags.read(8), "little")
            pages += 1
            heads += flags >> 15 & 1   # KPF_COMPOUND_HEAD
            tails += flags >> 16 & 1   # KPF_COMPOUND_TAIL
        del view
    if not pages:
        return None
    folios = pages - tails
    return {"pages": pages, "in_large_folios": round((heads + tails) / pages, 3),
            "mean_folio_kib": round(pages * 4 / folios, 1)}


def rand_read(path: Path, seconds: float, seed: int) -> float:
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        blocks = os.fstat(fd).st_size // (4 * KiB)
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            for _ in range(64):
                if len(os.pread(fd, 4 * KiB, rng.randrange(blocks) * 4 * KiB)) != 4 * KiB:
                    raise RuntimeError(f"short read from {path}")
            n += 64
            now = time.perf_counter()
            if now >= deadline:
                return n / (now - t0)
    finally:
        os.close(fd)


def small_files(directory: Path, count: int) -> float:
    body = os.urandom(4 * KiB)
    d = directory / "small"
    d.mkdir()
    names = [str(d / f"f{i:06d}") for i in range(count)]
    t0 = time.perf_counter()
    for name in names:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, body)
        os.close(fd)
    for name in names:
        os.stat(name)
    for name in names:
        os.unlink(name)
    elapsed = time.perf_counter() - t0
    d.rmdir()
    return count / elapsed


# -- the run -----------------------------------------------------------------------------------


FIGURES: dict[str, tuple[str, str]] = {
    "seq_write": ("MB/s", "1 MiB writes then fsync"),
    "seq_read_first": ("MB/s", "1 MiB reads after dropping the page cache"),
    "seq_read_cached": ("MB/s", "1 MiB reads of the same file again (page cache)"),
    "rand_read_4k": ("reads/s", "4 KiB preads at random offsets, cache dropped, FADV_RANDOM"),
    "small_files": ("files/s", "create (4 KiB) + stat + unlink, each phase over all files"),
}


def _disk_of(path: Path) -> str | None:
    """The /proc/diskstats name of the block device holding path (None if not one)."""
    dev = os.stat(path).st_dev
    try:
        with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def disk_reads(name: str | None) -> tuple[int, int]:
    """(reads completed, sectors read) of a block device so far, (0, 0) if unknown."""
    if name is None:
        return 0, 0
    with open("/proc/diskstats") as f:
        for line in f:
            parts = line.split()
            if parts[2] == name:
                return int(parts[3]), int(parts[5])
    return 0, 0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CpuValues = dict[str, dict[str, list[float]]]


def run_rounds(targets: dict[str, tuple[Mount, Path]], sz: Sizes, rounds: int,
               jobs: frozenset[str] = frozenset(FIGURES),
               ) -> tuple[dict[str, dict[str, list[float]]], CpuValues, CpuValues, str,
                          dict[str, Any]]:
    """Values, server CPU seconds and disk reads ([reads, KiB] per operation) by figure,
    and the page-cache folio census of the cached file by target (last round)."""
    values: dict[str, dict[str, list[float]]] = {f: {t: [] for t in TARGETS} for f in FIGURES}
    cpu: CpuValues = {f: {t: [] for t in TARGETS if t != "disk"} for f in FIGURES}
    io: CpuValues = {f: {t: [] for t in TARGETS} for f in FIGURES}
    folios: dict[str, Any] = {}
    dev = _disk_of(next(iter(targets.values()))[1])
    dropped = ""
    for r in range(rounds):
        for t in TARGETS:
            m, where = targets[t]
            path = where / "big.bin"
            v = values

            def job(name: str, fn: Any, *args: Any, ops: Any = None) -> None:
                if name not in jobs:
                    return
                pid = m.proc.pid if m.proc is not None else None
                c0 = process_cpu_seconds(pid) if pid else 0.0
                r0, s0 = disk_reads(dev)
                t0 = time.perf_counter()
                v[name][t].append(fn(*args))
                elapsed = time.perf_counter() - t0
                r1, s1 = disk_reads(dev)
                if pid:
                    cpu[name][t].append(process_cpu_seconds(pid) - c0)
                n = ops(v[name][t][-1], elapsed) if ops else 1
                io[name][t].append([(r1 - r0) / n, (s1 - s0) / 2 / n])

            needs_file = jobs & {"seq_write", "seq_read_first", "seq_read_cached", "rand_read_4k"}
            if needs_file:
                if "seq_write" in jobs:
                    job("seq_write", seq_write, path, sz.file)
                else:
                    seq_write(path, sz.file)
                dropped = drop_caches(path)
                job("seq_read_first", seq_read, path)
                job("seq_read_cached", seq_read, path)
                if "seq_read_cached" in jobs:
                    folios[t] = page_cache_folios(path)
                drop_caches(path)
                job("rand_read_4k", rand_read, path, sz.rand_s, r,
                    ops=lambda rate, elapsed: max(1.0, rate * elapsed))
                path.unlink()
            job("small_files", small_files, where, sz.small_files)
            log(f"round {r + 1}/{rounds} {t}: " + ", ".join(
                f"{f} {v[f][t][-1]:,.0f}" for f in FIGURES if v[f][t]))
    return values, cpu, io, dropped, folios


TARGETS_GOALS: dict[str, tuple[str, float]] = {
    # figure -> (reference, minimum ratio samebytes/reference), from the FUSE issue
    "seq_read_first": ("passthrough", 0.8),
    "seq_read_cached": ("disk", 0.6),
    "rand_read_4k": ("passthrough", 0.8),
}


def report(values: dict[str, dict[str, list[float]]], cpu: CpuValues,
           io: CpuValues | None = None, folios: dict[str, Any] | None = None,
           ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (unit, what) in FIGURES.items():
        if not values[name]["samebytes"]:
            continue
        fig = Figure(name, unit, f"samebytes mount: {what}", f"local disk directly: {what}")
        fig.samebytes, fig.limit = values[name]["samebytes"], values[name]["disk"]
        fig.other("passthrough", f"minimal pyfuse3 pass-through of a local directory: {what}") \
            .extend(values[name]["passthrough"])
        d = fig.as_dict()
        if name in TARGETS_GOALS:
            ref, goal = TARGETS_GOALS[name]
            ratio = d["ratio"] if ref == "disk" else d["other_references"]["passthrough"]["samebytes_ratio"]
            d["target"] = {"versus": ref, "at_least": goal, "ratio": ratio,
                           "met": ratio is not None and ratio >= goal}
        d["server_cpu_seconds"] = {t: round(statistics.median(c), 3) if c else None
                                   for t, c in cpu[name].items()}
        if io is not None:
            per = "per read" if name == "rand_read_4k" else "per job"
            d[f"disk_reads_{per.replace(' ', '_')}"] = {
                t: {"reads": round(statistics.median(x[0] for x in c), 3),
                    "kib": round(statistics.median(x[1] for x in c), 1)} if c else None
                for t, c in io[name].items()}
        if name == "seq_read_cached" and folios:
            d["page_cache_folios"] = folios
        out[name] = d
    return out


def main(argv: list[str] | None = None) -> None:
    p = parser("samebytes FUSE mount benchmark (beside the disk and a pyfuse3 pass-through)")
    p.add_argument("--jobs", default=",".join(FIGURES),
                   help=f"comma-separated jobs to run (default all: {','.join(FIGURES)})")
    opts = p.parse_args(argv)
    jobs = frozenset(j.strip() for j in opts.jobs.split(",") if j.strip())
    if not jobs or jobs - set(FIGURES):
        raise SystemExit(f"--jobs: choose from {', '.join(FIGURES)}")
    rounds = max(3, opts.rounds or (3 if opts.quick else 5))
    sz = Sizes.pick(opts.quick)
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        raise SystemExit("bench.mount needs /dev/fuse and fusermount3 (apt-get install fuse3)")
    run = make_data_dir(opts.data, "mount")
    log(f"data dir {run} ({'quick' if opts.quick else 'full'}, {rounds} rounds)")
    t0 = time.perf_counter()
    mounts: dict[str, tuple[Mount, Path]] = {}
    try:
        mounts = start_mounts(run)
        values, cpu, io, dropped, folios = run_rounds(mounts, sz, rounds, jobs)
    finally:
        for m, _ in mounts.values():
            m.stop()
        remove_data_dir(run, opts.keep)
    emit({
        "benchmark": "mount",
        "machine": machine_info(run.parent),
        "sizes": {"file_bytes": sz.file, "rand_seconds": sz.rand_s, "small_files": sz.small_files},
        "cache_drop": dropped,
        "figures": report(values, cpu, io, folios),
        "total_seconds": round(time.perf_counter() - t0, 1),
    })


if __name__ == "__main__":
    main()
