"""`samebytes serve --workers N`: N processes serving the S3 door on one port.

One Python process spends one core; the S3 door's small requests are CPU-bound, so a
machine with more cores serves more of them with more processes. The parent does what
must happen once (credentials, root inode, root identity, the backend check), binds N
listening sockets on the one port with SO_REUSEPORT (the kernel spreads new connections
over them by their address hash) and forks one worker per socket. Every worker opens
LMDB and the chunk store itself after the fork (an LMDB environment must not cross a
fork): they share the data folder exactly as `serve` and a separate `mount` do, through
LMDB's inter-process locking and the change log. Worker 0 alone runs the NFS door, the
FUSE mount and the collector, and prints the announcement.

The parent keeps its copy of every socket, so a worker that dies is replaced on the same
socket and the connections the kernel queued on it meanwhile are served by the new one.
Worker 0 (which owns the mount and NFS) dying, or any worker dying within
MIN_UPTIME of its start, stops the whole gateway with an error instead: an orchestrator
restarting a failed gateway is clearer than a loop of failing workers.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .config import Credentials

if TYPE_CHECKING:
    from .server import ServeConfig

log = logging.getLogger("samebytes")

MIN_UPTIME = 5.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_PDEATHSIG = 1


def listen_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """count listening sockets on host:port (port 0: one free port for all of them)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    # SO_REUSEPORT would also let these sockets join another server's group on the port
    # (same uid): a plain bind first fails with "Address already in use" if anything
    # listens there, as a single-process gateway would.
    with socket.create_server((host, port), family=family) as probe:
        port = probe.getsockname()[1]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_server((host, port), family=family, backlog=1024, reuse_port=True)
            port = s.getsockname()[1]
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _die_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervisor dies (even by SIGKILL): no orphan
    keeps serving a port nobody supervises."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _run_worker(cfg: ServeConfig, index: int, sock: socket.socket, creds: Credentials) -> int:
    import uvloop

    from .server import serve
    try:
        uvloop.run(serve(cfg, worker=index, sock=sock, creds=creds))
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", index)
        return 1


def _fork(cfg: ServeConfig, index: int, socks: list[socket.socket], creds: Credentials) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    # Signals stay blocked across the fork, so none reaches the child before it has
    # dropped the parent's handlers.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        return pid
    code = 1
    try:
        for sig in _SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        _die_with_parent(parent)
        for i, s in enumerate(socks):
            if i != index:
                s.close()
        code = _run_worker(cfg, index, socks[index], creds)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def supervise(cfg: ServeConfig) -> int:
    """Run cfg.workers workers until SIGTERM/SIGINT; the exit status for the command."""
    import uvloop

    from .server import open_fs, prepare

    n = cfg.workers
    if cfg.chunks is not None and cfg.chunks.kind == "s3":
        # Each worker keeps its own cache index: together they stay within --cache-size.
        cfg = replace(cfg, chunks=replace(cfg.chunks, cache_size=cfg.chunks.cache_size // n))

    async def once() -> Credentials:
        fs = open_fs(cfg)
        try:
            return await prepare(cfg, fs)
        finally:
            await fs.aclose()

    creds = uvloop.run(once())
    socks = listen_sockets(cfg.s3_host, cfg.s3_port, n)
    cfg = replace(cfg, s3_port=socks[0].getsockname()[1])
    stopping = False
    status = 0
    children: dict[int, int] = {}   # pid -> worker index
    started: dict[int, float] = {}  # worker index -> when it was forked

    def stop_all(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for sig in _SIGNALS:
        signal.signal(sig, stop_all)
    try:
        for i in range(n):
            children[_fork(cfg, i, socks, creds)] = i
            started[i] = time.monotonic()
        while children:
            pid, wstatus = os.wait()
            index = children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(wstatus)
            if stopping:
                status = status or (code if code > 0 else 0)
                continue
            if index == 0 or time.monotonic() - started[index] < MIN_UPTIME:
                log.error("worker %d (pid %d) exited (%d): stopping the gateway", index, pid, code)
                status = code if code > 0 else 1
                stop_all()
                continue
            log.warning("worker %d (pid %d) exited (%d): starting a new one", index, pid, code)
            children[_fork(cfg, index, socks, creds)] = index
            started[index] = time.monotonic()
    finally:
        stop_all()
        for s in socks:
            s.close()
    return status
