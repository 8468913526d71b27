"""chunkstore/presign.py: chunk URLs signed without botocore, checked against botocore's
own presigner (the same signature for the same request and time)."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.config import Config

from chunkstore.presign import Credentials, UrlShape

REL = "34/12/0000000000001234"


def botocore_url(op: str, prefix: str, *, endpoint: str | None, addressing: str = "path",
                 region: str = "us-east-1", token: str | None = None, **params: object) -> str:
    c = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                     aws_access_key_id="AKID", aws_secret_access_key="SECRET",
                     aws_session_token=token,
                     config=Config(signature_version="s3v4",
                                   s3={"addressing_style": addressing,
                                       "payload_signing_enabled": False}))
    return c.generate_presigned_url(op, Params={"Bucket": "chunks", "Key": f"{prefix}/{REL}",
                                                **params}, ExpiresIn=330)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.mark.parametrize("endpoint,addressing,region,token,prefix", [
    ("http://127.0.0.1:9000", "path", "us-east-1", None, "c"),
    ("http://127.0.0.1:9000", "path", "us-east-1", "session-token/+=", "with space+plus"),
    (None, "virtual", "eu-west-1", None, "c"),
])
def test_learned_shape_signs_the_next_chunk_as_botocore_does(
        endpoint: str | None, addressing: str, region: str, token: str | None,
        prefix: str) -> None:
    creds = Credentials("AKID", "SECRET", token)
    for op, method, params, signed in (
            ("get_object", "GET", {}, {}),
            ("put_object", "PUT", {"ChecksumCRC32C": "yZRlqg==", "ContentLength": 5},
             {"content-length": "5", "x-amz-checksum-crc32c": "yZRlqg=="})):
        theirs = botocore_url(op, prefix, endpoint=endpoint, addressing=addressing,
                              region=region, token=token, **params)
        shape = UrlShape.learn(theirs, REL, creds, method, signed)
        assert shape is not None, theirs
        q = query(theirs)
        when = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        mine = shape.url(method, REL, creds, 330, when, signed)
        assert urlsplit(mine).path == urlsplit(theirs).path
        assert urlsplit(mine).netloc == urlsplit(theirs).netloc
        assert query(mine) == q


def test_a_shape_that_cannot_reproduce_the_signature_is_refused() -> None:
    theirs = botocore_url("get_object", "c", endpoint="http://127.0.0.1:9000")
    assert UrlShape.learn(theirs, REL, Credentials("AKID", "SECRET"), "GET", {}) is not None
    assert UrlShape.learn(theirs, REL, Credentials("AKID", "OTHER"), "GET", {}) is None
    assert UrlShape.learn(theirs, "99/99/0000000000009999", Credentials("AKID", "SECRET"),
                          "GET", {}) is None
