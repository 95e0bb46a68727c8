"""Failed authentications counted per client and minute: refused past a limit, summarised in the audit log.

Every bogus token used to append an audit row in a write transaction, so an unauthenticated client could
grow the log and contend for the catalog's write lock at will. Now a failed authentication costs one
counter increment in memory; past ``per_minute`` failures a client is answered 429 with Retry-After until
its minute ends, before any token is looked up. Each client's minute is written to the audit log once,
when it has ended, as one summary entry (failures and 429s): never one row per attempt.

The counters live in the process (one API replica counts its own clients) and are keyed by the TCP peer
address: behind a reverse proxy every client shares the proxy's address, so put the limit there too.
A sign-in form (the web pages) can use the same class with its own instance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60
# Past this many clients in one minute, new ones share one counter: memory stays bounded whatever
# addresses a flood comes from.
MAX_CLIENTS = 10_000
OVERFLOW_CLIENT = "(other clients)"


@dataclass(slots=True)
class FailureWindow:
    """One client's failed authentications in one minute."""

    client: str
    start: float  # epoch seconds, a whole minute
    failures: int = 0
    refused: int = 0  # answered 429 without looking at the credentials


class FailedAuthLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, FailureWindow] = {}
        self._closed: list[FailureWindow] = []
        self._oldest_start = float("inf")  # the earliest minute an open window started in

    def retry_after(self, client: str) -> int | None:
        """Seconds this client must wait when it is over the limit this minute (the refusal is
        counted); None when it may try."""
        with self._lock:
            window = self._current(client, create=False)
            if window is None or window.failures < self.per_minute:
                return None
            window.refused += 1
            return max(1, math.ceil(window.start + WINDOW_S - self.clock()))

    def failed(self, client: str) -> None:
        """Count one failed authentication of this client."""
        with self._lock:
            window = self._current(client, create=True)
            assert window is not None
            window.failures += 1

    def ended(self, everything: bool = False) -> list[FailureWindow]:
        """The windows whose minute has ended since the last call (with ``everything``, the open ones
        too, e.g. at shutdown): each to be written as one audit entry."""
        with self._lock:
            now_start = self._minute(self.clock())
            if not everything and not self._closed and self._oldest_start >= now_start:
                return []  # the common case, every request: nothing ended, no walk over the clients
            self._oldest_start = now_start
            for client, window in list(self._windows.items()):
                if everything or window.start < now_start:
                    self._closed.append(self._windows.pop(client))
            done, self._closed = self._closed, []
            return done

    def _current(self, client: str, create: bool) -> FailureWindow | None:
        start = self._minute(self.clock())
        window = self._windows.get(client)
        if window is not None and window.start < start:  # the minute ended: keep it for the audit log
            self._closed.append(self._windows.pop(client))
            window = None
        if window is None and create:
            if len(self._windows) >= MAX_CLIENTS and client != OVERFLOW_CLIENT:
                return self._current(OVERFLOW_CLIENT, create)
            window = self._windows[client] = FailureWindow(client, start)
            self._oldest_start = min(self._oldest_start, start)
        return window

    @staticmethod
    def _minute(at: float) -> float:
        return at - at % WINDOW_S
