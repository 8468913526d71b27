"""`samebytes serve --workers N`: N processes serve the S3 door on one port and one
namespace; the first also runs NFS, the mount and the collector.

Each test pins plain HTTP connections to a given worker (a keep-alive connection stays
with the process that accepted it; /_samebytes/health/live says which one that is), so
"written through one worker, read through another" is proven, not left to chance.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from gateway.prefork import MIN_UPTIME
from tests.conftest import Gateway, free_port, mounted_gateway, start_gateway, wait_for

MiB = 1 << 20


def children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(x) for x in f.read().split()}
    except OSError:
        return set()


def age(pid: int) -> float:
    """Seconds since pid started (its fork), from procfs."""
    with open(f"/proc/{pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Pinned:
    """A keep-alive connection and the worker that serves it."""

    def __init__(self, gw: Gateway) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", gw.s3_port, timeout=30)
        live = self.request("GET", "/_samebytes/health/live")
        assert live[0] == 200
        info = json.loads(live[1])
        self.worker, self.pid = info["worker"], info["pid"]

    def request(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
        self.conn.request(method, url, body=body)
        r = self.conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())

    def close(self) -> None:
        self.conn.close()


def pin_each_worker(gw: Gateway, workers: int, tries: int = 400) -> dict[int, Pinned]:
    """One pinned connection per worker (the kernel spreads new connections over the
    workers' sockets by their address hash: new ones until each worker has one)."""
    pinned: dict[int, Pinned] = {}
    for _ in range(tries):
        p = Pinned(gw)
        if p.worker in pinned:
            p.close()
        else:
            pinned[p.worker] = p
        if len(pinned) == workers:
            return pinned
    raise AssertionError(f"only workers {sorted(pinned)} answered {tries} connections")


def client(gw: Gateway):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=gw.endpoint, aws_access_key_id=gw.access_key,
                        aws_secret_access_key=gw.secret_key, region_name="us-east-1",
                        config=Config(signature_version="s3v4", retries={"max_attempts": 1}))


def presigned(s3, op: str, **params: object) -> str:  # type: ignore[no-untyped-def]
    url = urlsplit(s3.generate_presigned_url(op, Params=params, ExpiresIn=600))
    return f"{url.path}?{url.query}"


@pytest.fixture
def two_workers(tmp_path: Path):  # type: ignore[no-untyped-def]
    gw = start_gateway(tmp_path / "data", "--workers", "2")
    try:
        yield gw
    finally:
        gw.stop()


def test_workers_serve_one_port_as_child_processes_of_the_gateway(two_workers: Gateway) -> None:
    gw = two_workers
    assert gw.announce["workers"] == 2
    pinned = pin_each_worker(gw, 2)
    assert {p.pid for p in pinned.values()} <= children(gw.proc.pid)
    assert len({p.pid for p in pinned.values()}) == 2


def test_an_object_put_through_one_worker_reads_back_through_the_other(two_workers: Gateway) -> None:
    gw = two_workers
    s3 = client(gw)
    s3.create_bucket(Bucket="www")
    pinned = pin_each_worker(gw, 2)
    body = os.urandom(3 * MiB + 17)
    status, err, _ = pinned[1].request("PUT", presigned(s3, "put_object", Bucket="www", Key="k/one"), body)
    assert status == 200, err
    status, got, headers = pinned[0].request("GET", presigned(s3, "get_object", Bucket="www", Key="k/one"))
    assert status == 200 and got == body
    assert headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    # and the other way round, overwriting: the reader in the other process sees the new bytes
    body2 = os.urandom(5000)
    assert pinned[0].request("PUT", presigned(s3, "put_object", Bucket="www", Key="k/one"), body2)[0] == 200
    assert pinned[1].request("GET", presigned(s3, "get_object", Bucket="www", Key="k/one"))[1] == body2
    # a delete through one worker is a 404 through the other at once
    assert pinned[1].request("DELETE", presigned(s3, "delete_object", Bucket="www", Key="k/one"))[0] == 204
    assert pinned[0].request("GET", presigned(s3, "get_object", Bucket="www", Key="k/one"))[0] == 404


def test_a_multipart_upload_whose_parts_go_to_different_workers_completes(two_workers: Gateway) -> None:
    gw = two_workers
    s3 = client(gw)
    s3.create_bucket(Bucket="mpu")
    pinned = pin_each_worker(gw, 2)
    upload = s3.create_multipart_upload(Bucket="mpu", Key="big")["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(123)]
    etags = []
    for n, part in enumerate(parts, 1):
        url = presigned(s3, "upload_part", Bucket="mpu", Key="big", UploadId=upload, PartNumber=n)
        status, _, headers = pinned[n % 2].request("PUT", url, part)
        assert status == 200, headers
        etags.append(headers["ETag"])
    listed = s3.list_parts(Bucket="mpu", Key="big", UploadId=upload)["Parts"]
    assert [p["ETag"] for p in listed] == etags
    s3.complete_multipart_upload(Bucket="mpu", Key="big", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    for p in pinned.values():
        status, got, headers = p.request("GET", presigned(s3, "get_object", Bucket="mpu", Key="big"))
        assert status == 200 and got == b"".join(parts)
        assert headers["ETag"].endswith('-4"')


def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(two_workers: Gateway) -> None:
    gw = two_workers
    s3 = client(gw)
    s3.create_bucket(Bucket="kkk")
    s3.put_object(Bucket="kkk", Key="x", Body=b"kept")
    pinned = pin_each_worker(gw, 2)
    victim = pinned[1].pid
    # A worker dying within MIN_UPTIME of its start stops the gateway (no respawn loop);
    # past it, it is replaced. Its own age counts (a slow start under load must not make
    # the kill land inside MIN_UPTIME).
    wait_for(lambda: age(victim) > MIN_UPTIME + 0.5, MIN_UPTIME + 30, "the worker to pass MIN_UPTIME")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(victim), 10, "the killed worker to go")
    wait_for(lambda: len(children(gw.proc.pid) - {victim}) == 2, 30, "a new worker")
    assert gw.proc.poll() is None
    again = pin_each_worker(gw, 2)
    assert again[1].pid != victim and again[0].pid == pinned[0].pid
    for p in again.values():
        assert p.request("GET", presigned(s3, "get_object", Bucket="kkk", Key="x"))[1] == b"kept"
    assert "worker 1" in gw.log() and "starting a new one" in gw.log()


def test_sigterm_stops_every_worker_and_exits_zero(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "data", "--workers", "2")
    try:
        pids = {p.pid for p in pin_each_worker(gw, 2).values()}
    finally:
        assert gw.stop() == 0
    assert not any(alive(p) for p in pids)


def test_killing_the_supervisor_stops_its_workers(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "data", "--workers", "2")
    try:
        pids = {p.pid for p in pin_each_worker(gw, 2).values()}
        gw.proc.kill()
        gw.proc.wait(10)
        wait_for(lambda: not any(alive(p) for p in pids), 30, "the orphaned workers to stop")
    finally:
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_lead_worker_dying_stops_the_gateway_with_an_error(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "data", "--workers", "2")
    try:
        pinned = pin_each_worker(gw, 2)
        os.kill(pinned[0].pid, signal.SIGKILL)
        gw.proc.wait(30)
        assert gw.proc.returncode != 0
        wait_for(lambda: not alive(pinned[1].pid), 30, "the other worker to stop")
        assert "stopping the gateway" in gw.log()
    finally:
        if gw.proc.poll() is None:
            gw.stop(signal.SIGKILL)


def test_a_port_in_use_fails_the_start_with_a_clear_message(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "one")
    try:
        r = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--data",
                            str(tmp_path / "two"), "--s3", f"127.0.0.1:{gw.s3_port}",
                            "--nfs", "off", "--workers", "2"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1
        assert "samebytes:" in r.stderr and "in use" in r.stderr
        assert gw.get("/_samebytes/health/ready")[0] == 200
        # nor may a second pre-forking gateway join the first one's SO_REUSEPORT group
        two = start_gateway(tmp_path / "three", "--workers", "2")
        try:
            r = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--data",
                                str(tmp_path / "four"), "--s3", f"127.0.0.1:{two.s3_port}",
                                "--nfs", "off", "--workers", "2"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1 and "in use" in r.stderr
        finally:
            two.stop()
    finally:
        gw.stop()


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--data", str(tmp_path),
                        "--s3", f"127.0.0.1:{free_port()}", "--workers", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers" in r.stderr and "at least 1" in r.stderr


def test_the_mount_sees_writes_made_through_every_worker(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mounted_gateway(tmp_path / "data", mnt, "--workers", "2") as gw:
        s3 = client(gw)
        s3.create_bucket(Bucket="mmm")
        pinned = pin_each_worker(gw, 2)
        for w, p in pinned.items():
            body = f"from worker {w}".encode()
            assert p.request("PUT", presigned(s3, "put_object", Bucket="mmm", Key=f"d/w{w}"), body)[0] == 200
            wait_for(lambda: (mnt / "mmm" / "d" / f"w{w}").exists(), 30, f"w{w} on the mount")
            assert (mnt / "mmm" / "d" / f"w{w}").read_bytes() == body
        # overwritten through worker 1: the mount (in worker 0) must not serve stale bytes
        assert pinned[1].request("PUT", presigned(s3, "put_object", Bucket="mmm", Key="d/w0"), b"new")[0] == 200
        wait_for(lambda: (mnt / "mmm" / "d" / "w0").read_bytes() == b"new", 30, "the new bytes")
        (mnt / "mmm" / "d" / "written-on-mount").write_bytes(b"mount bytes")
        for p in pinned.values():
            got = p.request("GET", presigned(s3, "get_object", Bucket="mmm", Key="d/written-on-mount"))
            assert got[:2] == (200, b"mount bytes")
