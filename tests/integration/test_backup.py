"""samebytes backup / restore / fsck against real gateways.

A backup is taken while a gateway serves and a writer keeps writing; the data folder is
wiped; a new one is restored from the backup and served: every object written before the
backup reads back byte for byte, whatever was being written during it is either whole or
absent, and fsck finds nothing wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import TEST_CHUNKS, chunk_args_for, start_gateway
from tests.integration.conftest import client_for

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def test_a_backup_taken_while_serving_restores_every_object(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "a")
    try:
        s3 = client_for(gw)
        s3.create_bucket(Bucket="keep")
        before = {f"k{i:02d}": os.urandom(n) for i, n in
                  enumerate([0, 1, 5000, 20_000, 300_000, (9 << 20) + 7, 64_000, 17])}
        for k, v in before.items():
            s3.put_object(Bucket="keep", Key=k, Body=v)
        during: dict[str, bytes] = {}
        stop = threading.Event()

        def writer() -> None:
            w = client_for(gw)
            i = 0
            while not stop.is_set():
                body = os.urandom(200_000)
                w.put_object(Bucket="keep", Key=f"during/{i:04d}", Body=body)
                during[f"during/{i:04d}"] = body
                i += 1
        t = threading.Thread(target=writer)
        t.start()
        try:
            out = cli("backup", "--data", str(gw.data), "--to", str(tmp_path / "backups"))
        finally:
            stop.set()
            t.join()
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        # Local chunks travel in the backup; chunks in an object store stay where they are.
        assert report["chunks_included"] is (not TEST_CHUNKS) and report["removed"] == []
    finally:
        gw.stop()  # also when an assertion above fails: no gateway outlives the test
    shutil.rmtree(gw.data)

    out = cli("restore", "--data", str(tmp_path / "b"), "--from", str(tmp_path / "backups"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["restored"] == report["backup"]
    fsck = cli("fsck", "--data", str(tmp_path / "b"), "--verify", "--json")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    gw2 = start_gateway(tmp_path / "b", *chunk_args_for(tmp_path / "a"))
    try:
        assert gw2.access_key == gw.access_key  # the credentials came back too
        s3b = client_for(gw2)
        for k, v in before.items():
            got = s3b.get_object(Bucket="keep", Key=k)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(v).digest(), k
        restored_during = [o["Key"] for o in s3b.list_objects_v2(Bucket="keep", Prefix="during/")
                           .get("Contents", [])]
        for k in restored_during:  # written during the backup: whole if there at all
            assert s3b.get_object(Bucket="keep", Key=k)["Body"].read() == during[k]
    finally:
        gw2.stop()


def test_retention_keeps_the_newest_backups(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "a")
    try:
        client_for(gw).create_bucket(Bucket="one")
        names = []
        for _ in range(3):
            out = cli("backup", "--data", str(gw.data), "--to", str(tmp_path / "bk"), "--keep", "2")
            assert out.returncode == 0, out.stderr
            names.append(json.loads(out.stdout)["backup"])
        assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == names[1:]
    finally:
        gw.stop()


def test_restore_refuses_a_used_folder_and_a_damaged_backup(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "a")
    try:
        client_for(gw).create_bucket(Bucket="one")
        assert cli("backup", "--data", str(gw.data), "--to", str(tmp_path / "bk")).returncode == 0
    finally:
        gw.stop()
    used = cli("restore", "--data", str(gw.data), "--from", str(tmp_path / "bk"))
    assert used.returncode != 0 and "not empty" in used.stderr
    tar = next((tmp_path / "bk").iterdir())
    raw = bytearray(tar.read_bytes())
    raw[2048 + 100] ^= 0xFF  # inside the first member's bytes (after its 512-byte header)
    tar.write_bytes(raw)
    bad = cli("restore", "--data", str(tmp_path / "c"), "--from", str(tmp_path / "bk"))
    assert bad.returncode != 0 and "does not match its manifest" in bad.stderr
    assert list((tmp_path / "c").iterdir()) == []  # nothing half restored


def test_backup_to_an_s3_bucket_on_another_gateway_and_back(tmp_path: Path) -> None:
    store = start_gateway(tmp_path / "store")
    gw = start_gateway(tmp_path / "a")
    try:
        client_for(store).create_bucket(Bucket="backups")
        s3 = client_for(gw)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="x/y.bin", Body=b"through a bucket" * 1000)
        env = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
        out = cli("backup", "--data", str(gw.data), "--to", "s3://backups/site1", "--endpoint",
                  store.endpoint, env=env)
        assert out.returncode == 0, out.stderr
        keys = [o["Key"] for o in client_for(store).list_objects_v2(Bucket="backups")["Contents"]]
        assert keys == ["site1/" + json.loads(out.stdout)["backup"]]
        out = cli("restore", "--data", str(tmp_path / "b"), "--from", "s3://backups/site1",
                  "--endpoint", store.endpoint, env=env)
        assert out.returncode == 0, out.stderr
    finally:
        gw.stop()
        store.stop()
    gw2 = start_gateway(tmp_path / "b", *chunk_args_for(tmp_path / "a"))
    try:
        body = client_for(gw2).get_object(Bucket="data", Key="x/y.bin")["Body"].read()
        assert body == b"through a bucket" * 1000
        with pytest.raises(ClientError):
            client_for(gw2).get_object(Bucket="data", Key="nothing")
    finally:
        gw2.stop()
