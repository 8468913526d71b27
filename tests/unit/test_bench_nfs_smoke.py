"""Smoke test for bench/nfs.py: `python -m bench.nfs --quick` starts samebytes (and
nfs-ganesha in its own network namespace when installed), runs every job and reports.
No timing thresholds: it checks the JSON's shape, that every samebytes figure is
positive, that the peer is either measured or skipped with a reason, and that no
namespace, process or data is left behind."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
FIGURES = {"write", "read", "small_files"}

if not all(shutil.which(p) for p in ("nfs-cp", "nfs-cat", "nfs-ls")):
    if IN_CI:
        raise RuntimeError("CI must run the NFS benchmark smoke test: libnfs-utils")
    pytest.skip("needs libnfs-utils (nfs-cp, nfs-cat, nfs-ls)", allow_module_level=True)


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_bench_nfs_quick_reports_every_figure_beside_ganesha_or_says_why_not(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.nfs", "--quick", "--data", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert doc["benchmark"] == "nfs"
    assert set(doc["figures"]) == FIGURES
    skipped = doc["peer"]["skipped"]
    for name, fig in doc["figures"].items():
        assert _positive(fig["samebytes"]), name
        assert fig["rounds"] >= 3 and all(_positive(v) for v in fig["per_round"]["samebytes"]), name
        if skipped is None:
            assert _positive(fig["limit"]) and _positive(fig["ratio"]), name
        else:
            assert isinstance(skipped, str) and skipped, name
            assert fig["limit"] is None and fig["ratio"] is None and fig["peer_skipped"] == skipped
    if shutil.which("ganesha.nfsd") and shutil.which("rpcbind"):
        assert skipped is None, f"ganesha is installed but was not measured: {skipped}"
    for name in ("read", "write"):
        target = doc["figures"][name]["target"]
        assert target["met"] == (target["ratio"] is not None and target["ratio"] >= target["at_least"])
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "samebytes-bench-nfs" not in netns
    assert list(tmp_path.iterdir()) == []
