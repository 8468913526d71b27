"""The S3 door's per-request shortcuts give exactly the answers of the general code they
skip: inline small bodies, decoded identities, query decoding, canonical quoting,
http dates and the one-string listing entry."""

from __future__ import annotations

import email.utils
import os
from datetime import datetime, timezone
from urllib.parse import quote, unquote_to_bytes

import pytest

from gateway.s3 import sigv4, xml
from gateway.s3.request import decode_component, http_date, parse_query
from gateway.s3.errors import S3Error
from gateway.vfs import ROOT, Filesystem
from metadata import INLINE_MAX
from tests.unit.conftest import body_of

SAMPLES = ["", "a", "key.txt", "dir/sub/k-1_2.~", "a+b", "a b", "%41%42", "%2F", "%2f%2F", "100%",
           "%zz", "caf%C3%A9", "café", "日本語", "~tilde", "x=y", "&", "%E2%82", "emoji-\U0001F600",
           "AKID%2F20261129%2Fus-east-1%2Fs3%2Faws4_request", "UNSIGNED-PAYLOAD", "a\udcff"]


async def test_inline_bytes_equal_the_streamed_bytes_for_every_range(vfs: Filesystem) -> None:
    bucket = await vfs.create_bucket(ROOT, "bkt")
    # A sparse file made through the POSIX half: inline head, a hole, inline tail.
    f = await vfs.create(ROOT, bucket.ino, b"sparse")
    h = await vfs.open(ROOT, f.ino, os.O_RDWR)
    await vfs.write(h.fh, 0, b"head")
    await vfs.write(h.fh, 9000, b"tail")
    await vfs.flush(h.fh)
    await vfs.release(h.fh)
    expect = b"head" + bytes(9000 - 4) + b"tail"
    await vfs.put_object(ROOT, "bkt", "small", body_of(b"0123456789" * 400))
    for key, whole in (("sparse", expect), ("small", b"0123456789" * 400)):
        opened = await vfs.get_object(ROOT, "bkt", key)
        size = len(whole)
        for start, end in [(0, size), (0, 1), (3, 5), (4, 9000), (2, 9003), (8999, size),
                           (size - 1, size), (5, 5), (size, size + 10), (0, size + 100)]:
            streamed = b"".join([p async for p in opened.stream(start, end)])
            assert opened.inline_bytes(start, end) == streamed == whole[start:end], (key, start, end)


async def test_inline_bytes_defer_to_the_stream_when_chunks_hold_the_bytes(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    data = os.urandom(INLINE_MAX * 2 + 1)
    await vfs.put_object(ROOT, "bkt", "big", body_of(data))
    opened = await vfs.get_object(ROOT, "bkt", "big")
    assert opened.inline_bytes(0, len(data)) is None
    assert b"".join([p async for p in opened.stream(0, len(data))]) == data


async def test_a_changed_identity_is_seen_by_the_next_lookup(vfs: Filesystem) -> None:
    await vfs.put_identity("AKID", "first-secret", uid=10, gid=10)
    secret, caller = vfs.identity("AKID")  # type: ignore[misc]
    assert (secret, caller.uid) == ("first-secret", 10)
    await vfs.put_identity("AKID", "second-secret", uid=11, gid=11, groups=(5,))
    secret, caller = vfs.identity("AKID")  # type: ignore[misc]
    assert (secret, caller.uid, caller.gid, caller.groups) == ("second-secret", 11, 11, frozenset({5}))
    assert vfs.identity("NOSUCHKEY") is None


async def test_a_removed_identity_is_gone_at_the_next_lookup(vfs: Filesystem) -> None:
    await vfs.put_identity("AKID", "secret", uid=10, gid=10)
    assert vfs.identity("AKID") is not None
    assert vfs.identity("AKID") is not None  # decoded once, then known by its record
    await vfs.meta.write(lambda txn: txn.delete("identity", b"AKID"))
    assert vfs.identity("AKID") is None


def _strict(raw: str) -> str:
    return unquote_to_bytes(raw.encode("utf-8", "surrogateescape")).decode("utf-8")


@pytest.mark.parametrize("raw", SAMPLES)
def test_decoding_query_parts_agrees_with_strict_percent_decoding(raw: str) -> None:
    try:
        want = _strict(raw)
    except UnicodeDecodeError:
        with pytest.raises(S3Error) as err:
            decode_component(raw, "query")
        assert err.value.code == "InvalidURI"
        return
    assert decode_component(raw, "query") == want
    if "&" in raw:
        return  # a separator, not part of a value
    assert parse_query(f"k={raw}&k=second") == {"k": want}  # the first value wins
    if raw and "=" not in raw:
        assert parse_query(f"{raw}=v") == {want: "v"}


@pytest.mark.parametrize("raw", SAMPLES)
def test_canonical_quoting_agrees_with_full_aws_encoding(raw: str) -> None:
    full = quote(unquote_to_bytes(sigv4._utf8(raw)), safe="-_.~")
    assert sigv4._aws_quote(raw) == full


QUERIES = ("", "a=1&b=2", "a=2&b=1", "X-Amz-Signature=ff&b=%2f&a=&a=0", "X-Amz-Signature=fe&b=%2f&a=&a=0",
           "z&y=1&&x=%41", "prefix=caf%C3%A9&list-type=2", "prefix=caf%C3%A8&list-type=2")


def test_cached_canonical_queries_are_the_uncached_ones_and_never_mixed_up() -> None:
    uncached = sigv4.canonical_query.__wrapped__
    for presigned in (True, False):
        for _ in range(2):  # the second round answers from the cache
            got = {q: sigv4.canonical_query(q, presigned) for q in QUERIES}
            assert got == {q: uncached(q, presigned) for q in QUERIES}
    # Same query, presigned or not: the signature parameter is left out only when presigned.
    assert "X-Amz-Signature" in sigv4.canonical_query(QUERIES[3], False)
    assert "X-Amz-Signature" not in sigv4.canonical_query(QUERIES[3], True)
    assert sigv4.canonical_query("a=1&b=2", False) != sigv4.canonical_query("a=2&b=1", False)


def test_parsed_queries_are_cached_but_each_caller_gets_its_own_dict() -> None:
    first = parse_query("prefix=caf%C3%A9&list-type=2")
    first["prefix"] = "changed"
    first["extra"] = "1"
    assert parse_query("prefix=caf%C3%A9&list-type=2") == {"prefix": "café", "list-type": "2"}
    assert parse_query("prefix=caf%C3%A8&list-type=2") == {"prefix": "cafè", "list-type": "2"}
    for _ in range(2):  # a refusal is not cached as an answer
        with pytest.raises(S3Error):
            parse_query("prefix=%FF")


def _presigned(signature: str, date: str = "20260101T000000Z") -> sigv4.Request:
    query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3"
             f"%2Faws4_request&X-Amz-Date={date}&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
             f"&X-Amz-Signature={signature}")
    return sigv4.Request("GET", "/bkt/key", query, {"host": "h"})


def test_cached_presigned_claims_belong_to_their_own_query() -> None:
    when = datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    good = _presigned("0" * 64)
    key = sigv4.signing_key("secret", "20260101", "us-east-1", "s3")
    to_sign = sigv4.string_to_sign(sigv4.parse(good), sigv4.canonical_request(good, sigv4.parse(good)))
    good = _presigned(sigv4._sign(key, to_sign))
    for _ in range(2):  # verified once, then from the cached query facts: same answer
        assert sigv4.verify(good, sigv4.parse(good), "secret", when).auth.presigned
    sig = good.raw_query[-64:]
    forged = _presigned(("1" if sig[0] == "0" else "0") + sig[1:])
    assert sigv4.parse(forged).signature != sigv4.parse(good).signature
    for _ in range(2):
        with pytest.raises(sigv4.AuthError) as info:
            sigv4.verify(forged, sigv4.parse(forged), "secret", when)
        assert info.value.code == "SignatureDoesNotMatch"
    # The forged URL has the good one's canonical request (the signature is not part of
    # it): the expected signature comes from the cache and the forged claim still fails.
    assert sigv4.canonical_request(forged, sigv4.parse(forged)) == sigv4.canonical_request(good, sigv4.parse(good))
    # Another secret (a changed identity) is another signing key: refused.
    for _ in range(2):
        with pytest.raises(sigv4.AuthError) as info:
            sigv4.verify(good, sigv4.parse(good), "other-secret", when)
        assert info.value.code == "SignatureDoesNotMatch"
    assert sigv4.verify(good, sigv4.parse(good), "secret", when).seed_signature == sig
    # Another date in the same query shape is another claim (and here a stale one).
    later = _presigned(sig, date="20260101T000001Z")
    assert sigv4.parse(later).amz_date == "20260101T000001Z"
    with pytest.raises(sigv4.AuthError):
        sigv4.verify(later, sigv4.parse(later), "secret", when)
    # The same query under an Authorization header is refused every time, cached or not.
    both = sigv4.Request("GET", "/bkt/key", good.raw_query, {"host": "h", "authorization": "x"})
    for _ in range(2):
        with pytest.raises(sigv4.AuthError) as info:
            sigv4.parse(both)
        assert info.value.code == "InvalidArgument"
    dup = sigv4.Request("GET", "/bkt/key", good.raw_query + "&X-Amz-Date=20260101T000000Z", {"host": "h"})
    for _ in range(2):
        with pytest.raises(sigv4.AuthError) as info:
            sigv4.parse(dup)
        assert info.value.code == "AuthorizationQueryParametersError"


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 999_999_500, 1_000_000_000, 1_764_000_123_456_789_000,
                                1_764_000_123_999_999_700, 1_764_000_124_000_000_100, 1_764_000_124_000_002_000,
                                -1, -999_999_999, -1_000_000_001, 253_402_300_798_123_456_789])
def test_http_dates_are_formatdate_of_the_time(ns: int) -> None:
    assert http_date(ns) == email.utils.formatdate(ns / 1e9, usegmt=True)


def test_a_usual_listing_entry_is_written_like_the_general_path() -> None:
    when = datetime(2026, 11, 28, 13, 51, 30, 123456, tzinfo=timezone.utc)
    ns = int(when.timestamp()) * 1_000_000_000 + 123_456_789
    for key in ("plain", "a&b<c>", "sp ace/ü", ""):
        for etag, alg in (("d41d8cd98f00b204e9800998ecf8427e", None), ("0123abcd-12", "CRC32"),
                          ("abc", "")):
            for url in (None, "url"):
                fast = xml.ObjectEntry(key, ns, etag, 7, checksum_algorithm=alg)
                general = xml.ObjectEntry(key, when.replace(microsecond=123_000), etag, 7,
                                          checksum_algorithm=alg)  # a datetime: not the fast path
                args = dict(bucket="b", prefix="", delimiter="", max_keys=1000, is_truncated=False,
                            key_count=1, continuation_token=None, next_continuation_token=None,
                            start_after=None, common_prefixes=[], encoding_type=url)
                assert (xml.list_objects_v2(contents=[fast], **args)
                        == xml.list_objects_v2(contents=[general], **args))
