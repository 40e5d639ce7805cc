"""Hashes of cached files: sha256 (index pins, LFS etags) and git blob sha1 (small-file blob names).

Hashing reads an open descriptor, so the stat that a record keeps is the stat of
the very bytes that were hashed. hashlib releases the GIL on large updates, so a
thread pool hashes several files on several cores without processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.digest import git_blob_hasher, sha256_hasher

CHUNK = 1 << 20  # 1 MiB: large enough that the per-call overhead vanishes


@dataclass(frozen=True)
class Digest:
    """The hashes of one file's bytes, and the fstat taken before they were read (for a verification record)."""

    sha256: str
    git_sha1: str | None  # only computed when asked (small git-stored files)
    size: int
    stat: os.stat_result | None = None  # fstat of the descriptor that was hashed, taken before reading


def digest_fd(fd: int, *, git_sha1: bool = False, on_bytes: Callable[[int], None] | None = None) -> Digest:
    """Hash an open file from its start, with readinto (no copy per chunk)."""
    st = os.fstat(fd)
    sha = sha256_hasher()
    git = git_blob_hasher(st.st_size) if git_sha1 else None
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        fh.seek(0)
        while n := fh.readinto(buf):
            chunk = view[:n]
            sha.update(chunk)
            if git is not None:
                git.update(chunk)
            total += n
            if on_bytes is not None:
                on_bytes(n)
    return Digest(sha.hexdigest(), git.hexdigest() if git else None, total, st)


def digest_file(path: Path, *, git_sha1: bool = False, on_bytes: Callable[[int], None] | None = None) -> Digest:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return digest_fd(fd, git_sha1=git_sha1, on_bytes=on_bytes)
    finally:
        os.close(fd)


def digest_many(jobs: Iterable[tuple[Path, bool]], workers: int | None = None) -> list[Digest | OSError]:
    """Hash several files at once; an unreadable file yields its OSError in place of a digest."""
    jobs = list(jobs)
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1

    def one(job: tuple[Path, bool]) -> Digest | OSError:
        try:
            return digest_file(job[0], git_sha1=job[1])
        except OSError as exc:
            return exc

    if workers == 1 or len(jobs) < 2:
        return [one(j) for j in jobs]
    from concurrent.futures import ThreadPoolExecutor  # only when there is something to spread

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lyricsub-hash") as pool:
        return list(pool.map(one, jobs))
