"""One bandwidth cap for the whole process, shared by every connection (huggingface_hub has none: its issue 2118).

A token bucket holding at most a tenth of a second of bytes: each read asks for
what it may take and sleeps until the bucket allows it, so the rate holds within
a few percent over seconds and no second after the first sees a burst.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, bytes_per_second: int) -> None:
        if bytes_per_second < 1:
            raise ValueError("a rate must be at least 1 byte per second")
        self.rate = float(bytes_per_second)
        self.burst = max(4096.0, self.rate / 10)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Block until some bytes may be read; returns how many (at most wanted, at most one burst)."""
        want = max(1, min(wanted, int(self.burst)))
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= want:
                    self._tokens -= want
                    return want
                wait = (want - self._tokens) / self.rate
            time.sleep(min(wait, 0.1))

    def refund(self, unused: int) -> None:
        """A read returned fewer bytes than it was allowed: those bytes may still be taken."""
        if unused > 0:
            with self._lock:
                self._tokens = min(self.burst, self._tokens + unused)
