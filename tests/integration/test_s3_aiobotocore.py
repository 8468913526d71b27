"""aiobotocore (the async SDK our own s3 chunk backend will use) against the door."""

from __future__ import annotations

import asyncio
import hashlib
import os
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from tests.conftest import Gateway
from tests.integration.conftest import vhost_endpoint


async def _run(gw: Gateway) -> None:
    session = get_session()
    async with session.create_client(
            "s3", endpoint_url=gw.endpoint, region_name="us-east-1",
            aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key,
            config=AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})) as s3:
        await s3.create_bucket(Bucket="aio")
        blobs = {f"chunks/{i:04d}": os.urandom(100_000 + i) for i in range(32)}
        # Many concurrent requests on one client, as a chunk backend issues them.
        await asyncio.gather(*(s3.put_object(Bucket="aio", Key=k, Body=v) for k, v in blobs.items()))
        got = await asyncio.gather(*(s3.get_object(Bucket="aio", Key=k) for k in blobs))
        for (k, v), r in zip(blobs.items(), got):
            async with r["Body"] as body:
                assert await body.read() == v, k
            assert r["ETag"] == f'"{hashlib.md5(v).hexdigest()}"'
        r = await s3.get_object(Bucket="aio", Key="chunks/0003", Range="bytes=10-19")
        async with r["Body"] as body:
            assert await body.read() == blobs["chunks/0003"][10:20]
        keys = []
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket="aio", Prefix="chunks/", PaginationConfig={"PageSize": 10}):
            keys += [o["Key"] for o in page.get("Contents", [])]
        assert keys == sorted(blobs)
        await s3.delete_objects(Bucket="aio", Delete={"Objects": [{"Key": k} for k in blobs]})
        assert (await s3.list_objects_v2(Bucket="aio"))["KeyCount"] == 0


def test_aiobotocore_concurrent_puts_gets_and_listing(gateway: Gateway) -> None:
    asyncio.run(_run(gateway))


async def _run_virtual(gw: Gateway) -> None:
    session = get_session()
    async with session.create_client(
            "s3", endpoint_url=vhost_endpoint(gw), region_name="us-east-1",
            aws_access_key_id=gw.access_key, aws_secret_access_key=gw.secret_key,
            config=AioConfig(signature_version="s3v4", s3={"addressing_style": "virtual"},
                             retries={"max_attempts": 1})) as s3:
        sent: list[str] = []
        s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
        await s3.create_bucket(Bucket="avh")
        blobs = {f"d/{i}": os.urandom(50_000 + i) for i in range(8)} | {"top": b"top"}
        await asyncio.gather(*(s3.put_object(Bucket="avh", Key=k, Body=v) for k, v in blobs.items()))
        for k, v in blobs.items():
            r = await s3.get_object(Bucket="avh", Key=k)
            async with r["Body"] as body:
                assert await body.read() == v, k
            assert r["ETag"] == f'"{hashlib.md5(v).hexdigest()}"'
        listed = await s3.list_objects_v2(Bucket="avh", Delimiter="/")
        assert [o["Key"] for o in listed["Contents"]] == ["top"]
        assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["d/"]
        listed = await s3.list_objects_v2(Bucket="avh", Prefix="d/")
        assert [o["Key"] for o in listed["Contents"]] == sorted(k for k in blobs if k != "top")
        await s3.delete_objects(Bucket="avh", Delete={"Objects": [{"Key": k} for k in blobs]})
        assert (await s3.list_objects_v2(Bucket="avh"))["KeyCount"] == 0
        # Every request named the bucket by its Host, never in its path.
        assert sent and all(urlsplit(u).hostname == "avh.s3.test" for u in sent), sent
        assert not [u for u in sent if urlsplit(u).path.startswith("/avh")]


def test_aiobotocore_with_virtual_host_addressing_against_a_domain(vhost_gateway: Gateway) -> None:
    """aiobotocore with addressing_style="virtual" against `serve --domain`: concurrent
    PUTs, GETs, delimited listings and a batch delete reach the bucket named by the Host."""
    asyncio.run(_run_virtual(vhost_gateway))
