"""Real S3 clients against a running gateway, each doing what its users normally do:
awscli, rclone, s3cmd, s3fs-fuse and pyarrow. Every result is compared byte for byte,
and no client may retry its way past a failure of the door (retries are off or checked).

rclone, s3cmd and s3fs are installed by `make deps`; awscli and pyarrow are optional:
their tests skip, with the reason printed, when the tool is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import IN_CI, Gateway

MiB = 1 << 20
EMPTY_MD5 = hashlib.md5(b"").hexdigest()

# Debian's awscli (what `make deps` would install) first, then any `aws` on PATH.
AWS = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
if AWS is None:
    print("awscli tests will be skipped: no `aws` on PATH (apt-get install awscli)")
# Installed by `make deps` (DEB_PACKAGES): in CI their absence is a failure, not a skip.
MAKE_DEPS_TOOLS = {"rclone", "s3cmd", "s3fs", "aws"}


def need(tool: str) -> str:
    path = AWS if tool == "aws" else shutil.which(tool)
    if path is None:
        reason = (f"`{tool}` is not installed" if tool != "aws"
                  else "`aws` is not on PATH: awscli tests need `apt-get install awscli`")
        if IN_CI and tool in MAKE_DEPS_TOOLS:
            pytest.fail(reason + " (make deps installs it)")
        print(reason + ": skipping")
        pytest.skip(reason)
    return path


def clean_env() -> dict[str, str]:
    """The environment without AWS_* / RCLONE_* settings of the machine (FACTS: it sets
    AWS_CA_BUNDLE, which makes rclone refuse a plain-HTTP endpoint)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}


def _text(v: str | bytes | None) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else (v or "")


def _tail(s: str, n: int = 4000) -> str:
    return s if len(s) <= n else "..." + s[-n:]


class Cli:
    """One command-line client bound to a gateway: every call is bounded by a timeout,
    and a failure shows the client's stdout/stderr and the gateway's log."""

    def __init__(self, gw: Gateway, base: list[str], env: dict[str, str]) -> None:
        self.gw, self.base, self.env = gw, base, env

    def __call__(self, *args: str | Path, timeout: float = 60, check: bool = True,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [*self.base, *map(str, args)]
        try:
            r = subprocess.run(cmd, env=self.env, cwd=cwd, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(self._report(cmd, f"timed out after {timeout}s", _text(e.stdout),
                                              _text(e.stderr))) from None
        if check and r.returncode != 0:
            raise AssertionError(self._report(cmd, f"exited {r.returncode}", r.stdout, r.stderr))
        return r

    def _report(self, cmd: list[str], what: str, out: str, err: str) -> str:
        return (f"{shlex.join(cmd)} {what}\n--- stdout\n{_tail(out)}\n--- stderr\n{_tail(err)}"
                f"\n--- gateway log\n{_tail(self.gw.log())}")


def keys_of(s3, bucket: str, prefix: str = "") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o for o in page.get("Contents", [])})
    return out


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def assert_multipart(s3, bucket: str, key: str, parts: int | None = None) -> None:
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    m = re.fullmatch(r'"[0-9a-f]{32}-(\d+)"', etag)
    assert m, f"{key} was not uploaded in parts: ETag {etag}"
    if parts is not None:
        assert int(m.group(1)) == parts, etag


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("blobs")
    rnd = random.Random(7)
    out = {"small": d / "small.bin", "big": d / "big.bin"}
    out["small"].write_bytes(rnd.randbytes(1000))
    out["big"].write_bytes(rnd.randbytes(20 * MiB))
    return out


# --------------------------------------------------------------------------- awscli


@pytest.fixture
def aws(gateway: Gateway, tmp_path: Path) -> Cli:
    exe = need("aws")
    config = tmp_path / "aws-config"
    # aws-cli v1 presigns with SigV2 for a custom endpoint (as boto3 does, FACTS), which
    # the gateway refuses; v2 signs with SigV4 anyway. This is what v1 users set.
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    signature_version = s3v4\n")
    env = {**clean_env(), "AWS_ACCESS_KEY_ID": gateway.access_key,
           "AWS_SECRET_ACCESS_KEY": gateway.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard", "AWS_PAGER": "",
           "AWS_EC2_METADATA_DISABLED": "true"}
    return Cli(gateway, [exe, "--endpoint-url", gateway.endpoint], env)


def test_awscli_mb_cp_ls_head_presign(aws: Cli, s3, blobs: dict[str, Path], tmp_path: Path) -> None:
    small, big = blobs["small"].read_bytes(), blobs["big"].read_bytes()
    print(aws("--version").stdout.strip())
    assert aws("s3", "mb", "s3://awsb").stdout.strip() == "make_bucket: awsb"
    aws("s3", "cp", "--no-progress", blobs["small"], "s3://awsb/small.bin")
    aws("s3", "cp", "--no-progress", blobs["big"], "s3://awsb/dir/big.bin")
    assert_multipart(s3, "awsb", "dir/big.bin")  # 20 MiB > awscli's 8 MiB threshold

    down = tmp_path / "down"
    aws("s3", "cp", "--no-progress", "s3://awsb/small.bin", down / "small.bin")
    aws("s3", "cp", "--no-progress", "s3://awsb/dir/big.bin", down / "big.bin")
    assert hashlib.sha256((down / "small.bin").read_bytes()).digest() == hashlib.sha256(small).digest()
    assert (down / "small.bin").read_bytes() == small
    assert (down / "big.bin").read_bytes() == big

    top = aws("s3", "ls", "s3://awsb").stdout.splitlines()
    assert [ln.split()[-2:] for ln in top] == [["PRE", "dir/"], ["1000", "small.bin"]], top
    rec = aws("s3", "ls", "--recursive", "s3://awsb").stdout.splitlines()
    assert sorted(tuple(ln.split()[-2:]) for ln in rec) == [
        ("1000", "small.bin"), (str(len(big)), "dir/big.bin")], rec
    sub = aws("s3", "ls", "s3://awsb/dir/").stdout.split()
    assert sub[-2:] == [str(len(big)), "big.bin"]
    buckets = aws("s3", "ls").stdout.split()
    assert buckets[-1] == "awsb"

    head = json.loads(aws("s3api", "head-object", "--bucket", "awsb", "--key", "small.bin").stdout)
    assert head["ContentLength"] == len(small)
    assert head["ETag"] == f'"{md5(small)}"'
    missing = aws("s3api", "head-object", "--bucket", "awsb", "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr

    url = aws("s3", "presign", "s3://awsb/small.bin", "--expires-in", "300").stdout.strip()
    assert "X-Amz-Signature=" in url, url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and r.read() == small


def test_awscli_multipart_uploads_and_downloads_100_mib_byte_for_byte(aws: Cli, s3, tmp_path: Path) -> None:
    """`aws s3 cp` of a 100 MiB file goes up in awscli's 8 MiB parts (13 of them: the ETag
    says so) and comes back down, ranged in parts too, identical byte for byte."""
    src = tmp_path / "hundred.bin"
    rnd = random.Random(100)
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(rnd.randbytes(MiB))
    aws("s3", "mb", "s3://bigb")
    aws("s3", "cp", "--no-progress", src, "s3://bigb/dir/hundred.bin", timeout=300)
    assert_multipart(s3, "bigb", "dir/hundred.bin", 13)  # ceil(100 / 8)
    assert s3.head_object(Bucket="bigb", Key="dir/hundred.bin")["ContentLength"] == 100 * MiB
    back = tmp_path / "back.bin"
    aws("s3", "cp", "--no-progress", "s3://bigb/dir/hundred.bin", back, timeout=300)
    assert back.stat().st_size == 100 * MiB
    with open(src, "rb") as a, open(back, "rb") as b:
        for i in range(100):
            assert a.read(MiB) == b.read(MiB), f"MiB {i} differs"


SYNC_TREE = {
    "a.txt": b"alpha\n",
    "sub/b.bin": bytes(range(256)) * 40,
    "sub/deeper/c.txt": b"c" * 3000,
    "with space/and+plus.txt": b"odd names\n",
    "unicod\u00e9/\u00fc.txt": "\u00fcber\n".encode(),
    "empty.txt": b"",
}


def test_awscli_sync_twice_uploads_nothing_then_rm(aws: Cli, s3, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    make_tree(src, SYNC_TREE)
    aws("s3", "mb", "s3://syncb")
    first = aws("s3", "sync", "--no-progress", src, "s3://syncb/tree").stdout
    uploaded = sorted(ln for ln in first.splitlines() if ln.startswith("upload:"))
    assert len(uploaded) == len(SYNC_TREE), first
    listed = keys_of(s3, "syncb", "tree/")
    assert set(listed) == {f"tree/{k}" for k in SYNC_TREE}
    for rel, data in SYNC_TREE.items():
        assert s3.get_object(Bucket="syncb", Key=f"tree/{rel}")["Body"].read() == data

    # FACTS: sync re-uploads a file whose mtime is newer than the listed LastModified.
    # Put each file's mtime in the same second as its upload but before it: only a
    # LastModified that keeps its milliseconds shows the upload is the newer one.
    for rel in SYNC_TREE:
        lm = listed[f"tree/{rel}"]["LastModified"].timestamp()
        whole = float(int(lm))
        os.utime(src / rel, (whole + (lm - whole) / 2,) * 2)
    second = aws("s3", "sync", "--no-progress", src, "s3://syncb/tree")
    assert second.stdout.strip() == "", "second sync uploaded again:\n" + second.stdout

    (src / "a.txt").write_bytes(b"alpha, changed\n")
    third = aws("s3", "sync", "--no-progress", ".", "s3://syncb/tree", cwd=src).stdout.splitlines()
    assert third == ["upload: ./a.txt to s3://syncb/tree/a.txt"], third

    back = tmp_path / "back"
    aws("s3", "sync", "--no-progress", "s3://syncb/tree", back)
    assert tree_bytes(back) == tree_bytes(src)
    again = aws("s3", "sync", "--no-progress", "s3://syncb/tree", back).stdout
    assert again.strip() == "", again

    url = aws("s3", "presign", "s3://syncb/tree/with space/and+plus.txt").stdout.strip()
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"odd names\n"

    rm = aws("s3", "rm", "--recursive", "s3://syncb/tree").stdout.splitlines()
    assert len([ln for ln in rm if ln.startswith("delete:")]) == len(SYNC_TREE), rm
    assert keys_of(s3, "syncb") == {}


def test_awscli_rm_recursive_removes_the_folder_marker_too(aws: Cli, s3) -> None:
    s3.create_bucket(Bucket="mkb")
    s3.put_object(Bucket="mkb", Key="made/", Body=b"")  # a console / s3fs "create folder"
    s3.put_object(Bucket="mkb", Key="made/f.txt", Body=b"x")
    rm = aws("s3", "rm", "--recursive", "s3://mkb/made/").stdout
    assert keys_of(s3, "mkb") == {}, rm
    # the cause, seen with boto3: S3 lists the key "made/" under the prefix "made/"
    s3.put_object(Bucket="mkb", Key="made/", Body=b"")
    assert list(keys_of(s3, "mkb", "made/")) == ["made/"]


# --------------------------------------------------------------------------- rclone


@pytest.fixture
def rclone(gateway: Gateway) -> Cli:
    exe = need("rclone")
    env = {**clean_env(),  # without AWS_CA_BUNDLE (FACTS: LoadCustomCABundleError)
           "RCLONE_CONFIG_SB_TYPE": "s3", "RCLONE_CONFIG_SB_PROVIDER": "Other",
           "RCLONE_CONFIG_SB_ACCESS_KEY_ID": gateway.access_key,
           "RCLONE_CONFIG_SB_SECRET_ACCESS_KEY": gateway.secret_key,
           "RCLONE_CONFIG_SB_ENDPOINT": gateway.endpoint, "RCLONE_CONFIG_SB_REGION": "us-east-1"}
    return Cli(gateway, [exe, "--config", os.devnull, "--retries", "1", "--low-level-retries", "1"], env)


def test_rclone_copy_check_lsf_delete_purge(rclone: Cli, s3, tmp_path: Path) -> None:
    files = {
        "big12.bin": random.Random(12).randbytes(12 * MiB),
        "d1/h.txt": b"hello\n",
        "d1/d2/r.bin": random.Random(5).randbytes(5000),
        "empty.txt": b"",
        "sp ace+\u00e9.txt": b"name\n",
    }
    src = tmp_path / "src"
    make_tree(src, files)
    rclone("mkdir", "sb:rcl")
    s3.head_bucket(Bucket="rcl")
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src, "sb:rcl/t")
    assert_multipart(s3, "rcl", "t/big12.bin", 3)
    for rel, data in files.items():
        assert s3.get_object(Bucket="rcl", Key=f"t/{rel}")["Body"].read() == data

    # check compares single-part ETags with the local MD5 (multipart: rclone's md5 meta).
    chk = rclone("check", src, "sb:rcl/t")
    assert "0 differences found" in chk.stderr and f"{len(files)} matching files" in chk.stderr, chk.stderr
    assert "could not be checked" not in chk.stderr, chk.stderr
    again = rclone("copy", "-v", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src, "sb:rcl/t")
    assert "There was nothing to transfer" in again.stderr, again.stderr

    lsf = rclone("lsf", "-R", "sb:rcl").stdout.splitlines()
    assert sorted(lsf) == sorted(["t/", "t/big12.bin", "t/d1/", "t/d1/h.txt", "t/d1/d2/",
                                  "t/d1/d2/r.bin", "t/empty.txt", "t/sp ace+\u00e9.txt"]), lsf

    down = tmp_path / "down"
    rclone("copy", "sb:rcl/t", down)
    assert tree_bytes(down) == files

    rclone("delete", "sb:rcl/t/d1")
    assert sorted(keys_of(s3, "rcl")) == ["t/big12.bin", "t/empty.txt", "t/sp ace+\u00e9.txt"]
    rclone("purge", "sb:rcl")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="rcl")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_rclone_sync_makes_the_bucket_mirror_a_changed_local_tree(rclone: Cli, s3, tmp_path: Path) -> None:
    """rclone sync (local -> bucket), then local edits (a file rewritten at another size, one
    rewritten at the same size, one deleted, one added) and sync again: the bucket holds
    exactly the local tree, byte for byte, deletions included, and rclone check agrees."""
    files = {
        "keep.txt": b"unchanged\n",
        "grow.txt": b"short\n",
        "same-size.bin": random.Random(1).randbytes(4096),
        "d1/gone.txt": b"to be deleted\n",
        "d1/d2/big.bin": random.Random(2).randbytes(7 * MiB),
        "sp ace+\u00e9.txt": b"name\n",
    }
    src = tmp_path / "src"
    make_tree(src, files)
    rclone("mkdir", "sb:rsync")
    rclone("sync", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src, "sb:rsync/m")
    assert {k: s3.get_object(Bucket="rsync", Key=k)["Body"].read() for k in keys_of(s3, "rsync")} \
        == {f"m/{rel}": data for rel, data in files.items()}
    assert_multipart(s3, "rsync", "m/d1/d2/big.bin", 2)
    first = rclone("check", src, "sb:rsync/m")
    assert "0 differences found" in first.stderr and f"{len(files)} matching files" in first.stderr, first.stderr

    (src / "grow.txt").write_bytes(b"much longer than before\n")
    same = bytearray(files["same-size.bin"])
    same[100:110] = b"0123456789"
    (src / "same-size.bin").write_bytes(bytes(same))
    # The same size: rclone sees the change by the newer modification time, then the MD5.
    t = time.time() + 10
    os.utime(src / "same-size.bin", (t, t))
    (src / "d1" / "gone.txt").unlink()
    (src / "new" / "n.txt").parent.mkdir()
    (src / "new" / "n.txt").write_bytes(b"added after the first sync\n")
    rclone("sync", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src, "sb:rsync/m")

    want = tree_bytes(src)
    assert {k: s3.get_object(Bucket="rsync", Key=k)["Body"].read() for k in keys_of(s3, "rsync")} \
        == {f"m/{rel}": data for rel, data in want.items()}
    chk = rclone("check", src, "sb:rsync/m")
    assert "0 differences found" in chk.stderr and f"{len(want)} matching files" in chk.stderr, chk.stderr
    assert "could not be checked" not in chk.stderr, chk.stderr
    again = rclone("sync", "-v", src, "sb:rsync/m")
    assert "There was nothing to transfer" in again.stderr, again.stderr
    assert "Deleted" not in again.stderr, again.stderr


# --------------------------------------------------------------------------- s3cmd


@pytest.fixture
def s3cmd(gateway: Gateway, tmp_path: Path) -> Cli:
    exe = need("s3cmd")
    cfg = tmp_path / "s3cfg"
    hostport = f"127.0.0.1:{gateway.s3_port}"
    cfg.write_text(f"[default]\naccess_key = {gateway.access_key}\nsecret_key = {gateway.secret_key}\n"
                   f"host_base = {hostport}\nhost_bucket = {hostport}\n"
                   "bucket_location = us-east-1\nuse_https = False\nsignature_v2 = False\n")
    env = {**clean_env(), "HOME": str(tmp_path)}
    return Cli(gateway, [exe, "-c", str(cfg), "--no-progress"], env)


def test_s3cmd_mb_put_ls_get_info_del_rb(s3cmd: Cli, s3, blobs: dict[str, Path], tmp_path: Path) -> None:
    small, big = blobs["small"].read_bytes(), blobs["big"].read_bytes()
    out = [s3cmd("mb", "s3://s3c")]
    assert "Bucket 's3://s3c/' created" in out[-1].stdout
    out.append(s3cmd("put", blobs["small"], "s3://s3c/small.bin"))
    out.append(s3cmd("put", "--multipart-chunk-size-mb=5", blobs["big"], "s3://s3c/d/big.bin"))
    assert_multipart(s3, "s3c", "d/big.bin", 4)
    assert s3.get_object(Bucket="s3c", Key="small.bin")["Body"].read() == small

    ls = s3cmd("ls", "s3://s3c").stdout.splitlines()
    assert [ln.split()[-2:] for ln in ls] == [["DIR", "s3://s3c/d/"], ["1000", "s3://s3c/small.bin"]], ls
    assert s3cmd("ls", "s3://s3c/d/").stdout.split()[-2:] == [str(len(big)), "s3://s3c/d/big.bin"]
    assert "s3://s3c" in s3cmd("ls").stdout.split()

    out.append(s3cmd("get", "s3://s3c/small.bin", tmp_path / "small.got"))
    out.append(s3cmd("get", "s3://s3c/d/big.bin", tmp_path / "big.got"))
    assert (tmp_path / "small.got").read_bytes() == small
    assert (tmp_path / "big.got").read_bytes() == big

    info = s3cmd("info", "s3://s3c/d/big.bin").stdout
    assert re.search(rf"File size:\s+{len(big)}\b", info), info
    assert re.search(rf"MD5 sum:\s+{md5(big)}\b", info), info
    info = s3cmd("info", "s3://s3c/small.bin").stdout
    assert re.search(rf"MD5 sum:\s+{md5(small)}\b", info), info

    out.append(s3cmd("del", "s3://s3c/small.bin", "s3://s3c/d/big.bin"))
    assert keys_of(s3, "s3c") == {}
    out.append(s3cmd("rb", "s3://s3c"))
    assert "Bucket 's3://s3c/' removed" in out[-1].stdout
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket="s3c")
    # s3cmd retries failed requests on its own (not configurable): none may have happened.
    for r in out:
        assert "Retrying" not in r.stderr and "ERROR" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- s3fs-fuse


def _unmount(mnt: Path) -> None:
    for cmd in (["fusermount", "-u"], ["fusermount3", "-u"], ["fusermount", "-uz"], ["umount", "-l"]):
        if not os.path.ismount(mnt):
            return
        if shutil.which(cmd[0]):
            subprocess.run([*cmd, str(mnt)], capture_output=True, timeout=20)


@pytest.fixture
def s3fs_mount(gateway: Gateway, s3, tmp_path: Path) -> Iterator[Path]:
    exe = need("s3fs")
    if not os.path.exists("/dev/fuse"):
        reason = "/dev/fuse is missing: cannot mount s3fs"
        print(reason)
        pytest.skip(reason)
    s3.create_bucket(Bucket="fsb")
    passwd = tmp_path / "passwd-s3fs"
    passwd.write_text(f"{gateway.access_key}:{gateway.secret_key}\n")
    passwd.chmod(0o600)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log_path = tmp_path / "s3fs.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [exe, "fsb", str(mnt), "-f", "-o", f"url={gateway.endpoint}", "-o", "use_path_request_style",
             "-o", f"passwd_file={passwd}", "-o", "dbglevel=warn", "-o", "retries=1",
             # 5 MiB parts: a 10 MiB file goes up as two parallel parts
             "-o", "multipart_size=5"],
            stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    try:
        deadline = time.monotonic() + 15
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"s3fs did not mount (exit {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.05)
        yield mnt
    finally:
        _unmount(mnt)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        print("s3fs log:\n" + _tail(log_path.read_text()))


def test_s3fs_mount_reads_and_writes_the_same_bytes(s3fs_mount: Path, s3, gateway: Gateway) -> None:
    mnt = s3fs_mount
    rnd = random.Random(3)
    small, ten = b"written through s3fs\n", rnd.randbytes(10 * MiB)
    (mnt / "small.txt").write_bytes(small)
    with open(mnt / "ten.bin", "wb") as f:
        f.write(ten)
    assert s3.get_object(Bucket="fsb", Key="small.txt")["Body"].read() == small
    got = s3.get_object(Bucket="fsb", Key="ten.bin")
    assert got["Body"].read() == ten
    assert got["ETag"] == s3.head_object(Bucket="fsb", Key="ten.bin")["ETag"]
    assert s3.head_object(Bucket="fsb", Key="small.txt")["ETag"] == f'"{md5(small)}"'

    put = rnd.randbytes(7 * MiB + 123)
    s3.put_object(Bucket="fsb", Key="from-s3/put.bin", Body=put)
    assert sorted(os.listdir(mnt)) == ["from-s3", "small.txt", "ten.bin"]
    assert os.listdir(mnt / "from-s3") == ["put.bin"]
    assert os.stat(mnt / "from-s3" / "put.bin").st_size == len(put)
    # Random-offset reads of an object s3fs has not read yet: they become ranged GETs.
    fd = os.open(mnt / "from-s3" / "put.bin", os.O_RDONLY)
    try:
        for _ in range(40):
            off, n = rnd.randrange(len(put) + 10), rnd.randrange(1, 300_000)
            assert os.pread(fd, n, off) == put[off:off + n], (off, n)
    finally:
        os.close(fd)
    assert (mnt / "from-s3" / "put.bin").read_bytes() == put

    os.remove(mnt / "small.txt")
    assert "small.txt" not in keys_of(s3, "fsb")
    assert not (mnt / "small.txt").exists()

    os.mkdir(mnt / "newdir")
    listed = keys_of(s3, "fsb")
    assert sorted(listed) == ["from-s3/put.bin", "newdir/", "ten.bin"]
    assert listed["newdir/"]["Size"] == 0
    # A folder key reads as an empty object: its ETag is the MD5 of no bytes, the same
    # in the listing and on HEAD (as on S3; SDKs check a PUT's ETag against the MD5).
    assert listed["newdir/"]["ETag"] == f'"{EMPTY_MD5}"'
    assert s3.head_object(Bucket="fsb", Key="newdir/")["ETag"] == f'"{EMPTY_MD5}"'
    assert os.path.isdir(mnt / "newdir") and os.listdir(mnt / "newdir") == []


def test_folder_keys_carry_the_md5_of_an_empty_body(s3) -> None:
    """What s3fs's mkdir (above) relies on, without a mount: a PUT of `dir/` answers,
    lists and heads with the MD5 of no bytes. aws-sdk-java v1 (Hadoop S3A's mkdirs)
    compares a PUT's ETag with the MD5 it computed and fails on anything else."""
    s3.create_bucket(Bucket="mkd")
    assert s3.put_object(Bucket="mkd", Key="marker/", Body=b"")["ETag"] == f'"{EMPTY_MD5}"'
    s3.put_object(Bucket="mkd", Key="marker/inside.txt", Body=b"x")
    assert keys_of(s3, "mkd")["marker/"]["ETag"] == f'"{EMPTY_MD5}"'
    assert s3.head_object(Bucket="mkd", Key="marker/")["ETag"] == f'"{EMPTY_MD5}"'
    got = s3.get_object(Bucket="mkd", Key="marker/")
    assert got["Body"].read() == b"" and got["ETag"] == f'"{EMPTY_MD5}"'


# --------------------------------------------------------------------------- pyarrow


def _pyarrow():  # type: ignore[no-untyped-def]
    try:
        import pyarrow  # noqa: F401
        import pyarrow.dataset  # noqa: F401
        import pyarrow.fs  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        reason = f"pyarrow cannot be imported ({e}): pip install pyarrow"
        print(reason)
        pytest.skip(reason)
    return pyarrow


def test_pyarrow_parquet_and_dataset(gateway: Gateway, s3, monkeypatch: pytest.MonkeyPatch) -> None:
    pa = _pyarrow()
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3.create_bucket(Bucket="arrow")
    fs = pafs.S3FileSystem(access_key=gateway.access_key, secret_key=gateway.secret_key,
                           endpoint_override=f"127.0.0.1:{gateway.s3_port}", scheme="http",
                           region="us-east-1")
    rnd = random.Random(11)
    n = 1_200_000  # ~10 MB of incompressible int64: pyarrow's writer goes multipart
    table = pa.table({"id": pa.array(range(n), pa.int64()),
                      "v": pa.array([rnd.getrandbits(63) for _ in range(n)], pa.int64()),
                      "s": pa.array([f"row-{i % 997}" for i in range(n)])})
    pq.write_table(table, "arrow/path/t.parquet", filesystem=fs)
    assert pq.read_table("arrow/path/t.parquet", filesystem=fs).equals(table)
    raw = s3.get_object(Bucket="arrow", Key="path/t.parquet")["Body"].read()
    with fs.open_input_file("arrow/path/t.parquet") as f:
        assert f.read() == raw
    assert pq.read_table(io.BytesIO(raw)).equals(table)
    assert fs.get_file_info("arrow/path/t.parquet").size == len(raw)

    # A hive-partitioned directory written by boto3, read as one dataset.
    expected = []
    for year in (2024, 2025):
        for month in (1, 2, 3):
            vals = [year * 1000 + month * 10 + i for i in range(5)]
            expected += [(v, year, month) for v in vals]
            buf = io.BytesIO()
            pq.write_table(pa.table({"v": vals}), buf)
            s3.put_object(Bucket="arrow", Key=f"part/year={year}/month={month}/data.parquet",
                          Body=buf.getvalue())
    dataset = ds.dataset("arrow/part", filesystem=fs, format="parquet", partitioning="hive")
    got = dataset.to_table().to_pydict()
    assert sorted(zip(got["v"], got["year"], got["month"])) == sorted(expected)
    only = dataset.to_table(filter=ds.field("year") == 2025).to_pydict()
    assert sorted(only["v"]) == sorted(v for v, y, _ in expected if y == 2025)
    del dataset, fs
