"""Progress lines for long admin runs (fsck, gc): at most one every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]


class Ticker:
    """Calls progress(make()) at most every `every` seconds; make() runs only then, so a
    tick in a hot loop costs one clock read. every=0 reports every tick (tests)."""

    def __init__(self, progress: Progress | None, every: float = 5.0) -> None:
        self.progress, self.every, self.last = progress, every, time.monotonic()

    def __call__(self, make: Callable[[], str]) -> None:
        if self.progress is not None and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.progress(make())

    def done(self, line: str) -> None:
        """A final line, always reported (a long run ends with what it did)."""
        if self.progress is not None:
            self.progress(line)
