"""The NFS door assembled: exports, handles, MOUNT, NFSv3 and (optionally) a portmapper,
listening beside the S3 door on the same event loop."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..vfs import Filesystem
from .exports import Exports
from .handles import Handles, load_key
from .mount3 import Mount3
from .portmap import portmap_program
from .rpc import Registry
from .server import RpcServer

log = logging.getLogger(__name__)


def new_write_verifier() -> bytes:
    """8 bytes that differ on every start: clients resend UNSTABLE writes a crash lost."""
    return time.time_ns().to_bytes(8, "big")[:4] + secrets.token_bytes(4)


@dataclass
class NfsService:
    port: int
    portmap_port: int | None
    exports: Exports
    _servers: list[RpcServer] = field(default_factory=list)
    _door: Any = None

    async def aclose(self) -> None:
        for s in self._servers:
            await s.aclose()
        if self._door is not None:
            await self._door.aclose()  # flushes the NFS open files


async def start_nfs(fs: Filesystem, data_dir: Path, host: str, port: int, export_specs: list[str],
                    portmap: tuple[str, int] | None = None) -> NfsService:
    from .nfs3 import nfs3_program
    exports = Exports.parse(export_specs)
    handles = Handles(load_key(data_dir), exports)
    mount = Mount3(fs, exports, handles)
    await mount.resolve_roots()
    program, door = nfs3_program(fs, handles, exports, new_write_verifier())
    nfs = RpcServer(Registry([program, mount.program()]))
    bound = await nfs.start(host, port)
    svc = NfsService(bound, None, exports, [nfs], door)
    if portmap is not None:
        pm = RpcServer(Registry([portmap_program(bound)]))
        svc.portmap_port = await pm.start(*portmap)
        svc._servers.append(pm)
    log.info("NFS on %s:%d (exports: %s)", host, bound, ", ".join(e.path for e in exports))
    return svc
