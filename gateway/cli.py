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
    run(ServeConfig(data=Path(args.data), s3_host=host, s3_port=port,
                    chunk_size=parse_size(args.chunk_size), grace_seconds=args.grace,
                    gc_interval=args.gc_interval))


def _gc(args: argparse.Namespace) -> None:
    from .vfs import Filesystem, collect

    async def main() -> dict[str, int]:
        fs = Filesystem.from_data_dir(Path(args.data))
        try:
            await fs.start()
            return (await collect(fs, args.grace)).as_dict()
        finally:
            await fs.aclose()

    print(json.dumps(asyncio.run(main())))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=env("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    p = argparse.ArgumentParser(prog="samebytes", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", parents=[common],
                       help="serve the namespace (S3 door, health endpoints)")
    s.add_argument("--data", default=env("DATA", DEFAULT_DATA), help="data folder")
    s.add_argument("--s3", default=env("S3", DEFAULT_S3), help="S3 listen address HOST:PORT")
    s.add_argument("--chunk-size", default=env("CHUNK_SIZE", "4MiB"), help="chunk size, e.g. 4MiB")
    s.add_argument("--grace", type=float, default=float(env("GRACE", "60")),
                   help="seconds freed chunks wait before their bytes are deleted")
    s.add_argument("--gc-interval", type=float, default=float(env("GC_INTERVAL", "60")),
                   help="seconds between collector runs")
    s.set_defaults(func=_serve)

    g = sub.add_parser("gc", parents=[common], help="collect unreferenced chunks and report what was freed")
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
