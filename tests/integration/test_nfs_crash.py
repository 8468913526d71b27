"""NFS write verifier across restarts and crashes.

UNSTABLE writes, kill -9 before COMMIT, restart on the same data folder: COMMIT
answers a new verifier (so a client knows to resend), and what was committed
before the crash is whole (the unstable overwrite that followed it is not mixed in).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.nfs import nfs3_types as t
from tests.conftest import IN_CI, stored_chunks
from tests.integration.conftest import client_for
from tests.nfs3_fixtures import NFS_DOOR, ROOT_CRED, connect, start_nfs_gateway

ENV = {"SAMEBYTES_NFS_IDLE_FLUSH": "3600"}  # nothing lands unless committed
MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not NFS_DOOR and not IN_CI, reason="the NFS server (nfs-core branch) is not merged")


async def test_sigkill_before_commit_changes_the_verifier_and_keeps_committed_data_whole(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw = start_nfs_gateway(data, exports=["/:no_root_squash"], env=ENV)
    try:
        client_for(gw).create_bucket(Bucket="bkt")
        nfs, root = await connect(gw, "/", ROOT_CRED)
        bkt = await nfs.walk(root, "bkt")
        whole = await nfs.new_file(bkt, b"whole")
        committed = os.urandom(6 * MiB + 5)
        v1 = await nfs.write_all(whole, committed, t.UNSTABLE)
        res = await nfs.commit(whole)
        assert res.status == t.NFS3_OK and res.verf == v1
        # Now unstable writes that never get a COMMIT: an overwrite of part of the
        # committed file, and a new file.
        for at in range(2 * MiB, 5 * MiB, MiB):  # WRITEs carry at most wtmax (1 MiB)
            partial = await nfs.write(whole, at, b"\xff" * MiB)
            assert partial.status == t.NFS3_OK and partial.committed == t.UNSTABLE
            assert partial.verf == v1
        assert (await nfs.read(whole, 2 * MiB, 4)).data == b"\xff" * 4  # buffered, readable
        pending = await nfs.new_file(bkt, b"pending")
        await nfs.write_all(pending, os.urandom(5 * MiB), t.UNSTABLE)
        # A whole chunk of it spills in the background (written, not synced, not
        # committed): wait for its file, so the kill leaves it behind.
        for _ in range(600):
            if len(stored_chunks(data)) >= 3:  # whole's two committed chunks + the spill
                break
            await asyncio.sleep(0.05)
        assert len(stored_chunks(data)) >= 3
    finally:
        gw.stop(signal.SIGKILL)

    gw = start_nfs_gateway(data, exports=["/:no_root_squash"], env=ENV)
    try:
        nfs, root = await connect(gw, "/", ROOT_CRED)
        res = await nfs.commit(pending)  # handles survive the restart
        assert res.status == t.NFS3_OK
        assert res.verf != v1, "the verifier must change so the client resends"
        assert (await nfs.getattr(pending)).attributes.size == 0  # type: ignore[union-attr]
        assert await nfs.read_all(whole) == committed
        body = client_for(gw).get_object(Bucket="bkt", Key="whole")["Body"].read()
        assert body == committed
        # The client resends what it wrote unstably, commits, and now it holds.
        v2 = await nfs.write_all(pending, b"resent", t.UNSTABLE)
        assert (await nfs.commit(pending)).verf == v2
        assert await nfs.read_all(pending) == b"resent"
        # The killed server's spilled, never-synced, never-committed chunks: nothing
        # points at them and the collector takes them; what was committed stays whole.
        gc = _cli("gc", "--data", str(data), "--grace", "0")
        assert gc["errors"] == 0
        assert gc["pending_chunks"] + gc["unreferenced_chunks"] >= 1
        assert await nfs.read_all(whole) == committed
    finally:
        gw.stop()
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "fsck", "--data", str(data)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def _cli(*args: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                         text=True, check=True, cwd=REPO)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def test_a_clean_restart_changes_the_verifier_and_flushes_unstable_writes(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw = start_nfs_gateway(data, exports=["/:no_root_squash"], env=ENV)
    try:
        client_for(gw).create_bucket(Bucket="bkt")
        nfs, root = await connect(gw, "/", ROOT_CRED)
        f = await nfs.new_file(await nfs.walk(root, "bkt"), b"f")
        v1 = await nfs.write_all(f, b"flushed at shutdown", t.UNSTABLE)
    finally:
        assert gw.stop() == 0  # SIGTERM: open files are flushed on the way out
    gw = start_nfs_gateway(data, exports=["/:no_root_squash"], env=ENV)
    try:
        nfs, root = await connect(gw, "/", ROOT_CRED)
        res = await nfs.commit(f)
        assert res.status == t.NFS3_OK and res.verf != v1
        assert await nfs.read_all(f) == b"flushed at shutdown"
    finally:
        gw.stop()
