"""ModelDownloader: fill huggingface_hub's cache with exactly the index's pinned files, verified.

Plan (status, disk check, offline rule), then execute on one connection pool
shared by every file and model of this downloader, then verify and point
refs/<branch> at the pin. The names are the ones the app already uses.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from ..cache import Cache
from ..cache.status import not_available_error
from ..core import env
from ..core.text import parse_rate
from ..errors import DownloadCancelled, Hint, HubUnreachableError, LyricsubError, UsageError, local_error
from ..index import ModelIndex, ModelSpec
from ..remote.failures import Context, translate
from ..remote.http import Client, Timeouts, TransferError
from ..remote.ratelimit import RateLimiter
from .adapt import START
from .execute import Engine, RetryPolicy
from .plan import DiskPlan, ModelPlan, disk_plan, plan_model
from .progress import DownloadResult, ModelRun, ProgressCallback
from .transfer import Ranged

DEFAULT_CONNECTIONS = 32  # a ceiling: the run finds how many it needs (a 10 Gbit line at ~40 MB/s per connection)
EXPLICIT_START = 8  # connections at the start when the caller named a count
MAX_CONNECTIONS = 64  # more would only queue on the endpoint's pools (and look like an attack to a mirror)
RATE_ENV = "LYRICSUB_MAX_RATE"


class Setup(Protocol):
    """What a ModelManager offers a downloader (it is passed one; nothing here imports the manager)."""

    index: ModelIndex
    cache: Cache
    endpoint: str | None

    @property
    def token(self) -> str | None: ...


class ModelDownloader:
    """Downloads with progress, disk checks, retries, resume across runs, a bandwidth cap and cancellation."""

    def __init__(self, manager: Setup | None = None, *, connections: int | None = None, workers: int | None = None,
                 retry: RetryPolicy | None = None, timeout: float | None = None, timeouts: Timeouts | None = None,
                 transfer: str = "http", max_rate: int | str | None = None, keep_refs: bool = False) -> None:
        if transfer != "http":
            raise UsageError("--transfer hub was removed: huggingface_hub names cache files after unchecked server "
                             "answers; the default transfer is resumable, segmented and checked against the pins",
                             hint="lyricsub-hub warm --connections 8")
        env.quiet_hub()
        if manager is None:
            from ..index import load_index

            cache = Cache.at()
            self.setup: Setup = _Plain(load_index(state_dir=cache.state_dir), cache)
        else:
            self.setup = manager
        wanted = connections if connections is not None else workers
        if wanted is not None and not 1 <= wanted <= MAX_CONNECTIONS:
            raise UsageError(f"--connections {wanted} is out of range: 1 to {MAX_CONNECTIONS} connections",
                             hint="lyricsub-hub warm --connections 8")
        self.connections = wanted or DEFAULT_CONNECTIONS
        self._given = wanted
        self.retry = retry or RetryPolicy()
        base = timeouts or _mirror_waits(Timeouts())
        if timeout is not None:  # the old single knob: how long to wait for an answer
            base = Timeouts(connect=timeout, headers=max(timeout, base.headers), first_byte_ranged=base.first_byte_ranged,
                            stall=base.stall, min_rate=base.min_rate, window=base.window)
        self.timeouts = base
        rate = max_rate if max_rate is not None else os.environ.get(RATE_ENV) or None
        try:
            self.max_rate = parse_rate(rate) if isinstance(rate, str) else rate
        except ValueError as exc:
            raise UsageError(f"bad bandwidth cap: {exc}", hint="lyricsub-hub warm --max-rate 20M") from None
        self.keep_refs = keep_refs
        problem = env.endpoint_problem(self.endpoint)
        if problem:
            raise UsageError(f"bad endpoint {self.endpoint}: {problem}", hint="HF_ENDPOINT=https://huggingface.co "
                             "(or --endpoint URL: a scheme, a host, an optional port and path)")
        self._callback: ProgressCallback | None = None
        self._runs: dict[str, ModelRun] = {}
        self._runs_lock = threading.Lock()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._reach: str | None = None  # '' once reached; the reason when not

    # -- public API ---------------------------------------------------------------------------------
    @property
    def cache(self) -> Cache:
        return self.setup.cache

    @property
    def endpoint(self) -> str:
        return env.endpoint(self.setup.endpoint)

    def set_progress_callback(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def cancel_download(self, name: str | None = None) -> None:
        """Stop one model's download (or all); every connection stops within a read, finished bytes stay for resume."""
        wanted = self.setup.index.resolve(name).name if name is not None else None
        with self._runs_lock:
            runs = [r for n, r in self._runs.items() if wanted is None or n == wanted]
        for run in runs:
            run.abort()

    def check_disk_space(self, names: Iterable[str]) -> DiskPlan:
        """Bytes still to fetch for these models against the free space; raises DiskSpaceError when short."""
        plans = [plan_model(self.cache, self.setup.index.resolve(n)) for n in names]
        plan = disk_plan(self.cache, plans)
        plan.raise_if_short()
        return plan

    def download_model(self, name: str, *, force: bool = False) -> DownloadResult:
        return self.download_models([name], force=force)[0]

    def download_models(self, names: Sequence[str], *, force: bool = False) -> list[DownloadResult]:
        """Several models at once on the shared connections: small files and the tail of one file overlap the
        ranges of another. Results come back in the order asked."""
        specs = [self.setup.index.resolve(n) for n in names]
        results: dict[int, DownloadResult] = {}
        runs: dict[int, tuple[ModelRun, ModelPlan]] = {}
        started = time.monotonic()
        plans: dict[int, ModelPlan] = {}
        for i, spec in enumerate(specs):
            try:
                plans[i] = plan_model(self.cache, spec, force=force)
            except LyricsubError as exc:
                results[i] = _failed(spec, exc, started)
        fetching = {i: p for i, p in plans.items() if p.files}
        for i, p in plans.items():
            if not p.files:
                results[i] = self._verified(p.spec, ModelRun(p.spec.name, self._callback), started)
        if fetching:
            try:
                self._probe(specs[min(fetching)].name)
                disk_plan(self.cache, list(fetching.values())).raise_if_short()
            except LyricsubError as exc:
                for i, p in fetching.items():
                    results[i] = _failed(p.spec, exc, started)
                fetching = {}
        engine = self._engine_for() if fetching else None
        for i, p in fetching.items():
            run = ModelRun(p.spec.name, self._callback)
            with self._runs_lock:
                self._runs[p.spec.name] = run
            if force:
                self.cache.drop(p.spec, [f.name for f in p.files])
            else:
                self.cache.drop_bad(p.spec, p.before)
            run.total = p.needed
            run.emit("plan", None)
            runs[i] = (run, p)
            assert engine is not None
            engine.start(run, p.spec, p.files, Ranged(self.connections))
        try:
            for i, (run, p) in runs.items():
                while not run.finished.wait(0.2):
                    pass
                results[i] = self._conclude(run, p, started)
        except BaseException:  # Ctrl-C while waiting: every connection stops, partial files stay
            for run, _ in runs.values():
                run.abort()
            raise
        finally:
            with self._runs_lock:
                for run, p in runs.values():
                    if self._runs.get(p.spec.name) is run:
                        del self._runs[p.spec.name]
        return [results[i] for i in range(len(specs))]

    async def download_model_async(self, name: str, *, force: bool = False) -> DownloadResult:
        """Runs in a worker thread; cancelling the task cancels the transfer."""
        import asyncio  # here, not at the top: about 20 ms of every command's start that never awaits

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, lambda: self.download_model(name, force=force))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.cancel_download(name)
            raise

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    # -- the work ----------------------------------------------------------------------------------
    def _engine_for(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                limiter = RateLimiter(self.max_rate) if self.max_rate else None
                client = Client(self.endpoint, env.token(self.setup.token), connections=self.connections,
                                timeouts=self.timeouts, limiter=limiter)
                # no count given: start with a few and find the line's speed; a count given (aria2c's -x8, say):
                # start with it, up to 8, and still shed what adds nothing
                start = START if self._given is None else min(self._given, EXPLICIT_START)
                self._engine = Engine(self.cache, client, self.connections, self.retry, start)
            return self._engine

    def _conclude(self, run: ModelRun, plan: ModelPlan, started: float) -> DownloadResult:
        spec = plan.spec
        if run.failure is not None:
            exc = run.failure
            filename = getattr(exc, "lyricsub_filename", None)
            error = local_error(exc, model=spec.name, file=filename, cache_dir=self.cache.cache_dir,
                                state_dir=self.cache.state_dir)  # this machine's disk: exit 4, never a Hub error
            if error is None:
                error = translate(exc, Context(spec.name, spec.repo, spec.revision, filename, self.endpoint,
                                               getattr(exc, "lyricsub_attempts", 1)))
            run.emit("cancelled" if isinstance(error, DownloadCancelled) else "error", None, message=str(error))
            return _failed(spec, error, started, run)
        return self._verified(spec, run, started, plan)

    def _verified(self, spec: ModelSpec, run: ModelRun, started: float, plan: ModelPlan | None = None) -> DownloadResult:
        if not self.keep_refs:
            self.cache.point_ref(spec)
        if plan is not None:
            run.emit("verify", None)
        after = self.cache.status(spec)
        if not after.available:
            return _failed(spec, not_available_error(after), started, run)
        run.emit("done", None)
        return DownloadResult(spec.name, True, after.path, run.done, time.monotonic() - started,
                              files_fetched=tuple(run.fetched), resumed_bytes=run.resumed)

    def _probe(self, model: str) -> None:
        """Fail fast, once per downloader, when the endpoint cannot be reached at all."""
        if self._reach is None:
            from ..remote.reach import unreachable_reason

            try:
                self._reach = unreachable_reason(self.endpoint) or ""
            except TransferError as exc:  # the proxy or TLS trust: named by its cause, never retried
                raise translate(exc, Context(model, "", None, None, self.endpoint)) from None
        if self._reach:
            from ..core.text import clean_url

            shown = clean_url(self.endpoint)
            raise HubUnreachableError(f"the Hub at {shown} cannot be reached: {self._reach}; warm on a machine with "
                                      "network, or point HF_ENDPOINT at a mirror", model=model,
                                      hint=f"HF_ENDPOINT=<mirror url> {Hint.warm(model)}")


def _mirror_waits(base: Timeouts) -> Timeouts:
    """Mirrors that fetch a whole file upstream before its first byte (Artifactory, Nexus) tell their users to raise
    HF_HUB_DOWNLOAD_TIMEOUT: a larger value lengthens our waits for a first byte, never shortens them."""
    from dataclasses import replace

    try:
        wanted = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", ""))
    except ValueError:
        return base
    if not 0 < wanted <= 7 * 86400:  # nan, inf and nonsense leave the defaults
        return base
    return replace(base, headers=max(base.headers, wanted), first_byte_ranged=max(base.first_byte_ranged, wanted))


class _Plain:
    """A setup made from defaults, for a downloader built without a manager."""

    def __init__(self, index: ModelIndex, cache: Cache) -> None:
        self.index, self.cache = index, cache
        self.endpoint: str | None = None

    @property
    def token(self) -> str | None:
        return None


def _failed(spec: ModelSpec, exc: LyricsubError, started: float, run: ModelRun | None = None) -> DownloadResult:
    return DownloadResult(spec.name, False, None, run.done if run else 0, time.monotonic() - started, str(exc), exc.code,
                          exc.exit_code, files_fetched=tuple(run.fetched) if run else (), failure=exc)

