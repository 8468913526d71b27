"""NFSv3 argument/result codecs (RFC 1813): round trips, exact sizes, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.nfs import nfs3_types as t
from gateway.nfs.xdr import Packer, Unpacker, XdrError

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
fh = st.binary(min_size=1, max_size=t.FHSIZE3)
name = st.binary(min_size=1, max_size=300)
verf = st.binary(min_size=8, max_size=8)
ns_time = st.builds(lambda s, n: s * 1_000_000_000 + n, u32, st.integers(0, 999_999_999))
fattr = st.builds(t.Fattr3, u32, u32, u32, u32, u32, u64, u64, st.tuples(u32, u32), u64, u64,
                  ns_time, ns_time, ns_time)
wcc = st.builds(t.WccData, st.none() | st.builds(t.WccAttr, u64, ns_time, ns_time),
                st.none() | fattr)
set_time = st.none() | st.just(t.SERVER_TIME) | ns_time
sattr = st.builds(t.Sattr3, st.none() | u32, st.none() | u32, st.none() | u32,
                  st.none() | u64, set_time, set_time)
dirop = st.builds(t.DirOpArgs3, fh, name)
createhow = (st.builds(t.CreateHow, st.sampled_from([t.UNCHECKED, t.GUARDED]), sattr)
             | st.builds(lambda v: t.CreateHow(t.EXCLUSIVE, verf=v), verf))
mknod = (st.builds(t.MknodData, st.sampled_from([t.NF3CHR, t.NF3BLK]), sattr, st.tuples(u32, u32))
         | st.builds(t.MknodData, st.sampled_from([t.NF3SOCK, t.NF3FIFO]), sattr)
         | st.builds(t.MknodData, st.sampled_from([t.NF3REG, t.NF3DIR, t.NF3LNK])))

ARGS = {
    t.FhArgs: st.builds(t.FhArgs, fh),
    t.SetattrArgs: st.builds(t.SetattrArgs, fh, sattr, st.none() | ns_time),
    t.DirOpArgs: st.builds(t.DirOpArgs, dirop),
    t.AccessArgs: st.builds(t.AccessArgs, fh, u32),
    t.ReadArgs: st.builds(t.ReadArgs, fh, u64, u32),
    t.WriteArgs: st.builds(lambda f, o, s, d: t.WriteArgs(f, o, len(d), s, d), fh, u64,
                           st.sampled_from([t.UNSTABLE, t.DATA_SYNC, t.FILE_SYNC]), st.binary()),
    t.CreateArgs: st.builds(t.CreateArgs, dirop, createhow),
    t.MkdirArgs: st.builds(t.MkdirArgs, dirop, sattr),
    t.SymlinkArgs: st.builds(t.SymlinkArgs, dirop, sattr, st.binary(min_size=1, max_size=200)),
    t.MknodArgs: st.builds(t.MknodArgs, dirop, mknod),
    t.RenameArgs: st.builds(t.RenameArgs, dirop, dirop),
    t.LinkArgs: st.builds(t.LinkArgs, fh, dirop),
    t.ReaddirArgs: st.builds(t.ReaddirArgs, fh, u64, verf, u32),
    t.ReaddirplusArgs: st.builds(t.ReaddirplusArgs, fh, u64, verf, u32, u32),
    t.CommitArgs: st.builds(t.CommitArgs, fh, u64, u32),
}

status = st.sampled_from([t.NFS3_OK, t.NFS3ERR_NOENT, t.NFS3ERR_STALE, t.NFS3ERR_JUKEBOX])
entry = st.builds(t.Entry3, u64, name, u64)
entryplus = st.builds(t.EntryPlus3, u64, name, u64, st.none() | fattr, st.none() | fh)
opt_fattr = st.none() | fattr


def res(cls: type[t.Result], **ok: st.SearchStrategy[object]) -> st.SearchStrategy[t.Result]:
    """A result with every field its arm sends drawn, the others None/default."""
    def build(s: int, draw: dict[str, object]) -> t.Result:
        names = {n for n, _ in (cls.OK_FIELDS if s == t.NFS3_OK else cls.FAIL_FIELDS)}
        return cls(status=s, **{k: v for k, v in draw.items() if k in names})
    return st.builds(build, status, st.fixed_dictionaries(ok))


RESULTS = [
    res(t.GetattrRes, attributes=fattr),
    res(t.WccRes, wcc=wcc),
    res(t.LookupRes, object=fh, obj_attributes=opt_fattr, dir_attributes=opt_fattr),
    res(t.AccessRes, obj_attributes=opt_fattr, access=u32),
    res(t.ReadlinkRes, attributes=opt_fattr, data=st.binary(max_size=100)),
    res(t.ReadRes, attributes=opt_fattr, count=u32, eof=st.booleans(), data=st.binary()),
    res(t.WriteRes, wcc=wcc, count=u32, committed=st.sampled_from([0, 1, 2]), verf=verf),
    res(t.CreateRes, object=st.none() | fh, attributes=opt_fattr, dir_wcc=wcc),
    res(t.RenameRes, fromdir_wcc=wcc, todir_wcc=wcc),
    res(t.LinkRes, attributes=opt_fattr, linkdir_wcc=wcc),
    res(t.ReaddirRes, dir_attributes=opt_fattr, cookieverf=verf, entries=st.lists(entry, max_size=5),
        eof=st.booleans()),
    res(t.ReaddirplusRes, dir_attributes=opt_fattr, cookieverf=verf,
        entries=st.lists(entryplus, max_size=5), eof=st.booleans()),
    res(t.FsstatRes, attributes=opt_fattr, tbytes=u64, fbytes=u64, abytes=u64, tfiles=u64,
        ffiles=u64, afiles=u64, invarsec=u32),
    res(t.FsinfoRes, attributes=opt_fattr, rtmax=u32, rtpref=u32, rtmult=u32, wtmax=u32,
        wtpref=u32, wtmult=u32, dtpref=u32, maxfilesize=u64, time_delta=ns_time, properties=u32),
    res(t.PathconfRes, attributes=opt_fattr, linkmax=u32, name_max=u32, no_trunc=st.booleans(),
        chown_restricted=st.booleans(), case_insensitive=st.booleans(),
        case_preserving=st.booleans()),
    res(t.CommitRes, wcc=wcc, verf=verf),
]


def packed(v: t.Struct | t.Result) -> bytes:
    p = Packer()
    v.pack(p)
    return p.get_buffer()


@pytest.mark.parametrize("cls", list(ARGS), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_argument_structure_round_trips(cls: type[t.Struct], data: st.DataObject) -> None:
    value = data.draw(ARGS[cls])
    wire = packed(value)
    assert len(wire) % 4 == 0
    assert t.decode_args(cls, Unpacker(wire)) == value


@pytest.mark.parametrize("strategy", RESULTS, ids=lambda s: str(s)[:40])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_result_structure_round_trips(strategy: st.SearchStrategy[t.Result],
                                            data: st.DataObject) -> None:
    value = data.draw(strategy)
    u = Unpacker(value.to_bytes())
    assert type(value).unpack(u) == value
    assert u.remaining() == 0


def test_every_procedure_names_its_argument_and_result_types() -> None:
    assert set(t.ARGS) == set(t.RESULTS) == set(range(22))


@settings(max_examples=100, deadline=None)
@given(st.lists(entryplus, min_size=1, max_size=3))
def test_entry_sizes_are_exactly_what_the_entries_take_on_the_wire(entries: list[t.EntryPlus3]) -> None:
    empty = t.ReaddirplusRes(t.NFS3_OK, None, b"v" * 8, [], True).to_bytes()
    full = t.ReaddirplusRes(t.NFS3_OK, None, b"v" * 8, entries, True).to_bytes()
    expect = sum(t.entryplus3_size(len(e.name), e.attributes is not None,
                                   None if e.handle is None else len(e.handle)) for e in entries)
    assert len(full) - len(empty) == expect
    plain = [t.Entry3(e.fileid, e.name, e.cookie) for e in entries]
    full = t.ReaddirRes(t.NFS3_OK, None, b"v" * 8, plain, True).to_bytes()
    empty = t.ReaddirRes(t.NFS3_OK, None, b"v" * 8, [], True).to_bytes()
    assert len(full) - len(empty) == sum(t.entry3_size(len(e.name)) for e in entries)


def test_resok_overhead_is_the_size_of_an_empty_listing_with_attributes() -> None:
    f = t.Fattr3(1, 0o644, 1, 0, 0, 0, 0, (0, 0), 1, 2, 0, 0, 0)
    wire = t.ReaddirRes(t.NFS3_OK, f, b"v" * 8, [], True).to_bytes()
    assert len(wire) - 4 == t.READDIR_RESOK_OVERHEAD  # the status word is not in the resok


def test_times_keep_their_nanoseconds() -> None:
    s = t.Sattr3(atime=1_700_000_000_123_456_789, mtime=t.SERVER_TIME)
    assert t.Sattr3.unpack(Unpacker(packed(s))) == s


def _create_args(mode: int) -> bytes:
    p = Packer()
    t.DirOpArgs3(b"h", b"n").pack(p)
    p.pack_enum(mode)
    return p.get_buffer()


@pytest.mark.parametrize("wire", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x00\x00\x00", id="truncated-length"),
    pytest.param(b"\x00\x00\x00\x41" + b"x" * 68, id="handle-over-64-bytes"),
    pytest.param(b"\x00\x00\x00\x04abcd\x00\x00\x00", id="missing-name"),
    pytest.param(b"\x00\x00\x00\x04abcd\xff\xff\xff\xf0", id="lying-name-length"),
])
def test_malformed_lookup_arguments_raise_xdr_errors(wire: bytes) -> None:
    with pytest.raises(XdrError):
        t.decode_args(t.DirOpArgs, Unpacker(wire))


def test_trailing_bytes_after_the_arguments_are_garbage() -> None:
    wire = packed(t.FhArgs(b"abcd")) + b"\x00\x00\x00\x00"
    with pytest.raises(XdrError):
        t.decode_args(t.FhArgs, Unpacker(wire))


@pytest.mark.parametrize("wire", [
    pytest.param(_create_args(3) + bytes(8), id="bad-createmode"),
    pytest.param(_create_args(t.EXCLUSIVE) + b"1234", id="short-verifier"),
    pytest.param(_create_args(t.GUARDED) + b"\x00\x00\x00\x02", id="bool-that-is-2"),
])
def test_bad_unions_raise_xdr_errors(wire: bytes) -> None:
    with pytest.raises(XdrError):
        t.decode_args(t.CreateArgs, Unpacker(wire))


def test_bad_enums_in_write_sattr_and_mknod_raise_xdr_errors() -> None:
    w = Packer()
    t.WriteArgs(b"h", 0, 0, 0, b"").pack(w)
    bad = bytearray(w.get_buffer())
    bad[4 + 4 + 8 + 4:4 + 4 + 8 + 4 + 4] = (7).to_bytes(4, "big")  # stable_how 7
    with pytest.raises(XdrError):
        t.decode_args(t.WriteArgs, Unpacker(bytes(bad)))
    s = Packer()
    for _ in range(5):
        s.pack_bool(False)
    s.pack_enum(9)  # time_how 9
    with pytest.raises(XdrError):
        t.Sattr3.unpack(Unpacker(s.get_buffer()))
    m = Packer()
    t.DirOpArgs3(b"h", b"n").pack(m)
    m.pack_enum(42)  # ftype3 42
    with pytest.raises(XdrError):
        t.decode_args(t.MknodArgs, Unpacker(m.get_buffer()))


def test_nanoseconds_past_a_second_are_refused() -> None:
    p = Packer()
    p.pack_uint(1)
    p.pack_uint(1_000_000_000)
    with pytest.raises(XdrError):
        t.nfstime3.unpack(Unpacker(p.get_buffer()))


def test_a_verifier_of_the_wrong_size_is_not_packed() -> None:
    with pytest.raises(XdrError):
        packed(t.CommitRes(t.NFS3_OK, t.WccData(), b"short"))


@pytest.mark.parametrize("strategy", RESULTS, ids=lambda s: str(s)[:40])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_result_sent_as_pieces_is_byte_for_byte_its_packed_form(
        strategy: st.SearchStrategy[t.Result], data: st.DataObject) -> None:
    """READ sends its data as a separate buffer; the wire must not change."""
    value = data.draw(strategy)
    assert b"".join(value.pieces()) == packed(value)


def test_a_read_reply_keeps_its_data_buffer_out_of_the_packer() -> None:
    body = bytearray(b"x" * (1 << 20) + b"yz")
    res = t.ReadRes(t.NFS3_OK, None, len(body), True, body)
    pieces = res.pieces()
    assert any(p is body for p in pieces)
    assert b"".join(pieces) == packed(res)
