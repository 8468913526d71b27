"""The FUSE door: real programs on a real mount, and cross-door consistency with S3.

One `samebytes serve --mount MNT` process serves both doors for the whole module.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pyfuse3 = pytest.importorskip("pyfuse3")

from gateway.fuse.ops import fuse_errors  # noqa: E402
from gateway.vfs.errors import NotFound  # noqa: E402
from tests.conftest import IN_CI, Gateway, mounted_gateway, wait_for  # noqa: E402
from tests.integration.conftest import (  # noqa: E402
    assert_no_stale_checksum, assert_s3_sees_the_new_bytes, client_for, full_object_checksum,
)

REPO = Path(__file__).resolve().parents[2]
NOBODY = 1000
SYS_PYTHON = "/usr/bin/python3"  # readable by every uid (a pyenv shim under /root is not)

if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3") or os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("CI must run the FUSE tests: /dev/fuse, fusermount3 and root needed")
    pytest.skip("FUSE tests need /dev/fuse, fusermount3 and root", allow_module_level=True)


@pytest.fixture(scope="module")
def door() -> Iterator[tuple[Gateway, Path]]:
    # Not under pytest's tmp_path: its 0700 parents would stop the non-root tests.
    base = Path(tempfile.mkdtemp(prefix="samebytes-fuse-"))
    base.chmod(0o755)
    mnt = base / "mnt"
    mnt.mkdir()
    try:
        with mounted_gateway(base / "data", mnt) as gw:
            yield gw, mnt
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(door):  # type: ignore[no-untyped-def]
    return client_for(door[0])


@pytest.fixture(scope="module")
def bkt(door) -> Path:  # type: ignore[no-untyped-def]
    """A bucket made on the mount (mkdir of a top-level directory)."""
    b = door[1] / "fusebkt"
    b.mkdir(mode=0o755)
    return b


def run(*cmd: str, cwd: Path | None = None, **kw) -> str:  # type: ignore[no-untyped-def]
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r.stdout


def as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           SYS_PYTHON, "-c", code], capture_output=True, text=True, timeout=30)


# -- the decorator: nothing but FUSEError leaves a handler -------------------------------


async def test_every_exception_becomes_a_fuse_error() -> None:
    @fuse_errors
    async def boom(exc: BaseException) -> None:
        raise exc

    for exc, want in [(ValueError("bug"), errno.EIO), (RuntimeError(), errno.EIO),
                      (NotFound("x"), errno.ENOENT), (OSError(errno.EINVAL, "bad"), errno.EINVAL),
                      (pyfuse3.FUSEError(errno.EXDEV), errno.EXDEV), (KeyError(1), errno.EIO)]:
        with pytest.raises(pyfuse3.FUSEError) as info:
            await boom(exc)
        assert info.value.errno == want, exc
    assert asyncio.iscoroutinefunction(boom)


def test_every_handler_goes_through_the_decorator() -> None:
    from gateway.fuse.ops import Operations
    handlers = [n for n in vars(Operations) if not n.startswith("_") and callable(getattr(Operations, n))
                and hasattr(pyfuse3.Operations, n)]
    assert len(handlers) >= 25
    for name in handlers:
        if name != "forget":  # returns None and cannot fail
            assert getattr(getattr(Operations, name), "__wrapped__", None) is not None, name


# -- real programs ---------------------------------------------------------------------


def test_cp_a_tree_and_diff(bkt: Path) -> None:
    run("cp", "-a", str(REPO / "gateway"), str(bkt / "cp"))
    run("diff", "-r", str(REPO / "gateway"), str(bkt / "cp"))


def test_tar_create_from_and_extract_into_the_mount(bkt: Path, tmp_path: Path) -> None:
    src = bkt / "tarsrc"
    run("cp", "-a", str(REPO / "metadata"), str(src))
    run("tar", "-cf", str(tmp_path / "t.tar"), "-C", str(src), ".")
    (bkt / "tarout").mkdir()
    run("tar", "-xf", str(tmp_path / "t.tar"), "-C", str(bkt / "tarout"))
    run("diff", "-r", str(REPO / "metadata"), str(bkt / "tarout"))


def test_git_init_commit_clone_status_fsck(bkt: Path, tmp_path: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    repo = bkt / "gitrepo"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo, env=env)
    (repo / "a.txt").write_text("hello\n")
    run("cp", "-a", str(REPO / "chunkstore"), str(repo / "chunkstore"))
    run("git", "add", "-A", cwd=repo, env=env)
    run("git", "commit", "-qm", "first", cwd=repo, env=env)
    assert run("git", "status", "--porcelain", cwd=repo, env=env) == ""
    run("git", "fsck", "--strict", cwd=repo, env=env)
    # a local repo cloned onto the mount
    local = tmp_path / "local"
    local.mkdir()
    run("git", "init", "-q", cwd=local, env=env)
    for i in range(20):
        (local / f"f{i}.txt").write_text(f"{i}\n" * i)
    run("git", "add", "-A", cwd=local, env=env)
    run("git", "commit", "-qm", "x", cwd=local, env=env)
    run("git", "clone", "-q", str(local), str(bkt / "clone"), env=env)
    assert run("git", "status", "--porcelain", cwd=bkt / "clone", env=env) == ""
    run("git", "fsck", "--strict", cwd=bkt / "clone", env=env)
    assert (bkt / "clone" / "f7.txt").read_text() == "7\n" * 7


def test_sqlite_random_writes_integrity(bkt: Path) -> None:
    db = sqlite3.connect(bkt / "t.db")
    db.execute("create table t (id integer primary key, v text)")
    rnd = random.Random(1)
    db.executemany("insert into t values (?, ?)", ((i, "x" * rnd.randrange(200)) for i in range(10_000)))
    db.commit()
    for _ in range(5):
        db.executemany("update t set v = ? where id = ?",
                       (("y" * rnd.randrange(300), rnd.randrange(10_000)) for _ in range(500)))
        db.commit()
    db.execute("delete from t where id % 7 = 0")
    db.commit()
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert db.execute("select count(*) from t").fetchone()[0] == 10_000 - 1429
    db.close()
    db = sqlite3.connect(bkt / "t.db")
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    db.close()


def test_dd_random_offsets_match_a_local_copy(bkt: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "dd", bkt / "dd"
    seed = os.urandom(3 << 20)
    local.write_bytes(seed)
    remote.write_bytes(seed)
    rnd = random.Random(2)
    blk = tmp_path / "blk"
    for i in range(12):
        blk.write_bytes(os.urandom(rnd.choice([1, 4096, 65536, 300_000])))
        seek = rnd.randrange(0, 4 << 20)
        for target in (local, remote):
            run("dd", f"if={blk}", f"of={target}", f"bs={blk.stat().st_size}", f"seek={seek}",
                "oflag=seek_bytes", "conv=notrunc", "status=none")
    assert remote.stat().st_size == local.stat().st_size
    assert hashlib.sha256(remote.read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()


def test_numpy_memmap(bkt: Path) -> None:
    import numpy as np
    path = bkt / "arr.npy"
    a = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(512, 256))
    a[:] = np.arange(512 * 256, dtype="float32").reshape(512, 256)
    a[100, 7] = -1
    a.flush()
    del a
    want = np.arange(512 * 256, dtype="float32").reshape(512, 256)
    want[100, 7] = -1
    b = np.load(path, mmap_mode="r")
    assert np.array_equal(b, want)
    assert np.array_equal(np.load(path), want)  # read(), not mmap


# -- POSIX behaviour -------------------------------------------------------------------


def test_append_truncate_and_sparse(bkt: Path) -> None:
    p = bkt / "app"
    p.write_bytes(b"abc")
    with open(p, "ab") as f:
        f.write(b"def")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.pwrite(fd, b"ghi", 0)  # O_APPEND wins over the offset (Linux)
    os.close(fd)
    assert p.read_bytes() == b"abcdefghi"
    os.truncate(p, 4)
    assert p.read_bytes() == b"abcd"
    os.truncate(p, 10)
    assert p.read_bytes() == b"abcd" + bytes(6)
    with open(p, "r+b") as f:
        f.truncate(2)
        f.seek(5)
        f.write(b"Z")
    assert p.read_bytes() == b"ab\0\0\0Z"
    with open(p, "wb") as f:  # O_TRUNC
        f.write(b"new")
    assert p.read_bytes() == b"new"
    with pytest.raises(FileExistsError):
        os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = os.open(bkt / "direct", os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644)
    os.close(fd)


def test_rename_directory_links_symlinks_errors(bkt: Path) -> None:
    d = bkt / "rdir"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    d.rename(bkt / "rdir2")
    assert not d.exists() and (bkt / "rdir2" / "sub" / "f").read_text() == "x"
    with pytest.raises(OSError) as e:
        (bkt / "rdir2").rmdir()
    assert e.value.errno == errno.ENOTEMPTY
    # over an existing target
    (bkt / "ra").write_text("a")
    (bkt / "rb").write_text("b")
    os.rename(bkt / "ra", bkt / "rb")
    assert (bkt / "rb").read_text() == "a" and not (bkt / "ra").exists()
    # hard links
    f = bkt / "hl"
    f.write_text("link")
    os.link(f, bkt / "hl2")
    assert f.stat().st_nlink == 2 and (bkt / "hl2").stat().st_ino == f.stat().st_ino
    f.unlink()
    assert (bkt / "hl2").stat().st_nlink == 1 and (bkt / "hl2").read_text() == "link"
    # symlinks
    os.symlink("hl2", bkt / "sl")
    assert os.readlink(bkt / "sl") == "hl2" and (bkt / "sl").read_text() == "link"
    assert (bkt / "sl").lstat().st_size == 3
    for fn, want in [(lambda: os.stat(bkt / "nope"), errno.ENOENT),
                     (lambda: os.mkdir(bkt / "rb"), errno.EEXIST),
                     (lambda: os.listdir(bkt / "rb"), errno.ENOTDIR),
                     (lambda: open(bkt / "rdir2", "w"), errno.EISDIR),
                     (lambda: os.stat(bkt / ("n" * 256)), errno.ENAMETOOLONG),
                     (lambda: os.mknod(bkt / "dev", 0o600 | 0o020000, os.makedev(1, 3)), errno.EPERM)]:
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno == want
    os.mkfifo(bkt / "fifo")
    assert (bkt / "fifo").is_fifo()
    st = os.statvfs(bkt)
    assert st.f_blocks > 0 and st.f_namemax == 255


def test_unlinked_open_file_stays_readable(bkt: Path) -> None:
    p = bkt / "ghost"
    p.write_bytes(b"still here" * 1000)
    with open(p, "rb") as f:
        p.unlink()
        assert not p.exists()
        assert f.read() == b"still here" * 1000


def test_xattrs(bkt: Path) -> None:
    p = bkt / "xa"
    p.write_text("x")
    os.setxattr(p, "user.color", b"blue")
    assert os.getxattr(p, "user.color") == b"blue"
    assert "user.color" in os.listxattr(p)
    os.removexattr(p, "user.color")
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.color")
    assert e.value.errno == errno.ENODATA


def test_chmod_chown_utime(bkt: Path) -> None:
    p = bkt / "meta"
    p.write_text("x")
    os.chmod(p, 0o600)
    os.chown(p, 1234, 5678)
    os.utime(p, ns=(1_000_000_000_123, 2_000_000_000_456))
    st = p.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 1234, 5678)
    assert st.st_mtime_ns == 2_000_000_000_456


def test_permissions_as_another_uid(bkt: Path) -> None:
    secret = bkt / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    closed = bkt / "closed"
    closed.mkdir(mode=0o755)
    shared = bkt / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    r = as_nobody(f"""
import errno, os
for fn in (lambda: open({str(secret)!r}).read(), lambda: open({str(closed)!r} + '/f', 'w')):
    try:
        fn()
    except PermissionError:
        print('EACCES')
open({str(shared)!r} + '/mine', 'w').write('ok')
print(os.access({str(secret)!r}, os.R_OK), os.access({str(shared)!r}, os.W_OK))
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["EACCES", "EACCES", "False", "True"]
    assert (shared / "mine").stat().st_uid == NOBODY
    assert not (closed / "f").exists()


# -- cross-door consistency -----------------------------------------------------------------


def test_put_via_s3_read_via_the_mount(door, s3) -> None:  # type: ignore[no-untyped-def]
    _, mnt = door
    s3.create_bucket(Bucket="s3side")
    body = os.urandom(5 << 20) + b"tail"
    s3.put_object(Bucket="s3side", Key="deep/dir/obj.bin", Body=body)
    p = mnt / "s3side" / "deep" / "dir" / "obj.bin"
    wait_for(p.exists, 5, "the object on the mount")
    st = p.stat()
    assert st.st_size == len(body) and st.st_uid == 0 and st.st_gid == 0
    assert p.read_bytes() == body
    head = s3.head_object(Bucket="s3side", Key="deep/dir/obj.bin")
    assert abs(head["LastModified"].timestamp() - st.st_mtime) < 1.0


def test_write_via_the_mount_get_via_s3(door, s3, bkt: Path) -> None:  # type: ignore[no-untyped-def]
    body = os.urandom(3 << 20)
    src = Path(tempfile.mkdtemp()) / "src"
    src.write_bytes(body)
    (bkt / "x").mkdir()
    run("cp", str(src), str(bkt / "x" / "viacp"))
    (bkt / "x" / "viapy").write_bytes(body[:1000])
    for key, want in (("x/viacp", body), ("x/viapy", body[:1000])):
        got = s3.get_object(Bucket=bkt.name, Key=key)
        data = got["Body"].read()
        assert data == want and got["ContentLength"] == len(want)
        assert got["ETag"].strip('"') == hashlib.md5(want).hexdigest()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bkt.name, Prefix="x/")["Contents"]]
    assert keys == ["x/viacp", "x/viapy"]
    # new content through the mount: a new ETag
    (bkt / "x" / "viapy").write_bytes(b"changed")
    got = s3.get_object(Bucket=bkt.name, Key="x/viapy")
    assert got["Body"].read() == b"changed"
    assert got["ETag"].strip('"') == hashlib.md5(b"changed").hexdigest()


def test_rename_a_directory_on_the_mount_moves_the_keys(door, s3, bkt: Path) -> None:  # type: ignore[no-untyped-def]
    (bkt / "old" / "a").mkdir(parents=True)
    for n in ("one", "a/two"):
        (bkt / "old" / n).write_text(n)
    os.rename(bkt / "old", bkt / "new")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bkt.name, Prefix="new/")["Contents"]]
    assert keys == ["new/a/two", "new/one"]
    assert s3.list_objects_v2(Bucket=bkt.name, Prefix="old/")["KeyCount"] == 0
    assert s3.get_object(Bucket=bkt.name, Key="new/a/two")["Body"].read() == b"a/two"


def test_delete_via_s3_disappears_from_the_mount(door, s3) -> None:  # type: ignore[no-untyped-def]
    _, mnt = door
    s3.create_bucket(Bucket="s3del")
    s3.put_object(Bucket="s3del", Key="gone.txt", Body=b"bye")
    p = mnt / "s3del" / "gone.txt"
    wait_for(p.exists, 5, "the object on the mount")
    assert p.read_bytes() == b"bye"
    s3.delete_object(Bucket="s3del", Key="gone.txt")
    wait_for(lambda: not p.exists(), 5, "the delete to reach the mount")
    # and a name that appears through S3 after a negative lookup shows up too
    q = mnt / "s3del" / "late.txt"
    assert not q.exists()
    s3.put_object(Bucket="s3del", Key="late.txt", Body=b"hi")
    wait_for(q.exists, 5, "the new object on the mount")
    assert q.read_bytes() == b"hi"


def test_delete_and_overwrite_via_s3_while_open_on_the_mount(door, s3) -> None:  # type: ignore[no-untyped-def]
    _, mnt = door
    s3.create_bucket(Bucket="s3open")
    old = os.urandom(1 << 20)
    s3.put_object(Bucket="s3open", Key="o", Body=old)
    s3.put_object(Bucket="s3open", Key="d", Body=b"deleted later")
    wait_for((mnt / "s3open" / "d").exists, 5, "the objects on the mount")
    with open(mnt / "s3open" / "o", "rb") as fo, open(mnt / "s3open" / "d", "rb") as fd:
        first = fo.read(1000)
        s3.put_object(Bucket="s3open", Key="o", Body=b"new bytes")
        s3.delete_object(Bucket="s3open", Key="d")
        assert first + fo.read() == old  # the old bytes, never a mix
        assert fd.read() == b"deleted later"
    wait_for(lambda: (mnt / "s3open" / "o").read_bytes() == b"new bytes", 5, "the overwrite")


def test_s3_user_metadata_is_visible_as_xattrs_on_the_mount(door, s3) -> None:  # type: ignore[no-untyped-def]
    """x-amz-meta-* of a boto3 PUT are the file's user.s3.meta.* xattrs on a real mount
    (names lower-cased, as S3 stores them), listed with the file's other xattrs."""
    _, mnt = door
    s3.create_bucket(Bucket="s3meta")
    s3.put_object(Bucket="s3meta", Key="d/obj", Body=b"payload",
                  Metadata={"team": "ml", "Run-Id": "7", "empty": ""})
    p = mnt / "s3meta" / "d" / "obj"
    wait_for(p.exists, 5, "the object on the mount")
    assert os.getxattr(p, "user.s3.meta.team") == b"ml"
    assert os.getxattr(p, "user.s3.meta.run-id") == b"7"
    assert os.getxattr(p, "user.s3.meta.empty") == b""
    assert {"user.s3.meta.team", "user.s3.meta.run-id", "user.s3.meta.empty"} <= set(os.listxattr(p))
    with pytest.raises(OSError) as e:
        os.getxattr(p, "user.s3.meta.absent")
    assert e.value.errno == errno.ENODATA
    # A new PUT replaces the metadata: the old names are gone from the mount too.
    s3.put_object(Bucket="s3meta", Key="d/obj", Body=b"payload 2", Metadata={"team": "infra"})
    wait_for(lambda: p.read_bytes() == b"payload 2", 5, "the overwrite on the mount")
    assert os.getxattr(p, "user.s3.meta.team") == b"infra"
    assert not {"user.s3.meta.run-id", "user.s3.meta.empty"} & set(os.listxattr(p))


def test_a_write_through_the_mount_never_leaves_a_stale_s3_checksum(door, s3) -> None:  # type: ignore[no-untyped-def]
    """Objects PUT with a checksum (SHA256, boto3's default CRC32, a multipart CRC32), then
    changed through the mount (an in-place write of the same size, an append, a truncate,
    a rewrite of a multipart object): GET and HEAD with ChecksumMode=ENABLED and
    GetObjectAttributes return no checksum of the old bytes, and the ETag changed."""
    _, mnt = door
    s3.create_bucket(Bucket="s3sum")
    old = {"inplace": os.urandom(1 << 20), "append": os.urandom(70_000), "truncate": os.urandom(300_000),
           "rewrite": os.urandom(4096)}
    algs = {"inplace": "SHA256", "append": "SHA256", "truncate": None, "rewrite": "CRC32"}
    etags = {}
    for key, data in old.items():
        kw = {"ChecksumAlgorithm": algs[key]} if algs[key] else {}  # None: boto3's default CRC32
        etags[key] = s3.put_object(Bucket="s3sum", Key=key, Body=data, **kw)["ETag"]
        head = s3.head_object(Bucket="s3sum", Key=key, ChecksumMode="ENABLED")
        assert head[f"Checksum{algs[key] or 'CRC32'}"] == full_object_checksum(algs[key] or "CRC32", data)
    parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(1234)]
    uid = s3.create_multipart_upload(Bucket="s3sum", Key="mp", ChecksumAlgorithm="CRC32")["UploadId"]
    done = [{"PartNumber": n, **{k: v for k, v in s3.upload_part(
        Bucket="s3sum", Key="mp", UploadId=uid, PartNumber=n, Body=p, ChecksumAlgorithm="CRC32").items()
        if k in ("ETag", "ChecksumCRC32")}} for n, p in enumerate(parts, 1)]
    etags["mp"] = s3.complete_multipart_upload(Bucket="s3sum", Key="mp", UploadId=uid,
                                               MultipartUpload={"Parts": done})["ETag"]
    old["mp"] = b"".join(parts)
    assert s3.head_object(Bucket="s3sum", Key="mp", ChecksumMode="ENABLED")["ChecksumCRC32"].endswith("-3")
    wait_for((mnt / "s3sum" / "mp").exists, 5, "the objects on the mount")

    new = dict(old)
    with open(mnt / "s3sum" / "inplace", "r+b") as f:  # the same size: only the bytes differ
        f.seek(1000)
        f.write(b"0123456789")
    new["inplace"] = old["inplace"][:1000] + b"0123456789" + old["inplace"][1010:]
    with open(mnt / "s3sum" / "append", "ab") as f:
        f.write(b"appended")
    new["append"] = old["append"] + b"appended"
    os.truncate(mnt / "s3sum" / "truncate", 1000)  # a SETATTR alone, no write
    new["truncate"] = old["truncate"][:1000]
    (mnt / "s3sum" / "rewrite").write_bytes(b"rewritten")  # O_TRUNC, then a write
    new["rewrite"] = b"rewritten"
    with open(mnt / "s3sum" / "mp", "r+b") as f:  # inside part 2
        f.seek(6 << 20)
        f.write(b"X" * 100)
    new["mp"] = old["mp"][:6 << 20] + b"X" * 100 + old["mp"][(6 << 20) + 100:]

    for key, data in new.items():
        assert_s3_sees_the_new_bytes(s3, "s3sum", key, data, etags[key])
        attrs = s3.get_object_attributes(Bucket="s3sum", Key=key,
                                         ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize"])
        assert_no_stale_checksum(attrs.get("Checksum", {}), data, f"GetObjectAttributes {key}")
        assert attrs["ObjectSize"] == len(data)
        # The old part list described the old bytes: no part checksum of them is left.
        for part in attrs.get("ObjectParts", {}).get("Parts", []):
            assert not any(k.startswith("Checksum") for k in part), (key, part)


def test_a_separate_mount_process_beside_serve_flushes_on_sigterm(door, s3) -> None:  # type: ignore[no-untyped-def]
    gw, mnt = door
    mnt2 = mnt.parent / "mnt2"
    mnt2.mkdir(exist_ok=True)
    proc = subprocess.Popen([os.sys.executable, "-m", "gateway.cli", "mount", str(mnt2),
                             "--data", str(gw.data)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.ismount(mnt2), 20, "the second mount")
        (mnt2 / "twoproc").mkdir()
        body = os.urandom(100_000)
        fd = os.open(mnt2 / "twoproc" / "f", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, body)
        os.fsync(fd)
        os.close(fd)
        # written by the mount process, served by the S3 process
        assert s3.get_object(Bucket="twoproc", Key="f")["Body"].read() == body
        # and an S3 write shows up in the other process's mount
        s3.put_object(Bucket="twoproc", Key="g", Body=b"from s3")
        wait_for((mnt2 / "twoproc" / "g").exists, 5, "the S3 write on the second mount")
        assert (mnt2 / "twoproc" / "g").read_bytes() == b"from s3"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not os.path.ismount(mnt2)
    finally:
        if proc.poll() is None:
            subprocess.run([os.sys.executable, "-m", "gateway.cli", "umount", str(mnt2)])
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.path.ismount(mnt2):
            subprocess.run(["fusermount3", "-uz", str(mnt2)], capture_output=True)
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_no_handler_logged_an_unexpected_error(door) -> None:
    """Runs last: nothing above made a handler fall back to EIO."""
    log = door[0].log()
    assert not re.search(r"FUSE \w+ failed", log), log
    assert "Traceback" not in log, log
