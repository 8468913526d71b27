"""HTTPS: what production uses, and where boto3 switches to aws-chunked bodies with a
CRC32 trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER, FACTS.md)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.conftest import Gateway, tls_gateway_at


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    with tls_gateway_at(tmp_path) as gw_cert:
        yield gw_cert


def https_client(gw: Gateway, cert: Path):
    return boto3.client(
        "s3", endpoint_url=f"https://127.0.0.1:{gw.s3_port}", region_name="us-east-1",
        aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key, verify=str(cert),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def test_boto3_over_https_streams_aws_chunked_bodies_with_checksum_trailers(tls_gateway) -> None:
    gw, cert = tls_gateway
    s3 = https_client(gw, cert)
    s3.create_bucket(Bucket="bkt")
    for size in (0, 5, (1 << 20) + 17, 9 << 20):  # 9 MiB: HTTP chunks do not line up with aws-chunks
        data = os.urandom(size)
        put = s3.put_object(Bucket="bkt", Key=f"k{size}", Body=data)
        assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket="bkt", Key=f"k{size}", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        if size:
            assert got["ChecksumCRC32"]  # the trailer's checksum was stored
    # Nothing of the aws-chunked framing ended up inside an object.
    assert s3.get_object(Bucket="bkt", Key="k5")["ContentLength"] == 5


def test_multipart_upload_over_https(tls_gateway) -> None:
    gw, cert = tls_gateway
    s3 = https_client(gw, cert)
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(12 << 20)
    from boto3.s3.transfer import TransferConfig
    import io
    s3.upload_fileobj(io.BytesIO(data), "bkt", "big", Config=TransferConfig(multipart_threshold=5 << 20,
                                                                              multipart_chunksize=5 << 20))
    assert s3.get_object(Bucket="bkt", Key="big")["Body"].read() == data
    assert s3.head_object(Bucket="bkt", Key="big")["ETag"].endswith('-3"')
