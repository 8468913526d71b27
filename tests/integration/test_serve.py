"""`samebytes serve` as a real process: health, credentials, configuration, shutdown."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from pathlib import Path

from tests.conftest import Gateway, free_port, start_gateway


def test_health_endpoints_answer_live_and_ready(gateway: Gateway) -> None:
    status, body = gateway.get("/_samebytes/health/live")
    assert status == 200
    assert json.loads(body) == {"status": "live", "worker": 0, "pid": gateway.proc.pid}
    status, body = gateway.get("/_samebytes/health/ready")
    assert status == 200 and json.loads(body)["status"] == "ready"


@pytest.mark.skipif(bool(os.environ.get("SAMEBYTES_TEST_CHUNKS")),
                    reason="breaks the local chunk folder (the s3 case: test_chunks_faults)")
def test_ready_reports_503_when_the_chunk_store_is_unusable(gateway: Gateway) -> None:
    chunks = gateway.data / "chunks"
    # Replace the chunk directory by a file: the readiness probe must notice.
    os.rename(chunks, gateway.data / "chunks.moved")
    chunks.write_bytes(b"not a directory")
    status, body = gateway.get("/_samebytes/health/ready")
    assert status == 503, body
    assert json.loads(body)["status"] == "not ready"
    chunks.unlink()
    os.rename(gateway.data / "chunks.moved", chunks)
    assert gateway.get("/_samebytes/health/ready")[0] == 200


def test_anonymous_s3_requests_get_an_s3_xml_error(gateway: Gateway) -> None:
    status, body = gateway.get("/some-bucket/some-key")
    assert status == 403
    assert b"<Code>AccessDenied</Code>" in body


def test_generated_root_credentials_are_kept_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_gateway(data)
    try:
        creds = data / "credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        saved = json.loads(creds.read_text())
        assert saved["access_key"] == first.access_key
        assert saved["secret_key"] == first.secret_key
        assert first.announce["credentials"].startswith("generated")
        assert first.secret_key not in first.log()  # secrets never reach the log
    finally:
        assert first.stop() == 0
    second = start_gateway(data)
    try:
        assert (second.access_key, second.secret_key) == (first.access_key, first.secret_key)
    finally:
        second.stop()


def test_root_credentials_come_from_the_environment(tmp_path: Path) -> None:
    env = {"SAMEBYTES_ACCESS_KEY": "AKIDEXAMPLE", "SAMEBYTES_SECRET_KEY": "s" * 40}
    gw = start_gateway(tmp_path / "data", env=env)
    try:
        assert gw.access_key == "AKIDEXAMPLE"
        assert not (tmp_path / "data" / "credentials.json").exists()
    finally:
        gw.stop()


def test_every_option_is_settable_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "envdata"
    nfs_port = free_port()
    env = {**os.environ, "SAMEBYTES_DATA": str(data), "SAMEBYTES_S3": f"127.0.0.1:{port}",
           "SAMEBYTES_NFS": f"127.0.0.1:{nfs_port}"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        announce = json.loads(proc.stdout.readline())
        assert announce["s3"] == f"http://127.0.0.1:{port}"
        assert announce["data"] == str(data)
        assert announce["nfs"] == f"127.0.0.1:{nfs_port}"
        assert (data / "meta" / "data.mdb").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_sigterm_stops_cleanly_with_exit_status_zero(gateway: Gateway) -> None:
    assert gateway.stop(signal.SIGTERM) == 0
    assert "stopped" in gateway.log()


def test_a_taken_port_fails_with_a_clear_message(tmp_path: Path, gateway: Gateway) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--data", str(tmp_path / "other"),
         "--s3", f"127.0.0.1:{gateway.s3_port}"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "address already in use" in proc.stderr.lower()


def test_bad_listen_address_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--data", str(tmp_path / "d"),
         "--s3", "nonsense"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "HOST:PORT" in proc.stderr
