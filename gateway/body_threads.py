"""Sending a large response body from two worker threads, straight on the connection's
socket, while the event loop waits.

Why: on the loop, a big GET reads each piece (pread + checksum) and then sends it (the
kernel's copy into the socket), one after the other on one thread; the two copies are
about half of a GET's CPU. With a reader thread and a sender thread they overlap on two
cores: a 64 MiB GET ran ~1.3x the loop's rate at ~3/4 of its server CPU per MB (see
the commit that added this module for figures). os.preadv and socket.send release the
GIL; xxhash releases it only for large inputs, so the reader's 4 KiB block sums hold
it ~30 us a MiB, while the sender spends its time inside send() without it.

The contract (pure mechanics: no HTTP, no S3):

- The caller has written the response head through its transport and nothing else
  writes to that transport until ``send_body`` returns (an HTTP/1.1 server handles one
  request of a connection at a time); ``wait_until_flushed`` makes sure the head has
  left the transport's buffer, so our bytes follow it on the wire.
- ``read(i, buf)`` returns piece i's bytes, usually a view of buf (one of a few
  recycled buffers); it runs on the reader thread and may block on the disk. The bytes
  it returns are sent as they are: a reader that verifies checksums there, into the
  buffer that is then sent, leaves no window for the bytes to change between check and
  send (unlike sendfile or mmap).
- Memory is bounded by ``buffers`` buffers: the reader takes a free one per piece and
  the sender gives it back once the socket has taken its bytes, so a slow client stops
  the reader, not the server's memory.
- The socket stays non-blocking: O_NONBLOCK belongs to the open file description, which
  our dup() shares with the loop's transport, so flipping it would change the loop's
  socket too. The sender polls for POLLOUT on EAGAIN instead.
- Errors: the reader's exception is raised from ``send_body`` once the pieces before it
  are sent; a failed send raises ConnectionResetError. Either way the body is short and
  the caller must drop the connection. Cancelling ``send_body`` stops both threads
  (shutdown() of the socket wakes a sender blocked in poll) without waiting for them.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import select
import socket
import threading
from collections.abc import Callable
from typing import cast

from chunkstore.buffers import unfilled_buffer

# Buffers one body cycles through: one being read, one being sent, one ready between
# them so neither thread waits for the other at a piece boundary.
BUFFERS = 3
# A sender blocked on a full socket looks at its stop flag this often (seconds); a stop
# also shuts the socket down, which wakes the poll at once: this is only the backstop.
POLL_SECONDS = 0.5
# How long the response head may take to leave the transport's buffer before the
# caller is told to keep to the loop's own path (a client not reading at all).
FLUSH_SECONDS = 1.0

# Bodies sent by threads at once, per process: each holds two threads and BUFFERS
# buffers; past this many a caller keeps to its loop's own path (``has_room``), so a
# crowd of large GETs cannot make hundreds of threads.
MAX_SENDS = 16

Read = Callable[[int, bytearray], "bytes | bytearray | memoryview"]

_END = object()


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Stopped(Exception):
    """The loop cancelled the send."""


_active = 0  # bodies being sent by threads (counted on the event loop's thread)


def has_room() -> bool:
    """Whether another body may be sent by threads now (MAX_SENDS)."""
    return _active < MAX_SENDS


def plain_socket(transport: asyncio.BaseTransport | None) -> socket.socket | None:
    """The transport's socket when its bytes go to the socket as they are (not TLS, not
    closing), else None."""
    if transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None or \
            transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    return sock  # type: ignore[no-any-return]


async def wait_until_flushed(transport: asyncio.WriteTransport,
                             timeout: float = FLUSH_SECONDS) -> bool:
    """True once nothing waits in the transport's write buffer (the response head is in
    the kernel), False if that takes longer than timeout or the transport closes."""
    if transport.get_write_buffer_size() == 0:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await asyncio.sleep(0.001)
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() == 0:
            return True
    return False


class _Job:
    """One body's two threads and what they share."""

    def __init__(self, fd: int, pieces: int, read: Read, buffer_size: int, buffers: int,
                 done: Callable[[BaseException | None], None]) -> None:
        # Our own descriptor of the socket: the loop may close its own at any time (a
        # peer reset, a shutdown) and the number could then name another file.
        self._sock = socket.socket(fileno=os.dup(fd))
        self._pieces = pieces
        self._read = read
        self._done = done
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards closing _sock against stop()'s shutdown
        self._closed = False
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[object] = queue.SimpleQueue()
        for _ in range(max(1, min(buffers, pieces))):
            self._free.put(unfilled_buffer(buffer_size))

    def start(self) -> bool:
        """Hand the reader and the sender to two worker threads; False (nothing sent,
        nothing left running) when the process can start no more threads."""
        if not _run_in_worker(self._reader, "body-read"):
            self._sock.close()
            return False
        if not _run_in_worker(self._sender, "body-send"):
            self._stop.set()
            self._free.put(None)
            self._sock.close()
            return False
        return True

    def stop(self) -> None:
        """From the loop: make both threads end soon, the sender even while blocked."""
        self._stop.set()
        self._free.put(None)
        with self._lock:
            if not self._closed:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _reader(self) -> None:
        last: object = _END  # always sent last: a sender waiting for a piece must wake
        try:
            for i in range(self._pieces):
                buf = self._free.get()
                if buf is None or self._stop.is_set():
                    break  # the sender sees the stop flag at _END
                self._ready.put((buf, self._read(i, buf)))
        except BaseException as e:  # handed to the sender, which reports it in order
            last = _Failed(e)
        finally:
            self._ready.put(last)

    def _sender(self) -> None:
        outcome: BaseException | None = None
        try:
            poller = select.poll()
            poller.register(self._sock, select.POLLOUT)
            while True:
                item = self._ready.get()
                if item is _END:
                    if self._stop.is_set():
                        raise _Stopped
                    break
                if isinstance(item, _Failed):
                    outcome = item.exc
                    break
                buf, data = cast("tuple[bytearray, bytes | bytearray | memoryview]", item)
                self._send_all(memoryview(data).cast("B"), poller)
                del data
                self._free.put(buf)
        except _Stopped:
            outcome = ConnectionResetError(errno.ECONNABORTED, "the body's send was stopped")
        except OSError as e:
            outcome = ConnectionResetError(e.errno or errno.ECONNRESET, f"sending the body: {e}")
        except BaseException as e:
            outcome = e
        finally:
            self._free.put(None)  # a reader waiting for a buffer ends
            with self._lock:
                self._closed = True
                self._sock.close()
        self._done(outcome)

    def _send_all(self, view: memoryview, poller: select.poll) -> None:
        send = self._sock.send
        while view:
            if self._stop.is_set():
                raise _Stopped
            try:
                n = send(view)
            except BlockingIOError:
                for _, ev in poller.poll(POLL_SECONDS * 1000):
                    if ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                        if self._stop.is_set():
                            raise _Stopped from None
                        # The next send names the error (EPIPE, ECONNRESET).
                continue
            view = view[n:]


# Worker threads kept waiting for the next body's reader or sender: starting two
# threads cost ~0.1-0.3 ms of CPU a body here, a tenth of an 8 MiB GET's.
IDLE_WORKERS = 4
_idle: list[_Worker] = []
_idle_lock = threading.Lock()


class _Worker:
    """A thread that runs one task after another while it is needed. Named after its
    task while running it (body-read, body-send) and body-idle between tasks, for
    Python and the OS alike (top -H, py-spy, /proc/PID/task/*/comm)."""

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue[tuple[Callable[[], None], str]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="body-idle", daemon=True)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            task, name = self.tasks.get()
            me.name = name
            _name_os_thread(name)
            task()  # a task reports its own errors (the reader and sender catch all)
            del task  # it holds its body's buffers: not while waiting for the next
            me.name = "body-idle"
            _name_os_thread("body-idle")
            with _idle_lock:
                if len(_idle) >= IDLE_WORKERS:
                    return
                _idle.append(self)


def _run_in_worker(task: Callable[[], None], name: str) -> bool:
    """Run task on an idle worker thread, or a new one; False if none can be started."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
        try:
            worker.thread.start()
        except RuntimeError:
            return False
    worker.tasks.put((task, name))
    return True


def _name_os_thread(name: str) -> None:
    """Give the calling thread an OS-visible name: Python 3.11 names threads only for
    itself."""
    if _prctl is not None:
        _prctl(_PR_SET_NAME, name.encode(), 0, 0, 0)


def _find_prctl() -> Callable[..., int] | None:
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None  # not Linux: threads keep their process's name


_PR_SET_NAME = 15
_prctl = _find_prctl()


async def send_body(sock: socket.socket, pieces: int, read: Read, *, buffer_size: int,
                    buffers: int = BUFFERS) -> bool:
    """Send pieces 0..pieces-1, each read(i, buf) into a buffer of buffer_size bytes, on
    sock from two threads; True once the last byte is in the kernel, False when no
    threads could be started (nothing was sent). See the module's contract for errors
    and cancellation."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def report(outcome: BaseException | None) -> None:
        global _active
        _active -= 1  # the sender thread has ended (or is about to: nothing after this)
        if finished.done():
            return
        if outcome is None:
            finished.set_result(None)
        else:
            finished.set_exception(outcome)

    def done(outcome: BaseException | None) -> None:  # on the sender thread
        try:
            loop.call_soon_threadsafe(report, outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    global _active
    try:
        job = _Job(sock.fileno(), pieces, read, buffer_size, buffers, done)
    except OSError:
        return False  # no descriptor to dup (EMFILE) or no memory: the loop's path
    if not job.start():
        return False
    _active += 1
    try:
        await finished
        return True
    except asyncio.CancelledError:
        job.stop()
        raise
    except BaseException:
        job.stop()  # the reader may still be filling buffers
        raise
