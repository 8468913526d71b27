"""gateway.s3.checksums against botocore's own checksum classes (the values boto3 sends and checks)."""

from __future__ import annotations

import base64

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.s3 import checksums
from gateway.s3.checksums import ALGORITHMS, HEADER, Checksum, algorithm_for_header, valid_b64

ORACLE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}
SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}


def oracle_b64(alg: str, data: bytes) -> str:
    h = ORACLE[alg]()
    h.update(data)
    return str(h.b64digest())


def test_algorithms_and_headers() -> None:
    assert ALGORITHMS == ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
    assert HEADER == {
        "CRC32": "x-amz-checksum-crc32",
        "CRC32C": "x-amz-checksum-crc32c",
        "CRC64NVME": "x-amz-checksum-crc64nvme",
        "SHA1": "x-amz-checksum-sha1",
        "SHA256": "x-amz-checksum-sha256",
    }


@pytest.mark.parametrize(
    ("alg", "data", "expected"),
    [
        ("CRC32", b"hello", "NhCmhg=="),  # FACTS.md: what boto3 sends for "hello"
        ("CRC32", b"", "AAAAAA=="),
        ("CRC32C", b"", "AAAAAA=="),
        ("CRC64NVME", b"", "AAAAAAAAAAA="),
        ("SHA1", b"", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        ("SHA256", b"", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        # The AWS SigV4 trailer example: 66,560 bytes of "a" carry x-amz-checksum-crc32c:sOO8/Q==
        ("CRC32C", b"a" * 66560, "sOO8/Q=="),
        # CRC catalogue check values over "123456789"
        ("CRC32", b"123456789", base64.b64encode(bytes.fromhex("cbf43926")).decode()),
        ("CRC32C", b"123456789", base64.b64encode(bytes.fromhex("e3069283")).decode()),
        ("CRC64NVME", b"123456789", base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode()),
    ],
)
def test_known_vectors(alg: str, data: bytes, expected: str) -> None:
    h = Checksum(alg)
    h.update(data)
    assert h.b64() == expected
    assert oracle_b64(alg, data) == expected


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_empty_matches_oracle_and_digest_size(alg: str) -> None:
    h = Checksum(alg)
    assert h.algorithm == alg
    assert h.b64() == oracle_b64(alg, b"")
    assert len(h.digest()) == SIZES[alg]
    assert valid_b64(alg, h.b64())


@settings(max_examples=150, deadline=None)
@given(
    alg=st.sampled_from(ALGORITHMS),
    data=st.binary(max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=8),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_streaming_matches_botocore(alg: str, data: bytes, cuts: list[int], kind: type) -> None:
    h = Checksum(alg)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in zip(points, points[1:]):
        h.update(kind(data[a:b]))
    assert h.b64() == oracle_b64(alg, data)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_large_input_in_pieces(alg: str) -> None:
    data = bytes(range(256)) * 20_000  # ~5 MiB: the CRCs are 64-bit / 32-bit state, no overflow
    h = Checksum(alg)
    for i in range(0, len(data), 131_072):
        h.update(memoryview(data)[i:i + 131_072])
    assert h.b64() == oracle_b64(alg, data)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_b64_does_not_finalize(alg: str) -> None:
    h = Checksum(alg)
    h.update(b"hel")
    first = h.b64()
    assert h.b64() == first
    h.update(b"lo")
    assert h.b64() == oracle_b64(alg, b"hello")


@pytest.mark.parametrize("bad", ["crc32", "MD5", "", "CRC64", "SHA512", "XXHASH64"])
def test_unknown_algorithm(bad: str) -> None:
    with pytest.raises(ValueError):
        Checksum(bad)
    with pytest.raises(ValueError):
        valid_b64(bad, "AAAAAA==")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("x-amz-checksum-crc32", "CRC32"),
        ("x-amz-checksum-crc32c", "CRC32C"),
        ("X-Amz-Checksum-CRC64NVME", "CRC64NVME"),
        ("x-amz-checksum-sha1", "SHA1"),
        ("x-amz-checksum-sha256", "SHA256"),
        ("x-amz-checksum-type", None),
        ("x-amz-checksum-mode", None),
        ("x-amz-checksum-algorithm", None),
        ("x-amz-sdk-checksum-algorithm", None),
        ("x-amz-checksum-md5", None),
        ("x-amz-checksum-", None),
        ("content-md5", None),
        ("", None),
    ],
)
def test_algorithm_for_header(name: str, expected: str | None) -> None:
    assert algorithm_for_header(name) == expected


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_valid_b64_lengths(alg: str) -> None:
    size = SIZES[alg]
    assert valid_b64(alg, base64.b64encode(b"\x01" * size).decode())
    assert not valid_b64(alg, base64.b64encode(b"\x01" * (size - 1)).decode())
    assert not valid_b64(alg, base64.b64encode(b"\x01" * (size + 1)).decode())
    assert not valid_b64(alg, "")


@pytest.mark.parametrize(
    "value",
    ["NhCmhg", "NhCmhg=", "NhCm hg==", "NhCmhg==\n", "NhC*hg==", "Nh-mhg==", "ÑhCmhg==", "NhCmhg===", "====="],
)
def test_valid_b64_rejects_malformed(value: str) -> None:
    assert not valid_b64("CRC32", value)


def test_valid_b64_accepts_what_boto3_sends() -> None:
    assert valid_b64("CRC32", "NhCmhg==")
    assert valid_b64("CRC64NVME", "AAAAAAAAAAA=")
    assert checksums.DIGEST_SIZE == SIZES
