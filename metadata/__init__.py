"""The metadata namespace: a typed schema over a transactional KV engine (LMDB)."""

from pathlib import Path

from .engine import DEFAULT_MAP_SIZE, EngineError, EngineIOError, LmdbEngine, Txn
from .schema import DBS, FLAG_IMPLICIT, FLAG_MARKER, INLINE_MAX, ROOT_INO, Extent, Inode


def open_engine(path: Path, *, map_size: int = DEFAULT_MAP_SIZE, sync: bool = True) -> LmdbEngine:
    """Open (creating if needed) the metadata environment at path."""
    return LmdbEngine(path, DBS, map_size=map_size, sync=sync)


__all__ = [
    "DBS", "DEFAULT_MAP_SIZE", "EngineError", "EngineIOError", "Extent", "FLAG_IMPLICIT",
    "FLAG_MARKER", "INLINE_MAX", "Inode", "LmdbEngine", "ROOT_INO", "Txn", "open_engine",
]
