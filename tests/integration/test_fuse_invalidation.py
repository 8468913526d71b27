"""Changes made through S3 or NFS reach a FUSE mount's kernel caches at once.

One `samebytes serve --mount MNT` (S3, NFS and FUSE in one process: the in-memory
change feed) and one `samebytes mount MNT2` beside it (another process: the LMDB
change log). Both run with kernel cache timeouts of an hour, so every check here
fails unless the change was actively invalidated; "at once" is a poll that gives
up after 20 s, far inside the timeout and far beyond the ~0.15 s the tail needs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyfuse3")

from gateway.nfs import nfs3_types as t  # noqa: E402
from tests.conftest import IN_CI, Gateway, start_gateway  # noqa: E402
from tests.integration.conftest import client_for  # noqa: E402
from tests.nfs3_fixtures import NFS_DOOR, ROOT_CRED, connect  # noqa: E402

if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3") or os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("CI must run the FUSE tests: /dev/fuse, fusermount3 and root needed")
    pytest.skip("FUSE tests need /dev/fuse, fusermount3 and root", allow_module_level=True)

HOUR = {"SAMEBYTES_FUSE_CACHE_SECONDS": "3600"}
AT_ONCE = 20.0  # seconds a poll waits; the kernel would cache for 3600
BUCKET = "inval"


def wait_for(pred: Callable[[], bool], what: str, timeout: float = AT_ONCE) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen on the mount within {timeout} s: {what}")
        time.sleep(0.02)


def _stat(p: Path) -> os.stat_result | None:
    try:
        return p.stat()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="module")
def doors() -> Iterator[tuple[Gateway, dict[str, Path]]]:
    base = Path(tempfile.mkdtemp(prefix="samebytes-inval-"))
    base.chmod(0o755)
    mnt, mnt2 = base / "mnt", base / "mnt2"
    mnt.mkdir()
    mnt2.mkdir()
    gw = start_gateway(base / "data", "--mount", str(mnt), "--export", "/:no_root_squash", env=HOUR)
    mounter = None
    try:
        wait_for(lambda: os.path.ismount(mnt), "the serve --mount mount")
        client_for(gw).create_bucket(Bucket=BUCKET)
        mounter = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "mount", str(mnt2), "--data", str(gw.data)],
            stderr=open(base / "mount2.log", "w"), env={**os.environ, **HOUR})
        wait_for(lambda: os.path.ismount(mnt2), "the separate mount process")
        yield gw, {"serve --mount": mnt, "samebytes mount": mnt2}
    finally:
        if mounter is not None:
            mounter.send_signal(signal.SIGTERM)
            try:
                mounter.wait(20)
            except subprocess.TimeoutExpired:
                mounter.kill()
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            gw.stop()
        finally:
            for m in (mnt, mnt2):
                if os.path.ismount(m):
                    subprocess.run(["fusermount3", "-uz", str(m)], capture_output=True)
            log2 = (base / "mount2.log").read_text() if (base / "mount2.log").exists() else ""
            shutil.rmtree(base, ignore_errors=True)
    assert "Traceback" not in log2, log2


@pytest.fixture(params=["serve --mount", "samebytes mount"])
def mount(request: pytest.FixtureRequest, doors) -> tuple[Gateway, Path, str]:  # type: ignore[no-untyped-def]
    gw, mounts = doors
    # A folder per test and mount, known to the kernel before the change under test.
    name = f"{request.node.originalname}-{'serve' if request.param == 'serve --mount' else 'mount'}"
    client_for(gw).put_object(Bucket=BUCKET, Key=f"{name}/.keep", Body=b"")
    folder = mounts[request.param] / BUCKET / name
    wait_for(folder.is_dir, "the test's folder")
    assert os.listdir(folder) == [".keep"]
    return gw, folder, name


def test_a_name_cached_as_missing_appears_when_put_through_s3(mount) -> None:  # type: ignore[no-untyped-def]
    gw, folder, name = mount
    s3 = client_for(gw)
    sidecar = folder / ".part-0.parquet.crc"
    for _ in range(3):  # Spark's probe: the kernel now caches "no such name" for an hour
        assert not sidecar.exists()
    s3.put_object(Bucket=BUCKET, Key=f"{name}/.part-0.parquet.crc", Body=b"crc bytes")
    wait_for(sidecar.exists, "a name put through S3 after a negative lookup")
    assert sidecar.read_bytes() == b"crc bytes"


def test_an_object_overwritten_through_s3_shows_its_new_size_and_mtime(mount) -> None:  # type: ignore[no-untyped-def]
    gw, folder, name = mount
    s3 = client_for(gw)
    s3.put_object(Bucket=BUCKET, Key=f"{name}/obj", Body=b"v1")
    f = folder / "obj"
    wait_for(f.exists, "the first version")
    assert f.read_bytes() == b"v1"
    before = f.stat()  # after the read (which drops the cached atime): cached for an hour
    assert before.st_size == 2
    time.sleep(0.01)  # a later mtime even on a coarse clock
    s3.put_object(Bucket=BUCKET, Key=f"{name}/obj", Body=b"version two")
    wait_for(lambda: (st := _stat(f)) is not None and st.st_size == 11, "the overwrite's size")
    after = f.stat()
    assert after.st_mtime_ns > before.st_mtime_ns
    assert f.read_bytes() == b"version two"


def test_a_delete_through_s3_is_enoent_at_once(mount) -> None:  # type: ignore[no-untyped-def]
    gw, folder, name = mount
    s3 = client_for(gw)
    s3.put_object(Bucket=BUCKET, Key=f"{name}/gone", Body=b"here")
    f = folder / "gone"
    wait_for(f.exists, "the object")
    assert f.stat().st_size == 4  # entry and attributes cached for an hour
    s3.delete_object(Bucket=BUCKET, Key=f"{name}/gone")
    wait_for(lambda: _stat(f) is None, "ENOENT after a delete through S3")
    assert "gone" not in os.listdir(folder)


@pytest.mark.skipif(not NFS_DOOR, reason="the NFS door is not merged")
def test_changes_through_nfs_show_at_once(mount) -> None:  # type: ignore[no-untyped-def]
    gw, folder, name = mount
    s3 = client_for(gw)
    s3.put_object(Bucket=BUCKET, Key=f"{name}/grows", Body=b"12345")
    s3.put_object(Bucket=BUCKET, Key=f"{name}/old-name", Body=b"moving")
    grows, old, new, made = (folder / n for n in ("grows", "old-name", "new-name", "made"))
    wait_for(lambda: grows.exists() and old.exists(), "the objects")
    assert grows.stat().st_size == 5 and grows.read_bytes() == b"12345"  # attributes and pages cached
    assert not new.exists() and not made.exists()  # negative entries cached

    async def through_nfs() -> None:
        nfs, root = await connect(gw, "/", ROOT_CRED)
        d = await nfs.walk(root, f"{BUCKET}/{name}")
        g = await nfs.walk(d, "grows")
        # The same inode grows in place (no new name): only its attributes and pages say so.
        await nfs.write_all(g, b"1234567890", stable=t.FILE_SYNC)
        assert (await nfs.rename(d, b"old-name", d, b"new-name")).status == t.NFS3_OK
        await nfs.new_file(d, b"made")
    asyncio.run(through_nfs())

    wait_for(lambda: (st := _stat(grows)) is not None and st.st_size == 10, "a write through NFS")
    assert grows.read_bytes() == b"1234567890"
    wait_for(lambda: _stat(old) is None, "the old name of a rename through NFS")
    wait_for(new.exists, "the new name of a rename through NFS")
    assert new.read_bytes() == b"moving"
    wait_for(made.exists, "a file created through NFS after a negative lookup")


def test_the_mounts_own_changes_need_no_help(mount) -> None:  # type: ignore[no-untyped-def]
    """What the mount itself does stays right (the kernel knows it; nothing is sent)."""
    gw, folder, name = mount
    f = folder / "local"
    assert not f.exists()
    f.write_bytes(b"written on the mount")
    assert f.stat().st_size == 20
    f.rename(folder / "local2")
    assert not f.exists() and (folder / "local2").read_bytes() == b"written on the mount"
    body = client_for(gw).get_object(Bucket=BUCKET, Key=f"{name}/local2")["Body"].read()
    assert body == b"written on the mount"
    (folder / "local2").unlink()
    assert not (folder / "local2").exists()


def test_no_traceback_in_the_serve_log(doors) -> None:  # type: ignore[no-untyped-def]
    """Runs last: no invalidation raised in the serving process."""
    log = doors[0].log()
    assert "Traceback" not in log, log
