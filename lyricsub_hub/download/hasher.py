"""Hash a file as its contiguous prefix grows, while its ranges arrive out of order.

Bytes that arrive exactly at the hashed frontier are hashed from memory (a
single-connection download never reads its file back); bytes further on are
hashed from the page cache once the gap before them is filled. The hashing runs
on its own thread, so the network threads only hand over references.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from ..core.digest import git_blob_hasher, sha256_hasher

_READ = 1 << 20


class PrefixHasher:
    def __init__(self, fd: int, size: int, prefix: Callable[[], int], *, git_sha1: bool) -> None:
        self.fd, self.size, self._prefix = fd, size, prefix
        self.sha256 = sha256_hasher()
        self.git = git_blob_hasher(size) if git_sha1 else None
        self.frontier = 0
        self.reread = 0  # bytes hashed from the file rather than from memory
        self._queue: queue.Queue[tuple[int, bytes | memoryview] | None] = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lyricsub-hash", daemon=True)
        self._thread.start()

    def offer(self, offset: int, data: bytes | memoryview) -> None:
        """Bytes just written at offset (after the ranges record says so)."""
        self._queue.put((offset, data))

    def finish(self) -> tuple[str, str | None]:
        """Hash whatever the frontier has not reached yet; (sha256, git sha1 or None)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._catch_up(self.size)
        return self.sha256.hexdigest(), self.git.hexdigest() if self.git else None

    def stop(self) -> None:
        """Abandon (the file failed or was cancelled)."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def drop_git(self) -> None:
        """The answer's etag is a sha256 (an LFS file): no git id is needed, and computing it doubled the hashing."""
        self.git = None

    def _update(self, data: bytes | memoryview) -> None:
        self.sha256.update(data)
        git = self.git  # read once: drop_git may run on a network thread meanwhile
        if git is not None:
            git.update(data)
        self.frontier += len(data)

    def _run(self) -> None:
        try:
            self._catch_up(self._prefix())  # what an earlier run left
            while (item := self._queue.get()) is not None:
                offset, data = item
                if offset == self.frontier:
                    self._update(data)
                self._catch_up(self._prefix())
        except BaseException as exc:  # reported by finish()
            self._error = exc
            while self._queue.get() is not None:  # keep writers from blocking on a full queue
                pass

    def _catch_up(self, end: int) -> None:
        while self.frontier < end:
            data = os.pread(self.fd, min(_READ, end - self.frontier), self.frontier)
            if not data:
                raise OSError(f"part file shorter than its record ({self.frontier} of {end} bytes)")
            self.reread += len(data)
            self._update(data)
