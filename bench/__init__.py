"""Benchmarks for samebytes, each figure beside a raw limit measured in the same run.

This machine's disk speed swings 2-30x within minutes (FACTS.md, "Benchmarking on this
box"), so an absolute number from one run means little. Every benchmark here measures
the samebytes figure and its raw limit interleaved (A B A B ..., several rounds) and
reports both medians and their ratio. Each benchmark prints ONE JSON document to stdout;
progress goes to stderr.

    python -m bench             # every benchmark (one JSON document, keyed by benchmark)
    python -m bench.vfs         # the vfs layer: small/large objects, metadata, listing
    python -m bench.vfs --quick # small sizes, ~20 s (the smoke test runs this)
    python -m bench.s3          # the S3 door over HTTP beside moto, nginx and Swift (~3 min)
    python -m bench.mount       # the FUSE mount beside the local disk and a pyfuse3 pass-through
    python -m bench.nfs         # the NFS door beside nfs-ganesha, libnfs clients (~5 min)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata as _md
from pathlib import Path
from typing import Any

BENCHMARKS = ("vfs", "s3", "mount", "nfs", "chunks_s3", "changes")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- options and the data directory ----------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and short phases (~20 s), for the smoke test")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="parent directory for the benchmark's fresh data directory "
                        "(default: /var/tmp, else the current directory; never tmpfs)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per figure (default 5, --quick 3; minimum 3)")
    p.add_argument("--keep", action="store_true", help="keep the data directory afterwards")
    return p


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, fs type) of the file system holding path, from /proc/mounts."""
    path = path.resolve()
    best = ("/", "unknown")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (path == Path(mnt) or Path(mnt) in path.parents) and len(mnt) >= len(best[0]):
                    best = (mnt, parts[2])
    except OSError:
        pass
    return best


_MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs"}


def make_data_dir(parent: str | None, name: str) -> Path:
    """A fresh directory on a real disk for one benchmark run."""
    if parent is not None:
        base = Path(parent)
        base.mkdir(parents=True, exist_ok=True)
        if _mount_of(base)[1] in _MEMORY_FS:
            log(f"WARNING: --data {base} is on {_mount_of(base)[1]}: this measures memory, not disk")
    else:
        candidates = [Path("/var/tmp"), Path.cwd()]
        usable = [c for c in candidates if c.is_dir() and os.access(c, os.W_OK)
                  and _mount_of(c)[1] not in _MEMORY_FS]
        if not usable:
            raise SystemExit("no writable non-tmpfs directory for benchmark data: pass --data DIR")
        base = usable[0]
    return Path(tempfile.mkdtemp(prefix=f"samebytes-bench-{name}-", dir=base))


def remove_data_dir(path: Path, keep: bool) -> None:
    if keep:
        log(f"kept data in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


# -- environment description -------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def machine_info(data_dir: Path | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "platform": platform.platform(),
        "lmdb_py": _version("lmdb"),
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "xxhash": _version("xxhash"),
    }
    try:
        import lmdb
        info["lmdb_lib"] = ".".join(str(x) for x in lmdb.version())
    except Exception:  # pragma: no cover
        info["lmdb_lib"] = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_mib"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    if data_dir is not None:
        mnt, fstype = _mount_of(data_dir)
        info["data_dir"] = str(data_dir)
        info["data_fs"] = {"mount": mnt, "type": fstype}
    return info


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One samebytes figure and its raw limit, measured interleaved round by round."""

    name: str
    unit: str
    samebytes_is: str
    limit_is: str
    samebytes: list[float] = field(default_factory=list)
    limit: list[float] = field(default_factory=list)
    # Further reference points measured in the same rounds (name -> (what, values)).
    others: dict[str, tuple[str, list[float]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def other(self, name: str, what: str) -> list[float]:
        return self.others.setdefault(name, (what, []))[1]

    def as_dict(self) -> dict[str, Any]:
        # An empty limit (a skipped peer, its reason in extra) gives limit/ratio None.
        sb = statistics.median(self.samebytes)
        lim = statistics.median(self.limit) if self.limit else 0.0
        per_round = [a / b for a, b in zip(self.samebytes, self.limit) if b > 0]
        out: dict[str, Any] = {
            "samebytes": _r(sb),
            "limit": _r(lim) if self.limit else None,
            "ratio": _r(sb / lim, 4) if lim > 0 else None,
            "unit": self.unit,
            "samebytes_is": self.samebytes_is,
            "limit_is": self.limit_is,
            "rounds": len(self.samebytes),
            "ratio_median_of_rounds": _r(statistics.median(per_round), 4) if per_round else None,
            "per_round": {"samebytes": [_r(x) for x in self.samebytes],
                          "limit": [_r(x) for x in self.limit]},
        }
        if self.others:
            out["other_references"] = {
                name: {"value": _r(statistics.median(vals)), "what": what,
                       "samebytes_ratio": _r(sb / statistics.median(vals), 4)
                       if statistics.median(vals) > 0 else None,
                       "per_round": [_r(x) for x in vals]}
                for name, (what, vals) in self.others.items() if vals
            }
        out.update(self.extra)
        return out


def _r(x: float, digits: int | None = None) -> float:
    """Five significant digits, or a fixed number of decimals for ratios."""
    if digits is not None:
        return round(x, digits)
    return float(f"{x:.5g}")


async def interleave(rounds: int, steps: Sequence[tuple[str, Callable[[int], Awaitable[float]]]],
                     label: str) -> dict[str, list[float]]:
    """Run the steps in order (A B C A B C ...) for each round; values per step name."""
    out: dict[str, list[float]] = {name: [] for name, _ in steps}
    for r in range(rounds):
        for name, fn in steps:
            v = await fn(r)
            out[name].append(v)
            log(f"{label} round {r + 1}/{rounds} {name}: {v:,.1f}")
    return out


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_times(pid: int, tid: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads), or of one of its threads,
    from /proc/PID[/task/TID]/stat (fields 14 and 15, clock ticks)."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    with open(path) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def proc_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process or of one of its threads."""
    return sum(proc_cpu_times(pid, tid))


def system_cpu_times() -> tuple[float, float, float]:
    """(user, system, iowait) CPU seconds of the whole machine, summed over its cores, from
    the first line of /proc/stat (user = user + nice, guests included; system = system +
    irq + softirq + steal: kernel threads such as the journal and writeback count here)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, iowait, irq, softirq, steal = v
    return ((user + nice) / _CLK_TCK, (system + irq + softirq + steal) / _CLK_TCK,
            iowait / _CLK_TCK)


def emit(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()
