"""S3 keys and bucket names to paths, and back. Pure functions.

A bucket is a top-level directory; key ``a/b/c`` is the file ``/bucket/a/b/c`` and
``a/b/`` (with an empty body) is the directory ``/bucket/a/b``. A key that no path
can represent is refused whole with InvalidKey: nothing is stored half-way.
"""

from __future__ import annotations

import errno
import ipaddress
import re
from functools import lru_cache

from .errors import InvalidBucketName, InvalidKey, Invalid, KeyTooLong, NameTooLong

MAX_KEY_BYTES = 1024   # AWS S3's limit on a key's UTF-8 length
MAX_NAME_BYTES = 255   # NAME_MAX of every mainstream file system

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates from a lenient decoder
        raise InvalidKey("key is not valid UTF-8") from e


def split_key(key: str | bytes) -> tuple[list[bytes], bool]:
    """The path segments of key, and whether it names a directory ("dir/")."""
    b = key_bytes(key)
    if not b:
        raise InvalidKey("empty key")
    if len(b) > MAX_KEY_BYTES:
        raise KeyTooLong(f"key longer than {MAX_KEY_BYTES} bytes", errno=errno.ENAMETOOLONG)
    if b"\x00" in b:
        raise InvalidKey("key contains NUL")
    is_dir = b.endswith(b"/")
    segments = (b[:-1] if is_dir else b).split(b"/")
    for seg in segments:
        if not seg:
            raise InvalidKey("key has an empty path segment ('//' or a leading '/')")
        if seg in (b".", b".."):
            raise InvalidKey("key has a '.' or '..' path segment")
        if len(seg) > MAX_NAME_BYTES:
            raise InvalidKey(f"key segment longer than {MAX_NAME_BYTES} bytes",
                             errno=errno.ENAMETOOLONG)
    return segments, is_dir


@lru_cache(maxsize=4096)  # GETs of the same keys recur; pure, and refusals are not cached
def split_key_cached(key: str | bytes) -> tuple[tuple[bytes, ...], bool]:
    """split_key with the segments as a tuple (shared between callers: immutable)."""
    segments, is_dir = split_key(key)
    return tuple(segments), is_dir


def check_name(name: bytes) -> None:
    """A single directory entry name, as POSIX doors pass it."""
    if not name or name in (b".", b".."):
        raise Invalid("invalid name")
    if b"/" in name or b"\x00" in name:
        raise Invalid("name contains '/' or NUL")
    if len(name) > MAX_NAME_BYTES:
        raise NameTooLong(f"name longer than {MAX_NAME_BYTES} bytes")


def check_bucket_name(name: str) -> None:
    """AWS's general-purpose bucket naming rules."""
    if not _BUCKET_RE.match(name):
        raise InvalidBucketName("bucket names are 3-63 lowercase letters, digits, '.' or '-',"
                                " starting and ending with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucketName("bucket name has adjacent '.' and '-' characters")
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        raise InvalidBucketName("bucket name uses a reserved prefix or suffix")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return
    raise InvalidBucketName("bucket name must not look like an IP address")
