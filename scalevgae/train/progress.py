"""Progress for people: a tqdm bar on a terminal, plain lines at most every N seconds in logs, and
announcements of slow phases (loading, splitting, inference)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Iterator, Optional, TextIO


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close`` as one plain line at most every ``every`` seconds
    (for output that is not a terminal: nohup, CI, a scheduler's log)."""

    def __init__(self, total: int, initial: int = 0, every: float = 30.0, file: Optional[TextIO] = None):
        self.total, self.n, self.every = total, initial, every
        self.file = file if file is not None else sys.stderr
        self.start = self.last = time.monotonic()
        self.first = initial
        self.postfix = ""

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def _line(self, now: float, end: str = "") -> None:
        rate = (self.n - self.first) / max(now - self.start, 1e-9)
        pct = 100.0 * self.n / max(self.total, 1)
        print(f"step {self.n}/{self.total} ({pct:.0f}%) {rate:.3g} steps/s {self.postfix}{end}".rstrip(),
              file=self.file, flush=True)

    def close(self) -> None:
        now = time.monotonic()
        if self.n > self.first:
            self._line(now, f" [{now - self.start:.1f} s]")


def progress_bar(enabled: bool, total: int, initial: int = 0, every: float = 30.0) -> Any:
    """A tqdm bar when stderr is a terminal, else a :class:`LineProgress`; None when disabled."""
    if not enabled:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        except ImportError:
            pass
    return LineProgress(total, initial, every)


@contextlib.contextmanager
def phase(what: str, enabled: bool = True, after: float = 2.0) -> Iterator[None]:
    """Say ``what`` is running if it is still running after ``after`` seconds, and how long it took."""
    if not enabled:
        yield
        return
    t0 = time.monotonic()
    said = threading.Event()

    def announce() -> None:
        said.set()
        print(f"scalevgae: {what} ...", file=sys.stderr, flush=True)

    timer = threading.Timer(after, announce)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
    if said.is_set():
        print(f"scalevgae: {what}: done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
