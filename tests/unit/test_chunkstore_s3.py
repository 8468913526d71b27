"""The s3 chunk store and its read cache against a real S3 server (moto's, a subprocess)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chunkstore import ChunkCorrupt, ChunkInfo, ChunkMissing, ChunkUnavailable
from chunkstore.cache import CachedChunkStore
from chunkstore.s3 import RetryPolicy, S3ChunkStore, S3Location
from chunkstore.select import BackendMismatch, BackendSpec, open_store
from tests.s3backends import ChunkBackend, session_backend

KiB = 1024


@pytest.fixture(scope="module")
def moto() -> ChunkBackend:
    return session_backend("moto")


def location(moto: ChunkBackend, bucket: str | None = None, endpoint: str | None = None) -> S3Location:
    return S3Location(bucket or moto.new_bucket(), "pre", endpoint or moto.endpoint,
                      access_key=moto.access_key, secret_key=moto.secret_key)


@pytest.fixture
async def store(moto: ChunkBackend) -> AsyncIterator[S3ChunkStore]:
    s = S3ChunkStore(location(moto), list_page=3)
    try:
        yield s
    finally:
        await s.close()


async def test_put_get_ranges_and_keys_spread_over_hash_prefixes(store: S3ChunkStore,
                                                                 moto: ChunkBackend) -> None:
    data = os.urandom(300 * KiB + 5)
    info = await store.put(0x1234, data)
    assert await store.get(info) == data
    assert await store.get(info, 70_000, 100_000) == data[70_000:170_000]
    assert await store.get(info, len(data), 0) == b""
    assert moto.objects(store.location.bucket) == ["pre/34/12/0000000000001234"]


async def test_ids_pages_through_the_whole_listing(store: S3ChunkStore) -> None:
    for cid in range(1, 9):
        await store.put(cid, b"x" * 10)
    got = sorted(cid for cid, _ in [x async for x in store.ids()])
    assert got == list(range(1, 9))  # 8 objects in pages of 3
    assert all(abs(t - time.time()) < 3600 for _, t in [x async for x in store.ids()])


async def test_missing_chunk_is_chunk_missing_and_delete_is_idempotent(store: S3ChunkStore) -> None:
    with pytest.raises(ChunkMissing) as e:
        await store.get(ChunkInfo(77, 10, b"\0" * 8))
    assert "000000000000004d" in str(e.value)
    await store.delete(77)
    assert not await store.exists(77)


async def test_wrong_sums_are_chunk_corrupt_naming_the_chunk(store: S3ChunkStore) -> None:
    info = await store.put(5, os.urandom(100 * KiB))
    bad = ChunkInfo(5, info.size, info.sums[:8] + bytes(8) + info.sums[16:])
    with pytest.raises(ChunkCorrupt) as e:
        await store.get(bad)
    assert e.value.chunk_id == 5 and e.value.block == 1


async def test_unreachable_backend_fails_within_the_deadline_as_unavailable(moto: ChunkBackend) -> None:
    from tests.conftest import free_port
    s = S3ChunkStore(location(moto, "nowhere", f"http://127.0.0.1:{free_port()}"),
                     policy=RetryPolicy(deadline=2.0, attempts=4))
    try:
        with pytest.raises(ChunkUnavailable) as e:
            await s.put(1, b"abc")
        assert "backend unavailable" in str(e.value)
    finally:
        await s.close()


async def test_cache_is_bounded_and_survives_a_restart(moto: ChunkBackend, tmp_path: Path) -> None:
    loc = location(moto)
    chunks = {cid: os.urandom(100 * KiB) for cid in range(1, 6)}
    cache = CachedChunkStore(S3ChunkStore(loc), tmp_path / "cache", 350 * KiB)
    infos = {cid: await cache.put(cid, d) for cid, d in chunks.items()}
    assert cache.cached_bytes() <= 350 * KiB
    await cache.close()
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert files == [f"{c:016x}" for c in (3, 4, 5)]  # the oldest were evicted
    cache = CachedChunkStore(S3ChunkStore(loc), tmp_path / "cache", 350 * KiB)
    try:
        for cid, d in chunks.items():
            assert await cache.get(infos[cid]) == d
        assert cache.cached_bytes() <= 350 * KiB
    finally:
        await cache.close()


def test_data_folder_refuses_a_different_backend(tmp_path: Path) -> None:
    spec = BackendSpec(url="s3://one/p", endpoint="http://127.0.0.1:1")
    open_store(tmp_path, spec)
    # The endpoint may change; the bucket and prefix may not.
    open_store(tmp_path, BackendSpec(url="s3://one/p", endpoint="http://127.0.0.1:2"))
    for other in ("local", "s3://two/p", "s3://one/q"):
        with pytest.raises(BackendMismatch, match="keeps its chunks in s3://one/p"):
            open_store(tmp_path, BackendSpec(url=other))
    assert open_store(tmp_path, None).name == "s3"  # none given: the recorded one
    with pytest.raises(ValueError):
        open_store(tmp_path / "x", BackendSpec(url="ftp://nope"))


@pytest.mark.parametrize("cache_size", [0, 16 << 20])
async def test_every_range_of_a_fetched_chunk_reads_back_exactly(moto: ChunkBackend, tmp_path: Path,
                                                                  cache_size: int) -> None:
    # A chunk longer than two 1 MiB segments with a short tail: ranges inside one segment,
    # across segment edges, whole segments and the whole chunk.
    import random
    data = os.urandom(2 * 1024 * KiB + 300 * KiB + 7)
    backend = S3ChunkStore(location(moto))
    info = await backend.put(0xABC, data)
    cache = CachedChunkStore(backend, tmp_path / "cache", cache_size)
    try:
        seg = 1024 * KiB
        ranges = [(0, len(data)), (0, seg), (seg, seg), (2 * seg, len(data) - 2 * seg),
                  (seg - 1, 2), (10, 2 * seg), (len(data) - 1, 1)]
        rnd = random.Random(7)
        ranges += [(o, rnd.randint(1, len(data) - o)) for o in
                   (rnd.randrange(len(data)) for _ in range(40))]
        for off, n in ranges:
            assert await cache.get(info, off, n) == data[off:off + n], (off, n)
    finally:
        await cache.close()
    if cache_size:  # close() finished the background cache write: a new cache in front of
        # an empty bucket can only answer from that file
        again = CachedChunkStore(S3ChunkStore(location(moto)), tmp_path / "cache", cache_size)
        try:
            assert await again.get(info, 5, 1000) == data[5:1005]
            assert again.cached_bytes() == len(data)
        finally:
            await again.close()


async def _forward_proxy(seen: list[str]) -> asyncio.AbstractServer:
    """A minimal HTTP forward proxy (absolute-form requests, one per connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.decode("latin-1").partition("\r\n")
            method, target, version = line.split(" ")
            seen.append(f"{method} {target}")
            parts = urlsplit(target)
            headers = [h for h in rest.split("\r\n") if h and not h.lower().startswith(
                ("connection:", "proxy-"))]
            length = next((int(h.split(":", 1)[1]) for h in headers
                           if h.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length)
            up_r, up_w = await asyncio.open_connection(parts.hostname, parts.port)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            up_w.write("\r\n".join([f"{method} {path} {version}", *headers,
                                    "Connection: close", "", ""]).encode("latin-1") + body)
            await up_w.drain()
            while data := await up_r.read(1 << 16):
                writer.write(data)
                await writer.drain()
            up_w.close()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_chunks_go_through_the_http_proxy_the_environment_names(
        moto: ChunkBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    loc = location(moto)  # boto3 (blocking) would go through the proxy too: before it
    proxy = await _forward_proxy(seen)
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    s = S3ChunkStore(loc)
    try:
        data = os.urandom(200 * KiB)
        info = await s.put(0x77, data)
        assert await s.get(info) == data
        assert await s.get(info, 65536, 1000) == data[65536:66536]
    finally:
        await s.close()
        proxy.close()
    chunk = f"{moto.endpoint}/{s.location.bucket}/pre/77/00/0000000000000077"
    assert [x.split("?")[0] for x in seen] == [f"PUT {chunk}", f"GET {chunk}", f"GET {chunk}"]


async def test_a_chunk_upload_body_is_sent_from_its_own_buffer_without_a_copy() -> None:
    from chunkstore.s3 import _chunk_body_of

    class Writer:  # what aiohttp's request writer is given
        def __init__(self) -> None:
            self.writes: list[object] = []

        async def write(self, chunk: object) -> None:
            self.writes.append(chunk)

    body = bytearray(os.urandom(4 * KiB * 1024 + 5))
    for length in (None, len(body)):
        w = Writer()
        payload = _chunk_body_of(body)
        assert payload.size == len(body)
        if length is None:
            await payload.write(w)
        else:
            await payload.write_with_length(w, length)
        # One byte goes with the request head (aiohttp joins those); the rest is a view
        # of the chunk's buffer itself, not a copy.
        first, rest = w.writes
        assert isinstance(rest, memoryview) and rest.obj is body
        assert bytes(first) + bytes(rest) == body  # type: ignore[arg-type]
