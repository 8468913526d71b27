"""The s3 chunk backend when the backend misbehaves: a fault-injecting proxy
(tests/faultproxy.py) sits between a real gateway and moto's S3 server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Gateway, start_gateway
from tests.faultproxy import FaultProxy
from tests.integration.conftest import client_for
from tests.s3backends import ChunkBackend, session_backend

MiB = 1 << 20


@pytest.fixture(scope="module")
def moto() -> ChunkBackend:
    return session_backend("moto")


@pytest.fixture
def proxy(moto: ChunkBackend) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.endpoint).start()
    try:
        yield p
    finally:
        p.close()


def gateway_via(proxy: FaultProxy, moto: ChunkBackend, data: Path, *args: str) -> Gateway:
    return start_gateway(data, *moto.args(moto.bucket_for(data), endpoint=proxy.endpoint), *args,
                         env=moto.env())


def status(e: pytest.ExceptionInfo[ClientError]) -> int:
    return int(e.value.response["ResponseMetadata"]["HTTPStatusCode"])


def wait_for(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_slowdown_on_30_percent_of_chunk_puts_still_stores_every_object(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    gw = gateway_via(proxy, moto, tmp_path / "data", "--cache-size", "0")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="slow")
        proxy.put_fail_rate = 0.3
        blobs = {f"k{i}": os.urandom(5 * MiB) for i in range(8)}  # 16 chunk PUTs at least
        for k, v in blobs.items():
            s3.put_object(Bucket="slow", Key=k, Body=v)
        assert proxy.counts["put_503"] > 0, proxy.counts
        proxy.put_fail_rate = 0.0
        for k, v in blobs.items():
            assert s3.get_object(Bucket="slow", Key=k)["Body"].read() == v
    finally:
        gw.stop()


def test_backend_stall_gives_a_clean_503_and_commits_nothing(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    gw = gateway_via(proxy, moto, tmp_path / "data", "--chunks-deadline", "3")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="stall")
        proxy.hold_puts()
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="stall", Key="never", Body=os.urandom(2 * MiB))
        assert status(e) == 503 and e.value.response["Error"]["Code"] == "ServiceUnavailable"
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="stall", Key="never")
        assert status(e) == 404
        assert "Contents" not in s3.list_objects_v2(Bucket="stall")
        proxy.release()
        s3.put_object(Bucket="stall", Key="later", Body=b"y" * MiB)  # serving again
        assert s3.get_object(Bucket="stall", Key="later")["Body"].read() == b"y" * MiB
    finally:
        proxy.release()
        gw.stop()


def test_metadata_commits_only_after_the_chunk_upload_returned(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    gw = gateway_via(proxy, moto, tmp_path / "data")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="order")
        body = os.urandom(3 * MiB)
        proxy.hold_puts()
        result: dict[str, object] = {}

        def put() -> None:
            try:
                result["etag"] = client_for(gw).put_object(Bucket="order", Key="obj",
                                                           Body=body)["ETag"]
            except Exception as exc:  # reported by the assertion below
                result["error"] = exc

        t = threading.Thread(target=put)
        t.start()
        wait_for(lambda: proxy.held >= 1)
        # The upload is held inside the backend: nothing may point at it yet.
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="order", Key="obj")
        assert status(e) == 404
        assert "Contents" not in s3.list_objects_v2(Bucket="order")
        proxy.release()
        t.join(120)
        assert "error" not in result, result
        assert s3.get_object(Bucket="order", Key="obj")["Body"].read() == body
    finally:
        proxy.release()
        gw.stop()


def test_flipped_bit_in_a_chunk_get_is_refetched_and_never_served(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    gw = gateway_via(proxy, moto, tmp_path / "data", "--cache-size", "0")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="flip")
        body = os.urandom(3 * MiB)
        s3.put_object(Bucket="flip", Key="obj", Body=body)
        other = os.urandom(3 * MiB)
        s3.put_object(Bucket="flip", Key="other", Body=other)
        proxy.flip_gets = 1
        assert s3.get_object(Bucket="flip", Key="obj")["Body"].read() == body
        assert proxy.counts["flipped"] == 1 and proxy.counts["get"] >= 2
        # Every fetch corrupt (an object not read yet): the read fails, never with wrong bytes.
        proxy.flip_gets = 1000
        try:
            got = s3.get_object(Bucket="flip", Key="other")["Body"].read()
        except Exception as exc:  # a 500 or a cut-off body: both refuse the bad bytes
            assert "ChunkCorrupt" not in type(exc).__name__
        else:
            pytest.fail(f"served {len(got)} bytes from corrupt chunks")
        assert "corrupt bytes from the backend, fetching again" in gw.log()
        proxy.flip_gets = 0
        assert s3.get_object(Bucket="flip", Key="other")["Body"].read() == other
    finally:
        gw.stop()


def test_backend_down_fails_writes_with_503_serves_cached_reads_and_recovers(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    gw = gateway_via(proxy, moto, tmp_path / "data", "--chunks-deadline", "5")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="down")
        cached = os.urandom(6 * MiB)
        s3.put_object(Bucket="down", Key="cached", Body=cached)  # written through the cache
        proxy.down()
        assert s3.get_object(Bucket="down", Key="cached")["Body"].read() == cached
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="down", Key="new", Body=os.urandom(2 * MiB))
        assert status(e) == 503
        assert "backend unavailable" in e.value.response["Error"]["Message"]
        assert gw.get("/_samebytes/health/ready")[0] == 503
        proxy.up()
        fresh = os.urandom(2 * MiB)
        s3.put_object(Bucket="down", Key="new", Body=fresh)
        assert s3.get_object(Bucket="down", Key="new")["Body"].read() == fresh
        wait_for(lambda: gw.get("/_samebytes/health/ready")[0] == 200)
    finally:
        gw.stop()


def test_read_cache_survives_a_restart_and_drops_a_rotten_file(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend) -> None:
    data = tmp_path / "data"
    gw = gateway_via(proxy, moto, data)
    body = os.urandom(5 * MiB)
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="cache")
        s3.put_object(Bucket="cache", Key="obj", Body=body)
    finally:
        gw.stop()
    files = sorted(p for p in (data / "cache").rglob("*") if p.is_file())
    assert len(files) == 2  # the object's two chunks, written through
    gw = gateway_via(proxy, moto, data)
    try:
        s3 = client_for(gw)
        proxy.down()  # only the cache can answer now
        assert s3.get_object(Bucket="cache", Key="obj")["Body"].read() == body
        proxy.up()
        rotten = bytearray(files[0].read_bytes())
        rotten[1000] ^= 0x10
        files[0].write_bytes(bytes(rotten))
        gets = proxy.counts["get"]
        assert s3.get_object(Bucket="cache", Key="obj")["Body"].read() == body
        assert proxy.counts["get"] == gets + 1  # the rotten chunk alone was fetched again
        assert "dropping chunk" in gw.log()
    finally:
        gw.stop()


def test_flipped_bit_in_a_chunk_upload_is_refused_by_the_backend_and_sent_again(
        tmp_path: Path) -> None:
    backend = session_backend("gateway")  # a backend that verifies upload checksums
    proxy = FaultProxy(backend.endpoint).start()
    try:
        gw = start_gateway(tmp_path / "data", *backend.args(endpoint=proxy.endpoint),
                           env=backend.env())
        try:
            s3 = client_for(gw)
            s3.create_bucket(Bucket="upflip")
            body = os.urandom(3 * MiB)
            proxy.flip_puts = 1
            s3.put_object(Bucket="upflip", Key="obj", Body=body)
            assert proxy.counts["put_flipped"] == 1 and proxy.counts["put"] >= 2
            assert s3.get_object(Bucket="upflip", Key="obj")["Body"].read() == body
        finally:
            gw.stop()
    finally:
        proxy.close()


@pytest.mark.parametrize("door", ["s3", "fuse"])
def test_a_sequential_reader_gets_the_following_chunks_fetched_concurrently(
        tmp_path: Path, proxy: FaultProxy, moto: ChunkBackend, door: str) -> None:
    if door == "fuse" and not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    extra = ("--mount", str(mnt)) if door == "fuse" else ()
    gw = gateway_via(proxy, moto, tmp_path / "data", "--cache-size", "0", *extra)
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="seq")
        body = os.urandom(24 * MiB)  # six 4 MiB chunks
        s3.put_object(Bucket="seq", Key="big", Body=body)
        if door == "s3":
            got = s3.get_object(Bucket="seq", Key="big")["Body"].read()
        else:
            with open(mnt / "seq" / "big", "rb") as f:
                got = b"".join(iter(lambda: f.read(128 * 1024), b""))
        assert got == body
        assert proxy.max_gets_in_flight >= 2, proxy.max_gets_in_flight
    finally:
        gw.stop()
