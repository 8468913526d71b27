"""`samebytes gc` beside a gateway with a busy writer never removes a chunk that is being
written or referenced: every acknowledged object reads back and fsck stays clean."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import start_gateway

from .conftest import client_for


def test_gc_running_beside_a_busy_writer_removes_nothing_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Small chunks: each PUT makes several chunk files before its metadata commits.
    gw = start_gateway(data, "--chunk-size", "64KiB", "--gc-interval", "3600")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="busy")
        acked: dict[str, bytes] = {}
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            w = client_for(gw)
            n = 0
            try:
                while not stop.is_set():
                    seed = hashlib.sha256(str(n).encode()).digest()
                    body = (seed * 20_000)[: 500_000 + n]
                    w.put_object(Bucket="busy", Key=f"k{n % 7}", Body=body)  # overwrites free chunks
                    acked[f"k{n % 7}"] = body
                    n += 1
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        reports = []
        try:
            for _ in range(4):
                out = subprocess.run(
                    [sys.executable, "-m", "gateway.cli", "gc", "--data", str(data),
                     "--grace", "30"], capture_output=True, text=True, timeout=180)
                assert out.returncode == 0, out.stderr
                reports.append(json.loads(out.stdout))
        finally:
            stop.set()
            t.join(120)
        assert not errors, errors
        assert len(acked) == 7
        assert all(r["errors"] == 0 and r["unreferenced_chunks"] == 0 for r in reports), reports
        for key, body in acked.items():
            assert s3.get_object(Bucket="busy", Key=key)["Body"].read() == body, key
    finally:
        gw.stop()
    fsck = subprocess.run([sys.executable, "-m", "gateway.cli", "fsck", "--data", str(data),
                           "--verify", "--json"], capture_output=True, text=True,
                          timeout=180)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
