"""NFS exports: which part of the namespace, to whom, and as whom.

``--export PATH[:OPTIONS]`` (repeatable; default ``/``, the whole namespace; ``/bucket``
is one bucket). OPTIONS, comma-separated:

    rw (default) | ro                       read-write or read-only
    clients=NET[+NET...]                    allowed client networks (default: any);
                                            may also be repeated
    root_squash (default) | no_root_squash  uid 0 becomes the anonymous user, or stays root
    all_squash                              every caller becomes the anonymous user
    anonuid=N, anongid=N                    the anonymous user (default 65534/65534)

Pure: parsing and the per-call rules. The root inode of each export is resolved
against the vfs at start (``Exports.resolve``).
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..vfs.perms import Caller
from .handles import export_id
from .rpc import AuthSys

ANON = 65534
_ANY = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ExportError(ValueError):
    """A malformed --export."""


@dataclass
class Export:
    path: str  # normalized: "/" or "/bucket[/dir...]"
    read_only: bool = False
    clients: tuple[Network, ...] = _ANY
    squash_mode: str = "root"  # "root", "none" or "all"
    anonuid: int = ANON
    anongid: int = ANON
    root_ino: int | None = None  # resolved at start
    id: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.id = export_id(self.path)

    def allows(self, peer: tuple[str, int] | str) -> bool:
        host = peer[0] if isinstance(peer, tuple) else peer
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.clients if net.version == ip.version)

    def squash(self, cred: AuthSys | None) -> Caller:
        """The vfs caller for these credentials under this export's squash rule."""
        anon = Caller(self.anonuid, self.anongid)
        if cred is None or self.squash_mode == "all":
            return anon
        if cred.uid == 0 and self.squash_mode == "root":
            return anon
        return Caller(cred.uid, cred.gid, frozenset(cred.gids) | {cred.gid})

    def groups_text(self) -> list[bytes]:
        """What EXPORT lists as this export's groups (the client networks)."""
        if self.clients == _ANY:
            return [b"*"]
        return [str(n).encode() for n in self.clients]


def _normalize(path: str) -> str:
    if not path.startswith("/"):
        raise ExportError(f"an export path is absolute: {path!r}")
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if any(part in ("..",) for part in norm.split("/")):
        raise ExportError(f"an export path cannot leave the namespace: {path!r}")
    return norm


def parse_export(spec: str) -> Export:
    path, _, opts = spec.partition(":")
    e = Export(_normalize(path))
    nets: list[Network] = []
    for opt in filter(None, (o.strip() for o in opts.split(","))):
        name, eq, value = opt.partition("=")
        if name in ("rw", "ro") and not eq:
            e.read_only = name == "ro"
        elif name == "root_squash" and not eq:
            e.squash_mode = "root" if e.squash_mode != "all" else "all"
        elif name == "no_root_squash" and not eq:
            e.squash_mode = "none" if e.squash_mode != "all" else "all"
        elif name == "all_squash" and not eq:
            e.squash_mode = "all"
        elif name in ("anonuid", "anongid") and eq:
            try:
                n = int(value)
                if not 0 <= n < 1 << 32:
                    raise ValueError
            except ValueError:
                raise ExportError(f"{name} takes a number, got {value!r}") from None
            setattr(e, name, n)
        elif name == "clients" and eq:
            for net in filter(None, value.split("+")):
                try:
                    nets.append(ipaddress.ip_network(net, strict=False))
                except ValueError:
                    raise ExportError(f"not a network: {net!r}") from None
        else:
            raise ExportError(f"unknown export option {opt!r} (see `samebytes serve --help`)")
    if nets:
        e.clients = tuple(nets)
    return e


class Exports:
    """The exports of one server, by path."""

    def __init__(self, exports: list[Export]) -> None:
        by_path: dict[str, Export] = {}
        for e in exports:
            if e.path in by_path:
                raise ExportError(f"{e.path} is exported twice")
            by_path[e.path] = e
        self.by_path = by_path

    @classmethod
    def parse(cls, specs: list[str]) -> Exports:
        return cls([parse_export(s) for s in (specs or ["/"])])

    def __iter__(self) -> Iterator[Export]:
        return iter(self.by_path.values())

    def __len__(self) -> int:
        return len(self.by_path)

    def match(self, path: str) -> tuple[Export, list[str]] | None:
        """The export holding ``path`` (the longest matching one) and the names below it."""
        try:
            norm = _normalize(path)
        except ExportError:
            return None
        parts = [p for p in norm.split("/") if p]
        for cut in range(len(parts), -1, -1):
            e = self.by_path.get("/" + "/".join(parts[:cut]))
            if e is not None:
                return e, parts[cut:]
        return None
