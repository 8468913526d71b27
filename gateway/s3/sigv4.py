"""AWS Signature Version 4 for S3, sans-IO: functions over strings and bytes, no sockets.

The door turns the wire request into a `Request` (method, RAW path, RAW query, lower-cased
headers), calls `parse` (None = anonymous) and then `verify` with the secret it found for
`auth.credential.access_key`. Bodies are never read here: a hex x-amz-content-sha256 is
checked by the door as the body streams, and aws-chunked bodies are checked chunk by chunk
with `chunk_signature` / `trailer_signature`, chained from `Verified.seed_signature`.

Canonical forms are computed from the raw path and query (FACTS.md: aiohttp decodes %2F to
'/', and its `request.query` drops duplicate keys and turns '+' into a space). Each path
segment and query component is percent-decoded to BYTES and re-encoded with AWS's rules, so
a client that left some characters unescaped still matches, and an escaped %2F inside a key
stays %2F. Header values are taken as the door decodes them (latin-1, i.e. the wire bytes)
and signed as those bytes. Whatever the input, only AuthError leaves parse and verify.
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import hmac
import re
from functools import cached_property, lru_cache
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PAYLOAD_MODES = (UNSIGNED, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
MAX_EXPIRES = 604800  # seven days, the longest a presigned URL may live (AWS)

_V2_MESSAGE = ("Signature Version 2 is not supported by this server; "
               "sign requests with Signature Version 4 (AWS4-HMAC-SHA256)")
_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
             "Check your key and signing method.")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower case
_SPACES = re.compile(r"[ \t]+")
# Query parameters of a presigned URL; X-Amz-Signature is the one left out of the canonical query.
_Q_ALG, _Q_CRED, _Q_DATE, _Q_EXP = "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires"
_Q_SH, _Q_SIG, _Q_SHA = "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Content-Sha256"
_AUTH_PARAMS = frozenset((_Q_ALG, _Q_CRED, _Q_DATE, _Q_EXP, _Q_SH, _Q_SIG, _Q_SHA))
_REQUIRED_PARAMS = _AUTH_PARAMS - {_Q_SHA}
_EXPIRES = re.compile(r"[0-9]{1,9}")
_DAY = re.compile(r"[0-9]{8}")


class AuthError(Exception):
    """A request S3 would refuse; `code` is the S3 error code. `extra` holds the fields AWS adds
    to such an error (StringToSign, CanonicalRequest, ...) for the door to put in the reply."""

    def __init__(self, code: str, message: str, extra: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra: dict[str, str] = dict(extra or {})


# Request and Verified are made once per request: plain slotted classes (a frozen
# dataclass's __init__ costs three times as much). Treat them as values all the same.
@dataclass(slots=True)
class Request:
    method: str
    raw_path: str                 # percent-encoded as sent, without '?query'
    raw_query: str                # as sent, without '?'
    headers: Mapping[str, str]    # lower-case names, repeated headers joined with ','


@dataclass(frozen=True)
class Credential:
    access_key: str
    date: str
    region: str
    service: str

    @cached_property  # credentials are cached per value (_parse_credential): computed once
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class Auth:
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str                # lower-case hex
    amz_date: str                 # YYYYMMDD'T'HHMMSS'Z'
    payload_hash: str
    presigned: bool
    expires: int | None = None


@dataclass(slots=True)
class Verified:
    auth: Auth
    signing_key: bytes = field(repr=False)
    scope: str
    seed_signature: str


# -- text helpers ---------------------------------------------------------------------------

def _utf8(s: str) -> bytes:
    # Never raises: surrogateescape gives back bytes that came in as undecodable UTF-8,
    # surrogatepass covers any other lone surrogate a caller might hand over.
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass")


_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


def _aws_quote(raw: str) -> str:
    if _UNRESERVED.fullmatch(raw):
        return raw  # already canonical: signatures, dates, most names and values
    return _aws_quote_escaped(raw)


@lru_cache(maxsize=8192)  # the same segments and credentials recur request after request
def _aws_quote_escaped(raw: str) -> str:
    # Decode to bytes first ('+' stays '+', a stray '%' stays a literal '%', as in
    # urllib and in the door's key decoder), then encode all but A-Za-z0-9-_.~ as %XX.
    return quote(unquote_to_bytes(_utf8(raw)), safe="-_.~")


def _wire_text(value: str) -> str:
    # The door decodes header bytes as latin-1; clients sign the bytes they send (UTF-8 in
    # practice). Recover those bytes and carry them through the str canonical request.
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = _utf8(value)
    return raw.decode("utf-8", "surrogateescape")


@lru_cache(maxsize=256)  # a new query is split once, not by each of its cached readers
def query_pairs(raw_query: str) -> tuple[tuple[str, str], ...]:
    """(key, value) pairs of the raw query, still encoded; empty parts are skipped."""
    return tuple([(k, v) for k, _, v in (part.partition("=") for part in raw_query.split("&") if part)])



def _decode(raw: str) -> str:
    if "%" not in raw and raw.isascii():
        return raw  # signatures, dates, SignedHeaders: nothing to decode
    return _decode_escaped(raw)


@lru_cache(maxsize=1024)  # the credential (the one escaped parameter) recurs
def _decode_escaped(raw: str) -> str:
    return unquote_to_bytes(_utf8(raw)).decode("utf-8", "replace")


@lru_cache(maxsize=1024)
def _epoch(amz_date: str) -> int:
    t = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")  # ValueError for 20131324T...
    return calendar.timegm(t.timetuple())


def _valid_amz_date(s: str) -> bool:
    if not _AMZ_DATE.fullmatch(s):  # first: strptime alone accepts short fields
        return False
    try:
        _epoch(s)
    except ValueError:
        return False
    return True


# -- parsing ----------------------------------------------------------------------------------

def parse(req: Request) -> Auth | None:
    """The signature claim of a request, not yet verified; None for an anonymous request."""
    headers = req.headers
    authorization = headers.get("authorization")
    raw_query = req.raw_query
    presigned, v2 = _query_kind(raw_query) if raw_query else (False, False)
    if authorization is not None and presigned:
        raise AuthError("InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                        "query parameter or the Authorization header should be specified")
    if authorization is not None:
        return _parse_header(authorization, headers)
    if presigned:
        return _presigned_auth(raw_query)
    if v2:
        raise AuthError("InvalidRequest", _V2_MESSAGE)
    return None


# Everything SigV4 derives from a raw query string alone is cached by that string: a
# presigned URL is fetched again and again, and its query is most of a small GET's
# parsing. Pure functions of the string, so two different queries never share an entry;
# an AuthError is raised afresh each time (lru_cache keeps no exceptions).
QUERY_CACHE_SIZE = 2048


def _query_params(raw_query: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for k, v in query_pairs(raw_query):
        name = k if "%" not in k and k.isascii() else _decode_escaped(k)
        if name in query:
            if name in _AUTH_PARAMS:
                raise AuthError("AuthorizationQueryParametersError", f"{name} appears more than once")
            continue
        query[name] = v if "%" not in v and v.isascii() else _decode_escaped(v)
    return query


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _query_kind(raw_query: str) -> tuple[bool, bool]:
    """(presigned, SigV2 query auth) of a query string."""
    query = _query_params(raw_query)
    presigned = _Q_ALG in query or _Q_CRED in query or _Q_SIG in query
    return presigned, "AWSAccessKeyId" in query and "Signature" in query


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _presigned_auth(raw_query: str) -> Auth:
    return _parse_query(_query_params(raw_query))  # Auth is frozen: safe to share


class _Malformed(AuthError):
    def __init__(self, what: str) -> None:
        super().__init__("AuthorizationHeaderMalformed", f"The authorization header is malformed; {what}.")


class _MalformedQuery(_Malformed):
    def __init__(self, what: str) -> None:
        AuthError.__init__(self, "AuthorizationQueryParametersError",
                           f"Error parsing the presigned URL's X-Amz- query parameters; {what}.")


def _clip(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")  # client text echoed in errors


@lru_cache(maxsize=1024)  # pure; one credential per identity and day recurs
def _parse_credential(value: str, malformed: type[_Malformed]) -> Credential:
    parts = value.rsplit("/", 4)  # from the right: the access key is the only free-form part
    if (len(parts) != 5 or not parts[0] or not _DAY.fullmatch(parts[1])
            or not parts[2] or not parts[3] or parts[4] != "aws4_request"):
        raise malformed(f"the Credential is mal-formed; expecting "
                        f"\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\", got {_clip(value)}")
    return Credential(parts[0], parts[1], parts[2], parts[3])


@lru_cache(maxsize=1024)  # pure; clients send a handful of distinct lists
def _parse_signed_headers(value: str, malformed: type[_Malformed]) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not value or not all(_HEADER_NAME.fullmatch(n) for n in names) or len(set(names)) != len(names):
        raise malformed("SignedHeaders must be distinct lower-case header names separated by ';', "
                        f"got {_clip(value)}")
    if "host" not in names:
        raise malformed("SignedHeaders must include host")
    return names


def _parse_signature(value: str, malformed: type[_Malformed]) -> str:
    if not _HEX64.fullmatch(value):
        raise malformed("the Signature must be 64 hexadecimal digits")
    return value.lower()


def _parse_header(value: str, headers: Mapping[str, str]) -> Auth:
    scheme, _, rest = value.strip(" \t").partition(" ")
    if scheme == "AWS":
        raise AuthError("InvalidRequest", _V2_MESSAGE)
    if scheme.startswith("AWS4-ECDSA"):
        raise AuthError("InvalidRequest", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported; "
                        "use Signature Version 4 (AWS4-HMAC-SHA256)")
    if scheme != ALGORITHM:
        raise _Malformed(f"the authorization mechanism must be {ALGORITHM}, got {_clip(scheme)}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        k, eq, v = part.strip(" \t").partition("=")
        k = k.strip(" \t")
        if not eq or k not in ("Credential", "SignedHeaders", "Signature") or k in fields:
            raise _Malformed(f"expecting Credential=..., SignedHeaders=..., Signature=... "
                             f"separated by commas, got {_clip(part.strip())}")
        fields[k] = v.strip(" \t")
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise _Malformed(f"missing {', '.join(missing)}")
    credential = _parse_credential(fields["Credential"], _Malformed)
    signed = _parse_signed_headers(fields["SignedHeaders"], _Malformed)
    signature = _parse_signature(fields["Signature"], _Malformed)
    amz_date = _header_date(headers)
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise AuthError("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    if payload not in PAYLOAD_MODES and not _HEX64.fullmatch(payload):
        raise AuthError("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                        f"{STREAMING_SIGNED}, {STREAMING_SIGNED_TRAILER}, {STREAMING_UNSIGNED_TRAILER} "
                        "or a valid sha256 value.")
    return Auth(credential, signed, signature, amz_date, payload, presigned=False)


def _header_date(headers: Mapping[str, str]) -> str:
    # x-amz-date wins over Date; a present but bad x-amz-date is an error, not a fallback.
    bad = AuthError("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    amz = headers.get("x-amz-date")
    if amz is not None:
        amz = amz.strip(" \t")
        if not _valid_amz_date(amz):
            raise bad
        return amz
    date = headers.get("date")
    if date is None:
        raise bad
    try:
        t = email.utils.parsedate_to_datetime(date)
        if t.tzinfo is None:
            raise ValueError("no zone")
        return t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    except Exception:  # email.utils raises TypeError, ValueError, IndexError... on junk
        raise bad from None


def _parse_query(query: Mapping[str, str]) -> Auth:
    required = (_Q_ALG, _Q_CRED, _Q_SIG, _Q_DATE, _Q_SH, _Q_EXP)
    missing = [] if query.keys() >= _REQUIRED_PARAMS else [k for k in required if k not in query]
    if missing:
        raise AuthError("AuthorizationQueryParametersError",
                        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters; "
                        f"missing {', '.join(missing)}.")
    if query[_Q_ALG] != ALGORITHM:
        raise AuthError("AuthorizationQueryParametersError", f"X-Amz-Algorithm only supports \"{ALGORITHM}\"")
    amz_date = query[_Q_DATE]
    if not _valid_amz_date(amz_date):
        raise AuthError("AuthorizationQueryParametersError",
                        "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    exp = query[_Q_EXP]
    if not _EXPIRES.fullmatch(exp):
        raise AuthError("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    # Presigned URLs carry no payload hash unless the signer put one in the query (MinIO's rule).
    payload = query.get(_Q_SHA, UNSIGNED)
    if payload != UNSIGNED and not _HEX64.fullmatch(payload):
        raise AuthError("InvalidRequest", "a presigned URL must use UNSIGNED-PAYLOAD or a sha256 value")
    return Auth(_parse_credential(query[_Q_CRED], _MalformedQuery),
                _parse_signed_headers(query[_Q_SH], _MalformedQuery),
                _parse_signature(query[_Q_SIG], _MalformedQuery),
                amz_date, payload, presigned=True, expires=int(exp))


# -- signing ----------------------------------------------------------------------------------

def canonical_request(req: Request, auth: Auth) -> str:
    """The SigV4 canonical request for S3 (no path normalisation, single encoding)."""
    raw_path = req.raw_path
    if not raw_path:
        uri = "/"
    elif _UNRESERVED_PATH.fullmatch(raw_path):
        uri = raw_path  # every segment canonical already
    else:
        uri = "/".join([_aws_quote(seg) for seg in raw_path.split("/")])
    query = canonical_query(req.raw_query, auth.presigned) if req.raw_query else ""
    # In SignedHeaders order: clients send that list sorted, and it is what they signed.
    lines = []
    headers = req.headers
    for name in auth.signed_headers:
        value = headers.get(name, "")
        if value.isascii() and "  " not in value and "\t" not in value:
            value = value.strip(" ")  # the usual header: nothing to recode or fold
        else:
            value = _SPACES.sub(" ", _wire_text(value)).strip(" ")
        lines.append(f"{name}:{value}\n")
    return "\n".join([req.method, uri, query, "".join(lines), ";".join(auth.signed_headers),
                      auth.payload_hash])


@lru_cache(maxsize=QUERY_CACHE_SIZE)  # see _query_kind
def canonical_query(raw_query: str, presigned: bool) -> str:
    """The canonical query string of a raw query; a presigned request leaves out its
    X-Amz-Signature."""
    pairs = []
    canonical = _UNRESERVED.fullmatch  # inlined _aws_quote: a dozen calls a request
    for k, v in query_pairs(raw_query):
        if presigned and k == _Q_SIG:
            continue  # X-Amz-Signature as sent (an escaped form of it is canonicalised below)
        key = k if canonical(k) else _aws_quote_escaped(k)
        if presigned and key == _Q_SIG:
            continue
        pairs.append((key, v if canonical(v) else _aws_quote_escaped(v)))
    pairs.sort()
    return "&".join([f"{k}={v}" for k, v in pairs])


def string_to_sign(auth: Auth, canonical: str) -> str:
    return _string_to_sign(auth.amz_date, auth.credential.scope, canonical)


def _string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(_utf8(canonical)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=256)  # four HMACs per request otherwise; one key per identity and day
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _utf8("AWS4" + secret_key)
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, _utf8(part), hashlib.sha256).digest()
    return key


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _expected_signature(key: bytes, amz_date: str, scope: str, canonical: str) -> tuple[str, bytes]:
    """(string to sign, the signature it must carry, as ASCII bytes). A pure function of
    its arguments, cached: the same canonical request under the same signing key and
    date is one presigned URL fetched again, whose hashing and HMAC were a tenth of a
    small GET. The claimed signature is still compared with this every time."""
    to_sign = _string_to_sign(amz_date, scope, canonical)
    return to_sign, _sign(key, to_sign).encode()


def _sign(key: bytes, text: str) -> str:
    # A copy of the keyed HMAC state (the key's two SHA-256 blocks hashed once per
    # signing key) costs less than hmac.digest's fresh key setup per message.
    h = _keyed(key).copy()
    h.update(_utf8(text))
    return h.hexdigest()


@lru_cache(maxsize=256)  # one per signing key (identity and day), as signing_key
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


_SKEW = timedelta(minutes=15)
_SKEW_S = int(_SKEW.total_seconds())
_PRESIGN = timedelta(days=7)


def verify(req: Request, auth: Auth, secret_key: str, now: datetime, *,
           max_skew: timedelta = _SKEW, max_presign: timedelta = _PRESIGN) -> Verified:
    """Check the claim `parse` returned against the secret; raise AuthError or return the
    key material the door needs for a streaming body."""
    cred = auth.credential
    bad = "AuthorizationQueryParametersError" if auth.presigned else "AuthorizationHeaderMalformed"
    if cred.service != "s3":
        raise AuthError(bad, f"the service {_clip(cred.service)} in the credential is wrong; expecting 's3'")
    if cred.date != auth.amz_date[:8]:
        raise AuthError(bad, f"Invalid credential date '{cred.date}'. This date is not the same as "
                        f"X-Amz-Date: '{auth.amz_date[:8]}'.")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    # Epoch seconds, not datetimes: year-9999 dates plus an expiry must not overflow.
    t_now = int(now.timestamp())
    if not _valid_amz_date(auth.amz_date):
        raise AuthError(bad, f"the request date {_clip(auth.amz_date)} is not yyyyMMdd'T'HHmmss'Z'")
    t_req = _epoch(auth.amz_date)
    skew = _SKEW_S if max_skew is _SKEW else int(max_skew.total_seconds())
    if auth.presigned:
        expires = auth.expires or 0
        longest = MAX_EXPIRES if max_presign is _PRESIGN else min(MAX_EXPIRES, int(max_presign.total_seconds()))
        if not 1 <= expires <= longest:
            raise AuthError("AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week "
                            "(in seconds) that is 604800 and at least 1")
        if t_now > t_req + expires:
            raise AuthError("AccessDenied", "Request has expired",
                            {"X-Amz-Expires": str(expires), "Expires": _iso(t_req + expires),
                             "ServerTime": _iso(t_now)})
        if t_req > t_now + skew:
            raise AuthError("AccessDenied", "Request is not valid yet", {"ServerTime": _iso(t_now)})
    elif abs(t_now - t_req) > skew:
        raise AuthError("RequestTimeTooSkewed",
                        "The difference between the request time and the current time is too large.",
                        {"RequestTime": auth.amz_date, "ServerTime": _iso(t_now),
                         "MaxAllowedSkewMilliseconds": str(skew * 1000)})
    _check_amz_headers_signed(req, auth)
    canonical = canonical_request(req, auth)
    key = signing_key(secret_key, cred.date, cred.region, cred.service)
    to_sign, expected = _expected_signature(key, auth.amz_date, cred.scope, canonical)
    # Bytes, so a hand-made Auth with a non-ASCII signature cannot make compare_digest raise.
    if not hmac.compare_digest(expected, _utf8(auth.signature)):
        raise AuthError("SignatureDoesNotMatch", _MISMATCH,
                        {"AWSAccessKeyId": cred.access_key, "StringToSign": to_sign,
                         "SignatureProvided": auth.signature, "CanonicalRequest": canonical})
    return Verified(auth, key, cred.scope, auth.signature)


def _check_amz_headers_signed(req: Request, auth: Auth) -> None:
    # As AWS does: an x-amz-* header outside the signature could be added by anyone who
    # holds a signed request or a presigned URL (x-amz-copy-source, x-amz-acl, ...).
    # x-amz-date and x-amz-content-sha256 are bound through the string to sign anyway.
    exempt = () if auth.presigned else ("x-amz-date", "x-amz-content-sha256")
    signed = auth.signed_headers
    unsigned = [n for n in req.headers if n[:6].lower() == "x-amz-"
                and n.lower() not in signed and n.lower() not in exempt]
    if unsigned:
        unsigned.sort()
        raise AuthError("AccessDenied", "There were headers present in the request which were not signed",
                        {"HeadersNotSigned": ", ".join(unsigned)})


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- streaming bodies ---------------------------------------------------------------------------

def chunk_signature(v: Verified, previous_signature: str, chunk_sha256_hex: str) -> str:
    """Expected chunk-signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD*)."""
    return _sign(v.signing_key, f"AWS4-HMAC-SHA256-PAYLOAD\n{v.auth.amz_date}\n{v.scope}\n"
                                f"{previous_signature}\n{EMPTY_SHA256}\n{chunk_sha256_hex}")


def canonical_trailer(trailers: Iterable[tuple[str, str]]) -> bytes:
    """The bytes the trailer signature covers: each trailer but x-amz-trailer-signature as
    'name:value\\n' (LF, not the wire's CRLF), lower-case names, sorted, values trimmed."""
    lines = sorted((n.strip().lower(), v.strip()) for n, v in trailers)
    return b"".join(_utf8(_wire_text(f"{n}:{v}\n")) for n, v in lines if n != "x-amz-trailer-signature")


def trailer_signature(v: Verified, previous_signature: str, trailer_bytes: bytes) -> str:
    """Expected x-amz-trailer-signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER); the
    previous signature is the final 0-size chunk's; trailer_bytes is `canonical_trailer(...)`."""
    digest = hashlib.sha256(trailer_bytes).hexdigest()
    return _sign(v.signing_key, f"AWS4-HMAC-SHA256-TRAILER\n{v.auth.amz_date}\n{v.scope}\n"
                                f"{previous_signature}\n{digest}")
