from __future__ import annotations

import socket
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
