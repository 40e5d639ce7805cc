"""How many connections a run uses: found while it runs, not set by a flag.

A CDN caps each connection (about 40 MB/s on the Hub), a home line is full with two,
a 10 Gbit box needs thirty; and a server may cap bodies per client and answer 429.
So the count is measured: `Controller` starts with four connections, multiplies them
by four while the aggregate rate keeps rising by a fair share of what the new ones
could add, and when it stops rising keeps the fewest that the per-connection rate
of a lower level says carry the best rate (probing downwards once when the first
level was already full). It probes upward
again now and then, in case the line got faster. `Gate` holds every open body to
that number, and to a lower one per host once that host said 429/503.

Both are plain objects driven by a clock the caller passes in, so tests can feed
them rates and read the decisions.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

START = 4  # connections before anything is measured
WINDOW = 0.15  # seconds of bytes per measurement while climbing (a step too far is undone at the next window)
WINDOW_CHECK = 0.4  # ... and when going down or probing above a held level (a burst must not look like a gain)
SETTLE = 0.06  # seconds after a change before measuring (new connections ask and get their first bytes)
PROPORTIONAL = 0.85  # ... and as far from full when it adds this share of it (the next step is then larger)
GAIN = 0.25  # a level counts as better when it adds this share of the rise its extra connections could bring
KEEP = 0.95  # going down keeps a level that still carries this share of the best rate
REPROBE = 2.0  # seconds at a held level before trying a few more connections again


@dataclass(frozen=True)
class Decision:
    """One measured window, as the controller saw it (kept for the log and for tests)."""

    level: int
    rate: float
    then: int  # the level it chose next


class Controller:
    """The target number of open bodies, from the aggregate byte count sampled over time."""

    def __init__(self, ceiling: int, start: int = START) -> None:
        self.ceiling = max(1, ceiling)
        self.target = min(self.ceiling, max(1, start))
        self.state = "up" if self.target < self.ceiling else "hold"
        self.best: tuple[int, float] | None = None  # (level, rate): the fewest connections that carried the best rate
        self.climb: list[tuple[int, float]] = []  # levels measured on the way up
        self.log: list[Decision] = []
        self.peak = self.target
        self._changed: float | None = None
        self._mark: tuple[float, int] | None = None
        self._busy: list[float] = []
        self._probe_at = 0.0
        self._probe_gap = REPROBE
        self._full_at = 0  # the level that carried the best rate when the first level was already full

    @property
    def held(self) -> int:
        """The level the controller settles on between probes (the target itself, while it still climbs)."""
        return self.best[0] if self.best is not None and self.state in ("hold", "probe") else self.target

    def observe(self, now: float, total: int, busy: int, open_now: int | None = None) -> int:
        """Feed the clock, the bytes received so far, how many bodies want to run and how many are open; returns
        the target. No window is measured while more bodies are open than the target (connections being shed end
        with their piece): it would credit the lower level with their bytes."""
        if self._changed is None:
            self._changed = now
        if open_now is not None and open_now > self.target:
            self._mark, self._changed = None, now
            return self.target
        if self._mark is None:
            if now - self._changed >= SETTLE:
                self._mark, self._busy = (now, total), []
            return self.target
        self._busy.append(min(busy, self.target))
        began, before = self._mark
        if now - began < (WINDOW if self.state == "up" else WINDOW_CHECK):
            return self.target
        rate = (total - before) / (now - began)
        used = sum(self._busy) / len(self._busy) >= 0.9 * self.target
        self._mark, self._busy = (now, total), []
        if not used:  # fewer bodies wanted than allowed: this window says nothing about the line
            if self.state == "hold" and self.best is not None and now >= self._probe_at:
                self._probe_at = now + self._probe_gap
            return self.target
        self._decide(now, rate)
        return self.target

    def _set(self, now: float, level: int, rate: float) -> None:
        level = min(self.ceiling, max(1, level))
        self.log.append(Decision(self.target, rate, level))
        if level != self.target:
            self.target, self._changed, self._mark = level, now, None
            self.peak = max(self.peak, level)

    def _decide(self, now: float, rate: float) -> None:
        level = self.target
        if self.state == "up":
            last = self.climb[-1] if self.climb else None
            if last is None:
                self.climb.append((level, rate))
                self.best = (level, rate)
                self._step(now, level, rate, 4)
                return
            last_level, last_rate = last
            if rate >= last_rate * (1 + GAIN * (level / last_level - 1)):  # the new connections added their share
                self.climb.append((level, rate))
                self.best = (level, rate)
                if rate >= PROPORTIONAL * last_rate * level / last_level:  # all of it: the line is far from full
                    self._step(now, level, rate, 4)
                else:  # part of it: the line is nearly full; the fewest that carry this rate at the last level's share
                    need = self._need(rate, last_level, last_rate, level)
                    self.best = (need, rate)
                    self._hold(now)
                    self._set(now, need, rate)
                return
            # nothing gained: the line was full already
            if len(self.climb) >= 2:
                low_level, low_rate = self.climb[-2]
                best_level = self._need(max(rate, last_rate), low_level, low_rate, last_level)
                self.best = (best_level, max(rate, last_rate))
                self._hold(now)
                self._set(now, best_level, rate)
            else:  # already full at the first level: see whether fewer carry as much
                self.best = (last_level, max(rate, last_rate))
                self._full_at = level if rate > last_rate else last_level
                self.state = "down"
                self._set(now, max(1, last_level // 2), rate)
            return
        if self.state == "down":
            assert self.best is not None
            best_level, best_rate = self.best
            if rate >= KEEP * best_rate and level < best_level:  # one step down is enough to say "fewer carry it"
                self.best = (level, max(rate, best_rate))
                self._hold(now)
                self._set(now, level, rate)
                return
            need = self._need(best_rate, level, rate, max(best_level, self._full_at))  # this level's share says how many
            self.best = (need, best_rate)
            self._hold(now)
            self._set(now, need, rate)
            return
        # hold, or a probe above the held level
        if self.state == "probe":
            assert self.best is not None
            base_level, base_rate = self.best
            if rate >= base_rate * (1 + GAIN * (level / base_level - 1)):  # the line got faster: climb again
                self.state, self.climb, self.best = "up", [(base_level, base_rate)], (level, rate)
                self.climb.append((level, rate))
                self._probe_gap = REPROBE
                self._set(now, min(self.ceiling, level * 2), rate)
            else:
                self._probe_gap = min(8 * REPROBE, self._probe_gap * 2)
                self._hold(now)
                self._set(now, base_level, rate)
            return
        if self.best is not None and level == self.best[0]:
            self.best = (level, max(rate, self.best[1]))  # the best this level carried: a probe must beat it
        if level < self.ceiling and now >= self._probe_at:
            self.state = "probe"
            self._set(now, level + max(1, level // 4), rate)

    def _step(self, now: float, level: int, rate: float, factor: int) -> None:
        if level >= self.ceiling:
            self._hold(now)
            self._set(now, level, rate)
        else:
            self._set(now, level * factor, rate)

    @staticmethod
    def _need(rate: float, low_level: int, low_rate: float, high_level: int) -> int:
        """Connections that carry `rate` at the per-connection rate measured at low_level, within [low, high]."""
        per = low_rate / low_level
        need = math.ceil(rate / per * 1.05) if per > 0 else high_level
        return max(low_level, min(high_level, need))

    def _hold(self, now: float) -> None:
        self.state = "hold"
        self._probe_at = now + self._probe_gap


class Gate:
    """Every body opens through here: at most `limit()` open at once, and at most a host's own limit on that host
    once it refused (429/503 with a wait). Waiters poll `stop` so a cancel ends the wait at once."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self._limit = limit
        self._cond = threading.Condition()
        self.open = 0
        self.peak = 0  # the most bodies ever open at once
        self.waiting = 0
        self.hosts: Counter[str] = Counter()
        self.streaming: Counter[str] = Counter()  # bodies a host answered 2xx and is sending now
        self.host_limit: dict[str, int] = {}

    def enter(self, host: str, stop: Callable[[], bool]) -> None:
        with self._cond:
            self.waiting += 1
            try:
                while (self.open >= self._limit() or self.hosts[host] >= self.host_limit.get(host, 1 << 30)
                       or self.hosts[host] - self.streaming[host] >= max(2, self.streaming[host])):
                    # the last: no more requests on their way to a host than it is sending bodies (at least 2), so a
                    # host's limit is found with about as many refusals as it has bodies, not one per new request
                    if stop():
                        raise GateClosed()
                    self._cond.wait(0.05)
            finally:
                self.waiting -= 1
            self.open += 1
            self.peak = max(self.peak, self.open)
            self.hosts[host] += 1

    def answered(self, host: str) -> None:
        """The host accepted this body (2xx): it counts as carried until leave(host, answered=True)."""
        with self._cond:
            self.streaming[host] += 1

    def leave(self, host: str, answered: bool = False) -> None:
        with self._cond:
            self.open -= 1
            self.hosts[host] -= 1
            if answered:
                self.streaming[host] -= 1
            self._cond.notify_all()

    def refused(self, host: str) -> int:
        """A host refused a body: hold it to the bodies it is sending now (at least one), not to the requests that
        were on their way with this one. Returns the new limit for that host."""
        with self._cond:
            carried = max(1, self.streaming[host])
            self.host_limit[host] = min(self.host_limit.get(host, carried), carried)
            return self.host_limit[host]

    def room(self, host: str) -> bool:
        with self._cond:
            return self.open + self.waiting < self._limit() and self.hosts[host] < self.host_limit.get(host, 1 << 30)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class GateClosed(Exception):
    """A wait for a place ended by cancel."""
