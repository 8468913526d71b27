"""What the S3 door's answers carry besides the body, as AWS sends it: both request ids on
every answer, a 304's validators, an object's own Content-Encoding (never the upload's
aws-chunked framing), ranges of an empty object, and who an anonymous reader of a public
bucket reads as. Real gateways, boto3 and plain HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Gateway, mounted_gateway, tls_gateway_at
from tests.integration.conftest import client_for
from tests.integration.test_s3_tls import https_client


def _headers(e: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    return e.value.response["ResponseMetadata"]["HTTPHeaders"]


def test_every_answer_carries_a_request_id_and_a_host_id(gateway: Gateway, s3) -> None:
    s3.create_bucket(Bucket="bkt")
    answers = [s3.put_object(Bucket="bkt", Key="small", Body=b"x"),
               s3.put_object(Bucket="bkt", Key="big", Body=os.urandom(9 << 20)),
               s3.list_objects_v2(Bucket="bkt"),
               s3.head_object(Bucket="bkt", Key="small")]
    big = s3.get_object(Bucket="bkt", Key="big")  # a streamed body: its head went out first
    big["Body"].read()
    answers.append(big)
    ids = [a["ResponseMetadata"]["HTTPHeaders"] for a in answers]
    assert all(h.get("x-amz-request-id") and h.get("x-amz-id-2") for h in ids), ids
    assert len({h["x-amz-request-id"] for h in ids}) == len(ids)  # one per request
    # An error names both in its headers, and in its body as RequestId and HostId.
    conn = http.client.HTTPConnection("127.0.0.1", gateway.s3_port, timeout=10)
    conn.request("GET", "/bkt/nothing-here")  # anonymous: AccessDenied
    r = conn.getresponse()
    body = r.read().decode()
    assert r.status == 403
    assert f"<RequestId>{r.getheader('x-amz-request-id')}</RequestId>" in body
    assert f"<HostId>{r.getheader('x-amz-id-2')}</HostId>" in body
    assert r.getheader("x-amz-id-2") == ids[0]["x-amz-id-2"]  # the same serving process
    conn.close()


def test_a_304_carries_the_etag_and_last_modified(s3) -> None:
    s3.create_bucket(Bucket="bkt")
    etag = s3.put_object(Bucket="bkt", Key="k", Body=b"v1")["ETag"]
    head = s3.head_object(Bucket="bkt", Key="k")
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as e:
            call(Bucket="bkt", Key="k", IfNoneMatch=etag)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
        h = _headers(e)
        assert h["etag"] == etag
        assert h["last-modified"] == head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
        with pytest.raises(ClientError) as e:
            call(Bucket="bkt", Key="k", IfModifiedSince=head["LastModified"])
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
        assert _headers(e)["etag"] == etag


@pytest.mark.parametrize("rng", ["bytes=-5", "bytes=0-", "bytes=0-0"])
def test_no_range_of_an_empty_object_is_satisfiable(s3, rng: str) -> None:
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="empty", Body=b"")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="empty", Range=rng)
    assert e.value.response["Error"]["Code"] == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    assert _headers(e)["content-range"] == "bytes */0"
    assert s3.get_object(Bucket="bkt", Key="empty")["Body"].read() == b""  # whole: fine


def test_content_encoding_keeps_the_objects_own_and_drops_aws_chunked(tmp_path: Path) -> None:
    """boto3 over HTTPS frames every PUT body as aws-chunked and says so in
    Content-Encoding; AWS stores only the object's own encoding. Returned, aws-chunked
    would make urllib3 (requests) try to decode the body."""
    with tls_gateway_at(tmp_path) as (gw, cert):
        s3 = https_client(gw, cert)
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="plain", Body=b"plain bytes")
        s3.put_object(Bucket="bkt", Key="gz", Body=b"\x1f\x8b pretend gzip", ContentEncoding="gzip")
        s3.copy_object(Bucket="bkt", Key="gz-copy", CopySource={"Bucket": "bkt", "Key": "gz"})
        # A multipart object takes its headers from the initiation; parts store none.
        up = s3.create_multipart_upload(Bucket="bkt", Key="mp", ContentEncoding="gzip")
        part = s3.upload_part(Bucket="bkt", Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
        s3.complete_multipart_upload(Bucket="bkt", Key="mp", UploadId=up["UploadId"], MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        assert "ContentEncoding" not in s3.head_object(Bucket="bkt", Key="plain")
        got = s3.get_object(Bucket="bkt", Key="plain")
        assert "ContentEncoding" not in got and got["Body"].read() == b"plain bytes"
        for key in ("gz", "gz-copy", "mp"):
            assert s3.head_object(Bucket="bkt", Key=key)["ContentEncoding"] == "gzip", key


def test_an_anonymous_reader_of_a_public_bucket_reads_as_its_owner(tmp_path: Path) -> None:
    """Public means readable as the bucket's owner could read it, not as root: a file in it
    that its owner may not read (made private through the mount) stays private."""
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing: the FUSE door cannot be tested")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mounted_gateway(tmp_path / "data", mnt) as gw:
        out = subprocess.run([sys.executable, "-m", "gateway.cli", "user", "add", "bob",
                              "--data", str(gw.data)], check=True, capture_output=True, text=True)
        keys = json.loads(out.stdout)
        bob = client_for(gw, keys["access_key"], keys["secret_key"])
        root = client_for(gw)
        bob.create_bucket(Bucket="pub")
        bob.put_object(Bucket="pub", Key="open", Body=b"for everyone")
        root.put_object(Bucket="pub", Key="closed", Body=b"root only")
        os.chmod(mnt / "pub" / "closed", 0o600)  # root's file, now unreadable by bob
        with pytest.raises(ClientError):
            bob.get_object(Bucket="pub", Key="closed")
        subprocess.run([sys.executable, "-m", "gateway.cli", "bucket", "public", "pub",
                        "--data", str(gw.data)], check=True, capture_output=True)
        with urllib.request.urlopen(f"{gw.endpoint}/pub/open") as r:
            assert r.read() == b"for everyone"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{gw.endpoint}/pub/closed")
        assert e.value.code == 403 and b"AccessDenied" in e.value.read()
        assert root.get_object(Bucket="pub", Key="closed")["Body"].read() == b"root only"


def test_an_anonymous_get_cannot_override_response_headers(gateway: Gateway, s3) -> None:
    """As on S3: response-* overrides need a signed request; a public object's headers are
    its owner's to set."""
    s3.create_bucket(Bucket="pub")
    s3.put_object(Bucket="pub", Key="page", Body=b"<p>hi</p>", ContentType="text/html")
    subprocess.run([sys.executable, "-m", "gateway.cli", "bucket", "public", "pub",
                    "--data", str(gateway.data)], check=True, capture_output=True)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{gateway.endpoint}/pub/page?response-content-type=application/x-evil")
    assert e.value.code == 400 and b"<Code>InvalidRequest</Code>" in e.value.read()
    with urllib.request.urlopen(f"{gateway.endpoint}/pub/page") as r:
        assert r.headers["Content-Type"] == "text/html" and r.read() == b"<p>hi</p>"
    signed = s3.get_object(Bucket="pub", Key="page", ResponseContentType="text/plain")
    assert signed["ContentType"] == "text/plain"  # the owner may
