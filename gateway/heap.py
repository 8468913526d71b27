"""Keep freed chunk-sized buffers in the process heap instead of handing them back to the
kernel after every request.

A large PUT or GET allocates and frees a stream of MiB-sized buffers (request body pieces,
4 MiB chunk buffers, chunks read from disk or fetched from a store). glibc's defaults
return them to the kernel: a buffer above the mmap threshold is unmapped when freed, and
the heap's free top is trimmed (brk) once it passes the trim threshold, which its dynamic
tuning sets to only twice the largest buffer freed so far. With about a dozen chunk
buffers in flight per upload the next request then faults every page in again, zeroed by
the kernel: measured on a 64 MiB PUT through a gateway on the s3 chunk backend, 29k minor
faults per request and about 1 ms of CPU per MB in the kernel (page faults, clear_page,
munmap), a fifth of the gateway's CPU; with the settings below 0.4k faults and 0.45 ms/MB
less kernel time, in the gateway and in a second gateway serving as its store.

The price is memory: up to TRIM_THRESHOLD of freed heap may stay with the process after a
burst of uploads (it is reused by the next one, and the kernel may still reclaim it under
pressure only by swapping: size the container with this in mind).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations below this come from the heap and are reused after free. glibc's dynamic
# threshold stops rising at 32 MiB too (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit); a fixed
# value also keeps the first requests after start from paying for the tuning to settle.
MMAP_THRESHOLD = 32 << 20
# Free heap kept at its top before it is given back: about three concurrent 64 MiB
# uploads' worth of chunk buffers (write-ahead 8 + the one filling, 4 MiB each).
TRIM_THRESHOLD = 128 << 20


def keep_freed_buffers() -> bool:
    """Apply the thresholds above to this process (and children forked later). True when
    applied; False where the C library has no glibc mallopt (then nothing changes)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Order matters: setting M_MMAP_THRESHOLD also switches off glibc's dynamic tuning,
    # which would otherwise move the trim threshold again on the next large free.
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    if not ok:
        log.debug("mallopt refused the heap thresholds; keeping the C library's defaults")
    return ok


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_buffers"]
