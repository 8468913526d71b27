"""Smoke test for bench/mount.py: `python -m bench.mount --quick` mounts the pass-through
and samebytes, runs every job on the three targets and reports. No timing thresholds:
it checks the JSON's shape, that every figure is a positive number for every target,
and that nothing stays mounted or on disk afterwards."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
FIGURES = {"seq_write", "seq_read_first", "seq_read_cached", "rand_read_4k", "small_files"}

if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3") or os.geteuid() != 0:
    if IN_CI:
        raise RuntimeError("CI must run the mount benchmark smoke test: /dev/fuse, fusermount3, root")
    pytest.skip("needs /dev/fuse, fusermount3 and root", allow_module_level=True)


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_bench_mount_quick_reports_every_figure_for_every_target(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.mount", "--quick", "--data", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert doc["benchmark"] == "mount"
    assert set(doc["figures"]) == FIGURES
    for name, fig in doc["figures"].items():
        assert _positive(fig["samebytes"]) and _positive(fig["limit"]) and _positive(fig["ratio"]), name
        assert _positive(fig["other_references"]["passthrough"]["value"]), name
        assert fig["rounds"] >= 3, name
    for name in ("seq_read_first", "seq_read_cached", "rand_read_4k"):
        target = doc["figures"][name]["target"]
        assert target["met"] == (target["ratio"] >= target["at_least"]), name
    if os.geteuid() == 0:  # the page flags are root's to read
        census = doc["figures"]["seq_read_cached"]["page_cache_folios"]
        assert set(census) == {"disk", "passthrough", "samebytes"}
        for target, c in census.items():
            assert c["pages"] > 0 and 0 <= c["in_large_folios"] <= 1, target
            assert c["mean_folio_kib"] >= 4, target
    mounts = Path("/proc/mounts").read_text()
    assert str(tmp_path) not in mounts
    assert list(tmp_path.iterdir()) == []
