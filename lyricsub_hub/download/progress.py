"""What a download reports while it runs and when it ends (the types the app already uses), and the
bookkeeping of one model's run that produces them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..errors import LyricsubError

Stage = Literal["plan", "download", "verify", "file_done", "done", "error", "cancelled"]


@dataclass(frozen=True)
class DownloadProgress:
    """One progress event; bytes are counted on the wire for the current file and for the model."""

    model: str
    file: str | None
    stage: Stage
    bytes_done: int = 0
    bytes_total: int | None = None
    model_bytes_done: int = 0
    model_bytes_total: int | None = None
    speed: float = 0.0  # bytes per second over the model so far
    eta: float | None = None  # seconds left for the model, when the total is known
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.model_bytes_total:
            return None
        return min(1.0, self.model_bytes_done / self.model_bytes_total)


@dataclass(frozen=True)
class DownloadResult:
    """The outcome of one model's download; success only when every file verified."""

    model: str
    success: bool
    local_path: Path | None
    bytes_fetched: int
    seconds: float
    error: str | None = None
    error_code: str | None = None
    exit_code: int = 0
    files_fetched: tuple[str, ...] = ()
    resumed_bytes: int = 0
    warnings: tuple[str, ...] = field(default=())
    failure: LyricsubError | None = field(default=None, compare=False, repr=False)


ProgressCallback = Callable[[DownloadProgress], None]


class ModelRun:
    """Shared state of one model's download: byte counters, the cancel flag, open streams, files left."""

    def __init__(self, model: str, callback: ProgressCallback | None) -> None:
        self.model = model
        self.callback = callback
        self.cancel = threading.Event()
        self.finished = threading.Event()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.done = 0
        self.total: int | None = None
        self.file_done: dict[str, int] = {}
        self.file_size: dict[str, int] = {}
        self.closers: set[Callable[[], None]] = set()
        self.last_emit: dict[str | None, float] = {}
        self.pending = 0
        self.failure: BaseException | None = None
        self.fetched: list[str] = []
        self.resumed = 0

    # -- counting ----------------------------------------------------------------------------
    def add(self, fname: str, n: int) -> None:
        with self.lock:
            self.done += n
            self.file_done[fname] = self.file_done.get(fname, 0) + n
        self.emit("download", fname, throttle=True)

    def emit(self, stage: Stage, fname: str | None, message: str = "", throttle: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        with self.lock:
            if throttle and now - self.last_emit.get(fname, 0.0) < 0.1:
                return
            self.last_emit[fname] = now
            elapsed = max(now - self.started, 1e-6)
            speed = self.done / elapsed
            eta = (self.total - self.done) / speed if self.total and speed > 0 else None
            event = DownloadProgress(self.model, fname, stage, self.file_done.get(fname or "", 0),
                                     self.file_size.get(fname or ""), self.done, self.total, speed, eta, message)
        self.callback(event)

    # -- files -------------------------------------------------------------------------------
    def expect(self, files: dict[str, int]) -> None:
        with self.lock:
            self.file_size.update(files)
            self.pending += len(files)
            if self.pending == 0:
                self.finished.set()

    def file_finished(self, fname: str, error: BaseException | None = None, resumed: int = 0) -> None:
        with self.lock:
            self.pending -= 1
            if error is None:
                self.fetched.append(fname)
                self.resumed += resumed
            elif self.failure is None:
                self.failure = error
            last = self.pending <= 0
        if error is None:
            self.emit("file_done", fname)
        else:
            self.abort()  # one file failed: the model cannot complete, stop the others now
        if last:
            self.finished.set()

    # -- cancelling --------------------------------------------------------------------------
    def register(self, closer: Callable[[], None]) -> None:
        with self.lock:
            self.closers.add(closer)

    def unregister(self, closer: Callable[[], None]) -> None:
        with self.lock:
            self.closers.discard(closer)

    def abort(self) -> None:
        self.cancel.set()
        with self.lock:
            closers = list(self.closers)
        for close in closers:  # unblocks a read waiting on a slow server
            try:
                close()
            except Exception:
                pass
