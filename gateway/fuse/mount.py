"""Mount the namespace with pyfuse3 in asyncio mode, on the running (uvloop) loop.

`mount()` returns when the file system is unmounted (``fusermount3 -u``) or when
``unmount()`` is called (SIGTERM/SIGINT in the CLI). The caller flushes the vfs
(``await fs.aclose()``) afterwards.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from pathlib import Path

import pyfuse3
import pyfuse3.asyncio

from metadata.changes import THROUGH_MOUNT

from ..vfs import Filesystem
from .invalidate import KernelCache, register, tail, unregister
from .ops import ENTRY_TIMEOUT, NEGATIVE_TIMEOUT, Operations

log = logging.getLogger(__name__)

# 1 MiB requests: the lever for Python FUSE throughput (FACTS.md).
MAX_IO = 1 << 20


def mount_options(debug: bool = False) -> set[str]:
    opts = set(pyfuse3.default_options)
    opts.discard("default_permissions")  # the vfs checks permissions as the caller
    # (max_read is refused by pyfuse3: its init() leaves conn->max_read at 0; the
    # request size comes from max_pages (1 MiB with libfuse 3.14) and read_ahead_kb.)
    opts |= {"fsname=samebytes", "subtype=samebytes", "allow_other"}
    if debug:
        opts.add("debug")
    return opts


def _set_read_ahead(mountpoint: Path) -> None:
    """Ask the kernel for 1 MiB read-ahead on this mount (bdi read_ahead_kb)."""
    try:
        dev = os.stat(mountpoint).st_dev
        path = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
        with open(path, "w") as f:
            f.write(str(MAX_IO // 1024))
    except OSError as e:
        log.info("could not set read_ahead_kb on %s: %s", mountpoint, e)


_mounted = False


def _quiet_pyfuse3_reader_race(loop: asyncio.AbstractEventLoop) -> None:
    """pyfuse3.asyncio's wait_readable registers ``future.set_result`` as the /dev/fuse
    reader and removes it only in a done-callback, one loop turn later: when the fd
    is readable again meanwhile (or at close, after notify_closing), the loop calls
    set_result on a finished future and logs an InvalidStateError traceback. Harmless
    (the request is read by another worker); log it at debug instead."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:  # type: ignore[type-arg]
        if (isinstance(context.get("exception"), asyncio.InvalidStateError)
                and "set_result" in repr(context.get("handle"))):
            log.debug("pyfuse3 reader race: %s", context.get("message"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def mount(fs: Filesystem, mountpoint: Path, *, debug: bool = False,
                mounted: asyncio.Event | None = None) -> None:
    """Serve fs at mountpoint until unmounted. Only one mount per process (pyfuse3)."""
    global _mounted
    if _mounted:
        raise RuntimeError("pyfuse3 allows one mount per process")
    pyfuse3.asyncio.enable()
    _quiet_pyfuse3_reader_race(asyncio.get_running_loop())
    cache = KernelCache(max(ENTRY_TIMEOUT, NEGATIVE_TIMEOUT))
    ops = Operations(fs, cache)
    feed = fs.meta.changes
    # Other processes log their commits for us from here on, before the kernel asks.
    after = await register(fs.meta) if feed is not None else 0
    pyfuse3.init(ops, str(mountpoint), mount_options(debug))
    _mounted = True
    log.info("mounted at %s", mountpoint)
    # Other doors' commits invalidate the kernel's caches: this process's through the
    # engine's feed (right after each commit), other processes' through the log.
    cache.start()
    unsubscribe = feed.subscribe(cache.on_batch) if feed is not None else None
    follower = asyncio.ensure_future(tail(fs.meta, cache, after)) if feed is not None else None
    # The handlers' commits carry THROUGH_MOUNT: the kernel made them and knows them.
    handlers = contextvars.copy_context()
    handlers.run(THROUGH_MOUNT.set, True)
    main = asyncio.get_running_loop().create_task(pyfuse3.main(), context=handlers)
    try:
        # The stat goes through our own handlers: run it off the loop.
        await asyncio.to_thread(_set_read_ahead, mountpoint)
        if mounted is not None:
            mounted.set()
        await main
    finally:
        if not main.done():
            main.cancel()
        if follower is not None:
            follower.cancel()
        if unsubscribe is not None:
            unsubscribe()
        await asyncio.to_thread(cache.stop)  # before the session goes away
        pyfuse3.close(unmount=True)
        if feed is not None:
            try:
                await unregister(fs.meta)
            except Exception:  # the engine closing: the next mount clears it (process gone)
                log.warning("could not unregister from the change log", exc_info=True)
        _mounted = False
        log.info("unmounted %s", mountpoint)


def unmount() -> None:
    """Make a running mount() return (it unmounts on the way out)."""
    if _mounted:
        pyfuse3.terminate()
