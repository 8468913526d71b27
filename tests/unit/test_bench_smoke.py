"""Smoke test for the benchmark package: `python -m bench.vfs --quick` runs and reports.

No timing thresholds: this machine's disk speed swings 2-30x within minutes, so the
test only checks that every figure and its limit came out as a positive number.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _positive(x: object) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)
            and math.isfinite(x) and x > 0)


def test_bench_vfs_quick_reports_positive_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.vfs", "--quick", "--data", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)

    figures = doc["figures"]
    expected = {"small_put", "small_get", "big_put", "big_get", "meta_write", "list_flat",
                "list_tree", "list_flat_delimiter", "list_tree_top_delimiter"}
    assert expected <= set(figures), sorted(figures)
    for name, fig in figures.items():
        for field in ("samebytes", "limit", "ratio"):
            assert _positive(fig[field]), f"{name}.{field} = {fig[field]!r}"
        assert math.isclose(fig["ratio"], fig["samebytes"] / fig["limit"], rel_tol=1e-3, abs_tol=1e-4), name  # ratio is rounded to 4 places
        assert fig["unit"] and fig["limit_is"], name
        assert fig["rounds"] >= 3, name
        for other, ref in fig.get("other_references", {}).items():
            assert _positive(ref["value"]), f"{name}.{other} = {ref['value']!r}"
    assert _positive(figures["meta_write"]["avg_batch_size"])
    assert doc["machine"]["nproc"] >= 1
    # The benchmark cleans up its data directory.
    assert list(tmp_path.iterdir()) == []


def test_bench_chunks_s3_quick_reports_positive_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chunks_s3", "--quick", "--data", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout)["figures"]
    fuse = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
    mounted = {"mount_reread", "mount_first_read"} if fuse else {"mount_reread"}
    assert set(figures) == {"put_moto", "get_moto", "put_gateway", "get_gateway",
                            "cached_reread", *mounted}, sorted(figures)
    if not fuse:
        assert figures.pop("mount_reread")["skipped"]
    for name, fig in figures.items():
        for field in ("samebytes", "limit", "ratio"):
            assert _positive(fig[field]), f"{name}.{field} = {fig[field]!r}"
        assert fig["rounds"] >= 3, name
    assert _positive(figures["cached_reread"]["other_references"]["first_read"]["value"])
    assert list(tmp_path.iterdir()) == []


def test_bench_chunks_s3_reports_nginx_relay_limit_beside_each_transfer(tmp_path: Path) -> None:
    """Each put/get figure carries relay_limit: the same transfer through nginx as a plain
    reverse proxy to the same backend (its MB/s, ratio to direct, CPU per MB), or the
    reason it was skipped when nginx is missing; and busy_cores, the machine's load
    during each side."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chunks_s3", "--quick", "--only", "get", "--only", "put",
         "--data", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout)["figures"]
    assert set(figures) == {"put_moto", "get_moto", "put_gateway", "get_gateway"}, sorted(figures)
    nginx = shutil.which("nginx") is not None or os.access("/usr/sbin/nginx", os.X_OK)
    for name, fig in figures.items():
        # The machine's load beside each: a ratio measured on a saturated box says so.
        busy = fig["busy_cores"]
        assert busy["cores"] == os.cpu_count(), name
        for side in ("samebytes", "limit"):
            assert _positive(busy[side]), f"{name}.busy_cores.{side} = {busy[side]!r}"
            assert fig["cpu_ms_per_MB"][side]["others"] >= 0, name
        relay = fig["relay_limit"]
        if not nginx:
            assert relay["skipped"], name
            continue
        assert "skipped" not in relay, f"{name}: {relay}"
        for field in ("MB_per_s", "ratio_to_direct", "samebytes_ratio_to_relay"):
            assert _positive(relay[field]), f"{name}.relay_limit.{field} = {relay[field]!r}"
        assert math.isclose(relay["ratio_to_direct"], relay["MB_per_s"] / fig["limit"],
                            rel_tol=1e-2), name
        assert len(relay["per_round"]) == fig["rounds"], name
        assert set(relay["cpu_ms_per_MB"]) == {"client", "gateway", "backend", "nginx",
                                               "others"}, name
    assert list(tmp_path.iterdir()) == []
