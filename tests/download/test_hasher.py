"""The hash that guards every download: right for bytes in any order, and no more work than the file needs."""

from __future__ import annotations

import hashlib
import os
import random

from lyricsub_hub.download.hasher import PrefixHasher

CHUNK = 1 << 16


def _git_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _write_and_offer(tmp_path, data: bytes, order: list[int], *, drop_git: bool = False) -> PrefixHasher:
    path = tmp_path / "part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    done: set[int] = set()

    def prefix() -> int:
        n = 0
        while n in done:
            n += CHUNK
        return min(n, len(data))

    hasher = PrefixHasher(fd, len(data), prefix, git_sha1=True)
    if drop_git:
        hasher.drop_git()
    for start in order:
        piece = data[start:start + CHUNK]
        os.pwrite(fd, piece, start)
        done.add(start)
        hasher.offer(start, piece)
    return hasher


def test_out_of_order_ranges_hash_to_the_files_sha256_and_git_id(tmp_path) -> None:
    data = random.Random(7).randbytes(40 * CHUNK + 123)
    order = list(range(0, len(data), CHUNK))
    random.Random(8).shuffle(order)
    sha256, git = _write_and_offer(tmp_path, data, order).finish()
    assert (sha256, git) == (hashlib.sha256(data).hexdigest(), _git_id(data))


def test_once_the_etag_says_sha256_no_git_id_is_computed(tmp_path) -> None:
    data = random.Random(10).randbytes(8 * CHUNK)
    sha256, git = _write_and_offer(tmp_path, data, list(range(0, len(data), CHUNK)), drop_git=True).finish()
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert git is None
