"""bench/swift_peer.py: OpenStack Swift + s3api starts from a temporary directory, serves S3
to boto3 (PUT, GET, presigned GET, ListObjectsV2, wrong secret refused), keeps its objects
in the directory it was given, and stops every process it started.

Needs Debian's Swift packages (Makefile TEST_PACKAGES); skipped with the reason when they
are missing, except in CI (.ci/run sets CI=true), where a missing Swift fails the test.
"""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench import swift_peer
from tests.conftest import IN_CI

MISSING = swift_peer.missing()
needs_swift = pytest.mark.skipif(MISSING is not None and not IN_CI,
                                 reason=f"{MISSING}")


def _client(peer: swift_peer.SwiftPeer, secret: str | None = None):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=peer.endpoint, aws_access_key_id=peer.access_key,
                        aws_secret_access_key=secret or peer.secret_key, region_name="us-east-1",
                        config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[swift_peer.SwiftPeer]:
    p = swift_peer.start(tmp_path_factory.mktemp("swift"), timeout=120)
    try:
        yield p
    finally:
        p.stop()


@needs_swift
def test_swift_s3api_puts_and_gets_the_same_bytes_with_boto3(peer: swift_peer.SwiftPeer) -> None:
    s3 = _client(peer)
    s3.create_bucket(Bucket="roundtrip")
    body = os.urandom(100_000)
    s3.put_object(Bucket="roundtrip", Key="dir/obj.bin", Body=body)
    assert s3.get_object(Bucket="roundtrip", Key="dir/obj.bin")["Body"].read() == body
    # A presigned URL (how bench.s3 drives every peer) serves the same bytes.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "roundtrip", "Key": "dir/obj.bin"},
                                    ExpiresIn=600)
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
    try:
        conn.request("GET", url.removeprefix(peer.endpoint))
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, body)
    finally:
        conn.close()
    listed = s3.list_objects_v2(Bucket="roundtrip")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/obj.bin"]
    # The object file lies under the directory start() was given (the benchmark's disk).
    sizes = [f.stat().st_size for f in (peer.root / "srv").rglob("*.data")]
    assert len(body) in sizes


@needs_swift
def test_swift_s3api_refuses_a_wrong_secret(peer: swift_peer.SwiftPeer) -> None:
    with pytest.raises(ClientError) as e:
        _client(peer, secret="not-" + peer.secret_key).list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@needs_swift
def test_swift_peer_stop_ends_every_process_and_frees_the_port(
        tmp_path: Path) -> None:
    p = swift_peer.start(tmp_path / "swift", timeout=120)
    try:
        assert set(p.procs) >= {"proxy", "account", "container", "object"}
        user, system, main = p.cpu()
        assert user + system > 0 and main > 0
    finally:
        p.stop()
    assert all(proc.poll() is not None for proc in p.procs.values())
    assert not _listening(p.port)


def test_swift_peer_without_swift_installed_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no swift-* programs on it
    why = swift_peer.missing()
    assert why is not None and "swift-proxy-server" in why and "apt-get install" in why
    with pytest.raises(swift_peer.SwiftUnavailable, match="apt-get install"):
        swift_peer.start(tmp_path / "swift")
    assert not (tmp_path / "swift").exists()
