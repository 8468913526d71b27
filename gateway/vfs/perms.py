"""One permission model for every door: POSIX mode bits and ownership.

A door builds a Caller from what its protocol says (the S3 identity's uid/gid,
AUTH_SYS credentials, the FUSE request context) and the vfs checks it here.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from metadata import Inode

from .errors import AccessDenied, NotPermitted

R, W, X = 4, 2, 1


@dataclass(frozen=True, slots=True)
class Caller:
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


ROOT = Caller(0, 0)


def allowed(caller: Caller, inode: Inode, want: int) -> bool:
    """Does caller have every bit of want (R|W|X) on inode?"""
    if caller.is_root:
        # root passes everything but executing a file that no one may execute
        if want & X and not inode.is_dir and not inode.mode & 0o111:
            return False
        return True
    if caller.uid == inode.uid:
        bits = (inode.mode >> 6) & 7
    elif caller.in_group(inode.gid):
        bits = (inode.mode >> 3) & 7
    else:
        bits = inode.mode & 7
    return bits & want == want


def check_search(caller: Caller, ino: int, mode: int, uid: int, gid: int) -> None:
    """check(caller, directory, X) from a directory's permission fields alone (a path
    walk needs no more of the directories it passes through)."""
    if caller.is_root:
        return  # root searches every directory (X on a directory is never refused to root)
    if caller.uid == uid:
        bits = (mode >> 6) & 7
    elif caller.in_group(gid):
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    if not bits & X:
        raise AccessDenied(f"permission denied on inode {ino}")


def check(caller: Caller, inode: Inode, want: int) -> None:
    if not allowed(caller, inode, want):
        raise AccessDenied(f"permission denied on inode {inode.ino}")


def check_owner(caller: Caller, inode: Inode) -> None:
    if not caller.is_root and caller.uid != inode.uid:
        raise NotPermitted(f"not the owner of inode {inode.ino}")


def check_sticky(caller: Caller, parent: Inode, child: Inode) -> None:
    """In a sticky directory only the owner of the entry or the directory may remove it."""
    if (parent.mode & stat.S_ISVTX and not caller.is_root
            and caller.uid not in (parent.uid, child.uid)):
        raise NotPermitted("sticky directory: not the owner")


def check_modify_dir(caller: Caller, parent: Inode) -> None:
    """Adding or removing an entry needs write and search on the directory."""
    check(caller, parent, W | X)
