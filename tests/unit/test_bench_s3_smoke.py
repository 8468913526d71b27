"""Smoke test for bench/s3.py: `python -m bench.s3 --quick` runs and reports.

No timing thresholds (this machine's speed swings 2-30x within minutes): the test only
checks that the JSON parses, that every samebytes figure is a positive number, and that
each peer (moto, nginx, Swift) is either measured (positive numbers) or marked skipped with
a reason, so it passes on a machine without them too; where Swift's packages are installed
it must have been measured.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import swift_peer

REPO = Path(__file__).resolve().parents[2]
FIGURES = {"get_4k", "put_4k", "get_64m", "put_64m", "list"}
# The reference each figure's "limit" is, and the further references it may carry.
LIMIT_OF = {"get_4k": "nginx", "put_4k": "nginx", "get_64m": "nginx", "put_64m": "nginx",
            "list": "moto"}


def _positive(x: object) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)
            and math.isfinite(x) and x > 0)


@pytest.mark.slow  # ~90 s: starts samebytes, moto, nginx and Swift and drives them with wrk
def test_bench_s3_quick_reports_positive_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.s3", "--quick", "--data", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert doc["benchmark"] == "s3"
    skipped = doc["skipped"]
    for peer in ("moto", "nginx", "swift"):
        info = doc["servers"][peer]
        assert ("skipped" in info) == (peer in skipped), (peer, info, skipped)
        if peer in skipped:
            assert skipped[peer], f"{peer} skipped without a reason"

    if swift_peer.missing() is None:
        assert "swift" not in skipped, f"Swift is installed but was not measured: {skipped['swift']}"

    figures = doc["figures"]
    assert FIGURES <= set(figures), sorted(figures)
    for name in FIGURES:
        fig = figures[name]
        assert _positive(fig["samebytes"]), f"{name}.samebytes = {fig['samebytes']!r}"
        assert fig["rounds"] >= 3, name
        assert fig["unit"] and fig["samebytes_is"] and fig["client"], name
        limit_peer = LIMIT_OF[name]
        if limit_peer in skipped:
            assert fig["limit"] is None and fig["ratio"] is None, name
            assert limit_peer in fig["skipped"], name
        else:
            for field in ("limit", "ratio"):
                assert _positive(fig[field]), f"{name}.{field} = {fig[field]!r}"
            # ratio is rounded to 4 decimals: compare with that much slack, no more.
            assert abs(fig["ratio"] - fig["samebytes"] / fig["limit"]) <= 1e-4 + 1e-3 * fig["ratio"], name
        for other, ref in fig.get("other_references", {}).items():
            assert _positive(ref["value"]), f"{name}.{other} = {ref['value']!r}"
            assert other.split("_")[0] not in skipped, (name, other)
        if "moto" not in skipped and name != "list":
            assert "moto" in fig["other_references"], name
        if "swift" not in skipped:
            assert _positive(fig["other_references"]["swift"]["samebytes_ratio"]), name
            assert _positive(fig["cpu"]["swift"]["server_cpu_cores"]), name
        # The CPU the samebytes server spent is reported beside each figure.
        cpu = fig["cpu"]["samebytes"]
        assert _positive(cpu["server_cpu_cores"]), (name, cpu)
        assert cpu["bottleneck"], name
    # The cold companion of get_4k: samebytes beside nginx only, URLs that never recur.
    cold = figures["get_4k_cold"]
    assert _positive(cold["samebytes"]) and cold["rounds"] >= 3
    assert "8192 distinct presigned URLs" in cold["samebytes_is"]
    if "nginx" not in skipped:
        assert _positive(cold["limit"]) and cold["limit_is"].startswith("nginx")
    # The MD5 ceiling of a one-stream PUT, measured beside it on the same bytes.
    md5 = figures["put_64m"]["other_references"]["md5"]
    assert _positive(md5["value"]) and len(md5["per_round"]) == figures["put_64m"]["rounds"]
    assert abs(md5["samebytes_ratio"] - figures["put_64m"]["samebytes"] / md5["value"]) <= 1e-3
    # ...and the targets say whether that ceiling lets the PUT target be met here at all.
    put_target = next(t for t in doc["targets"] if t["target"].startswith("put_64m"))
    if "nginx" not in skipped:
        ceiling = md5["value"] / figures["put_64m"]["limit"]
        assert abs(put_target["md5_ceiling_ratio"] - ceiling) <= 1e-3
        assert put_target["reachable_here"] == (ceiling >= 0.9)
    # The untimed first GET of each round (the bytes' first read after their PUT) is kept
    # per target and round, outside the figure.
    first = figures["get_64m"]["first_get_after_put"]["per_round"]
    assert len(first["samebytes"]) == figures["get_64m"]["rounds"]
    assert all(_positive(v) for v in first["samebytes"])
    assert doc["machine"]["nproc"] >= 1
    # Every server was stopped and the data directory removed.
    assert list(tmp_path.iterdir()) == []
