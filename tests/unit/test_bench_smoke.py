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
