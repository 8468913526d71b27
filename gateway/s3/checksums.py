"""S3 flexible checksums (x-amz-checksum-*): streaming hashers and header helpers.

Pure: no I/O. Values are what S3 and the SDKs exchange: base64 of the big-endian
digest (CRC32 "hello" -> "NhCmhg=="). CRC32C and CRC64NVME come from awscrt, the
same C runtime botocore uses for them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Any

from awscrt import checksums as _crt

ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
HEADER: dict[str, str] = {alg: f"x-amz-checksum-{alg.lower()}" for alg in ALGORITHMS}
DIGEST_SIZE: dict[str, int] = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
_BY_HEADER: dict[str, str] = {h: alg for alg, h in HEADER.items()}

Buffer = bytes | bytearray | memoryview


class Checksum:
    """Streaming hasher for one S3 checksum algorithm."""

    __slots__ = ("algorithm", "_crc", "_hash")

    def __init__(self, algorithm: str) -> None:
        if algorithm not in DIGEST_SIZE:
            raise ValueError(f"unknown checksum algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._crc = 0
        self._hash: Any = hashlib.new(algorithm.lower()) if algorithm.startswith("SHA") else None

    def update(self, data: Buffer) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "CRC32":
            self._crc = zlib.crc32(data, self._crc)
        elif self.algorithm == "CRC32C":
            self._crc = _crt.crc32c(data, self._crc)
        else:
            self._crc = _crt.crc64nvme(data, self._crc)

    def digest(self) -> bytes:
        """The raw digest (big-endian for the CRCs); the hasher stays usable."""
        if self._hash is not None:
            return bytes(self._hash.digest())
        return self._crc.to_bytes(DIGEST_SIZE[self.algorithm], "big")

    def b64(self) -> str:
        """Base64 of the digest, as S3 sends it in x-amz-checksum-* headers."""
        return base64.b64encode(self.digest()).decode("ascii")


def composite(algorithm: str, part_values: list[str]) -> str:
    """The COMPOSITE checksum of a multipart object: the algorithm over the concatenated
    raw part checksums, base64, then ``-N`` for N parts (what S3 returns for it)."""
    h = Checksum(algorithm)
    for value in part_values:
        h.update(base64.b64decode(value))
    return f"{h.b64()}-{len(part_values)}"


def checksum_type(value: str) -> str:
    """COMPOSITE for a multipart checksum (``...-N``), else FULL_OBJECT."""
    return "COMPOSITE" if "-" in value else "FULL_OBJECT"


def algorithm_for_header(name: str) -> str | None:
    """"x-amz-checksum-crc32c" -> "CRC32C"; None for any other header (including
    x-amz-checksum-type / -mode / -algorithm)."""
    return _BY_HEADER.get(name.strip().lower())


def valid_b64(algorithm: str, value: str) -> bool:
    """True if value is strict base64 of exactly the algorithm's digest size."""
    size = DIGEST_SIZE.get(algorithm)
    if size is None:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    return len(raw) == size
