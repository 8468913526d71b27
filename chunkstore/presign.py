"""SigV4 query presigning of the chunk GETs and PUTs, sans-IO.

botocore's generate_presigned_url cost ~0.32 ms of CPU per chunk (endpoint rules, event
hooks, request serialisation): 16 per 64 MiB object, a tenth of the gateway's CPU per MB
once the body copies were gone. The URL of a chunk differs from the next one only in its
key, so the shape (scheme, host, path up to the key, signing region) is learned once from
a URL botocore presigned, and each URL is then signed here with the day's signing key.
``UrlShape.learn`` also re-signs that first URL and refuses the shape unless it gets
botocore's own signature, so a store botocore addresses in some way this module does not
follow keeps botocore's signer instead of getting wrong signatures.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"


def _q(s: str) -> str:
    return quote(s, safe="-_.~")


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(slots=True)
class UrlShape:
    """What every chunk URL of one store shares: ``scheme://netloc`` + ``path_prefix`` +
    the key's part below the probe's common prefix."""

    origin: str       # scheme://netloc
    netloc: str       # the Host header as signed
    path_prefix: str  # the URL path before the key's relative part (already %-encoded)
    region: str
    service: str
    _keys: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    _stamp: tuple[int, str] = (-1, "")  # (unix second, its X-Amz-Date): strftime is slow

    @classmethod
    def learn(cls, url: str, rel: str, creds: Credentials, method: str,
              headers: dict[str, str]) -> UrlShape | None:
        """The shape of url (a botocore-presigned URL whose key ends with rel), or None
        when re-signing it here does not give botocore's signature."""
        parts = urlsplit(url)
        if not parts.path.endswith("/" + rel) or not parts.netloc:
            return None
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            _ak, _day, region, service, _term = q["X-Amz-Credential"].split("/")
            when = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            expires = int(q["X-Amz-Expires"])
        except (KeyError, ValueError):
            return None
        if q.get("X-Amz-Algorithm") != ALGORITHM:
            return None
        shape = cls(f"{parts.scheme}://{parts.netloc}", parts.netloc,
                    parts.path[:-len(rel)], region, service)
        mine = urlsplit(shape.url(method, rel, creds, expires, when, headers))
        got = dict(parse_qsl(mine.query))
        same = mine.path == parts.path and got["X-Amz-Signature"] == q.get("X-Amz-Signature")
        return shape if same else None

    def _signing_key(self, secret: str, day: str) -> bytes:
        k = (secret, day, self.region)
        key = self._keys.get(k)
        if key is None:
            key = ("AWS4" + secret).encode()
            for part in (day, self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            if len(self._keys) > 4:
                self._keys.clear()  # old days
            self._keys[k] = key
        return key

    def url(self, method: str, rel: str, creds: Credentials, expires: int, now: datetime,
            headers: dict[str, str]) -> str:
        """The presigned URL of the key whose relative part is rel; headers (lower-case
        names) are signed besides host and must be sent as given."""
        second = int(now.timestamp())
        if self._stamp[0] != second:
            self._stamp = (second, now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
        amz_date = self._stamp[1]
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        signed = {"host": self.netloc, **headers}
        names = sorted(signed)
        signed_names = ";".join(names)
        params = [("X-Amz-Algorithm", ALGORITHM),
                  ("X-Amz-Credential", f"{creds.access_key}/{scope}"),
                  ("X-Amz-Date", amz_date),
                  ("X-Amz-Expires", str(expires)),
                  ("X-Amz-SignedHeaders", signed_names)]
        if creds.token:
            params.append(("X-Amz-Security-Token", creds.token))
        canonical_query = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(params))
        path = self.path_prefix + rel
        canonical = "\n".join([
            method, path, canonical_query,
            "".join(f"{n}:{' '.join(str(signed[n]).split())}\n" for n in names),
            signed_names, UNSIGNED])
        to_sign = "\n".join([ALGORITHM, amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(),
                       hashlib.sha256).hexdigest()
        query = "&".join(f"{k}={_q(v)}" for k, v in params)
        return f"{self.origin}{path}?{query}&X-Amz-Signature={sig}"


__all__ = ["Credentials", "UrlShape"]
