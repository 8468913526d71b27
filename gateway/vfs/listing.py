"""S3 listing as one ordered walk of directory entries. Pure over a read txn.

Because a directory's sort name ends in '/', a depth-first walk of ``dirent`` in
key order yields keys in exact S3 byte order (see ``metadata.schema``). The walk
starts at the directory the prefix names and at the entry the marker names; with
the delimiter '/', a subdirectory is one CommonPrefix and is never entered. Nothing
is done per key beyond reading its inode.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from metadata import FLAG_MARKER, Inode, Txn
from metadata import namespace as ns
from metadata.schema import U64, decode_inode, read_u64


@dataclass(slots=True)
class ListPage:
    keys: list[tuple[bytes, Inode]] = field(default_factory=list)
    prefixes: list[bytes] = field(default_factory=list)
    truncated: bool = False
    next_marker: bytes | None = None  # the last key or prefix returned


def _walk(txn: Txn, ino: int, base: bytes, name_prefix: bytes, after: bytes | None,
          roll_up_dirs: bool, can_list: Callable[[Inode], bool]) -> Iterator[tuple[bytes, Inode | None]]:
    """(key, inode) in key order; inode None for a directory rolled up as a prefix."""
    start = name_prefix
    if after is not None and after.startswith(base) and len(after) > len(base):
        seg = after[len(base):].split(b"/", 1)[0]
        start = max(start, seg)
    # ns.entries inlined (its generator layer cost a tenth of a page); a file's inode read
    # as ns.get_inode does.
    prefix = U64.pack(ino)
    for dkey, value in txn.prefix("dirent", prefix, start):
        sname = dkey[8:]
        if not sname.startswith(name_prefix):
            return
        key = base + sname
        child = read_u64(value)
        if not sname.endswith(b"/"):
            raw = txn.get("inode", U64.pack(child))
            if raw is not None:
                yield key, decode_inode(child, raw)
            continue
        if roll_up_dirs:
            yield key, None
            continue
        if after is not None and key <= after and not after.startswith(key):
            continue  # the whole subtree sorts before the marker
        inode = ns.get_inode(txn, child)
        if inode is None or not can_list(inode):
            continue
        if inode.flags & FLAG_MARKER or ns.is_empty_dir(txn, child):
            yield key, inode
        yield from _walk(txn, child, key, b"", after, False, can_list)


def list_page(txn: Txn, bucket_ino: int, *, prefix: bytes = b"", delimiter: bytes | None = None,
              after: bytes | None = None, max_keys: int = 1000,
              can_list: Callable[[Inode], bool] = lambda _: True) -> ListPage:
    """Keys > after under prefix; with a delimiter, rolled up into CommonPrefixes."""
    page = ListPage()
    cut = prefix.rfind(b"/")
    dir_path, name_prefix = (prefix[:cut], prefix[cut + 1:]) if cut >= 0 else (b"", prefix)
    ino = bucket_ino
    folder: Inode | None = None
    if dir_path:
        for seg in dir_path.split(b"/"):
            found = ns.lookup(txn, ino, seg) if seg else None
            if found is None or not found[1].endswith(b"/"):
                return page  # no directory holds keys with this prefix
            folder = ns.get_inode(txn, found[0])
            if folder is None or not can_list(folder):
                return page
            ino = found[0]
    base = dir_path + b"/" if dir_path else b""
    delim = delimiter or None
    roll = delim == b"/"
    last_prefix: bytes | None = None
    walk = _walk(txn, ino, base, name_prefix, after, roll, can_list)
    if folder is not None and not name_prefix and (
            folder.flags & FLAG_MARKER or ns.is_empty_dir(txn, ino)):
        # A prefix "dir/" names the folder's own key first, when it is one.
        walk = itertools.chain([(base, folder)], walk)
    for key, inode in walk:
        if delim is not None:
            rel = key[len(prefix):]
            i = rel.find(delim)
            if i >= 0:
                cp = prefix + rel[:i + len(delim)]
                if (after is not None and cp <= after) or cp == last_prefix:
                    continue
                if len(page.keys) + len(page.prefixes) >= max_keys:
                    page.truncated = True
                    return page
                page.prefixes.append(cp)
                page.next_marker = last_prefix = cp
                continue
        if after is not None and key <= after:
            continue
        if len(page.keys) + len(page.prefixes) >= max_keys:
            page.truncated = True
            return page
        assert inode is not None
        page.keys.append((key, inode))
        page.next_marker = key
    return page
