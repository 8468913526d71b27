"""XML bodies of the S3 REST API: pure builders (responses) and parsers (requests).

No I/O, no aiohttp: values in, ``bytes`` out (and the reverse). Every builder returns
UTF-8 with the ``<?xml version="1.0" encoding="UTF-8"?>`` declaration; every document
but ``<Error>`` carries the namespace ``http://s3.amazonaws.com/doc/2006-03-01/``
(S3 sends its errors without one, and botocore recognises an error body embedded in
a 200 only by the bare root tag ``Error``).

Text
----
* All text is XML-escaped (``& < > "``), and a carriage return is written as ``&#13;``
  so that a key holding ``\\r`` survives the reader's end-of-line normalisation.
* A character XML 1.0 cannot carry at all (``\\x00``-``\\x08``, ``\\x0b``, ``\\x0c``,
  ``\\x0e``-``\\x1f``, lone surrogates, ``\\ufffe``, ``\\uffff``) is never emitted: such
  a key reaches a client intact only under ``encoding_type="url"``; without it the
  character is written as U+FFFD, so one odd key cannot make the whole listing
  unparseable for every client.
* ``encoding_type="url"`` percent-encodes the UTF-8 bytes of the key-like elements the
  way S3 does (see :func:`url_encode`): space -> ``+``, ``+`` -> ``%2B``, ``/`` and ``*``
  kept, ``~`` encoded. Clients decode with form-decoding (botocore ``unquote_plus``,
  rclone ``url.QueryUnescape``), so ``+`` for space is what they expect.
* Timestamps: ISO 8601 UTC with milliseconds, ``2026-11-28T13:51:30.123Z`` (``aws s3
  sync`` compares them at millisecond precision). Naive datetimes are taken as UTC.
* ETags are passed in without quotes; builders add them (except GetObjectAttributes,
  whose ``<ETag>`` S3 sends bare). An ETag already in quotes is not quoted twice.

Parsing requests
----------------
* Parsed with expat; any DOCTYPE (so any ENTITY declaration: billion laughs, external
  entities) is refused as ``MalformedXML``, as are undefined entity references.
* Elements are matched by local name: a body in the S3 namespace, in no namespace, or
  with a prefix (``<s3:Delete xmlns:s3=...>``) reads the same.
* Anything structurally wrong (not XML, wrong root, missing or repeated element,
  unknown element, stray text, body larger than ``max_bytes``) raises
  ``XmlError("MalformedXML", ...)``. Other codes only where the document alone shows
  the fault: ``InvalidArgument`` (part number out of 1..10000), ``InvalidPartOrder``
  (parts not strictly ascending), ``InvalidTag`` (tag limits), ``NotImplemented``
  (conditional deletes). Semantic checks (keys that exist, key length, ...) are the
  caller's.
* As on S3 (and per the XML spec), a raw ``\\r`` in a request is read as ``\\n``;
  ``&#13;`` keeps it. botocore sends ``\\r`` raw, so boto3 cannot name a key containing
  ``\\r`` in DeleteObjects - on S3 either.

Body size bounds (``max_bytes``; the default of each parser is chosen to hold the
largest legitimate body with room to spare, and matches what the door reads):

==========================  ==========  ==============================================
parser                      default     why
==========================  ==========  ==============================================
parse_create_bucket         64 KiB      a LocationConstraint (plus optional extras)
parse_delete                2 MiB       1000 keys of up to 1024 UTF-8 bytes each
parse_complete_multipart    4 MiB       10,000 parts with a checksum each (~2 MiB)
parse_tagging               64 KiB      10 tags of 128 + 256 characters
==========================  ==========  ==============================================
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, NamedTuple, Sequence
from urllib.parse import quote_plus
from xml.parsers import expat

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

MAX_CREATE_BUCKET_BODY = 64 * 1024
MAX_DELETE_BODY = 2 * 1024 * 1024
MAX_COMPLETE_BODY = 4 * 1024 * 1024
MAX_TAGGING_BODY = 64 * 1024

MAX_DELETE_KEYS = 1000
MAX_PART_NUMBER = 10000
MAX_OBJECT_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_MAX_DEPTH = 32

# Order in which checksum elements are written; others follow alphabetically.
_CHECKSUM_ORDER = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "SHA512", "MD5",
                   "XXHASH64", "XXHASH3", "XXHASH128")


class XmlError(Exception):
    """A request body S3 would refuse: ``code`` is the S3 error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_MALFORMED = ("The XML you provided was not well-formed or did not validate against "
              "our published schema")


def _malformed(detail: str = "") -> XmlError:
    return XmlError("MalformedXML", _MALFORMED + (f" ({detail})" if detail else ""))


# --------------------------------------------------------------------------- values


class ObjectEntry(NamedTuple):
    """One ``<Contents>`` of a listing. ``etag`` without quotes. (A named tuple: a
    listing makes a thousand a page, and a frozen dataclass's __init__ cost more than
    the XML it feeds.)"""

    key: str
    last_modified: datetime | int  # int: nanoseconds since the epoch
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner_id: str | None = None
    owner_name: str | None = None
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True)
class PartEntry:
    """One ``<Part>`` of ListParts (or of GetObjectAttributes' ObjectParts)."""

    part_number: int
    last_modified: datetime | None
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadEntry:
    """One ``<Upload>`` of ListMultipartUploads; the initiator defaults to the owner."""

    key: str
    upload_id: str
    initiated: datetime
    owner_id: str
    owner_name: str | None = None
    initiator_id: str | None = None
    initiator_name: str | None = None
    storage_class: str = "STANDARD"
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True)
class CompletedPart:
    """One ``<Part>`` of a CompleteMultipartUpload request: ETag without quotes,
    checksums keyed by algorithm (``{"CRC32": "NhCmhg=="}``)."""

    part_number: int
    etag: str
    checksums: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- text

# Everything XML 1.0 allows in character data (Char production), inverted.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})
# Most keys need neither escaping nor replacement: one search instead of sub + translate
# (escaping was a fifth of a 1000-key listing's CPU).
_SPECIAL = re.compile("[&<>\"\r]|" + _NOT_XML.pattern)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_URL_SAFE = re.compile(r"[A-Za-z0-9_.\-/*]*\Z")
_ALG = re.compile(r"[A-Za-z0-9]+\Z")
# ETags we store: an MD5 in hex, with "-N" for multipart ones: nothing to escape or unquote.
_HEX_ETAG = re.compile(r"[0-9a-f]+(?:-[0-9]+)?\Z")


def escape(text: str) -> str:
    """XML character data for ``text``: escaped, and characters XML 1.0 cannot hold
    replaced by U+FFFD."""
    # Printable ASCII without markup characters, the usual key, skips the regex.
    if (text.isascii() and text.isprintable() and "&" not in text and "<" not in text
            and ">" not in text and '"' not in text):
        return text
    if _SPECIAL.search(text) is None:
        return text
    return _NOT_XML.sub("\ufffd", text).translate(_ESCAPES)


def url_encode(value: str) -> str:
    """Percent-encode a key the way S3 does under ``encoding-type=url``: UTF-8 bytes,
    unreserved ``A-Z a-z 0-9 - _ .`` plus ``/`` and ``*`` kept, space as ``+``,
    everything else (``+``, ``~``, ``%``, controls, non-ASCII) as ``%XX``.
    ``urllib.parse.unquote_plus`` (what botocore applies) inverts it exactly."""
    if _URL_SAFE.match(value):
        return value  # nothing to encode: the usual key, without quote_plus's cost
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")
    return quote_plus(raw, safe="/*").replace("~", "%7E")


@lru_cache(maxsize=4096)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def timestamp(when: datetime | int) -> str:
    """``2026-11-28T13:51:30.123Z``: UTC, milliseconds truncated (never rounded up).
    ``when`` is a datetime or nanoseconds since the epoch (what inodes store: listing
    formats thousands of them, and objects written together share their second)."""
    if isinstance(when, int):
        second, ns = divmod(when, 1_000_000_000)
        return f"{_utc_second(second)}.{ns // 1_000_000:03d}Z"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    else:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _quoted(etag: str) -> str:
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        return etag
    return f'"{etag}"'


def _bare(etag: str) -> str:
    if len(etag) >= 2 and etag[0] == '"' and etag[-1] == '"':
        return etag[1:-1]
    return etag


def _url(encoding_type: str | None) -> bool:
    if encoding_type is None or encoding_type == "":
        return False
    if encoding_type == "url":
        return True
    raise ValueError(f"unsupported encoding type {encoding_type!r} (the caller answers "
                     "InvalidArgument for it)")


class _W:
    """A tiny writer: elements appended to a list of str pieces."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out: list[str] = []

    def el(self, name: str, text: str | None) -> None:
        if text is None:
            return
        if text == "":
            self.out.append(f"<{name}></{name}>")
        else:
            self.out.append(f"<{name}>{escape(text)}</{name}>")

    def key(self, name: str, text: str | None, url: bool) -> None:
        if text is None:
            return
        self.el(name, url_encode(text) if url else text)

    def num(self, name: str, value: int | None) -> None:
        if value is not None:
            self.out.append(f"<{name}>{int(value)}</{name}>")

    def flag(self, name: str, value: bool) -> None:
        self.out.append(f"<{name}>{'true' if value else 'false'}</{name}>")

    def time(self, name: str, value: datetime | int | None) -> None:
        if value is not None:
            self.out.append(f"<{name}>{timestamp(value)}</{name}>")

    def open(self, name: str) -> None:
        self.out.append(f"<{name}>")

    def close(self, name: str) -> None:
        self.out.append(f"</{name}>")

    def person(self, name: str, pid: str | None, display: str | None) -> None:
        if pid is None and display is None:
            return
        self.open(name)
        self.el("ID", pid)
        self.el("DisplayName", display or None)
        self.close(name)

    def checksums(self, checksums: Mapping[str, str] | None) -> None:
        for alg, value in _ordered_checksums(checksums):
            self.el(f"Checksum{alg}", value)

    def document(self, root: str, namespace: bool = True) -> bytes:
        ns = f' xmlns="{NS}"' if namespace else ""
        body = "".join(self.out)
        if not body:
            return (DECLARATION + f"<{root}{ns}/>").encode("utf-8")
        return (DECLARATION + f"<{root}{ns}>{body}</{root}>").encode("utf-8")


def _ordered_checksums(checksums: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if not checksums:
        return []
    out: dict[str, str] = {}
    for alg, value in checksums.items():
        name = alg[len("Checksum"):] if alg.startswith("Checksum") else alg
        name = name.upper()
        if value is None or not _ALG.match(name) or name in ("TYPE", "ALGORITHM"):
            continue
        out[name] = str(value)
    rank = {a: i for i, a in enumerate(_CHECKSUM_ORDER)}
    return sorted(out.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


# --------------------------------------------------------------------------- builders


def error(code: str, message: str, *, resource: str = "", request_id: str = "",
          host_id: str = "", extra: Mapping[str, str] | None = None) -> bytes:
    """``<Error>`` (no namespace, as S3 sends it): Code, Message, each of ``extra`` as an
    element (``Key``, ``BucketName``, ``ArgumentName``...), Resource, RequestId, HostId.
    ``extra`` names that are not XML names, or that would repeat a fixed element, are
    skipped."""
    w = _W()
    w.el("Code", code)
    w.el("Message", message)
    fixed = {"Code", "Message", "Resource", "RequestId", "HostId"}
    for name, value in (extra or {}).items():
        if name in fixed or not _NAME.match(name) or name.lower().startswith("xml"):
            continue
        w.el(name, "" if value is None else str(value))
    if resource:
        w.el("Resource", resource)
    w.el("RequestId", request_id)
    if host_id:
        w.el("HostId", host_id)
    return w.document("Error", namespace=False)


def list_buckets(owner_id: str, owner_name: str | None,
                 buckets: Iterable[tuple[str, datetime]]) -> bytes:
    """ListAllMyBucketsResult."""
    w = _W()
    w.person("Owner", owner_id, owner_name)
    w.open("Buckets")
    for name, created in buckets:
        w.open("Bucket")
        w.el("Name", name)
        w.time("CreationDate", created)
        w.close("Bucket")
    w.close("Buckets")
    return w.document("ListAllMyBucketsResult")


def _contents(w: _W, entries: Iterable[ObjectEntry], url: bool, owners: bool) -> None:
    # One string per entry (the generic element writer cost a fifth of a listing's CPU);
    # same output as w.key/w.time/w.el/w.num in this order.
    out = w.out
    hex_etag = _HEX_ETAG.match
    for e in entries:
        k, modified, etag, size, storage, _, _, alg, ctype = e
        # url_encode's output is ASCII letters, digits, '-_.*/+' and %XX: nothing to escape.
        key = url_encode(k) if url else escape(k)
        if (ctype is None and not owners and storage == "STANDARD" and type(modified) is int
                and size is not None and etag and hex_etag(etag)):
            # The usual entry as one string; the same text the general path writes.
            second, ns = divmod(modified, 1_000_000_000)
            out.append(
                f"<Contents><Key>{key}</Key><LastModified>{_utc_second(second)}."
                f"{ns // 1_000_000:03d}Z</LastModified><ETag>&quot;{etag}&quot;</ETag>"
                + ("" if alg is None else f"<ChecksumAlgorithm>{escape(alg)}</ChecksumAlgorithm>"
                   if alg else "<ChecksumAlgorithm></ChecksumAlgorithm>")
                + f"<Size>{int(size)}</Size><StorageClass>STANDARD</StorageClass></Contents>")
            continue
        s = [f"<Contents><Key>{key}</Key>" if key else "<Contents><Key></Key>"]
        if e.last_modified is not None:
            s.append(f"<LastModified>{timestamp(e.last_modified)}</LastModified>")
        if e.etag is not None:
            et = e.etag[1:-1] if len(e.etag) >= 2 and e.etag[0] == e.etag[-1] == '"' else e.etag
            s.append(f"<ETag>&quot;{escape(et)}&quot;</ETag>")
        if e.checksum_algorithm is not None:
            s.append(f"<ChecksumAlgorithm>{escape(e.checksum_algorithm)}</ChecksumAlgorithm>"
                     if e.checksum_algorithm else "<ChecksumAlgorithm></ChecksumAlgorithm>")
        if e.checksum_type is not None:
            s.append(f"<ChecksumType>{escape(e.checksum_type)}</ChecksumType>"
                     if e.checksum_type else "<ChecksumType></ChecksumType>")
        if e.size is not None:
            s.append(f"<Size>{int(e.size)}</Size>")
        out.append("".join(s))
        if owners and e.owner_id is not None:
            w.person("Owner", e.owner_id, e.owner_name)
        w.el("StorageClass", e.storage_class)
        out.append("</Contents>")


def _prefixes(w: _W, prefixes: Iterable[str], url: bool) -> None:
    for p in prefixes:
        w.open("CommonPrefixes")
        w.key("Prefix", p, url)
        w.close("CommonPrefixes")


def list_objects_v1(bucket: str, prefix: str, marker: str, delimiter: str, max_keys: int,
                    is_truncated: bool, next_marker: str | None,
                    contents: Sequence[ObjectEntry], common_prefixes: Sequence[str],
                    encoding_type: str | None = None) -> bytes:
    """ListBucketResult of ListObjects (v1). Under ``encoding_type="url"`` Prefix,
    Marker, Delimiter, NextMarker, Key and CommonPrefixes/Prefix are encoded (as S3
    documents; note botocore decodes all but the top-level Prefix). Owner is written
    for every entry that has an ``owner_id`` (v1 always lists owners)."""
    url = _url(encoding_type)
    w = _W()
    w.el("Name", bucket)
    w.key("Prefix", prefix or "", url)
    w.key("Marker", marker or "", url)
    if next_marker is not None:
        w.key("NextMarker", next_marker, url)
    w.num("MaxKeys", max_keys)
    if delimiter:
        w.key("Delimiter", delimiter, url)
    if url:
        w.el("EncodingType", "url")
    w.flag("IsTruncated", is_truncated)
    _contents(w, contents, url, owners=True)
    _prefixes(w, common_prefixes, url)
    return w.document("ListBucketResult")


def list_objects_v2(bucket: str, prefix: str, delimiter: str, max_keys: int,
                    is_truncated: bool, key_count: int, continuation_token: str | None,
                    next_continuation_token: str | None, start_after: str | None,
                    contents: Sequence[ObjectEntry], common_prefixes: Sequence[str],
                    encoding_type: str | None = None, fetch_owner: bool = False) -> bytes:
    """ListBucketResult of ListObjectsV2. Under ``encoding_type="url"`` Prefix,
    Delimiter, StartAfter, Key and CommonPrefixes/Prefix are encoded; continuation
    tokens are opaque and never encoded. Owner only with ``fetch_owner``."""
    url = _url(encoding_type)
    w = _W()
    w.el("Name", bucket)
    w.key("Prefix", prefix or "", url)
    w.el("ContinuationToken", continuation_token)
    w.el("NextContinuationToken", next_continuation_token)
    w.num("KeyCount", key_count)
    w.num("MaxKeys", max_keys)
    if delimiter:
        w.key("Delimiter", delimiter, url)
    if url:
        w.el("EncodingType", "url")
    w.flag("IsTruncated", is_truncated)
    if start_after:
        w.key("StartAfter", start_after, url)
    _contents(w, contents, url, owners=fetch_owner)
    _prefixes(w, common_prefixes, url)
    return w.document("ListBucketResult")


def location(constraint: str | None) -> bytes:
    """GetBucketLocation: ``<LocationConstraint>`` holding the region, empty for
    us-east-1 (``None`` or ``""``), which botocore reports as ``None``."""
    w = _W()
    if constraint:
        w.out.append(escape(constraint))
    return w.document("LocationConstraint")


def versioning() -> bytes:
    """GetBucketVersioning of a bucket that never had versioning: an empty element."""
    return _W().document("VersioningConfiguration")


def delete_result(deleted: Iterable[str], errors: Iterable[tuple[str, str, str]],
                  encoding_type: str | None = None) -> bytes:
    """DeleteResult: a ``<Deleted><Key>`` per deleted key (pass none in quiet mode) and an
    ``<Error><Key><Code><Message>`` per failure. Keys are url-encoded only when
    ``encoding_type == "url"``; any other value is ignored (S3 models no encoding-type
    for DeleteObjects, and botocore never decodes this response)."""
    url = encoding_type == "url"
    w = _W()
    for key in deleted:
        w.open("Deleted")
        w.key("Key", key, url)
        w.close("Deleted")
    for key, code, message in errors:
        w.open("Error")
        w.key("Key", key, url)
        w.el("Code", code)
        w.el("Message", message)
        w.close("Error")
    return w.document("DeleteResult")


def copy_object_result(etag: str, last_modified: datetime,
                       checksums: Mapping[str, str] | None = None,
                       checksum_type: str | None = None) -> bytes:
    """CopyObjectResult: LastModified, ETag (quoted), ChecksumType, Checksum<ALG>."""
    w = _W()
    w.time("LastModified", last_modified)
    w.el("ETag", _quoted(etag))
    if checksums:
        w.el("ChecksumType", checksum_type)
    w.checksums(checksums)
    return w.document("CopyObjectResult")


def copy_part_result(etag: str, last_modified: datetime,
                     checksums: Mapping[str, str] | None = None) -> bytes:
    """CopyPartResult (UploadPartCopy): LastModified, ETag (quoted), Checksum<ALG>."""
    w = _W()
    w.time("LastModified", last_modified)
    w.el("ETag", _quoted(etag))
    w.checksums(checksums)
    return w.document("CopyPartResult")


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    """InitiateMultipartUploadResult."""
    w = _W()
    w.el("Bucket", bucket)
    w.el("Key", key)
    w.el("UploadId", upload_id)
    return w.document("InitiateMultipartUploadResult")


def complete_multipart_result(location: str, bucket: str, key: str, etag: str,
                              checksums: Mapping[str, str] | None = None,
                              checksum_type: str | None = None) -> bytes:
    """CompleteMultipartUploadResult: Location, Bucket, Key, ETag (quoted), checksums."""
    w = _W()
    w.el("Location", location)
    w.el("Bucket", bucket)
    w.el("Key", key)
    w.el("ETag", _quoted(etag))
    w.checksums(checksums)
    if checksums:
        w.el("ChecksumType", checksum_type)
    return w.document("CompleteMultipartUploadResult")


def list_parts(bucket: str, key: str, upload_id: str, part_number_marker: int,
               next_part_number_marker: int | None, max_parts: int, is_truncated: bool,
               parts: Sequence[PartEntry], owner_id: str | None = None,
               initiator_id: str | None = None, storage_class: str = "STANDARD", *,
               owner_name: str | None = None, initiator_name: str | None = None,
               checksum_algorithm: str | None = None,
               checksum_type: str | None = None) -> bytes:
    """ListPartsResult. ``initiator_id`` defaults to ``owner_id``."""
    w = _W()
    w.el("Bucket", bucket)
    w.el("Key", key)
    w.el("UploadId", upload_id)
    if initiator_id is None:
        initiator_id, initiator_name = owner_id, initiator_name or owner_name
    w.person("Initiator", initiator_id, initiator_name)
    w.person("Owner", owner_id, owner_name)
    w.el("StorageClass", storage_class)
    w.num("PartNumberMarker", part_number_marker)
    w.num("NextPartNumberMarker", next_part_number_marker)
    w.num("MaxParts", max_parts)
    w.flag("IsTruncated", is_truncated)
    w.el("ChecksumAlgorithm", checksum_algorithm)
    w.el("ChecksumType", checksum_type)
    for p in parts:
        w.open("Part")
        w.num("PartNumber", p.part_number)
        w.time("LastModified", p.last_modified)
        w.el("ETag", _quoted(p.etag))
        w.num("Size", p.size)
        w.checksums(p.checksums)
        w.close("Part")
    return w.document("ListPartsResult")


def list_multipart_uploads(bucket: str, key_marker: str, upload_id_marker: str,
                           next_key_marker: str | None, next_upload_id_marker: str | None,
                           prefix: str, delimiter: str, max_uploads: int,
                           is_truncated: bool, uploads: Sequence[UploadEntry],
                           common_prefixes: Sequence[str],
                           encoding_type: str | None = None) -> bytes:
    """ListMultipartUploadsResult. Under ``encoding_type="url"`` KeyMarker,
    NextKeyMarker, Prefix, Delimiter, Key and CommonPrefixes/Prefix are encoded
    (botocore does not decode this operation by itself: only callers that asked)."""
    url = _url(encoding_type)
    w = _W()
    w.el("Bucket", bucket)
    w.key("KeyMarker", key_marker or "", url)
    w.el("UploadIdMarker", upload_id_marker or "")
    w.key("NextKeyMarker", next_key_marker, url)
    w.el("NextUploadIdMarker", next_upload_id_marker)
    if delimiter:
        w.key("Delimiter", delimiter, url)
    if prefix:
        w.key("Prefix", prefix, url)
    w.num("MaxUploads", max_uploads)
    if url:
        w.el("EncodingType", "url")
    w.flag("IsTruncated", is_truncated)
    for u in uploads:
        w.open("Upload")
        w.key("Key", u.key, url)
        w.el("UploadId", u.upload_id)
        if u.initiator_id is None:
            w.person("Initiator", u.owner_id, u.initiator_name or u.owner_name)
        else:
            w.person("Initiator", u.initiator_id, u.initiator_name)
        w.person("Owner", u.owner_id, u.owner_name)
        w.el("StorageClass", u.storage_class)
        w.time("Initiated", u.initiated)
        w.el("ChecksumAlgorithm", u.checksum_algorithm)
        w.el("ChecksumType", u.checksum_type)
        w.close("Upload")
    _prefixes(w, common_prefixes, url)
    return w.document("ListMultipartUploadsResult")


def tagging(tags: Iterable[tuple[str, str]]) -> bytes:
    """Tagging (GetObjectTagging): ``<TagSet>`` of ``<Tag><Key/><Value/></Tag>``."""
    w = _W()
    w.open("TagSet")
    for k, v in tags:
        w.open("Tag")
        w.el("Key", k)
        w.el("Value", v)
        w.close("Tag")
    w.close("TagSet")
    return w.document("Tagging")


def get_object_attributes(*, etag: str | None = None, size: int | None = None,
                          storage_class: str | None = None,
                          checksums: Mapping[str, str] | None = None,
                          checksum_type: str | None = None,
                          parts_count: int | None = None,
                          parts: Sequence[PartEntry] | None = None,
                          part_number_marker: int = 0,
                          next_part_number_marker: int | None = None,
                          max_parts: int = 1000, is_truncated: bool = False) -> bytes:
    """GetObjectAttributesResponse (that root name, as S3 sends it). Each argument left
    ``None`` is an attribute not asked for and is omitted. The ETag is bare (S3 sends
    this one unquoted). ``parts_count`` alone gives ``<ObjectParts><PartsCount>``;
    with ``parts`` the page (markers, MaxParts, IsTruncated, Part*) is added."""
    w = _W()
    if etag is not None:
        w.el("ETag", _bare(etag))
    if checksums:
        w.open("Checksum")
        w.checksums(checksums)
        w.el("ChecksumType", checksum_type)
        w.close("Checksum")
    if parts_count is not None or parts is not None:
        w.open("ObjectParts")
        w.num("PartsCount", parts_count if parts_count is not None else len(parts or ()))
        if parts is not None:
            w.num("PartNumberMarker", part_number_marker)
            nxt = next_part_number_marker
            if nxt is None:
                nxt = parts[-1].part_number if parts else part_number_marker
            w.num("NextPartNumberMarker", nxt)
            w.num("MaxParts", max_parts)
            w.flag("IsTruncated", is_truncated)
            for p in parts:
                w.open("Part")
                w.num("PartNumber", p.part_number)
                w.num("Size", p.size)
                w.checksums(p.checksums)
                w.close("Part")
        w.close("ObjectParts")
    w.el("StorageClass", storage_class)
    w.num("ObjectSize", size)
    return w.document("GetObjectAttributesResponse")


# --------------------------------------------------------------------------- parsing


class _Node:
    __slots__ = ("tag", "children", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.children: list[_Node] = []
        self.text: list[str] = []

    @property
    def value(self) -> str:
        return "".join(self.text)

    def only(self, *allowed: str) -> None:
        """Refuse unknown children and stray text in a container element."""
        if self.value.strip(" \t\r\n"):
            raise _malformed(f"unexpected text in <{self.tag}>")
        for c in self.children:
            if c.tag not in allowed:
                raise _malformed(f"unexpected element <{c.tag}> in <{self.tag}>")

    def leaf(self) -> str:
        if self.children:
            raise _malformed(f"unexpected element <{self.children[0].tag}> in <{self.tag}>")
        return self.value

    def one(self, tag: str, required: bool = True) -> _Node | None:
        found = [c for c in self.children if c.tag == tag]
        if len(found) > 1:
            raise _malformed(f"<{tag}> given more than once in <{self.tag}>")
        if not found:
            if required:
                raise _malformed(f"<{tag}> is missing from <{self.tag}>")
            return None
        return found[0]

    def text_of(self, tag: str, required: bool = True) -> str | None:
        node = self.one(tag, required)
        return None if node is None else node.leaf()


def _refuse_dtd(*_: Any) -> None:
    raise _malformed("DOCTYPE and ENTITY declarations are not allowed")


def _as_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise _malformed("the body is not bytes")


def _parse(body: bytes, max_bytes: int, root: str) -> _Node:
    """Parse ``body`` into a small tree of local names; the root must be ``root``."""
    body = _as_bytes(body)
    if len(body) > max_bytes:
        raise _malformed(f"the body is larger than {max_bytes} bytes")
    if not body.strip(b" \t\r\n"):
        raise _malformed("the body is empty")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.NotationDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd

    stack: list[_Node] = []
    top: list[_Node] = []

    def start(name: str, _attrs: Any) -> None:
        node = _Node(name.rpartition(" ")[2])
        if stack:
            stack[-1].children.append(node)
        else:
            top.append(node)
        stack.append(node)
        if len(stack) > _MAX_DEPTH:
            raise _malformed("elements nested too deeply")

    def end(_name: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except XmlError:
        raise
    except expat.ExpatError as e:
        raise _malformed(expat.ErrorString(e.code) if e.code else str(e)) from None
    except (ValueError, LookupError, UnicodeError, RecursionError, MemoryError):
        raise _malformed("the body could not be read as XML") from None
    if len(top) != 1:
        raise _malformed("the body has no root element")
    node = top[0]
    if node.tag != root:
        raise _malformed(f"the root element must be <{root}>, not <{node.tag}>")
    return node


def parse_create_bucket(body: bytes, max_bytes: int = MAX_CREATE_BUCKET_BODY) -> str | None:
    """CreateBucketConfiguration -> its LocationConstraint, or None when the body is
    empty or names none. Other elements (Location, Bucket, Tags: directory buckets and
    tags-at-creation) are accepted and ignored."""
    body = _as_bytes(body)
    if len(body) <= max_bytes and not body.strip(b" \t\r\n"):
        return None
    root = _parse(body, max_bytes, "CreateBucketConfiguration")
    if root.value.strip(" \t\r\n"):
        raise _malformed("unexpected text in <CreateBucketConfiguration>")
    text = root.text_of("LocationConstraint", required=False)
    if text is None:
        return None
    return text.strip(" \t\r\n") or None


_XML_TRUE = {"true": True, "1": True, "false": False, "0": False}


def parse_delete(body: bytes,
                 max_bytes: int = MAX_DELETE_BODY) -> tuple[bool, list[tuple[str, str | None]]]:
    """Delete (DeleteObjects) -> ``(quiet, [(key, version_id or None), ...])`` in request
    order. No objects, or more than 1000 -> MalformedXML (as S3). Keys are returned
    verbatim (an empty ``<Key/>`` gives ``""``: the caller judges keys). The conditional
    fields (ETag, LastModifiedTime, Size) -> NotImplemented rather than be ignored."""
    root = _parse(body, max_bytes, "Delete")
    root.only("Object", "Quiet")
    quiet = False
    q = root.text_of("Quiet", required=False)
    if q is not None:
        flag = _XML_TRUE.get(q.strip(" \t\r\n").lower())
        if flag is None:
            raise _malformed("<Quiet> must be true or false")
        quiet = flag
    objects = [c for c in root.children if c.tag == "Object"]
    if not objects:
        raise _malformed("<Delete> names no <Object>")
    if len(objects) > MAX_DELETE_KEYS:
        raise _malformed(f"<Delete> names more than {MAX_DELETE_KEYS} objects")
    keys: list[tuple[str, str | None]] = []
    for obj in objects:
        for c in obj.children:
            if c.tag in ("ETag", "LastModifiedTime", "Size"):
                raise XmlError("NotImplemented",
                               f"Conditional deletes (<{c.tag}> in <Object>) are not supported")
        obj.only("Key", "VersionId")
        key = obj.text_of("Key")
        assert key is not None
        keys.append((key, obj.text_of("VersionId", required=False)))
    return quiet, keys


_INT = re.compile(r"[+-]?[0-9]{1,20}\Z")


def parse_complete_multipart(body: bytes,
                             max_bytes: int = MAX_COMPLETE_BODY) -> list[CompletedPart]:
    """CompleteMultipartUpload -> its parts, in request order.

    * no parts, a part without PartNumber or ETag, a PartNumber that is not an
      integer -> MalformedXML;
    * a PartNumber outside 1..10000 -> InvalidArgument;
    * part numbers not strictly ascending (including repeats) -> InvalidPartOrder.

    ETags come back without their quotes (``"abc"``, ``&quot;abc&quot;`` and ``abc``
    all give ``abc``); ``<ChecksumCRC32>`` and friends as ``{"CRC32": value}``."""
    root = _parse(body, max_bytes, "CompleteMultipartUpload")
    root.only("Part")
    if not root.children:
        raise _malformed("<CompleteMultipartUpload> names no <Part>")
    if len(root.children) > MAX_PART_NUMBER:
        raise _malformed(f"<CompleteMultipartUpload> names more than {MAX_PART_NUMBER} parts")
    parts: list[CompletedPart] = []
    last = 0
    for part in root.children:
        checksums: dict[str, str] = {}
        for c in part.children:
            if c.tag in ("PartNumber", "ETag"):
                continue
            alg = c.tag[len("Checksum"):] if c.tag.startswith("Checksum") else ""
            if not alg or not _ALG.match(alg) or alg in ("Type", "Algorithm"):
                raise _malformed(f"unexpected element <{c.tag}> in <Part>")
            if alg in checksums:
                raise _malformed(f"<{c.tag}> given more than once in <Part>")
            checksums[alg] = c.leaf().strip(" \t\r\n")
        part.only(*(c.tag for c in part.children))  # stray text only
        raw_number = part.text_of("PartNumber")
        raw_etag = part.text_of("ETag")
        assert raw_number is not None and raw_etag is not None
        number_text = raw_number.strip(" \t\r\n")
        if not _INT.match(number_text):
            raise _malformed("<PartNumber> must be an integer")
        number = int(number_text)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise XmlError("InvalidArgument",
                           f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, "
                           "inclusive")
        if number <= last:
            raise XmlError("InvalidPartOrder",
                           "The list of parts was not in ascending order. The parts list must "
                           "be specified in order by part number.")
        last = number
        parts.append(CompletedPart(number, _bare(raw_etag.strip(" \t\r\n")), checksums))
    return parts


def parse_tagging(body: bytes, max_bytes: int = MAX_TAGGING_BODY,
                  max_tags: int = MAX_OBJECT_TAGS) -> list[tuple[str, str]]:
    """Tagging (PutObjectTagging) -> ``[(key, value), ...]`` in request order. An empty
    TagSet is allowed (it clears the tags). S3's limits give InvalidTag: more than
    ``max_tags`` tags (10 on objects; pass 50 for buckets), an empty key, a key over
    128 or a value over 256 characters, a key given twice. No TagSet, or a Tag
    without its Key or Value -> MalformedXML."""
    root = _parse(body, max_bytes, "Tagging")
    root.only("TagSet")
    tagset = root.one("TagSet")
    assert tagset is not None
    tagset.only("Tag")
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for tag in tagset.children:
        tag.only("Key", "Value")
        key = tag.text_of("Key")
        value = tag.text_of("Value")
        assert key is not None and value is not None
        tags.append((key, value))
    if len(tags) > max_tags:
        raise XmlError("InvalidTag", f"Object tags cannot be greater than {max_tags}")
    for key, value in tags:
        if not key:
            raise XmlError("InvalidTag", "The TagKey you have provided is invalid")
        if len(key) > MAX_TAG_KEY:
            raise XmlError("InvalidTag",
                           f"The TagKey you have provided is too long, max {MAX_TAG_KEY}")
        if len(value) > MAX_TAG_VALUE:
            raise XmlError("InvalidTag",
                           f"The TagValue you have provided is too long, max {MAX_TAG_VALUE}")
        if key in seen:
            raise XmlError("InvalidTag", "Cannot provide multiple Tags with the same key")
        seen.add(key)
    return tags


__all__ = [
    "NS", "XmlError", "ObjectEntry", "PartEntry", "UploadEntry", "CompletedPart",
    "escape", "url_encode", "timestamp",
    "error", "list_buckets", "list_objects_v1", "list_objects_v2", "location", "versioning",
    "delete_result", "copy_object_result", "copy_part_result", "initiate_multipart",
    "complete_multipart_result", "list_parts", "list_multipart_uploads", "tagging",
    "get_object_attributes",
    "parse_create_bucket", "parse_delete", "parse_complete_multipart", "parse_tagging",
    "MAX_CREATE_BUCKET_BODY", "MAX_DELETE_BODY", "MAX_COMPLETE_BODY", "MAX_TAGGING_BODY",
]
