"""OpenStack Swift with the s3api middleware, started for a benchmark and stopped after it.

Debian 12's packages (swift, swift-proxy, swift-account, swift-container, swift-object,
python3-swift; memcached beside them) run from a temporary directory, nothing installed
system-wide is read or changed:

* one ring each for accounts, containers and objects (``swift-ring-builder create 10 1 1``:
  2^10 partitions, one replica), one device on 127.0.0.1 whose directory lies inside the
  run directory (the benchmark puts that on the same file system as samebytes' data);
* account, container and object servers, ``workers = 0`` (one process each, no fork),
  ``mount_check = false``; the object server fsyncs every object before acknowledging it
  (Swift's default, durable like samebytes);
* a proxy with ``s3api`` before ``tempauth`` (the keystone-less setup of Swift's s3api
  docs): the S3 access key is ``account:user`` of one tempauth user, the secret its key;
* memcached on its own port when installed (tempauth and the proxy's account/container
  info cache use it; without it the proxy asks the backends on every request).

No replicator, updater or auditor daemons: with one replica there is nothing to replicate.

The Swift programs are Python 3 programs from Debian: they run under ``/usr/bin/python3``
(never this benchmark's virtualenv), through a small launcher that points Swift at the
run directory's ``swift.conf`` (Swift's servers otherwise read ``/etc/swift/swift.conf``).

    peer = start(run_dir)          # raises SwiftUnavailable (why) or RuntimeError (log tail)
    ... boto3 against peer.endpoint with peer.access_key / peer.secret_key ...
    peer.stop()

``SwiftPeer`` has the surface of ``bench.s3.Server`` (name, port, endpoint, info, cpu,
check_alive, stop, log_tail), so bench/s3.py measures it like its other peers.
"""

from __future__ import annotations

import http.client
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import free_port, proc_cpu_times

SWIFT_PYTHON = "/usr/bin/python3"
PACKAGES = "swift swift-proxy swift-account swift-container swift-object python3-swift memcached"
SERVERS = ("account", "container", "object")
PART_POWER = 10
DEVICE = "d1"
ACCOUNT, USER = "bench", "bench"

# Runs a Swift server script with utils.SWIFT_CONF_FILE pointing at our swift.conf:
# swift's servers never call set_swift_dir themselves, and storage policies and
# constraints are read from the file at import time, so both are reloaded here.
LAUNCHER = """\
import runpy, sys
from swift.common import constraints, storage_policy, utils
utils.set_swift_dir(sys.argv[1])
storage_policy.reload_storage_policies()
constraints.reload_constraints()
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

SWIFT_CONF = """\
[swift-hash]
swift_hash_path_suffix = {suffix}
swift_hash_path_prefix = {prefix}

[storage-policy:0]
name = Policy-0
default = yes
"""

BACKEND_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {etc}
devices = {devices}
mount_check = false
log_name = {name}-server
log_level = WARNING
recon_cache_path = {run}

[pipeline:main]
pipeline = {name}-server

[app:{name}-server]
use = egg:swift#{name}
"""

PROXY_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {etc}
log_name = proxy-server
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_{account}_{user_name} = {secret} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""


class SwiftUnavailable(LookupError):
    """Swift cannot run on this machine (a package is missing); str() says why."""


def missing() -> str | None:
    """Why Swift cannot be started here, or None when every program is installed."""
    need = [f"swift-{s}-server" for s in (*SERVERS, "proxy")] + ["swift-ring-builder"]
    absent = [p for p in need if shutil.which(p) is None]
    if not os.access(SWIFT_PYTHON, os.X_OK):
        absent.append(SWIFT_PYTHON)
    if absent:
        return (f"OpenStack Swift not installed ({', '.join(absent)} missing): "
                f"apt-get install {PACKAGES}")
    return None


def swift_version() -> str | None:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "swift"],
                       capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def _swift_env() -> dict[str, str]:
    """This environment without the virtualenv's Python settings (Debian's python3 must
    import Debian's swift, eventlet and friends, not the venv's packages)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    bin_dir = str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if p != bin_dir)
    return env


@dataclass
class SwiftPeer:
    """A running Swift + s3api: the proxy, three backend servers and memcached."""

    root: Path
    port: int
    access_key: str
    secret_key: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    name: str = "swift"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "proxy.log"

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds: (user, system) summed over every Swift process (and memcached), and
        user + system of the proxy's main thread (eventlet runs every request there)."""
        user = system = 0.0
        for p in self.procs.values():
            u, s = proc_cpu_times(p.pid)
            user, system = user + u, system + s
        proxy = self.procs["proxy"].pid
        return user, system, sum(proc_cpu_times(proxy, proxy))

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"swift {name} exited ({p.returncode}): "
                                   f"{self.log_tail(name=name)}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM every process (proxy first), wait, kill what is left; the proxy's exit."""
        for name in ("proxy", *SERVERS, "memcached"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        proxy = self.procs.get("proxy")
        return proxy.returncode if proxy is not None else None

    def log_tail(self, n: int = 3000, name: str | None = None) -> str:
        names = [name] if name else ["proxy", *SERVERS]
        out = []
        for nm in names:
            try:
                text = (self.root / f"{nm}.log").read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                out.append(f"--- {nm}.log\n{text[-n:]}")
        return "\n".join(out)[-n:]


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_swift_env(),
                       timeout=120)
    # swift-ring-builder exits 1 for warnings (e.g. a one-device ring "is not balanced").
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout} {r.stderr}")


def _build_rings(etc: Path, ports: dict[str, int]) -> None:
    for server in SERVERS:
        builder = f"{server}.builder"
        _run(["swift-ring-builder", builder, "create", str(PART_POWER), "1", "1"], etc)
        _run(["swift-ring-builder", builder, "add",
              f"r1z1-127.0.0.1:{ports[server]}/{DEVICE}", "1"], etc)
        _run(["swift-ring-builder", builder, "rebalance"], etc)
        if not (etc / f"{server}.ring.gz").is_file():
            raise RuntimeError(f"swift-ring-builder wrote no {server}.ring.gz in {etc}")


def _popen(cmd: list[str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as logf:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                cwd=cwd, env=_swift_env())


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait(peer: SwiftPeer, what: str, ready: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        peer.check_alive()
        try:
            if ready():
                return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"swift: {what} not ready after {timeout} s (last: {last!r}): "
                       f"{peer.log_tail()}")


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthcheck")
        r = conn.getresponse()
        return r.status == 200 and r.read() == b"OK"
    finally:
        conn.close()


def _s3_answers(peer: SwiftPeer) -> bool:
    """A signed ListBuckets succeeds (proxy, tempauth, memcache and account server work)."""
    import boto3  # the benchmark's own client library
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url=peer.endpoint, aws_access_key_id=peer.access_key,
                      aws_secret_access_key=peer.secret_key, region_name="us-east-1",
                      config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                                    s3={"addressing_style": "path"}))
    try:
        s3.list_buckets()
        return True
    except Exception as e:  # botocore errors while the backends come up
        if "Connect" in type(e).__name__ or "Endpoint" in type(e).__name__:
            return False
        # A 5xx while the account server starts: try again; anything else is final.
        status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status is not None and status >= 500:
            return False
        raise RuntimeError(f"swift s3api refused ListBuckets: {e!r}") from e


def start(root: Path, timeout: float = 60) -> SwiftPeer:
    """Swift + s3api under root (created; the object device lives in root/srv/d1)."""
    why = missing()
    if why is not None:
        raise SwiftUnavailable(why)
    etc, devices, run = root / "etc", root / "srv", root / "run"
    for d in (etc, devices / DEVICE, run):
        d.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in (*SERVERS, "proxy", "memcached")}
    user = pwd.getpwuid(os.getuid()).pw_name
    peer = SwiftPeer(root, ports["proxy"], f"{ACCOUNT}:{USER}", secrets.token_hex(20))
    (etc / "swift.conf").write_text(SWIFT_CONF.format(suffix=secrets.token_hex(8),
                                                      prefix=secrets.token_hex(8)))
    _build_rings(etc, ports)
    launcher = etc / "launch.py"
    launcher.write_text(LAUNCHER)
    confs = {name: BACKEND_CONF.format(port=ports[name], user=user, etc=etc, devices=devices,
                                       name=name, run=run) for name in SERVERS}
    confs["proxy"] = PROXY_CONF.format(port=ports["proxy"], user=user, etc=etc, account=ACCOUNT,
                                       user_name=USER, secret=peer.secret_key,
                                       memcache_port=ports["memcached"])
    memcached = shutil.which("memcached")
    try:
        if memcached:
            peer.procs["memcached"] = _popen(
                [memcached, "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0",
                 "-m", "64", "-t", "1", "-u", user], root / "memcached.log", root)
        for name in (*SERVERS, "proxy"):
            conf = etc / f"{name}-server.conf"
            conf.write_text(confs[name])
            program = shutil.which(f"swift-{name}-server")
            assert program is not None  # checked by missing()
            # -v: log to stderr too (our log file), not only to syslog.
            peer.procs[name] = _popen([SWIFT_PYTHON, str(launcher), str(etc), program,
                                       str(conf), "-v"], root / f"{name}.log", root)
        for name, port in ports.items():
            if name != "memcached" or memcached:
                _wait(peer, f"{name} on port {port}", lambda p=port: _listening(p), timeout)
        _wait(peer, "proxy /healthcheck", lambda: _healthy(peer.port), timeout)
        _wait(peer, "S3 ListBuckets", lambda: _s3_answers(peer), timeout)
    except BaseException:
        peer.stop()
        raise
    peer.info = {
        "version": swift_version(),
        "command": "swift-{account,container,object,proxy}-server CONF -v under /usr/bin/python3"
                   + (", memcached" if memcached else ""),
        "config": "one ring per server type (part power 10, 1 replica, one device on the data "
                  "directory's file system), workers = 0 (one process per server), "
                  "mount_check = false; proxy pipeline: catch_errors gatekeeper healthcheck "
                  "proxy-logging cache listing_formats s3api tempauth copy slo dlo "
                  "proxy-logging proxy-server; objects fsync'd before the reply (Swift's "
                  "default); no replicator/updater/auditor daemons"
                  + ("" if memcached else "; memcached not installed: no info cache"),
        "cpu": "all Swift processes and memcached summed; main thread = the proxy's",
    }
    return peer
