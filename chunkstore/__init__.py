"""Immutable byte chunks by 64-bit id: the interface and the local-directory backend."""

from .base import (
    BLOCK_SIZE,
    SUM_SIZE,
    ChunkCorrupt,
    ChunkError,
    ChunkInfo,
    ChunkMissing,
    ChunkStore,
    ChunkStoreFull,
    ChunkUnavailable,
    block_sums,
    chunk_name,
    verify_blocks,
)
from .local import LocalChunkStore, remove_stale_temp_files

__all__ = [
    "BLOCK_SIZE", "SUM_SIZE", "ChunkCorrupt", "ChunkError", "ChunkInfo", "ChunkMissing",
    "ChunkStore", "ChunkStoreFull", "ChunkUnavailable", "LocalChunkStore", "block_sums", "chunk_name",
    "remove_stale_temp_files", "verify_blocks",
]
