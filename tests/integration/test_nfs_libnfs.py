"""libnfs's user-space client (Debian libnfs-utils: nfs-ls, nfs-cp, nfs-cat) against a
real `samebytes serve --nfs`, with boto3 on the same namespace.

nfs-cp never sends COMMIT: what it wrote reaches S3 through the door's idle flush,
so the NFS -> S3 checks poll S3 until the bytes are there.

The large copy is 1 GiB (about 20 s here, generating and hashing included);
SAMEBYTES_TEST_NFS_MIB=256 makes it smaller on a slow machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, Gateway
from tests.integration.conftest import assert_s3_sees_the_new_bytes, client_for, full_object_checksum
from tests.nfs3_fixtures import NFS_DOOR, start_nfs_gateway

HAVE_LIBNFS = all(shutil.which(p) for p in ("nfs-ls", "nfs-cp", "nfs-cat"))
pytestmark = [
    pytest.mark.skipif(not HAVE_LIBNFS and not IN_CI,
                       reason="libnfs-utils (nfs-ls, nfs-cp, nfs-cat) not installed"),
    pytest.mark.skipif(not NFS_DOOR and not IN_CI, reason="the NFS server (nfs-core branch) is not merged"),
]

BIG = int(os.environ.get("SAMEBYTES_TEST_NFS_MIB", "1024")) << 20
IDLE_FLUSH = 1.0  # seconds: how soon an nfs-cp'd file reaches S3 here


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_nfs_gateway(tmp_path_factory.mktemp("libnfs") / "data",
                          exports=["/:no_root_squash"],
                          env={"SAMEBYTES_NFS_IDLE_FLUSH": str(IDLE_FLUSH)})
    client_for(g).create_bucket(Bucket="bkt")
    try:
        yield g
    finally:
        g.stop()


def url(gw: Gateway, path: str) -> str:
    p = gw.nfs_port
    return f"nfs://127.0.0.1/{path.lstrip('/')}?nfsport={p}&mountport={p}&version=3"


def run(*cmd: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


def s3_body_when(s3: object, key: str, want: bytes, timeout: float = 60) -> bytes:
    """S3's bytes of key once they equal want (an idle flush lands them), or the last seen."""
    deadline = time.monotonic() + timeout
    body = b""
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket="bkt", Key=key)["Body"].read()  # type: ignore[attr-defined]
        except Exception:
            body = b""
        if body == want:
            break
        time.sleep(0.2)
    return body


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            h.update(piece)
    return h.hexdigest()


def test_nfs_ls_lists_what_s3_wrote(gw: Gateway) -> None:
    s3 = client_for(gw)
    for key in ("ls/a.txt", "ls/b.bin", "ls/sub/c"):
        s3.put_object(Bucket="bkt", Key=key, Body=b"x")
    out = run("nfs-ls", url(gw, "bkt/ls"))
    assert out.returncode == 0, out.stderr
    names = {line.split()[-1] for line in out.stdout.decode().splitlines() if line.strip()}
    assert {"a.txt", "b.bin", "sub"} <= names
    rec = run("nfs-ls", "-R", url(gw, "bkt/ls"))
    assert rec.returncode == 0 and b"c" in rec.stdout


def test_nfs_cat_reads_what_s3_wrote_byte_for_byte(gw: Gateway) -> None:
    body = os.urandom(3 * (1 << 20) + 17)
    client_for(gw).put_object(Bucket="bkt", Key="cat/obj", Body=body)
    out = run("nfs-cat", url(gw, "bkt/cat/obj"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == body


def test_nfs_cp_writes_what_s3_reads_byte_for_byte(gw: Gateway, tmp_path: Path) -> None:
    s3 = client_for(gw)
    s3.put_object(Bucket="bkt", Key="cp/", Body=b"")
    src = tmp_path / "src"
    body = os.urandom(5 * (1 << 20) + 3)
    src.write_bytes(body)
    out = run("nfs-cp", str(src), url(gw, "bkt/cp/file"))
    assert out.returncode == 0, out.stderr
    assert s3_body_when(s3, "cp/file", body) == body
    again = run("nfs-cp", str(src), url(gw, "bkt/cp/file"))  # GUARDED create: refused
    assert again.returncode != 0 and b"EXIST" in again.stderr + again.stdout


def test_a_large_file_copies_in_and_out_with_equal_checksums(gw: Gateway, tmp_path: Path) -> None:
    src = tmp_path / "big"
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            f.write(block[i % 251:] + block[:i % 251])  # every MiB different
    s3 = client_for(gw)
    s3.put_object(Bucket="bkt", Key="large/", Body=b"")
    t0 = time.monotonic()
    out = run("nfs-cp", str(src), url(gw, "bkt/large/big"))
    t_in = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    back = tmp_path / "back"
    t0 = time.monotonic()
    out = run("nfs-cp", url(gw, "bkt/large/big"), str(back))
    t_out = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert back.stat().st_size == BIG
    assert sha256_file(back) == sha256_file(src)
    print(f"\nnfs-cp {BIG >> 20} MiB in: {BIG / t_in / 2**20:.0f} MiB/s, "
          f"out: {BIG / t_out / 2**20:.0f} MiB/s")
    # And S3 reads the same bytes once the idle flush committed them.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        head = s3.head_object(Bucket="bkt", Key="large/big")
        if head["ContentLength"] == BIG:
            break
        time.sleep(0.5)
    h = hashlib.sha256()
    for piece in s3.get_object(Bucket="bkt", Key="large/big")["Body"].iter_chunks(1 << 20):
        h.update(piece)
    assert h.hexdigest() == sha256_file(src)


def test_a_write_through_nfs_never_leaves_a_stale_s3_checksum(gw: Gateway) -> None:
    """Objects PUT with a checksum, then changed over NFSv3 in place (nfs-cp cannot: it only
    creates, GUARDED, so the calls are sent by the suite's NFSv3 client): an UNSTABLE write
    with COMMIT, an UNSTABLE write left to the idle flush (as nfs-cp leaves its writes), a
    FILE_SYNC write and a SETATTR truncate. GET and HEAD with ChecksumMode=ENABLED then
    return no checksum of the old bytes, and the ETag changed."""
    import asyncio

    from gateway.nfs import nfs3_types as t
    from tests.nfs3_fixtures import connect

    s3 = client_for(gw)
    old = {"commit": os.urandom(1 << 20), "idle": os.urandom(200_000), "sync": os.urandom(70_000),
           "trunc": os.urandom(300_000)}
    algs = {"commit": "SHA256", "idle": "CRC32", "sync": "SHA256", "trunc": "SHA1"}
    etags = {}
    for name, data in old.items():
        etags[name] = s3.put_object(Bucket="bkt", Key=f"sums/{name}", Body=data,
                                    ChecksumAlgorithm=algs[name])["ETag"]
        head = s3.head_object(Bucket="bkt", Key=f"sums/{name}", ChecksumMode="ENABLED")
        assert head[f"Checksum{algs[name]}"] == full_object_checksum(algs[name], data)
    new = {"commit": old["commit"][:1000] + b"0123456789" + old["commit"][1010:],
           "idle": old["idle"] + b"appended over NFS",
           "sync": b"SYNC" + old["sync"][4:],
           "trunc": old["trunc"][:1000]}

    async def change() -> None:
        nfs, root = await connect(gw)
        fh = {name: await nfs.walk(root, f"bkt/sums/{name}") for name in old}
        res = await nfs.write(fh["commit"], 1000, b"0123456789", t.UNSTABLE)
        assert res.status == t.NFS3_OK, res
        assert (await nfs.commit(fh["commit"])).status == t.NFS3_OK
        res = await nfs.write(fh["idle"], len(old["idle"]), b"appended over NFS", t.UNSTABLE)
        assert res.status == t.NFS3_OK, res  # no COMMIT: the idle flush makes it durable
        res = await nfs.write(fh["sync"], 0, b"SYNC", t.FILE_SYNC)
        assert res.status == t.NFS3_OK, res
        res = await nfs.setattr(fh["trunc"], t.Sattr3(size=1000))
        assert res.status == t.NFS3_OK, res

    asyncio.run(change())
    for name, data in new.items():
        key = f"sums/{name}"
        assert s3_body_when(s3, key, data, timeout=30) == data, name
        assert_s3_sees_the_new_bytes(s3, "bkt", key, data, etags[name])
