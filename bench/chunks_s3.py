"""The s3 chunk backend beside its backend, in one run (interleaved rounds).

Figures (samebytes and limit interleaved, A B A B, medians and their ratio), for each
backend (moto's server; a second samebytes gateway on local chunks):

1. put_<backend> / get_<backend>: one large object PUT and GET through a gateway keeping
   its chunks in that backend (read cache off, so every GET goes to the backend); limit:
   the same PUT/GET made directly against the backend. Also reported: the CPU
   milliseconds per MB of the gateway, the backend, the client and everything else on
   the box (cpu_ms_per_MB; "others"), the machine's busy cores during each step
   (busy_cores: near the core count, the box was saturated and the ratio is the ratio
   of CPU costs), and relay_limit: the same transfer through nginx as a plain streaming reverse proxy to the
   same backend (bench/s3.py's start_nginx, proxy mode), in the same rounds, with its
   MB/s, its ratio to direct and its CPU per MB: what a C relay that verifies nothing
   reaches on this box, i.e. the honest ceiling for the through-gateway ratio.
2. cached_reread: GET of the same large object from a gateway on the s3 backend (moto)
   whose read cache already holds it; limit: the same GET from a gateway on the local
   backend. Also reported: the first read (cache wiped and the gateway restarted).
3. mount_reread / mount_first_read: a 1 GiB file (64 MiB with --quick) read through
   `serve --mount` on the s3 backend (moto) with 1 MiB reads, beside the same file on a
   local-backend mount. Each round restarts both gateways, wipes the s3 read cache and
   drops the page cache, then reads the file twice: the first read (every chunk from the
   backend, read-ahead) and the re-read (chunk cache / page cache).

All transfers use one aiobotocore client per endpoint; bodies are random bytes.

    python -m bench.chunks_s3 [--quick] [--data DIR] [--rounds N] [--keep]
                              [--only put|get|cached|mount ...]

--only (repeatable) narrows the run to those figures, e.g. `--only get` measures just
get_moto and get_gateway (the objects are put once, unmeasured, before the rounds).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import (Figure, emit, interleave, log, machine_info, make_data_dir, parser, proc_cpu_times,
               remove_data_dir, system_cpu_times)
from . import s3 as s3bench

MiB = 1 << 20
MOTO_KEY, MOTO_SECRET = "bench-access", "bench-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    endpoint: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen[Any]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_http(url: str, proc: subprocess.Popen[Any], what: str, ok: tuple[int, ...]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} never became ready")


def start_moto(logs: Path) -> Server:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=open(logs / "moto.log", "w"),
                            stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_http(endpoint + "/moto-api/", proc, "moto server", (200, 404))
    return Server(endpoint, MOTO_KEY, MOTO_SECRET, proc)


def start_gateway(data: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--data", str(data), "--s3",
         f"127.0.0.1:{port}", "--nfs", "off", "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=open(f"{data}-{port}.log", "w"), text=True,
        env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"gateway exited: {Path(f'{data}-{port}.log').read_text()[-2000:]}")
    ann = json.loads(line)
    endpoint = f"http://127.0.0.1:{port}"
    _wait_http(endpoint + "/_samebytes/health/ready", proc, "gateway", (200,))
    return Server(endpoint, ann["access_key"], ann["secret_key"], proc)


async def _client(stack: AsyncExitStack, srv: Server) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    return await stack.enter_async_context(get_session().create_client(
        "s3", endpoint_url=srv.endpoint, region_name="us-east-1",
        aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}, read_timeout=300,
                         signature_version="s3v4",
                         retries={"total_max_attempts": 1},
                         request_checksum_calculation="when_required",
                         response_checksum_validation="when_required")))


async def _put(c: Any, bucket: str, key: str, body: bytes) -> float:
    t = time.perf_counter()
    await c.put_object(Bucket=bucket, Key=key, Body=body)
    return len(body) / (time.perf_counter() - t) / 1e6


async def _get(c: Any, bucket: str, key: str, size: int) -> float:
    t = time.perf_counter()
    resp = await c.get_object(Bucket=bucket, Key=key)
    n = 0
    async with resp["Body"] as stream:
        async for piece in stream.iter_chunks(1 << 20):
            n += len(piece[0]) if isinstance(piece, tuple) else len(piece)
    dt = time.perf_counter() - t
    assert n == size, (n, size)
    return size / dt / 1e6


class CpuMeter:
    """CPU milliseconds per MB moved, per process (the client is this process), summed
    over every call of each measured step: on a small box the gateway, the backend and
    the client share the cores, so where the CPU goes says more than MB/s alone.

    Also the machine's: "others" is the CPU of everything else on the box per MB (other
    processes such as a test run sharing it, kernel threads such as writeback and the
    journal, interrupts), and busy_cores the whole machine's busy CPU seconds
    per second of the step. A through-gateway PUT costs more CPU than the direct one
    (the gateway hashes every byte again: the ETag's MD5, the client's payload
    SHA-256), so once the box is saturated its ratio falls to the ratio of CPU costs:
    busy_cores near the core count says a low ratio came from the box, not a stall."""

    MACHINE = "_machine"  # the whole box's busy CPU, beside the processes

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {"client": os.getpid(), **pids}
        self.cpu: dict[str, dict[str, float]] = {}
        self.mb: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: sum(proc_cpu_times(pid)) for name, pid in self.pids.items()}
        now[self.MACHINE] = sum(system_cpu_times()[:2])
        return now

    def wrap(self, step: str, fn: Any, size: int) -> Any:
        async def measured(r: int) -> float:
            before = self._now()
            t = time.perf_counter()
            v = await fn(r)
            self.wall[step] = self.wall.get(step, 0.0) + time.perf_counter() - t
            after = self._now()
            acc = self.cpu.setdefault(step, {})
            for name in after:
                acc[name] = acc.get(name, 0.0) + after[name] - before[name]
            self.mb[step] = self.mb.get(step, 0.0) + size / 1e6
            return float(v)
        return measured

    def per_mb(self, step: str) -> dict[str, float]:
        cpu = dict(self.cpu.get(step, {}))
        machine = cpu.pop(self.MACHINE, None)
        out = {name: round(1000 * sec / self.mb[step], 3) for name, sec in cpu.items()}
        if machine is not None:
            # Tick-granular /proc/stat against per-process ticks: never below zero.
            out["others"] = round(1000 * max(0.0, machine - sum(cpu.values())) / self.mb[step], 3)
        return out

    def busy_cores(self, step: str) -> float | None:
        machine = self.cpu.get(step, {}).get(self.MACHINE)
        wall = self.wall.get(step)
        return round(machine / wall, 2) if machine is not None and wall else None


ONLY = ("put", "get", "cached", "mount")


async def bench_backend(kind: str, backend: Server, work: Path, size: int, rounds: int,
                        stack: AsyncExitStack, only: set[str]) -> list[Figure]:
    direct = await _client(stack, backend)
    ngx: s3bench.Server | None = None
    ngx_skip = ""
    try:
        ngx = s3bench.start_nginx(work / f"relay-{kind}",
                                  proxy_to=backend.endpoint.removeprefix("http://"))
    except (LookupError, RuntimeError) as e:
        ngx_skip = str(e)
        log(f"nginx relay skipped: {e}")
    await direct.create_bucket(Bucket="direct")
    await direct.create_bucket(Bucket="chunks")
    gw = start_gateway(work / f"gw-{kind}", "--chunks", "s3://chunks/c",
                       "--chunks-endpoint", backend.endpoint, "--cache-size", "0",
                       env={"SAMEBYTES_CHUNKS_ACCESS_KEY": backend.access_key,
                            "SAMEBYTES_CHUNKS_SECRET_KEY": backend.secret_key})
    try:
        through = await _client(stack, gw)
        await through.create_bucket(Bucket="bench")
        body = os.urandom(size)

        async def sb_put(r: int) -> float:
            return await _put(through, "bench", "obj", body)

        async def lim_put(r: int) -> float:
            return await _put(direct, "direct", "obj", body)

        async def sb_get(r: int) -> float:
            return await _get(through, "bench", "obj", size)

        async def lim_get(r: int) -> float:
            return await _get(direct, "direct", "obj", size)

        pids = {"gateway": gw.proc.pid, "backend": backend.proc.pid}
        relay: Server | None = None
        if ngx is not None:
            pids["nginx"] = ngx.proc.pid
            relay = Server(ngx.endpoint, backend.access_key, backend.secret_key, ngx.proc)
            via_nginx = await _client(stack, relay)

            async def relay_put(r: int) -> float:
                return await _put(via_nginx, "direct", "relayed", body)

            async def relay_get(r: int) -> float:
                return await _get(via_nginx, "direct", "obj", size)

        meter = CpuMeter(pids)
        steps = []
        if "put" in only:
            steps += [("samebytes_put", sb_put), ("limit_put", lim_put)]
            if relay is not None:
                steps.append(("relay_put", relay_put))
        else:  # the GETs still need their objects
            await sb_put(0)
            await lim_put(0)
        if "get" in only:
            steps += [("samebytes_get", sb_get), ("limit_get", lim_get)]
            if relay is not None:
                steps.append(("relay_get", relay_get))
        res = await interleave(rounds, [(n, meter.wrap(n, f, size)) for n, f in steps],
                               f"{kind} {size // MiB} MiB")
    finally:
        gw.stop()
        if ngx is not None:
            ngx.stop()
    figures: list[Figure] = []
    put = Figure(f"put_{kind}", "MB/s (1e6 B/s)",
                 f"{size // MiB} MiB PutObject through a gateway on the s3 backend ({kind})",
                 f"the same PutObject directly against the backend ({kind})",
                 res.get("samebytes_put", []), res.get("limit_put", []))
    get = Figure(f"get_{kind}", "MB/s (1e6 B/s)",
                 f"{size // MiB} MiB GetObject through the gateway, read cache off",
                 f"the same GetObject directly against the backend ({kind})",
                 res.get("samebytes_get", []), res.get("limit_get", []))
    for fig, op in ((put, "put"), (get, "get")):
        sb, lim, rel = f"samebytes_{op}", f"limit_{op}", f"relay_{op}"
        if sb in res:
            fig.extra["cpu_ms_per_MB"] = {"samebytes": meter.per_mb(sb),
                                          "limit": meter.per_mb(lim)}
            fig.extra["busy_cores"] = {"samebytes": meter.busy_cores(sb),
                                       "limit": meter.busy_cores(lim),
                                       "cores": os.cpu_count()}
            fig.extra["relay_limit"] = (_relay_limit(res[rel], res[lim], res[sb],
                                                     meter.per_mb(rel), kind, op)
                                        if rel in res else {"skipped": ngx_skip})
            figures.append(fig)
    return figures


def _relay_limit(relayed: list[float], direct: list[float], through: list[float],
                 cpu: dict[str, float], kind: str, op: str) -> dict[str, Any]:
    """What a relay that verifies nothing reaches on this box: the same transfer through
    nginx as a plain streaming reverse proxy to the same backend, in the same rounds.
    ratio_to_direct is the physical ceiling of a through-gateway/direct ratio here;
    samebytes_ratio_to_relay is how far the gateway is from that ceiling."""
    med = statistics.median
    return {
        "what": f"the same {op.upper()} through nginx as a reverse proxy to the backend "
                f"({kind}): proxy_buffering off, proxy_request_buffering off, keepalive "
                "upstream, 1 worker",
        "MB_per_s": round(med(relayed), 2),
        "ratio_to_direct": round(med(relayed) / med(direct), 4),
        "ratio_to_direct_median_of_rounds": round(
            med([a / b for a, b in zip(relayed, direct)]), 4),
        "samebytes_ratio_to_relay": round(med(through) / med(relayed), 4),
        "cpu_ms_per_MB": cpu,
        "per_round": [round(x, 2) for x in relayed],
    }


async def bench_cache(backend: Server, work: Path, size: int, rounds: int,
                      stack: AsyncExitStack) -> Figure:
    direct = await _client(stack, backend)
    await direct.create_bucket(Bucket="cached")
    env = {"SAMEBYTES_CHUNKS_ACCESS_KEY": backend.access_key,
           "SAMEBYTES_CHUNKS_SECRET_KEY": backend.secret_key}
    data = work / "gw-cached"
    args = ("--chunks", "s3://cached/c", "--chunks-endpoint", backend.endpoint,
            "--cache-size", "4GiB")
    local = start_gateway(work / "gw-local", "--chunks", "local")
    body = os.urandom(size)
    first: list[float] = []
    try:
        lc = await _client(stack, local)
        await lc.create_bucket(Bucket="bench")
        await _put(lc, "bench", "obj", body)
        gw = start_gateway(data, *args, env=env)
        try:
            c = await _client(stack, gw)
            await c.create_bucket(Bucket="bench")
            await _put(c, "bench", "obj", body)
        finally:
            gw.stop()

        async def cold_then_warm(r: int) -> float:
            # A first read needs an empty cache: wipe it while the gateway is down.
            shutil.rmtree(data / "cache", ignore_errors=True)
            gw = start_gateway(data, *args, env=env)
            try:
                c = await _client(stack, gw)
                first.append(await _get(c, "bench", "obj", size))
                return await _get(c, "bench", "obj", size)
            finally:
                gw.stop()

        async def local_get(r: int) -> float:
            return await _get(lc, "bench", "obj", size)

        res = await interleave(rounds, [("cached", cold_then_warm), ("local", local_get)],
                               f"cache {size // MiB} MiB")
    finally:
        local.stop()
    fig = Figure("cached_reread", "MB/s (1e6 B/s)",
                 f"{size // MiB} MiB GetObject re-read from a gateway on the s3 backend "
                 "(moto) whose read cache holds it",
                 "the same GetObject from a gateway on the local backend",
                 res["cached"], res["local"])
    fig.other("first_read", "the first read of the object after the cache was wiped "
              "(every chunk from the backend)").extend(first)
    return fig


def _read_file(path: Path) -> float:
    """MB/s of one sequential read with 1 MiB requests."""
    buf = bytearray(MiB)
    n = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
    return n / (time.perf_counter() - t0) / 1e6


def _drop_page_cache() -> None:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
    except OSError:  # not root: the chunk cache wipe still makes the first read cold
        pass


def _mounted_gateway(data: Path, mnt: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    mnt.mkdir(parents=True, exist_ok=True)
    gw = start_gateway(data, "--mount", str(mnt), *args, env=env)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt):
        if time.monotonic() > deadline:
            gw.stop()
            raise SystemExit(f"the mount at {mnt} never appeared")
        time.sleep(0.05)
    return gw


def _unmount(gw: Server, mnt: Path) -> None:
    subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    gw.stop()
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)


async def bench_mount_read(backend: Server, work: Path, size: int, rounds: int,
                           stack: AsyncExitStack) -> list[Figure]:
    direct = await _client(stack, backend)
    await direct.create_bucket(Bucket="mounted")
    env = {"SAMEBYTES_CHUNKS_ACCESS_KEY": backend.access_key,
           "SAMEBYTES_CHUNKS_SECRET_KEY": backend.secret_key}
    s3_args = ("--chunks", "s3://mounted/c", "--chunks-endpoint", backend.endpoint,
               "--cache-size", "4GiB")
    targets = {"s3": (work / "mnt-s3-data", work / "mnt-s3", s3_args, env),
               "local": (work / "mnt-local-data", work / "mnt-local", ("--chunks", "local"), None)}
    src = work / "mount-src.bin"
    with open(src, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    for name, (data, mnt, args, e) in targets.items():
        gw = _mounted_gateway(data, mnt, *args, env=e)
        try:
            (mnt / "bench").mkdir(exist_ok=True)
            await asyncio.to_thread(shutil.copyfile, src, mnt / "bench" / "big.bin")
        finally:
            _unmount(gw, mnt)
    src.unlink()
    first: dict[str, list[float]] = {"s3": [], "local": []}

    def reader(name: str):  # type: ignore[no-untyped-def]
        data, mnt, args, e = targets[name]

        async def step(r: int) -> float:
            shutil.rmtree(data / "cache", ignore_errors=True)  # cold chunk cache (s3 only)
            _drop_page_cache()
            gw = _mounted_gateway(data, mnt, *args, env=e)
            try:
                path = mnt / "bench" / "big.bin"
                first[name].append(await asyncio.to_thread(_read_file, path))
                return await asyncio.to_thread(_read_file, path)
            finally:
                _unmount(gw, mnt)
        return step

    res = await interleave(rounds, [("s3", reader("s3")), ("local", reader("local"))],
                           f"mount {size // MiB} MiB")
    what = f"{size // MiB} MiB file read through `serve --mount` with 1 MiB reads"
    again = Figure("mount_reread", "MB/s (1e6 B/s)",
                   f"the second read of a {what}, on the s3 backend (moto), chunk cache filled by the first",
                   "the same second read on a local-backend mount", res["s3"], res["local"])
    cold = Figure("mount_first_read", "MB/s (1e6 B/s)",
                  f"the first read of a {what}, on the s3 backend (moto): read cache wiped, page "
                  "cache dropped, every chunk fetched from the backend (read-ahead)",
                  "the same first read on a local-backend mount (chunks from the local disk)",
                  first["s3"], first["local"])
    return [again, cold]


async def run(opts: Any, work: Path) -> dict[str, Any]:
    size = (16 if opts.quick else 64) * MiB
    rounds = max(3, opts.rounds or (3 if opts.quick else 5))
    only = set(opts.only or ONLY)
    figures: dict[str, Any] = {}
    servers: list[Server] = []
    async with AsyncExitStack() as stack:
        try:
            moto = start_moto(work)
            servers.append(moto)
            if only & {"put", "get"}:
                for f in await bench_backend("moto", moto, work, size, rounds, stack, only):
                    figures[f.name] = f.as_dict()
                backend_gw = start_gateway(work / "backend-gw", "--chunks", "local")
                servers.append(backend_gw)
                for f in await bench_backend("gateway", backend_gw, work, size, rounds, stack,
                                             only):
                    figures[f.name] = f.as_dict()
            if "cached" in only:
                f = await bench_cache(moto, work, size, rounds, stack)
                figures[f.name] = f.as_dict()
            if "mount" not in only:
                pass
            elif os.path.exists("/dev/fuse") and shutil.which("fusermount3"):
                mount_size = (64 if opts.quick else 1024) * MiB
                for f in await bench_mount_read(moto, work, mount_size, rounds, stack):
                    figures[f.name] = f.as_dict()
            else:
                figures["mount_reread"] = {"skipped": "no /dev/fuse or fusermount3 here"}
        finally:
            await stack.aclose()
            for s in servers:
                s.stop()
    return figures


def main(argv: list[str] | None = None) -> None:
    p = parser("samebytes s3 chunk backend benchmark (through the gateway beside "
               "direct to the backend, interleaved)")
    p.add_argument("--only", action="append", choices=ONLY,
                   help="measure only these figures (repeatable; default: all)")
    opts = p.parse_args(argv)
    work = make_data_dir(opts.data, "chunks-s3")
    try:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", MOTO_KEY)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", MOTO_SECRET)
        import uvloop
        figures = uvloop.run(run(opts, work))
        emit({"benchmark": "chunks_s3", "quick": opts.quick, "figures": figures,
              "machine": machine_info(work)})
    finally:
        remove_data_dir(work, opts.keep)


if __name__ == "__main__":
    main()
