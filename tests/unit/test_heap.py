"""gateway/heap.py: freed chunk-sized buffers stay in the heap (no page faults to reuse)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A dozen 4 MiB buffers in flight at once, freed together, ten times: the pattern of a
# 64 MiB upload's chunk buffers. Prints the minor faults of rounds 2..10.
_ROUNDS = textwrap.dedent("""
    import resource, sys
    from gateway.heap import keep_freed_buffers
    if sys.argv[1] == "tuned":
        assert keep_freed_buffers()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def one_round():
        held = [bytearray(4 << 20) for _ in range(12)]  # zero-filled: every page touched
        del held
    one_round()
    before = faults()
    for _ in range(9):
        one_round()
    print(faults() - before)
""")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True,
                         text=True, check=True, timeout=120)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_chunk_buffers_are_reused_without_page_faults() -> None:
    pages = 9 * 12 * (4 << 20) // 4096
    tuned = _faults("tuned")
    # Reused heap memory is already mapped: far fewer faults than pages written. glibc's
    # defaults trim the freed top and fault (nearly) every page in again.
    assert tuned < pages // 20, (tuned, pages)
    assert _faults("default") > pages // 2
