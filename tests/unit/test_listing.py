"""Listing: exact S3 byte order across folders, prefixes, delimiters, paging."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.vfs import ROOT, Filesystem
from tests.unit.conftest import body_of


async def put_all(fs: Filesystem, keys: list[str]) -> None:
    await fs.create_bucket(ROOT, "bkt")
    await asyncio.gather(*(fs.put_object(ROOT, "bkt", k, body_of(k.encode())) for k in keys))


async def list_all(fs: Filesystem, **kw: object) -> tuple[list[bytes], list[bytes]]:
    """Page through everything with the given page size, as a client would."""
    keys: list[bytes] = []
    prefixes: list[bytes] = []
    after = None
    while True:
        page = await fs.list_objects(ROOT, "bkt", after=after, **kw)  # type: ignore[arg-type]
        keys += [k for k, _ in page.keys]
        prefixes += page.prefixes
        if not page.truncated:
            return keys, prefixes
        assert page.next_marker is not None and (after is None or page.next_marker > after)
        after = page.next_marker


def model(keys: list[bytes], prefix: bytes, delimiter: bytes | None) -> tuple[list[bytes], list[bytes]]:
    """What S3 returns, computed the obvious way from the sorted key set."""
    out_keys, out_prefixes = [], []
    for k in sorted(keys):
        if not k.startswith(prefix):
            continue
        rel = k[len(prefix):]
        if delimiter and delimiter in rel:
            cp = prefix + rel[:rel.index(delimiter) + len(delimiter)]
            if cp not in out_prefixes:
                out_prefixes.append(cp)
        else:
            out_keys.append(k)
    return out_keys, out_prefixes


async def test_keys_list_in_exact_byte_order_across_folders(vfs: Filesystem) -> None:
    keys = ["a/x", "a.txt", "a-b", "a0", "a/b/c", "a/b.c", "ab", "a/b/", "b", "a/b/\u00e9", "A"]
    keys.remove("a/b/")  # a folder marker of a non-empty folder is tested elsewhere
    await put_all(vfs, keys)
    listed, _ = await list_all(vfs)
    assert listed == sorted(k.encode() for k in keys)
    assert listed.index(b"a.txt") < listed.index(b"a/x")  # '.' < '/'


async def test_delimiter_rolls_folders_into_common_prefixes_without_entering_them(vfs: Filesystem) -> None:
    await put_all(vfs, ["a/1", "a/2", "a.txt", "b/c/d", "top"])
    assert await list_all(vfs, delimiter="/") == ([b"a.txt", b"top"], [b"a/", b"b/"])
    assert await list_all(vfs, prefix="b/", delimiter="/") == ([], [b"b/c/"])
    assert await list_all(vfs, prefix="a", delimiter="/") == ([b"a.txt"], [b"a/"])
    assert await list_all(vfs, prefix="missing/", delimiter="/") == ([], [])
    assert await list_all(vfs, prefix="top/") == ([], [])  # a file is not a folder


async def test_paging_with_a_delimiter_never_repeats_a_common_prefix(vfs: Filesystem) -> None:
    await put_all(vfs, [f"d{i}/x{j}" for i in range(5) for j in range(3)] + ["e", "f"])
    keys, prefixes = await list_all(vfs, delimiter="/", max_keys=1)
    assert prefixes == [b"d0/", b"d1/", b"d2/", b"d3/", b"d4/"]
    assert keys == [b"e", b"f"]


async def test_paging_survives_concurrent_inserts_and_deletes(vfs: Filesystem) -> None:
    stable = [f"k{i:04d}" for i in range(0, 400, 2)]
    await put_all(vfs, stable)
    seen: list[bytes] = []
    after = None
    i = 1
    while True:
        page = await vfs.list_objects(ROOT, "bkt", after=after, max_keys=37)
        seen += [k for k, _ in page.keys]
        # Between pages other keys come and go; keys that stayed must each appear once.
        await vfs.put_object(ROOT, "bkt", f"k{i:04d}", body_of(b"new"))
        if i > 4:
            await vfs.delete_object(ROOT, "bkt", f"k{i - 4:04d}")
        i += 2
        if not page.truncated:
            break
        after = page.next_marker
    stable_seen = [k for k in seen if int(k[1:]) % 2 == 0]
    assert stable_seen == [k.encode() for k in stable]
    assert len(seen) == len(set(seen))


async def test_start_after_a_key_inside_a_folder_resumes_right_after_it(vfs: Filesystem) -> None:
    await put_all(vfs, ["a/1", "a/2", "a/3", "a0", "b"])
    page = await vfs.list_objects(ROOT, "bkt", after="a/2")
    assert [k for k, _ in page.keys] == [b"a/3", b"a0", b"b"]
    page = await vfs.list_objects(ROOT, "bkt", after="a/", delimiter="/")
    assert [k for k, _ in page.keys] == [b"a0", b"b"] and page.prefixes == []


async def test_listing_entries_carry_size_and_etag(vfs: Filesystem) -> None:
    await put_all(vfs, ["x"])
    page = await vfs.list_objects(ROOT, "bkt")
    (key, inode), = page.keys
    assert (key, inode.size, inode.etag) == (b"x", 1, "9dd4e461268c8034f5c8564e155c67a6")


segment = st.sampled_from(["a", "b", "a.b", "a-", "ab", "\u00e9", "Z"])
key_st = st.lists(segment, min_size=1, max_size=3).map("/".join)


def consistent(keys: list[str]) -> list[str]:
    """Drop keys that would need a file and a folder under one name."""
    out: list[str] = []
    files: set[str] = set()
    dirs: set[str] = set()
    for k in keys:
        parts = k.split("/")
        parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if k in dirs or parents & files or k in files:
            continue
        files.add(k)
        dirs |= parents
        out.append(k)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.lists(key_st, max_size=25).map(consistent),
       prefix=st.sampled_from(["", "a", "a/", "a/b", "a.", "\u00e9/", "b/a"]),
       delimiter=st.sampled_from([None, "/", "b", "."]),
       page=st.integers(1, 7))
def test_listing_matches_the_s3_model(keys: list[str], prefix: str, delimiter: str | None, page: int) -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        with tempfile.TemporaryDirectory() as d:
            fs = Filesystem.from_data_dir(Path(d))
            await fs.start()
            try:
                await put_all(fs, keys)
                return await list_all(fs, prefix=prefix, delimiter=delimiter, max_keys=page)
            finally:
                await fs.aclose()

    got = asyncio.run(run())
    expected = model([k.encode() for k in keys], prefix.encode(), delimiter.encode() if delimiter else None)
    assert got == expected


async def test_a_prefix_naming_a_folder_lists_the_folders_own_key_first(vfs: Filesystem) -> None:
    await vfs.create_bucket(ROOT, "bkt")
    await vfs.put_object(ROOT, "bkt", "f/", body_of())
    await vfs.put_object(ROOT, "bkt", "f/x", body_of(b"x"))
    await vfs.put_object(ROOT, "bkt", "g/", body_of())
    assert await list_all(vfs, prefix="f/") == ([b"f/", b"f/x"], [])
    assert await list_all(vfs, prefix="f/", delimiter="/") == ([b"f/", b"f/x"], [])
    assert await list_all(vfs, prefix="g/") == ([b"g/"], [])
    page = await vfs.list_objects(ROOT, "bkt", prefix="f/", after="f/")
    assert [k for k, _ in page.keys] == [b"f/x"]
    await vfs.put_object(ROOT, "bkt", "h/y", body_of(b"y"))  # an implicit folder is no key
    assert await list_all(vfs, prefix="h/") == ([b"h/y"], [])
