"""XDR codec: round trips, padding, and every malformed input as XdrError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.nfs.xdr import Packer, Unpacker, XdrError

u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@given(u32, i32, u64, i64, st.booleans(), st.binary(max_size=70), st.binary(max_size=70))
def test_scalars_and_opaques_round_trip(a: int, b: int, c: int, d: int, e: bool,
                                        f: bytes, g: bytes) -> None:
    p = Packer()
    p.pack_uint(a); p.pack_int(b); p.pack_uhyper(c); p.pack_hyper(d); p.pack_bool(e)
    p.pack_opaque(f); p.pack_fopaque(len(g), g); p.pack_string(f)
    buf = p.get_buffer()
    assert len(buf) % 4 == 0
    u = Unpacker(buf)
    assert (u.unpack_uint(), u.unpack_int(), u.unpack_uhyper(), u.unpack_hyper(),
            u.unpack_bool()) == (a, b, c, d, e)
    assert u.unpack_opaque() == f
    assert u.unpack_fopaque(len(g)) == g
    assert u.unpack_string() == f
    u.done()


@given(st.lists(st.tuples(u32, st.binary(max_size=9)), max_size=20),
       st.one_of(st.none(), u64))
def test_arrays_and_optionals_round_trip(items: list[tuple[int, bytes]], opt: int | None) -> None:
    p = Packer()

    def pack_item(it: tuple[int, bytes]) -> None:
        p.pack_uint(it[0]); p.pack_opaque(it[1])

    p.pack_array(items, pack_item)
    p.pack_optional(opt, p.pack_uhyper)
    u = Unpacker(p.get_buffer())
    assert u.unpack_array(lambda: (u.unpack_uint(), u.unpack_opaque())) == items
    assert u.unpack_optional(u.unpack_uhyper) == opt
    assert u.remaining() == 0
    u.done()


def test_opaque_is_padded_to_four_bytes() -> None:
    p = Packer()
    p.pack_opaque(b"abcde")
    assert p.get_buffer() == b"\0\0\0\5abcde\0\0\0"


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_xdr_error(data: bytes) -> None:
    u = Unpacker(data)
    try:
        u.unpack_opaque(); u.unpack_array(u.unpack_hyper); u.unpack_optional(u.unpack_string)
        u.unpack_bool(); u.done()
    except XdrError:
        pass


@pytest.mark.parametrize("data, read", [
    (b"\0\0\0", lambda u: u.unpack_uint()),
    (b"\0\0\0\1\0\0\0", lambda u: u.unpack_hyper()),
    (b"\0\0\0\2", lambda u: u.unpack_bool()),
    (b"\xff\xff\xff\xff", lambda u: u.unpack_opaque()),  # lying length
    (b"\0\0\0\5abcd", lambda u: u.unpack_opaque()),  # truncated body
    (b"\0\0\0\3abc", lambda u: u.unpack_opaque()),  # missing padding
    (b"\0\0\0\3abcX", lambda u: u.unpack_opaque()),  # non-zero padding
    (b"\0\0\0\3abc\0", lambda u: u.unpack_opaque(max_len=2)),  # over the caller's limit
    (b"\x7f\xff\xff\xff", lambda u: u.unpack_array(u.unpack_uint)),  # huge count
    (b"\0\0\0\3\0\0\0\1", lambda u: u.unpack_array(u.unpack_uint, max_items=2)),
    (b"\0\0\0\1\0\0\0\1", lambda u: (u.unpack_uint(), u.done())),  # leftover bytes
])
def test_malformed_input_raises_xdr_error(data: bytes, read) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(XdrError):
        read(Unpacker(data))


@pytest.mark.parametrize("pack", [
    lambda p: p.pack_uint(-1), lambda p: p.pack_uint(2**32), lambda p: p.pack_int(2**31),
    lambda p: p.pack_uhyper(2**64), lambda p: p.pack_hyper(-(2**63) - 1),
    lambda p: p.pack_fopaque(3, b"ab"),
])
def test_out_of_range_values_raise_xdr_error_when_packed(pack) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(XdrError):
        pack(Packer())


def test_opaque_view_does_not_copy_and_matches() -> None:
    p = Packer()
    p.pack_opaque(b"x" * 10)
    u = Unpacker(memoryview(p.get_buffer()))
    v = u.unpack_opaque_view()
    assert isinstance(v, memoryview) and bytes(v) == b"x" * 10
    u.done()
