"""One S3 request as the handlers see it: who, which bucket and key, what query."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from aiohttp import web

from ..vfs import Caller
from . import sigv4
from .errors import S3Error
from .request import Target, parse_query, split_target

if TYPE_CHECKING:
    from .app import S3Door

# Request ids need to be unique, not secret: a random per-process prefix and a counter
# (a urandom call per request showed in the small-GET profile).
_ID_PREFIX = secrets.token_hex(4).upper()
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08X}"


# x-amz-id-2 and an error's HostId: which host and process answered, as AWS's extended
# request id does for support cases; opaque, the same for every answer of this process.
HOST_ID = base64.b64encode(
    hashlib.sha256(f"{socket.gethostname()}/{_ID_PREFIX}".encode()).digest()).decode()


# Anonymous callers (public buckets only) act as "nobody".
ANONYMOUS = Caller(65534, 65534)


@dataclass(slots=True)
class Ctx:
    door: S3Door
    request: web.Request
    headers: dict[str, str]          # lower-cased names, repeated values joined by ','
    raw_path: str
    raw_query: str
    query: dict[str, str]
    target: Target
    caller: Caller = ANONYMOUS
    access_key: str | None = None
    verified: sigv4.Verified | None = None
    request_id: str = field(default_factory=new_request_id)

    @property
    def bucket(self) -> str:
        if self.target.bucket is None:
            raise S3Error("InvalidRequest", "this operation needs a bucket")
        return self.target.bucket

    @property
    def key(self) -> str:
        if self.target.key is None:
            raise S3Error("InvalidRequest", "this operation needs a key")
        return self.target.key

    @property
    def anonymous(self) -> bool:
        return self.access_key is None

    def sigv4_request(self) -> sigv4.Request:
        return sigv4.Request(self.request.method, self.raw_path, self.raw_query, self.headers)


def build_ctx(door: S3Door, request: web.Request) -> Ctx:
    headers: dict[str, str] = {}
    for name, value in request.raw_headers:
        n = name.decode("latin-1").lower()
        v = value.decode("latin-1")
        headers[n] = f"{headers[n]},{v}" if n in headers else v
    raw = request.raw_path
    raw_path, _, raw_query = raw.partition("?")
    target = split_target(raw_path, headers.get("host", ""), door.domain)
    query = parse_query(raw_query) if raw_query else {}
    return Ctx(door, request, headers, raw_path, raw_query, query, target)


def now() -> datetime:
    return datetime.now(timezone.utc)
