"""gateway/body_threads.py over a real socket pair: every piece in order, a read error
after the pieces before it, a peer that leaves, and a cancelled send to a peer that
stalls (both threads end, the socket is shut down, nothing waits for them)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from gateway import body_threads

PIECE = 256 << 10


def piece_bytes(i: int) -> bytes:
    return bytes([i % 251]) * (PIECE - i)  # each piece its own length and byte


def fill(i: int, buf: bytearray) -> memoryview:
    data = piece_bytes(i)
    buf[:len(data)] = data
    return memoryview(buf)[:len(data)]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)  # as an event loop's transport keeps it
    yield ours, peer
    ours.close()
    peer.close()


def body_thread_names() -> list[str]:
    """Worker threads busy with a body (idle ones wait as body-idle)."""
    return [t.name for t in threading.enumerate() if t.name in ("body-read", "body-send")]


async def settled() -> None:
    """Both threads ended and the send no longer counts against MAX_SENDS (a count left
    behind would turn the thread path off for good)."""
    for _ in range(3000):
        if not body_thread_names() and body_threads._active == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still running: {body_thread_names()}, counted {body_threads._active}")



def drain(peer: socket.socket, out: bytearray) -> threading.Thread:
    def run() -> None:
        while got := peer.recv(1 << 20):
            out.extend(got)
    t = threading.Thread(target=run)
    t.start()
    return t


async def test_every_piece_arrives_in_order_and_the_socket_stays_non_blocking(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    got = bytearray()
    reader = drain(peer, got)
    assert await body_threads.send_body(ours, 40, fill, buffer_size=PIECE)
    assert ours.getblocking() is False  # O_NONBLOCK is shared with the dup: untouched
    ours.shutdown(socket.SHUT_WR)
    reader.join(30)
    assert bytes(got) == b"".join(piece_bytes(i) for i in range(40))
    await settled()


async def test_a_read_error_is_raised_after_the_pieces_before_it_are_sent(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    got = bytearray()
    reader = drain(peer, got)

    def read(i: int, buf: bytearray) -> memoryview:
        if i == 5:
            raise ValueError("piece 5 is bad")
        return fill(i, buf)

    with pytest.raises(ValueError, match="piece 5 is bad"):
        await body_threads.send_body(ours, 9, read, buffer_size=PIECE)
    ours.shutdown(socket.SHUT_WR)
    reader.join(30)
    assert bytes(got) == b"".join(piece_bytes(i) for i in range(5))
    await settled()


async def test_a_peer_that_leaves_makes_the_send_raise_connection_reset(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    ours.send(b"head")
    assert peer.recv(PIECE) == b"head"
    peer.close()
    with pytest.raises(ConnectionResetError):
        await body_threads.send_body(ours, 400, fill, buffer_size=PIECE)
    await settled()


async def test_a_cancelled_send_to_a_stalled_peer_ends_both_threads_and_shuts_the_socket(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    reads = 0

    def read(i: int, buf: bytearray) -> memoryview:
        nonlocal reads
        reads += 1
        return fill(i, buf)

    task = asyncio.ensure_future(body_threads.send_body(ours, 10_000, read, buffer_size=PIECE))
    # The peer reads nothing: the sender fills the socket's buffers, then waits in poll.
    for _ in range(3000):
        await asyncio.sleep(0.01)
        before = reads
        await asyncio.sleep(0.05)
        if reads == before and reads > 0:
            break
    # Bounded: a stalled peer stops the reader a few buffers ahead of the socket.
    assert reads < 10_000
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settled()
    # The stop shut the connection down: the peer reads what was queued, then the end.
    peer.settimeout(30)
    total = 0
    while got := peer.recv(1 << 20):
        total += len(got)
    assert 0 < total < sum(len(piece_bytes(i)) for i in range(reads + 1))


async def test_bodies_one_after_another_reuse_a_bounded_few_worker_threads(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, peer = pair
    got = bytearray()
    reader = drain(peer, got)
    idents: set[int] = set()
    for _ in range(6):
        assert await body_threads.send_body(ours, 3, fill, buffer_size=PIECE)
        await settled()
        workers = [t for t in threading.enumerate() if t.name.startswith("body-")]
        assert len(workers) <= body_threads.IDLE_WORKERS
        idents.update(t.ident for t in workers if t.ident is not None)
    assert len(idents) <= body_threads.IDLE_WORKERS  # the same threads, not new ones
    ours.shutdown(socket.SHUT_WR)
    reader.join(30)
    assert bytes(got) == b"".join(piece_bytes(i) for i in range(3)) * 6
