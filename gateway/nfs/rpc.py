"""ONC RPC version 2 (RFC 5531) messages and TCP record marking. Pure, no I/O.

Server side: `parse_call` turns one record into an RpcCall (or raises a typed
error that says whether a reply is possible), `dispatch` routes it to a
Program's procedure and always returns a complete reply message, and
`RecordReader` cuts a byte stream into records. Client side (tests, and any
tool that speaks to the gateway): `encode_call` and `parse_reply`.

Record marking (RFC 5531 section 11): each fragment starts with a 4-byte
big-endian word, top bit = last fragment of the record, low 31 bits = length.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum

from .xdr import Packer, Unpacker, XdrError

log = logging.getLogger("samebytes.nfs")

RPC_VERSION = 2

# A WRITE carries up to 1 MiB of data (FSINFO wtmax) plus the RPC and NFS headers
# (AUTH_SYS credential up to ~500 bytes, handles, offsets): 64 KiB of headroom.
# Anything larger is not a call we would accept, so it is refused as it arrives,
# before it is buffered.
MAX_RECORD = (1 << 20) + (64 << 10)
# opaque_auth bodies are at most 400 bytes (RFC 5531 section 8.2).
MAX_AUTH_BYTES = 400
# authsys_parms: machinename<255>, gids<16> (RFC 5531 appendix A).
MAX_MACHINE_NAME = 255
MAX_AUTH_GIDS = 16

_U32 = struct.Struct(">I")
LAST_FRAGMENT = 0x8000_0000


class MsgType(IntEnum):
    CALL = 0
    REPLY = 1


class ReplyStat(IntEnum):
    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(IntEnum):
    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(IntEnum):
    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthStat(IntEnum):
    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5


class AuthFlavor(IntEnum):
    AUTH_NONE = 0
    AUTH_SYS = 1
    AUTH_SHORT = 2
    AUTH_DH = 3
    RPCSEC_GSS = 6


# -- errors --------------------------------------------------------------------------

class RpcError(Exception):
    """Base of the typed RPC errors."""


class RecordTooLarge(RpcError):
    """A record would exceed the limit: the connection must be closed."""


class BadMessage(RpcError):
    """Not a call we can even answer (no xid, or a REPLY sent to us): drop it."""


class Rejected(RpcError):
    """The call is refused before dispatch; `reply` is the complete reply message."""

    def __init__(self, reply: bytes, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply


class GarbageArgs(Exception):
    """Raised by a procedure whose arguments do not decode: GARBAGE_ARGS reply."""


# -- the dispatch contract -----------------------------------------------------------

Body = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class AuthSys:
    """AUTH_SYS credentials, exactly as the client sent them (not yet squashed)."""

    stamp: int
    machinename: bytes
    uid: int
    gid: int
    gids: tuple[int, ...] = ()


@dataclass(slots=True)
class RpcCall:
    xid: int
    prog: int
    vers: int
    proc: int
    cred: AuthSys | None  # None = AUTH_NONE
    args: Unpacker  # positioned at the procedure's arguments
    peer: tuple[str, int] = ("", 0)  # client address


# Returns the packed result body, as one buffer or as buffers to send in order.
Procedure = Callable[[RpcCall], Awaitable[Body | list[Body]]]


@dataclass
class Program:
    prog: int
    low: int  # version range served
    high: int
    procedures: dict[tuple[int, int], Procedure] = field(default_factory=dict)  # (vers, proc)


# -- replies -------------------------------------------------------------------------

_NULL_VERF = b"\0\0\0\0\0\0\0\0"  # AUTH_NONE flavor, empty body


def _accepted_head(xid: int, stat: AcceptStat) -> Packer:
    p = Packer()
    p.pack_uint(xid)
    p.pack_enum(MsgType.REPLY)
    p.pack_enum(ReplyStat.MSG_ACCEPTED)
    p.pack_raw(_NULL_VERF)
    p.pack_enum(stat)
    return p


def success_head(xid: int) -> bytes:
    """The reply header of a successful call; the result body follows it."""
    return _accepted_head(xid, AcceptStat.SUCCESS).get_buffer()


def success_reply(xid: int, body: Body) -> bytes:
    return success_head(xid) + bytes(body)


def accept_error(xid: int, stat: AcceptStat) -> bytes:
    """PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS or SYSTEM_ERR (no body)."""
    assert stat not in (AcceptStat.SUCCESS, AcceptStat.PROG_MISMATCH)
    return _accepted_head(xid, stat).get_buffer()


def prog_mismatch(xid: int, low: int, high: int) -> bytes:
    p = _accepted_head(xid, AcceptStat.PROG_MISMATCH)
    p.pack_uint(low)
    p.pack_uint(high)
    return p.get_buffer()


def _denied_head(xid: int, stat: RejectStat) -> Packer:
    p = Packer()
    p.pack_uint(xid)
    p.pack_enum(MsgType.REPLY)
    p.pack_enum(ReplyStat.MSG_DENIED)
    p.pack_enum(stat)
    return p


def rpc_mismatch(xid: int, low: int = RPC_VERSION, high: int = RPC_VERSION) -> bytes:
    p = _denied_head(xid, RejectStat.RPC_MISMATCH)
    p.pack_uint(low)
    p.pack_uint(high)
    return p.get_buffer()


def auth_error(xid: int, stat: AuthStat) -> bytes:
    p = _denied_head(xid, RejectStat.AUTH_ERROR)
    p.pack_enum(stat)
    return p.get_buffer()


# -- parsing calls -------------------------------------------------------------------

def _parse_auth_sys(body: bytes) -> AuthSys:
    u = Unpacker(body)
    stamp = u.unpack_uint()
    machine = u.unpack_string(MAX_MACHINE_NAME)
    uid = u.unpack_uint()
    gid = u.unpack_uint()
    gids = u.unpack_array(u.unpack_uint, MAX_AUTH_GIDS)
    u.done()
    return AuthSys(stamp, machine, uid, gid, tuple(gids))


def parse_call(record: Body, peer: tuple[str, int] = ("", 0)) -> RpcCall:
    """Decode a CALL message up to its arguments.

    Raises BadMessage when no reply can be sent (truncated before the xid, or not
    a CALL) and Rejected (carrying the reply) for RPC_MISMATCH and AUTH_ERROR.
    """
    u = Unpacker(record)
    try:
        xid = u.unpack_uint()
        mtype = u.unpack_enum()
    except XdrError as e:
        raise BadMessage(f"record too short for an RPC header: {e}") from e
    if mtype != MsgType.CALL:
        raise BadMessage(f"message type {mtype} is not a CALL")
    try:
        rpcvers = u.unpack_uint()
        if rpcvers != RPC_VERSION:
            raise Rejected(rpc_mismatch(xid), f"RPC version {rpcvers}")
        prog = u.unpack_uint()
        vers = u.unpack_uint()
        proc = u.unpack_uint()
        flavor = u.unpack_enum()
        cred_body = u.unpack_opaque(MAX_AUTH_BYTES)
        u.unpack_enum()  # verifier flavor: AUTH_NONE/AUTH_SYS send an empty one; ignored
        u.unpack_opaque(MAX_AUTH_BYTES)
    except XdrError as e:
        # The header is cut short or a length lies: the credential is unusable.
        raise Rejected(auth_error(xid, AuthStat.AUTH_BADCRED), f"bad call header: {e}") from e
    cred: AuthSys | None
    if flavor == AuthFlavor.AUTH_NONE:
        cred = None
    elif flavor == AuthFlavor.AUTH_SYS:
        try:
            cred = _parse_auth_sys(cred_body)
        except XdrError as e:
            raise Rejected(auth_error(xid, AuthStat.AUTH_BADCRED), f"bad AUTH_SYS: {e}") from e
    elif flavor in (AuthFlavor.AUTH_DH, AuthFlavor.RPCSEC_GSS):
        # Known, stronger flavors we do not implement: tell the client to use AUTH_SYS.
        raise Rejected(auth_error(xid, AuthStat.AUTH_TOOWEAK), f"flavor {flavor} not served")
    else:
        # AUTH_SHORT (we never hand out short handles) and unknown flavors.
        raise Rejected(auth_error(xid, AuthStat.AUTH_BADCRED), f"unknown flavor {flavor}")
    return RpcCall(xid, prog, vers, proc, cred, u, peer)


# -- dispatch ------------------------------------------------------------------------

class Registry:
    """The programs served on one port, keyed by program number."""

    def __init__(self, programs: list[Program] | None = None) -> None:
        self.programs: dict[int, Program] = {}
        for p in programs or ():
            self.add(p)

    def add(self, program: Program) -> None:
        self.programs[program.prog] = program

    async def dispatch(self, call: RpcCall) -> list[Body]:
        """Run the call; always return the complete reply (header, body) as pieces.

        Never raises (except CancelledError): a procedure's XdrError or GarbageArgs
        becomes GARBAGE_ARGS, anything else SYSTEM_ERR and a log line.
        """
        program = self.programs.get(call.prog)
        if program is None:
            return [accept_error(call.xid, AcceptStat.PROG_UNAVAIL)]
        if not program.low <= call.vers <= program.high:
            return [prog_mismatch(call.xid, program.low, program.high)]
        handler = program.procedures.get((call.vers, call.proc))
        if handler is None:
            return [accept_error(call.xid, AcceptStat.PROC_UNAVAIL)]
        try:
            body = await handler(call)
        except (XdrError, GarbageArgs) as e:
            log.debug("garbage args from %s for %d/%d/%d: %s", call.peer, call.prog,
                      call.vers, call.proc, e)
            return [accept_error(call.xid, AcceptStat.GARBAGE_ARGS)]
        except Exception:
            log.exception("procedure %d/%d/%d failed (xid %#x from %s)", call.prog,
                          call.vers, call.proc, call.xid, call.peer)
            return [accept_error(call.xid, AcceptStat.SYSTEM_ERR)]
        if isinstance(body, list):
            return [success_head(call.xid), *body]
        return [success_head(call.xid), body]


# -- record marking ------------------------------------------------------------------

def record_mark(length: int, last: bool = True) -> bytes:
    if not 0 <= length < LAST_FRAGMENT:
        raise ValueError(f"fragment length {length} out of range")
    return _U32.pack(length | (LAST_FRAGMENT if last else 0))


def frame(reply: Body) -> bytes:
    """One record of one fragment."""
    return record_mark(len(reply)) + bytes(reply)


class RecordReader:
    """Sans-IO record-marking decoder: feed bytes, get back complete records.

    A record whose fragments add up to more than max_record raises RecordTooLarge
    as soon as the fragment header says so, before its bytes are buffered. Each
    fragment is copied once, into a buffer of its announced size (a 1 MiB WRITE
    arrives in many reads; appending and slicing a stream buffer copied it twice).
    """

    __slots__ = ("max_record", "_head", "_frag", "_filled", "_frags", "_size", "_last")

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self.max_record = max_record
        self._head = bytearray()  # a fragment header split across feeds
        self._frag: bytearray | None = None  # the fragment being filled
        self._filled = 0
        self._frags: list[bytearray] = []  # completed fragments of the current record
        self._size = 0  # bytes in _frags
        self._last = False

    @property
    def buffered(self) -> int:
        """Bytes held for incomplete records."""
        return len(self._head) + self._filled + self._size

    @property
    def in_record(self) -> bool:
        """True when a record has started but is not complete."""
        return bool(self._head) or bool(self._frags) or self._frag is not None

    def feed(self, data: Body) -> list[bytearray]:
        view = data if isinstance(data, memoryview) else memoryview(data)
        pos, end = 0, len(view)
        out: list[bytearray] = []
        while True:
            frag = self._frag
            if frag is None:
                if pos == end:
                    break
                if self._head or end - pos < 4:
                    take = min(4 - len(self._head), end - pos)
                    self._head += view[pos:pos + take]
                    pos += take
                    if len(self._head) < 4:
                        break
                    (word,) = _U32.unpack_from(self._head, 0)
                    self._head.clear()
                else:
                    (word,) = _U32.unpack_from(view, pos)
                    pos += 4
                self._last = bool(word & LAST_FRAGMENT)
                want = word & ~LAST_FRAGMENT
                if self._size + want > self.max_record:
                    raise RecordTooLarge(
                        f"record of at least {self._size + want} bytes exceeds {self.max_record}")
                frag = self._frag = bytearray(want)
                self._filled = 0
            take = min(len(frag) - self._filled, end - pos)
            if take:
                frag[self._filled:self._filled + take] = view[pos:pos + take]
                self._filled += take
                pos += take
            if self._filled < len(frag):
                break
            self._frag = None
            self._filled = 0
            if not self._last:
                self._frags.append(frag)
                self._size += len(frag)
                continue
            if self._frags:
                self._frags.append(frag)
                frag = bytearray().join(self._frags)
                self._frags.clear()
                self._size = 0
            out.append(frag)
        return out


# -- client side ---------------------------------------------------------------------

def encode_call(xid: int, prog: int, vers: int, proc: int, args: Body = b"",
                cred: AuthSys | None = None, rpcvers: int = RPC_VERSION) -> bytes:
    """A CALL message (unframed) with AUTH_SYS (cred) or AUTH_NONE (None)."""
    p = Packer()
    p.pack_uint(xid)
    p.pack_enum(MsgType.CALL)
    p.pack_uint(rpcvers)
    p.pack_uint(prog)
    p.pack_uint(vers)
    p.pack_uint(proc)
    if cred is None:
        p.pack_raw(_NULL_VERF)
    else:
        c = Packer()
        c.pack_uint(cred.stamp)
        c.pack_string(cred.machinename)
        c.pack_uint(cred.uid)
        c.pack_uint(cred.gid)
        c.pack_array(cred.gids, c.pack_uint)
        p.pack_enum(AuthFlavor.AUTH_SYS)
        p.pack_opaque(c.get_buffer())
    p.pack_raw(_NULL_VERF)
    p.pack_raw(args)
    return p.get_buffer()


@dataclass(slots=True)
class Reply:
    """A decoded REPLY: `accepted` with `accept_stat` (and `body` on SUCCESS), or
    denied with `reject_stat` (`mismatch` or `auth_stat`)."""

    xid: int
    accepted: bool
    accept_stat: AcceptStat | None = None
    reject_stat: RejectStat | None = None
    auth_stat: AuthStat | None = None
    mismatch: tuple[int, int] | None = None  # (low, high) for PROG_ and RPC_MISMATCH
    body: Unpacker | None = None  # positioned at the results on SUCCESS


def parse_reply(record: Body) -> Reply:
    """Decode a REPLY message; raises XdrError when malformed."""
    try:
        return _parse_reply(Unpacker(record))
    except XdrError:
        raise
    except ValueError as e:  # a status outside its enum
        raise XdrError(str(e)) from e


def _parse_reply(u: Unpacker) -> Reply:
    xid = u.unpack_uint()
    if u.unpack_enum() != MsgType.REPLY:
        raise XdrError("not a REPLY")
    stat = u.unpack_enum()
    if stat == ReplyStat.MSG_ACCEPTED:
        u.unpack_enum()
        u.unpack_opaque(MAX_AUTH_BYTES)
        astat = AcceptStat(u.unpack_enum())
        r = Reply(xid, True, accept_stat=astat)
        if astat == AcceptStat.SUCCESS:
            r.body = u
        elif astat == AcceptStat.PROG_MISMATCH:
            r.mismatch = (u.unpack_uint(), u.unpack_uint())
        return r
    if stat == ReplyStat.MSG_DENIED:
        rstat = RejectStat(u.unpack_enum())
        r = Reply(xid, False, reject_stat=rstat)
        if rstat == RejectStat.RPC_MISMATCH:
            r.mismatch = (u.unpack_uint(), u.unpack_uint())
        else:
            r.auth_stat = AuthStat(u.unpack_enum())
        return r
    raise XdrError(f"reply stat {stat}")
