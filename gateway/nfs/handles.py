"""NFS file handles: opaque to clients, stable across restarts, unforgeable.

Layout (37 bytes; RFC 1813 allows 64):

    version (1) | export id (4) | inode (8) | generation (8) | HMAC-SHA256 (16)

The export id is derived from the export's path, so a handle survives a restart with
the same ``--export`` list in any order. The MAC, under a random key kept in the data
folder (``nfs-handle.key``, 0600, made once), covers everything before it: a client
cannot forge a handle nor move one to another export. Inode numbers are never reused
and the generation is the inode's, so a deleted file's handle finds no inode (or a
different generation) and is STALE, never another file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .exports import Export, Exports

VERSION = 1
KEY_FILE = "nfs-handle.key"
_BODY = struct.Struct(">B4sQQ")
MAC_SIZE = 16
SIZE = _BODY.size + MAC_SIZE


class BadHandle(ValueError):
    """Not a handle this server made (forged, altered, truncated, unknown export)."""


def export_id(path: str) -> bytes:
    return hashlib.sha256(b"samebytes-export:" + path.encode()).digest()[:4]


def load_or_create_key(data_dir: Path) -> bytes:
    """The handle key of this data folder; made once, atomically (several processes
    may start on one folder at the same time: the first rename wins, all read it)."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        dfd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        key = path.read_bytes()
    if len(key) != 32:
        raise ValueError(f"{path} is damaged: expected 32 bytes, found {len(key)}")
    return key


class HandleCodec:
    def __init__(self, key: bytes, exports: Exports) -> None:
        self._key = key
        self._exports = {e.id: e for e in exports}

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:MAC_SIZE]

    def encode(self, export: Export, ino: int, gen: int) -> bytes:
        body = _BODY.pack(VERSION, export.id, ino, gen)
        return body + self._mac(body)

    def decode(self, fh: bytes) -> tuple[Export, int, int]:
        """(export, inode, generation); BadHandle for anything we did not make."""
        if len(fh) != SIZE:
            raise BadHandle(f"a handle is {SIZE} bytes, not {len(fh)}")
        body, mac = bytes(fh[:_BODY.size]), bytes(fh[_BODY.size:])
        if not hmac.compare_digest(mac, self._mac(body)):
            raise BadHandle("handle authentication failed")
        version, eid, ino, gen = _BODY.unpack(body)
        if version != VERSION:
            raise BadHandle(f"handle version {version}")
        export = self._exports.get(eid)
        if export is None:
            raise BadHandle("the handle's export is no longer exported")
        return export, ino, gen
