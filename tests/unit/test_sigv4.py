"""gateway.s3.sigv4: AWS documentation vectors, cross-checks against botocore's own
signer (requests captured before they would be sent, exactly as they would hit the wire),
refusals, and a fuzz test that nothing but AuthError escapes parse/verify."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.s3 import sigv4
from gateway.s3.sigv4 import AuthError, Request

DOC_AKID = "AKIAIOSFODNN7EXAMPLE"
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, tzinfo=timezone.utc)
DOC_SCOPE = f"{DOC_AKID}/20130524/us-east-1/s3/aws4_request"
AKID = "AKIDSAMEBYTES"
SECRET = "s3cr3t/Key+with=odd~chars"
ENDPOINT = "http://127.0.0.1:9000"


# -- helpers ------------------------------------------------------------------------------------

def wire_headers(headers: Mapping[str, Any], url: str) -> dict[str, str]:
    """Headers as the door builds them: lower-case names, values decoded as latin-1,
    plus the Host header http.client/urllib3 adds from the URL."""
    out = {"host": urlsplit(url).netloc}
    for name, value in headers.items():
        out[name.lower()] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return out


def to_request(method: str, url: str, headers: Mapping[str, Any]) -> Request:
    parts = urlsplit(url)
    return Request(method, parts.path, parts.query, wire_headers(headers, url))


def amz_now(req: Request) -> datetime:
    """The moment the request claims, so tests do not depend on the wall clock."""
    amz = req.headers.get("x-amz-date") or dict(
        p.split("=", 1) for p in req.raw_query.split("&") if "=" in p)["X-Amz-Date"]
    return datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def check(req: Request, secret: str = SECRET, now: datetime | None = None, **kw: Any) -> sigv4.Verified:
    auth = sigv4.parse(req)
    assert auth is not None
    return sigv4.verify(req, auth, secret, now or amz_now(req), **kw)


def refused(req: Request, code: str, secret: str = SECRET, now: datetime | None = None) -> AuthError:
    with pytest.raises(AuthError) as info:
        check(req, secret, now)
    assert info.value.code == code, info.value.message
    return info.value


def botocore_signed(method: str, path: str, query: list[tuple[str, str]] | None = None,
                    headers: dict[str, str] | None = None, body: bytes = b"",
                    secret: str = SECRET) -> Request:
    """Sign with botocore.auth.S3SigV4Auth; the URL is encoded the way botocore's serializer does."""
    url = ENDPOINT + path + ("?" + percent_encode_sequence(query) if query else "")
    aws = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    S3SigV4Auth(Credentials(AKID, secret), "s3", "us-east-1").add_auth(aws)
    prepared = aws.prepare()
    return to_request(prepared.method, prepared.url, prepared.headers)


def botocore_presigned(method: str, path: str, expires: int = 3600, secret: str = SECRET) -> Request:
    aws = AWSRequest(method=method, url=ENDPOINT + path)
    S3SigV4QueryAuth(Credentials(AKID, secret), "s3", "us-east-1", expires=expires).add_auth(aws)
    prepared = aws.prepare()
    return to_request(prepared.method, prepared.url, prepared.headers)


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)  # stop before anything is sent: this is what would go on the wire


def boto3_client(endpoint: str = ENDPOINT, **config: Any) -> Any:
    session = boto3.session.Session(aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                                    region_name="us-east-1")
    client = session.client("s3", endpoint_url=endpoint, config=Config(
        s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config))
    client.meta.events.register("before-send.s3.*", _capture)
    return client


def boto3_request(call: str, endpoint: str = ENDPOINT, **params: Any) -> Request:
    with pytest.raises(_Captured) as info:
        getattr(boto3_client(endpoint), call)(**params)
    r = info.value.request
    return to_request(r.method, r.url, r.headers)


def with_(req: Request, **changes: Any) -> Request:
    fields = {"method": req.method, "raw_path": req.raw_path, "raw_query": req.raw_query,
              "headers": dict(req.headers)}
    fields.update(changes)
    return Request(**fields)


# -- AWS documentation vectors --------------------------------------------------------------------

def doc_request(method: str, path: str, query: str, headers: dict[str, str], signed: str,
                signature: str) -> Request:
    h = {"host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
         "x-amz-content-sha256": sigv4.EMPTY_SHA256, **headers}
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE},SignedHeaders={signed},"
                          f"Signature={signature}")
    return Request(method, path, query, h)


def test_aws_doc_get_object_with_range_verifies() -> None:
    req = doc_request("GET", "/test.txt", "", {"range": "bytes=0-9"},
                      "host;range;x-amz-content-sha256;x-amz-date",
                      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    auth = sigv4.parse(req)
    assert auth is not None
    assert sigv4.canonical_request(req, auth) == (
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        f"x-amz-content-sha256:{sigv4.EMPTY_SHA256}\nx-amz-date:20130524T000000Z\n\n"
        f"host;range;x-amz-content-sha256;x-amz-date\n{sigv4.EMPTY_SHA256}")
    assert sigv4.string_to_sign(auth, sigv4.canonical_request(req, auth)) == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
    v = sigv4.verify(req, auth, DOC_SECRET, DOC_NOW)
    assert v.scope == "20130524/us-east-1/s3/aws4_request"
    assert v.seed_signature == auth.signature
    assert auth.credential == sigv4.Credential(DOC_AKID, "20130524", "us-east-1", "s3")


def test_aws_doc_put_object_with_date_and_escaped_dollar_verifies() -> None:
    req = doc_request("PUT", "/test%24file.text", "",
                      {"date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY",
                       "x-amz-content-sha256": hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()},
                      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    check(req, DOC_SECRET, DOC_NOW)
    # The same key sent with the '$' unescaped signs the same canonical URI.
    check(with_(req, raw_path="/test$file.text"), DOC_SECRET, DOC_NOW)


@pytest.mark.parametrize("query, signature", [
    ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ("prefix=J&max-keys=2", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_aws_doc_bucket_requests_with_query_verify(query: str, signature: str) -> None:
    req = doc_request("GET", "/", query, {}, "host;x-amz-content-sha256;x-amz-date", signature)
    check(req, DOC_SECRET, DOC_NOW)


def test_aws_doc_presigned_get_verifies_for_a_day_then_expires() -> None:
    query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1"
             "%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    req = Request("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})
    auth = sigv4.parse(req)
    assert auth is not None and auth.presigned and auth.expires == 86400
    assert auth.payload_hash == sigv4.UNSIGNED
    check(req, DOC_SECRET, DOC_NOW + timedelta(seconds=86400))
    err = refused(req, "AccessDenied", DOC_SECRET, DOC_NOW + timedelta(seconds=86401))
    assert err.message == "Request has expired"


def doc_chunked(trailer: bool) -> Request:
    if trailer:
        signed = ("content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                  "x-amz-storage-class;x-amz-trailer")
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        extra = {"x-amz-content-sha256": sigv4.STREAMING_SIGNED_TRAILER, "x-amz-trailer": "x-amz-checksum-crc32c"}
    else:
        signed = ("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                  "x-amz-decoded-content-length;x-amz-storage-class")
        seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        extra = {"x-amz-content-sha256": sigv4.STREAMING_SIGNED, "content-length": "66824"}
    headers = {"host": "s3.amazonaws.com", "content-encoding": "aws-chunked", "x-amz-date": "20130524T000000Z",
               "x-amz-decoded-content-length": "66560", "x-amz-storage-class": "REDUCED_REDUNDANCY", **extra,
               "authorization": f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE},SignedHeaders={signed},Signature={seed}"}
    return Request("PUT", "/examplebucket/chunkObject.txt", "", headers)


def test_chunk_signatures_reproduce_the_aws_chunked_upload_example() -> None:
    v = check(doc_chunked(False), DOC_SECRET, DOC_NOW)
    assert v.seed_signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    prev = v.seed_signature
    got = []
    for size in (65536, 1024, 0):
        prev = sigv4.chunk_signature(v, prev, hashlib.sha256(b"a" * size).hexdigest())
        got.append(prev)
    assert got == ["ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
                   "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
                   "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"]


def test_trailer_signature_reproduces_the_aws_trailing_header_example() -> None:
    v = check(doc_chunked(True), DOC_SECRET, DOC_NOW)
    prev = v.seed_signature
    got = []
    for size in (65536, 1024, 0):
        prev = sigv4.chunk_signature(v, prev, hashlib.sha256(b"a" * size).hexdigest())
        got.append(prev)
    assert got == ["b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
                   "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
                   "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"]
    trailer = sigv4.canonical_trailer([("x-amz-checksum-crc32c", "sOO8/Q=="),
                                       ("x-amz-trailer-signature", "ignored")])
    assert trailer == b"x-amz-checksum-crc32c:sOO8/Q==\n"  # LF, not the wire's CRLF
    assert sigv4.trailer_signature(v, prev, trailer) == \
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    assert sigv4.trailer_signature(v, prev, b"x-amz-checksum-crc32c:sOO8/Q==\r\n") != \
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def test_signing_key_matches_the_aws_documented_derivation() -> None:
    # From "Examples of how to derive a signing key for Signature Version 4" (iam, us-east-1).
    # That page's example secret has '+' where the S3 examples have '/'.
    key = sigv4.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# -- cross-checks against botocore ------------------------------------------------------------------

KEYS = [
    "plain.txt", "dir/sub/file.bin", "with space.txt", "plus+sign", "percent%sign", "100%",
    "tilde~ok", "equals=and&amp", "a//double//slashes", "/leading-slash", "trailing/", "literal%2Fin-key",
    "literal%2fin-key", "unicode-é-ß-日本語-🙂", "quotes'\"", "semi;colon,comma", "hash#frag?query",
    "brackets[]{}<>", "star*bang!at@dollar$", "caret^pipe|backtick`", "tab\there", "a b  c   d",
    "..", "./dot/../segments", "%00nul", "-_.~unreserved",
]


@pytest.mark.parametrize("key", KEYS)
def test_botocore_signed_put_verifies_for_key(key: str) -> None:
    req = botocore_signed("PUT", "/bucket/" + quote(key, safe="/~"), headers={"x-amz-meta-a": "x  y"},
                          body=b"data")
    v = check(req)
    assert v.auth.payload_hash == hashlib.sha256(b"data").hexdigest()


@pytest.mark.parametrize("key", KEYS)
def test_boto3_client_requests_verify_for_key(key: str) -> None:
    check(boto3_request("get_object", Bucket="bucket", Key=key, Range="bytes=0-9"))
    check(boto3_request("put_object", Bucket="bucket", Key=key, Body=b"hello",
                        Metadata={"m": "v  w"}, ContentType="text/plain; charset=utf-8"))
    check(boto3_request("delete_object", Bucket="bucket", Key=key))


def test_escaped_slash_inside_a_key_stays_escaped_in_the_canonical_uri() -> None:
    # A client that escapes '/' inside a key segment signs %2F; that must not become '/'.
    req = botocore_signed("GET", "/bucket/a%2Fb/c")
    check(req)
    auth = sigv4.parse(req)
    assert auth is not None
    assert sigv4.canonical_request(req, auth).split("\n")[1] == "/bucket/a%2Fb/c"
    refused(with_(req, raw_path="/bucket/a/b/c"), "SignatureDoesNotMatch")


QUERIES: list[list[tuple[str, str]]] = [
    [("list-type", "2")],
    [("list-type", "2"), ("prefix", "with spaces/and more"), ("delimiter", "/")],
    [("list-type", "2"), ("continuation-token", "1ab+c/d==e"), ("start-after", "x+y")],
    [("uploads", "")],
    [("partNumber", "3"), ("uploadId", "abc+def/ghi=")],
    [("response-content-disposition", 'attachment; filename="a b;c.txt"'),
     ("response-content-type", "text/plain; charset=utf-8")],
    [("prefix", "b"), ("prefix", "a"), ("marker", "z")],          # duplicate keys
    [("versionId", "null"), ("tagging", "")],
    [("prefix", "日本/é~_.-"), ("encoding-type", "url")],
    [("prefix", "%2F literal percent %"), ("max-keys", "1000")],
]


@pytest.mark.parametrize("query", QUERIES)
def test_botocore_signed_query_verifies(query: list[tuple[str, str]]) -> None:
    check(botocore_signed("GET", "/bucket", query))


def test_boto3_client_list_and_multipart_requests_verify() -> None:
    check(boto3_request("list_objects_v2", Bucket="b", Prefix="a b/", Delimiter="/",
                        ContinuationToken="x+y/z==", StartAfter="k+1"))
    check(boto3_request("list_objects", Bucket="b", Prefix="p q", Marker="m+n"))
    check(boto3_request("create_multipart_upload", Bucket="b", Key="big file"))
    check(boto3_request("upload_part", Bucket="b", Key="big file", UploadId="u+p/l==", PartNumber=2, Body=b"x"))
    check(boto3_request("list_multipart_uploads", Bucket="b", Prefix="p"))
    check(boto3_request("get_object", Bucket="b", Key="k", ResponseContentDisposition='inline; filename="x;y"'))
    check(boto3_request("delete_objects", Bucket="b", Delete={"Objects": [{"Key": "a"}, {"Key": "b c"}]}))
    check(boto3_request("head_bucket", Bucket="b"))
    check(boto3_request("list_buckets"))


def test_boto3_put_over_https_with_unsigned_trailer_verifies() -> None:
    req = boto3_request("put_object", "https://127.0.0.1:9000", Bucket="b", Key="k", Body=b"hello")
    v = check(req)
    assert v.auth.payload_hash == sigv4.STREAMING_UNSIGNED_TRAILER
    assert req.headers["content-encoding"] == "aws-chunked"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
       value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_botocore_signed_arbitrary_key_and_query_value_verifies(key: str, value: str) -> None:
    check(botocore_signed("GET", "/bucket/" + quote(key, safe="/~"), [("prefix", value), ("k", key)]))


# -- presigned URLs -------------------------------------------------------------------------------

def presigned_url(method: str, expires: int = 3600, **params: Any) -> Request:
    client = boto3_client(signature_version="s3v4")
    url = client.generate_presigned_url(method, Params={"Bucket": "bucket", **params}, ExpiresIn=expires)
    return to_request("GET" if method == "get_object" else "PUT", url, {})


def test_boto3_presigned_get_and_put_verify() -> None:
    get = presigned_url("get_object", Key="dir/a b+c%2F.txt", ResponseContentDisposition='attachment; f="x"')
    put = presigned_url("put_object", Key="new key")
    for req in (get, put):
        v = check(req)
        assert v.auth.presigned and v.auth.payload_hash == sigv4.UNSIGNED
    # Within the lifetime it stays valid.
    check(get, now=amz_now(get) + timedelta(seconds=3600))


def test_boto3_presigned_url_after_expiry_is_access_denied() -> None:
    req = presigned_url("get_object", expires=60, Key="k")
    err = refused(req, "AccessDenied", now=amz_now(req) + timedelta(seconds=61))
    assert "expired" in err.message


def test_presigned_url_dated_in_the_future_is_refused() -> None:
    req = presigned_url("get_object", Key="k")
    check(req, now=amz_now(req) - timedelta(minutes=14))
    refused(req, "AccessDenied", now=amz_now(req) - timedelta(minutes=16))


@pytest.mark.parametrize("expires", [0, 604801])
def test_presigned_expiry_outside_one_second_to_seven_days_is_refused(expires: int) -> None:
    refused(botocore_presigned("GET", "/bucket/k", expires=expires), "AuthorizationQueryParametersError")


def test_presigned_seven_days_is_accepted_and_max_presign_can_shorten_it() -> None:
    req = botocore_presigned("GET", "/bucket/k", expires=604800)
    check(req)
    with pytest.raises(AuthError) as info:
        check(req, max_presign=timedelta(days=1))
    assert info.value.code == "AuthorizationQueryParametersError"


def test_tampered_presigned_urls_do_not_match() -> None:
    req = presigned_url("get_object", Key="k")
    sig = req.raw_query.rsplit("X-Amz-Signature=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (with_(req, raw_query=req.raw_query.replace(sig, flipped)),
                with_(req, raw_path="/bucket/other"),
                with_(req, raw_query=req.raw_query.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601")),
                with_(req, raw_query=req.raw_query + "&versionId=1"),
                with_(req, method="DELETE"),
                with_(req, headers={"host": "127.0.0.1:9001"})):
        refused(bad, "SignatureDoesNotMatch")
    refused(req, "SignatureDoesNotMatch", secret="wrong")


def test_unsigned_amz_header_on_a_presigned_url_is_refused() -> None:
    req = presigned_url("put_object", Key="k")
    err = refused(with_(req, headers={**req.headers, "x-amz-acl": "public-read"}), "AccessDenied")
    assert err.extra["HeadersNotSigned"] == "x-amz-acl"


# -- refusals of header-signed requests ---------------------------------------------------------------

def test_tampered_header_signed_requests_do_not_match() -> None:
    req = botocore_signed("PUT", "/bucket/key", [("partNumber", "1")], {"x-amz-meta-a": "1"}, b"x")
    auth = req.headers["authorization"]
    sig = auth.rsplit("=", 1)[1]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (with_(req, headers={**req.headers, "authorization": auth.replace(sig, flipped)}),
                with_(req, raw_path="/bucket/key2"),
                with_(req, raw_path="/bucket/KEY"),
                with_(req, raw_query="partNumber=2"),
                with_(req, raw_query="partNumber=1&x=1"),
                with_(req, method="POST"),
                with_(req, headers={**req.headers, "x-amz-meta-a": "2"}),
                with_(req, headers={**req.headers, "host": "evil:9000"})):
        err = refused(bad, "SignatureDoesNotMatch")
        assert "CanonicalRequest" in err.extra and "StringToSign" in err.extra


def test_wrong_secret_does_not_match() -> None:
    refused(botocore_signed("GET", "/bucket/key"), "SignatureDoesNotMatch", secret=SECRET + "x")
    refused(botocore_signed("GET", "/bucket/key", secret="other"), "SignatureDoesNotMatch")


def test_clock_skew_of_sixteen_minutes_is_refused_fourteen_accepted() -> None:
    req = botocore_signed("GET", "/bucket/key")
    t = amz_now(req)
    check(req, now=t + timedelta(minutes=14))
    check(req, now=t - timedelta(minutes=14))
    refused(req, "RequestTimeTooSkewed", now=t + timedelta(minutes=16))
    refused(req, "RequestTimeTooSkewed", now=t - timedelta(minutes=16))


def test_naive_now_is_taken_as_utc() -> None:
    req = botocore_signed("GET", "/bucket/key")
    check(req, now=amz_now(req).replace(tzinfo=None))


def test_unsigned_amz_header_is_refused_but_other_headers_may_be_unsigned() -> None:
    req = botocore_signed("GET", "/bucket/key")
    check(with_(req, headers={**req.headers, "user-agent": "x", "expect": "100-continue"}))
    err = refused(with_(req, headers={**req.headers, "x-amz-copy-source": "/other/key"}), "AccessDenied")
    assert "not signed" in err.message


def test_credential_for_another_service_or_day_is_refused() -> None:
    good = botocore_signed("GET", "/bucket/key")
    auth = good.headers["authorization"]
    refused(with_(good, headers={**good.headers, "authorization": auth.replace("/s3/", "/iam/")}),
            "AuthorizationHeaderMalformed")
    day = amz_now(good).strftime("%Y%m%d")
    other = (amz_now(good) - timedelta(days=1)).strftime("%Y%m%d")
    refused(with_(good, headers={**good.headers, "authorization": auth.replace(f"/{day}/", f"/{other}/")}),
            "AuthorizationHeaderMalformed")


def test_request_dated_by_the_date_header_alone_verifies() -> None:
    headers = {"host": "h", "date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-content-sha256": sigv4.UNSIGNED}
    unsigned = Request("GET", "/b/k", "", headers)
    auth = sigv4.Auth(sigv4.Credential(DOC_AKID, "20130524", "us-east-1", "s3"), ("date", "host"), "0" * 64,
                      "20130524T000000Z", sigv4.UNSIGNED, presigned=False)
    key = sigv4.signing_key(DOC_SECRET, "20130524", "us-east-1", "s3")
    import hmac
    sig = hmac.new(key, sigv4.string_to_sign(auth, sigv4.canonical_request(unsigned, auth)).encode(),
                   hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE}, SignedHeaders=date;host, "
                                f"Signature={sig}")
    req = Request("GET", "/b/k", "", headers)
    v = check(req, DOC_SECRET, DOC_NOW + timedelta(minutes=5))
    assert v.auth.amz_date == "20130524T000000Z"


# -- parse: anonymous, SigV2, malformed -------------------------------------------------------------

def test_anonymous_request_parses_to_none() -> None:
    assert sigv4.parse(Request("GET", "/bucket/key", "", {"host": "h"})) is None
    assert sigv4.parse(Request("GET", "/bucket", "list-type=2&prefix=a+b&Signature", {"host": "h"})) is None


def test_sigv2_header_is_refused_with_a_message_naming_signature_version_4() -> None:
    aws = AWSRequest(method="GET", url=ENDPOINT + "/bucket/key", headers={})
    HmacV1Auth(Credentials(AKID, SECRET)).add_auth(aws)
    prepared = aws.prepare()
    req = to_request("GET", prepared.url, prepared.headers)
    assert req.headers["authorization"].startswith("AWS ")
    with pytest.raises(AuthError) as info:
        sigv4.parse(req)
    assert info.value.code in ("AccessDenied", "InvalidRequest")
    assert "Signature Version 4" in info.value.message


def test_sigv2_presigned_url_is_refused_with_a_message_naming_signature_version_4() -> None:
    url = boto3_client().generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    req = to_request("GET", url, {})
    assert "AWSAccessKeyId=" in req.raw_query and "Signature=" in req.raw_query
    with pytest.raises(AuthError) as info:
        sigv4.parse(req)
    assert info.value.code in ("AccessDenied", "InvalidRequest")
    assert "Signature Version 4" in info.value.message


def test_sigv4a_is_refused_as_unsupported() -> None:
    req = Request("GET", "/b/k", "", {"host": "h", "authorization": "AWS4-ECDSA-P256-SHA256 Credential=x"})
    with pytest.raises(AuthError) as info:
        sigv4.parse(req)
    assert info.value.code == "InvalidRequest"


GOOD_CRED = f"Credential={AKID}/20260101/us-east-1/s3/aws4_request"
GOOD_SH = "SignedHeaders=host;x-amz-content-sha256;x-amz-date"
GOOD_SIG = "Signature=" + "ab" * 32
MALFORMED = [
    "",
    "   ",
    "AWS4-HMAC-SHA256",
    "AWS4-HMAC-SHA256 ",
    "Bearer abc.def",
    "AWS4-HMAC-SHA512 " + ", ".join([GOOD_CRED, GOOD_SH, GOOD_SIG]),
    "aws4-hmac-sha256 " + ", ".join([GOOD_CRED, GOOD_SH, GOOD_SIG]),
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}",
    f"AWS4-HMAC-SHA256 {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, {GOOD_SIG}, Foo=bar",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_CRED}, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED} {GOOD_SH} {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED},, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential {AKID}/20260101/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/s3, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential={AKID}/2026011/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential={AKID}/2026010a/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/s3/aws4_requests, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential=/20260101/us-east-1/s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential={AKID}/20260101//s3/aws4_request, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 Credential=, {GOOD_SH}, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=x-amz-date;x-amz-content-sha256, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=Host;X-Amz-Date, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=host;;x-amz-date, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=host;host, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=host x-amz-date, {GOOD_SIG}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, Signature=",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, Signature=abc",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, Signature={'zz' * 32}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, Signature={'ab' * 33}",
    f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, Signature={'é' * 64}",
]


@pytest.mark.parametrize("authorization", MALFORMED)
def test_malformed_authorization_header_is_refused(authorization: str) -> None:
    req = Request("GET", "/b/k", "", {"host": "h", "authorization": authorization,
                                      "x-amz-date": "20260101T000000Z", "x-amz-content-sha256": sigv4.UNSIGNED})
    with pytest.raises(AuthError) as info:
        sigv4.parse(req)
    assert info.value.code == "AuthorizationHeaderMalformed", info.value.message
    assert info.value.message


def test_authorization_header_without_spaces_after_commas_parses() -> None:
    req = Request("GET", "/b/k", "", {"host": "h", "x-amz-date": "20260101T000000Z",
                                      "x-amz-content-sha256": sigv4.UNSIGNED,
                                      "authorization": f"AWS4-HMAC-SHA256 {GOOD_CRED},{GOOD_SH},{GOOD_SIG}"})
    auth = sigv4.parse(req)
    assert auth is not None and auth.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date")


@pytest.mark.parametrize("drop, add, code", [
    ("x-amz-content-sha256", {}, "InvalidRequest"),
    ("x-amz-date", {}, "AccessDenied"),
    ("x-amz-date", {"date": "not a date"}, "AccessDenied"),
    ("x-amz-date", {"x-amz-date": "2026-01-01T00:00:00Z"}, "AccessDenied"),
    ("x-amz-date", {"x-amz-date": "20261301T000000Z"}, "AccessDenied"),
    ("x-amz-content-sha256", {"x-amz-content-sha256": "STREAMING-SOMETHING"}, "InvalidArgument"),
    ("x-amz-content-sha256", {"x-amz-content-sha256": "abc"}, "InvalidArgument"),
])
def test_header_auth_without_valid_date_or_payload_hash_is_refused(drop: str, add: dict[str, str],
                                                                     code: str) -> None:
    headers = {"host": "h", "x-amz-date": "20260101T000000Z", "x-amz-content-sha256": sigv4.UNSIGNED,
               "authorization": f"AWS4-HMAC-SHA256 {GOOD_CRED}, {GOOD_SH}, {GOOD_SIG}"}
    del headers[drop]
    headers.update(add)
    with pytest.raises(AuthError) as info:
        sigv4.parse(Request("GET", "/b/k", "", headers))
    assert info.value.code == code


def test_header_and_query_auth_together_are_refused() -> None:
    req = botocore_signed("GET", "/bucket/k")
    presigned = botocore_presigned("GET", "/bucket/k")
    with pytest.raises(AuthError) as info:
        sigv4.parse(with_(req, raw_query=presigned.raw_query))
    assert info.value.code == "InvalidArgument"


def _presigned_query(**override: str | None) -> str:
    params: dict[str, str | None] = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{AKID}/20260101/us-east-1/s3/aws4_request",
        "X-Amz-Date": "20260101T000000Z", "X-Amz-Expires": "60", "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": "ab" * 32}
    params.update(override)
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v is not None)


@pytest.mark.parametrize("override", [
    {"X-Amz-Algorithm": None}, {"X-Amz-Credential": None}, {"X-Amz-Date": None}, {"X-Amz-Expires": None},
    {"X-Amz-SignedHeaders": None}, {"X-Amz-Signature": None},
    {"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, {"X-Amz-Date": "2026-01-01"}, {"X-Amz-Expires": "-1"},
    {"X-Amz-Expires": "ten"}, {"X-Amz-Expires": "99999999999999999999"},
    {"X-Amz-Credential": f"{AKID}/20260101/us-east-1/s3"}, {"X-Amz-SignedHeaders": "x-amz-date"},
    {"X-Amz-Signature": "xyz"}, {"X-Amz-Content-Sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
])
def test_malformed_presigned_query_is_refused(override: dict[str, str | None]) -> None:
    with pytest.raises(AuthError) as info:
        sigv4.parse(Request("GET", "/b/k", _presigned_query(**override), {"host": "h"}))
    assert info.value.code in ("AuthorizationQueryParametersError", "InvalidRequest"), info.value.message


def test_repeated_presigned_parameter_is_refused() -> None:
    query = _presigned_query() + "&X-Amz-Date=20270101T000000Z"
    with pytest.raises(AuthError) as info:
        sigv4.parse(Request("GET", "/b/k", query, {"host": "h"}))
    assert info.value.code == "AuthorizationQueryParametersError"


# -- canonical forms ---------------------------------------------------------------------------

def _canonical(path: str, query: str = "", presigned: bool = False) -> list[str]:
    auth = sigv4.Auth(sigv4.Credential("A", "20260101", "r", "s3"), ("host",), "0" * 64, "20260101T000000Z",
                      sigv4.UNSIGNED, presigned)
    return sigv4.canonical_request(Request("GET", path, query, {"host": "h"}), auth).split("\n")


@pytest.mark.parametrize("raw, canonical", [
    ("", "/"), ("/", "/"), ("/a b", "/a%20b"), ("/a%2fb", "/a%2Fb"), ("/a%2Fb", "/a%2Fb"),
    ("/%7E~", "/~~"), ("/100%", "/100%25"), ("/bad%zz", "/bad%25zz"), ("//x//", "//x//"),
    ("/a+b", "/a%2Bb"), ("/%C3%A9", "/%C3%A9"), ("/é", "/%C3%A9"), ("/a%00b", "/a%00b"),
    ("/$&'()*,;=:@", "/%24%26%27%28%29%2A%2C%3B%3D%3A%40"),
])
def test_canonical_uri_is_decoded_to_bytes_and_reencoded(raw: str, canonical: str) -> None:
    assert _canonical(raw)[1] == canonical


@pytest.mark.parametrize("raw, canonical", [
    ("", ""), ("uploads", "uploads="), ("b=2&a=1&a=0", "a=0&a=1&b=2"), ("x=a+b", "x=a%2Bb"),
    ("x=a%20b", "x=a%20b"), ("x=a b", "x=a%20b"), ("x=%2f&y=/", "x=%2F&y=%2F"), ("a=1&&b=2&", "a=1&b=2"),
    ("k=v=w", "k=v%3Dw"), ("%41=1", "A=1"), ("x=~%7e", "x=~~"),
])
def test_canonical_query_keeps_plus_duplicates_and_sorts(raw: str, canonical: str) -> None:
    assert _canonical("/", raw)[2] == canonical


def test_presigned_canonical_query_drops_only_the_signature() -> None:
    assert _canonical("/", "X-Amz-Signature=ab&X-Amz-Date=1&a=1", presigned=True)[2] == "X-Amz-Date=1&a=1"
    assert _canonical("/", "X-Amz-Signature=ab&a=1")[2] == "X-Amz-Signature=ab&a=1"


def test_canonical_header_values_are_trimmed_and_spaces_collapsed() -> None:
    auth = sigv4.Auth(sigv4.Credential("A", "20260101", "r", "s3"), ("host", "x-amz-meta-a", "x-amz-meta-b"),
                      "0" * 64, "20260101T000000Z", sigv4.UNSIGNED, False)
    req = Request("GET", "/", "", {"host": "h", "x-amz-meta-a": "  a   b \t c  ", "x-amz-meta-b": "Ã©"})
    lines = sigv4.canonical_request(req, auth).split("\n")
    assert lines[3:6] == ["host:h", "x-amz-meta-a:a b c", "x-amz-meta-b:é"]  # latin-1 wire bytes -> UTF-8


# -- robustness -----------------------------------------------------------------------------------

_text = st.text(max_size=40)


def _mostly(valid: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid most of the time, so the fuzz reaches verify, anything otherwise."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), other)


_sig = _mostly("ab" * 32, st.one_of(st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True), _text))
_date = _mostly("20260101T000000Z", st.one_of(st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True), _text))
_cred = st.builds(lambda a, d, r, s, t: f"{a}/{d}/{r}/{s}/{t}", _mostly(AKID, _text),
                  _mostly("20260101", st.one_of(st.from_regex(r"[0-9]{8}", fullmatch=True), _text)),
                  _mostly("us-east-1", _text), _mostly("s3", st.sampled_from(["iam", "", "S3"])),
                  _mostly("aws4_request", _text))
_signed = _mostly("host;x-amz-content-sha256;x-amz-date", st.one_of(st.just("host"), _text))
_authz = st.one_of(
    st.builds(lambda c, h, s, sep: f"AWS4-HMAC-SHA256 Credential={c}{sep}SignedHeaders={h}{sep}Signature={s}",
              _cred, _signed, _sig, _mostly(", ", st.sampled_from([",", " , ", ";"]))),
    _text, st.builds(lambda t: "AWS4-HMAC-SHA256 " + t, _text), st.builds(lambda t: "AWS " + t, _text))
_presigned = st.builds(
    lambda a, c, d, e, h, s, x: "&".join([
        f"X-Amz-Algorithm={a}", f"X-Amz-Credential={quote(c, safe='')}", f"X-Amz-Date={d}", f"X-Amz-Expires={e}",
        f"X-Amz-SignedHeaders={h}", f"X-Amz-Signature={s}", x]),
    _mostly("AWS4-HMAC-SHA256", _text), _cred, _date,
    st.one_of(st.integers(-5, 700000).map(str), _text), _signed, _sig, _text)
_base_headers = st.fixed_dictionaries(
    {"host": _text},
    optional={"date": _text, "x-amz-meta-x": _text, "x-amz-security-token": _text, "range": _text})
_now = st.one_of(st.just(datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)),
                 st.datetimes(timezones=st.just(timezone.utc)), st.datetimes())


@st.composite
def _any_request(draw: st.DrawFn) -> Request:
    headers = draw(_base_headers)
    mode = draw(st.sampled_from(["header", "presigned", "other"]))
    query = draw(_presigned) if mode == "presigned" else draw(_text)
    if mode == "header":
        headers["authorization"] = draw(_authz)
        headers["x-amz-date"] = draw(_date)
        headers["x-amz-content-sha256"] = draw(_mostly(sigv4.UNSIGNED, st.one_of(
            st.sampled_from(sigv4.PAYLOAD_MODES), _sig, _text)))
    elif mode == "other":
        headers.update(draw(st.dictionaries(_text, _text, max_size=4)))
    return Request(draw(_text), draw(_text), query, headers)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_any_request(), secret=_text, now=_now)
def test_only_auth_error_escapes_parse_and_verify(req: Request, secret: str, now: datetime) -> None:
    try:
        auth = sigv4.parse(req)
        if auth is not None:
            v = sigv4.verify(req, auth, secret, now)
            sigv4.chunk_signature(v, req.raw_path, req.raw_query)
            sigv4.trailer_signature(v, req.method, sigv4.canonical_trailer(req.headers.items()))
    except AuthError as e:
        assert e.code and e.message
