"""Namespace building blocks: extents never overlap, chunk references are counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadata import Extent, open_engine
from metadata import namespace as ns
from metadata.engine import LmdbEngine, Txn
from metadata.schema import Inode, decode_inode, encode_inode


@pytest.fixture
def engine(tmp_path: Path):
    e = open_engine(tmp_path / "meta")
    yield e
    e.close()


def refs(txn: Txn, cid: int) -> int | None:
    c = ns.get_chunk(txn, cid)
    return None if c is None else c[0]


def test_inode_records_round_trip() -> None:
    i = Inode(7, 0o100640, 1000, 100, nlink=2, size=123, mtime_ns=-5, parent=3, flags=1,
              etag="abc", content_type="text/plain", target=b"t", extra={"x-amz-checksum-crc32": "AAAA"})
    assert decode_inode(7, encode_inode(i)) == i


def test_overlapping_writes_split_and_trim_extents_and_count_references(engine: LmdbEngine) -> None:
    def op(txn: Txn) -> None:
        ns.register_chunk(txn, 1, 100, b"")
        ns.register_chunk(txn, 2, 10, b"")
        ns.put_extent(txn, 9, Extent(0, 100, 1, 0), 0)
        ns.put_extent(txn, 9, Extent(40, 10, 2, 0), 0)  # splits chunk 1's extent in two
        assert refs(txn, 1) == 2 and refs(txn, 2) == 1
        assert [(e.offset, e.length, e.chunk_id, e.chunk_off) for e in ns.extents(txn, 9)] == [
            (0, 40, 1, 0), (40, 10, 2, 0), (50, 50, 1, 50)]
        assert [(e.offset, e.length, e.chunk_off) for e in ns.extents(txn, 9, 45, 60)] == [
            (45, 5, 5), (50, 10, 50)]
        ns.truncate_extents(txn, 9, 45, 0)
        assert refs(txn, 1) == 1
        assert [(e.offset, e.length) for e in ns.extents(txn, 9)] == [(0, 40), (40, 5)]
        ns.drop_extents(txn, 9, 0)
        assert refs(txn, 1) is None and refs(txn, 2) is None
        assert sorted(cid for cid, _ in ns.trash(txn)) == [1, 2]
    engine.write_sync(op)


def test_inline_extents_slice_and_detect_corruption(engine: LmdbEngine) -> None:
    def op(txn: Txn) -> None:
        ns.put_extent(txn, 3, Extent(0, 6, data=b"abcdef"), 0)
        ns.put_extent(txn, 3, Extent(2, 2, data=b"XY"), 0)
        assert b"".join(e.data or b"" for e in ns.extents(txn, 3)) == b"abXYef"
        key = ns.extent_key(3, 0)
        raw = bytearray(txn.get("extent", key) or b"")
        raw[-1] ^= 1
        txn.put("extent", key, bytes(raw))
        from metadata.schema import InlineCorrupt
        with pytest.raises(InlineCorrupt):
            ns.extents(txn, 3)
    engine.write_sync(op)


def test_multipart_parts_hold_chunk_references_until_aborted(engine: LmdbEngine) -> None:
    uid = b"u" * 16

    def op(txn: Txn) -> None:
        ns.register_chunk(txn, 5, 10, b"")
        ns.register_chunk(txn, 6, 10, b"")
        ns.put_upload(txn, uid, {"bucket": "bkt", "key": "k"})
        ns.put_part(txn, uid, 1, [Extent(0, 10, 5, 0)], {"etag": "a"}, 0)
        ns.put_part(txn, uid, 2, [Extent(0, 10, 6, 0)], {"etag": "b"}, 0)
        assert [(n, r["etag"], [e.chunk_id for e in ex]) for n, r, ex in ns.parts(txn, uid)] == [
            (1, "a", [5]), (2, "b", [6])]
        ns.put_part(txn, uid, 2, [Extent(0, 10, 5, 0)], {"etag": "c"}, 0)  # re-upload of part 2
        assert refs(txn, 5) == 2 and refs(txn, 6) is None
        assert [n for n, _, _ in ns.parts(txn, uid, after=1)] == [2]
        ns.drop_upload(txn, uid, 0)
        assert refs(txn, 5) is None and ns.get_upload(txn, uid) is None
        assert list(ns.parts(txn, uid)) == []
    engine.write_sync(op)


def test_counters_hand_out_numbers_that_are_never_reused(engine: LmdbEngine) -> None:
    a = engine.write_sync(lambda txn: ns.reserve_chunk_ids(txn, 1024))
    b = engine.write_sync(lambda txn: ns.reserve_chunk_ids(txn, 1024))
    inos = [engine.write_sync(ns.alloc_ino) for _ in range(3)]
    assert b == a + 1024
    assert inos == sorted(set(inos)) and inos[0] >= 2  # 1 is the root
