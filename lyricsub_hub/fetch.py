"""Fetch one large (LFS) file into huggingface_hub's blob store, resumably and verified.

The file streams into blobs/<sha256>.incomplete under huggingface_hub's own
per-blob lock, is hashed as it is written, and only a file whose sha256
matches the etag (and the index pin) is renamed to blobs/<sha256>. A killed or
cancelled run leaves a valid prefix that the next run continues with a Range
request, on every huggingface_hub version.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DownloadCancelled
from .paths import lock_path, repo_folder
from .transport import READ_SIZE, stream_get

LOCK_POLL = 0.25  # seconds between lock attempts, so a cancel is seen while waiting


def _read_umask() -> int:
    """Read once at import: os.umask is process-wide and not thread-safe to probe later."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class CorruptTransfer(ValueError):
    """The bytes received do not hash to the etag/pin: worth one more try from scratch."""


@dataclass(frozen=True)
class Fetched:
    blob: Path
    fetched: int  # bytes received in this call
    resumed: int  # bytes kept from an earlier, interrupted call
    already: bool  # another process (or an earlier run) had it


@dataclass
class FetchJob:
    model: str
    repo: str
    filename: str
    url: str
    etag: str  # sha256 hex for LFS files
    size: int
    pinned_sha256: str | None
    headers: dict[str, str]
    timeout: float


def fetch_blob(job: FetchJob, cache_dir: Path, cancel: threading.Event, on_bytes: Callable[[int], None],
               register: Callable[[Callable[[], None] | None], None]) -> Fetched:
    """Download one blob; raises DownloadCancelled, IntegrityError, or the transport's error."""
    from filelock import FileLock, Timeout

    blobs = repo_folder(cache_dir, job.repo) / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / job.etag
    lock_file = lock_path(cache_dir, job.repo, job.etag)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file))
    while True:  # bounded by cancel: filelock itself would wait forever
        if cancel.is_set():
            raise DownloadCancelled("cancelled while waiting for another download of the same file", model=job.model)
        try:
            lock.acquire(timeout=LOCK_POLL)
            break
        except Timeout:
            continue
    try:
        if blob.exists() and blob.stat().st_size == job.size:
            return Fetched(blob, 0, 0, True)
        return _stream_into(job, blob, cancel, on_bytes, register)
    finally:
        lock.release()


def _stream_into(job: FetchJob, blob: Path, cancel: threading.Event, on_bytes: Callable[[int], None],
                 register: Callable[[Callable[[], None] | None], None]) -> Fetched:
    partial = blob.with_name(blob.name + ".incomplete")
    sha = hashlib.sha256()
    have = _prefix(partial, job.size, sha)
    resumed = have
    if have == job.size:  # killed between the last write and the rename: nothing left to ask for
        return _finish(job, partial, blob, sha, 0, resumed)
    headers = dict(job.headers)
    if have:
        headers["Range"] = f"bytes={have}-"
    fetched = 0
    with open(partial, "ab") as out, stream_get(job.url, headers, job.timeout) as stream, _Hasher(sha) as hasher:
        register(stream.close)
        try:
            if stream.status == 200 and have:  # server ignored Range: start over
                out.truncate(0)
                out.seek(0)
                hasher.restart()
                have = resumed = 0
            for chunk in stream.chunks:
                if cancel.is_set():
                    raise DownloadCancelled("cancelled", model=job.model)
                if not chunk:
                    continue
                if have + len(chunk) > job.size:
                    out.truncate(0)  # the answer contradicts its own size: keep nothing of it
                    raise CorruptTransfer(f"{job.filename}: the server sent more than the {job.size} bytes it announced")
                out.write(chunk)
                hasher.update(chunk)
                have += len(chunk)
                fetched += len(chunk)
                on_bytes(len(chunk))
        except BaseException:
            if cancel.is_set():
                out.flush()
                raise DownloadCancelled("cancelled", model=job.model) from None
            raise
        finally:
            register(None)
        out.flush()  # no fsync, as in huggingface_hub: records re-check files after a reboot instead
    if have != job.size:
        raise ConnectionError(f"{job.filename}: connection closed after {have} of {job.size} bytes")
    return _finish(job, partial, blob, hasher.sha, fetched, resumed)


class _Hasher:
    """Hash on a second thread while the next chunk arrives: sha256 and socket reads both release the GIL,
    so on a fast link verification costs almost no wall time."""

    def __init__(self, sha: "hashlib._Hash") -> None:
        self.sha = sha
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self.thread = threading.Thread(target=self._run, name="lyricsub-hash", daemon=True)

    def __enter__(self) -> "_Hasher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            self.sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        self.queue.put(chunk)

    def restart(self) -> None:
        """The server ignored Range and sends from byte 0: drain, then hash from scratch."""
        self.queue.put(None)
        self.thread.join()
        self.sha = hashlib.sha256()
        self.queue = queue.Queue(maxsize=16)
        self.thread = threading.Thread(target=self._run, name="lyricsub-hash", daemon=True)
        self.thread.start()


def _finish(job: FetchJob, partial: Path, blob: Path, sha: "hashlib._Hash", fetched: int, resumed: int) -> Fetched:
    """Publish the blob only when its sha256 matches the etag and the pin."""
    digest = sha.hexdigest()
    if digest != job.etag or (job.pinned_sha256 and digest != job.pinned_sha256):
        partial.unlink(missing_ok=True)  # a wrong byte somewhere: keeping the prefix would keep it too
        expected = job.pinned_sha256 or job.etag
        raise CorruptTransfer(f"{job.filename}: downloaded bytes hash to {digest[:12]}…, expected {expected[:12]}…")
    _publish(partial, blob)
    return Fetched(blob, fetched, resumed, False)


def _prefix(partial: Path, size: int, sha: "hashlib._Hash") -> int:
    """Hash what an earlier run left, so the final digest covers the whole file."""
    try:
        have = partial.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:
        partial.unlink()
        return 0
    with open(partial, "rb") as fh:
        while data := fh.read(READ_SIZE * 4):
            sha.update(data)
    return have


def _publish(partial: Path, blob: Path) -> None:
    """Same permissions huggingface_hub gives blobs (0o666 minus umask), then an atomic rename."""
    os.chmod(partial, 0o666 & ~_UMASK)
    os.replace(partial, blob)
