"""Run every benchmark; print one JSON document keyed by benchmark name.

Each benchmark runs in its own process (one LMDB environment per process, a fresh
event loop, no page-cache or thread-pool state carried over) with the same options.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from . import BENCHMARKS, emit, log, machine_info, parser


def main(argv: list[str] | None = None) -> None:
    p = parser("run every samebytes benchmark")
    p.add_argument("--only", action="append", choices=BENCHMARKS,
                   help="run only this benchmark (repeatable)")
    opts = p.parse_args(argv)
    passthrough = (["--quick"] if opts.quick else []) + (["--keep"] if opts.keep else [])
    if opts.data:
        passthrough += ["--data", opts.data]
    if opts.rounds:
        passthrough += ["--rounds", str(opts.rounds)]
    doc: dict[str, Any] = {"machine": machine_info(), "benchmarks": {}}
    failed = []
    for name in opts.only or BENCHMARKS:
        log(f"running bench.{name}")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *passthrough],
                              stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            failed.append(name)
            doc["benchmarks"][name] = {"error": f"exit status {proc.returncode}"}
            continue
        try:
            doc["benchmarks"][name] = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            failed.append(name)
            doc["benchmarks"][name] = {"error": f"not JSON: {e}"}
        log(f"bench.{name} took {time.perf_counter() - t0:.1f} s")
    emit(doc)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
