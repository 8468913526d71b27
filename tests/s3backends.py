"""Real S3 servers to keep chunks in: moto's server and a second samebytes gateway.

Both are started as subprocesses on free loopback ports; nothing here is a mock of our
own code. `ChunkBackend.args()` gives the `--chunks ...` options for a gateway that
should keep its chunks there; each caller gets its own fresh bucket, so one backend
server can serve a whole test session.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOTO_KEY = "testing-access-key"
MOTO_SECRET = "testing-secret-key"


@dataclass
class ChunkBackend:
    """A running S3 server that can hold chunk buckets."""

    kind: str  # "moto" | "gateway"
    endpoint: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen[Any]
    extra: Any = None  # the backend Gateway, when kind == "gateway"
    buckets: list[str] = field(default_factory=list)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=Config(retries={"total_max_attempts": 3},
                                          s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        name = f"chunks-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def bucket_for(self, data: Path) -> str:
        """A bucket that belongs to one data folder (the same one on every restart)."""
        import hashlib
        name = "chunks-" + hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:16]
        if name not in self.buckets:
            try:
                self.client().create_bucket(Bucket=name)
            except Exception as e:  # already there from an earlier start in this session
                if "BucketAlready" not in str(e):
                    raise
            self.buckets.append(name)
        return name

    def env(self) -> dict[str, str]:
        return {"SAMEBYTES_CHUNKS_ACCESS_KEY": self.access_key,
                "SAMEBYTES_CHUNKS_SECRET_KEY": self.secret_key}

    def args(self, bucket: str | None = None, prefix: str = "c",
             endpoint: str | None = None) -> list[str]:
        bucket = bucket or self.new_bucket()
        return ["--chunks", f"s3://{bucket}/{prefix}",
                "--chunks-endpoint", endpoint or self.endpoint]

    def objects(self, bucket: str) -> list[str]:
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out.extend(o["Key"] for o in page.get("Contents", ()))
        return out

    def stop(self) -> None:
        if self.extra is not None:
            self.extra.stop()
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_moto(port: int, log_path: Path, timeout: float = 60) -> ChunkBackend:
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "AWS_ACCESS_KEY_ID": MOTO_KEY,
                                 "AWS_SECRET_ACCESS_KEY": MOTO_SECRET})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"moto server exited: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=5):
                return ChunkBackend("moto", endpoint, MOTO_KEY, MOTO_SECRET, proc)
        except urllib.error.HTTPError:
            return ChunkBackend("moto", endpoint, MOTO_KEY, MOTO_SECRET, proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("moto server never answered: " + log_path.read_text())


def start_gateway_backend(data: Path) -> ChunkBackend:
    from tests.conftest import start_gateway
    # Two worker processes: every test on this backend also proves that a client's
    # requests spread over pre-forked workers see one namespace.
    gw = start_gateway(data, "--chunks", "local", "--workers", "2")
    return ChunkBackend("gateway", gw.endpoint, gw.access_key, gw.secret_key, gw.proc, gw)


def start_backend(kind: str, where: Path) -> ChunkBackend:
    from tests.conftest import free_port
    where.mkdir(parents=True, exist_ok=True)
    if kind == "moto":
        return start_moto(free_port(), where / "moto.log")
    if kind == "gateway":
        return start_gateway_backend(where / "backend-data")
    raise ValueError(f"unknown chunk backend {kind!r}")


_SESSION: dict[str, ChunkBackend] = {}


def session_backend(kind: str) -> ChunkBackend:
    """One backend server of this kind for the whole test run (stopped at exit)."""
    if kind == "s3":
        kind = "moto"
    if kind not in _SESSION:
        import atexit
        import tempfile
        where = Path(tempfile.mkdtemp(prefix=f"samebytes-{kind}-"))
        _SESSION[kind] = start_backend(kind, where)
        atexit.register(_SESSION[kind].stop)
    return _SESSION[kind]
