"""A full disk, through every door: the protocol's own error, nothing stored lost,
the server keeps serving, and it recovers once space is freed.

The data folder is a small tmpfs (root mounts it), so "full" is real: chunk files and
LMDB's own pages both meet ENOSPC. One `samebytes serve --mount` per test serves S3,
NFS and FUSE on it; the in-server collector runs often with no grace so that space
freed by deletes comes back within the test.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from gateway.nfs import nfs3_types as t
from tests.conftest import IN_CI, TEST_CHUNKS, Gateway, mounted_gateway, wait_for
from tests.integration.conftest import client_for
from tests.nfs3_fixtures import connect

DISK_MIB = 48

if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
    if IN_CI:
        raise RuntimeError("CI must run the full-disk tests: root (to mount a tmpfs) and FUSE needed")
    pytest.skip("full-disk tests need root (tmpfs mount) and FUSE", allow_module_level=True)
if TEST_CHUNKS:
    # The data folder's disk holds only metadata and the read cache then; a full backend
    # is the backend's 507/5xx, which test_chunks_faults covers (backend down, stalls).
    pytest.skip("fills the local chunk disk; chunks are in an object store",
                allow_module_level=True)


@dataclass
class Door:
    gw: Gateway
    data: Path
    mnt: Path

    def free(self) -> int:
        st = os.statvfs(self.data)
        return st.f_bavail * st.f_frsize


@pytest.fixture
def door() -> Iterator[Door]:
    base = Path(tempfile.mkdtemp(prefix="samebytes-full-"))
    data, mnt = base / "data", base / "mnt"
    data.mkdir()
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(data)], check=True)
    try:
        with mounted_gateway(data, mnt, "--export", "/:no_root_squash",
                             "--grace", "0", "--gc-interval", "0.5") as gw:
            yield Door(gw, data, mnt)
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _keepers(s3, n: int = 4, size: int = 1 << 20) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Objects stored before the disk fills: they must come back whole afterwards."""
    kept = {}
    for i in range(n):
        body = os.urandom(size) + os.urandom(i + 1)
        s3.put_object(Bucket="bkt", Key=f"keep/{i}", Body=body)
        kept[f"keep/{i}"] = body
    s3.put_object(Bucket="bkt", Key="keep/small", Body=b"inline bytes")
    kept["keep/small"] = b"inline bytes"
    return kept


def _all_whole(s3, kept: dict[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    for key, body in kept.items():
        got = s3.get_object(Bucket="bkt", Key=key)["Body"].read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key


def test_s3_put_on_a_full_disk_is_507_nothing_half_stored_and_it_recovers(door: Door) -> None:
    s3 = client_for(door.gw)
    s3.create_bucket(Bucket="bkt")
    kept = _keepers(s3)

    filler, failure = [], None
    for i in range(2 * DISK_MIB // 8):
        try:
            s3.put_object(Bucket="bkt", Key=f"fill/{i}", Body=os.urandom(8 << 20))
            filler.append(f"fill/{i}")
        except ClientError as e:
            failure = e
            break
    assert failure is not None, "the disk never filled"
    assert failure.response["ResponseMetadata"]["HTTPStatusCode"] == 507, failure.response
    assert "full" in failure.response["Error"]["Message"]
    failed_key = f"fill/{len(filler)}"

    # The refused object is not there, half or whole; everything stored before is whole.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key=failed_key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    _all_whole(s3, kept)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="fill/").get("Contents", [])]
    assert listed == sorted(filler)
    assert door.gw.get("/_samebytes/health/ready")[0] == 200

    # Deleting frees the space (the collector returns the chunks): the same put succeeds.
    s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": k} for k in filler]})
    wait_for(lambda: door.free() > 24 << 20, 30, "the collector to free the deleted chunks")
    body = os.urandom(8 << 20)
    s3.put_object(Bucket="bkt", Key=failed_key, Body=body)
    assert s3.get_object(Bucket="bkt", Key=failed_key)["Body"].read() == body
    _all_whole(s3, kept)


def test_a_program_writing_on_the_mount_gets_enospc_and_the_mount_keeps_working(door: Door) -> None:
    s3 = client_for(door.gw)
    s3.create_bucket(Bucket="bkt")
    kept = _keepers(s3)
    bkt = door.mnt / "bkt"

    got: OSError | None = None
    piece = os.urandom(1 << 20)
    written = 0
    try:
        with open(bkt / "big.bin", "wb") as f:
            for _ in range(2 * DISK_MIB):
                f.write(piece)
                f.flush()  # hand each MiB to the kernel: the FUSE write sees it now
                written += len(piece)
            os.fsync(f.fileno())
    except OSError as e:
        got = e
    assert got is not None, f"wrote {written} bytes onto a {DISK_MIB} MiB disk without an error"
    assert got.errno == errno.ENOSPC, got

    # The mount still answers, and what was stored before reads back whole through it.
    assert sorted(p.name for p in (bkt / "keep").iterdir()) == sorted(k.split("/")[1] for k in kept)
    for key, body in kept.items():
        assert (bkt / key).read_bytes() == body, key
    _all_whole(s3, kept)

    # Removing the failed file and writing a small one works once the space is back.
    (bkt / "big.bin").unlink(missing_ok=True)
    wait_for(lambda: door.free() > 24 << 20, 30, "the collector to free the file's chunks")
    (bkt / "after.txt").write_bytes(b"written after the disk was full\n")
    assert s3.get_object(Bucket="bkt", Key="after.txt")["Body"].read() == b"written after the disk was full\n"


async def test_nfs_writes_on_a_full_disk_answer_nfs3err_nospc_and_the_door_keeps_serving(door: Door) -> None:
    s3 = client_for(door.gw)
    await asyncio.to_thread(s3.create_bucket, Bucket="bkt")
    kept = await asyncio.to_thread(_keepers, s3)
    nfs, root = await connect(door.gw)
    bkt = await nfs.walk(root, "bkt")

    # FILE_SYNC: each reply promises durability, so the first write that cannot be
    # stored must say NOSPC itself.
    fh = await nfs.new_file(bkt, b"sync.bin")
    piece = os.urandom(1 << 20)
    statuses = []
    for i in range(2 * DISK_MIB):
        res = await nfs.write(fh, i << 20, piece, t.FILE_SYNC)
        statuses.append(res.status)
        if res.status != t.NFS3_OK:
            break
    assert statuses[-1] == t.NFS3ERR_NOSPC, statuses[-3:]

    # UNSTABLE: the error may come on a later WRITE or at COMMIT, but it must come.
    fh2 = await nfs.new_file(bkt, b"unstable.bin")
    final = t.NFS3_OK
    for i in range(2 * DISK_MIB):
        res = await nfs.write(fh2, i << 20, piece, t.UNSTABLE)
        if res.status != t.NFS3_OK:
            final = res.status
            break
    if final == t.NFS3_OK:
        final = (await nfs.commit(fh2)).status
    assert final == t.NFS3ERR_NOSPC

    # The door still serves: lookups, reads of what was stored before, a new connection.
    nfs2, root2 = await connect(door.gw)
    for key, body in kept.items():
        got = await nfs2.read_all(await nfs2.walk(root2, f"bkt/{key}"))
        assert got == body, key
    await asyncio.to_thread(_all_whole, s3, kept)
