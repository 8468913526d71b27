"""File handles: stable, bound to their export, and refused when forged or altered."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.nfs.exports import Export
from gateway.nfs.handles import KEY_FILE, MAX_HANDLE, BadHandle, Handles, load_key

KEY = bytes(range(32))
WHOLE, BUCKET = Export("/"), Export("/bkt")


def test_handles_decode_to_what_was_encoded_and_fit_nfs3() -> None:
    h = Handles(KEY, [WHOLE, BUCKET])
    fh = h.encode(BUCKET, 12345, 7)
    assert len(fh) <= MAX_HANDLE
    assert h.decode(fh) == (BUCKET, 12345, 7)


def test_the_same_key_and_exports_give_the_same_handles_after_a_restart(tmp_path: Path) -> None:
    first = Handles(load_key(tmp_path), [Export("/"), Export("/bkt")])
    fh = first.encode(Export("/bkt"), 99, 0)
    again = Handles(load_key(tmp_path), [Export("/bkt"), Export("/")])  # order does not matter
    export, ino, gen = again.decode(fh)
    assert (export.path, ino, gen) == ("/bkt", 99, 0)


def test_the_key_is_created_once_private_to_the_owner(tmp_path: Path) -> None:
    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary left behind


def test_a_handle_under_another_key_is_bad() -> None:
    fh = Handles(bytes(32), [WHOLE]).encode(WHOLE, 5, 0)
    with pytest.raises(BadHandle):
        Handles(KEY, [WHOLE]).decode(fh)


def test_a_handle_of_an_export_no_longer_served_is_bad() -> None:
    fh = Handles(KEY, [WHOLE, BUCKET]).encode(BUCKET, 5, 0)
    with pytest.raises(BadHandle):
        Handles(KEY, [WHOLE]).decode(fh)


@given(st.integers(0, 32), st.integers(1, 255))
def test_any_altered_byte_makes_the_handle_bad(pos: int, flip: int) -> None:
    h = Handles(KEY, [WHOLE])
    fh = bytearray(h.encode(WHOLE, 1 << 40, 3))
    fh[pos] ^= flip
    with pytest.raises(BadHandle):
        h.decode(bytes(fh))


@given(st.binary(max_size=64))
def test_random_bytes_are_bad_handles(data: bytes) -> None:
    with pytest.raises(BadHandle):
        Handles(KEY, [WHOLE]).decode(data)
