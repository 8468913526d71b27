"""Pure helpers for reading an S3 request: where the bucket and key are, the
query, Range, conditional headers and user metadata. No I/O.

Keys are decoded from the RAW path (FACTS.md: aiohttp's decoded path turns %2F
into '/' and %00 into NUL); the raw bytes must be valid UTF-8.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from . import sigv4
from .errors import S3Error

# System metadata S3 stores and returns as headers.
STORED_HEADERS = ("content-encoding", "content-disposition", "content-language",
                  "cache-control", "expires")
META_PREFIX = "x-amz-meta-"
XATTR_META = b"user.s3.meta."
# AWS limits user metadata to 2 KB in total.
MAX_USER_METADATA = 2048


def decode_component(raw: str, what: str) -> str:
    """Percent-decode strictly to UTF-8 ('+' stays '+')."""
    if "%" not in raw and raw.isascii():
        return raw  # nothing to decode: the common case, and a fifth of a small GET's parsing
    try:
        return _strict_decode(raw)
    except UnicodeError as e:  # bad UTF-8 once decoded, or undecodable bytes in the raw text
        raise S3Error("InvalidURI", f"The {what} is not valid UTF-8 once decoded") from e


@lru_cache(maxsize=4096)  # credentials, prefixes and keys recur request after request
def _strict_decode(raw: str) -> str:
    return unquote_to_bytes(raw).decode("utf-8")


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str | None
    key: str | None


def split_target(raw_path: str, host: str, domain: str | None) -> Target:
    """Bucket and key from path-style or (with --domain) virtual-host-style requests."""
    path = raw_path.split("?", 1)[0] if "?" in raw_path else raw_path
    if domain and host:  # the Host header matters only for virtual-host-style addressing
        host = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        if host.endswith("." + domain):
            bucket = host[: -len(domain) - 1]
            key_raw = path[1:] if path.startswith("/") else path
            return Target(bucket, decode_component(key_raw, "key") if key_raw else None)
    if path in ("", "/"):
        return Target(None, None)
    rest = path[1:]
    bucket_raw, sep, key_raw = rest.partition("/")
    bucket = decode_component(bucket_raw, "bucket name")
    key = decode_component(key_raw, "key") if sep and key_raw else None
    return Target(bucket, key)


def parse_query(raw_query: str) -> dict[str, str]:
    """First value of each parameter, decoded ('+' stays '+', as SigV4 signs it). A new
    dict each call (callers may change theirs); the decoding is cached per query."""
    return dict(_parse_query(raw_query))


@lru_cache(maxsize=sigv4.QUERY_CACHE_SIZE)  # presigned URLs recur: see sigv4._query_kind
def _parse_query(raw_query: str) -> dict[str, str]:
    return decode_query(sigv4.query_pairs(raw_query))


def decode_query(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """parse_query over pairs already split (sigv4.query_pairs)."""
    out: dict[str, str] = {}
    for k, v in pairs:
        name = k if "%" not in k and k.isascii() else decode_component(k, "query")
        if name not in out:
            out[name] = v if "%" not in v and v.isascii() else decode_component(v, "query")
    return out


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single-range `bytes=` header; None means "the
    whole object" (absent, unparseable or multi-range headers are ignored, as AWS
    does). Raises InvalidRange when the range cannot be satisfied."""
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0 or size == 0:  # no byte of an empty object can be selected
                raise _unsatisfiable(size)
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start < 0 or (last and end <= start):
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


def _unsatisfiable(size: int) -> S3Error:
    return S3Error("InvalidRange", "The requested range is not satisfiable",
                   headers={"Content-Range": f"bytes */{size}"}, ActualObjectSize=str(size))


def http_date(ns: int) -> str:
    second, frac = divmod(ns, 1_000_000_000)
    # formatdate(ns / 1e9) rounds the float to microseconds before it drops the fraction;
    # away from a second's edges (and before 2106, where the float is finer than a
    # microsecond) that is the same second, and the text can be cached per second.
    if 2_000 <= frac <= 999_998_000 and 0 <= second < 1 << 32:
        return _http_date(second)
    return email.utils.formatdate(ns / 1e9, usegmt=True)


@lru_cache(maxsize=4096)  # objects share mtimes to the second; formatdate is slow
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            d = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.strip('"').removeprefix("W/").strip('"') == etag for t in tags)


def check_conditions(headers: Mapping[str, str], etag: str, mtime_ns: int, *,
                     prefix: str = "", read: bool = True) -> None:
    """RFC 7232 evaluation of If-Match / If-None-Match / If-(Un)Modified-Since as S3
    applies them; raises NotModified (304) or PreconditionFailed (412).
    prefix="x-amz-copy-source-" for CopyObject's source conditions (412 only)."""
    if_match = headers.get(prefix + "if-match")
    if_none = headers.get(prefix + "if-none-match")
    since_raw = headers.get(prefix + "if-modified-since")
    unmod_raw = headers.get(prefix + "if-unmodified-since")
    if if_match is None and if_none is None and since_raw is None and unmod_raw is None:
        return  # the usual request: nothing to evaluate
    # Last-Modified has whole-second resolution on the wire.
    mtime = datetime.fromtimestamp(mtime_ns // 1_000_000_000, timezone.utc)
    since = parse_http_date(since_raw)
    unmod = parse_http_date(unmod_raw)
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                          Condition="If-Match")
    elif unmod is not None and mtime > unmod:
        raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                      Condition="If-Unmodified-Since")
    if if_none is not None:
        if _etag_matches(if_none, etag):
            if read and not prefix:
                raise _not_modified(etag, mtime_ns)
            raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                          Condition="If-None-Match")
    elif since is not None and mtime <= since:
        if read and not prefix:
            raise _not_modified(etag, mtime_ns)
        raise S3Error("PreconditionFailed", "At least one of the preconditions you specified did not hold",
                      Condition="If-Modified-Since")


def _not_modified(etag: str, mtime_ns: int) -> S3Error:
    # RFC 9110 15.4.5: a 304 carries the ETag a 200 would; AWS adds Last-Modified too,
    # which caches use to refresh what they hold.
    return S3Error("NotModified", "Not Modified", status=304,
                   headers={"ETag": f'"{etag}"', "Last-Modified": http_date(mtime_ns)})


def user_metadata(headers: Mapping[str, str]) -> dict[bytes, bytes]:
    """x-amz-meta-* headers as xattrs user.s3.meta.<name> (names lower-cased, as S3 does)."""
    out: dict[bytes, bytes] = {}
    total = 0
    for name, value in headers.items():
        if name.startswith(META_PREFIX) and len(name) > len(META_PREFIX):
            key = name[len(META_PREFIX):].encode()
            val = value.encode("latin-1", "replace")  # header values arrive latin-1 decoded: the wire bytes
            total += len(key) + len(val)
            out[XATTR_META + key] = val
    if total > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size",
                      status=400)
    return out


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The system metadata headers a write stores. ``aws-chunked`` in Content-Encoding
    names the request's framing, not the object's encoding: AWS drops it, and so do we
    (boto3 over HTTPS sends it on every PUT; returned on GET, it makes urllib3 try to
    decode the body)."""
    out = {h: headers[h] for h in STORED_HEADERS if h in headers}
    if "content-encoding" in out:
        encoding = object_encoding(out["content-encoding"])
        if encoding:
            out["content-encoding"] = encoding
        else:
            del out["content-encoding"]
    return out


def object_encoding(value: str) -> str:
    """A Content-Encoding value without its aws-chunked coding ('' when nothing is left)."""
    if "aws-chunked" not in value.lower():
        return value
    return ",".join(c.strip() for c in value.split(",")
                    if c.strip() and c.strip().lower() != "aws-chunked")


def parse_tagging_header(value: str) -> list[list[str]]:
    """x-amz-tagging: a URL-encoded query string of tags."""
    tags: list[list[str]] = []
    for part in value.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        tags.append([decode_component(k.replace("+", "%20"), "tag"),
                     decode_component(v.replace("+", "%20"), "tag")])
    if len(tags) > 10 or len({k for k, _ in tags}) != len(tags):
        raise S3Error("InvalidTag", "Object tags must be at most 10, with unique keys")
    for k, v in tags:
        if not k or len(k) > 128 or len(v) > 256:
            raise S3Error("InvalidTag", "A tag key is 1-128 characters and a value at most 256")
    return tags


def parse_int(value: str | None, name: str, default: int, lo: int, hi: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from None
    if n < lo:
        raise S3Error("InvalidArgument", f"{name} must be at least {lo}")
    return n if hi is None else min(n, hi)
