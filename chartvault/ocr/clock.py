"""CPU time by stage of one page, tesseract child processes included.

Why CPU and not wall time: the worker processes share the machine's cores with each other and with
everything else, so wall time per stage moves with load; the CPU a stage costs does not, and it is
what decides how many pages a core reads per second.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def cpu_seconds() -> float:
    """CPU seconds of this process so far, plus those of the children it has waited for (tesseract)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class StageClock:
    """Milliseconds of CPU per named stage; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.ms: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = cpu_seconds()
        try:
            yield
        finally:
            self.add(name, cpu_seconds() - start)

    def add(self, name: str, seconds: float) -> None:
        self.ms[name] = self.ms.get(name, 0) + round(seconds * 1000)
