"""gateway.s3.chunked: the aws-chunked decoder, on bytes from real encoders, split anywhere."""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import AsyncIterator, Iterable

import pytest
from botocore.httpchecksum import (
    AwsChunkedWrapper,
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3.checksums import Checksum
from gateway.s3.chunked import (
    ChunkedError,
    ChunkEnd,
    ChunkHeader,
    Data,
    Decoder,
    End,
    NeedData,
    Trailer,
    decode_stream,
)

MiB = 1 << 20
# FACTS.md: boto3 PutObject of b"hello" over HTTPS, after HTTP de-chunking.
BOTO3_HELLO = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"

# The AWS SigV4 streaming examples: 65,536 + 1,024 bytes of "a", chunk size 64 KiB.
DOC_SIGS = ("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
DOC_TRAILER_SIGS = ("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")
DOC_TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
DOC_PAYLOAD = b"a" * 66560

ORACLES = {"CRC32": Crc32Checksum, "CRC32C": CrtCrc32cChecksum, "CRC64NVME": CrtCrc64NvmeChecksum,
           "SHA1": Sha1Checksum, "SHA256": Sha256Checksum}


# -- helpers --------------------------------------------------------------------------------


def signed_body(chunks: Iterable[bytes], sigs: Iterable[str],
                trailers: Iterable[tuple[str, str]] | None = None) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body, laid out as the SDKs send it."""
    chunks, sigs = list(chunks), list(sigs)
    assert len(sigs) == len(chunks) + 1
    out = b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), s.encode(), c)
                   for c, s in zip(chunks, sigs))
    out += b"0;chunk-signature=%s\r\n" % sigs[-1].encode()
    for name, value in trailers or ():
        out += f"{name}:{value}\r\n".encode()
    return out + b"\r\n"


def botocore_body(payload: bytes, algorithm: str | None = "CRC32", chunk_size: int | None = None) -> bytes:
    """What botocore itself sends (AwsChunkedWrapper, read fully)."""
    cls = ORACLES[algorithm] if algorithm else None
    name = f"x-amz-checksum-{algorithm.lower()}" if algorithm else "x-amz-checksum"
    return bytes(AwsChunkedWrapper(io.BytesIO(payload), cls, name, chunk_size).read())


def split(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(body)) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in zip(points, points[1:]) if b > a]


def drain(dec: Decoder) -> list[object]:
    events: list[object] = []
    while (ev := dec.next_event()) is not NeedData:
        events.append(ev)
    return events


def decode(pieces: Iterable[bytes], **limits: int) -> list[object]:
    dec = Decoder(**limits)
    events: list[object] = []
    for p in pieces:
        dec.feed(p)
        events += drain(dec)
    dec.close()
    return events


def summary(events: list[object]) -> tuple[bytes, list[object], list[tuple[str, str]]]:
    """(payload, the framing events without Data, trailers) — independent of how input was split."""
    payload = b"".join(e.data for e in events if isinstance(e, Data))
    frames = [e for e in events if not isinstance(e, Data)]
    trailers = [(e.name, e.value) for e in events if isinstance(e, Trailer)]
    assert isinstance(events[-1], End)
    return payload, frames, trailers


def error_of(pieces: Iterable[bytes], **limits: int) -> ChunkedError:
    with pytest.raises(ChunkedError) as info:
        decode(pieces, **limits)
    return info.value


@functools.cache
def botocore_bodies() -> dict[int, tuple[bytes, bytes]]:
    out = {}
    for size in (0, 1, MiB, MiB + 1, 3 * MiB + MiB // 2):
        payload = bytes((i * 7 + size) % 251 for i in range(min(size, 251))) * (size // 251 + 1)
        payload = payload[:size]
        out[size] = (payload, botocore_body(payload))
    return out


# -- well-formed bodies ---------------------------------------------------------------------


def test_boto3_unsigned_trailer_events() -> None:
    assert decode([BOTO3_HELLO]) == [
        ChunkHeader(5, None), Data(b"hello"), ChunkEnd(), ChunkHeader(0, None),
        Trailer("x-amz-checksum-crc32", "NhCmhg=="), End(),
    ]
    assert botocore_body(b"hello") == BOTO3_HELLO  # the capture is what botocore's encoder makes


def test_boto3_body_every_two_way_and_three_way_split() -> None:
    want = summary(decode([BOTO3_HELLO]))
    n = len(BOTO3_HELLO)
    for i in range(n + 1):
        for j in range(i, n + 1):
            assert summary(decode(split(BOTO3_HELLO, [i, j]))) == want
    assert summary(decode([bytes([b]) for b in BOTO3_HELLO])) == want


@pytest.mark.parametrize("size", [0, 1, MiB, MiB + 1, 3 * MiB + MiB // 2])
def test_botocore_encoder_in_http_sized_pieces(size: int) -> None:
    payload, body = botocore_bodies()[size]
    crc = Checksum("CRC32")
    crc.update(payload)
    pieces = [body[i:i + 128 * 1024] for i in range(0, len(body), 128 * 1024)]  # FACTS: 128 KiB
    events = decode(pieces)
    got, frames, trailers = summary(events)
    assert got == payload
    assert trailers == [("x-amz-checksum-crc32", crc.b64())]
    sizes = [e.size for e in frames if isinstance(e, ChunkHeader)]
    assert sizes == [MiB] * (size // MiB) + ([size % MiB] if size % MiB else []) + [0]
    assert all(len(e.data) <= 128 * 1024 for e in events if isinstance(e, Data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([0, 1, MiB, MiB + 1, 3 * MiB + MiB // 2]), data=st.data())
def test_botocore_encoder_any_split(size: int, data: st.DataObject) -> None:
    payload, body = botocore_bodies()[size]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=40))
    got, frames, trailers = summary(decode(split(body, cuts)))
    want = summary(decode([body]))
    assert (got, frames, trailers) == want
    assert got == payload


@pytest.mark.parametrize("algorithm", list(ORACLES))
@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_botocore_encoder_every_algorithm_small_chunks(algorithm: str, chunk_size: int) -> None:
    payload = bytes(range(200))
    body = botocore_body(payload, algorithm, chunk_size)
    got, _, trailers = summary(decode([bytes([b]) for b in body]))
    h = Checksum(algorithm)
    h.update(payload)
    assert got == payload
    assert trailers == [(f"x-amz-checksum-{algorithm.lower()}", h.b64())]


def test_botocore_encoder_without_checksum() -> None:
    body = botocore_body(b"hello", None)
    assert body == b"5\r\nhello\r\n0\r\n\r\n"
    assert summary(decode([body]))[1:] == ([ChunkHeader(5), ChunkEnd(), ChunkHeader(0), End()], [])


def test_signed_streaming_doc_example() -> None:
    body = signed_body([DOC_PAYLOAD[:65536], DOC_PAYLOAD[65536:]], DOC_SIGS)
    assert body.endswith(b"0;chunk-signature=" + DOC_SIGS[2].encode() + b"\r\n\r\n")
    got, frames, trailers = summary(decode(split(body, range(0, len(body), 1000))))
    assert got == DOC_PAYLOAD and trailers == []
    assert frames == [ChunkHeader(65536, DOC_SIGS[0]), ChunkEnd(), ChunkHeader(1024, DOC_SIGS[1]),
                      ChunkEnd(), ChunkHeader(0, DOC_SIGS[2]), End()]


def test_signed_streaming_with_trailer() -> None:
    trailers = [("x-amz-checksum-crc32c", "sOO8/Q=="), ("x-amz-trailer-signature", DOC_TRAILER_SIGNATURE)]
    body = signed_body([DOC_PAYLOAD[:65536], DOC_PAYLOAD[65536:]], DOC_TRAILER_SIGS, trailers)
    got, frames, got_trailers = summary(decode(split(body, range(7, len(body), 4093))))
    assert got == DOC_PAYLOAD
    assert got_trailers == trailers
    assert frames[-4:] == [ChunkHeader(0, DOC_TRAILER_SIGS[2]), Trailer(*trailers[0]), Trailer(*trailers[1]), End()]
    crc = Checksum("CRC32C")
    crc.update(got)
    assert crc.b64() == "sOO8/Q=="


def test_lenient_chunk_lines_and_trailers() -> None:
    sigv4a = "30450221" + "ab" * 66 + "*" * 6  # SigV4a: DER hex, padded with '*' by the .NET SDK
    body = (b"0005 ; chunk-signature = " + sigv4a.encode() + b" \r\nhello\r\n"
            b"A;chunk-signature=abc;other=1;flag\r\n0123456789\r\n"
            b"0;Chunk-Signature=DEF\r\n"
            b"X-Amz-Checksum-CRC32: \tNhCmhg== \r\nx-amz-meta-empty:\r\n\r\n")
    got, frames, trailers = summary(decode([body]))
    assert got == b"hello0123456789"
    assert frames[0] == ChunkHeader(5, sigv4a)
    assert frames[2] == ChunkHeader(10, "abc")
    assert frames[4] == ChunkHeader(0, "DEF")
    assert trailers == [("x-amz-checksum-crc32", "NhCmhg=="), ("x-amz-meta-empty", "")]


def test_data_is_streamed_not_buffered() -> None:
    """A 16 MiB chunk in 64 KiB pieces: every piece comes straight back as Data (no copy)."""
    dec = Decoder()
    dec.feed(b"1000000;chunk-signature=" + b"0" * 64 + b"\r\n")  # 16 MiB = max_chunk_size
    assert drain(dec) == [ChunkHeader(16 * MiB, "0" * 64)]
    piece = bytes(64 * 1024)
    for _ in range(256):
        dec.feed(piece)
        events = drain(dec)
        assert len(events) == 1 and events[0].data is piece  # type: ignore[attr-defined]
    assert not dec._pieces and not dec._line  # nothing held
    dec.feed(b"\r\n0;chunk-signature=" + b"1" * 64 + b"\r\n\r\n")
    assert drain(dec) == [ChunkEnd(), ChunkHeader(0, "1" * 64), End()]
    dec.close()


def test_pieces_spanning_chunks_are_split_at_boundaries() -> None:
    body = botocore_body(bytes(range(256)) * 40, "SHA256", chunk_size=1000)
    events = decode([body])  # one piece holding many chunks
    assert [len(e.data) for e in events if isinstance(e, Data)] == [1000] * 10 + [240]


def test_header_line_limit_boundary() -> None:
    line = b"5;x=" + b"a" * (100 - 4 - 2) + b"\r\n"
    assert len(line) == 100
    assert summary(decode([line + b"hello\r\n0\r\n\r\n"], max_header_line=100))[0] == b"hello"
    dec = Decoder(max_header_line=100)
    dec.feed(line[:-2] + b"a")  # 99 bytes of line, no LF yet: still fine
    assert dec.next_event() is NeedData
    dec.feed(b"a")  # now the line cannot end within 100 bytes
    with pytest.raises(ChunkedError) as info:
        dec.next_event()
    assert info.value.code == "InvalidRequest"


def test_lying_size_fails_before_any_data() -> None:
    dec = Decoder()
    dec.feed(b"40000000;chunk-signature=abc\r\n")  # 1 GiB
    with pytest.raises(ChunkedError) as info:
        dec.next_event()
    assert info.value.code == "InvalidChunkSizeError"
    assert decode([b"1\r\nx\r\n0\r\n\r\n"], max_chunk_size=1)
    assert error_of([b"2\r\nxy\r\n0\r\n\r\n"], max_chunk_size=1).code == "InvalidChunkSizeError"


def test_errors_are_sticky_and_close_semantics() -> None:
    dec = Decoder()
    dec.feed(b"zz\r\n")
    with pytest.raises(ChunkedError) as first:
        dec.next_event()
    with pytest.raises(ChunkedError) as again:
        dec.next_event()
    assert again.value is first.value
    with pytest.raises(ChunkedError) as at_close:
        dec.close()
    assert at_close.value is first.value

    dec = Decoder()
    dec.feed(BOTO3_HELLO)
    drain(dec)
    dec.close()
    dec.close()  # idempotent after End
    with pytest.raises(ChunkedError):
        dec.feed(b"x")

    dec = Decoder()
    dec.feed(b"")  # not EOF
    assert dec.next_event() is NeedData
    with pytest.raises(ChunkedError) as info:
        dec.close()
    assert info.value.code == "IncompleteBody" and info.value.message


# -- malformed bodies -----------------------------------------------------------------------

OK_TAIL = b"0\r\n\r\n"
MALFORMED = {
    "bad hex": (b"zz\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "negative size": (b"-5\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "0x prefix": (b"0x5\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "plus sign": (b"+5\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "underscore": (b"5_0\r\n", "InvalidChunkSizeError"),
    "leading space": (b" 5\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "empty size line": (b"\r\n", "InvalidChunkSizeError"),
    "size is only extension": (b";chunk-signature=abc\r\n", "InvalidChunkSizeError"),
    "huge size": (b"ffffffffffffffffffff\r\n", "InvalidChunkSizeError"),
    "17 hex digits": (b"10000000000000000\r\n", "InvalidChunkSizeError"),
    "1 GiB size": (b"40000000\r\n", "InvalidChunkSizeError"),
    "non-ascii size": ("５\r\n".encode(), "InvalidChunkSizeError"),
    "missing CRLF after data": (b"5\r\nhello0\r\n\r\n", "InvalidRequest"),
    "LF only after data": (b"5\r\nhello\n0\r\n\r\n", "InvalidRequest"),
    "data longer than declared": (b"3\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "data shorter than declared": (b"6\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "bare LF chunk line": (b"5\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "CR inside chunk line": (b"5\r;x\r\nhello\r\n" + OK_TAIL, "InvalidChunkSizeError"),
    "empty extension": (b"5;\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "signature without value": (b"5;chunk-signature\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "empty signature": (b"5;chunk-signature=\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "two signatures": (b"5;chunk-signature=a;chunk-signature=b\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "space in signature": (b"5;chunk-signature=ab cd\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "overlong chunk line": (b"5;chunk-signature=" + b"a" * 5000 + b"\r\nhello\r\n" + OK_TAIL, "InvalidRequest"),
    "endless chunk line": (b"5" * 10000, "InvalidRequest"),
    "garbage trailer": (b"0\r\ngarbage\r\n\r\n", "MalformedTrailerError"),
    "trailer without name": (b"0\r\n:NhCmhg==\r\n\r\n", "MalformedTrailerError"),
    "space in trailer name": (b"0\r\nx amz:1\r\n\r\n", "MalformedTrailerError"),
    "space before colon": (b"0\r\nx-amz-checksum-crc32 :AAAAAA==\r\n\r\n", "MalformedTrailerError"),
    "control char in value": (b"0\r\nx-amz-meta-a:a\x00b\r\n\r\n", "MalformedTrailerError"),
    "non-ascii value": ("0\r\nx-amz-meta-a:é\r\n\r\n".encode(), "MalformedTrailerError"),
    "folded trailer": (b"0\r\nx-amz-meta-a:1\r\n continued\r\n\r\n", "MalformedTrailerError"),
    "bare LF trailer": (b"0\r\nx-amz-checksum-crc32:AAAAAA==\n\r\n", "MalformedTrailerError"),
    "bare LF end": (b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\n", "MalformedTrailerError"),
    "too many trailers": (b"0\r\n" + b"x-amz-meta-a:1\r\n" * 17 + b"\r\n", "MalformedTrailerError"),
    "overlong trailer": (b"0\r\nx-amz-meta-a:" + b"a" * 5000 + b"\r\n\r\n", "MalformedTrailerError"),
    "byte after End": (BOTO3_HELLO + b"x", "InvalidRequest"),
    "CRLF after End": (BOTO3_HELLO + b"\r\n", "InvalidRequest"),
    "second body after End": (BOTO3_HELLO + BOTO3_HELLO, "InvalidRequest"),
    # The layout of the example in the AWS SigV4 trailer docs (CRLF before the trailers, no
    # final CRLF) is not what any SDK sends: the blank line ends the body, the rest is extra.
    "AWS docs example layout": (b"0;chunk-signature=" + DOC_TRAILER_SIGS[2].encode() + b"\r\n\r\n"
                                b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
                                + DOC_TRAILER_SIGNATURE.encode(), "InvalidRequest"),
    "missing final CRLF after trailers": (BOTO3_HELLO[:-2], "IncompleteBody"),
    "no CRLF at all after last trailer": (BOTO3_HELLO[:-4], "IncompleteBody"),
    "no final chunk": (b"5\r\nhello\r\n", "IncompleteBody"),
    "no blank line after 0 chunk": (b"5\r\nhello\r\n0\r\n", "IncompleteBody"),
    "truncated data": (b"100;chunk-signature=x\r\nhello", "IncompleteBody"),
    "empty body": (b"", "IncompleteBody"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed(name: str) -> None:
    body, code = MALFORMED[name]
    assert error_of([body]).code == code
    # the same verdict whatever the split
    assert error_of([bytes([b]) for b in body]).code == code
    assert error_of(split(body, [len(body) // 3, len(body) // 2])).code == code


def test_no_end_when_extra_bytes_already_arrived() -> None:
    """A caller that stops at End must never see End for a body with extra bytes."""
    dec = Decoder()
    dec.feed(BOTO3_HELLO + b"x")
    events: list[object] = []
    with pytest.raises(ChunkedError) as info:
        while (ev := dec.next_event()) is not NeedData:
            events.append(ev)
    assert info.value.code == "InvalidRequest"
    assert End() not in events and events[-1] == Trailer("x-amz-checksum-crc32", "NhCmhg==")


def test_too_many_trailers_limit_is_configurable() -> None:
    body = b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:abc\r\n\r\n"
    assert len(summary(decode([body], max_trailers=2))[2]) == 2
    assert error_of([body], max_trailers=1).code == "MalformedTrailerError"


SMALL_VALID = [
    BOTO3_HELLO,
    b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\r\n",
    signed_body([b"abc", b"de"], ["a" * 64, "b" * 64, "c" * 64]),
    signed_body([b"\r\n0\r\n\r\n"], ["d" * 64, "e" * 64],
                [("x-amz-checksum-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
                 ("x-amz-trailer-signature", "f" * 64)]),
    botocore_body(b"0123456789abcdef", "CRC64NVME", chunk_size=5),
]


@pytest.mark.parametrize("body", SMALL_VALID)
def test_truncated_at_every_offset_is_incomplete(body: bytes) -> None:
    full = summary(decode([body]))
    for k in range(len(body)):
        for pieces in ([body[:k]], [body[:k // 2], body[k // 2:k]]):
            dec = Decoder()
            events: list[object] = []
            for p in pieces:
                dec.feed(p)
                events += drain(dec)  # a prefix of a valid body is never an error...
            assert End() not in events
            with pytest.raises(ChunkedError) as info:
                dec.close()  # ...but ending there is
            assert info.value.code == "IncompleteBody", k
    assert summary(decode([body])) == full


def test_truncated_large_bodies_sampled_offsets() -> None:
    for _, body in botocore_bodies().values():
        for k in {0, 1, 5, len(body) // 2, len(body) - 40, len(body) - 3, len(body) - 2, len(body) - 1}:
            if 0 <= k < len(body):
                assert error_of([body[:k]]).code == "IncompleteBody"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6),
       st.sampled_from([{}, {"max_header_line": 8, "max_trailers": 1, "max_chunk_size": 4}]))
def test_arbitrary_bytes_only_chunked_error(body: bytes, cuts: list[int], limits: dict[str, int]) -> None:
    try:
        decode(split(body, cuts), **limits)
    except ChunkedError as e:
        assert e.code in {"IncompleteBody", "InvalidChunkSizeError", "MalformedTrailerError", "InvalidRequest"}


TOKENS = [b"0", b"5", b"a", b"A", b"ff", b"10", b";", b"=", b" ", b"chunk-signature", b"\r\n", b"\r",
          b"\n", b"hello", b":", b"x-amz-checksum-crc32", b"NhCmhg==", b"\x00", b"\xff", b"-", b"\t"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.lists(st.integers(0, 200), max_size=6))
def test_grammar_soup_only_chunked_error(tokens: list[bytes], cuts: list[int]) -> None:
    body = b"".join(tokens)
    try:
        events = decode(split(body, cuts))
    except ChunkedError:
        return
    # accepted: then it is accepted the same way fed byte by byte
    assert summary(decode([bytes([b]) for b in body])) == summary(events)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SMALL_VALID), st.data())
def test_mutated_valid_bodies_only_chunked_error(body: bytes, data: st.DataObject) -> None:
    buf = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(buf)))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.sampled_from([0, 10, 13, 32, 48, 58, 59, 61, 97, 255]))
        if op == "insert":
            buf[pos:pos] = bytes([byte])
        elif pos < len(buf):
            if op == "replace":
                buf[pos] = byte
            else:
                del buf[pos]
    cuts = data.draw(st.lists(st.integers(0, len(buf)), max_size=5))
    try:
        events = decode(split(bytes(buf), cuts))
    except ChunkedError:
        return
    assert summary(decode([bytes(buf)])) == summary(events)


# -- async adapter --------------------------------------------------------------------------


async def source(*pieces: bytes) -> AsyncIterator[bytes]:
    for p in pieces:
        await asyncio.sleep(0)
        yield p


async def collect(*pieces: bytes, decoder: Decoder | None = None) -> list[object]:
    return [ev async for ev in decode_stream(source(*pieces), decoder)]


async def test_decode_stream_matches_sync() -> None:
    _, body = botocore_bodies()[MiB + 1]
    pieces = split(body, range(0, len(body), 128 * 1024 + 3))
    events = await collect(*pieces)
    assert summary(events) == summary(decode(pieces))
    assert summary(await collect(BOTO3_HELLO, decoder=Decoder(max_trailers=1)))[2] == [
        ("x-amz-checksum-crc32", "NhCmhg==")]


async def test_decode_stream_errors() -> None:
    with pytest.raises(ChunkedError) as info:
        await collect(BOTO3_HELLO[:10], BOTO3_HELLO[10:20])
    assert info.value.code == "IncompleteBody"
    with pytest.raises(ChunkedError) as info:
        await collect(BOTO3_HELLO, b"junk")
    assert info.value.code == "InvalidRequest"
    with pytest.raises(ChunkedError) as info:
        await collect(b"zz\r\n")
    assert info.value.code == "InvalidChunkSizeError"


async def test_decode_stream_yields_data_before_input_ends() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def from_queue() -> AsyncIterator[bytes]:
        while (item := await queue.get()) is not None:
            yield item

    agen = decode_stream(from_queue())
    await queue.put(b"a;chunk-signature=abc\r\nhello")
    assert await anext(agen) == ChunkHeader(10, "abc")
    assert await anext(agen) == Data(b"hello")  # streamed while the chunk is still incomplete
    await queue.put(b"world\r\n0\r\n\r\n")
    await queue.put(None)
    assert [ev async for ev in agen] == [Data(b"world"), ChunkEnd(), ChunkHeader(0, None), End()]
