"""The FUSE door, continued: the POSIX corners programs hit (open flags, renameat2,
FIFOs, statfs, long names), errors programs expect (EIO for a corrupt chunk), big
directories, rsync, and PyTorch reading training files and checkpoints.

One `samebytes serve --mount MNT` process for the module, as in test_fuse.py.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import mmap
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, TEST_CHUNKS, Gateway
from tests.integration.conftest import client_for

if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3") or os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("CI must run the FUSE tests: /dev/fuse, fusermount3 and root needed")
    pytest.skip("FUSE tests need /dev/fuse, fusermount3 and root", allow_module_level=True)

from tests.integration.test_fuse import door, run  # noqa: E402,F401  (door: one mount per module)


@pytest.fixture(scope="module")
def bkt(door: tuple[Gateway, Path]) -> Path:
    b = door[1] / "posix"
    b.mkdir(mode=0o755)
    return b


def drop_page_cache() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1")


# -- open flags, renameat2, special files, statfs, names -------------------------------------


def test_o_excl_o_trunc_o_append_and_o_direct(bkt: Path) -> None:
    p = bkt / "flags"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"0123456789")
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"ab")  # O_APPEND: at the end whatever the offset
    os.close(fd)
    assert p.read_bytes() == b"0123456789ab"
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert p.stat().st_size == 0
    # O_DIRECT is accepted: aligned buffers written and read back through the daemon.
    buf = mmap.mmap(-1, 1 << 16)
    buf.write(os.urandom(1 << 16))
    fd = os.open(p, os.O_RDWR | os.O_DIRECT)
    try:
        assert os.write(fd, buf) == 1 << 16
        back = mmap.mmap(-1, 1 << 16)
        assert os.preadv(fd, [back], 0) == 1 << 16
        assert back[:] == buf[:]
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def renameat2(src: Path, dst: Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_renameat2_noreplace_and_exchange(bkt: Path) -> None:
    a, b = bkt / "ra", bkt / "rb"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    with pytest.raises(FileExistsError):
        renameat2(a, b, RENAME_NOREPLACE)
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    renameat2(a, b, RENAME_EXCHANGE)
    assert a.read_bytes() == b"B" and b.read_bytes() == b"A"
    renameat2(a, bkt / "rc", RENAME_NOREPLACE)
    assert not a.exists() and (bkt / "rc").read_bytes() == b"B"


def test_fifos_are_made_and_device_nodes_refused(bkt: Path) -> None:
    p = bkt / "fifo"
    os.mkfifo(p, 0o644)
    assert stat.S_ISFIFO(os.lstat(p).st_mode)
    os.unlink(p)
    with pytest.raises(PermissionError):
        os.mknod(bkt / "dev", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    assert not (bkt / "dev").exists()
    (bkt / "after-fifo").write_bytes(b"still serving")
    assert (bkt / "after-fifo").read_bytes() == b"still serving"


def test_statfs_reports_real_numbers(door: tuple[Gateway, Path]) -> None:
    gw, mnt = door
    st = os.statvfs(mnt)
    disk = os.statvfs(gw.data)
    assert st.f_bsize > 0 and st.f_blocks > 0 and st.f_namemax == 255
    # The space is the data folder's disk, give or take what changed in between.
    total = st.f_blocks * st.f_frsize
    assert abs(total - disk.f_blocks * disk.f_frsize) <= 0.05 * disk.f_blocks * disk.f_frsize
    assert 0 < st.f_bavail <= st.f_blocks


def test_a_name_longer_than_255_bytes_is_enametoolong(bkt: Path) -> None:
    with pytest.raises(OSError) as e:
        (bkt / ("n" * 256)).write_bytes(b"x")
    assert e.value.errno == errno.ENAMETOOLONG
    (bkt / ("n" * 255)).write_bytes(b"x")  # the longest name is fine
    assert (bkt / ("n" * 255)).read_bytes() == b"x"


# -- errors programs expect ------------------------------------------------------------------


@pytest.mark.skipif(bool(TEST_CHUNKS), reason="flips a byte in the local chunk folder "
                    "(the s3 case: test_chunks_faults, a flipped bit from the backend)")
def test_a_corrupt_chunk_reads_as_eio_and_the_mount_keeps_serving(door: tuple[Gateway, Path],
                                                                   bkt: Path) -> None:
    gw, _ = door
    chunks = gw.data / "chunks"
    before = {p for p in chunks.rglob("*") if p.is_file()}
    data = os.urandom(300_000)  # past the inline limit: a chunk file
    (bkt / "victim").write_bytes(data)
    (bkt / "bystander").write_bytes(os.urandom(300_000))
    os.sync()
    new = sorted((p for p in chunks.rglob("*") if p.is_file() and p not in before),
                 key=lambda p: p.stat().st_mtime_ns)
    assert len(new) == 2
    victim = new[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(raw)
    drop_page_cache()  # neither the kernel's copy of the file nor of the chunk may answer
    with pytest.raises(OSError) as e:
        (bkt / "victim").read_bytes()
    assert e.value.errno == errno.EIO
    assert len((bkt / "bystander").read_bytes()) == 300_000
    assert os.path.ismount(door[1])


@pytest.mark.skipif(bool(TEST_CHUNKS), reason="flips a byte in the local chunk folder")
def test_a_lone_4k_read_of_a_corrupt_block_is_eio_and_its_neighbours_still_read(
        door: tuple[Gateway, Path], bkt: Path) -> None:
    """One reader, small random preads: the reads the chunk store serves on the event loop
    itself verify the covering block as the worker path does."""
    gw, _ = door
    chunks = gw.data / "chunks"
    before = {p for p in chunks.rglob("*") if p.is_file()}
    data = os.urandom(256 * 1024)
    (bkt / "lone-victim").write_bytes(data)
    os.sync()
    new = [p for p in chunks.rglob("*") if p.is_file() and p not in before]
    assert len(new) == 1
    bad = 100_000  # in the 16 KiB block [98304, 114688)
    raw = bytearray(new[0].read_bytes())
    raw[bad] ^= 0x01
    new[0].write_bytes(raw)
    drop_page_cache()
    fd = os.open(bkt / "lone-victim", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for _ in range(3):  # the store keeps the chunk open: later reads take the same path
            with pytest.raises(OSError) as e:
                os.pread(fd, 4096, bad // 4096 * 4096)
            assert e.value.errno == errno.EIO
        assert os.pread(fd, 4096, 0) == data[:4096]
        assert os.pread(fd, 4096, 200_704) == data[200_704:200_704 + 4096]
    finally:
        os.close(fd)
    assert os.path.ismount(door[1])


# -- big directories ---------------------------------------------------------------------------


def test_a_directory_of_100k_entries_lists_completely(door: tuple[Gateway, Path]) -> None:
    """Entries made through a second process on the same data folder (the vfs's batch path,
    far quicker than 100k FUSE creates), listed through the mount by ls and scandir."""
    gw, mnt = door
    count = 100_000
    code = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from gateway.vfs import Filesystem, ROOT

async def main():
    fs = Filesystem.from_data_dir(Path({str(gw.data)!r}))
    await fs.start()
    try:
        await fs.create_bucket(ROOT, "big")
        async def empty():
            return
            yield b""
        sem = asyncio.Semaphore(256)
        async def put(i):
            async with sem:
                await fs.put_object(ROOT, "big", f"d/f{{i:06d}}", empty())
        await asyncio.gather(*(put(i) for i in range({count})))
    finally:
        await fs.aclose()
asyncio.run(main())
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    d = mnt / "big" / "d"
    out = subprocess.run(["ls", "-f", str(d)], capture_output=True, text=True, timeout=300, check=True)
    names = [n for n in out.stdout.splitlines() if n not in (".", "..")]
    assert len(names) == count and len(set(names)) == count
    with os.scandir(d) as it:
        scanned = {e.name for e in it}
    assert scanned == {f"f{i:06d}" for i in range(count)}


# -- real programs -------------------------------------------------------------------------------


def test_rsync_a_tree_in_and_back_out(bkt: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "gateway", src)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("big.bin", src / "link")
    run("rsync", "-a", f"{src}/", f"{bkt}/rs/")
    back = tmp_path / "back"
    run("rsync", "-a", f"{bkt}/rs/", f"{back}/")
    run("diff", "-r", "--no-dereference", str(src), str(back))
    # A checksum pass finds nothing to send: same bytes, sizes and times on the mount.
    out = run("rsync", "-a", "-c", "-i", "-n", f"{src}/", f"{bkt}/rs/")
    assert out.strip() == "", out
    assert os.readlink(bkt / "rs" / "link") == "big.bin"


def test_pytorch_dataloader_reads_the_mount_and_checkpoints_round_trip_through_s3(
        door: tuple[Gateway, Path], bkt: Path) -> None:
    import torch  # the CPU build, installed by `make test` (torch==2.13.0)
    gw, _ = door
    samples = bkt / "samples"
    samples.mkdir()
    want = {}
    for i in range(64):
        t = torch.arange(i, i + 256, dtype=torch.float32)
        torch.save(t, samples / f"{i:03d}.pt")
        want[i] = float(t.sum())
    code = f"""
import torch, sys
from pathlib import Path
from torch.utils.data import DataLoader, Dataset

class Files(Dataset):
    def __init__(self, root):
        self.paths = sorted(Path(root).glob("*.pt"))
    def __len__(self):
        return len(self.paths)
    def __getitem__(self, i):
        return int(self.paths[i].stem), torch.load(self.paths[i]).sum()

seen = {{}}
for epoch in range(2):
    for idx, sums in DataLoader(Files({str(samples)!r}), batch_size=8, num_workers=2, shuffle=True):
        for i, s in zip(idx.tolist(), sums.tolist()):
            seen.setdefault(i, []).append(s)
print(repr({{i: v for i, v in sorted(seen.items())}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    seen = eval(r.stdout.strip())  # noqa: S307 - our own subprocess's repr of a dict of floats
    assert seen == {i: [s, s] for i, s in want.items()}  # every sample, once per epoch
    # A checkpoint saved through the mount is the same object through S3, and loads back.
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    ckpt = bkt / "ckpt" / "model.pt"
    ckpt.parent.mkdir()
    torch.save({"model": model.state_dict(), "step": 1234}, ckpt)
    body = client_for(gw).get_object(Bucket=bkt.name, Key="ckpt/model.pt")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(ckpt.read_bytes()).digest()
    loaded = torch.load(ckpt)
    assert loaded["step"] == 1234
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["model"][k], v), k
