"""The s3 chunk store against a backend over HTTPS (a second samebytes gateway with a
self-signed certificate, trusted through AWS_CA_BUNDLE as botocore would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from chunkstore.s3 import S3ChunkStore, S3Location
from tests.conftest import Gateway, tls_gateway_at

MiB = 1 << 20


@pytest.fixture
def tls_backend(tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    with tls_gateway_at(tmp_path) as gw_cert:
        yield gw_cert


async def test_chunks_over_https_are_received_into_one_verified_buffer(
        tls_backend: tuple[Gateway, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    gw, cert = tls_backend
    endpoint = f"https://127.0.0.1:{gw.s3_port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key,
                 verify=str(cert), config=Config(s3={"addressing_style": "path"})
                 ).create_bucket(Bucket="chunks")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    store = S3ChunkStore(S3Location("chunks", "c", endpoint, access_key=gw.access_key,
                                    secret_key=gw.secret_key))
    try:
        data = os.urandom(4 * MiB + 5)
        info = await store.put(7, data)
        for _ in range(3):  # the first URLs come from botocore, the later ones from presign.py
            segs = await store.fetch_segments(info, 0, info.size, MiB)
            assert b"".join(segs) == data
            assert [len(s) for s in segs] == [MiB] * 4 + [5]
            # Views of the one buffer the body was received into (not aiohttp's pieces).
            assert all(isinstance(s, memoryview) and s.readonly for s in segs)
        assert await store.get(info, 70_000, 100_000) == data[70_000:170_000]
        other = await store.put(8, data[:MiB])
        assert await store.get(other) == data[:MiB]
    finally:
        await store.close()
