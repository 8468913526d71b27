"""The S3 door at the wire: signed streaming uploads built by hand (no SDK we have
sends them by default), and hostile or broken requests — each gets the proper S3
error, nothing is stored, and the gateway keeps serving."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import socket
import zlib
from datetime import datetime, timezone

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import Gateway

EMPTY = hashlib.sha256(b"").hexdigest()


class _Signer(S3SigV4Auth):
    """botocore's own SigV4 signer, told which payload hash to sign (it would
    otherwise hash the body itself)."""

    def __init__(self, gw: Gateway, payload_hash: str) -> None:
        super().__init__(Credentials(gw.access_key, gw.secret_key), "s3", "us-east-1")
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


def signed_headers(gw: Gateway, method: str, path: str, headers: dict[str, str],
                   payload_hash: str, body: bytes = b"") -> dict[str, str]:
    """Headers signed by botocore (for streaming uploads: the seed signature)."""
    req = AWSRequest(method=method, url=f"{gw.endpoint}{path}", data=body, headers=headers)
    _Signer(gw, payload_hash).add_auth(req)
    return dict(req.headers.items())


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def streaming_body(gw: Gateway, headers: dict[str, str], chunks: list[bytes], tamper: int | None = None) -> bytes:
    """aws-chunked body with chunk signatures, per the AWS chunked-upload spec."""
    amz_date = headers["X-Amz-Date"]
    date = amz_date[:8]
    scope = f"{date}/us-east-1/s3/aws4_request"
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + gw.secret_key).encode(), date), "us-east-1"), "s3"), "aws4_request")
    prev = headers["Authorization"].rsplit("Signature=", 1)[1]
    out = b""
    for i, data in enumerate(chunks + [b""]):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY,
                         hashlib.sha256(data).hexdigest()])
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if tamper == i:
            data = bytes([data[0] ^ 1]) + data[1:]
        out += f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
        prev = sig
    return out


def send(gw: Gateway, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.s3_port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def s3_client(gw: Gateway):
    from tests.integration.conftest import client_for
    return client_for(gw)


def test_signed_streaming_upload_verifies_every_chunk(gateway: Gateway) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    chunks = [os.urandom(65536), os.urandom(65536), os.urandom(1000)]
    payload = b"".join(chunks)
    h = signed_headers(gateway, "PUT", "/bkt/streamed", {
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload))},
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = streaming_body(gateway, h, chunks)
    status, resp = send(gateway, "PUT", "/bkt/streamed", {**h, "Content-Length": str(len(body))}, body)
    assert status == 200, resp
    assert s3.get_object(Bucket="bkt", Key="streamed")["Body"].read() == payload


@pytest.mark.parametrize("tamper", [0, 2, 3])
def test_a_tampered_chunk_is_refused_and_nothing_is_stored(gateway: Gateway, tamper: int) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    chunks = [os.urandom(65536), os.urandom(65536), os.urandom(1000)]
    payload_len = sum(map(len, chunks))
    h = signed_headers(gateway, "PUT", "/bkt/streamed", {
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(payload_len)},
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    if tamper == 3:  # the final empty chunk: forge its signature instead
        body = streaming_body(gateway, h, chunks)
        body = body[:body.rindex(b"chunk-signature=") + 16] + b"0" * 64 + b"\r\n\r\n"
    else:
        body = streaming_body(gateway, h, chunks, tamper=tamper)
    status, resp = send(gateway, "PUT", "/bkt/streamed", {**h, "Content-Length": str(len(body))}, body)
    assert status == 403 and b"SignatureDoesNotMatch" in resp
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0
    assert not any(p.is_file() for p in (gateway.data / "chunks").rglob("*") if not p.name.startswith("."))


@pytest.mark.parametrize("body", [
    b"5\r\nhello\r\n",                       # ends before the final chunk
    b"zz\r\nhello\r\n0\r\n\r\n",             # bad hex size
    b"5\r\nhelloEXTRA\r\n0\r\n\r\n",         # data longer than declared
    b"ffffffffff\r\n",                       # absurd chunk size
])
def test_broken_aws_chunked_framing_is_refused(gateway: Gateway, body: bytes) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    h = signed_headers(gateway, "PUT", "/bkt/k", {"Content-Encoding": "aws-chunked",
                                                   "x-amz-decoded-content-length": "5"},
                       "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    status, resp = send(gateway, "PUT", "/bkt/k", {**h, "Content-Length": str(len(body))}, body)
    assert status == 400, resp
    assert b"<Code>" in resp
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


@pytest.mark.parametrize("op, body", [
    ("/bkt?delete", b"<Delete><Object><Key>k</Key></Object"),                   # truncated XML
    ("/bkt?delete", b"not xml at all"),
    ("/bkt?delete", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Delete>&a;</Delete>'),
    ("/bkt?delete", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"),
])
def test_malformed_xml_gets_malformed_xml_and_deletes_nothing(gateway: Gateway, op: str, body: bytes) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"keep me")
    h = signed_headers(gateway, "POST", op, {}, hashlib.sha256(body).hexdigest(), body)
    status, resp = send(gateway, "POST", op, {**h, "Content-Length": str(len(body))}, body)
    assert status == 400 and b"MalformedXML" in resp, resp
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"keep me"


def test_a_body_that_does_not_match_its_signed_sha256_is_refused(gateway: Gateway) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    h = signed_headers(gateway, "PUT", "/bkt/k", {}, hashlib.sha256(b"promised").hexdigest(), b"promised")
    status, resp = send(gateway, "PUT", "/bkt/k", {**h, "Content-Length": "9"}, b"delivered")
    assert status == 400 and b"XAmzContentSHA256Mismatch" in resp
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


TAGS = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"


@pytest.mark.parametrize("method, path, body", [
    ("PUT", "/bkt/k?tagging", TAGS),
    ("POST", "/bkt?delete", b"<Delete><Object><Key>k</Key></Object></Delete>"),
    ("PUT", "/newbkt", b"<CreateBucketConfiguration><LocationConstraint>us-east-1"
                       b"</LocationConstraint></CreateBucketConfiguration>"),
], ids=["PutObjectTagging", "DeleteObjects", "CreateBucket"])
@pytest.mark.parametrize("claim", ["signed sha256", "Content-MD5", "x-amz-checksum-crc32"])
def test_an_xml_body_that_does_not_match_its_claims_changes_nothing(
        gateway: Gateway, method: str, path: str, body: bytes, claim: str) -> None:
    """The small XML bodies are held to the same claims as object bodies: a body changed
    on the way (same length) is refused, and the object, its tags and the bucket list
    stay as they were."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"keep me")
    forged = body.replace(b"k<", b"x<", 1) if b"k<" in body else body.replace(b"us-east-1", b"us-east-x")
    assert len(forged) == len(body) and forged != body
    headers: dict[str, str] = {}
    if claim == "Content-MD5":
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    elif claim == "x-amz-checksum-crc32":
        headers["x-amz-checksum-crc32"] = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    payload_hash = hashlib.sha256(body if claim == "signed sha256" else forged).hexdigest()
    h = signed_headers(gateway, method, path, headers, payload_hash, body)
    status, resp = send(gateway, method, path, {**h, "Content-Length": str(len(forged))}, forged)
    want = "XAmzContentSHA256Mismatch" if claim == "signed sha256" else "BadDigest"
    assert status == 400 and f"<Code>{want}</Code>".encode() in resp, resp
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"keep me"
    assert s3.get_object_tagging(Bucket="bkt", Key="k")["TagSet"] == []
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["bkt"]


def test_sigv2_is_refused_with_a_clear_error(gateway: Gateway) -> None:
    status, resp = send(gateway, "GET", "/", {"Authorization": "AWS AKIDEXAMPLE:c2lnbmF0dXJl",
                                               "Date": datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert status in (400, 403) and b"Signature Version 4" in resp


def test_a_skewed_clock_is_refused(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import botocore.auth
    skewed = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    h = signed_headers(gateway, "GET", "/", {}, EMPTY)
    status, resp = send(gateway, "GET", "/", h)
    assert status == 403 and b"RequestTimeTooSkewed" in resp


def test_garbage_on_the_socket_does_not_stop_the_gateway(gateway: Gateway) -> None:
    for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"PUT /bkt/k HTTP/1.1\r\n" + b"X: " + b"a" * 100_000 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", gateway.s3_port), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(65536)
            except OSError:
                pass
    assert gateway.get("/_samebytes/health/ready")[0] == 200
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="after")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["after"]


def test_a_client_that_disconnects_mid_body_leaves_nothing_behind(gateway: Gateway) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    h = signed_headers(gateway, "PUT", "/bkt/k", {}, "UNSIGNED-PAYLOAD")
    with socket.create_connection(("127.0.0.1", gateway.s3_port), timeout=10) as s:
        # HTTP/1.1 requires Host (aiohttp >= 3.14 refuses a request without it).
        raw = {**h, "Host": f"127.0.0.1:{gateway.s3_port}", "Content-Length": str(20 << 20)}
        head = "".join(f"{k}: {v}\r\n" for k, v in raw.items())
        s.sendall(f"PUT /bkt/k HTTP/1.1\r\n{head}\r\n".encode() + os.urandom(9 << 20))
    # The gateway notices the short body; no object, and its chunks are discarded.
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        files = [p for p in (gateway.data / "chunks").rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not files:
            break
        time.sleep(0.1)
    assert files == []
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0


def test_virtual_host_style_addressing_with_a_domain(tmp_path) -> None:
    from tests.conftest import start_gateway
    gw = start_gateway(tmp_path / "data", "--domain", "s3.test")
    try:
        s3 = s3_client(gw)
        s3.create_bucket(Bucket="vhost")
        host = f"vhost.s3.test:{gw.s3_port}"
        req = AWSRequest(method="PUT", url=f"http://{host}/dir/key.txt", data=b"virtual",
                         headers={"Content-Length": "7"})
        _Signer(gw, hashlib.sha256(b"virtual").hexdigest()).add_auth(req)
        status, resp = send(gw, "PUT", "/dir/key.txt", {**dict(req.headers.items()), "Host": host}, b"virtual")
        assert status == 200, resp
        assert s3.get_object(Bucket="vhost", Key="dir/key.txt")["Body"].read() == b"virtual"
        req = AWSRequest(method="GET", url=f"http://{host}/?list-type=2", headers={})
        _Signer(gw, EMPTY).add_auth(req)
        status, resp = send(gw, "GET", "/?list-type=2", {**dict(req.headers.items()), "Host": host})
        assert status == 200 and b"<Key>dir/key.txt</Key>" in resp
    finally:
        gw.stop()


def test_a_connection_that_dribbles_its_request_head_is_closed_while_others_are_served(tmp_path) -> None:
    import time
    from tests.conftest import start_gateway
    gw = start_gateway(tmp_path / "data", "--header-timeout", "1.5", "--body-timeout", "1.5")
    try:
        s3 = s3_client(gw)
        s3.create_bucket(Bucket="slow")
        silent = socket.create_connection(("127.0.0.1", gw.s3_port), timeout=15)
        dribbler = socket.create_connection(("127.0.0.1", gw.s3_port), timeout=15)
        dribbler.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed_at = None
        for i in range(40):  # one header byte every 0.25 s: never a complete head
            try:
                dribbler.sendall(b"X")
            except OSError:
                closed_at = time.monotonic() - t0
                break
            assert s3.head_bucket(Bucket="slow")["ResponseMetadata"]["HTTPStatusCode"] == 200
            time.sleep(0.25)
        if closed_at is None:  # the reset may surface on the read side
            dribbler.settimeout(5)
            try:
                assert dribbler.recv(1) == b""
            except ConnectionResetError:
                pass
            closed_at = time.monotonic() - t0
        assert closed_at < 9, "the dribbling connection was never closed"
        silent.settimeout(10)
        try:
            assert silent.recv(1) == b""  # a connection that never sends is closed too
        except ConnectionResetError:
            pass
        silent.close()
        dribbler.close()
        assert s3.list_objects_v2(Bucket="slow")["KeyCount"] == 0
    finally:
        gw.stop()


def test_a_body_that_stalls_gets_400_request_timeout_and_nothing_is_stored(tmp_path) -> None:
    from tests.conftest import start_gateway
    gw = start_gateway(tmp_path / "data", "--header-timeout", "5", "--body-timeout", "1")
    try:
        s3 = s3_client(gw)
        s3.create_bucket(Bucket="stall")
        h = signed_headers(gw, "PUT", "/stall/k", {}, "UNSIGNED-PAYLOAD")
        with socket.create_connection(("127.0.0.1", gw.s3_port), timeout=15) as s:
            raw = {**h, "Host": f"127.0.0.1:{gw.s3_port}", "Content-Length": str(1 << 20)}
            head = "".join(f"{k}: {v}\r\n" for k, v in raw.items())
            s.sendall(f"PUT /stall/k HTTP/1.1\r\n{head}\r\n".encode() + b"x" * 1000)
            answer = b""
            while b"</Error>" not in answer:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"<Code>RequestTimeout</Code>" in answer
        assert s3.list_objects_v2(Bucket="stall")["KeyCount"] == 0
        assert s3.head_bucket(Bucket="stall")["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        gw.stop()


@pytest.mark.parametrize("header", ["x-amz-max-parts", "x-amz-part-number-marker"])
def test_a_non_numeric_part_paging_header_is_invalid_argument(gateway: Gateway, header: str) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="attrs")
    s3.put_object(Bucket="attrs", Key="k", Body=b"kept")
    headers = {"x-amz-object-attributes": "ObjectParts", header: "ten"}
    headers = signed_headers(gateway, "GET", "/attrs/k?attributes", headers, EMPTY)
    status, resp = send(gateway, "GET", "/attrs/k?attributes", headers)
    assert status == 400 and b"<Code>InvalidArgument</Code>" in resp and header.encode() in resp
    assert s3.get_object(Bucket="attrs", Key="k")["Body"].read() == b"kept"


def test_expect_100_continue_gets_an_interim_100_before_the_body_is_sent(gateway: Gateway) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    body = b"after the interim response"
    h = signed_headers(gateway, "PUT", "/bkt/expected", {"Expect": "100-continue"},
                       hashlib.sha256(body).hexdigest(), body)
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    with socket.create_connection(("127.0.0.1", gateway.s3_port), timeout=30) as s:
        s.sendall(f"PUT /bkt/expected HTTP/1.1\r\nHost: 127.0.0.1:{gateway.s3_port}\r\n{head}"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())
        interim = s.recv(65536)  # nothing of the body sent yet
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        s.sendall(body)
        rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while b"\r\n\r\n" not in rest:
            rest += s.recv(65536)
        assert rest.startswith(b"HTTP/1.1 200"), rest
    assert s3.get_object(Bucket="bkt", Key="expected")["Body"].read() == body


def test_an_unknown_expectation_gets_417_and_stores_nothing(gateway: Gateway) -> None:
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    h = signed_headers(gateway, "PUT", "/bkt/unexpected", {"Expect": "teapot"},
                       hashlib.sha256(b"x").hexdigest(), b"x")
    status, _ = send(gateway, "PUT", "/bkt/unexpected", h, b"x")
    assert status == 417
    assert s3.list_objects_v2(Bucket="bkt")["KeyCount"] == 0
    assert gateway.get("/_samebytes/health/live")[0] == 200


def exchange(gw: Gateway, method: str, path: str, headers: dict[str, str],
             body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request; the status, the response headers (names lower-cased) and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.s3_port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def xml_field(body: bytes, name: str) -> str | None:
    import re
    m = re.search(rb"<%s>([^<]*)</%s>" % (name.encode(), name.encode()), body)
    return m.group(1).decode() if m else None


# -- EntityTooLarge: answered from the declared size, before the body -----------------------

FIVE_GIB = 5 << 30


def _head_and_a_few_bytes(gw: Gateway, method: str, path: str, headers: dict[str, str],
                          length: int) -> tuple[int, bytes]:
    """Send the request head declaring `length` body bytes, then only 1000 of them, and
    read the answer (a server waiting for the rest would time the read out)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.s3_port, timeout=15)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(length)}.items():
            conn.putheader(k, v)
        conn.endheaders(b"x" * 1000)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("framing", ["plain", "aws-chunked"])
def test_a_put_declaring_more_than_5_gib_is_entity_too_large_before_its_body(gateway: Gateway,
                                                                           framing: str) -> None:
    """A PUT whose Content-Length (or aws-chunked decoded length) is 5 GiB + 1 gets
    400 EntityTooLarge without the gateway waiting for the body; the object already
    stored under that key keeps its bytes, and the gateway goes on serving."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"keep me")
    if framing == "plain":
        h = signed_headers(gateway, "PUT", "/bkt/k", {}, "UNSIGNED-PAYLOAD")
        length = FIVE_GIB + 1
    else:
        h = signed_headers(gateway, "PUT", "/bkt/k", {
            "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(FIVE_GIB + 1)},
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        length = FIVE_GIB + 1 + 100
    status, resp = _head_and_a_few_bytes(gateway, "PUT", "/bkt/k", h, length)
    assert status == 400 and xml_field(resp, "Code") == "EntityTooLarge", resp
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"keep me"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["k"]
    s3.put_object(Bucket="bkt", Key="after", Body=b"served")
    assert s3.get_object(Bucket="bkt", Key="after")["Body"].read() == b"served"


def test_an_upload_part_declaring_more_than_5_gib_is_entity_too_large_and_adds_no_part(gateway: Gateway) -> None:
    """UploadPart with Content-Length 5 GiB + 1 gets 400 EntityTooLarge before its body;
    the upload has no part and still completes from a good one."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    uid = s3.create_multipart_upload(Bucket="bkt", Key="big")["UploadId"]
    path = f"/bkt/big?partNumber=1&uploadId={uid}"
    h = signed_headers(gateway, "PUT", path, {}, "UNSIGNED-PAYLOAD")
    status, resp = _head_and_a_few_bytes(gateway, "PUT", path, h, FIVE_GIB + 1)
    assert status == 400 and xml_field(resp, "Code") == "EntityTooLarge", resp
    assert s3.list_parts(Bucket="bkt", Key="big", UploadId=uid).get("Parts", []) == []
    etag = s3.upload_part(Bucket="bkt", Key="big", UploadId=uid, PartNumber=1, Body=b"small")["ETag"]
    s3.complete_multipart_upload(Bucket="bkt", Key="big", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket="bkt", Key="big")["Body"].read() == b"small"


# -- x-amz-request-id --------------------------------------------------------------------------

def test_every_response_carries_its_own_request_id_and_error_bodies_repeat_it(gateway: Gateway) -> None:
    """Successful and failed requests (GET, PUT, HEAD) each carry a non-empty
    x-amz-request-id, no two the same; an error body's RequestId is its header's."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    ids = []
    for _ in range(2):
        status, headers, _ = exchange(gateway, "GET", "/", signed_headers(gateway, "GET", "/", {}, EMPTY))
        assert status == 200
        ids.append(headers["x-amz-request-id"])
    body = b"payload"
    h = signed_headers(gateway, "PUT", "/bkt/k", {}, hashlib.sha256(body).hexdigest(), body)
    status, headers, _ = exchange(gateway, "PUT", "/bkt/k", h, body)
    assert status == 200
    ids.append(headers["x-amz-request-id"])
    status, headers, _ = exchange(gateway, "GET", "/bkt/k", signed_headers(gateway, "GET", "/bkt/k", {}, EMPTY))
    assert status == 200
    ids.append(headers["x-amz-request-id"])
    for _ in range(2):
        status, headers, resp = exchange(gateway, "GET", "/bkt/missing",
                                         signed_headers(gateway, "GET", "/bkt/missing", {}, EMPTY))
        assert status == 404 and xml_field(resp, "Code") == "NoSuchKey"
        assert xml_field(resp, "RequestId") == headers["x-amz-request-id"]
        ids.append(headers["x-amz-request-id"])
    status, headers, resp = exchange(gateway, "GET", "/", {})  # anonymous: AccessDenied
    assert status == 403 and xml_field(resp, "RequestId") == headers["x-amz-request-id"]
    ids.append(headers["x-amz-request-id"])
    status, headers, _ = exchange(gateway, "HEAD", "/bkt/missing",
                                  signed_headers(gateway, "HEAD", "/bkt/missing", {}, EMPTY))
    assert status == 404
    ids.append(headers["x-amz-request-id"])
    assert all(ids) and len(set(ids)) == len(ids), ids


def test_a_request_refused_while_its_uri_is_parsed_still_gets_its_own_request_id(gateway: Gateway) -> None:
    """A key that is not UTF-8 once decoded is InvalidURI; each such answer carries a
    request id of its own, also in the body."""
    ids = []
    for _ in range(2):
        status, headers, resp = exchange(gateway, "GET", "/bkt/%ff", {})
        assert status == 400 and xml_field(resp, "Code") == "InvalidURI"
        assert xml_field(resp, "RequestId") == headers["x-amz-request-id"]
        ids.append(headers["x-amz-request-id"])
    assert ids[0] != ids[1]


# -- checksum trailers of unsigned aws-chunked bodies (boto3 over HTTPS) ----------------------

def _client_checksum(alg: str, data: bytes) -> str:
    """The checksum as botocore itself computes it for a trailer."""
    from botocore import httpchecksum as hc
    impl = {"crc32": hc.Crc32Checksum, "crc32c": hc.CrtCrc32cChecksum, "sha1": hc.Sha1Checksum,
            "sha256": hc.Sha256Checksum, "crc64nvme": hc.CrtCrc64NvmeChecksum}[alg]()
    impl.update(data)
    return impl.b64digest()


def _trailer_put(gw: Gateway, key: str, alg: str, data: bytes, value: str,
                 http_chunks: int | None = None) -> tuple[int, bytes]:
    """PUT data as boto3 does over HTTPS (FACTS.md): STREAMING-UNSIGNED-PAYLOAD-TRAILER,
    one aws-chunk, then the x-amz-checksum-<alg> trailer carrying `value`. With
    http_chunks, sent with Transfer-Encoding: chunked in pieces of that size (which do
    not line up with the aws-chunk), as boto3 sends it; otherwise with Content-Length."""
    name = f"x-amz-checksum-{alg}"
    h = signed_headers(gw, "PUT", f"/bkt/{key}", {
        "Content-Encoding": "aws-chunked", "x-amz-trailer": name,
        "x-amz-sdk-checksum-algorithm": alg.upper(),
        "x-amz-decoded-content-length": str(len(data))}, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    body = f"{len(data):x}\r\n".encode() + data + f"\r\n0\r\n{name}:{value}\r\n\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", gw.s3_port, timeout=30)
    try:
        if http_chunks:
            pieces = (body[i:i + http_chunks] for i in range(0, len(body), http_chunks))
            conn.request("PUT", f"/bkt/{key}", body=pieces,
                         headers={**h, "Transfer-Encoding": "chunked"}, encode_chunked=True)
        else:
            conn.request("PUT", f"/bkt/{key}", body=body, headers={**h, "Content-Length": str(len(body))})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("http_chunks", [None, 7777])
def test_a_wrong_checksum_trailer_is_bad_digest_and_the_stored_object_stays(gateway: Gateway,
                                                                           http_chunks: int | None) -> None:
    """An aws-chunked PUT whose x-amz-checksum-crc32 trailer does not match the bytes
    gets 400 BadDigest; the object already stored under the key keeps its bytes, and
    no other key appears."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"keep me")
    data = os.urandom(100_000)
    wrong = _client_checksum("crc32", data + b"!")
    status, resp = _trailer_put(gateway, "k", "crc32", data, wrong, http_chunks)
    assert status == 400 and xml_field(resp, "Code") == "BadDigest", resp
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"keep me"
    status, resp = _trailer_put(gateway, "new", "crc32", data, wrong, http_chunks)
    assert status == 400 and xml_field(resp, "Code") == "BadDigest", resp
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["k"]


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "sha1", "sha256", "crc64nvme"])
def test_a_correct_checksum_trailer_of_each_algorithm_is_stored_and_returned(gateway: Gateway, alg: str) -> None:
    """A right x-amz-checksum-<alg> trailer is accepted (sent in HTTP chunks that
    straddle the aws-chunk); the object holds exactly the payload, and HEAD and GET with
    checksum mode return that checksum."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(200_000)
    value = _client_checksum(alg, data)
    status, resp = _trailer_put(gateway, "k", alg, data, value, http_chunks=65536)
    assert status == 200, resp
    field = f"Checksum{alg.upper()}"
    assert s3.head_object(Bucket="bkt", Key="k", ChecksumMode="ENABLED")[field] == value
    got = s3.get_object(Bucket="bkt", Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got[field] == value


# -- presigned URLs fetched over plain HTTP ------------------------------------------------------

def _fetch(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("change", ["expires", "added-version", "added-override", "dropped-param"])
def test_a_presigned_url_with_a_changed_query_is_signature_does_not_match(gateway: Gateway, change: str) -> None:
    """Every query parameter is signed: changing X-Amz-Expires, adding versionId or a
    response-content-type override, or dropping a signed parameter gets 403
    SignatureDoesNotMatch, while the URL as signed is served."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"signed")
    url = s3.generate_presigned_url("get_object", ExpiresIn=60, Params={
        "Bucket": "bkt", "Key": "k", "ResponseCacheControl": "no-cache"})
    assert _fetch(url) == (200, b"signed")
    assert "X-Amz-Expires=60&" in url and "response-cache-control=no-cache&" in url
    tampered = {"expires": url.replace("X-Amz-Expires=60&", "X-Amz-Expires=600&"),
                "added-version": url + "&versionId=null",
                "added-override": url + "&response-content-type=text%2Fhtml",
                "dropped-param": url.replace("response-cache-control=no-cache&", "")}[change]
    status, resp = _fetch(tampered)
    assert status == 403 and xml_field(resp, "Code") == "SignatureDoesNotMatch", resp


def test_presigned_expiry_up_to_seven_days_is_accepted_and_longer_refused(gateway: Gateway) -> None:
    """X-Amz-Expires=604800 (7 days) is served; 604801 is refused with 400
    AuthorizationQueryParametersError, before the object is read."""
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"week")
    week = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=604800)
    assert "X-Amz-Expires=604800&" in week
    assert _fetch(week) == (200, b"week")
    longer = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=604801)
    assert "X-Amz-Expires=604801&" in longer
    status, resp = _fetch(longer)
    assert status == 400 and xml_field(resp, "Code") == "AuthorizationQueryParametersError", resp


def test_an_expired_presigned_url_is_access_denied(gateway: Gateway) -> None:
    """A presigned GET and PUT fetched after their one-second life get 403
    AccessDenied ("Request has expired"), and the PUT stores nothing."""
    import time
    import urllib.error
    import urllib.request
    s3 = s3_client(gateway)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"short-lived")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=1)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "bkt", "Key": "late"}, ExpiresIn=1)
    time.sleep(2.1)
    status, resp = _fetch(get_url)
    assert status == 403 and xml_field(resp, "Code") == "AccessDenied", resp
    assert xml_field(resp, "Message") == "Request has expired"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(put_url, data=b"too late", method="PUT"), timeout=10)
    assert e.value.code == 403 and xml_field(e.value.read(), "Code") == "AccessDenied"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["k"]
