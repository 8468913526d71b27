"""Pure request helpers of the S3 door: targets, query, Range, conditions, metadata."""

from __future__ import annotations

import pytest

from gateway.s3.errors import S3Error
from gateway.s3.request import (
    check_conditions, http_date, parse_query, parse_range, parse_tagging_header, split_target,
    user_metadata,
)


def test_keys_come_from_the_raw_path_strictly_decoded() -> None:
    t = split_target("/bkt/a%2Fb/c%20d+e", "127.0.0.1:9000", None)
    assert (t.bucket, t.key) == ("bkt", "a/b/c d+e")  # '+' in a path is a plus
    assert split_target("/", "h", None).bucket is None
    assert split_target("/bkt", "h", None).key is None
    assert split_target("/bkt/", "h", None).key is None
    with pytest.raises(S3Error) as e:
        split_target("/bkt/%ff", "h", None)
    assert e.value.code == "InvalidURI"


def test_virtual_host_style_when_a_domain_is_set() -> None:
    t = split_target("/photos/cat.jpg", "media.s3.example.com:9000", "s3.example.com")
    assert (t.bucket, t.key) == ("media", "photos/cat.jpg")
    t = split_target("/other/k", "s3.example.com", "s3.example.com")
    assert (t.bucket, t.key) == ("other", "k")  # the bare domain is path style


def test_query_keeps_the_first_value_and_literal_plus() -> None:
    assert parse_query("prefix=a+b%20c&prefix=x&uploads&max-keys=5") == {
        "prefix": "a+b c", "uploads": "", "max-keys": "5"}


@pytest.mark.parametrize("header, size, want", [
    ("bytes=0-0", 10, (0, 1)), ("bytes=2-", 10, (2, 10)), ("bytes=-3", 10, (7, 10)),
    ("bytes=-30", 10, (0, 10)), ("bytes=5-100", 10, (5, 10)), (None, 10, None),
    ("bytes=1-2,4-5", 10, None), ("items=0-1", 10, None), ("bytes=5-2", 10, None), ("bytes=x-", 10, None),
])
def test_ranges(header: str | None, size: int, want: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == want


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_with_the_size(header: str) -> None:
    with pytest.raises(S3Error) as e:
        parse_range(header, 10)
    assert e.value.status == 416 and e.value.headers["Content-Range"] == "bytes */10"


def test_conditional_headers_follow_rfc_7232_precedence() -> None:
    mtime = 1_700_000_000 * 10**9
    older, newer = http_date(mtime - 10**10), http_date(mtime + 10**10)
    check_conditions({"if-match": '"e"', "if-unmodified-since": older}, "e", mtime)  # If-Match wins
    with pytest.raises(S3Error) as e:
        check_conditions({"if-none-match": '"e"', "if-modified-since": older}, "e", mtime)
    assert e.value.status == 304
    with pytest.raises(S3Error) as e:
        check_conditions({"if-modified-since": newer}, "e", mtime)
    assert e.value.status == 304
    with pytest.raises(S3Error) as e:
        check_conditions({"if-unmodified-since": older}, "e", mtime)
    assert e.value.status == 412
    with pytest.raises(S3Error) as e:
        check_conditions({"x-amz-copy-source-if-none-match": '"e"'}, "e", mtime, prefix="x-amz-copy-source-")
    assert e.value.status == 412  # copy sources never answer 304
    check_conditions({"if-match": "*"}, "anything", mtime)


def test_user_metadata_becomes_xattrs_and_is_bounded() -> None:
    assert user_metadata({"x-amz-meta-team": "ml", "content-type": "x"}) == {b"user.s3.meta.team": b"ml"}
    with pytest.raises(S3Error) as e:
        user_metadata({"x-amz-meta-big": "v" * 3000})
    assert e.value.code == "MetadataTooLarge"


def test_tagging_header_rules() -> None:
    assert parse_tagging_header("a=1&b=two%20words") == [["a", "1"], ["b", "two words"]]
    for bad in ("a=1&a=2", "&".join(f"k{i}=v" for i in range(11)), "=v", "k=" + "v" * 257):
        with pytest.raises(S3Error):
            parse_tagging_header(bad)
