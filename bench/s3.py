"""The S3 door over HTTP (`samebytes serve`) beside peers and limits measured in the same run.

Servers, each a separate process started and stopped here, all on 127.0.0.1:

* samebytes: ``python -m gateway.cli serve --workers N`` on a fresh data directory (durable
  writes); N is ``--workers`` (default: the usable cores), and nginx gets as many processes.
* moto: ``python -m moto.server`` (in-memory S3 emulator): the S3 peer.
* nginx: Debian's nginx with its own minimal config (``-p`` prefix, ``daemon off``, N
  worker processes): the HTTP limit. Static files for GET, WebDAV PUT (no fsync) for PUT.
* swift: OpenStack Swift + s3api from Debian (durable, Python; bench/swift_peer.py): a
  second S3 peer, skipped with the reason when its packages are missing.

Figures (each: samebytes and its references interleaved, A B C A B C ..., medians, ratios):

1. get_4k / put_4k: ops/s of 4 KiB objects at concurrency 16, one wrk thread with a Lua
   script cycling over presigned URLs (aiohttp client if wrk is missing).
   get_4k_cold beside it: the same GET where no URL or object recurs within the door's
   caches (2048 objects, 8192 URLs), against nginx; no target.
2. get_64m / put_64m: MB/s of 64 MiB objects, one stream, blocking http.client: GET read
   with ``readinto`` a 1 MiB buffer, PUT body sent in 1 MiB pieces (never assembled).
   put_64m also carries ``md5``: hashlib MD5 of the same bytes on one thread, timed in the
   same rounds, the ceiling of any one-stream PUT that answers with an MD5 ETag.
3. list: keys/s paging ListObjectsV2 (1000 keys a page) over 10k keys; each page a
   presigned URL fetched with http.client, keys counted in the raw XML.

All URLs are presigned by boto3 (SigV4 query auth, valid for the whole run). Beside every
figure: the CPU each server process (and its main thread) and the client spent per second
and per unit of work, so the JSON shows which side was saturated.

    python -m bench.s3 [--quick] [--data DIR] [--rounds N] [--keep] [--profile] [--workers N]

``--profile`` attaches py-spy to the samebytes server during each figure and adds its
hottest frames to the JSON (the figures of such a run are perturbed by the sampler).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import http.client
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import boto3
import uvloop
import yarl
from botocore.config import Config

from . import (Figure, _version, emit, free_port, interleave, log, machine_info, make_data_dir,
               parser, proc_cpu_times, remove_data_dir, system_cpu_times)
from . import swift_peer

REPO = Path(__file__).resolve().parents[1]
KiB = 1024
MiB = 1024 * KiB
CONCURRENCY = 16
BUCKET = "bench"
LIST_BUCKET = "listing"
GET_OBJECTS = 64              # distinct 4 KiB objects the GET figure cycles over
# get_4k_cold: more objects and URLs than the door keeps parsed queries (2048), verified
# signatures (2048) and recently opened objects (1024) for, cycled in one fixed order, so
# every request is a miss in each: what a GET costs when nothing about it recurs.
COLD_OBJECTS = 2048
COLD_URLS = 8192
URL_TTL = 12 * 3600           # presigned URLs outlive the run
PIECE = MiB                   # big bodies are sent and received in 1 MiB pieces
NCPU = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class Sizes:
    phase_s: int          # one wrk run (whole seconds: wrk takes no finer duration)
    small: int            # small object size
    big: int              # large object size
    big_reps: int         # large objects per round and target
    big_get_passes: int   # GETs of each large object per round and target
    list_keys: int        # keys in the listing bucket
    list_min_s: float     # repeat full listings until this much time passed

    @staticmethod
    def pick(quick: bool) -> Sizes:
        if quick:
            return Sizes(phase_s=1, small=4 * KiB, big=64 * MiB, big_reps=1, big_get_passes=1,
                         list_keys=2_000,
                         list_min_s=0.2)
        # A round of 3 x 64 MiB lasted ~0.1 s per target: one hiccup of this shared VM
        # moved a round's ratio from 0.46 to 0.72 (session 7). 6 objects per PUT round and
        # 4 GETs of each per GET round make every round last ~0.3-1 s.
        return Sizes(phase_s=2, small=4 * KiB, big=64 * MiB, big_reps=6, big_get_passes=4,
                     list_keys=10_000,
                     list_min_s=1.0)


# -- servers -----------------------------------------------------------------------------------


def _process_tree(pid: int) -> list[int]:
    """pid and its child processes (a pre-forking server's workers), from procfs."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    return [pid, *kids]


@dataclass
class Server:
    """A server process this benchmark started (and must stop)."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    command: list[str]
    stop_signal: int = signal.SIGTERM
    info: dict[str, Any] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds: (user, system) of the whole server (the process and its worker
        processes), user + system of the busiest main thread (one event loop: whether one
        process is saturated)."""
        user = system = main = 0.0
        for pid in _process_tree(self.proc.pid):
            try:
                u, s = proc_cpu_times(pid)
                main = max(main, sum(proc_cpu_times(pid, pid)))
            except (FileNotFoundError, ProcessLookupError):
                continue  # a worker that just exited
            user, system = user + u, system + s
        return user, system, main

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.log_tail()}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop on {signal.Signals(self.stop_signal).name}: killing")
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _wait_http(srv: Server, path: str, ok: Callable[[int], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        srv.check_alive()
        try:
            status = _http_status(srv.port, path)
            if ok(status):
                return
            last = status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{srv.name} not ready after {timeout} s (last: {last!r}): {srv.log_tail()}")


def _popen(cmd: list[str], log_path: Path, stdout: Any = None,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as logf:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else logf, stderr=logf,
                                cwd=REPO, env=env)


def start_samebytes(run_dir: Path, access_key: str, secret_key: str, workers: int = 1) -> Server:
    port = free_port()
    data = run_dir / "samebytes-data"
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--data", str(data),
           "--s3", f"127.0.0.1:{port}", "--nfs", "off", "--workers", str(workers)]
    out_path = run_dir / "samebytes.out"
    env = {**os.environ, "SAMEBYTES_ACCESS_KEY": access_key, "SAMEBYTES_SECRET_KEY": secret_key}
    with open(out_path, "wb") as out:
        proc = _popen(cmd, run_dir / "samebytes.log", stdout=out, env=env)
    srv = Server("samebytes", proc, port, run_dir / "samebytes.log", cmd)
    deadline = time.monotonic() + 30
    while True:  # the announce line is printed once the port listens
        line = out_path.read_bytes().split(b"\n", 1)
        if len(line) == 2:
            announce = json.loads(line[0])
            break
        srv.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"samebytes printed no announce line: {srv.log_tail()}")
        time.sleep(0.05)
    if announce.get("access_key") != access_key:
        raise RuntimeError(f"samebytes announced other credentials: {announce}")
    _wait_http(srv, "/_samebytes/health/ready", lambda s: s == 200)
    srv.info = {"version": _version("samebytes"),
                "command": "python -m gateway.cli serve --data DIR --s3 127.0.0.1:PORT --nfs off "
                           f"--workers {workers}",
                "config": "defaults (4 MiB chunks, durable: sync LMDB commits, fdatasync'd "
                          "chunk files), credentials from SAMEBYTES_ACCESS_KEY/SECRET_KEY"}
    return srv


# Pretend a peer or tool is missing (comma list of moto, nginx, wrk): tests the skip paths.
FORCE_SKIP = {x.strip() for x in os.environ.get("SAMEBYTES_BENCH_S3_SKIP", "").split(",") if x}


def start_moto(run_dir: Path) -> Server:
    if "moto" in FORCE_SKIP:
        raise LookupError("skipped by SAMEBYTES_BENCH_S3_SKIP")
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise LookupError("moto[server] is not installed in this Python "
                          "(pip install 'moto[server]')")
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    srv = Server("moto", _popen(cmd, run_dir / "moto.log"), port, run_dir / "moto.log", cmd,
                 stop_signal=signal.SIGINT)
    _wait_http(srv, "/", lambda s: s < 500)
    srv.info = {"version": _version("moto"),
                "command": "python -m moto.server -H 127.0.0.1 -p PORT",
                "config": "defaults (in memory, werkzeug threaded server, no auth check)"}
    return srv


def _nginx_binary() -> str | None:
    for cand in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


# The nginx peer is configured as an operator would for large uploads: a request body is
# read in 1 MiB pieces (client_body_buffer_size) and each piece written to a temp file on
# the same filesystem as the WebDAV root (client_body_temp_path), so finishing a PUT is a
# rename, never a copy; no size limit. Measured with strace -f on the workers during a
# 64 MiB PUT: 86 recvfrom into the 1 MiB buffer, 64 pwrite of 1 MiB, one rename, nothing
# else (no copy, no fsync, no syscall per small piece); an 8 MiB body buffer measured no
# faster. aio threads / aio_write do not apply (nginx writes
# client-body temp files synchronously; aio_write covers proxied responses only), directio
# and sendfile only read. One connection is served by one worker, so worker_processes does
# not change the PUT figure: --workers 2 measured 2.1-3.7 GB/s here. The 431-546 MB/s of
# one earlier run came with the worker's kernel time at 2,186 us/MB against ~300 in
# normal runs, and moto's and Swift's per-MB cost rose in the same run: writing into new
# page-cache pages was expensive on the machine then, not an nginx setting (not reproduced
# since; likely causes: this VM's balloon reports freed guest memory to the host, which
# must fault it back in, and other sessions' load). The figure's
# cpu.nginx.server_cpu_us_per_MB shows which case a run measured.
NGINX_CONF = """\
# Written by bench/s3.py: as many serving processes as samebytes, loopback only, no daemon.
# Uploads: 1 MiB body buffer, temp files beside the WebDAV root (a PUT ends in a rename).
daemon off;
master_process {master};
worker_processes {workers};
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{upstream}    server {{
        listen 127.0.0.1:{port};
{locations}    }}
}}
"""
NGINX_FILES = """\
        root {www};
        location / {{ }}
        location /dav/ {{
            alias {dav}/;
            dav_methods PUT;
            create_full_put_path on;
        }}
        location /nosendfile/ {{
            alias {dav}/;
            sendfile off;
        }}
"""
# A plain reverse proxy (bench/chunks_s3.py's relay limit): streams both ways (no
# buffering of the request or the response body to memory or temp files), HTTP/1.1 with
# kept-alive upstream connections, 1 MiB relay buffer (the default 4-8 KiB one costs a
# syscall pair per page). The client's Host goes to the backend unchanged: SigV4 signs
# Host, and the client signed the proxy's address.
NGINX_PROXY = """\
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_buffer_size 1m;
            proxy_buffers 4 1m;
            proxy_busy_buffers_size 2m;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
"""
NGINX_UPSTREAM = """\
    upstream backend {{
        server {backend};
        keepalive 8;
    }}
"""


def start_nginx(run_dir: Path, workers: int = 1, proxy_to: str | None = None) -> Server:
    """nginx serving files (GET static, PUT WebDAV) or, with proxy_to ("host:port"), a
    plain streaming reverse proxy to that backend."""
    if "nginx" in FORCE_SKIP:
        raise LookupError("skipped by SAMEBYTES_BENCH_S3_SKIP")
    binary = _nginx_binary()
    if binary is None:
        raise LookupError("nginx is not installed (apt-get install nginx)")
    prefix = run_dir / "nginx"
    www, dav = prefix / "www", prefix / "dav"
    for d in (prefix, www, dav):
        d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    locations = (NGINX_PROXY.format() if proxy_to else NGINX_FILES.format(www=www, dav=dav))
    upstream = NGINX_UPSTREAM.format(backend=proxy_to) if proxy_to else ""
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, locations=locations,
                                      upstream=upstream,
                                      workers=workers, master="on" if workers > 1 else "off",
                                      # root's workers would run as nobody, who cannot read
                                      # the files here
                                      user="user root;" if os.geteuid() == 0 else ""))
    cmd = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    srv = Server("nginx", _popen(cmd, prefix / "stderr.log"), port, prefix / "error.log", cmd,
                 stop_signal=signal.SIGQUIT)
    _wait_http(srv, "/", lambda s: s < 500 if proxy_to else s in (200, 403, 404))
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    srv.info = {"version": version.removeprefix("nginx version: "),
                "command": "nginx -p PREFIX -c PREFIX/nginx.conf -e PREFIX/error.log",
                "config": f"daemon off, {workers} worker process(es) (as many as samebytes; "
                          "master_process on when more than one), sendfile on, access_log off, keepalive_requests 1e7; "
                          + (f"reverse proxy to {proxy_to} (proxy_buffering off, "
                             "proxy_request_buffering off, proxy_buffer_size 1m, HTTP/1.1 "
                             "keepalive upstream, Host passed unchanged)" if proxy_to else
                             "GET: static files (query string ignored); PUT: WebDAV to a file "
                             "(nginx spools the body to a temp file, then renames it; no fsync)")}
    srv.dirs = {"www": www, "dav": dav}
    return srv


def start_swift(run_dir: Path) -> swift_peer.SwiftPeer:
    """Swift + s3api with its device in run_dir (beside samebytes' data, the same disk)."""
    if "swift" in FORCE_SKIP:
        raise LookupError("skipped by SAMEBYTES_BENCH_S3_SKIP")
    return swift_peer.start(run_dir / "swift")


# -- S3 targets and presigned URLs ---------------------------------------------------------------


@dataclass
class Target:
    """An S3 server and a boto3 client (used only to presign and to set up)."""

    name: str
    server: Server
    s3: Any

    def presign(self, method: str, key: str, bucket: str = BUCKET, ttl: int = URL_TTL,
                **params: Any) -> str:
        """Path + query of a presigned URL (for wrk and http.client)."""
        op = {"GET": "get_object", "PUT": "put_object"}[method]
        url = self.s3.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key, **params},
                                             ExpiresIn=ttl)
        return _path_of(url, self.server.endpoint)


def _path_of(url: str, endpoint: str) -> str:
    if not url.startswith(endpoint + "/"):
        raise AssertionError(f"presigned URL {url} is not under {endpoint}")
    return url[len(endpoint):]


def _s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


# -- measuring CPU beside every step -------------------------------------------------------------


def _client_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process (all threads) plus its finished children
    (wrk runs as a child and is waited for within the step)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + ch.ru_utime, me.ru_stime + ch.ru_stime


@dataclass
class Sample:
    value: float
    wall: float
    work: float              # units done (ops, MB, keys)
    server_user: float
    server_sys: float
    server_main: float       # user + system of the server's main thread
    client_user: float
    client_sys: float
    machine_user: float      # every process on the machine
    machine_sys: float       # kernel time, kernel threads (journal, writeback), interrupts

    @property
    def server(self) -> float:
        return self.server_user + self.server_sys

    @property
    def client(self) -> float:
        return self.client_user + self.client_sys


def _delta(a: tuple[float, ...], b: tuple[float, ...]) -> list[float]:
    return [y - x for x, y in zip(a, b, strict=True)]


class Probe:
    """Times one measured step and the CPU the server, the client and the whole machine
    spent in it. Set .work (units done) and optionally .seconds (the client's own timing,
    e.g. wrk's)."""

    def __init__(self, meter: Meter, figure: str, target: str, server: Server | None) -> None:
        self.meter, self.figure, self.target, self.server = meter, figure, target, server
        self.work = 0.0
        self.seconds: float | None = None
        self.value = 0.0

    def _read(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        srv = self.server.cpu() if self.server else (0.0, 0.0, 0.0)
        return srv, _client_cpu(), system_cpu_times()[:2]

    def __enter__(self) -> Probe:
        if self.server is not None:
            self.server.check_alive()
        self.r0 = self._read()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if et is not None:
            return
        wall = time.perf_counter() - self.t0
        r1 = self._read()
        (su, ss, sm), (cu, cs), (mu, ms) = (_delta(a, b) for a, b in zip(self.r0, r1, strict=True))
        self.value = self.work / (self.seconds or wall)
        self.meter.samples[(self.figure, self.target)].append(
            Sample(self.value, wall, self.work, su, ss, sm, cu, cs, mu, ms))


def _bottleneck(c: dict[str, float]) -> str:
    """A reading of a target's CPU figures (thresholds: 0.85 of a core, of all cores)."""
    main, total, client = c["server_main_thread_cores"], c["server_cpu_cores"], c["client_cpu_cores"]
    if main >= 0.85:
        reading = "server main thread saturated (~1 core: the event loop)"
    elif c["machine_busy_cores"] >= 0.85 * NCPU:
        reading = (f"all {NCPU} cores busy: server {total:.2f} + client {client:.2f} + kernel "
                   f"threads/interrupts {c['kernel_other_cores']:.2f} + other processes "
                   f"{c['other_processes_cores']:.2f}")
    elif total >= 0.85:
        reading = (f"server process busy ({total:.2f} cores over its threads; a Python server's "
                   "GIL lets only one run Python at a time)")
    elif client >= 0.85:
        reading = "client saturated (~1 core)"
    else:
        reading = "neither side saturated: waiting (disk, latency, locks, loopback)"
    if c["other_processes_cores"] >= 0.25:
        reading += (f"; WARNING: other processes used {c['other_processes_cores']:.2f} cores "
                    "(figure depressed by foreign load)")
    return reading


class Meter:
    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[Sample]] = defaultdict(list)

    def probe(self, figure: str, target: str, server: Server | None) -> Probe:
        return Probe(self, figure, target, server)

    def summary(self, figure: str, per: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (fig, target), samples in self.samples.items():
            if fig != figure or not samples:
                continue

            def med(f: Callable[[Sample], float], samples: list[Sample] = samples) -> float:
                return statistics.median(f(s) for s in samples)

            c = {
                "server_cpu_cores": med(lambda s: s.server / s.wall),
                "server_main_thread_cores": med(lambda s: s.server_main / s.wall),
                "server_kernel_cores": med(lambda s: s.server_sys / s.wall),
                "client_cpu_cores": med(lambda s: s.client / s.wall),
                "machine_busy_cores": med(lambda s: (s.machine_user + s.machine_sys) / s.wall),
                "kernel_other_cores": med(lambda s: max(
                    0.0, s.machine_sys - s.server_sys - s.client_sys) / s.wall),
                "other_processes_cores": med(lambda s: max(
                    0.0, s.machine_user - s.server_user - s.client_user) / s.wall),
            }
            d: dict[str, Any] = {k: round(v, 3) for k, v in c.items()}
            d[f"server_cpu_us_per_{per}"] = _sig(med(lambda s: s.server * 1e6 / s.work))
            d[f"client_cpu_us_per_{per}"] = _sig(med(lambda s: s.client * 1e6 / s.work))
            d["bottleneck"] = _bottleneck(c)
            out[target] = d
        return out


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


# -- clients -----------------------------------------------------------------------------------


WRK_SCRIPT = """\
-- Written by bench/s3.py: cycle over presigned URL paths, report one JSON line.
local paths = dofile({paths_file})
local method = "{method}"
local body = {body}
local i = 0
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format(method, paths[i], nil, body)
end
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('\\nWRKJSON {{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"p50_us": %.0f, "p99_us": %.0f}}\\n', s.requests, s.duration, s.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


class Load:
    """Runs `CONCURRENCY` concurrent requests over a list of URL paths for a fixed time,
    with wrk (one thread, Lua script) or, without wrk, an aiohttp client on uvloop."""

    def __init__(self, work_dir: Path, session: aiohttp.ClientSession) -> None:
        self.wrk = None if "wrk" in FORCE_SKIP else shutil.which("wrk")
        self.dir = work_dir
        self.session = session
        self.n = 0
        if self.wrk:
            v = subprocess.run([self.wrk, "-v"], capture_output=True, text=True)
            first = (v.stdout + v.stderr).split()  # "wrk debian/4.1.0-3+b2 [epoll] ..."
            self.version = " ".join(first[:2]) if first else "wrk"
        else:
            self.version = f"aiohttp {_version('aiohttp')}"

    def describe(self) -> str:
        if self.wrk:
            return (f"{self.version}: wrk -t1 -c{CONCURRENCY} -dNs, a Lua request() cycling "
                    "over presigned URL paths (one thread, one core at most)")
        return (f"wrk not installed (apt-get install wrk): aiohttp {_version('aiohttp')} "
                f"client on uvloop, {CONCURRENCY} tasks, presigned URLs")

    async def run(self, endpoint: str, method: str, paths: list[str], body_size: int,
                  seconds: int) -> dict[str, Any]:
        if self.wrk:
            res = self._wrk(endpoint, method, paths, body_size, seconds)
        else:
            res = await self._aiohttp(endpoint, method, paths, body_size, seconds)
        errors = res["connect"] + res["read"] + res["write"] + res["timeout"]
        if res["status"] or errors > max(2, res["requests"] // 100) or res["requests"] == 0:
            raise RuntimeError(f"{method} load on {endpoint} failed: {res}; one request: "
                               f"{_one_request(endpoint, method, paths[0], body_size)}")
        return res

    def _wrk(self, endpoint: str, method: str, paths: list[str], body_size: int,
             seconds: int) -> dict[str, Any]:
        self.n += 1
        paths_file = self.dir / f"paths-{self.n}.lua"
        paths_file.write_text("return {\n" + ",\n".join(json.dumps(p) for p in paths) + "\n}\n")
        script = self.dir / f"load-{self.n}.lua"
        body = f'string.rep("x", {body_size})' if method == "PUT" else "nil"
        script.write_text(WRK_SCRIPT.format(paths_file=json.dumps(str(paths_file)),
                                            method=method, body=body))
        cmd = [self.wrk, "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", "30s",
               "-s", str(script), endpoint + "/"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90)
        m = re.search(r"^WRKJSON (\{.*\})$", proc.stdout, re.M)
        if proc.returncode != 0 or m is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout} {proc.stderr}")
        paths_file.unlink()
        script.unlink()
        return json.loads(m.group(1))

    async def _aiohttp(self, endpoint: str, method: str, paths: list[str], body_size: int,
                       seconds: int) -> dict[str, Any]:
        body = b"x" * body_size if method == "PUT" else None
        urls = [yarl.URL(endpoint + p, encoded=True) for p in paths]
        counter = iter(range(1 << 62))
        status_errors = 0
        lat: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker() -> int:
            nonlocal status_errors
            n = 0
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                async with self.session.request(method, urls[next(counter) % len(urls)],
                                                data=body) as r:
                    await r.read()
                    if r.status >= 400:
                        status_errors += 1
                lat.append(time.perf_counter() - t)
                n += 1
            return n

        t0 = time.perf_counter()
        n = sum(await asyncio.gather(*(worker() for _ in range(CONCURRENCY))))
        dt = time.perf_counter() - t0
        lat.sort()
        return {"requests": n, "duration_us": int(dt * 1e6), "bytes": 0, "connect": 0,
                "read": 0, "write": 0, "status": status_errors, "timeout": 0,
                "p50_us": round(lat[len(lat) // 2] * 1e6), "p99_us": round(lat[len(lat) * 99 // 100] * 1e6)}


def _one_request(endpoint: str, method: str, path: str, body_size: int) -> str:
    """One request's status and body head, to explain a failed load run."""
    try:
        port = int(endpoint.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(method, path, body=b"x" * body_size if method == "PUT" else None)
        r = conn.getresponse()
        return f"{r.status} {r.read()[:500]!r}"
    except Exception as e:  # pragma: no cover - diagnostics only
        return repr(e)


def _conn(port: int) -> http.client.HTTPConnection:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.connect()
    return c


def http_get_count(conn: http.client.HTTPConnection, path: str, buf: memoryview) -> int:
    """GET path, reading the body with readinto a reused buffer; the byte count."""
    conn.request("GET", path)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"GET {path[:80]}: {r.status} {r.read()[:300]!r}")
    n = 0
    while True:
        k = r.readinto(buf)
        if not k:
            return n
        n += k


def http_put_stream(conn: http.client.HTTPConnection, path: str, body: memoryview) -> None:
    """PUT the body in 1 MiB pieces with a Content-Length (no chunked encoding)."""
    pieces = (body[i:i + PIECE] for i in range(0, len(body), PIECE))
    conn.request("PUT", path, body=pieces, headers={"Content-Length": str(len(body))})
    r = conn.getresponse()
    text = r.read()
    if r.status not in (200, 201, 204):
        raise RuntimeError(f"PUT {path[:80]}: {r.status} {text[:300]!r}")


# -- profiling (optional) ------------------------------------------------------------------------


class Profiler:
    """py-spy attached to the samebytes server for one figure (`--profile`)."""

    def __init__(self, enabled: bool, out_dir: Path, server: Server) -> None:
        self.binary = None
        if enabled:
            self.binary = shutil.which("py-spy") or (
                str(Path(sys.executable).parent / "py-spy")
                if (Path(sys.executable).parent / "py-spy").exists() else None)
            if self.binary is None:
                log("--profile: py-spy not found (pip install py-spy): not profiling")
        self.dir, self.server = out_dir, server
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: Path | None = None

    def start(self, figure: str) -> None:
        if not self.binary:
            return
        self.path = self.dir / f"profile-{figure}.txt"
        self.proc = subprocess.Popen(
            [self.binary, "record", "--subprocesses", "-p", str(self.server.proc.pid),
             "-f", "raw", "-r", "200",
             "--threads", "--nonblocking", "-o", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None or self.path is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        try:
            return summarize_profile(self.path.read_text())
        except OSError as e:
            return {"error": f"py-spy wrote no profile: {e}"}


def _frame(f: str) -> str:
    return re.sub(r":\d+\)$", ")", f.strip())


def summarize_profile(raw: str, top: int = 12) -> dict[str, Any]:
    """Busy samples per thread and the hottest frames (self and inclusive) of py-spy's
    collapsed stacks ("thread (0x..);frame;frame N" per line)."""
    threads: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        frames = [_frame(f) for f in frames if not f.startswith(("thread", "process"))]
        total += n
        # "thread (0x7f..): chunkstore-local_3" -> "chunkstore-local" (a pool counts once)
        name = re.sub(r"^thread \([^)]*\):?\s*", "", thread)
        threads[re.sub(r"_\d+$", "", name) or thread] += n
        if frames:
            leaf[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
    pct = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {
        "busy_samples": total,
        "threads_pct": {t: pct(n) for t, n in threads.most_common(6)},
        "self_pct": {f: pct(n) for f, n in leaf.most_common(top)},
        "inclusive_pct": {f: pct(n) for f, n in incl.most_common()
                          if any(m in f for m in ("gateway/", "metadata/", "chunkstore/",
                                                  "aiohttp/"))
                          and not any(m in f for m in ("gateway/cli.py", "(gateway/server.py)",
                                                       "(aiohttp/web_app.py)",
                                                       "(aiohttp/web_protocol.py)"))
                          }
    }


# -- the benchmark -------------------------------------------------------------------------------


@dataclass
class Run:
    sz: Sizes
    rounds: int
    work: Path
    sb: Target
    moto: Target | None
    nginx: Server | None
    skipped: dict[str, str]
    load: Load
    meter: Meter
    profiler: Profiler
    profiles: dict[str, Any] = field(default_factory=dict)
    swift: Target | None = None

    def s3_targets(self) -> list[Target]:
        return [t for t in (self.sb, self.moto, self.swift) if t is not None]

    def target(self, name: str) -> Target:
        return next(t for t in self.s3_targets() if t.name == name)

    async def phase(self, figure_names: list[str], steps: list[tuple[str, Callable[[int], Awaitable[float]]]],
                    label: str) -> dict[str, list[float]]:
        self.profiler.start(label)
        try:
            return await interleave(self.rounds, steps, label)
        finally:
            prof = self.profiler.stop()
            if prof is not None:
                for f in figure_names:
                    self.profiles[f] = prof

    def figure(self, name: str, unit: str, per: str, samebytes_is: str,
               res: dict[str, list[float]], limit: tuple[str, str] | None,
               others: list[tuple[str, str]], client: str) -> dict[str, Any]:
        """A Figure: samebytes, the limit (first reference measured) and the others."""
        lim_name, lim_is = limit if limit else ("", "")
        fig = Figure(name, unit, samebytes_is, lim_is or "", res["samebytes"],
                     res.get(lim_name, []) if limit else [])
        if limit and lim_name not in res:
            fig.limit_is = f"{lim_name} (skipped: {self.skipped.get(lim_name.split('_')[0], '?')})"
        for other, what in others:
            if other in res:
                fig.other(other, what).extend(res[other])
        skipped = {p: why for p, why in self.skipped.items()
                   if (limit and lim_name.startswith(p)) or any(o.startswith(p) for o, _ in others)}
        if skipped:
            fig.extra["skipped"] = skipped
        fig.extra["client"] = client
        fig.extra["cpu"] = self.meter.summary(name, per)
        if name in self.profiles:
            fig.extra["samebytes_profile"] = self.profiles[name]
        return fig.as_dict()


async def bench_small(run: Run) -> dict[str, Any]:
    sz, sb, moto, ngx = run.sz, run.sb, run.moto, run.nginx
    s3_targets = run.s3_targets()
    # GET: 64 objects of random bytes, the same in every server (nginx: static files).
    payloads = [os.urandom(sz.small) for _ in range(GET_OBJECTS)]
    keys = [f"g/{i:04d}" for i in range(GET_OBJECTS)]
    for t in s3_targets:
        for k, p in zip(keys, payloads, strict=True):
            t.s3.put_object(Bucket=BUCKET, Key=k, Body=p)
    get_paths = {t.name: [t.presign("GET", k) for k in keys] for t in s3_targets}
    if ngx is not None:
        www = ngx.dirs["www"] / BUCKET / "g"
        www.mkdir(parents=True)
        for k, p in zip(keys, payloads, strict=True):
            (www.parent / k).write_bytes(p)
        get_paths["nginx"] = get_paths["samebytes"]  # same request lines; nginx ignores the query
    conc = {t.name: t.server for t in s3_targets}
    if ngx is not None:
        conc["nginx"] = ngx
    p50: dict[str, list[int]] = defaultdict(list)

    def get_step(name: str) -> Callable[[int], Awaitable[float]]:
        async def step(r: int) -> float:
            with run.meter.probe("get_4k", name, conc[name]) as p:
                res = await run.load.run(conc[name].endpoint, "GET", get_paths[name], 0, sz.phase_s)
                p.work, p.seconds = res["requests"], res["duration_us"] / 1e6
            p50[f"get_{name}"].append(res["p50_us"])
            return p.value
        return step

    # PUT: distinct keys per round (p/rR/NNNNNNN); the URL list is sized from the last rate.
    rate: dict[str, float] = {}
    overwrites: dict[str, int] = defaultdict(int)
    sb_query = sb.presign("PUT", "p/x").split("?", 1)[1]

    def put_paths(name: str, r: int, n: int) -> list[str]:
        if name == "nginx":  # no signature needed; the same request-line length as samebytes
            return [f"/dav/{BUCKET}/p/r{r}/{i:07d}?{sb_query}" for i in range(n)]
        return [run.target(name).presign("PUT", f"p/r{r}/{i:07d}") for i in range(n)]

    def put_step(name: str) -> Callable[[int], Awaitable[float]]:
        async def step(r: int) -> float:
            n = int(min(200_000, max(1_000, rate.get(name, 2_000) * sz.phase_s * 1.5 + 256)))
            paths = put_paths(name, r, n)  # presigning is not timed
            with run.meter.probe("put_4k", name, conc[name]) as p:
                res = await run.load.run(conc[name].endpoint, "PUT", paths, sz.small, sz.phase_s)
                p.work, p.seconds = res["requests"], res["duration_us"] / 1e6
            rate[name] = max(rate.get(name, 0.0), p.value)
            overwrites[name] += max(0, res["requests"] - n)
            p50[f"put_{name}"].append(res["p50_us"])
            return p.value
        return step

    # Warm-up (not recorded): connections, caches, and a first PUT rate estimate.
    for name, srv in conc.items():
        await run.load.run(srv.endpoint, "GET", get_paths[name], 0, 1)
        wp = ([f"/dav/{BUCKET}/w/{i:05d}" for i in range(2000)] if name == "nginx" else
              [run.target(name).presign("PUT", f"w/{i:05d}") for i in range(2000)])
        res = await run.load.run(srv.endpoint, "PUT", wp, sz.small, 1)
        rate[name] = res["requests"] / (res["duration_us"] / 1e6)
    log("small: warm-up PUT rates " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rate.items()))

    order = [n for n in ("samebytes", "nginx", "moto", "swift") if n in conc]
    res_get = await run.phase(["get_4k"], [(n, get_step(n)) for n in order], "get_4k")
    res_put = await run.phase(["put_4k"], [(n, put_step(n)) for n in order], "put_4k")
    client = run.load.describe()
    get = run.figure(
        "get_4k", "ops/s", "op", f"GET of {sz.small} B objects ({GET_OBJECTS} distinct, cycled) "
        f"through samebytes' S3 door, presigned URLs, concurrency {CONCURRENCY}",
        res_get, ("nginx", f"nginx serving the same {GET_OBJECTS} files as static files, same "
                  "request lines (the query string is ignored): the HTTP limit"),
        [("moto", "moto_server (in-memory S3 emulator), the same objects: the S3 peer"),
         ("swift", "OpenStack Swift + s3api, the same objects: a durable Python S3 peer")], client)
    put = run.figure(
        "put_4k", "ops/s", "op", f"PUT of {sz.small} B bodies to distinct new keys through "
        f"samebytes' S3 door, presigned URLs, concurrency {CONCURRENCY}; acknowledged = durable",
        res_put, ("nginx", f"nginx WebDAV PUT of the same {sz.small} B bodies to new files, same "
                  "request-line length: the HTTP limit (not durable: no fsync)"),
        [("moto", "moto_server, the same PUTs (in memory, not durable): the S3 peer"),
         ("swift", "OpenStack Swift + s3api, the same PUTs (object files fsync'd): a "
          "durable Python S3 peer")], client)
    for fig, kind in ((get, "get"), (put, "put")):
        fig["latency_p50_us_median"] = {k.split("_", 1)[1]: statistics.median(v)
                                        for k, v in p50.items() if k.startswith(kind)}
    put["urls_per_round"] = "1.5 x the best rate so far x the phase; a wrapped list overwrites"
    put["overwritten_requests"] = dict(overwrites)
    return {"get_4k": get, "put_4k": put, **await bench_small_cold(run)}


async def bench_small_cold(run: Run) -> dict[str, Any]:
    """get_4k_cold: 4 KiB GETs where no URL or object recurs within the door's caches
    (COLD_*), beside nginx serving the same files; no target, the honest companion of
    get_4k, whose 64 URLs recur."""
    sz, sb, ngx = run.sz, run.sb, run.nginx
    keys = [f"c/{i:05d}" for i in range(COLD_OBJECTS)]
    www = ngx.dirs["www"] / BUCKET / "c" if ngx is not None else None
    if www is not None:
        www.mkdir(parents=True)
    for k in keys:
        body = os.urandom(sz.small)
        sb.s3.put_object(Bucket=BUCKET, Key=k, Body=body)
        if www is not None:
            (www.parent / k).write_bytes(body)
    # Distinct expiries make distinct query strings (and signatures) for one object.
    rng = random.Random(7)
    paths = [sb.presign("GET", keys[i % COLD_OBJECTS], ttl=URL_TTL + i // COLD_OBJECTS)
             for i in range(COLD_URLS)]
    rng.shuffle(paths)
    conc = {"samebytes": sb.server}
    if ngx is not None:
        conc["nginx"] = ngx

    def step(name: str) -> Callable[[int], Awaitable[float]]:
        async def go(r: int) -> float:
            with run.meter.probe("get_4k_cold", name, conc[name]) as p:
                res = await run.load.run(conc[name].endpoint, "GET", paths, 0, sz.phase_s)
                p.work, p.seconds = res["requests"], res["duration_us"] / 1e6
            return p.value
        return go

    for srv in conc.values():  # warm-up: connections only (a short pass over the list)
        await run.load.run(srv.endpoint, "GET", paths[:256], 0, 1)
    res = await run.phase(["get_4k_cold"], [(n, step(n)) for n in conc], "get_4k_cold")
    fig = run.figure(
        "get_4k_cold", "ops/s", "op", f"GET of {sz.small} B objects ({COLD_OBJECTS} distinct, "
        f"{COLD_URLS} distinct presigned URLs in a fixed shuffled cycle: no parsed query, "
        f"signature or opened object recurs within the door's caches), concurrency {CONCURRENCY}",
        res, ("nginx", "nginx serving the same files as static files, same request lines"),
        [], run.load.describe())
    return {"get_4k_cold": fig}


async def bench_big(run: Run) -> dict[str, Any]:
    sz, sb, moto, ngx = run.sz, run.sb, run.moto, run.nginx
    buf = memoryview(bytearray(PIECE))
    total = sz.big * sz.big_reps
    body: dict[int, memoryview] = {}

    def key(r: int, j: int) -> str:
        return f"big/r{r}-{j}"

    def body_of(r: int) -> memoryview:
        if r not in body:
            body.clear()
            body[r] = memoryview(os.urandom(sz.big))  # fresh bytes each round, not timed
        return body[r]

    def put_step(name: str) -> Callable[[int], Awaitable[float]]:
        async def step(r: int) -> float:
            b = body_of(r)
            if name == "nginx":
                assert ngx is not None
                srv, paths = ngx, [f"/dav/{BUCKET}/{key(r, j)}" for j in range(sz.big_reps)]
            else:
                t = run.target(name)
                srv, paths = t.server, [t.presign("PUT", key(r, j)) for j in range(sz.big_reps)]
            conn = _conn(srv.port)
            try:
                with run.meter.probe("put_64m", name, srv) as p:
                    for path in paths:
                        http_put_stream(conn, path, b)
                    p.work = total / 1e6
            finally:
                conn.close()
            return p.value
        return step

    async def md5_step(r: int) -> float:
        # What one core does when it only computes the ETag's MD5 of the same bytes in the
        # same PIECE-sized updates: MD5 is one sequential chain, so no single-stream PUT
        # that answers with an MD5 ETag can beat this on this machine.
        b = body_of(r)
        t0 = time.perf_counter()
        for _ in range(sz.big_reps):
            h = hashlib.md5()
            for off in range(0, len(b), PIECE):
                h.update(b[off:off + PIECE])
        return total / 1e6 / (time.perf_counter() - t0)

    first_pass: dict[str, list[float]] = {}

    def get_step(name: str) -> Callable[[int], Awaitable[float]]:
        async def step(r: int) -> float:
            if name.startswith("nginx"):
                assert ngx is not None
                where = "nosendfile" if name == "nginx_nosendfile" else "dav"
                srv, paths = ngx, [f"/{where}/{BUCKET}/{key(r, j)}" for j in range(sz.big_reps)]
            else:
                t = run.target(name)
                srv, paths = t.server, [t.presign("GET", key(r, j)) for j in range(sz.big_reps)]
            conn = _conn(srv.port)
            try:
                # The first read of bytes just written is not timed: on this VM, guest
                # memory the host has taken back (free page reporting) costs a host fault
                # on its first touch, ~2.5 ms of CPU per MB, and it is paid by whoever
                # touches the pages first: nginx in its buffered PUT, samebytes in this
                # first GET (its O_DIRECT writes and read-back never touch them from the
                # CPU). Kept per round as first_get_after_put, not in the figure.
                t0 = time.perf_counter()
                for path in paths:
                    if http_get_count(conn, path, buf) != sz.big:
                        raise AssertionError(f"{name}: short first GET of {path[:60]}")
                first_pass.setdefault(name, []).append(
                    round(total / 1e6 / (time.perf_counter() - t0), 1))
                with run.meter.probe("get_64m", name, srv) as p:
                    for _ in range(sz.big_get_passes):
                        for path in paths:
                            n = http_get_count(conn, path, buf)
                            if n != sz.big:
                                raise AssertionError(f"{name}: read {n} bytes, expected {sz.big}")
                    p.work = total * sz.big_get_passes / 1e6
            finally:
                conn.close()
            return p.value
        return step

    async def cleanup(r: int) -> float:  # not a figure: bound disk and memory use
        for t in run.s3_targets():
            for j in range(sz.big_reps):
                t.s3.delete_object(Bucket=BUCKET, Key=key(r, j))
        if ngx is not None:
            for j in range(sz.big_reps):
                (ngx.dirs["dav"] / BUCKET / key(r, j)).unlink(missing_ok=True)
        return 0.0

    names = [n for n, ok in (("samebytes", True), ("nginx", ngx is not None),
                             ("moto", moto is not None), ("swift", run.swift is not None)) if ok]
    warm = await put_step("samebytes")(-1)  # warm-up: first chunk files, connections
    await cleanup(-1)
    log(f"big: warm-up PUT {warm:,.0f} MB/s")
    steps: list[tuple[str, Callable[[int], Awaitable[float]]]] = (
        [(f"put_{n}", put_step(n)) for n in names] + [(f"get_{n}", get_step(n)) for n in names]
        + [("put_md5", md5_step)])
    if ngx is not None:
        steps.append(("get_nginx_nosendfile", get_step("nginx_nosendfile")))
    steps.append(("cleanup", cleanup))
    res = await run.phase(["put_64m", "get_64m"], steps, "big")
    res_put = {k.removeprefix("put_"): v for k, v in res.items() if k.startswith("put_")}
    res_get = {k.removeprefix("get_"): v for k, v in res.items() if k.startswith("get_")}
    client = (f"blocking http.client, one connection, one stream; GET: readinto a reused 1 MiB "
              f"buffer; PUT: body sent in 1 MiB pieces with Content-Length; {sz.big_reps} "
              f"objects per round and target, each PUT once and then GET {sz.big_get_passes} "
              f"times (in turn: 1 2 3 ... 1 2 3 ...)")
    put = run.figure(
        "put_64m", "MB/s (1e6 B/s)", "MB",
        f"PUT of {sz.big // MiB} MiB bodies (fresh random bytes each round) through samebytes' "
        "S3 door, presigned, one stream; acknowledged = durable (4 MiB chunk files, MD5 etag)",
        res_put, ("nginx", "nginx WebDAV PUT of the same bytes to a file (spooled to a temp "
                  "file, renamed; no fsync): the HTTP limit"),
        [("moto", "moto_server, the same PUTs (in memory / spooled temp file): the S3 peer"),
         ("swift", "OpenStack Swift + s3api, the same PUTs (object file fsync'd)"),
         ("md5", "hashlib MD5 of the same bytes on one thread, nothing else (no socket, no "
          "disk): the ceiling of any one-stream PUT that answers with an MD5 ETag")], client)
    get = run.figure(
        "get_64m", "MB/s (1e6 B/s)", "MB",
        f"GET of the {sz.big // MiB} MiB objects just put, after one untimed GET of each "
        "(page cache warm, pages touched), one stream",
        res_get, ("nginx", "nginx GET of the file its WebDAV PUT just wrote (sendfile on, "
                  "page cache warm): the HTTP limit"),
        [("nginx_nosendfile", "the same nginx file with sendfile off (read + write through "
          "user space)"),
         ("moto", "moto_server GET of the same object: the S3 peer"),
         ("swift", "OpenStack Swift + s3api GET of the same object")], client)
    get["first_get_after_put"] = {
        "is": "MB/s of the untimed first GET pass of each round (the bytes' first read after "
              "their PUT), per round; on this VM it mostly measures who pays the first touch "
              "of guest memory (see get_step)",
        "per_round": first_pass}
    return {"put_64m": put, "get_64m": get}


async def _fill_bucket(session: aiohttp.ClientSession, t: Target, n: int) -> float:
    """n empty objects k0000000.. in LIST_BUCKET, CONCURRENCY presigned PUTs at a time."""
    urls = [yarl.URL(t.server.endpoint + t.presign("PUT", f"k{i:07d}", bucket=LIST_BUCKET),
                     encoded=True) for i in range(n)]
    it = iter(urls)

    async def worker() -> None:
        for u in it:
            async with session.put(u, data=b"") as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{t.name}: PUT {u}: {r.status}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    dt = time.perf_counter() - t0
    log(f"list: {t.name} filled with {n:,} keys in {dt:.1f} s")
    return n / dt


_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def list_all(t: Target, conn: http.client.HTTPConnection) -> tuple[int, int]:
    """Page through LIST_BUCKET (ListObjectsV2, 1000 keys a page): (keys, pages)."""
    token: str | None = None
    keys = pages = 0
    while True:
        params: dict[str, Any] = {"Bucket": LIST_BUCKET, "MaxKeys": 1000}
        if token:
            params["ContinuationToken"] = token
        path = _path_of(t.s3.generate_presigned_url("list_objects_v2", Params=params,
                                                    ExpiresIn=URL_TTL), t.server.endpoint)
        conn.request("GET", path)
        r = conn.getresponse()
        doc = r.read()
        if r.status != 200:
            raise RuntimeError(f"{t.name}: ListObjectsV2: {r.status} {doc[:300]!r}")
        keys += doc.count(b"<Key>")
        pages += 1
        if b"<IsTruncated>true</IsTruncated>" not in doc:
            return keys, pages
        m = _TOKEN.search(doc)
        if m is None:
            raise RuntimeError(f"{t.name}: truncated page without NextContinuationToken")
        token = html.unescape(m.group(1).decode())


async def bench_list(run: Run, session: aiohttp.ClientSession) -> dict[str, Any]:
    sz = run.sz
    targets = run.s3_targets()
    for t in targets:
        t.s3.create_bucket(Bucket=LIST_BUCKET)
    fill = await asyncio.gather(*(_fill_bucket(session, t, sz.list_keys) for t in targets))
    pages_seen: dict[str, int] = {}

    def step(t: Target) -> Callable[[int], Awaitable[float]]:
        async def run_step(r: int) -> float:
            conn = _conn(t.server.port)
            try:
                with run.meter.probe("list", t.name, t.server) as p:
                    t0 = time.perf_counter()
                    while True:
                        keys, pages = list_all(t, conn)
                        if keys != sz.list_keys:
                            raise AssertionError(f"{t.name} listed {keys} keys, expected {sz.list_keys}")
                        p.work += keys
                        if time.perf_counter() - t0 >= sz.list_min_s:
                            break
                pages_seen[t.name] = pages
            finally:
                conn.close()
            return p.value
        return run_step

    res = await run.phase(["list"], [(t.name, step(t)) for t in targets], "list")
    fig = run.figure(
        "list", "keys/s", "key",
        f"ListObjectsV2 (MaxKeys 1000, continuation tokens) over a bucket of {sz.list_keys:,} "
        f"empty objects, full listings repeated for >= {sz.list_min_s} s",
        res, ("moto", "moto_server, the same bucket and keys: the S3 peer (an HTTP limit for "
              "listing does not exist)"),
        [("swift", "OpenStack Swift + s3api, the same bucket and keys (container DB in SQLite)")],
        "each page a boto3-presigned ListObjectsV2 URL (presigning counts as client CPU), "
        "fetched with http.client on one keep-alive connection; keys counted in the raw XML, "
        "NextContinuationToken by regex (no XML parser)")
    fig["setup"] = {"keys": sz.list_keys, "pages_per_listing": pages_seen,
                    "fill_puts_per_s": {t.name: round(f) for t, f in zip(targets, fill, strict=True)},
                    "fill_client": f"aiohttp, {CONCURRENCY} tasks, presigned PUTs of empty bodies"}
    return {"list": fig}


# -- driver ----------------------------------------------------------------------------------


# Issue 3's targets on this 2-core machine: (figure, reference, minimum ratio); reference
# None means an absolute minimum in the figure's unit.
TARGETS: list[tuple[str, str | None, float]] = [
    ("get_64m", "nginx", 1.0), ("put_64m", "nginx", 0.9), ("get_4k", "moto", 10.0),
    ("get_4k", "nginx", 0.2), ("put_4k", "moto", 5.0), ("list", None, 100_000.0),
]


def target_check(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the ratio measured in this run (None: its reference was skipped)."""
    out = []
    for name, ref, minimum in TARGETS:
        fig = figures.get(name, {})
        ratio: float | None
        if ref is None:
            ratio = fig.get("samebytes")
            what = f"{name} >= {minimum:,.0f} {fig.get('unit', '')}"
        else:
            what = f"{name} >= {minimum}x {ref}"
            if fig.get("limit_is", "").startswith(ref) and "skipped" not in fig.get("limit_is", ""):
                ratio = fig.get("ratio")
            else:
                ratio = fig.get("other_references", {}).get(ref, {}).get("samebytes_ratio")
        row: dict[str, Any] = {"target": what, "measured": ratio,
                               "met": None if ratio is None else ratio >= minimum}
        # A one-stream PUT answering with an MD5 ETag cannot outrun one core's MD5 of the
        # same bytes: where that ceiling sits below the target, the JSON says so.
        md5 = fig.get("other_references", {}).get("md5", {}).get("value")
        if ref is not None and md5 and fig.get("limit"):
            row["md5_ceiling_ratio"] = round(md5 / fig["limit"], 4)
            row["reachable_here"] = md5 / fig["limit"] >= minimum
        out.append(row)
    return out


PHASES_ORDER = ("small", "big", "list")
PHASES = frozenset(PHASES_ORDER)


async def run_all(data: Path, sz: Sizes, rounds: int, quick: bool, profile: bool,
                  servers: list[Server], peer_info: dict[str, Any],
                  only: frozenset[str] = PHASES, workers: int = 1) -> dict[str, Any]:
    skipped: dict[str, str] = {}
    ak, sk = "SBBENCH" + os.urandom(6).hex().upper()[:13], os.urandom(20).hex()
    log(f"starting samebytes ({workers} worker(s))")
    sb_srv = start_samebytes(data, ak, sk, workers)
    servers.append(sb_srv)
    peer_info["samebytes"] = sb_srv.info
    sb = Target("samebytes", sb_srv, _s3_client(sb_srv.endpoint, ak, sk))
    moto: Target | None = None
    try:
        log("starting moto")
        m_srv = start_moto(data)
        servers.append(m_srv)
        peer_info["moto"] = m_srv.info
        moto = Target("moto", m_srv, _s3_client(m_srv.endpoint, "testing", "testing"))
    except (LookupError, RuntimeError) as e:
        skipped["moto"] = str(e)
        peer_info["moto"] = {"skipped": str(e)}
        log(f"moto skipped: {e}")
    ngx: Server | None = None
    try:
        log("starting nginx")
        ngx = start_nginx(data, workers)
        servers.append(ngx)
        peer_info["nginx"] = ngx.info
    except (LookupError, RuntimeError) as e:
        skipped["nginx"] = str(e)
        peer_info["nginx"] = {"skipped": str(e)}
        log(f"nginx skipped: {e}")
    swift: Target | None = None
    try:
        log("starting swift")
        peer = start_swift(data)
        servers.append(cast(Server, peer))  # SwiftPeer has Server's surface
        peer_info["swift"] = peer.info
        swift = Target("swift", cast(Server, peer),
                       _s3_client(peer.endpoint, peer.access_key, peer.secret_key))
    except (LookupError, RuntimeError, OSError, subprocess.SubprocessError) as e:
        skipped["swift"] = str(e)
        peer_info["swift"] = {"skipped": str(e)}
        log(f"swift skipped: {e}")
    for t in (sb, moto, swift):
        if t is not None:
            t.s3.create_bucket(Bucket=BUCKET)
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        work = data / "client"
        work.mkdir()
        load = Load(work, session)
        if not load.wrk:
            skipped["wrk"] = "wrk not installed (apt-get install wrk): small ops use aiohttp"
        run = Run(sz, rounds, work, sb, moto, ngx, skipped, load, Meter(),
                  Profiler(profile, work, sb_srv), swift=swift)
        for name, coro in [("small", lambda: bench_small(run)), ("big", lambda: bench_big(run)),
                           ("list", lambda: bench_list(run, session))]:
            if name not in only:
                continue
            t0 = time.perf_counter()
            log(f"{name}: start")
            figures.update(await coro())
            timings[name] = round(time.perf_counter() - t0, 1)
            log(f"{name}: done in {timings[name]} s")
    for s in servers:
        s.check_alive()
    return {
        "benchmark": "s3",
        "mode": "quick" if quick else "full",
        "phases": [p for p in PHASES_ORDER if p in only],
        "machine": machine_info(data),
        "servers": peer_info,
        "skipped": skipped,
        "targets": target_check(figures),
        "clients": {
            "small_ops": load.describe(),
            "big": "blocking http.client (readinto a 1 MiB buffer / body in 1 MiB pieces), "
                   "one connection",
            "list": "boto3-presigned ListObjectsV2 pages fetched with http.client",
            "presigning": f"boto3 {_version('boto3')} generate_presigned_url, "
                          "Config(signature_version='s3v4'), valid for the whole run",
            "event_loop": "uvloop (uvloop.run) for the aiohttp parts",
        },
        "method": {
            "interleaving": f"in each round every target runs the same step back to back "
                            f"(samebytes, nginx, moto, swift; A B C D A B C D ...), {rounds} rounds; values "
                            "are medians over rounds; ratio = median(samebytes) / median(limit), "
                            "other_references[*].samebytes_ratio likewise",
            "phase_seconds": sz.phase_s,
            "concurrency": CONCURRENCY,
            "cpu": "per step, each divided by the step's wall time (= cores busy) or by its "
                   "work, medians over rounds: the server process (all threads; kernel part "
                   "apart) and its main thread from /proc/PID/stat; the client (this process "
                   "+ wrk, getrusage); the whole machine from /proc/stat. kernel_other = "
                   "machine kernel time not in server or client (journal and writeback "
                   "threads, interrupts); other_processes = machine user time not in server or "
                   "client (foreign load). 'bottleneck' reads these with 0.85-core thresholds",
            "warm_up": "one unrecorded 1 s GET and PUT run per target, one 64 MiB PUT",
            "profiled": profile,
        },
        "figures": figures,
        "seconds_per_phase": timings,
    }


def main(argv: list[str] | None = None) -> None:
    p = parser("samebytes S3 door benchmark (beside moto, nginx and Swift, interleaved)")
    p.add_argument("--profile", action="store_true",
                   help="attach py-spy to the samebytes server per figure (perturbs figures)")
    p.add_argument("--only", default=",".join(PHASES_ORDER),
                   help="comma list of phases to run (small, big, list; default all): "
                        "e.g. --only big while working on the 64 MiB figures")
    p.add_argument("--workers", type=int, default=NCPU,
                   help="serving processes for samebytes (--workers) and nginx "
                        "(worker_processes) alike (default: the usable cores)")
    opts = p.parse_args(argv)
    only = frozenset(x.strip() for x in opts.only.split(",") if x.strip())
    if not only or not only <= PHASES:
        p.error(f"--only: choose from {', '.join(PHASES_ORDER)}")
    rounds = max(3, opts.rounds or (3 if opts.quick else 5))
    sz = Sizes.pick(opts.quick)
    data = make_data_dir(opts.data, "s3")
    log(f"data dir {data} ({'quick' if opts.quick else 'full'}, {rounds} rounds)")
    t0 = time.perf_counter()
    servers: list[Server] = []
    peer_info: dict[str, Any] = {}
    try:
        doc = uvloop.run(run_all(data, sz, rounds, opts.quick, opts.profile, servers, peer_info,
                                 only, max(1, opts.workers)))
    except BaseException:
        for s in servers:
            log(f"{s.name} log tail:\n{s.log_tail(2000)}")
        raise
    finally:
        for s in reversed(servers):
            rc = s.stop()
            log(f"stopped {s.name} (exit {rc})")
        remove_data_dir(data, opts.keep)
    doc["total_seconds"] = round(time.perf_counter() - t0, 1)
    emit(doc)


if __name__ == "__main__":
    main()
