"""`samebytes serve`: the doors on one uvloop event loop, and their lifecycle.

Start: open metadata and chunks, make sure the root inode and root identity exist,
bind the S3 port, print where it listens and the root credentials.
Stop (SIGTERM/SIGINT): stop accepting, let in-flight requests finish, flush open
files, close the chunk store and LMDB.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from chunkstore.select import BackendSpec

from .config import Credentials, root_credentials
from .http_deadlines import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, marks_requests, start_server
from .vfs import DEFAULT_CHUNK_SIZE, DEFAULT_GRACE_SECONDS, Filesystem, FsError, collect

log = logging.getLogger("samebytes")

# The health endpoints live under a path segment no bucket can be named
# (bucket names cannot contain '_'), so they never shadow a bucket.
HEALTH_PREFIX = "/_samebytes/health"
# In-flight requests get this long to finish on SIGTERM.
SHUTDOWN_TIMEOUT = 30.0
# Idle keep-alive connections are closed after this (aiohttp's default is an hour).
KEEPALIVE_TIMEOUT = 75.0


@dataclass(frozen=True, slots=True)
class ServeConfig:
    data: Path
    s3_host: str = "127.0.0.1"
    s3_port: int = 9000
    chunk_size: int = DEFAULT_CHUNK_SIZE
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    gc_interval: float = 60.0
    region: str = "us-east-1"
    domain: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    mount: Path | None = None  # also mount the namespace here with FUSE
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # a request head must arrive within
    body_timeout: float = DEFAULT_BODY_TIMEOUT      # idle seconds allowed inside a body
    nfs: tuple[str, int] | None = None  # NFSv3 + MOUNT listen address; None: no NFS door
    exports: tuple[str, ...] = ()  # --export specs (default "/")
    portmap: tuple[str, int] | None = None  # optional portmapper listen address
    chunks: BackendSpec | None = None  # None: local chunks in the data folder
    workers: int = 1  # S3 door processes on the one port (gateway/prefork.py)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


async def live(request: web.BaseRequest, worker: int) -> web.Response:
    # Which process answered: with --workers N, each connection is served by one of them.
    return web.json_response({"status": "live", "worker": worker, "pid": os.getpid()})


async def ready(request: web.BaseRequest, fs: Filesystem) -> web.Response:
    try:
        await fs.ready()
    except Exception as e:  # any failure means "not ready", with the reason
        return web.json_response({"status": "not ready", "reason": str(e)}, status=503)
    return web.json_response({"status": "ready"})


def build_app(fs: Filesystem, cfg: ServeConfig, worker: int = 0) -> web.Server:
    """The S3 port's handler as aiohttp's low-level server: GET/HEAD of the two health
    paths, everything else to the S3 door. No Application, router or middleware chain:
    they cost a 4 KiB GET more than the door's whole dispatch (measured in-process)."""
    from .s3.app import S3Door
    door = S3Door(fs, region=cfg.region, domain=cfg.domain, body_timeout=cfg.body_timeout)
    live_path, ready_path = HEALTH_PREFIX + "/live", HEALTH_PREFIX + "/ready"

    async def after_expect(request: web.BaseRequest) -> web.StreamResponse:
        await expect_continue(request)
        return await door.handle(request)

    def handle(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        # Not a coroutine itself: it hands back the one to await (a layer less a request).
        if request.raw_path.startswith(HEALTH_PREFIX) and request.method in ("GET", "HEAD"):
            path = request.path
            if path == live_path:
                return live(request, worker)
            if path == ready_path:
                return ready(request, fs)
        if request.headers.get(hdrs.EXPECT):
            return after_expect(request)
        return door.handle(request)

    # Bodies are streamed by the door, never read whole: nothing here buffers a body.
    # auto_decompress off: S3 stores a body sent with Content-Encoding: gzip as the bytes
    # sent (pre-compressed assets); aiohttp would inflate it before the door reads it.
    return web.Server(marks_requests(handle), access_log=None, auto_decompress=False,
                      keepalive_timeout=KEEPALIVE_TIMEOUT)


async def expect_continue(request: web.BaseRequest) -> None:
    """What aiohttp's router did for an `Expect` header before the handler ran: `100
    Continue` for HTTP/1.1 `100-continue`, 417 for any other expectation."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == HttpVersion11:
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
    await request.writer.drain()


async def _collector(fs: Filesystem, cfg: ServeConfig) -> None:
    while True:
        await asyncio.sleep(cfg.gc_interval)
        try:
            report = await collect(fs, cfg.grace_seconds)
            if any(report.as_dict().values()):
                log.info("collector: %s", report.as_dict())
        except FsError:
            log.exception("collector run failed")


def _mount_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the FUSE mount failed", exc_info=task.exception())


def _announce(cfg: ServeConfig, creds: Credentials, port: int, nfs: str | None = None) -> None:
    print(json.dumps({
        "event": "listening",
        "s3": f"{cfg.scheme}://{cfg.s3_host}:{port}",
        "nfs": nfs,
        "workers": cfg.workers,
        "data": str(cfg.data),
        "access_key": creds.access_key,
        "secret_key": creds.secret_key,
        "credentials": "generated and saved in the data folder" if creds.generated
        else "from the environment or the data folder",
    }), flush=True)


def open_fs(cfg: ServeConfig) -> Filesystem:
    return Filesystem.from_data_dir(cfg.data, chunk_size=cfg.chunk_size,
                                    grace_seconds=cfg.grace_seconds, chunks=cfg.chunks)


async def prepare(cfg: ServeConfig, fs: Filesystem) -> Credentials:
    """What one process does once before serving: the root inode and root identity."""
    creds = root_credentials(cfg.data)
    await fs.start()
    await fs.put_identity(creds.access_key, creds.secret_key, uid=0, gid=0, name="root")
    return creds


async def serve(cfg: ServeConfig, *, worker: int = 0, sock: socket.socket | None = None,
                creds: Credentials | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Alone (sock None) this process is the whole gateway;
    as a pre-forked worker it serves the S3 door on sock, and worker 0 alone also runs
    the NFS door, the FUSE mount, the collector and prints the announcement."""
    fs = open_fs(cfg)
    try:
        if creds is None:
            creds = await prepare(cfg, fs)
        runner = web.ServerRunner(build_app(fs, cfg, worker), handle_signals=False,
                                  shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        ssl_ctx = None
        if cfg.tls_cert:
            import ssl
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        listener = await start_server(runner, cfg.s3_host, cfg.s3_port, ssl=ssl_ctx,
                                      header_timeout=cfg.header_timeout, sock=sock)
        port = listener.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        nfs = None
        lead = worker == 0
        if cfg.nfs is not None and lead:
            from .nfs.service import start_nfs
            nfs = await start_nfs(fs, cfg.data, cfg.nfs[0], cfg.nfs[1], list(cfg.exports), cfg.portmap)
        if lead:
            _announce(cfg, creds, port, f"{cfg.nfs[0]}:{nfs.port}" if cfg.nfs and nfs else None)
        collector = asyncio.create_task(_collector(fs, cfg)) if lead else None
        mounter = None
        if cfg.mount is not None and lead:
            from .fuse.mount import mount
            mounter = asyncio.create_task(mount(fs, cfg.mount))
            mounter.add_done_callback(_mount_ended)
        await stop.wait()
        log.info("stopping: finishing in-flight requests")
        if collector is not None:
            collector.cancel()
        if mounter is not None:
            from .fuse.mount import unmount
            unmount()
            try:
                await asyncio.wait_for(mounter, SHUTDOWN_TIMEOUT)
            except Exception:
                log.exception("unmounting %s", cfg.mount)
        listener.close()
        if nfs is not None:
            await nfs.aclose()
        await runner.cleanup()
    finally:
        await fs.aclose()
    log.info("stopped")


def run(cfg: ServeConfig) -> None:
    import uvloop

    from .heap import keep_freed_buffers
    keep_freed_buffers()  # before any fork: workers inherit it
    try:
        if cfg.workers > 1:
            from .prefork import supervise
            raise SystemExit(supervise(cfg))
        uvloop.run(serve(cfg))
    except OSError as e:
        print(f"samebytes: {e}", file=sys.stderr)
        raise SystemExit(1) from e
