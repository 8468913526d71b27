"""NFS file handles: opaque to clients, stable across restarts, unforgeable.

Layout (33 bytes, under NFS3_FHSIZE = 64):

    version u8 | export id u32 | inode u64 | generation u32 | mac 16 bytes

The mac is HMAC-SHA256 over the first 17 bytes, truncated to 128 bits, under a
random key created once in the data folder (DATA/nfs-handle.key, mode 0600), so
handles survive a restart and a client cannot make one up or move one to
another export. The export id is derived from the export's path, so the same
`--export` list gives the same handles after a restart; a handle of an export
no longer served is refused.

Inode numbers come from a counter that is never reused (metadata.namespace
alloc_ino), so ino alone names one file for ever; the generation (the inode's
stored `generation`, 0 today) is carried as well so a future engine that
recycles numbers only has to bump it. A handle that decodes but whose inode is
gone (or has another generation, or nlink 0) is the caller's NFS3ERR_STALE;
everything refused here is NFS3ERR_BADHANDLE.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

KEY_FILE = "nfs-handle.key"
KEY_BYTES = 32
VERSION = 1
MAC_BYTES = 16  # 128 bits: forging one is a 2^-128 guess per try
_BODY = struct.Struct(">BIQI")
HANDLE_BYTES = _BODY.size + MAC_BYTES
MAX_HANDLE = 64  # NFS3_FHSIZE


class BadHandle(ValueError):
    """Not a handle this gateway issued for an export it serves."""


class HasExportId(Protocol):
    @property
    def export_id(self) -> int: ...


E = TypeVar("E", bound=HasExportId)


def load_key(data_dir: Path) -> bytes:
    """The handle key, created once (written to a temporary file, fsync'd, renamed)."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        # link, not replace: if another process created the key meanwhile, keep theirs
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        dfd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
    return key


def export_id(path: str) -> int:
    """A stable 32-bit id for an export path (the same path, the same id)."""
    return int.from_bytes(hashlib.sha256(b"samebytes-export:" + path.encode()).digest()[:4], "big")


class Handles(Generic[E]):
    """Encodes and checks handles for a fixed set of exports."""

    def __init__(self, key: bytes, exports: Iterable[E]) -> None:
        self._key = key
        self._exports: dict[int, E] = {}
        for e in exports:
            if e.export_id in self._exports:
                raise ValueError(f"two exports with id {e.export_id:#x}")
            self._exports[e.export_id] = e

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:MAC_BYTES]

    def encode(self, export: E, ino: int, generation: int = 0) -> bytes:
        body = _BODY.pack(VERSION, export.export_id, ino, generation & 0xFFFF_FFFF)
        return body + self._mac(body)

    def decode(self, fh: bytes | bytearray | memoryview) -> tuple[E, int, int]:
        """(export, inode, generation) of a handle we issued; BadHandle otherwise."""
        fh = bytes(fh)
        if len(fh) != HANDLE_BYTES:
            raise BadHandle(f"handle of {len(fh)} bytes")
        body, mac = fh[:_BODY.size], fh[_BODY.size:]
        if not hmac.compare_digest(self._mac(body), mac):
            raise BadHandle("handle fails its mac")
        version, eid, ino, gen = _BODY.unpack(body)
        if version != VERSION:
            raise BadHandle(f"handle version {version}")
        export = self._exports.get(eid)
        if export is None:
            raise BadHandle("handle of an export not served")
        return export, ino, gen
