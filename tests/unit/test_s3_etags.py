"""The S3 door's ETag of an object is one value: PUT, HEAD/GET and listings agree."""

from __future__ import annotations

import hashlib
import stat

from gateway.s3.buckets import _entries
from gateway.s3.objects import object_etag
from gateway.vfs import Inode, ListPage

EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def _inode(ino: int, mode: int, etag: str = "", size: int = 0) -> Inode:
    return Inode(ino=ino, mode=mode, uid=0, gid=0, size=size, mtime_ns=10**18 + ino,
                 ctime_ns=10**18 + ino, etag=etag)


def test_a_folder_key_has_the_md5_of_an_empty_body() -> None:
    # `dir/` reads as zero bytes; SDKs (aws-sdk-java v1, so Hadoop S3A) compare a PUT's
    # ETag with the MD5 they computed of the empty body.
    assert object_etag(_inode(2, stat.S_IFDIR | 0o755)) == EMPTY_MD5


def test_a_file_without_a_known_md5_gets_a_stable_non_md5_etag() -> None:
    f = _inode(3, stat.S_IFREG | 0o644, size=5)
    assert object_etag(f) == object_etag(f) and object_etag(f).endswith("-0")
    assert object_etag(_inode(4, stat.S_IFREG | 0o644, etag="abc", size=5)) == "abc"


def test_listings_show_the_same_etag_as_head() -> None:
    page = ListPage(keys=[(b"dir/", _inode(2, stat.S_IFDIR | 0o755)),
                          (b"mount-written", _inode(3, stat.S_IFREG | 0o644, size=5)),
                          (b"put", _inode(4, stat.S_IFREG | 0o644, etag="0" * 32, size=5))])
    entries = _entries(None, page, fetch_owner=False)  # type: ignore[arg-type]
    assert [e.etag for e in entries] == [object_etag(i) for _, i in page.keys]
    assert entries[0].etag == EMPTY_MD5 and all(e.etag for e in entries)
