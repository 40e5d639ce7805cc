"""ModelDownloader: fill huggingface_hub's cache with exactly the index's files at the pinned commit.

Plan, then act: metadata for every missing file first (sizes, etags), a disk
check on the total, then transfers. Large files go through fetch.fetch_blob
(resumable, hashed while written); small git-stored files through
hf_hub_download. huggingface_hub then links every blob into the snapshot, so
the layout is exactly its own.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .environment import is_offline, quiet_hub
from .errors import (DiskSpaceError, DownloadCancelled, HubError, HubUnreachableError, LyricsubError, OfflineError,
                     UnpinnedModelError)
from .events import DownloadProgress, DownloadResult
from .failures import is_transient, retry_after, translate
from .fetch import CorruptTransfer, FetchJob, fetch_blob
from .hashing import digest_file
from .index import FileSpec, ModelSpec
from .manager import ModelManager, not_available_error
from .paths import cache_key, repo_folder
from .records import Stamp
from .status import ModelStatus, incomplete_bytes

ProgressCallback = Callable[[DownloadProgress], None]
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded: at most `attempts` tries per file, and no new try once `budget` seconds have passed for it."""

    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 60.0

    def delay(self, attempt: int, hinted: float | None) -> float:
        return min(self.max_delay, hinted if hinted is not None else self.first_delay * 2 ** (attempt - 1))


@dataclass
class _Planned:
    fspec: FileSpec
    url: str
    etag: str
    size: int
    commit: str


class _Run:
    """Shared state of one model's download: counters, cancel flag, open streams."""

    def __init__(self, spec: ModelSpec, callback: ProgressCallback | None) -> None:
        self.spec = spec
        self.callback = callback
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self.file_done: dict[str, int] = {}
        self.closers: dict[int, Callable[[], None]] = {}
        self.last_emit: dict[str | None, float] = {}

    def add(self, fname: str, n: int, size: int | None) -> None:
        with self.lock:
            self.done += n
            self.file_done[fname] = self.file_done.get(fname, 0) + n
        self.emit("download", fname, size, throttle=True)

    def emit(self, stage: str, fname: str | None, size: int | None = None, message: str = "", throttle: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if throttle and now - self.last_emit.get(fname, 0.0) < 0.1:
            return
        self.last_emit[fname] = now
        elapsed = max(now - self.started, 1e-6)
        speed = self.done / elapsed
        eta = (self.total - self.done) / speed if self.total and speed > 0 else None
        self.callback(DownloadProgress(self.spec.name, fname, stage, self.file_done.get(fname or "", 0), size,  # type: ignore[arg-type]
                                       self.done, self.total, speed, eta, message))

    def register(self, closer: Callable[[], None] | None) -> None:
        key = threading.get_ident()
        with self.lock:
            if closer is None:
                self.closers.pop(key, None)
            else:
                self.closers[key] = closer

    def abort(self) -> None:
        self.cancel.set()
        with self.lock:
            closers = list(self.closers.values())
        for close in closers:  # unblocks a read waiting on a slow server
            try:
                close()
            except Exception:
                pass


class ModelDownloader:
    """Downloads with progress, disk checks, retries, resume and cancellation."""

    def __init__(self, manager: ModelManager | None = None, *, workers: int = 4, retry: RetryPolicy | None = None,
                 timeout: float = 10.0, transfer: str = "http") -> None:
        if transfer not in ("http", "hub"):
            raise ValueError("transfer must be 'http' (resumable, default) or 'hub' (huggingface_hub decides, Xet included)")
        quiet_hub()  # before huggingface_hub is imported, where we can: no telemetry, no bars
        self.manager = manager or ModelManager()
        self.workers = max(1, workers)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.transfer = transfer
        self._callback: ProgressCallback | None = None
        self._runs: dict[str, _Run] = {}
        self._runs_lock = threading.Lock()
        self._records_lock = threading.Lock()
        self._reach: str | None = None  # '' once reached; the reason when not

    # -- public API ---------------------------------------------------------------
    def set_progress_callback(self, callback: ProgressCallback | None) -> None:
        self._callback = callback

    def cancel_download(self, name: str | None = None) -> None:
        """Stop one model's download (or all); transfers stop within a read, partial files stay resumable."""
        with self._runs_lock:
            runs = [r for n, r in self._runs.items() if name is None or n == self.manager.spec(name).name]
        for run in runs:
            run.abort()

    def check_disk_space(self, names: Iterable[str]) -> "DiskPlan":
        """Bytes still to fetch for these models against the free space; raises DiskSpaceError when short."""
        plan = self._disk_plan([self.manager.spec(n) for n in names])
        if plan.short:
            raise plan.error()
        return plan

    def download_model(self, name: str, *, force: bool = False) -> DownloadResult:
        spec = self.manager.spec(name)
        run = _Run(spec, self._callback)
        with self._runs_lock:
            self._runs[spec.name] = run
        try:
            return self._download(spec, run, force)
        except LyricsubError as exc:
            run.emit("cancelled" if isinstance(exc, DownloadCancelled) else "error", None, message=str(exc))
            return DownloadResult(spec.name, False, None, run.done, time.monotonic() - run.started, str(exc), exc.code,
                                  exc.exit_code, failure=exc)
        finally:
            with self._runs_lock:
                if self._runs.get(spec.name) is run:
                    del self._runs[spec.name]

    async def download_model_async(self, name: str, *, force: bool = False) -> DownloadResult:
        """Runs in a worker thread; cancelling the task cancels the transfer."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, lambda: self.download_model(name, force=force))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.cancel_download(name)
            raise

    # -- the work ---------------------------------------------------------------------
    def _download(self, spec: ModelSpec, run: _Run, force: bool) -> DownloadResult:
        if not spec.downloadable:
            raise UnpinnedModelError("the index has no pinned commit or file list for it", model=spec.name,
                                     hint=f"lyricsub-hub lock {spec.name}")
        before = self.manager.status(spec)
        needed = [f for f in spec.files if force or _needs_fetch(before, f.name)]
        if not needed:
            self._ensure_ref(spec)
            run.emit("done", None)
            return DownloadResult(spec.name, True, before.path, 0, time.monotonic() - run.started)
        if is_offline():
            names = ", ".join(f.name for f in needed)
            raise OfflineError(f"offline mode is on and {len(needed)} file(s) are missing: {names}", model=spec.name,
                               status=before.status, hint=f"HF_HUB_OFFLINE=0 lyricsub-hub warm {spec.name}  (on a machine with network)")
        quiet_hub()
        self._probe(spec.name)
        self._drop_bad(spec, before, needed)
        run.emit("plan", None)
        planned = self._with_retries(spec, run, None, lambda: self._plan(spec, needed))
        run.total = sum(p.size for p in planned)
        resumable = incomplete_bytes(self.manager.cache_dir, spec.repo)
        DiskPlan.of(self.manager.cache_dir, [(spec.name, run.total - min(resumable, run.total))]).raise_if_short()
        resumed = 0
        with ThreadPoolExecutor(max_workers=min(self.workers, len(planned)), thread_name_prefix="lyricsub-dl") as pool:
            futures = [pool.submit(self._with_retries, spec, run, p.fspec.name, lambda p=p: self._fetch_one(spec, run, p)) for p in planned]
            try:
                for fut in futures:
                    resumed += fut.result()
            except BaseException:
                run.abort()
                for fut in futures:
                    fut.cancel()
                raise
        fetched = [p.fspec.name for p in planned]
        self._ensure_ref(spec)
        run.emit("verify", None)
        after = self.manager.status(spec)
        if not after.available:
            raise not_available_error(after)
        run.emit("done", None)
        return DownloadResult(spec.name, True, after.path, run.done, time.monotonic() - run.started,
                              files_fetched=tuple(fetched), resumed_bytes=resumed)

    def _with_retries(self, spec: ModelSpec, run: _Run, fname: str | None, action: Callable):
        """Bounded by tries and by wall time (huggingface_hub 0.x may spend ~23 s retrying inside one call)."""
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            if run.cancel.is_set():
                raise DownloadCancelled("cancelled", model=spec.name, hint=f"lyricsub-hub warm {spec.name}")
            tried = time.monotonic()
            try:
                return action()
            except LyricsubError:
                raise
            except Exception as exc:  # classified below; anything unexpected becomes one clear line too
                if run.cancel.is_set():
                    raise DownloadCancelled("cancelled", model=spec.name, hint=f"lyricsub-hub warm {spec.name}") from None
                delay = self.retry.delay(attempt, retry_after(exc))
                now = time.monotonic()
                next_ends = now - started + delay + (now - tried)  # if the next try takes as long as this one
                if not is_transient(exc) or attempt >= self.retry.attempts or next_ends > self.retry.budget:
                    raise translate(exc, model=spec.name, repo=spec.repo, revision=spec.revision,
                                    filename=getattr(exc, "lyricsub_filename", fname),
                                    endpoint=self._endpoint(), token=self.manager.token, attempts=attempt) from None
                run.emit("download", fname, message=f"retrying in {delay:.1f}s after: {type(exc).__name__}")
                run.cancel.wait(delay)

    def _plan(self, spec: ModelSpec, needed: list[FileSpec]) -> list[_Planned]:
        """HEAD each missing file at the pinned commit: size, etag, and the URL to GET."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        out = []
        for fspec in needed:
            url = hf_hub_url(spec.repo, fspec.name, revision=spec.revision, endpoint=self.manager.endpoint)
            try:
                meta = get_hf_file_metadata(url, token=self.manager.token, timeout=self.timeout)
            except Exception as exc:
                exc.lyricsub_filename = fspec.name  # type: ignore[attr-defined]  # for the error line
                raise
            etag = (meta.etag or "").strip('"')
            if not (_HEX64.fullmatch(etag) or _HEX40.fullmatch(etag)):  # it becomes a file name in the cache
                raise HubError(f"the Hub answered an etag for {fspec.name} that is not 40 or 64 hex; refusing it as a "
                               "cache file name", model=spec.name, hint=f"lyricsub-hub warm {spec.name}")
            if meta.commit_hash and spec.revision and meta.commit_hash != spec.revision:
                answered = meta.commit_hash if _HEX40.fullmatch(meta.commit_hash) else "an invalid commit id"  # never echo junk
                raise HubError(f"asked for commit {spec.revision} of {fspec.name}, the Hub answered for {answered}",
                               model=spec.name, hint=f"lyricsub-hub warm {spec.name}")
            size = meta.size if meta.size is not None else (fspec.size or 0)
            if fspec.size is not None and meta.size is not None and meta.size != fspec.size:
                raise UnpinnedModelError(f"the Hub says {fspec.name} has {meta.size} bytes, the index pins {fspec.size}",
                                         model=spec.name, hint=f"lyricsub-hub lock --update {spec.name}")
            out.append(_Planned(fspec, meta.location or url, etag, size, meta.commit_hash or spec.revision or ""))
        return out

    def _fetch_one(self, spec: ModelSpec, run: _Run, p: _Planned) -> int:
        cache = self.manager.cache_dir
        if self.transfer == "http" and _HEX64.fullmatch(p.etag):
            from huggingface_hub.utils import build_hf_headers

            job = FetchJob(spec.name, spec.repo, p.fspec.name, p.url, p.etag, p.size, p.fspec.sha256,
                           build_hf_headers(token=self.manager.token), self.timeout)
            got = fetch_blob(job, cache, run.cancel, lambda n: run.add(p.fspec.name, n, p.size), run.register)
            if not got.already:
                st = os.stat(got.blob)
                self._remember(spec, p.fspec.name, Stamp.of(st, p.etag))
            self._link(spec, p)
            run.emit("file_done", p.fspec.name, p.size)
            return got.resumed
        else:  # small git-stored files, or --transfer hub: huggingface_hub fetches the bytes itself
            self._link(spec, p)
            self._check_linked(spec, p)
            run.add(p.fspec.name, p.size, p.size)
        run.emit("file_done", p.fspec.name, p.size)
        return 0

    def _link(self, spec: ModelSpec, p: _Planned) -> None:
        """huggingface_hub places the snapshot entry itself (symlink, or copy where symlinks are off)."""
        from huggingface_hub import hf_hub_download

        hf_hub_download(spec.repo, p.fspec.name, revision=spec.revision, cache_dir=self.manager.cache_dir,
                        endpoint=self.manager.endpoint, token=self.manager.token, etag_timeout=self.timeout)

    def _check_linked(self, spec: ModelSpec, p: _Planned) -> None:
        """huggingface_hub checks only sizes: hash what it wrote, and drop it (to retry) when it is wrong."""
        assert spec.revision is not None
        entry = repo_folder(self.manager.cache_dir, spec.repo) / "snapshots" / spec.revision / p.fspec.name
        digest = digest_file(entry, git_sha1=bool(_HEX40.fullmatch(p.etag)))
        expected = {p.fspec.sha256, p.etag} - {None}
        if {digest.sha256, digest.git_sha1} & expected == expected:
            self._remember(spec, p.fspec.name, Stamp.of(os.stat(entry), digest.sha256))
            return
        target = entry.resolve()
        entry.unlink(missing_ok=True)
        if target != entry and target.parent.name == "blobs":
            target.unlink(missing_ok=True)
        raise CorruptTransfer(f"{p.fspec.name}: downloaded bytes hash to {digest.sha256[:12]}…, which matches neither the pin nor the etag")

    def _remember(self, spec: ModelSpec, fname: str, stamp: Stamp) -> None:
        records, key = self.manager.records, cache_key(self.manager.cache_dir)
        assert spec.revision is not None
        with self._records_lock:
            stamps = records.load(key, spec.repo, spec.revision)
            stamps[fname] = stamp
            records.save(key, spec.repo, spec.revision, stamps)

    def _drop_bad(self, spec: ModelSpec, status: ModelStatus, needed: list[FileSpec]) -> None:
        """A corrupt or wrong-size file is worthless: unlink it so the pinned bytes can take its place."""
        assert spec.revision is not None
        snap = repo_folder(self.manager.cache_dir, spec.repo) / "snapshots" / spec.revision
        bad = {f.name for f in status.files if f.state in ("mismatch", "size_mismatch")}
        for fspec in needed:
            if fspec.name not in bad:
                continue
            entry = snap / fspec.name
            if entry.is_symlink():
                target = entry.resolve()
                if target.parent.name == "blobs" and target.is_relative_to(repo_folder(self.manager.cache_dir, spec.repo)):
                    target.unlink(missing_ok=True)
            entry.unlink(missing_ok=True)

    def _ensure_ref(self, spec: ModelSpec) -> None:
        """Upstream loaders ask for `main`: point it at the pinned commit where it is absent."""
        refs = repo_folder(self.manager.cache_dir, spec.repo) / "refs"
        ref = refs / spec.branch
        if ref.exists() or spec.revision is None:
            return
        try:
            refs.mkdir(parents=True, exist_ok=True)
            tmp = refs / f".{spec.branch}.{os.getpid()}.tmp"
            tmp.write_text(spec.revision)
            os.replace(tmp, ref)
        except OSError:
            pass  # read-only cache: loaders can still be given the snapshot path

    def _probe(self, model: str) -> None:
        """Fail fast, once per downloader, when the Hub cannot be reached at all."""
        if self._reach is None:
            from .reach import unreachable_reason

            self._reach = unreachable_reason(self._endpoint()) or ""
        if self._reach:
            raise HubUnreachableError(f"the Hub at {self._endpoint()} cannot be reached: {self._reach}; warm on a machine "
                                      "with network, or point HF_ENDPOINT at a mirror", model=model,
                                      hint=f"HF_ENDPOINT=<mirror url> lyricsub-hub warm {model}")

    def _endpoint(self) -> str:
        return (self.manager.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    def _disk_plan(self, specs: list[ModelSpec]) -> "DiskPlan":
        wants = []
        for spec in specs:
            status = self.manager.status(spec)
            missing = sum((f.size or 0) for f in spec.files if _needs_fetch(status, f.name))
            unknown = [f for f in spec.files if f.size is None and _needs_fetch(status, f.name)]
            if unknown and spec.downloadable and not is_offline():
                missing += sum(p.size for p in self._plan(spec, unknown))
            wants.append((spec.name, max(0, missing - incomplete_bytes(self.manager.cache_dir, spec.repo))))
        return DiskPlan.of(self.manager.cache_dir, wants)


def _needs_fetch(status: ModelStatus, fname: str) -> bool:
    for f in status.files:
        if f.name == fname:
            return f.state not in ("ok", "unpinned")
    return True


@dataclass(frozen=True)
class DiskPlan:
    folder: Path
    needed: int
    free: int
    per_model: tuple[tuple[str, int], ...]

    @property
    def short(self) -> bool:
        return self.needed > self.free

    @classmethod
    def of(cls, cache_dir: Path, wants: list[tuple[str, int]]) -> "DiskPlan":
        probe = cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        return cls(cache_dir, sum(n for _, n in wants), free, tuple(wants))

    def error(self) -> DiskSpaceError:
        models = ", ".join(name for name, n in self.per_model if n)
        return DiskSpaceError(f"needs {_human(self.needed)} in {self.folder} but only {_human(self.free)} is free",
                              model=models or None, hint=f"free {_human(self.needed - self.free)} or set HF_HUB_CACHE to a larger disk")

    def raise_if_short(self) -> None:
        if self.short:
            raise self.error()


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
