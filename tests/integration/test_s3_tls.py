"""HTTPS: what production uses, and where boto3 switches to aws-chunked bodies with a
CRC32 trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER, FACTS.md)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from tests.conftest import Gateway, tls_gateway_at
from tests.integration.conftest import full_object_checksum


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


def _aio_https_client(gw: Gateway, cert: Path):  # type: ignore[no-untyped-def]
    return get_session().create_client(
        "s3", endpoint_url=f"https://127.0.0.1:{gw.s3_port}", region_name="us-east-1",
        aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key, verify=str(cert),
        config=AioConfig(signature_version="s3v4", s3={"addressing_style": "path"},
                         retries={"max_attempts": 1}))


async def _aio_over_https(gw: Gateway, cert: Path) -> None:
    async with _aio_https_client(gw, cert) as s3:
        sent: list[dict[str, str]] = []
        s3.meta.events.register("before-send.s3.PutObject",
                                lambda request, **_: sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                                                                 for k, v in request.headers.items()}))
        await s3.create_bucket(Bucket="aiotls")
        blobs = {"d/zero": b"", "d/five": b"hello", "d/one-mib": os.urandom((1 << 20) + 17),
                 "d/nine-mib": os.urandom(9 << 20)}
        for key, data in blobs.items():
            put = await s3.put_object(Bucket="aiotls", Key=key, Body=data, Metadata={"n": str(len(data))})
            assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        # What this proves depends on how aiobotocore sent the bodies: aws-chunked with a
        # CRC32 trailer, the framing the door must decode (and not store).
        assert all(h.get("x-amz-trailer") == "x-amz-checksum-crc32" for h in sent), sent
        assert all("aws-chunked" in h.get("content-encoding", "") for h in sent), sent
        for key, data in blobs.items():
            got = await s3.get_object(Bucket="aiotls", Key=key, ChecksumMode="ENABLED")
            async with got["Body"] as body:  # aiobotocore checks the returned CRC32 as it reads
                assert await body.read() == data, key
            assert got["ContentLength"] == len(data) and got["Metadata"] == {"n": str(len(data))}
            if data:
                assert got["ChecksumCRC32"] == full_object_checksum("CRC32", data), key  # the trailer's value, stored
        listed = await s3.list_objects_v2(Bucket="aiotls", Prefix="d/")
        assert {o["Key"]: o["Size"] for o in listed["Contents"]} == {k: len(v) for k, v in blobs.items()}
        await s3.copy_object(Bucket="aiotls", Key="copy/nine", CopySource="aiotls/d/nine-mib")
        got = await s3.get_object(Bucket="aiotls", Key="copy/nine", ChecksumMode="ENABLED")
        async with got["Body"] as body:
            assert await body.read() == blobs["d/nine-mib"]
        assert got["ETag"] == f'"{hashlib.md5(blobs["d/nine-mib"]).hexdigest()}"'
        for key in [*blobs, "copy/nine"]:
            await s3.delete_object(Bucket="aiotls", Key=key)
        assert (await s3.list_objects_v2(Bucket="aiotls"))["KeyCount"] == 0
        await s3.delete_bucket(Bucket="aiotls")


def test_aiobotocore_over_https_puts_aws_chunked_bodies_and_gets_lists_copies_deletes(tls_gateway) -> None:
    """aiobotocore over HTTPS (self-signed certificate) sends its PUT bodies aws-chunked with
    a CRC32 trailer: the door stores exactly the payload bytes and the trailer's checksum,
    which a GET with ChecksumMode=ENABLED returns (and aiobotocore verifies); listing, a
    server-side copy and deletes work over the same TLS connections."""
    asyncio.run(_aio_over_https(*tls_gateway))
