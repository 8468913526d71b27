"""The s3 chunk backend under real clients: a gateway keeping its chunks in moto's server
and in a second samebytes gateway (parametrized by the chunk_backend fixture)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Gateway, start_gateway
from tests.integration.conftest import client_for

MiB = 1 << 20
CHUNK_KEY = re.compile(r"^c/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{16}$")


def chunk_bucket(gw: Gateway) -> str:
    import json
    return json.loads((gw.data / "chunk-backend.json").read_text())["bucket"]


def test_boto3_objects_round_trip_with_chunks_in_the_backend(s3_gateway: Gateway,
                                                             chunk_backend) -> None:
    s3 = client_for(s3_gateway)
    s3.create_bucket(Bucket="bkt")
    big = os.urandom(9 * MiB + 12345)  # three 4 MiB chunks, the last one short
    s3.put_object(Bucket="bkt", Key="big", Body=big)
    assert s3.get_object(Bucket="bkt", Key="big")["Body"].read() == big
    got = s3.get_object(Bucket="bkt", Key="big", Range="bytes=4194000-8389000")["Body"].read()
    assert got == big[4194000:8389001]

    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    up = s3.create_multipart_upload(Bucket="bkt", Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket="bkt", Key="mp", UploadId=up, PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    s3.complete_multipart_upload(Bucket="bkt", Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(etags)]})
    assert s3.get_object(Bucket="bkt", Key="mp")["Body"].read() == b"".join(parts)

    s3.copy_object(Bucket="bkt", Key="copy", CopySource={"Bucket": "bkt", "Key": "big"})
    assert hashlib.md5(s3.get_object(Bucket="bkt", Key="copy")["Body"].read()).digest() == \
        hashlib.md5(big).digest()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]]
    assert keys == ["big", "copy", "mp"]

    stored = chunk_backend.objects(chunk_bucket(s3_gateway))
    assert len(stored) >= 3 + 2  # big's chunks and the multipart's, at least
    assert all(CHUNK_KEY.match(k) for k in stored), stored
    # Nothing went to the local chunk folder: the bytes live in the backend.
    assert not any((s3_gateway.data / "chunks").rglob("*")) if (s3_gateway.data / "chunks").exists() else True


def test_fuse_mount_reads_and_writes_through_the_s3_backend(tmp_path: Path, chunk_backend) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    gw = start_gateway(tmp_path / "data", *chunk_backend.args(), "--mount", str(mnt),
                       env=chunk_backend.env())
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="fbk")
        blob = os.urandom(6 * MiB)
        s3.put_object(Bucket="fbk", Key="from-s3.bin", Body=blob)
        assert (mnt / "fbk" / "from-s3.bin").read_bytes() == blob
        mine = os.urandom(5 * MiB + 7)
        (mnt / "fbk" / "from-fuse.bin").write_bytes(mine)
        assert s3.get_object(Bucket="fbk", Key="from-fuse.bin")["Body"].read() == mine
    finally:
        gw.stop()


def _serve_fails(data: Path, *args: str, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--data", str(data),
                        "--s3", "127.0.0.1:1", *args], capture_output=True, text=True,
                       timeout=60, env={**os.environ, **(env or {})})
    assert r.returncode != 0
    return r.stderr


def test_starting_with_a_different_chunk_backend_is_refused(tmp_path: Path,
                                                            chunk_backend) -> None:
    data = tmp_path / "data"
    gw = start_gateway(data, "--chunks", "local")
    s3 = client_for(gw)
    s3.create_bucket(Bucket="keep")
    s3.put_object(Bucket="keep", Key="k", Body=os.urandom(MiB))
    gw.stop()
    err = _serve_fails(data, *chunk_backend.args(), env=chunk_backend.env())
    assert "keeps its chunks in local" in err and "--chunks local" in err, err

    data2 = tmp_path / "data2"
    args = chunk_backend.args()
    gw = start_gateway(data2, *args, env=chunk_backend.env())
    gw.stop()
    err = _serve_fails(data2, "--chunks", "local")
    assert f"keeps its chunks in {args[1]}" in err, err
    err = _serve_fails(data2, "--chunks", args[1] + "-other", "--chunks-endpoint", args[3],
                       env=chunk_backend.env())
    assert "keeps its chunks in" in err, err
    # The right backend still starts, and the data is intact.
    gw = start_gateway(data, "--chunks", "local")
    try:
        assert len(client_for(gw).get_object(Bucket="keep", Key="k")["Body"].read()) == MiB
    finally:
        gw.stop()


def test_gc_on_the_s3_backend_deletes_freed_and_orphan_chunk_objects(tmp_path: Path,
                                                                     chunk_backend) -> None:
    import json
    data = tmp_path / "data"
    gw = start_gateway(data, *chunk_backend.args(), "--gc-interval", "3600",
                       env=chunk_backend.env())
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="gcb")
        s3.put_object(Bucket="gcb", Key="keep", Body=os.urandom(5 * MiB))
        s3.put_object(Bucket="gcb", Key="drop", Body=os.urandom(5 * MiB))
        bucket = chunk_bucket(gw)
        kept = set(chunk_backend.objects(bucket))
        s3.delete_object(Bucket="gcb", Key="drop")
    finally:
        gw.stop()
    # An upload whose metadata never committed (a crash): an object metadata never heard of.
    orphan = "c/ff/12/00000000eeee12ff"
    chunk_backend.client().put_object(Bucket=bucket, Key=orphan, Body=b"x" * 100)
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "gc", "--data", str(data),
                        "--grace", "0"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **chunk_backend.env()})
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["trash_chunks"] == 2 and report["unreferenced_chunks"] == 1, report
    left = set(chunk_backend.objects(bucket))
    assert orphan not in left and len(left) == 2 and left < kept | {orphan}
    gw = start_gateway(data, *chunk_backend.args(bucket), env=chunk_backend.env())
    try:
        assert len(client_for(gw).get_object(Bucket="gcb", Key="keep")["Body"].read()) == 5 * MiB
    finally:
        gw.stop()
