"""Gateway settings: command-line flags, each also settable from the environment.

Precedence: flag, then SAMEBYTES_* variable, then the default. Root credentials
come from SAMEBYTES_ACCESS_KEY / SAMEBYTES_SECRET_KEY or, when unset on first
start, are generated once and kept in DATA/credentials.json (mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = "./samebytes-data"
DEFAULT_S3 = "127.0.0.1:9000"
CREDENTIALS_FILE = "credentials.json"


def env(name: str, default: str) -> str:
    return os.environ.get(f"SAMEBYTES_{name}", default)


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_size(value: str) -> int:
    """'4MiB', '64k', '1048576' -> bytes."""
    v = value.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    for suffix, m in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if v.endswith(suffix):
            v, mult = v[:-1], m
            break
    return int(v) * mult


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    generated: bool = False


def _random(n: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_credentials() -> Credentials:
    """A fresh key pair shaped like AWS's (20-character id, 40-character secret)."""
    return Credentials("SB" + _random(18, string.ascii_uppercase + string.digits),
                       _random(40, string.ascii_letters + string.digits), generated=True)


def root_credentials(data_dir: Path) -> Credentials:
    """From the environment, else from the data folder, else generated and saved."""
    ak, sk = os.environ.get("SAMEBYTES_ACCESS_KEY"), os.environ.get("SAMEBYTES_SECRET_KEY")
    if ak and sk:
        return Credentials(ak, sk)
    if bool(ak) != bool(sk):
        raise ValueError("set both SAMEBYTES_ACCESS_KEY and SAMEBYTES_SECRET_KEY, or neither")
    path = data_dir / CREDENTIALS_FILE
    try:
        saved = json.loads(path.read_text())
        return Credentials(saved["access_key"], saved["secret_key"])
    except FileNotFoundError:
        pass
    creds = new_credentials()
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return creds
