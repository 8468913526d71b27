from __future__ import annotations

import base64
import hashlib
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.conftest import Gateway, start_gateway


def client_for(gw: Gateway, access_key: str | None = None, secret_key: str | None = None, **cfg: object):
    return boto3.client(
        "s3", endpoint_url=gw.endpoint, region_name="us-east-1",
        aws_access_key_id=access_key or gw.access_key,
        aws_secret_access_key=secret_key or gw.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}, **cfg),  # type: ignore[arg-type]
    )


@pytest.fixture
def s3(gateway: Gateway) -> Iterator[object]:
    yield client_for(gateway)


# A domain for virtual-host-style tests. Nothing on this machine resolves it (nor any
# `*.localhost`: glibc here has no such rule), so resolve_domain makes this process's
# resolver answer 127.0.0.1 for it and every name below it, as a wildcard DNS record
# would for a real deployment. Only the name lookup is changed: the clients then open
# real sockets to the gateway and send `Host: BUCKET.s3.test:PORT`.
VHOST_DOMAIN = "s3.test"


@pytest.fixture
def resolve_domain(monkeypatch: pytest.MonkeyPatch) -> str:
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kw):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and (name.lower() == VHOST_DOMAIN
                                      or name.lower().endswith("." + VHOST_DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return VHOST_DOMAIN


@pytest.fixture
def vhost_gateway(tmp_path: Path, resolve_domain: str) -> Iterator[Gateway]:
    """A gateway started with `--domain s3.test` (BUCKET.s3.test is the bucket's host),
    with the name resolving to it in this process."""
    gw = start_gateway(tmp_path / "data", "--domain", resolve_domain)
    try:
        yield gw
    finally:
        gw.stop()


def vhost_endpoint(gw: Gateway) -> str:
    return f"http://{VHOST_DOMAIN}:{gw.s3_port}"


# S3 checksums of whole objects, as S3 returns them (base64 of the big-endian digest).
CHECKSUM_ALGS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


def full_object_checksum(alg: str, data: bytes) -> str:
    if alg == "CRC32":
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    if alg in ("SHA1", "SHA256"):
        return base64.b64encode(hashlib.new(alg.lower(), data).digest()).decode()
    from awscrt import checksums  # what botocore itself uses for the CRC32C and CRC64NVME
    if alg == "CRC32C":
        return base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode()
    return base64.b64encode(checksums.crc64nvme(data).to_bytes(8, "big")).decode()


def assert_no_stale_checksum(resp: dict, data: bytes, what: str) -> None:
    """Every checksum S3 returns is the one of data (or none is returned)."""
    for alg in CHECKSUM_ALGS:
        if f"Checksum{alg}" in resp:
            assert resp[f"Checksum{alg}"] == full_object_checksum(alg, data), f"{what}: stale {alg}"


def assert_s3_sees_the_new_bytes(s3, bucket: str, key: str, data: bytes, old_etag: str) -> dict:  # type: ignore[no-untyped-def]
    """GET and HEAD (checksum mode on) of a key changed through a mount: the new bytes, no
    checksum of the old ones, the new length, and an ETag that changed. The HEAD."""
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == data, key  # botocore also checks any checksum returned
    assert_no_stale_checksum(got, data, f"GET {key}")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert_no_stale_checksum(head, data, f"HEAD {key}")
    assert head["ContentLength"] == len(data)
    assert got["ETag"] == head["ETag"] != old_etag, key
    return head  # type: ignore[no-any-return]
