"""Smoke test: `python -m bench.changes --quick` runs and reports the feed's cost.

No timing thresholds (this machine's speed swings): every figure must only come out
as a positive number, with the log and tail facts filled in.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_bench_changes_quick_reports_the_feed_on_beside_off(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.changes", "--quick", "--data", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout)["figures"]
    for name in ("change_feed_put", "change_feed_small_files"):
        for field in ("samebytes", "limit", "ratio"):
            assert _positive(figures[name][field]), f"{name}.{field} = {figures[name][field]!r}"
    fig = figures["change_feed_put"]
    for field in ("samebytes", "limit", "ratio"):
        assert _positive(fig[field]), f"{field} = {fig[field]!r}"
    assert _positive(fig["cpu_us_per_op"]["feed_on"]) and _positive(fig["cpu_us_per_op"]["feed_off"])
    assert fig["log"]["records_kept"] > 0 and _positive(fig["log"]["median_record_bytes"])
    assert fig["tail"]["batches_read"] == fig["log"]["records_kept"]
    assert list(tmp_path.iterdir()) == []
