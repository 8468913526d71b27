"""Combining CRCs of adjacent byte strings: crc(A + B) from crc(A), crc(B) and len(B).

Pure arithmetic, no I/O. A FULL_OBJECT multipart checksum is the CRC of the whole
object, while each part arrives with the CRC of its own bytes; combining the part CRCs
gives the object's CRC without reading a byte again (Complete copies no bytes).

The method is zlib's crc32_combine (Mark Adler): appending len(B) zero bytes to A
multiplies its CRC register by x^(8*len(B)) modulo the CRC polynomial, computed in
O(log len) multiplications from a table of x^(2^k); then B's CRC is added (XOR). It
holds for every reflected CRC whose initial value equals its final XOR, as CRC32,
CRC32C and CRC64NVME all do (all ones), since those constants cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["combine", "combine_all", "CRC_WIDTH"]


@dataclass(frozen=True, slots=True)
class _Crc:
    width: int
    poly: int  # reflected polynomial
    table: tuple[int, ...]  # x^(2^k) mod poly, reflected, for k = 0..width-1


def _multiply(a: int, b: int, width: int, poly: int) -> int:
    """a * b modulo poly, both reflected (bit width-1 is x^0)."""
    m = 1 << (width - 1)
    p = 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1


def _make(width: int, poly: int) -> _Crc:
    table = [1 << (width - 2)]  # x^1
    for _ in range(1, width):
        table.append(_multiply(table[-1], table[-1], width, poly))
    return _Crc(width, poly, tuple(table))


_CRCS = {
    "CRC32": _make(32, 0xEDB88320),
    "CRC32C": _make(32, 0x82F63B78),
    "CRC64NVME": _make(64, 0x9A6C9329AC4BC9B5),
}
CRC_WIDTH: dict[str, int] = {name: c.width for name, c in _CRCS.items()}


@lru_cache(maxsize=256)  # parts mostly share one size: one power per upload
def _x_8n(c: _Crc, n: int) -> int:
    """x^(8n) mod poly: the multiplier that appends n zero bytes."""
    p = 1 << (c.width - 1)  # x^0
    k = 3  # x^(2^3) = x^8: one byte
    while n:
        if n & 1:
            p = _multiply(c.table[k % c.width], p, c.width, c.poly)
        n >>= 1
        k += 1
    return p


def combine(algorithm: str, crc_a: int, crc_b: int, len_b: int) -> int:
    """The CRC of A followed by B."""
    c = _CRCS[algorithm]
    if len_b < 0:
        raise ValueError("a length cannot be negative")
    return _multiply(_x_8n(c, len_b), crc_a, c.width, c.poly) ^ crc_b


def combine_all(algorithm: str, parts: list[tuple[int, int]]) -> int:
    """The CRC of the concatenation of parts given as (crc, length), in order."""
    if algorithm not in _CRCS:
        raise KeyError(algorithm)
    crc = 0  # the CRC of nothing: init XOR final XOR = 0 for these CRCs
    for part_crc, length in parts:
        crc = combine(algorithm, crc, part_crc, length)
    return crc
