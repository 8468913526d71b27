from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.conftest import Gateway


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
