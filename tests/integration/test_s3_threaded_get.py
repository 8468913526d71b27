"""Large GETs sent by the reader and sender threads (gateway/body_threads.py): the same
bytes as stored, whole and ranged; keep-alive after them; a client that leaves, a slow
client, a corrupt chunk and a server stop in the middle of one; prefork workers.

The thread path is observed from outside: its threads carry the OS names body-read and
body-send (/proc/PID/task/*/comm), so a test of it fails if GETs quietly take the loop's
path instead."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.server import SHUTDOWN_TIMEOUT
from tests.conftest import TEST_CHUNKS, Gateway, start_gateway, wait_for
from tests.integration.conftest import client_for

MiB = 1 << 20

pytestmark = pytest.mark.skipif(bool(TEST_CHUNKS), reason="the thread path serves local chunks only")


def serving_pids(pid: int) -> list[int]:
    """The gateway process and its children: with `--workers N` (SAMEBYTES_WORKERS in
    CI's prefork pass) the bodies are sent by the forked workers, not by pid."""
    pids = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids.extend(int(c) for c in children.read_text().split())
        except OSError:
            continue  # the thread ended while we looked
    return pids


def body_threads(pid: int) -> list[str]:
    """Names of the server's body worker threads, busy or idle, in every serving process."""
    out = []
    for p in serving_pids(pid):
        for comm in Path(f"/proc/{p}/task").glob("*/comm"):
            try:
                name = comm.read_text().strip()
            except OSError:
                continue  # the thread ended while we looked
            if name.startswith("body-"):
                out.append(name)
    return out


def busy_body_threads(pid: int) -> list[str]:
    """The server's worker threads reading or sending a body now (not body-idle)."""
    return [n for n in body_threads(pid) if n != "body-idle"]


def open_sockets(pid: int) -> int:
    """Sockets open in every serving process. Only sockets: a prefork worker that serves
    its first GET of an object opens (and keeps) that object's chunk files."""
    count = 0
    for p in serving_pids(pid):
        for fd in Path(f"/proc/{p}/fd").iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:
                continue  # closed while we looked
    return count


def rss(pid: int) -> int:
    """Resident bytes of every serving process."""
    total = 0
    for p in serving_pids(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def put(gw: Gateway, bucket: str, key: str, size: int) -> bytes:
    s3 = client_for(gw)
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    body = os.urandom(size)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return body


def presigned_path(gw: Gateway, method: str, bucket: str, key: str) -> str:
    url = client_for(gw).generate_presigned_url(
        "get_object" if method == "GET" else "put_object",
        Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def raw_get(gw: Gateway, bucket: str, key: str, rcvbuf: int | None = None) -> socket.socket:
    """A socket that has sent a presigned GET and read nothing yet."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(60)
    s.connect(("127.0.0.1", gw.s3_port))
    path = presigned_path(gw, "GET", bucket, key)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.s3_port}\r\n\r\n".encode())
    return s


def read_response(s: socket.socket, pause: float = 0.0, step: int = 256 << 10) -> tuple[bytes, bytes]:
    """(head, body) read to the end of the body, or as far as the connection went."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        if not got:
            raise AssertionError(f"connection closed in the head: {bytes(data)!r}")
        data += got
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    out = bytearray(body)
    while len(out) < length:
        try:
            got = s.recv(min(step, length - len(out)))
        except ConnectionResetError:
            break
        if not got:
            break
        out += got
        if pause:
            time.sleep(pause)
    return head, bytes(out)


def test_large_whole_and_ranged_gets_return_the_stored_bytes(gateway: Gateway) -> None:
    body = put(gateway, "big", "obj", 24 * MiB + 12345)
    s3 = client_for(gateway)
    assert s3.get_object(Bucket="big", Key="obj")["Body"].read() == body
    for first, last in [(1000, 20 * MiB + 77), (4 * MiB - 3, 24 * MiB + 12344), (7, 9 * MiB + 7)]:
        got = s3.get_object(Bucket="big", Key="obj", Range=f"bytes={first}-{last}")
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
        assert got["Body"].read() == body[first:last + 1]
    got = s3.get_object(Bucket="big", Key="obj", Range="bytes=-9437185")
    assert got["Body"].read() == body[-9437185:]


def test_a_large_multipart_object_reads_whole_and_across_part_boundaries(gateway: Gateway) -> None:
    s3 = client_for(gateway)
    s3.create_bucket(Bucket="parts")
    parts = [os.urandom(5 * MiB + 1), os.urandom(5 * MiB + 4097), os.urandom(123)]
    up = s3.create_multipart_upload(Bucket="parts", Key="obj")
    etags = [s3.upload_part(Bucket="parts", Key="obj", UploadId=up["UploadId"], PartNumber=i + 1,
                            Body=p)["ETag"] for i, p in enumerate(parts)]
    s3.complete_multipart_upload(
        Bucket="parts", Key="obj", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
    body = b"".join(parts)
    assert s3.get_object(Bucket="parts", Key="obj")["Body"].read() == body
    first, last = 3 * MiB + 5, 10 * MiB + 4100 + 50  # all three parts, unaligned
    got = s3.get_object(Bucket="parts", Key="obj", Range=f"bytes={first}-{last}")["Body"].read()
    assert got == body[first:last + 1]


def test_a_slow_reader_gets_every_byte_from_the_body_threads_in_bounded_memory(
        gateway: Gateway) -> None:
    body = put(gateway, "slow", "obj", 40 * MiB)
    pid = gateway.proc.pid
    before = rss(pid)
    peak = before
    s = raw_get(gateway, "slow", "obj", rcvbuf=64 << 10)
    with s:
        seen: list[str] = []
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                seen.extend(busy_body_threads(pid))
                peak = max(peak, rss(pid))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            head, got = read_response(s, pause=0.002, step=128 << 10)
        finally:
            done.set()
            watcher.join()
    assert head.startswith(b"HTTP/1.1 200")
    assert got == body
    # Sent by the threads, not the loop's stream.
    assert "body-send" in seen and "body-read" in seen
    # The client takes its time: the server holds a few piece buffers, not the body.
    assert peak - before < 24 * MiB, (before, peak)
    wait_for(lambda: not busy_body_threads(pid), what="the body threads to end")


def test_keep_alive_get_big_get_small_put_get_big_on_one_connection(gateway: Gateway) -> None:
    big = put(gateway, "keep", "big", 20 * MiB + 1)
    small = put(gateway, "keep", "small", 4096)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.s3_port, timeout=60)
    try:
        conn.connect()
        sock = conn.sock

        def request(method: str, key: str, body: bytes | None = None) -> bytes:
            conn.request(method, presigned_path(gateway, method, "keep", key), body=body)
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, (r.status, data)
            assert conn.sock is sock, "the connection was closed after the response"
            return data

        assert request("GET", "big") == big
        assert request("GET", "small") == small
        new = os.urandom(9 * MiB)
        request("PUT", "new", new)
        assert request("GET", "big") == big
        assert request("GET", "new") == new
    finally:
        conn.close()


def test_a_client_that_leaves_mid_body_stops_the_threads_and_the_server_keeps_serving(
        gateway: Gateway) -> None:
    body = put(gateway, "gone", "obj", 64 * MiB)
    pid = gateway.proc.pid
    s3 = client_for(gateway)
    assert s3.get_object(Bucket="gone", Key="obj")["Body"].read() == body  # chunk files open
    wait_for(lambda: not busy_body_threads(pid), what="the body threads to end")
    sockets = open_sockets(pid)
    for linger in (False, True):
        s = raw_get(gateway, "gone", "obj", rcvbuf=64 << 10)
        got = s.recv(1 << 20)
        assert got.startswith(b"HTTP/1.1 200")
        wait_for(lambda: "body-send" in body_threads(pid), what="the sender thread to start")
        if linger:  # a reset rather than a close
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        wait_for(lambda: not busy_body_threads(pid), what="the body threads to end")
        wait_for(lambda: open_sockets(pid) <= sockets, what="the connection's sockets to close")
        # Workers go back to waiting, a bounded few of them (IDLE_WORKERS) a process.
        assert len(body_threads(pid)) <= 4 * len(serving_pids(pid)), body_threads(pid)
    assert s3.get_object(Bucket="gone", Key="obj")["Body"].read() == body
    got = s3.get_object(Bucket="gone", Key="obj", Range="bytes=5-10485765")["Body"].read()
    assert got == body[5:10485766]


def test_a_corrupt_block_mid_body_is_never_sent_and_the_connection_is_cut(
        gateway: Gateway) -> None:
    body = put(gateway, "rot", "obj", 24 * MiB)
    chunk_files = [p for p in (gateway.data / "chunks").rglob("*")
                   if p.is_file() and not p.name.startswith(".")]
    assert chunk_files
    bad_at = 2 * MiB + 7  # in every chunk file: the first bad byte of the object is here
    for p in chunk_files:
        with open(p, "r+b") as f:
            f.seek(bad_at)
            old = f.read(1)
            f.seek(bad_at)
            f.write(bytes([old[0] ^ 0x01]))
    s = raw_get(gateway, "rot", "obj")
    with s:
        head, got = read_response(s)
    assert head.startswith(b"HTTP/1.1 200")
    assert len(got) <= bad_at, "bytes of the corrupt block were sent"
    assert got == body[:len(got)]
    wait_for(lambda: "read failed mid-body" in gateway.log(), what="the corruption logged")
    wait_for(lambda: not busy_body_threads(gateway.proc.pid), what="the body threads to end")
    assert gateway.get("/_samebytes/health/ready")[0] == 200
    other = put(gateway, "rot", "fine", 10 * MiB)
    assert client_for(gateway).get_object(Bucket="rot", Key="fine")["Body"].read() == other


@pytest.mark.slow  # aiohttp's two SHUTDOWN_TIMEOUT phases: a minute, on either path
def test_a_server_stop_while_a_client_stalls_mid_body_does_not_hang(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "data")
    try:
        put(gw, "stall", "obj", 64 * MiB)
        s = raw_get(gw, "stall", "obj", rcvbuf=64 << 10)
        with s:
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            wait_for(lambda: "body-send" in body_threads(gw.proc.pid), what="the sender thread")
            # The client reads nothing more: the sender waits in poll() for room. The
            # gateway gives in-flight requests their time, then cancels them: the
            # cancelled send must stop its threads and let the process exit.
            assert gw.stop(timeout=2 * SHUTDOWN_TIMEOUT + 60) == 0
    finally:
        gw.stop()


def test_large_gets_from_prefork_workers_return_the_stored_bytes(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "data", "--workers", "2")
    try:
        body = put(gw, "pre", "obj", 16 * MiB + 5)
        s3 = client_for(gw)
        for _ in range(4):  # spread over both workers
            assert s3.get_object(Bucket="pre", Key="obj")["Body"].read() == body
        got = s3.get_object(Bucket="pre", Key="obj", Range="bytes=3-12582915")["Body"].read()
        assert got == body[3:12582916]
        # Served by the workers' threads (kept afterwards, idle), not the loops' path.
        children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
        assert any(body_threads(int(c)) for c in children), children
    finally:
        gw.stop()
