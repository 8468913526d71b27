"""The NFS door at the RPC level against a running `samebytes serve`: record marking,
pipelining, RPC errors, MOUNT v3, handles, export rules, the portmapper, and garbage
input that must close one connection and leave everyone else served."""

from __future__ import annotations

import os
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.nfs.rpc import AcceptStat, AuthStat, RejectStat, encode_call, frame, record_mark
from gateway.nfs.xdr import Packer
from tests.conftest import Gateway, free_port, start_gateway
from tests.integration.conftest import client_for
from tests.nfs_client import (
    MOUNT_PROG, MOUNTPROC3_DUMP, MOUNTPROC3_EXPORT, MOUNTPROC3_MNT, MOUNTPROC3_NULL,
    MOUNTPROC3_UMNT, MOUNTPROC3_UMNTALL, NFS_PROG, NFSACL_PROG, NLM_PROG, PORTMAP_PROG,
    MountError, RpcClient, pack_dirpath,
)

GETATTR, LOOKUP = 1, 3
NFS3_OK, NFS3ERR_ACCES, NFS3ERR_STALE, NFS3ERR_BADHANDLE = 0, 13, 70, 10001
MNT3ERR_NOENT, MNT3ERR_ACCES = 2, 13


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(tmp_path_factory.mktemp("nfsrpc") / "data",
                      "--export", "/:no_root_squash", "--export", "/later:no_root_squash",
                      "--export", "/walled:clients=10.0.0.0/8", "--export", "/squashed")
    s3 = client_for(g)
    s3.create_bucket(Bucket="walled")
    s3.create_bucket(Bucket="squashed")  # private: mode 0700, owned by root
    s3.put_object(Bucket="squashed", Key="f", Body=b"x")
    try:
        yield g
    finally:
        assert g.stop() == 0, g.log()


def port(gw: Gateway) -> int:
    assert gw.nfs_port is not None
    return gw.nfs_port


def fh_args(fh: bytes) -> bytes:
    p = Packer()
    p.pack_opaque(fh)
    return p.get_buffer()


def getattr_status(c: RpcClient, fh: bytes) -> int:
    return c.call_ok(NFS_PROG, 3, GETATTR, fh_args(fh)).unpack_uint()


def lookup(c: RpcClient, dir_fh: bytes, name: bytes) -> tuple[int, bytes]:
    p = Packer()
    p.pack_opaque(dir_fh)
    p.pack_string(name)
    body = c.call_ok(NFS_PROG, 3, LOOKUP, p.get_buffer())
    status = body.unpack_uint()
    return status, body.unpack_opaque(64) if status == NFS3_OK else b""


def still_serving(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        assert c.call(NFS_PROG, 3, 0).accept_stat == AcceptStat.SUCCESS


# -- calls and replies -------------------------------------------------------------------

def test_null_answers_on_nfs_and_mount_with_auth_sys_and_auth_none(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        for prog in (NFS_PROG, MOUNT_PROG):
            for cred in (c.cred, None):
                body = c.call_ok(prog, 3, 0, b"", cred)
                assert body.remaining() == 0


def test_many_pipelined_calls_on_one_connection_are_all_answered_by_xid(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        root = c.mount("/")
        sent: dict[int, str] = {}
        for i in range(600):  # far more than the server runs at once per connection
            if i % 3 == 0:
                sent[c.send_call(NFS_PROG, 3, GETATTR, fh_args(root))] = "getattr"
            elif i % 3 == 1:
                sent[c.send_call(MOUNT_PROG, 3, MOUNTPROC3_MNT, pack_dirpath("/"))] = "mnt"
            else:
                sent[c.send_call(NFS_PROG, 3, 0)] = "null"
        seen = {}
        for _ in range(len(sent)):
            r = c.recv_reply()
            assert r.accept_stat == AcceptStat.SUCCESS and r.body is not None
            kind = sent[r.xid]
            if kind == "getattr":
                assert r.body.unpack_uint() == NFS3_OK
            elif kind == "mnt":
                assert r.body.unpack_uint() == 0 and r.body.unpack_opaque(64) == root
            else:
                assert r.body.remaining() == 0
            seen[r.xid] = kind
        assert seen == sent


def test_a_record_in_many_fragments_is_one_call(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        msg = encode_call(77, MOUNT_PROG, 3, MOUNTPROC3_MNT, pack_dirpath("/"), c.cred)
        parts = [msg[i:i + 5] for i in range(0, len(msg), 5)]
        c.send_raw(b"".join(record_mark(len(p), last=i == len(parts) - 1) + p
                            for i, p in enumerate(parts)))
        r = c.recv_reply()
        assert r.xid == 77 and r.body is not None and r.body.unpack_uint() == 0


@pytest.mark.parametrize("prog, vers, proc, stat, mismatch", [
    (NLM_PROG, 4, 0, AcceptStat.PROG_UNAVAIL, None),
    (NFSACL_PROG, 3, 0, AcceptStat.PROG_UNAVAIL, None),
    (NFS_PROG, 4, 0, AcceptStat.PROG_MISMATCH, (3, 3)),  # mount.nfs then falls back to v3
    (NFS_PROG, 2, 0, AcceptStat.PROG_MISMATCH, (3, 3)),
    (MOUNT_PROG, 1, 0, AcceptStat.PROG_MISMATCH, (3, 3)),
    (NFS_PROG, 3, 22, AcceptStat.PROC_UNAVAIL, None),
    (MOUNT_PROG, 3, 6, AcceptStat.PROC_UNAVAIL, None),
])
def test_unknown_programs_versions_and_procedures_get_their_rpc_error(
        gw: Gateway, prog: int, vers: int, proc: int, stat: AcceptStat,
        mismatch: tuple[int, int] | None) -> None:
    with RpcClient(port(gw)) as c:
        r = c.call(prog, vers, proc)
        assert (r.accepted, r.accept_stat, r.mismatch) == (True, stat, mismatch)
        assert c.call(NFS_PROG, 3, 0).accept_stat == AcceptStat.SUCCESS  # connection kept


@pytest.mark.parametrize("args", [
    b"",  # no path at all
    b"\xff\xff\xff\xff",  # a path length that lies
    struct.pack(">I", 2000) + b"/" * 2000,  # over MNTPATHLEN
    pack_dirpath("/") + b"\0\0\0\0",  # trailing bytes
])
def test_undecodable_arguments_are_garbage_args_and_the_connection_stays(
        gw: Gateway, args: bytes) -> None:
    with RpcClient(port(gw)) as c:
        assert c.call(MOUNT_PROG, 3, MOUNTPROC3_MNT, args).accept_stat == AcceptStat.GARBAGE_ARGS
        assert c.call(NFS_PROG, 3, GETATTR, b"\0\0\0\x40").accept_stat == AcceptStat.GARBAGE_ARGS
        assert c.mount("/")


def test_wrong_rpc_version_and_unserved_auth_flavors_are_denied(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        c.send_raw(frame(encode_call(5, NFS_PROG, 3, 0, rpcvers=3)))
        r = c.recv_reply()
        assert (r.xid, r.accepted, r.reject_stat, r.mismatch) == (5, False, RejectStat.RPC_MISMATCH, (2, 2))
        gss = bytearray(encode_call(6, NFS_PROG, 3, 0))
        gss[24:28] = struct.pack(">I", 6)  # cred flavor RPCSEC_GSS, empty body
        c.send_raw(frame(bytes(gss)))
        r = c.recv_reply()
        assert (r.xid, r.reject_stat, r.auth_stat) == (6, RejectStat.AUTH_ERROR, AuthStat.AUTH_TOOWEAK)
        assert c.call(NFS_PROG, 3, 0).accept_stat == AcceptStat.SUCCESS


# -- garbage closes one connection only ------------------------------------------------------

GARBAGE = {
    "huge fragment length": record_mark(0x7FFF_FFFF) + b"x" * 100,
    "record over the limit in fragments": b"".join(
        record_mark(600_000, last=False) + bytes(600_000) for _ in range(2)),
    "too short for an RPC header": record_mark(3) + b"abc",
    "a REPLY sent to the server": frame(struct.pack(">II", 1, 1) + bytes(16)),
    "random bytes": frame(os.urandom(2)) + os.urandom(200),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_closes_that_connection_and_others_keep_working(gw: Gateway, name: str) -> None:
    with RpcClient(port(gw)) as bystander, RpcClient(port(gw)) as bad:
        bystander.send_call(NFS_PROG, 3, 0)  # in flight while the bad client misbehaves
        try:
            bad.send_raw(GARBAGE[name])
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert bad.wait_closed()
        assert bystander.recv_reply().accept_stat == AcceptStat.SUCCESS
        assert bystander.mount("/")
    still_serving(gw)


def test_a_truncated_record_then_hang_up_leaves_the_server_serving(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        c.send_raw(record_mark(1000) + b"\0" * 300)
    with RpcClient(port(gw)) as c:  # a lying length inside the RPC header
        c.send_raw(frame(struct.pack(">IIIIII", 9, 0, 2, NFS_PROG, 3, 0) + b"\0\0\0\1\xff\xff\xff\xff"))
        r = c.recv_reply()
        assert (r.xid, r.reject_stat, r.auth_stat) == (9, RejectStat.AUTH_ERROR, AuthStat.AUTH_BADCRED)
    still_serving(gw)


# -- MOUNT ---------------------------------------------------------------------------------

def test_mnt_dump_umnt_and_export_list(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        root = c.mount("/")
        assert 0 < len(root) <= 64
        body = c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_DUMP)
        mounts = []
        while body.unpack_bool():
            mounts.append((body.unpack_string(), body.unpack_string()))
        assert (b"127.0.0.1", b"/") in mounts
        c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_UMNT, pack_dirpath("/"))
        body = c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_DUMP)
        assert (b"127.0.0.1", b"/") not in [
            (body.unpack_string(), body.unpack_string()) for _ in iter(body.unpack_bool, False)]
        c.mount("/")
        c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_UMNTALL)
        assert not c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_DUMP).unpack_bool()

        body = c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_EXPORT)
        exports = {}
        while body.unpack_bool():
            path = body.unpack_string()
            groups = []
            while body.unpack_bool():
                groups.append(body.unpack_string())
            exports[path] = groups
        body.done()
        assert exports == {b"/": [], b"/later": [], b"/walled": [b"10.0.0.0/8"], b"/squashed": []}
        assert c.call_ok(MOUNT_PROG, 3, MOUNTPROC3_NULL).remaining() == 0


def test_mnt_of_a_path_outside_every_export_or_missing_is_noent(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        for path in ("/no/such/folder", "/later"):
            with pytest.raises(MountError) as e:
                c.mount(path)
            assert e.value.status == MNT3ERR_NOENT


def test_an_export_of_a_bucket_made_after_start_mounts_once_it_exists(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        with pytest.raises(MountError):
            c.mount("/later")
        s3 = client_for(gw)
        s3.create_bucket(Bucket="later")
        s3.put_object(Bucket="later", Key="a/b.txt", Body=b"hi")
        fh = c.mount("/later")
        status, child = lookup(c, fh, b"a")
        assert status == NFS3_OK
        assert c.mount("/later/a") == child  # a folder below an export mounts too
        assert lookup(c, c.mount("/"), b"later")[1] != fh  # bound to its export


def test_a_client_outside_the_export_networks_is_refused(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        with pytest.raises(MountError) as e:
            c.mount("/walled")
        assert e.value.status == MNT3ERR_ACCES


def test_root_is_squashed_by_default_and_kept_with_no_root_squash(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:  # AUTH_SYS uid 0 both times
        assert lookup(c, c.mount("/squashed"), b"f")[0] == NFS3ERR_ACCES
        _, bucket = lookup(c, c.mount("/"), b"squashed")
        assert lookup(c, bucket, b"f")[0] == NFS3_OK


# -- handles --------------------------------------------------------------------------------

def test_forged_and_altered_handles_are_badhandle(gw: Gateway) -> None:
    with RpcClient(port(gw)) as c:
        root = c.mount("/")
        assert getattr_status(c, root) == NFS3_OK
        altered = bytearray(root)
        altered[8] ^= 1  # another inode number, same mac
        for fh in (bytes(altered), root[:-1], root + b"\0", b"", os.urandom(len(root))):
            assert getattr_status(c, fh) == NFS3ERR_BADHANDLE


def test_a_deleted_files_handle_is_stale(gw: Gateway) -> None:
    s3 = client_for(gw)
    s3.create_bucket(Bucket="stale")
    s3.put_object(Bucket="stale", Key="f", Body=b"x")
    with RpcClient(port(gw)) as c:
        status, bucket = lookup(c, c.mount("/"), b"stale")
        status, fh = lookup(c, bucket, b"f")
        assert status == NFS3_OK and getattr_status(c, fh) == NFS3_OK
        s3.put_object(Bucket="stale", Key="f", Body=b"new")  # overwrite: a new inode
        assert getattr_status(c, fh) == NFS3ERR_STALE
        status, fh = lookup(c, bucket, b"f")
        s3.delete_object(Bucket="stale", Key="f")
        assert getattr_status(c, fh) == NFS3ERR_STALE


def test_handles_survive_a_restart_and_a_new_key_refuses_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    g = start_gateway(data)
    try:
        client_for(g).create_bucket(Bucket="bkt")
        with RpcClient(port(g)) as c:
            status, fh = lookup(c, c.mount("/"), b"bkt")
            assert status == NFS3_OK
    finally:
        assert g.stop() == 0
    g = start_gateway(data)
    try:
        with RpcClient(port(g)) as c:
            assert getattr_status(c, fh) == NFS3_OK
    finally:
        assert g.stop() == 0
    (data / "nfs-handle.key").unlink()
    g = start_gateway(data)
    try:
        with RpcClient(port(g)) as c:
            assert getattr_status(c, fh) == NFS3ERR_BADHANDLE
    finally:
        assert g.stop() == 0


# -- portmapper and lifecycle -------------------------------------------------------------------

def test_the_portmapper_names_the_nfs_port(tmp_path: Path) -> None:
    pm = free_port()
    g = start_gateway(tmp_path / "data", "--portmap", f"127.0.0.1:{pm}")
    try:
        with RpcClient(pm, cred=None) as c:
            assert c.call_ok(PORTMAP_PROG, 2, 0).remaining() == 0
            for prog, prot, want in ((NFS_PROG, 6, port(g)), (MOUNT_PROG, 6, port(g)),
                                     (NFS_PROG, 17, 0), (NLM_PROG, 6, 0)):
                p = Packer()
                for v in (prog, 3, prot, 0):
                    p.pack_uint(v)
                assert c.call_ok(PORTMAP_PROG, 2, 3, p.get_buffer()).unpack_uint() == want
            body = c.call_ok(PORTMAP_PROG, 2, 4)
            maps = []
            while body.unpack_bool():
                maps.append(tuple(body.unpack_uint() for _ in range(4)))
            assert (NFS_PROG, 3, 6, port(g)) in maps and (MOUNT_PROG, 3, 6, port(g)) in maps
    finally:
        assert g.stop() == 0


def test_nfs_off_serves_no_nfs_port(tmp_path: Path) -> None:
    g = start_gateway(tmp_path / "data", "--nfs", "off")
    try:
        assert g.nfs_port is None and g.announce.get("nfs") is None
    finally:
        assert g.stop() == 0


def test_sigterm_with_open_nfs_connections_stops_cleanly(tmp_path: Path) -> None:
    g = start_gateway(tmp_path / "data")
    c = RpcClient(port(g))
    try:
        c.mount("/")
        c.send_raw(record_mark(100) + b"\0" * 10)  # a half-sent record
        assert g.stop(signal.SIGTERM) == 0
        assert c.wait_closed()
    finally:
        c.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port(g)), timeout=5).close()
