"""NFSv3 (RFC 1813) argument and result structures: pure codecs over xdr.Packer/Unpacker.

Every structure is a dataclass with one codec that packs and unpacks it, so the
server (decode args, encode results) and the test client (the reverse) share one
definition. Results are unions on ``nfsstat3``: one flat dataclass per procedure
whose ``OK_FIELDS`` are sent on NFS3_OK and ``FAIL_FIELDS`` otherwise (fields a
failure does not carry stay None).

Times are nanoseconds since the epoch (nfstime3 is unsigned 32-bit seconds +
nanoseconds). In a sattr3, ``SERVER_TIME`` stands for SET_TO_SERVER_TIME.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .xdr import Packer, Unpacker, XdrError

T = TypeVar("T")

NFS_PROGRAM = 100003
NFS_V3 = 3

FHSIZE3 = 64
COOKIEVERFSIZE = 8
CREATEVERFSIZE = 8
WRITEVERFSIZE = 8
# Longest name or symlink path we decode: larger than any limit we enforce, so an
# over-long name gets NFS3ERR_NAMETOOLONG from the vfs instead of GARBAGE_ARGS.
MAX_NAME_DECODE = 8192
MAX_PATH_DECODE = 65536
# Entries a decoded directory listing may hold (client side; a guard, not a limit).
MAX_DIR_ENTRIES = 1 << 20

# Procedures
NULL, GETATTR, SETATTR, LOOKUP, ACCESS, READLINK, READ, WRITE, CREATE, MKDIR = range(10)
SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK, READDIR, READDIRPLUS = range(10, 18)
FSSTAT, FSINFO, PATHCONF, COMMIT = range(18, 22)

# nfsstat3
NFS3_OK = 0
NFS3ERR_PERM = 1
NFS3ERR_NOENT = 2
NFS3ERR_IO = 5
NFS3ERR_NXIO = 6
NFS3ERR_ACCES = 13
NFS3ERR_EXIST = 17
NFS3ERR_XDEV = 18
NFS3ERR_NODEV = 19
NFS3ERR_NOTDIR = 20
NFS3ERR_ISDIR = 21
NFS3ERR_INVAL = 22
NFS3ERR_FBIG = 27
NFS3ERR_NOSPC = 28
NFS3ERR_ROFS = 30
NFS3ERR_MLINK = 31
NFS3ERR_NAMETOOLONG = 63
NFS3ERR_NOTEMPTY = 66
NFS3ERR_DQUOT = 69
NFS3ERR_STALE = 70
NFS3ERR_REMOTE = 71
NFS3ERR_BADHANDLE = 10001
NFS3ERR_NOT_SYNC = 10002
NFS3ERR_BAD_COOKIE = 10003
NFS3ERR_NOTSUPP = 10004
NFS3ERR_TOOSMALL = 10005
NFS3ERR_SERVERFAULT = 10006
NFS3ERR_BADTYPE = 10007
NFS3ERR_JUKEBOX = 10008

# ftype3
NF3REG, NF3DIR, NF3BLK, NF3CHR, NF3LNK, NF3SOCK, NF3FIFO = range(1, 8)

# ACCESS3 bits
ACCESS3_READ = 0x01
ACCESS3_LOOKUP = 0x02
ACCESS3_MODIFY = 0x04
ACCESS3_EXTEND = 0x08
ACCESS3_DELETE = 0x10
ACCESS3_EXECUTE = 0x20

# stable_how
UNSTABLE, DATA_SYNC, FILE_SYNC = 0, 1, 2
# createmode3
UNCHECKED, GUARDED, EXCLUSIVE = 0, 1, 2
# time_how
DONT_CHANGE, SET_TO_SERVER_TIME, SET_TO_CLIENT_TIME = 0, 1, 2
# FSINFO properties
FSF3_LINK = 0x0001
FSF3_SYMLINK = 0x0002
FSF3_HOMOGENEOUS = 0x0008
FSF3_CANSETTIME = 0x0010

# A sattr3 time meaning "the server's current time" (nfstime3 is unsigned: never -1).
SERVER_TIME = -1

_NS = 1_000_000_000
_U32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    pack: Callable[[Packer, T], None]
    unpack: Callable[[Unpacker], T]


uint32: Codec[int] = Codec(lambda p, v: p.pack_uint(v), lambda u: u.unpack_uint())
uint64: Codec[int] = Codec(lambda p, v: p.pack_uhyper(v), lambda u: u.unpack_uhyper())
boolean: Codec[bool] = Codec(lambda p, v: p.pack_bool(v), lambda u: u.unpack_bool())
nfs_fh3: Codec[bytes] = Codec(lambda p, v: p.pack_opaque(v), lambda u: u.unpack_opaque(FHSIZE3))
filename3: Codec[bytes] = Codec(lambda p, v: p.pack_string(v),
                                lambda u: u.unpack_string(MAX_NAME_DECODE))
nfspath3: Codec[bytes] = Codec(lambda p, v: p.pack_string(v),
                               lambda u: u.unpack_string(MAX_PATH_DECODE))
opaque_data: Codec[bytes] = Codec(lambda p, v: p.pack_opaque(v), lambda u: u.unpack_opaque())


def verifier(n: int) -> Codec[bytes]:
    def pack(p: Packer, v: bytes) -> None:
        if len(v) != n:
            raise XdrError(f"verifier must be {n} bytes, not {len(v)}")
        p.pack_fopaque(n, v)
    return Codec(pack, lambda u: u.unpack_fopaque(n))


verf8 = verifier(8)


def _pack_time(p: Packer, ns: int) -> None:
    sec, nsec = divmod(max(ns, 0), _NS)
    p.pack_uint(min(sec, _U32))
    p.pack_uint(nsec)


def _unpack_time(u: Unpacker) -> int:
    sec = u.unpack_uint()
    nsec = u.unpack_uint()
    if nsec >= _NS:
        raise XdrError(f"nfstime3 nseconds {nsec} out of range")
    return sec * _NS + nsec


nfstime3: Codec[int] = Codec(_pack_time, _unpack_time)


def optional(c: Codec[T]) -> Codec[T | None]:
    """XDR optional-data (and every `union switch (bool)` with one arm)."""
    def pack(p: Packer, v: T | None) -> None:
        if v is None:
            p.pack_bool(False)
        else:
            p.pack_bool(True)
            c.pack(p, v)

    def unpack(u: Unpacker) -> T | None:
        return c.unpack(u) if u.unpack_bool() else None
    return Codec(pack, unpack)


def linked_list(c: Codec[T], max_items: int = MAX_DIR_ENTRIES) -> Codec[list[T]]:
    """`T *next` chains (directory listings): TRUE + item ... FALSE."""
    def pack(p: Packer, items: list[T]) -> None:
        for item in items:
            p.pack_bool(True)
            c.pack(p, item)
        p.pack_bool(False)

    def unpack(u: Unpacker) -> list[T]:
        out: list[T] = []
        while u.unpack_bool():
            if len(out) >= max_items:
                raise XdrError("too many list entries")
            out.append(c.unpack(u))
        return out
    return Codec(pack, unpack)


class Struct:
    """A dataclass whose fields (in declaration order) each name their codec in
    FIELDS; subclasses get `codec()` for free."""

    FIELDS: ClassVar[Sequence[tuple[str, Codec[Any]]]] = ()

    @classmethod
    def codec(cls: type[S]) -> Codec[S]:
        cached = cls.__dict__.get("_CODEC")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        spec = cls.FIELDS

        def pack(p: Packer, v: S) -> None:
            for name, c in spec:
                c.pack(p, getattr(v, name))

        def unpack(u: Unpacker) -> S:
            return cls(**{name: c.unpack(u) for name, c in spec})
        codec = Codec(pack, unpack)
        if spec:  # FIELDS is set after the class body; never cache an empty spec
            setattr(cls, "_CODEC", codec)
        return codec

    def pack(self, p: Packer) -> None:
        type(self).codec().pack(p, self)

    @classmethod
    def unpack(cls: type[S], u: Unpacker) -> S:
        return cls.codec().unpack(u)


S = TypeVar("S", bound=Struct)


def struct_codec(cls: type[S]) -> Codec[S]:
    return cls.codec()


# -- attributes ---------------------------------------------------------------------------

@dataclass(slots=True)
class Fattr3(Struct):
    type: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    used: int
    rdev: tuple[int, int]
    fsid: int
    fileid: int
    atime: int
    mtime: int
    ctime: int


def _pack_spec(p: Packer, v: tuple[int, int]) -> None:
    p.pack_uint(v[0])
    p.pack_uint(v[1])


_specdata3: Codec[tuple[int, int]] = Codec(_pack_spec, lambda u: (u.unpack_uint(), u.unpack_uint()))

Fattr3.FIELDS = (
    ("type", uint32), ("mode", uint32), ("nlink", uint32), ("uid", uint32), ("gid", uint32),
    ("size", uint64), ("used", uint64), ("rdev", _specdata3), ("fsid", uint64),
    ("fileid", uint64), ("atime", nfstime3), ("mtime", nfstime3), ("ctime", nfstime3),
)
fattr3 = Fattr3.codec()
post_op_attr = optional(fattr3)
post_op_fh3 = optional(nfs_fh3)
FATTR3_SIZE = 84  # bytes on the wire


@dataclass(slots=True)
class WccAttr(Struct):
    size: int
    mtime: int
    ctime: int


WccAttr.FIELDS = (("size", uint64), ("mtime", nfstime3), ("ctime", nfstime3))
pre_op_attr = optional(WccAttr.codec())


@dataclass(slots=True)
class WccData(Struct):
    before: WccAttr | None = None
    after: Fattr3 | None = None


WccData.FIELDS = (("before", pre_op_attr), ("after", post_op_attr))
wcc_data = WccData.codec()


def _time_how_codec() -> Codec[int | None]:
    """set_atime/set_mtime: None (DONT_CHANGE), SERVER_TIME, or a client time in ns."""
    def pack(p: Packer, v: int | None) -> None:
        if v is None:
            p.pack_enum(DONT_CHANGE)
        elif v == SERVER_TIME:
            p.pack_enum(SET_TO_SERVER_TIME)
        else:
            p.pack_enum(SET_TO_CLIENT_TIME)
            nfstime3.pack(p, v)

    def unpack(u: Unpacker) -> int | None:
        how = u.unpack_enum()
        if how == DONT_CHANGE:
            return None
        if how == SET_TO_SERVER_TIME:
            return SERVER_TIME
        if how == SET_TO_CLIENT_TIME:
            return nfstime3.unpack(u)
        raise XdrError(f"bad time_how {how}")
    return Codec(pack, unpack)


set_time = _time_how_codec()
opt_u32 = optional(uint32)


@dataclass(slots=True)
class Sattr3(Struct):
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime: int | None = None
    mtime: int | None = None


Sattr3.FIELDS = (("mode", opt_u32), ("uid", opt_u32), ("gid", opt_u32),
                 ("size", optional(uint64)), ("atime", set_time), ("mtime", set_time))
sattr3 = Sattr3.codec()


@dataclass(slots=True)
class DirOpArgs3(Struct):
    dir: bytes
    name: bytes


DirOpArgs3.FIELDS = (("dir", nfs_fh3), ("name", filename3))
diropargs3 = DirOpArgs3.codec()


# -- arguments ------------------------------------------------------------------------------

@dataclass(slots=True)
class FhArgs(Struct):
    """GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF: one file handle."""
    object: bytes


FhArgs.FIELDS = (("object", nfs_fh3),)


@dataclass(slots=True)
class SetattrArgs(Struct):
    object: bytes
    new_attributes: Sattr3
    guard: int | None = None  # obj_ctime the client expects (sattrguard3)


SetattrArgs.FIELDS = (("object", nfs_fh3), ("new_attributes", sattr3),
                      ("guard", optional(nfstime3)))


@dataclass(slots=True)
class DirOpArgs(Struct):
    """LOOKUP, REMOVE, RMDIR: one diropargs3."""
    what: DirOpArgs3


DirOpArgs.FIELDS = (("what", diropargs3),)


@dataclass(slots=True)
class AccessArgs(Struct):
    object: bytes
    access: int


AccessArgs.FIELDS = (("object", nfs_fh3), ("access", uint32))


@dataclass(slots=True)
class ReadArgs(Struct):
    file: bytes
    offset: int
    count: int


ReadArgs.FIELDS = (("file", nfs_fh3), ("offset", uint64), ("count", uint32))


@dataclass(slots=True)
class WriteArgs(Struct):
    file: bytes
    offset: int
    count: int
    stable: int
    data: bytes


def _stable_how() -> Codec[int]:
    def unpack(u: Unpacker) -> int:
        v = u.unpack_enum()
        if v not in (UNSTABLE, DATA_SYNC, FILE_SYNC):
            raise XdrError(f"bad stable_how {v}")
        return v
    return Codec(lambda p, v: p.pack_enum(v), unpack)


stable_how = _stable_how()
WriteArgs.FIELDS = (("file", nfs_fh3), ("offset", uint64), ("count", uint32),
                    ("stable", stable_how), ("data", opaque_data))


@dataclass(slots=True)
class CreateHow(Struct):
    mode: int  # UNCHECKED, GUARDED or EXCLUSIVE
    attributes: Sattr3 | None = None  # UNCHECKED, GUARDED
    verf: bytes | None = None          # EXCLUSIVE


def _createhow() -> Codec[CreateHow]:
    def pack(p: Packer, v: CreateHow) -> None:
        p.pack_enum(v.mode)
        if v.mode == EXCLUSIVE:
            verf8.pack(p, v.verf or bytes(8))
        else:
            sattr3.pack(p, v.attributes or Sattr3())

    def unpack(u: Unpacker) -> CreateHow:
        mode = u.unpack_enum()
        if mode in (UNCHECKED, GUARDED):
            return CreateHow(mode, attributes=sattr3.unpack(u))
        if mode == EXCLUSIVE:
            return CreateHow(mode, verf=verf8.unpack(u))
        raise XdrError(f"bad createmode3 {mode}")
    return Codec(pack, unpack)


createhow3 = _createhow()


@dataclass(slots=True)
class CreateArgs(Struct):
    where: DirOpArgs3
    how: CreateHow


CreateArgs.FIELDS = (("where", diropargs3), ("how", createhow3))


@dataclass(slots=True)
class MkdirArgs(Struct):
    where: DirOpArgs3
    attributes: Sattr3


MkdirArgs.FIELDS = (("where", diropargs3), ("attributes", sattr3))


@dataclass(slots=True)
class SymlinkArgs(Struct):
    where: DirOpArgs3
    attributes: Sattr3
    data: bytes


SymlinkArgs.FIELDS = (("where", diropargs3), ("attributes", sattr3), ("data", nfspath3))


@dataclass(slots=True)
class MknodData(Struct):
    type: int
    attributes: Sattr3 | None = None  # CHR, BLK, SOCK, FIFO
    spec: tuple[int, int] | None = None  # CHR, BLK


def _mknoddata() -> Codec[MknodData]:
    def pack(p: Packer, v: MknodData) -> None:
        p.pack_enum(v.type)
        if v.type in (NF3CHR, NF3BLK, NF3SOCK, NF3FIFO):
            sattr3.pack(p, v.attributes or Sattr3())
        if v.type in (NF3CHR, NF3BLK):
            _specdata3.pack(p, v.spec or (0, 0))

    def unpack(u: Unpacker) -> MknodData:
        t = u.unpack_enum()
        if t in (NF3CHR, NF3BLK):
            return MknodData(t, sattr3.unpack(u), _specdata3.unpack(u))
        if t in (NF3SOCK, NF3FIFO):
            return MknodData(t, sattr3.unpack(u))
        if t in (NF3REG, NF3DIR, NF3LNK):
            return MknodData(t)
        raise XdrError(f"bad ftype3 {t}")
    return Codec(pack, unpack)


mknoddata3 = _mknoddata()


@dataclass(slots=True)
class MknodArgs(Struct):
    where: DirOpArgs3
    what: MknodData


MknodArgs.FIELDS = (("where", diropargs3), ("what", mknoddata3))


@dataclass(slots=True)
class RenameArgs(Struct):
    from_: DirOpArgs3
    to: DirOpArgs3


RenameArgs.FIELDS = (("from_", diropargs3), ("to", diropargs3))


@dataclass(slots=True)
class LinkArgs(Struct):
    file: bytes
    link: DirOpArgs3


LinkArgs.FIELDS = (("file", nfs_fh3), ("link", diropargs3))


@dataclass(slots=True)
class ReaddirArgs(Struct):
    dir: bytes
    cookie: int
    cookieverf: bytes
    count: int


ReaddirArgs.FIELDS = (("dir", nfs_fh3), ("cookie", uint64), ("cookieverf", verf8),
                      ("count", uint32))


@dataclass(slots=True)
class ReaddirplusArgs(Struct):
    dir: bytes
    cookie: int
    cookieverf: bytes
    dircount: int
    maxcount: int


ReaddirplusArgs.FIELDS = (("dir", nfs_fh3), ("cookie", uint64), ("cookieverf", verf8),
                          ("dircount", uint32), ("maxcount", uint32))


@dataclass(slots=True)
class CommitArgs(Struct):
    file: bytes
    offset: int
    count: int


CommitArgs.FIELDS = (("file", nfs_fh3), ("offset", uint64), ("count", uint32))


# -- results ------------------------------------------------------------------------------

class Result:
    """A `union switch (nfsstat3 status)`: OK_FIELDS on NFS3_OK, else FAIL_FIELDS."""

    OK_FIELDS: ClassVar[Sequence[tuple[str, Codec[Any]]]] = ()
    FAIL_FIELDS: ClassVar[Sequence[tuple[str, Codec[Any]]]] = ()
    status: int

    if TYPE_CHECKING:  # each subclass is a dataclass with these keywords
        def __init__(self, status: int, **fields: Any) -> None: ...

    def pack(self, p: Packer) -> None:
        p.pack_enum(self.status)
        for name, c in self.OK_FIELDS if self.status == NFS3_OK else self.FAIL_FIELDS:
            c.pack(p, getattr(self, name))

    @classmethod
    def unpack(cls: type[R], u: Unpacker) -> R:
        status = u.unpack_enum()
        spec = cls.OK_FIELDS if status == NFS3_OK else cls.FAIL_FIELDS
        return cls(status=status, **{name: c.unpack(u) for name, c in spec})

    def pieces(self) -> list[bytes | bytearray]:
        """The packed result as buffers to send in order (one, unless a subclass can
        keep a large payload out of the packer)."""
        p = Packer()
        self.pack(p)
        return [p.get_bytearray()]

    def to_bytes(self) -> bytes:
        p = Packer()
        self.pack(p)
        return p.get_buffer()


R = TypeVar("R", bound=Result)


@dataclass(slots=True)
class GetattrRes(Result):
    status: int
    attributes: Fattr3 | None = None


GetattrRes.OK_FIELDS = (("attributes", fattr3),)


@dataclass(slots=True)
class WccRes(Result):
    """SETATTR, REMOVE, RMDIR: wcc_data either way."""
    status: int
    wcc: WccData = field(default_factory=WccData)


WccRes.OK_FIELDS = WccRes.FAIL_FIELDS = (("wcc", wcc_data),)


@dataclass(slots=True)
class LookupRes(Result):
    status: int
    object: bytes | None = None
    obj_attributes: Fattr3 | None = None
    dir_attributes: Fattr3 | None = None


LookupRes.OK_FIELDS = (("object", nfs_fh3), ("obj_attributes", post_op_attr),
                       ("dir_attributes", post_op_attr))
LookupRes.FAIL_FIELDS = (("dir_attributes", post_op_attr),)


@dataclass(slots=True)
class AccessRes(Result):
    status: int
    obj_attributes: Fattr3 | None = None
    access: int | None = None


AccessRes.OK_FIELDS = (("obj_attributes", post_op_attr), ("access", uint32))
AccessRes.FAIL_FIELDS = (("obj_attributes", post_op_attr),)


@dataclass(slots=True)
class ReadlinkRes(Result):
    status: int
    attributes: Fattr3 | None = None
    data: bytes | None = None


ReadlinkRes.OK_FIELDS = (("attributes", post_op_attr), ("data", nfspath3))
ReadlinkRes.FAIL_FIELDS = (("attributes", post_op_attr),)


@dataclass(slots=True)
class ReadRes(Result):
    status: int
    attributes: Fattr3 | None = None
    count: int | None = None
    eof: bool | None = None
    data: bytes | bytearray | None = None

    def pieces(self) -> list[bytes | bytearray]:
        # The data goes out as its own buffer (transport.writelines): copying up to
        # 1 MiB into the packer was a tenth of a READ's cost.
        if self.status != NFS3_OK or not self.data:
            return Result.pieces(self)
        p = Packer()
        p.pack_enum(self.status)
        post_op_attr.pack(p, self.attributes)
        p.pack_uint(self.count or 0)
        p.pack_bool(bool(self.eof))
        n = len(self.data)
        p.pack_uint(n)
        return [p.get_bytearray(), self.data, _ZEROS[n & 3]]


ReadRes.OK_FIELDS = (("attributes", post_op_attr), ("count", uint32), ("eof", boolean),
                     ("data", opaque_data))
ReadRes.FAIL_FIELDS = (("attributes", post_op_attr),)
_ZEROS = (b"", b"\0\0\0", b"\0\0", b"\0")  # XDR padding, indexed by len % 4




@dataclass(slots=True)
class WriteRes(Result):
    status: int
    wcc: WccData = field(default_factory=WccData)
    count: int | None = None
    committed: int | None = None
    verf: bytes | None = None


WriteRes.OK_FIELDS = (("wcc", wcc_data), ("count", uint32), ("committed", stable_how),
                      ("verf", verf8))
WriteRes.FAIL_FIELDS = (("wcc", wcc_data),)


@dataclass(slots=True)
class CreateRes(Result):
    """CREATE, MKDIR, SYMLINK, MKNOD."""
    status: int
    object: bytes | None = None
    attributes: Fattr3 | None = None
    dir_wcc: WccData = field(default_factory=WccData)


CreateRes.OK_FIELDS = (("object", post_op_fh3), ("attributes", post_op_attr),
                       ("dir_wcc", wcc_data))
CreateRes.FAIL_FIELDS = (("dir_wcc", wcc_data),)


@dataclass(slots=True)
class RenameRes(Result):
    status: int
    fromdir_wcc: WccData = field(default_factory=WccData)
    todir_wcc: WccData = field(default_factory=WccData)


RenameRes.OK_FIELDS = RenameRes.FAIL_FIELDS = (("fromdir_wcc", wcc_data),
                                               ("todir_wcc", wcc_data))


@dataclass(slots=True)
class LinkRes(Result):
    status: int
    attributes: Fattr3 | None = None
    linkdir_wcc: WccData = field(default_factory=WccData)


LinkRes.OK_FIELDS = LinkRes.FAIL_FIELDS = (("attributes", post_op_attr),
                                           ("linkdir_wcc", wcc_data))


@dataclass(slots=True)
class Entry3(Struct):
    fileid: int
    name: bytes
    cookie: int


Entry3.FIELDS = (("fileid", uint64), ("name", filename3), ("cookie", uint64))


@dataclass(slots=True)
class EntryPlus3(Struct):
    fileid: int
    name: bytes
    cookie: int
    attributes: Fattr3 | None = None
    handle: bytes | None = None


EntryPlus3.FIELDS = (("fileid", uint64), ("name", filename3), ("cookie", uint64),
                     ("attributes", post_op_attr), ("handle", post_op_fh3))


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def entry3_size(name_len: int) -> int:
    """Bytes an entry3 takes in a listing, its value_follows word included."""
    return 4 + 8 + 4 + _pad4(name_len) + 8


def entryplus3_size(name_len: int, has_attrs: bool, handle_len: int | None) -> int:
    n = entry3_size(name_len) + 4 + (FATTR3_SIZE if has_attrs else 0) + 4
    return n + (4 + _pad4(handle_len) if handle_len is not None else 0)


# READDIR3resok / READDIRPLUS3resok without entries: dir_attributes (present),
# cookieverf, the final value_follows FALSE and eof.
READDIR_RESOK_OVERHEAD = 4 + FATTR3_SIZE + COOKIEVERFSIZE + 4 + 4


@dataclass(slots=True)
class ReaddirRes(Result):
    status: int
    dir_attributes: Fattr3 | None = None
    cookieverf: bytes | None = None
    entries: list[Entry3] | None = None
    eof: bool | None = None


ReaddirRes.OK_FIELDS = (("dir_attributes", post_op_attr), ("cookieverf", verf8),
                        ("entries", linked_list(Entry3.codec())), ("eof", boolean))
ReaddirRes.FAIL_FIELDS = (("dir_attributes", post_op_attr),)


@dataclass(slots=True)
class ReaddirplusRes(Result):
    status: int
    dir_attributes: Fattr3 | None = None
    cookieverf: bytes | None = None
    entries: list[EntryPlus3] | None = None
    eof: bool | None = None


ReaddirplusRes.OK_FIELDS = (("dir_attributes", post_op_attr), ("cookieverf", verf8),
                            ("entries", linked_list(EntryPlus3.codec())), ("eof", boolean))
ReaddirplusRes.FAIL_FIELDS = (("dir_attributes", post_op_attr),)


@dataclass(slots=True)
class FsstatRes(Result):
    status: int
    attributes: Fattr3 | None = None
    tbytes: int | None = None
    fbytes: int | None = None
    abytes: int | None = None
    tfiles: int | None = None
    ffiles: int | None = None
    afiles: int | None = None
    invarsec: int | None = None


FsstatRes.OK_FIELDS = (("attributes", post_op_attr), ("tbytes", uint64), ("fbytes", uint64),
                       ("abytes", uint64), ("tfiles", uint64), ("ffiles", uint64),
                       ("afiles", uint64), ("invarsec", uint32))
FsstatRes.FAIL_FIELDS = (("attributes", post_op_attr),)


@dataclass(slots=True)
class FsinfoRes(Result):
    status: int
    attributes: Fattr3 | None = None
    rtmax: int | None = None
    rtpref: int | None = None
    rtmult: int | None = None
    wtmax: int | None = None
    wtpref: int | None = None
    wtmult: int | None = None
    dtpref: int | None = None
    maxfilesize: int | None = None
    time_delta: int | None = None
    properties: int | None = None


FsinfoRes.OK_FIELDS = (("attributes", post_op_attr), ("rtmax", uint32), ("rtpref", uint32),
                       ("rtmult", uint32), ("wtmax", uint32), ("wtpref", uint32),
                       ("wtmult", uint32), ("dtpref", uint32), ("maxfilesize", uint64),
                       ("time_delta", nfstime3), ("properties", uint32))
FsinfoRes.FAIL_FIELDS = (("attributes", post_op_attr),)


@dataclass(slots=True)
class PathconfRes(Result):
    status: int
    attributes: Fattr3 | None = None
    linkmax: int | None = None
    name_max: int | None = None
    no_trunc: bool | None = None
    chown_restricted: bool | None = None
    case_insensitive: bool | None = None
    case_preserving: bool | None = None


PathconfRes.OK_FIELDS = (("attributes", post_op_attr), ("linkmax", uint32),
                         ("name_max", uint32), ("no_trunc", boolean),
                         ("chown_restricted", boolean), ("case_insensitive", boolean),
                         ("case_preserving", boolean))
PathconfRes.FAIL_FIELDS = (("attributes", post_op_attr),)


@dataclass(slots=True)
class CommitRes(Result):
    status: int
    wcc: WccData = field(default_factory=WccData)
    verf: bytes | None = None


CommitRes.OK_FIELDS = (("wcc", wcc_data), ("verf", verf8))
CommitRes.FAIL_FIELDS = (("wcc", wcc_data),)


# Each procedure's argument and result types, for the server's dispatch and the client.
ARGS: dict[int, type[Struct] | None] = {
    NULL: None, GETATTR: FhArgs, SETATTR: SetattrArgs, LOOKUP: DirOpArgs, ACCESS: AccessArgs,
    READLINK: FhArgs, READ: ReadArgs, WRITE: WriteArgs, CREATE: CreateArgs, MKDIR: MkdirArgs,
    SYMLINK: SymlinkArgs, MKNOD: MknodArgs, REMOVE: DirOpArgs, RMDIR: DirOpArgs,
    RENAME: RenameArgs, LINK: LinkArgs, READDIR: ReaddirArgs, READDIRPLUS: ReaddirplusArgs,
    FSSTAT: FhArgs, FSINFO: FhArgs, PATHCONF: FhArgs, COMMIT: CommitArgs,
}
RESULTS: dict[int, type[Result] | None] = {
    NULL: None, GETATTR: GetattrRes, SETATTR: WccRes, LOOKUP: LookupRes, ACCESS: AccessRes,
    READLINK: ReadlinkRes, READ: ReadRes, WRITE: WriteRes, CREATE: CreateRes, MKDIR: CreateRes,
    SYMLINK: CreateRes, MKNOD: CreateRes, REMOVE: WccRes, RMDIR: WccRes, RENAME: RenameRes,
    LINK: LinkRes, READDIR: ReaddirRes, READDIRPLUS: ReaddirplusRes, FSSTAT: FsstatRes,
    FSINFO: FsinfoRes, PATHCONF: PathconfRes, COMMIT: CommitRes,
}


def decode_args(cls: type[S], u: Unpacker) -> S:
    """Arguments of one call; trailing bytes are garbage (XdrError)."""
    v = cls.unpack(u)
    u.done()
    return v


def result_fields(cls: type[Result]) -> list[str]:
    return [f.name for f in fields(cls)]  # type: ignore[arg-type]
