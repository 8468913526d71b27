"""The NFS door (`samebytes serve --nfs`) beside nfs-ganesha, with the same clients.

Two servers, the same jobs, interleaved round by round (ganesha, samebytes, ...):

* ganesha (the peer): Debian nfs-ganesha 4.3 + FSAL VFS exporting a local directory on
  the benchmark's data disk. It will not start without rpcbind, so the benchmark puts
  rpcbind and ganesha in a network namespace of their own (lo up, plus a /32 address;
  FACTS.md, NFS) and runs every client against it with `ip netns exec`. If it cannot be
  started, the JSON says why and the samebytes figures are still reported.
* samebytes: ``python -m gateway.cli serve --nfs ... --export /:no_root_squash``, a bucket.

Jobs:

1. write: ``nfs-cp`` (libnfs) of a local file of SIZE, GUARDED create (MB/s).
2. read: ``nfs-cat`` of that file to /dev/null (MB/s).
3. small_files: create (GUARDED) + GETATTR + REMOVE of N files in one directory, each
   phase over all files, by a small synchronous ONC RPC client built on the door's own
   codecs (bench/nfs.py --small-files-client), the same for both servers (files/s).

    python -m bench.nfs [--quick] [--data DIR] [--rounds N] [--keep]
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import Figure, emit, free_port, log, machine_info, make_data_dir, parser, remove_data_dir

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]
NETNS = f"samebytes-bench-nfs-{os.getpid()}"
NS_ADDR = "10.213.0.1"
GANESHA_NFS_PORT = 2049
GANESHA_MOUNT_PORT = 20048
BUCKET = "bench"
GOALS = {"read": 0.5, "write": 1.0}  # samebytes / ganesha, from issue 5


@dataclass(frozen=True)
class Sizes:
    file: int
    small_files: int

    @staticmethod
    def pick(quick: bool) -> Sizes:
        return Sizes(32 * MiB, 200) if quick else Sizes(1024 * MiB, 2000)


@dataclass
class Server:
    name: str
    host: str
    nfs_port: int
    mount_port: int
    export: str          # MNT path of the directory the jobs work in
    prefix: list[str] = field(default_factory=list)  # command prefix for clients
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return (f"nfs://{self.host}{self.export.rstrip('/')}/{path}"
                f"?nfsport={self.nfs_port}&mountport={self.mount_port}&version=3")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], prefix: list[str],
               log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    probe = [*prefix, sys.executable, "-c",
             f"import socket; socket.create_connection(({host!r}, {port}), 2).close()"]
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited ({proc.returncode}): "
                               + log_path.read_text(errors="replace")[-2000:])
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} not open after {timeout} s")
        time.sleep(0.2)


# -- samebytes ----------------------------------------------------------------------------------


def start_samebytes(run: Path) -> Server:
    s3, nfs = free_port(), free_port()
    log_path = run / "samebytes.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--data", str(run / "samebytes-data"),
             "--s3", f"127.0.0.1:{s3}", "--nfs", f"127.0.0.1:{nfs}",
             "--export", "/:no_root_squash"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=REPO)
    srv = Server("samebytes", "127.0.0.1", nfs, nfs, f"/{BUCKET}", procs=[proc])
    try:
        _wait_port("127.0.0.1", nfs, proc, [], log_path)
        # The bucket through NFS: MNT of / then MKDIR (what S3 CreateBucket also makes).
        SmallClient("127.0.0.1", nfs, nfs, "/").mkdir(BUCKET.encode())
    except Exception:
        srv.stop()
        raise
    return srv


# -- ganesha --------------------------------------------------------------------------------------

GANESHA_CONF = """\
NFS_CORE_PARAM {{
    Protocols = 3;
    NFS_Port = {nfs};
    MNT_Port = {mnt};
    Bind_addr = {addr};
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{ Graceless = true; }}
EXPORT {{
    Export_Id = 1;
    Path = {path};
    Pseudo = {path};
    Protocols = 3;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = WARN; }}
"""


def ganesha_missing() -> str | None:
    need = ["ganesha.nfsd", "rpcbind", "ip"]
    missing = [n for n in need if shutil.which(n) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind iproute2)"
    if os.geteuid() != 0:
        return "needs root (network namespace)"
    return None


def start_ganesha(run: Path) -> Server:
    """rpcbind and ganesha in a fresh network namespace; raises with the reason."""
    ns = ["ip", "netns", "exec", NETNS]
    subprocess.run(["ip", "netns", "add", NETNS], check=True, capture_output=True)
    subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True, capture_output=True)
    subprocess.run(["ip", "-n", NETNS, "addr", "add", f"{NS_ADDR}/32", "dev", "lo"],
                   check=True, capture_output=True)
    export = run / "ganesha-export"
    export.mkdir()
    conf = run / "ganesha.conf"
    conf.write_text(GANESHA_CONF.format(nfs=GANESHA_NFS_PORT, mnt=GANESHA_MOUNT_PORT,
                                        addr=NS_ADDR, path=export))
    srv = Server("ganesha", NS_ADDR, GANESHA_NFS_PORT, GANESHA_MOUNT_PORT, str(export), prefix=ns)
    try:
        rpc_log = run / "rpcbind.log"
        with open(rpc_log, "wb") as f:
            # -f: foreground (a child we can stop); -w: no warm-start files
            srv.procs.append(subprocess.Popen([*ns, "rpcbind", "-f", "-w"], stdout=f, stderr=f,
                                              stdin=subprocess.DEVNULL))
        _wait_port(NS_ADDR, 111, srv.procs[0], ns, rpc_log, timeout=20)
        g_log = run / "ganesha.log"
        (run / "ganesha-recovery").mkdir()
        with open(run / "ganesha.out", "wb") as f:
            srv.procs.append(subprocess.Popen(
                [*ns, "ganesha.nfsd", "-F", "-f", str(conf), "-L", str(g_log),
                 "-p", str(run / "ganesha.pid")], stdout=f, stderr=f, stdin=subprocess.DEVNULL))
        _wait_port(NS_ADDR, GANESHA_NFS_PORT, srv.procs[1], ns, g_log)
        _wait_port(NS_ADDR, GANESHA_MOUNT_PORT, srv.procs[1], ns, g_log)
        # ganesha may answer before the export is ready: poll MNT.
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([*ns, "nfs-ls", srv.url("")], capture_output=True, text=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nfs-ls of the ganesha export failed: {r.stderr[-500:]}")
            time.sleep(0.5)
    except Exception:
        stop_ganesha(srv)
        raise
    return srv


def stop_ganesha(srv: Server) -> None:
    srv.stop()
    subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True)


# -- the small-file client (same for both servers) -------------------------------------------------


class SmallClient:
    """Synchronous NFSv3 over one TCP connection, with the door's codecs (AUTH_SYS root)."""

    def __init__(self, host: str, nfs_port: int, mount_port: int, export: str) -> None:
        from gateway.nfs.rpc import AuthSys, RecordReader
        self._cred = AuthSys(0, b"bench", 0, 0, ())
        self._xids = itertools.count(0x6000_0000)
        self._reader = RecordReader(64 << 20)
        self._pending: list[bytearray] = []
        with self._connect(host, mount_port) as m:
            from gateway.nfs.xdr import Packer
            p = Packer()
            p.pack_string(export.encode())
            body = self._call(m, 100005, 3, 1, p.get_buffer())
            status = body.unpack_uint()
            if status != 0:
                raise RuntimeError(f"MNT {export}: status {status}")
            self.root = body.unpack_opaque(64)
        self._pending.clear()
        self.sock = self._connect(host, nfs_port)

    @staticmethod
    def _connect(host: str, port: int) -> socket.socket:
        s = socket.create_connection((host, port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def _call(self, sock: socket.socket, prog: int, vers: int, proc: int, args: bytes) -> Any:
        from gateway.nfs.rpc import AcceptStat, encode_call, frame, parse_reply
        xid = next(self._xids)
        sock.sendall(frame(encode_call(xid, prog, vers, proc, args, self._cred)))
        while not self._pending:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self._pending += self._reader.feed(data)
        reply = parse_reply(self._pending.pop(0))
        if reply.xid != xid or not reply.accepted or reply.accept_stat != AcceptStat.SUCCESS:
            raise RuntimeError(f"RPC call {prog}/{proc} failed: {reply}")
        return reply.body

    def nfs(self, proc: int, args: Any) -> Any:
        from gateway.nfs import nfs3_types as t
        from gateway.nfs.xdr import Packer
        p = Packer()
        args.pack(p)
        body = self._call(self.sock, 100003, 3, proc, p.get_buffer())
        res = t.RESULTS[proc].unpack(body)
        if res.status != t.NFS3_OK:
            raise RuntimeError(f"NFS procedure {proc}: status {res.status}")
        return res

    def mkdir(self, name: bytes) -> bytes:
        from gateway.nfs import nfs3_types as t
        return self.nfs(t.MKDIR, t.MkdirArgs(t.DirOpArgs3(self.root, name), t.Sattr3(mode=0o755))).object

    def small_files(self, count: int) -> float:
        from gateway.nfs import nfs3_types as t
        d = self.mkdir(f"small-{os.getpid()}-{time.monotonic_ns()}".encode())
        names = [f"f{i:06d}".encode() for i in range(count)]
        t0 = time.perf_counter()
        fhs = [self.nfs(t.CREATE, t.CreateArgs(t.DirOpArgs3(d, n),
                                               t.CreateHow(t.GUARDED, t.Sattr3(mode=0o644)))).object
               for n in names]
        for fh in fhs:
            self.nfs(t.GETATTR, t.FhArgs(fh))
        for n in names:
            self.nfs(t.REMOVE, t.DirOpArgs(t.DirOpArgs3(d, n)))
        return count / (time.perf_counter() - t0)


def _small_files_client(argv: list[str]) -> None:
    host, nfs_port, mount_port, export, count = argv
    rate = SmallClient(host, int(nfs_port), int(mount_port), export).small_files(int(count))
    print(json.dumps({"files_per_s": rate}))


# -- the jobs --------------------------------------------------------------------------------------


def _run(cmd: list[str], timeout: float = 1200) -> None:
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr[-1000:]!r}")


def job_write(srv: Server, src: Path, name: str, size: int) -> float:
    t0 = time.perf_counter()
    _run([*srv.prefix, "nfs-cp", str(src), srv.url(name)])
    return size / MiB / (time.perf_counter() - t0)


def job_read(srv: Server, name: str, size: int) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        r = subprocess.run([*srv.prefix, "nfs-cat", srv.url(name)], stdout=null,
                           stderr=subprocess.PIPE, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"nfs-cat exited {r.returncode}: {r.stderr[-1000:]!r}")
    return size / MiB / (time.perf_counter() - t0)


def job_small(srv: Server, count: int) -> float:
    r = subprocess.run([*srv.prefix, sys.executable, "-m", "bench.nfs", "--small-files-client",
                        srv.host, str(srv.nfs_port), str(srv.mount_port), srv.export, str(count)],
                       capture_output=True, text=True, cwd=REPO, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"small-files client failed: {r.stderr[-1500:]}")
    return float(json.loads(r.stdout)["files_per_s"])


FIGURES: dict[str, tuple[str, str]] = {
    "write": ("MB/s", "nfs-cp (libnfs) of a local file into the export, GUARDED create"),
    "read": ("MB/s", "nfs-cat (libnfs) of the file to /dev/null"),
    "small_files": ("files/s", "CREATE + GETATTR + REMOVE over one connection, each phase over all files"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--small-files-client"]:
        _small_files_client(argv[1:])
        return
    opts = parser("samebytes NFS door benchmark (beside nfs-ganesha, libnfs clients)").parse_args(argv)
    rounds = max(3, opts.rounds or (3 if opts.quick else 5))
    sz = Sizes.pick(opts.quick)
    for tool in ("nfs-cp", "nfs-cat", "nfs-ls"):
        if shutil.which(tool) is None:
            raise SystemExit("bench.nfs needs libnfs-utils (nfs-cp, nfs-cat, nfs-ls)")
    run = make_data_dir(opts.data, "nfs")
    log(f"data dir {run} ({'quick' if opts.quick else 'full'}, {rounds} rounds)")
    t0 = time.perf_counter()
    servers: dict[str, Server] = {}
    peer_skipped = ganesha_missing()
    values: dict[str, dict[str, list[float]]] = {f: {"ganesha": [], "samebytes": []} for f in FIGURES}
    try:
        src = run / "source.bin"
        with open(src, "wb") as f:
            for _ in range(sz.file // MiB):
                f.write(os.urandom(MiB))
        if peer_skipped is None:
            try:
                servers["ganesha"] = start_ganesha(run)
            except Exception as e:  # the peer is optional: say why and go on
                peer_skipped = f"nfs-ganesha did not start: {e}"
        if peer_skipped:
            log(f"peer skipped: {peer_skipped}")
        servers["samebytes"] = start_samebytes(run)
        order = [n for n in ("ganesha", "samebytes") if n in servers]
        for r in range(rounds):
            for n in order:
                srv = servers[n]
                name = f"big-{r}.bin"
                values["write"][n].append(job_write(srv, src, name, sz.file))
                values["read"][n].append(job_read(srv, name, sz.file))
                values["small_files"][n].append(job_small(srv, sz.small_files))
                log(f"round {r + 1}/{rounds} {n}: " + ", ".join(
                    f"{f} {values[f][n][-1]:,.1f}" for f in FIGURES))
                if n == "ganesha":
                    (run / "ganesha-export" / name).unlink(missing_ok=True)
    finally:
        for n, srv in servers.items():
            stop_ganesha(srv) if n == "ganesha" else srv.stop()
        remove_data_dir(run, opts.keep)
    figures: dict[str, Any] = {}
    for name, (unit, what) in FIGURES.items():
        fig = Figure(name, unit, f"samebytes NFS door: {what}", f"nfs-ganesha 4.3 FSAL VFS: {what}")
        fig.samebytes, fig.limit = values[name]["samebytes"], values[name]["ganesha"]
        if peer_skipped:
            fig.extra["peer_skipped"] = peer_skipped
        d = fig.as_dict()
        if name in GOALS:
            d["target"] = {"versus": "ganesha", "at_least": GOALS[name], "ratio": d["ratio"],
                           "met": d["ratio"] is not None and d["ratio"] >= GOALS[name]}
            log(f"target {name}: samebytes {d['samebytes']} vs ganesha {d['limit']} {unit}: "
                f"ratio {d['ratio']} (>= {GOALS[name]}): {'met' if d['target']['met'] else 'NOT met'}")
        figures[name] = d
    emit({
        "benchmark": "nfs",
        "machine": machine_info(run.parent),
        "sizes": {"file_bytes": sz.file, "small_files": sz.small_files},
        "peer": {"name": "nfs-ganesha", "skipped": peer_skipped},
        "figures": figures,
        "total_seconds": round(time.perf_counter() - t0, 1),
    })


if __name__ == "__main__":
    main()
