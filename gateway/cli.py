"""The `samebytes` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from .config import DEFAULT_DATA, DEFAULT_S3, env, parse_hostport, parse_size


def _serve(args: argparse.Namespace) -> None:
    from .server import ServeConfig, run
    host, port = parse_hostport(args.s3)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    run(ServeConfig(data=Path(args.data), s3_host=host, s3_port=port,
                    chunk_size=parse_size(args.chunk_size), grace_seconds=args.grace,
                    gc_interval=args.gc_interval, region=args.region, domain=args.domain or None,
                    tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                    tls_key=Path(args.tls_key) if args.tls_key else None,
                    mount=Path(args.mount) if args.mount else None,
                    header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                    nfs=None if args.nfs.lower() in ("", "off", "none") else parse_hostport(args.nfs),
                    exports=tuple(args.export or ()),
                    portmap=parse_hostport(args.portmap) if args.portmap else None,
                    chunks=_chunks(args), workers=args.workers))


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def _chunks(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The --chunks options as a BackendSpec; None (no --chunks) means the backend the
    data folder records (local for a new one)."""
    from chunkstore.select import BackendSpec
    if not args.chunks:
        return None
    spec = BackendSpec(url=args.chunks, endpoint=args.chunks_endpoint or None,
                       region=args.chunks_region, addressing=args.chunks_addressing,
                       cache_size=parse_size(args.cache_size),
                       deadline=args.chunks_deadline)
    spec.validate()
    return spec


def _mount(args: argparse.Namespace) -> None:
    import signal

    import uvloop

    from .fuse.mount import mount, unmount
    from .vfs import Filesystem

    async def main() -> None:
        fs = Filesystem.from_data_dir(Path(args.data), chunk_size=parse_size(args.chunk_size),
                                      chunks=_chunks(args))
        try:
            await fs.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, unmount)
            await mount(fs, Path(args.mountpoint), debug=args.debug)
        finally:
            await fs.aclose()

    uvloop.run(main())


def _umount(args: argparse.Namespace) -> None:
    import subprocess
    r = subprocess.run(["fusermount3", "-u", args.mountpoint])
    if r.returncode:
        raise SystemExit(r.returncode)


def _admin(args: argparse.Namespace, action) -> None:  # type: ignore[no-untyped-def]
    """Run one admin action on the data folder (safe beside a running gateway:
    LMDB serialises writers across processes)."""
    from .vfs import Filesystem

    async def main() -> None:
        fs = Filesystem.from_data_dir(Path(args.data))
        try:
            await fs.start()
            await action(fs)
        finally:
            await fs.aclose()

    asyncio.run(main())


def _user_add(args: argparse.Namespace) -> None:
    from .config import new_credentials

    async def action(fs) -> None:  # type: ignore[no-untyped-def]
        creds = new_credentials()
        uid = await fs.add_user(args.name, creds.access_key, creds.secret_key, uid=args.uid)
        print(json.dumps({"name": args.name, "uid": uid, "gid": uid,
                          "access_key": creds.access_key, "secret_key": creds.secret_key}))
    _admin(args, action)


def _bucket_public(args: argparse.Namespace) -> None:
    from .vfs import ROOT

    async def action(fs) -> None:  # type: ignore[no-untyped-def]
        await fs.set_bucket_settings(ROOT, args.name, public=not args.private)
        print(json.dumps({"bucket": args.name, "public": not args.private}))
    _admin(args, action)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _gc(args: argparse.Namespace) -> None:
    from .vfs import Filesystem, collect

    async def main() -> dict[str, int]:
        fs = Filesystem.from_data_dir(Path(args.data), chunks=_chunks(args))
        try:
            await fs.start()
            return (await collect(fs, args.grace, progress=_stderr_line)).as_dict()
        finally:
            await fs.aclose()

    print(json.dumps(asyncio.run(main())))


def _fsck(args: argparse.Namespace) -> None:
    from .vfs import Filesystem
    from .vfs.fsck import fsck

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    async def main() -> dict[str, object]:
        fs = Filesystem.from_data_dir(Path(args.data), chunks=_chunks(args))
        try:
            await fs.start()
            return (await fsck(fs, verify=args.verify, progress=progress)).as_dict()
        finally:
            await fs.aclose()

    report = asyncio.run(main())
    if args.json:
        print(json.dumps(report))
    else:
        findings = report["findings"]
        assert isinstance(findings, list)
        for f in findings:
            print(f"{f['kind']}: {f['detail']}")
        print(f"{report['inodes']} inodes, {report['dirents']} entries, {report['extents']} extents, "
              f"{report['chunks_referenced']} chunks"
              + (f" ({report['chunks_verified']} read back and verified)" if args.verify else "")
              + f": {len(findings)} problem(s)")
    raise SystemExit(0 if report["clean"] else 1)


def _backup(args: argparse.Namespace) -> None:
    from .backup import BackupError, backup, default_target, target_for
    where = args.to or default_target(Path(args.data))
    if where is None:
        raise SystemExit("samebytes backup: --to DIR or --to s3://BUCKET/PREFIX is needed "
                         "(the default, beside the chunks, exists only for the s3 chunk backend)")
    try:
        out = asyncio.run(backup(Path(args.data), target_for(where, endpoint=args.endpoint,
                                                             region=args.region), keep=args.keep))
    except BackupError as e:
        raise SystemExit(f"samebytes backup: {e}") from None
    print(json.dumps({**out, "to": where}))


def _restore(args: argparse.Namespace) -> None:
    from .backup import BackupError, restore, target_for
    try:
        out = asyncio.run(restore(Path(args.data), target_for(args.source, endpoint=args.endpoint,
                                                              region=args.region), args.name))
    except BackupError as e:
        raise SystemExit(f"samebytes restore: {e}") from None
    print(json.dumps(out))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=env("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    chunks = argparse.ArgumentParser(add_help=False)
    chunks.add_argument("--chunks", default=env("CHUNKS", ""),
                        help="chunk backend: local (in the data folder) or s3://BUCKET/PREFIX; "
                             "default: the one the data folder records, else local")
    chunks.add_argument("--chunks-endpoint", default=env("CHUNKS_ENDPOINT", ""),
                        help="URL of the S3-compatible store for --chunks s3://...")
    chunks.add_argument("--chunks-region", default=env("CHUNKS_REGION", "us-east-1"))
    chunks.add_argument("--chunks-addressing", default=env("CHUNKS_ADDRESSING", "path"),
                        choices=["path", "virtual"], help="bucket in the path or the host name")
    chunks.add_argument("--chunks-deadline", type=float,
                        default=float(env("CHUNKS_DEADLINE", "30")),
                        help="seconds one backend request may take, retries included")
    chunks.add_argument("--cache-size", default=env("CACHE_SIZE", "8GiB"),
                        help="local read cache for a remote backend, e.g. 8GiB (0: none)")
    p = argparse.ArgumentParser(prog="samebytes", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", parents=[common, chunks],
                       help="serve the namespace (S3 door, health endpoints)")
    s.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    s.add_argument("--s3", default=env("S3", DEFAULT_S3), help="S3 listen address HOST:PORT")
    s.add_argument("--chunk-size", default=env("CHUNK_SIZE", "4MiB"), help="chunk size, e.g. 4MiB")
    s.add_argument("--grace", type=float, default=float(env("GRACE", "60")),
                   help="seconds freed chunks wait before their bytes are deleted")
    s.add_argument("--gc-interval", type=float, default=float(env("GC_INTERVAL", "60")),
                   help="seconds between collector runs")
    s.add_argument("--region", default=env("REGION", "us-east-1"), help="the S3 region answered")
    s.add_argument("--domain", default=env("DOMAIN", ""),
                   help="serve virtual-host-style requests for BUCKET.DOMAIN")
    s.add_argument("--tls-cert", default=env("TLS_CERT", ""), help="PEM certificate: serve HTTPS")
    s.add_argument("--tls-key", default=env("TLS_KEY", ""), help="PEM private key for --tls-cert")
    s.add_argument("--header-timeout", type=float, default=float(env("HEADER_TIMEOUT", "20")),
                   help="seconds a connection may take to send a complete request head")
    s.add_argument("--body-timeout", type=float, default=float(env("BODY_TIMEOUT", "60")),
                   help="seconds a request body may pause before 400 RequestTimeout")
    s.add_argument("--nfs", default=env("NFS", "127.0.0.1:2049"),
                   help="NFSv3 (and MOUNT) listen address HOST:PORT, or 'off'")
    s.add_argument("--export", action="append", default=None, metavar="PATH[:OPTIONS]",
                   help="NFS export (repeatable; default '/'): options rw|ro, clients=NET[+NET], "
                        "root_squash|no_root_squash|all_squash, anonuid=N, anongid=N")
    s.add_argument("--portmap", default=env("PORTMAP", ""),
                   help="also answer portmapper (rpcbind v2) queries on HOST:PORT")
    s.add_argument("--mount", default=env("MOUNT", ""),
                   help="also mount the namespace here with FUSE")
    s.add_argument("--workers", type=_positive_int, default=_positive_int(env("WORKERS", "1")),
                   help="processes serving the S3 door on its one port (e.g. one per core); "
                        "the first also runs NFS, the mount and the collector")
    s.set_defaults(func=_serve)

    m = sub.add_parser("mount", parents=[common, chunks], help="mount the namespace with FUSE")
    m.add_argument("mountpoint")
    m.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    m.add_argument("--chunk-size", default=env("CHUNK_SIZE", "4MiB"), help="chunk size, e.g. 4MiB")
    m.add_argument("--debug", action="store_true", help="log every FUSE request (libfuse debug)")
    m.set_defaults(func=_mount)

    um = sub.add_parser("umount", parents=[common], help="unmount a FUSE mount (fusermount3 -u)")
    um.add_argument("mountpoint")
    um.set_defaults(func=_umount)

    u = sub.add_parser("user", help="manage S3 identities")
    usub = u.add_subparsers(dest="user_command", required=True)
    ua = usub.add_parser("add", parents=[common], help="create an identity and print its keys")
    ua.add_argument("name")
    ua.add_argument("--uid", type=int, default=None, help="POSIX uid (and gid); default: next free from 1000")
    ua.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    ua.set_defaults(func=_user_add)

    b = sub.add_parser("bucket", help="manage buckets")
    bsub = b.add_subparsers(dest="bucket_command", required=True)
    bp = bsub.add_parser("public", parents=[common], help="allow anonymous reads of a bucket")
    bp.add_argument("name")
    bp.add_argument("--private", action="store_true", help="undo: refuse anonymous requests again")
    bp.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    bp.set_defaults(func=_bucket_public)

    fk = sub.add_parser("fsck", parents=[common, chunks],
                        help="check that metadata and chunks agree; report, never repair (exit 1 on problems)")
    fk.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    fk.add_argument("--verify", action="store_true",
                    help="also read every chunk back and check its checksums")
    fk.add_argument("--json", action="store_true", help="print the report as JSON")
    fk.set_defaults(func=_fsck)

    bk = sub.add_parser("backup", parents=[common],
                        help="copy the metadata (and local chunks) of a serving data folder to DIR or s3://")
    bk.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    bk.add_argument("--to", default=env("BACKUP_TO", ""),
                    help="DIR or s3://BUCKET/PREFIX (default with the s3 chunk backend: beside the chunks)")
    bk.add_argument("--endpoint", default=env("BACKUP_ENDPOINT", "") or None,
                    help="S3 endpoint URL for an s3:// destination")
    bk.add_argument("--region", default=env("BACKUP_REGION", "us-east-1"))
    bk.add_argument("--keep", type=int, default=int(env("BACKUP_KEEP", "7")),
                    help="backups to keep at the destination (older ones are deleted)")
    bk.set_defaults(func=_backup)

    rs = sub.add_parser("restore", parents=[common],
                        help="rebuild a new data folder from the newest (or a named) backup")
    rs.add_argument("--data", required=True, help="the new (absent or empty) data folder")
    rs.add_argument("--from", dest="source", required=True, help="DIR or s3://BUCKET/PREFIX")
    rs.add_argument("--name", default=None, help="a backup's name (default: the newest)")
    rs.add_argument("--endpoint", default=env("BACKUP_ENDPOINT", "") or None)
    rs.add_argument("--region", default=env("BACKUP_REGION", "us-east-1"))
    rs.set_defaults(func=_restore)

    g = sub.add_parser("gc", parents=[common, chunks], help="collect unreferenced chunks and report what was freed")
    g.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    g.add_argument("--grace", type=float, default=float(env("GRACE", "3600")),
                   help="only collect chunks older than this many seconds")
    g.set_defaults(func=_gc)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except ValueError as e:
        print(f"samebytes: {e}", file=sys.stderr)
        raise SystemExit(2) from e


if __name__ == "__main__":
    main()
