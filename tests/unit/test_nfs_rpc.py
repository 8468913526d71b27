"""ONC RPC messages and record marking, without sockets."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.nfs.rpc import (
    MAX_RECORD, AcceptStat, AuthStat, AuthSys, BadMessage, GarbageArgs, Program, RecordReader,
    RecordTooLarge, Registry, Rejected, RejectStat, RpcCall, encode_call, frame, parse_call,
    parse_reply, record_mark,
)
from gateway.nfs.xdr import Packer, XdrError

CRED = AuthSys(7, b"client.example", 1000, 100, (100, 4, 27))


def test_call_with_auth_sys_round_trips() -> None:
    call = parse_call(encode_call(0x1234, 100003, 3, 1, b"\0\0\0\x2a", CRED), ("10.0.0.1", 900))
    assert (call.xid, call.prog, call.vers, call.proc) == (0x1234, 100003, 3, 1)
    assert call.cred == CRED and call.peer == ("10.0.0.1", 900)
    assert call.args.unpack_uint() == 42
    call.args.done()


def test_call_with_auth_none_has_no_credentials() -> None:
    assert parse_call(encode_call(1, 100005, 3, 0)).cred is None


def test_wrong_rpc_version_is_answered_with_rpc_mismatch() -> None:
    with pytest.raises(Rejected) as e:
        parse_call(encode_call(9, 100003, 3, 0, rpcvers=3))
    r = parse_reply(e.value.reply)
    assert (r.xid, r.accepted, r.reject_stat, r.mismatch) == (9, False, RejectStat.RPC_MISMATCH, (2, 2))


def _with_flavor(flavor: int, body: bytes) -> bytes:
    p = Packer()
    for v in (5, 0, 2, 100003, 3, 0, flavor):
        p.pack_uint(v)
    p.pack_opaque(body)
    p.pack_uint(0); p.pack_opaque(b"")
    return p.get_buffer()


@pytest.mark.parametrize("flavor, body, stat", [
    (6, b"gss", AuthStat.AUTH_TOOWEAK),  # RPCSEC_GSS
    (3, b"dh", AuthStat.AUTH_TOOWEAK),
    (2, b"short", AuthStat.AUTH_BADCRED),
    (77, b"", AuthStat.AUTH_BADCRED),
    (1, b"\0\0\0\1", AuthStat.AUTH_BADCRED),  # truncated AUTH_SYS
    (1, struct.pack(">II", 0, 256) + b"x" * 256 + bytes(12), AuthStat.AUTH_BADCRED),  # long name
    (1, struct.pack(">IIIII", 0, 0, 0, 0, 17) + bytes(68), AuthStat.AUTH_BADCRED),  # 17 gids
])
def test_unusable_credentials_are_answered_with_auth_error(flavor: int, body: bytes,
                                                           stat: AuthStat) -> None:
    with pytest.raises(Rejected) as e:
        parse_call(_with_flavor(flavor, body))
    r = parse_reply(e.value.reply)
    assert (r.xid, r.reject_stat, r.auth_stat) == (5, RejectStat.AUTH_ERROR, stat)


@pytest.mark.parametrize("record", [b"", b"\0\0\0\1", b"\0\0\0\1\0\0\0\1"])
def test_records_without_a_call_header_cannot_be_answered(record: bytes) -> None:
    with pytest.raises(BadMessage):
        parse_call(record)


@given(st.binary(max_size=200))
def test_random_records_parse_or_raise_a_typed_error(data: bytes) -> None:
    try:
        parse_call(data)
    except (BadMessage, Rejected):
        pass


async def _dispatch(reg: Registry, prog: int, vers: int, proc: int) -> bytes:
    pieces = await reg.dispatch(parse_call(encode_call(3, prog, vers, proc)))
    return b"".join(bytes(p) for p in pieces)


async def _ok(call: RpcCall) -> bytes:
    return b"\0\0\0\1"


async def _garbage(call: RpcCall) -> bytes:
    call.args.unpack_uint()  # no arguments were sent
    return b""


async def _bad(call: RpcCall) -> bytes:
    raise GarbageArgs("nope")


async def _boom(call: RpcCall) -> bytes:
    raise RuntimeError("bug")


def test_dispatch_maps_every_outcome_to_its_reply() -> None:
    reg = Registry([Program(100003, 3, 3, {(3, 0): _ok, (3, 1): _garbage, (3, 2): _bad,
                                           (3, 3): _boom})])

    async def run() -> None:
        r = parse_reply(await _dispatch(reg, 100003, 3, 0))
        assert r.accept_stat == AcceptStat.SUCCESS and r.body and r.body.unpack_uint() == 1
        assert parse_reply(await _dispatch(reg, 100003, 3, 1)).accept_stat == AcceptStat.GARBAGE_ARGS
        assert parse_reply(await _dispatch(reg, 100003, 3, 2)).accept_stat == AcceptStat.GARBAGE_ARGS
        assert parse_reply(await _dispatch(reg, 100003, 3, 3)).accept_stat == AcceptStat.SYSTEM_ERR
        assert parse_reply(await _dispatch(reg, 100003, 3, 99)).accept_stat == AcceptStat.PROC_UNAVAIL
        r = parse_reply(await _dispatch(reg, 100003, 4, 0))
        assert (r.accept_stat, r.mismatch) == (AcceptStat.PROG_MISMATCH, (3, 3))
        assert parse_reply(await _dispatch(reg, 100021, 4, 0)).accept_stat == AcceptStat.PROG_UNAVAIL

    asyncio.run(run())


@given(st.lists(st.binary(max_size=50), max_size=5), st.integers(1, 7), st.data())
def test_record_reader_reassembles_fragments_fed_in_any_pieces(
        records: list[bytes], step: int, data: st.DataObject) -> None:
    stream = b""
    for rec in records:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(rec)), max_size=3)))
        bounds = [0, *cuts, len(rec)]
        for i in range(len(bounds) - 1):
            frag = rec[bounds[i]:bounds[i + 1]]
            stream += record_mark(len(frag), last=i == len(bounds) - 2) + frag
    reader = RecordReader()
    got: list[bytes] = []
    for i in range(0, len(stream), step):
        got += reader.feed(stream[i:i + step])
    assert got == records
    assert not reader.in_record


def test_a_huge_fragment_header_is_refused_before_any_body_arrives() -> None:
    reader = RecordReader()
    with pytest.raises(RecordTooLarge):
        reader.feed(record_mark(0x7FFF_FFFF, last=True))


def test_fragments_adding_up_past_the_limit_are_refused() -> None:
    reader = RecordReader(max_record=100)
    reader.feed(record_mark(60, last=False) + bytes(60))
    with pytest.raises(RecordTooLarge):
        reader.feed(record_mark(60, last=True))


def test_a_full_size_write_fits_the_default_limit() -> None:
    assert RecordReader().feed(frame(bytes((1 << 20) + 1000))) != []
    assert MAX_RECORD > (1 << 20) + 1000


def test_parse_reply_refuses_malformed_replies() -> None:
    with pytest.raises(XdrError):
        parse_reply(b"\0\0\0\1\0\0\0\1\0\0\0\7")
