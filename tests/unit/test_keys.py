"""Key-to-path rules: what no path can represent is refused whole, with a typed error."""

from __future__ import annotations

import errno

import pytest

from gateway.vfs import InvalidBucketName, InvalidKey, check_bucket_name, split_key
from gateway.vfs.keys import split_key_cached


@pytest.mark.parametrize("key, reason", [
    ("", "empty key"),
    ("a//b", "empty path segment"),
    ("/a", "empty path segment"),
    ("a/./b", "'.' or '..'"),
    ("a/../b", "'.' or '..'"),
    ("..", "'.' or '..'"),
    ("a\x00b", "NUL"),
    ("a" * 256, "segment longer"),
    ("/".join(["a" * 200] * 6), "key longer"),
    ("\udcff", "UTF-8"),
])
def test_keys_no_path_can_hold_are_refused(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey, match=reason):
        split_key(key)


@pytest.mark.parametrize("key", ["/a", "a/./b", "a\x00b", "a" * 256, "\udcff"])
def test_the_cached_split_refuses_the_same_keys_every_time(key: str) -> None:
    for _ in range(2):
        with pytest.raises(InvalidKey):
            split_key_cached(key)


def test_the_cached_split_is_split_key_with_tuples() -> None:
    for key in ("a/b/c.txt", "dir/", "héllo wörld", b"x/y", "x/y", "a" * 255):
        for _ in range(2):
            segs, is_dir = split_key(key)
            assert split_key_cached(key) == (tuple(segs), is_dir)


def test_overlong_keys_and_segments_carry_enametoolong() -> None:
    for key in ("a" * 256, "b/" * 600):
        with pytest.raises(InvalidKey) as e:
            split_key(key)
        assert e.value.errno == errno.ENAMETOOLONG


def test_keys_split_into_segments_and_folder_keys_are_recognised() -> None:
    assert split_key("a/b/c.txt") == ([b"a", b"b", b"c.txt"], False)
    assert split_key("dir/") == ([b"dir"], True)
    assert split_key("héllo wörld") == (["héllo wörld".encode()], False)
    assert split_key("a" * 255) == ([b"a" * 255], False)
    assert split_key(("x" * 254 + "/") * 4)[0] == [b"x" * 254] * 4  # 1020 bytes: allowed


@pytest.mark.parametrize("name", ["ab", "A-b", "a_b", "-ab", "ab-", "a..b", "192.168.1.1",
                                  "xn--ab", "ab-s3alias", "a" * 64, "a.-b"])
def test_invalid_bucket_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidBucketName):
        check_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "my-bucket", "my.bucket.1", "a" * 63, "0ab"])
def test_valid_bucket_names_are_accepted(name: str) -> None:
    check_bucket_name(name)


def test_health_path_segment_can_never_be_a_bucket() -> None:
    with pytest.raises(InvalidBucketName):
        check_bucket_name("_samebytes")
