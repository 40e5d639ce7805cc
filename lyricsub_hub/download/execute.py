"""Executing a plan: one pool of connections shared by every file and model of a downloader.

Each file is a FileJob: it takes huggingface_hub's per-blob lock (without ever
blocking a connection on it), hands its bytes to a Transfer, and finishes by
publishing a blob whose sha256 matched the pin. No task waits for another task,
so the pool cannot deadlock however many files and models share it.

How many bodies are open at once is measured, not set (adapt.py): a watcher
thread samples the bytes received, asks the Controller for a target, gives files
more connections while there is room and asks some to stop when there are too
many; `connections` is only the ceiling. A host that answers 429 (or 503 with a
wait) is held to what it carried, and the file waits as told.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cache import Cache
from ..cache.layout import blobs_dir, lock_path, snapshot_dir
from ..cache.locks import BlobLock
from ..core.fs import inside, regular_file
from ..errors import DownloadCancelled, Hint
from ..index import ModelSpec
from ..remote.failures import is_transient, retry_after
from ..remote.http import Cancelled, Client, TooSlow
from .adapt import START, Controller, Gate
from .plan import FilePlan
from .progress import ModelRun

if TYPE_CHECKING:
    from .transfer import Transfer

LOCK_POLL = 0.25  # seconds between tries of a blob lock another process holds
TICK = 0.04  # seconds between the watcher's looks at the rate
IDLE_END = 1.0  # seconds without a file before the watcher stops (the next run starts a new one, and measures anew)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded: at most `attempts` tries in a row without progress, and none that would end more than `budget`
    seconds after the file last made progress (a 3 GB file that keeps moving is never cut off)."""

    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 60.0

    def delay(self, attempt: int, hinted: float | None) -> float:
        return min(self.max_delay, hinted if hinted is not None else self.first_delay * 2 ** (attempt - 1))


class Tries:
    """Retry bookkeeping of one file, shared by its segments."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.count = 0
        self.total = 0
        self.since = time.monotonic()
        self.got = 0
        self.refusals = 0
        self.lock = threading.Lock()

    def next_delay(self, exc: BaseException, progressed: bool, tried_for: float) -> float | None:
        """Seconds to wait before the next try, or None when the file should give up."""
        with self.lock:
            now = time.monotonic()
            if progressed and not isinstance(exc, TooSlow):
                self.count, self.since = 0, now
            self.count += 1
            self.total += 1
            delay = self.policy.delay(self.count, retry_after(exc))
            if not is_transient(exc) or self.count >= self.policy.attempts:
                return None
            if now - self.since + delay + tried_for > self.policy.budget:  # the next try would end past the budget
                return None
            return delay

    def refused(self, told: float, got: int) -> float | None:
        """A rate limit (429, or 503 with a wait): wait as told, never counted as a failed try; give up only when the
        wait would end past the budget since the file last moved (`got`: its bytes so far, any connection)."""
        with self.lock:
            now = time.monotonic()
            if got != self.got:
                self.got, self.since, self.count = got, now, 0
            self.total += 1
            self.refusals += 1
            delay = told if told > 0 else self.policy.delay(self.refusals, None)
            if now - self.since + delay > self.policy.budget:
                return None
            return delay


class Engine:
    """The pool, the client and the in-process owners of blob locks, for one downloader."""

    def __init__(self, cache: Cache, client: Client, connections: int, policy: RetryPolicy, start: int = START) -> None:
        self.cache, self.client, self.connections, self.policy = cache, client, max(1, connections), policy
        self.pool = ThreadPoolExecutor(max_workers=self.connections, thread_name_prefix="lyricsub-conn")
        self.owners: dict[tuple[str, str], FileJob] = {}
        self.owners_lock = threading.Lock()
        self.first_level = start  # connections before anything is measured
        self.controller = Controller(self.connections, start)
        self.gate = Gate(lambda: self.controller.target)
        self.received = 0
        self.refusals = 0  # bodies a host refused with a rate limit, this downloader's life
        self.said: set[str] = set()  # hosts whose rate limit was told in the log
        self.jobs: set[FileJob] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, run: ModelRun, spec: ModelSpec, files: tuple[FilePlan, ...], transfer: Transfer) -> None:
        run.expect({f.name: f.size or 0 for f in files})
        self._watch()
        for fplan in files:
            job = FileJob(self, run, spec, fplan, transfer)
            self.submit(job, job.begin)

    def submit(self, job: FileJob, action: Callable[[], None]) -> None:
        def task() -> None:
            try:
                action()
            except BaseException as exc:  # every failure ends the file once, never the worker
                job.fail(exc)

        try:
            self.pool.submit(task)
        except RuntimeError as exc:  # the pool is shut down (the process is exiting)
            job.fail(exc)

    def later(self, seconds: float, job: FileJob, action: Callable[[], None]) -> None:
        """Run action on the pool after a while, without holding a connection meanwhile."""
        timer = threading.Timer(seconds, lambda: self.submit(job, action))
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        self._closed.set()
        self.gate.wake()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- how many connections ---------------------------------------------------------------------
    def count(self, n: int) -> None:
        with self._lock:
            self.received += n

    def over(self) -> bool:
        """More bodies open than the target: a connection that finishes its range ends instead of taking more."""
        return self.gate.open > self.controller.target

    def track(self, job: FileJob, active: bool) -> None:
        with self._lock:
            (self.jobs.add if active else self.jobs.discard)(job)

    def refused(self, job: FileJob, exc: BaseException, told: float, host: str) -> None:
        """A host refused a body with a rate limit: hold it to what it carried; say so once per host."""
        limit = self.gate.refused(host)
        with self._lock:
            self.refusals += 1
            first = host not in self.said
            self.said.add(host)
        if first:
            status = getattr(exc, "status", 429)
            job.run.emit("download", job.fplan.name, message=f"rate limited by {host} (HTTP {status}): waiting "
                         f"{told:g}s as it asks, and keeping to {limit} connection(s) to it")

    def _watch(self) -> None:
        with self._lock:
            if self._watcher is not None and self._watcher.is_alive():
                return
            if self.gate.open == 0:  # a new run measures the line anew
                self.controller = Controller(self.connections, self.first_level)
            self._watcher = threading.Thread(target=self._loop, name="lyricsub-rate", daemon=True)
            self._watcher.start()

    def _loop(self) -> None:
        idle_since: float | None = None
        while not self._closed.wait(TICK):
            now = time.monotonic()
            with self._lock:
                jobs = list(self.jobs)
                received = self.received
            if not jobs and self.gate.open == 0:
                idle_since = idle_since or now
                if now - idle_since > IDLE_END:
                    with self._lock:
                        if not self.jobs:
                            self._watcher = None
                            return
                continue
            idle_since = None
            before = self.controller.target
            target = self.controller.observe(now, received, self.gate.open + self.gate.waiting + self._wanting(jobs, now),
                                             self.gate.open)
            if target > before:
                self.gate.wake()
            self._balance(jobs, target, now)

    @staticmethod
    def _wanting(jobs: list[FileJob], now: float) -> int:
        """Files that would take another connection now (demand beyond what is open)."""
        return sum(1 for j in jobs if j.transfer_left(now) > 0)

    def _balance(self, jobs: list[FileJob], target: int, now: float) -> None:
        if self.gate.open > target:  # all the excess at once, counting connections already asked to end
            excess = self.gate.open - target - sum(j.transfer.shedding(j) for j in jobs)
            order = sorted(jobs, key=lambda j: -j.transfer_left(now))
            while excess > 0 and order:
                for job in list(order):
                    if excess <= 0:
                        break
                    if job.transfer.shed(job):
                        excess -= 1
                    else:
                        order.remove(job)
            return
        from .transfer import SPLIT_AFTER

        room = target - self.gate.open - self.gate.waiting
        if room <= 0:
            return
        candidates = list(jobs)
        while room > 0 and candidates:  # the file that needs longest gets the next connection, as often as there is room
            left, job = max(((j.transfer_left(now), j) for j in candidates), key=lambda p: p[0])
            if left <= SPLIT_AFTER:
                break
            if self.gate.room(job.transfer.host(job)) and job.transfer.grow(job):
                room -= 1
            else:
                candidates.remove(job)


class FileJob:
    """One file of one model on its way into the cache."""

    def __init__(self, engine: Engine, run: ModelRun, spec: ModelSpec, fplan: FilePlan, transfer: Transfer) -> None:
        self.engine, self.run, self.spec, self.fplan, self.transfer = engine, run, spec, fplan, transfer
        self.size: int | None = fplan.size  # known once the Hub answered, where the index pins none
        self.tries = Tries(engine.policy)
        self.lock = threading.Lock()
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.waiters: list[FileJob] = []
        self.state: Any = None  # the transfer's own (part file, hasher, segments)
        self._flock: Any = None
        self._key = (str(engine.cache.cache_dir), f"{spec.repo}/{fplan.sha256}")

    def transfer_left(self, now: float) -> float:
        return 0.0 if self.ended.is_set() else self.transfer.left(self, now)

    @property
    def known_size(self) -> int:
        assert self.size is not None, "the size is known once the Hub answered"
        return self.size

    # -- the blob lock ------------------------------------------------------------------------
    def begin(self) -> None:
        if self.run.cancel.is_set():
            raise DownloadCancelled("cancelled", model=self.spec.name, hint=Hint.warm(self.spec.name))
        with self.engine.owners_lock:
            owner = self.engine.owners.get(self._key)
            if owner is not None and owner is not self:
                owner.waiters.append(self)  # the same blob is on its way in this process: wait for it, not for a lock
                return
            self.engine.owners[self._key] = self
        cache = self.engine.cache
        lock = BlobLock(lock_path(cache.cache_dir, self.spec.repo, self.fplan.sha256), cache.cache_dir, self.spec.name)
        if not lock.acquire():  # another process fetches it: look again soon, keeping no connection busy
            with self.engine.owners_lock:
                self.engine.owners.pop(self._key, None)
            self.engine.later(LOCK_POLL, self, self.begin)
            return
        self._flock = lock  # taken on one connection, released on another
        if self._placed_meanwhile():
            self.succeed(0)
            return
        self.transfer.begin(self)

    def _placed_meanwhile(self) -> bool:
        """Another process (or an earlier run) put this file in place while we waited for the lock.

        Its bytes are hashed with the model's final check; here only presence and size count.
        """
        cache = self.engine.cache
        assert self.spec.revision is not None
        entry = snapshot_dir(cache.cache_dir, self.spec.repo, self.spec.revision) / self.fplan.name
        try:
            st = os.stat(entry)
        except OSError:
            st = None
        # a file another member's tool wrote 0600 (huggingface_hub #1141) is not in place for us: it is fetched
        # again and its blob renamed over (the team's folder is group-writable)
        if st is not None and self.size in (None, st.st_size) and inside(cache.repo_dir(self.spec.repo), entry) \
                and os.access(entry, os.R_OK):
            return True
        path = blobs_dir(cache.cache_dir, self.spec.repo) / self.fplan.sha256
        blob = regular_file(path)
        if blob is not None and self.size in (None, blob.st_size) and os.access(path, os.R_OK):
            cache.link(self.spec, self.fplan.name, self.fplan.sha256)
            return True
        return False

    # -- endings --------------------------------------------------------------------------------
    def succeed(self, resumed: int) -> None:
        if not self._end(None):
            return
        self.run.file_finished(self.fplan.name, None, resumed)
        for waiter in self._drain_waiters():
            self.engine.submit(waiter, waiter.begin)

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled) or (self.run.cancel.is_set() and not isinstance(exc, DownloadCancelled)):
            exc = DownloadCancelled("cancelled", model=self.spec.name, hint=Hint.warm(self.spec.name))
        exc.lyricsub_filename = self.fplan.name  # type: ignore[attr-defined]
        exc.lyricsub_attempts = max(1, self.tries.total)  # type: ignore[attr-defined]
        if not self._end(exc):
            return
        self.run.file_finished(self.fplan.name, exc)
        for waiter in self._drain_waiters():
            self.engine.submit(waiter, waiter.begin)  # they try for themselves (the lock is free now)

    def _end(self, exc: BaseException | None) -> bool:
        with self.lock:
            if self.ended.is_set():
                return False
            self.error = exc
            self.ended.set()
        try:
            self.transfer.release(self, ok=exc is None)
        finally:
            if self._flock is not None:
                self._flock.release()
            with self.engine.owners_lock:
                if self.engine.owners.get(self._key) is self:
                    del self.engine.owners[self._key]
        return True

    def _drain_waiters(self) -> list[FileJob]:
        with self.engine.owners_lock:
            waiters, self.waiters = self.waiters, []
        return waiters

    # -- retries ----------------------------------------------------------------------------------
    def pause(self, exc: BaseException, progressed: bool, tried_for: float) -> float:
        """After a failed try: how long to wait, or raise exc (unchanged) when the file gives up."""
        if self.run.cancel.is_set():
            raise Cancelled()
        delay = self.tries.next_delay(exc, progressed, tried_for)
        if delay is None:
            raise exc
        self.run.emit("download", self.fplan.name, message=f"retrying in {delay:.1f}s after: {_short(exc)}")
        return delay

    def pause_refused(self, exc: BaseException, told: float, got: int, tried_for: float) -> float:
        """After a rate limit: the wait the server asked for (said once per host by the engine), or raise exc when
        it would end past the file's time budget."""
        if self.run.cancel.is_set():
            raise Cancelled()
        delay = self.tries.refused(told, got)
        if delay is None:
            raise exc
        return delay


def _short(exc: BaseException) -> str:
    from ..core.text import one_line, redact

    return redact(one_line(f"{type(exc).__name__}: {exc}", 160))
