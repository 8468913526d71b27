"""XDR (RFC 4506): the external data representation under ONC RPC. Pure, no I/O.

Everything is big-endian and padded to 4-byte units. The Packer appends to one
bytearray (a reply is built once and written once); the Unpacker walks a
memoryview with an offset, so opaque data (WRITE payloads of up to 1 MiB) is
sliced without copying until the caller asks for bytes.

Every malformed input -- truncated data, a length that lies about what follows,
a value out of range, a length over the caller's limit -- raises XdrError (a
ValueError), never IndexError or struct.error, so a door maps exactly one type
to GARBAGE_ARGS.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by len % 4

U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class XdrError(ValueError):
    """The bytes are not a valid encoding of what was asked for."""


def _pad(n: int) -> int:
    return -n & 3


class Packer:
    """Appends XDR items to one growing buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def get_buffer(self) -> bytes:
        return bytes(self._buf)

    def get_bytearray(self) -> bytearray:
        """The buffer itself, without a copy (the caller must not pack more after)."""
        return self._buf

    def __len__(self) -> int:
        return len(self._buf)

    def pack_uint(self, v: int) -> None:
        try:
            self._buf += _U32.pack(v)
        except struct.error as e:
            raise XdrError(f"uint out of range: {v!r}") from e

    def pack_int(self, v: int) -> None:
        try:
            self._buf += _I32.pack(v)
        except struct.error as e:
            raise XdrError(f"int out of range: {v!r}") from e

    def pack_uhyper(self, v: int) -> None:
        try:
            self._buf += _U64.pack(v)
        except struct.error as e:
            raise XdrError(f"unsigned hyper out of range: {v!r}") from e

    def pack_hyper(self, v: int) -> None:
        try:
            self._buf += _I64.pack(v)
        except struct.error as e:
            raise XdrError(f"hyper out of range: {v!r}") from e

    def pack_bool(self, v: bool) -> None:
        self._buf += b"\0\0\0\1" if v else b"\0\0\0\0"

    def pack_enum(self, v: int) -> None:
        self.pack_int(v)

    def pack_fopaque(self, n: int, data: bytes | bytearray | memoryview) -> None:
        """Fixed-length opaque: exactly n bytes, then padding."""
        if len(data) != n:
            raise XdrError(f"fixed opaque wants {n} bytes, got {len(data)}")
        self._buf += data
        self._buf += _PAD[n & 3]

    def pack_opaque(self, data: bytes | bytearray | memoryview) -> None:
        """Variable-length opaque: length, bytes, padding."""
        n = len(data)
        if n > U32_MAX:
            raise XdrError("opaque too long")
        self._buf += _U32.pack(n)
        self._buf += data
        self._buf += _PAD[n & 3]

    def pack_string(self, data: bytes) -> None:
        """XDR strings are bytes on the wire (NFS names are not necessarily UTF-8)."""
        self.pack_opaque(data)

    def pack_array(self, items: Sequence[T] | Iterable[T], pack_item: Callable[[T], None]) -> None:
        """Variable-length array: count, then each item."""
        seq = items if isinstance(items, Sequence) else list(items)
        self.pack_uint(len(seq))
        for item in seq:
            pack_item(item)

    def pack_optional(self, value: T | None, pack_item: Callable[[T], None]) -> None:
        """`*T` in XDR: a bool, then the item when present."""
        if value is None:
            self._buf += b"\0\0\0\0"
        else:
            self._buf += b"\0\0\0\1"
            pack_item(value)

    def pack_raw(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes already in XDR form (a pre-encoded body), appended as they are."""
        self._buf += data


class Unpacker:
    """Reads XDR items from bytes, tracking the position."""

    __slots__ = ("_view", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        self._view = view
        self._pos = 0
        self._end = len(view)

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def done(self) -> None:
        """Raise XdrError unless every byte was consumed."""
        if self._pos != self._end:
            raise XdrError(f"{self._end - self._pos} unexpected bytes after the data")

    def rest(self) -> memoryview:
        """Everything not yet read (consumes it)."""
        v = self._view[self._pos:self._end]
        self._pos = self._end
        return v

    def _take(self, n: int) -> int:
        """Advance by n bytes; return the start offset."""
        p = self._pos
        if n > self._end - p:
            raise XdrError(f"truncated: wanted {n} bytes, {self._end - p} left")
        self._pos = p + n
        return p

    def unpack_uint(self) -> int:
        return int(_U32.unpack_from(self._view, self._take(4))[0])

    def unpack_int(self) -> int:
        return int(_I32.unpack_from(self._view, self._take(4))[0])

    def unpack_uhyper(self) -> int:
        return int(_U64.unpack_from(self._view, self._take(8))[0])

    def unpack_hyper(self) -> int:
        return int(_I64.unpack_from(self._view, self._take(8))[0])

    def unpack_bool(self) -> bool:
        v = self.unpack_uint()
        if v > 1:
            raise XdrError(f"bool must be 0 or 1, got {v}")
        return v == 1

    def unpack_enum(self) -> int:
        return self.unpack_int()

    def _fixed_view(self, n: int) -> memoryview:
        if n < 0:
            raise XdrError("negative length")
        padded = n + _pad(n)
        p = self._take(padded)
        if padded != n and any(self._view[p + n:p + padded]):
            raise XdrError("non-zero padding")
        return self._view[p:p + n]

    def unpack_fopaque(self, n: int) -> bytes:
        return bytes(self._fixed_view(n))

    def unpack_fopaque_view(self, n: int) -> memoryview:
        """Like unpack_fopaque, without the copy."""
        return self._fixed_view(n)

    def _length(self, max_len: int | None) -> int:
        n = self.unpack_uint()
        if max_len is not None and n > max_len:
            raise XdrError(f"length {n} over the limit {max_len}")
        if n > self._end - self._pos:
            raise XdrError(f"length {n} but only {self._end - self._pos} bytes follow")
        return n

    def unpack_opaque(self, max_len: int | None = None) -> bytes:
        return bytes(self._fixed_view(self._length(max_len)))

    def unpack_opaque_view(self, max_len: int | None = None) -> memoryview:
        """Like unpack_opaque, without the copy (a view into the record)."""
        return self._fixed_view(self._length(max_len))

    def unpack_string(self, max_len: int | None = None) -> bytes:
        return self.unpack_opaque(max_len)

    def unpack_array(self, unpack_item: Callable[[], T], max_items: int | None = None) -> list[T]:
        n = self.unpack_uint()
        if max_items is not None and n > max_items:
            raise XdrError(f"array of {n} items over the limit {max_items}")
        # Every item takes at least 4 bytes: a count no input could hold is a lie,
        # refused before allocating anything for it.
        if n * 4 > self._end - self._pos:
            raise XdrError(f"array of {n} items but only {self._end - self._pos} bytes follow")
        return [unpack_item() for _ in range(n)]

    def unpack_optional(self, unpack_item: Callable[[], T]) -> T | None:
        return unpack_item() if self.unpack_bool() else None
