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


def test_one_connection_in_file_order_never_reads_its_bytes_back(tmp_path) -> None:
    """Bytes at the frontier are hashed on the offering thread, from memory: no helper thread, no read of the file."""
    data = random.Random(11).randbytes(24 * CHUNK + 5)
    hasher = _write_and_offer(tmp_path, data, list(range(0, len(data), CHUNK)))
    assert hasher.finish()[0] == hashlib.sha256(data).hexdigest()
    assert hasher.reread == 0
    assert hasher._thread is None


def test_bytes_past_a_gap_are_hashed_from_the_file_once_the_gap_fills(tmp_path) -> None:
    data = random.Random(12).randbytes(16 * CHUNK)
    order = list(range(0, len(data), CHUNK))
    order = order[8:] + order[:8]  # a second connection's half arrives first
    hasher = _write_and_offer(tmp_path, data, order)
    assert hasher.finish()[0] == hashlib.sha256(data).hexdigest()
    assert hasher.reread == 8 * CHUNK  # the second half, read back once; the first half hashed as it came


def test_a_rewrite_from_byte_zero_that_straddles_the_frontier_is_hashed_once(tmp_path) -> None:
    """A server that ignored Range makes the file start over from byte 0 over bytes already hashed."""
    data = random.Random(13).randbytes(8 * CHUNK)
    path = tmp_path / "part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    written = [0]
    hasher = PrefixHasher(fd, len(data), lambda: written[0], git_sha1=False)
    for start, end in ((0, 3 * CHUNK), (0, 5 * CHUNK), (5 * CHUNK, 8 * CHUNK)):  # the middle piece overlaps 3 chunks
        os.pwrite(fd, data[start:end], start)
        written[0] = max(written[0], end)
        hasher.offer(start, data[start:end])
    assert hasher.finish()[0] == hashlib.sha256(data).hexdigest()
    assert hasher.reread == 0
