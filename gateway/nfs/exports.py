"""NFS exports: which part of the namespace, to whom, and as whom. Pure.

`--export PATH[:OPTIONS]`, repeatable; without any, one export `/` (the whole
namespace). `/bucket` exports one bucket; a deeper path exports a folder.
OPTIONS, comma separated:

    rw | ro                    read-write (default) or read-only
    clients=NET[,NET...]       allowed client networks (default: everyone); bare
                               networks after clients= continue its list, e.g.
                               clients=127.0.0.1/32,10.0.0.0/8 (or NET+NET)
    root_squash (default)      uid 0 (and gid 0) become anonuid/anongid
    no_root_squash             root stays root
    all_squash                 every caller becomes anonuid/anongid
    anonuid=N, anongid=N       the anonymous ids (default 65534)

AUTH_NONE callers are always anonymous.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from metadata import ROOT_INO

from ..vfs.perms import Caller
from .handles import export_id
from .rpc import AuthSys

ANON_ID = 65534
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ExportError(ValueError):
    """An --export value that does not parse."""


def normalize(path: str | bytes) -> str:
    """'/a//b/' -> '/a/b'; '' -> '/'. Refuses '.', '..' and NUL."""
    if isinstance(path, bytes):
        try:
            path = path.decode()
        except UnicodeDecodeError as e:
            raise ExportError("path is not UTF-8") from e
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise ExportError(f"path {path!r} has '.', '..' or NUL")
    return "/" + "/".join(parts)


@dataclass
class Export:
    path: str
    read_only: bool = False
    clients: tuple[IpNetwork, ...] = ()  # empty = everyone
    root_squash: bool = True
    all_squash: bool = False
    anonuid: int = ANON_ID
    anongid: int = ANON_ID
    # Set by the server once the path is resolved in the namespace (it may be a
    # bucket created later); the NFS procedures never walk above it.
    root_ino: int = 0
    export_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.path = normalize(self.path)
        self.export_id = export_id(self.path)
        if self.path == "/" and not self.root_ino:
            self.root_ino = ROOT_INO

    @property
    def segments(self) -> list[bytes]:
        return [p.encode() for p in self.path.split("/") if p]

    def allows(self, peer: str | tuple[str, int] | tuple[str, int, int, int]) -> bool:
        """May a client at this address use the export?"""
        if not self.clients:
            return True
        host = peer if isinstance(peer, str) else peer[0]
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.clients)

    def squash(self, cred: AuthSys | None) -> Caller:
        """The vfs caller for these credentials under this export's rules."""
        anon = Caller(self.anonuid, self.anongid)
        if cred is None or self.all_squash:
            return anon
        if self.root_squash:
            uid = self.anonuid if cred.uid == 0 else cred.uid
            gid = self.anongid if cred.gid == 0 else cred.gid
            groups = frozenset(self.anongid if g == 0 else g for g in cred.gids)
            return Caller(uid, gid, groups)
        return Caller(cred.uid, cred.gid, frozenset(cred.gids))

    def options(self) -> str:
        opts = ["ro" if self.read_only else "rw"]
        if self.all_squash:
            opts.append("all_squash")
        elif not self.root_squash:
            opts.append("no_root_squash")
        if self.clients:
            opts.append("clients=" + ",".join(str(n) for n in self.clients))
        return ",".join(opts)


def _id(name: str, value: str) -> int:
    if not value.isdigit() or int(value) > 0xFFFF_FFFF:
        raise ExportError(f"{name} must be a number, got {value!r}")
    return int(value)


def parse_export(spec: str) -> Export:
    """'PATH[:OPTIONS]' -> Export (see the module docstring)."""
    path, _, opts = spec.partition(":")
    if not path.startswith("/"):
        raise ExportError(f"export path must start with '/': {spec!r}")
    e = Export(path)
    in_clients = False
    for raw in opts.split(",") if opts else ():
        opt = raw.strip()
        name, eq, value = opt.partition("=")
        if not eq and in_clients and opt and opt[0].isalnum() and opt not in _FLAGS:
            value, name = opt, "clients"
        else:
            in_clients = False
        if name == "clients":
            in_clients = True
            for net in value.split("+"):
                try:
                    e.clients += (ipaddress.ip_network(net.strip(), strict=False),)
                except ValueError as err:
                    raise ExportError(f"bad client network {net!r}") from err
        elif eq and name == "anonuid":
            e.anonuid = _id(name, value)
        elif eq and name == "anongid":
            e.anongid = _id(name, value)
        elif not eq and opt in _FLAGS:
            _FLAGS[opt](e)
        else:
            raise ExportError(f"unknown export option {opt!r} in {spec!r}")
    return e


def _set(**kw: bool) -> Callable[[Export], None]:
    def apply(e: Export) -> None:
        for k, v in kw.items():
            setattr(e, k, v)
    return apply


_FLAGS = {
    "rw": _set(read_only=False), "ro": _set(read_only=True),
    "root_squash": _set(root_squash=True, all_squash=False),
    "no_root_squash": _set(root_squash=False, all_squash=False),
    "all_squash": _set(all_squash=True),
}


class Exports:
    """The exports served, in the order given."""

    def __init__(self, exports: Iterable[Export]) -> None:
        self.exports = list(exports) or [Export("/")]
        seen: set[str] = set()
        for e in self.exports:
            if e.path in seen:
                raise ExportError(f"{e.path} exported twice")
            seen.add(e.path)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Exports:
        return cls(parse_export(s) for s in specs)

    def __iter__(self) -> Iterator[Export]:
        return iter(self.exports)

    def __len__(self) -> int:
        return len(self.exports)

    def match(self, path: str | bytes) -> tuple[Export, list[bytes]] | None:
        """The export holding path (the longest one) and the segments below its root."""
        p = normalize(path)
        best: Export | None = None
        for e in self.exports:
            if p == e.path or e.path == "/" or p.startswith(e.path + "/"):
                if best is None or len(e.path) > len(best.path):
                    best = e
        if best is None:
            return None
        rest = p[len(best.path):] if best.path != "/" else p
        return best, [s.encode() for s in rest.split("/") if s]
