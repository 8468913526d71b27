"""Shared fixtures. `gateway` starts a real `samebytes serve` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Set by .ci/run: in CI nothing the machine can run may be skipped.
IN_CI = os.environ.get("CI") == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    """A running `samebytes serve` on free loopback ports with its own data folder."""

    data: Path
    s3_port: int
    proc: subprocess.Popen[str]
    announce: dict[str, str]
    log_path: Path
    scheme: str = "http"
    ssl_context: ssl.SSLContext | None = None
    nfs_port: int | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.s3_port}"

    @property
    def access_key(self) -> str:
        return self.announce["access_key"]

    @property
    def secret_key(self) -> str:
        return self.announce["secret_key"]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.endpoint + path, timeout=10, context=self.ssl_context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("gateway did not stop on " + signal.Signals(sig).name)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# SAMEBYTES_TEST_CHUNKS=moto|gateway runs every test gateway on the s3 chunk backend,
# kept in that server (one per session, a bucket per data folder); unset: local chunks.
TEST_CHUNKS = os.environ.get("SAMEBYTES_TEST_CHUNKS", "")


def chunk_args_for(data: Path) -> tuple[str, ...]:
    """The --chunks options start_gateway gives a gateway on `data` (none: local chunks).
    A folder restored from data's backup must be started with these: its chunks stayed
    in data's bucket."""
    if not TEST_CHUNKS:
        return ()
    from tests.s3backends import session_backend
    backend = session_backend(TEST_CHUNKS)
    return tuple(backend.args(backend.bucket_for(data)))


def stored_chunks(data: Path) -> set[str]:
    """The names (16 hex digits) of the chunks the store of the gateway on `data` holds,
    temporaries excluded: files in the local chunk folder, or objects in the folder's
    bucket on the s3 backend (keys PREFIX/xx/yy/NAME)."""
    if TEST_CHUNKS:
        from tests.s3backends import session_backend
        backend = session_backend(TEST_CHUNKS)
        return {k.rsplit("/", 1)[-1] for k in backend.objects(backend.bucket_for(data))}
    return {p.name for p in (data / "chunks").rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def start_gateway(data: Path, *args: str, env: dict[str, str] | None = None,
                  timeout: float = 30, scheme: str = "http", ca: Path | None = None) -> Gateway:
    if TEST_CHUNKS and "--chunks" not in args:
        from tests.s3backends import session_backend
        backend = session_backend(TEST_CHUNKS)
        args = (*args, *chunk_args_for(data))
        # Exported, not just passed: admin commands and separate mounts run by a test
        # (without --chunks: they use the recorded backend) need the credentials too.
        os.environ.update(backend.env())
    port = free_port()
    if "--nfs" not in args:  # never the default 2049: many gateways run at once
        args = (*args, "--nfs", f"127.0.0.1:{free_port()}")
    log_path = data.parent / f"{data.name}-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--data", str(data),
         "--s3", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE, stderr=log, text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the announce line, printed once listening
    if not line:
        proc.wait(5)
        raise AssertionError(f"gateway exited ({proc.returncode}): {log_path.read_text()}")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    announce = json.loads(line)
    nfs = announce.get("nfs")
    gw = Gateway(data, port, proc, announce, log_path, scheme, ctx,
                 int(nfs.rsplit(":", 1)[1]) if nfs else None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = gw.get("/_samebytes/health/ready")
        if status == 200:
            return gw
        time.sleep(0.05)
    gw.stop(signal.SIGKILL)
    raise AssertionError("gateway never became ready: " + gw.log())


def wait_for(pred: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             every: float = 0.05) -> None:
    """Poll pred until it is true; no fixed sleeps, no timing thresholds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def tls_gateway_at(base: Path) -> Iterator[tuple[Gateway, Path]]:
    """`samebytes serve --tls-cert --tls-key` with a self-signed certificate for 127.0.0.1
    made here by openssl; yields the gateway (trusting that certificate) and the cert."""
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    gw = start_gateway(base / "data", "--tls-cert", str(cert), "--tls-key", str(key),
                       scheme="https", ca=cert)
    try:
        yield gw, cert
    finally:
        gw.stop()


@contextlib.contextmanager
def mounted_gateway(data: Path, mnt: Path, *args: str, **kw: object) -> Iterator[Gateway]:
    """`samebytes serve --mount MNT`, yielded once the mount is up; unmounted (lazily if it
    must be, after a SIGKILL) and stopped on the way out."""
    gw = start_gateway(data, "--mount", str(mnt), *args, **kw)  # type: ignore[arg-type]
    try:
        wait_for(lambda: os.path.ismount(mnt), 20, "the mount")
        yield gw
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            gw.stop()
        finally:
            if os.path.ismount(mnt):
                gw.stop(signal.SIGKILL)
                subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path / "data")
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session", params=["moto", "gateway"])
def chunk_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real S3 server for chunks: moto's server, or a second samebytes gateway."""
    from tests.s3backends import start_backend
    backend = start_backend(request.param, tmp_path_factory.mktemp(f"backend-{request.param}"))
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def s3_gateway(tmp_path: Path, chunk_backend) -> Iterator[Gateway]:  # type: ignore[no-untyped-def]
    """A gateway keeping its chunks in chunk_backend (a fresh bucket)."""
    gw = start_gateway(tmp_path / "data", *chunk_backend.args(), env=chunk_backend.env())
    try:
        yield gw
    finally:
        gw.stop()
