"""crc_combine: the CRC of A + B from the CRCs of A and B, for S3's three CRCs."""

from __future__ import annotations

import zlib

import pytest
from awscrt import checksums as crt
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.s3.crc_combine import combine, combine_all

CRC = {
    "CRC32": lambda d: zlib.crc32(d),
    "CRC32C": lambda d: crt.crc32c(d),
    "CRC64NVME": lambda d: crt.crc64nvme(d),
}


@pytest.mark.parametrize("alg", sorted(CRC))
@settings(max_examples=150, deadline=None)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_combining_two_crcs_equals_the_crc_of_the_concatenation(alg: str, a: bytes, b: bytes) -> None:
    f = CRC[alg]
    assert combine(alg, f(a), f(b), len(b)) == f(a + b)


@pytest.mark.parametrize("alg", sorted(CRC))
@settings(max_examples=40, deadline=None)
@given(parts=st.lists(st.binary(max_size=2000), max_size=12))
def test_combining_many_parts_in_order_equals_the_crc_of_the_whole(alg: str, parts: list[bytes]) -> None:
    f = CRC[alg]
    assert combine_all(alg, [(f(p), len(p)) for p in parts]) == f(b"".join(parts))


def test_large_part_lengths_combine_like_the_real_bytes() -> None:
    # 5 MiB + 1 of zeros: the lengths S3 parts really have, not just small ones.
    a, b = b"head" * 1000, bytes((5 << 20) + 1)
    for alg, f in CRC.items():
        assert combine(alg, f(a), f(b), len(b)) == f(a + b), alg


def test_an_unknown_algorithm_or_negative_length_is_refused() -> None:
    with pytest.raises(KeyError):
        combine_all("SHA256", [(1, 1)])
    with pytest.raises(ValueError):
        combine("CRC32", 1, 2, -1)
