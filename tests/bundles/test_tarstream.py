"""Moving bundle bytes: every byte reaches the sink, in writes the kernel handles at full speed."""

from __future__ import annotations

import hashlib
import os

import pytest

from lyricsub_hub.bundles.tarstream import CHUNK, WRITE_MAX, Pump, write_all


def test_short_writes_are_continued_until_every_byte_is_written() -> None:
    data = bytes(range(256)) * 20000  # 5 MB: several WRITE_MAX slices
    got = bytearray()

    def short(view: memoryview) -> int:
        take = min(len(view), 70001)  # a pipe or socket that accepts less than asked
        got.extend(view[:take])
        return take

    write_all(short, memoryview(data))
    assert bytes(got) == data


def test_no_single_write_exceeds_write_max() -> None:
    sizes: list[int] = []
    write_all(lambda v: sizes.append(len(v)) or len(v), memoryview(bytes(4 * WRITE_MAX + 5)))
    assert max(sizes) == WRITE_MAX


def test_a_writer_that_returns_none_has_taken_each_slice_whole() -> None:
    got = bytearray()

    def zstd_like(view: memoryview) -> None:  # zstandard's stream writer returns nothing useful here
        got.extend(view)

    data = bytes(3 * WRITE_MAX + 17)
    write_all(zstd_like, memoryview(data))
    assert len(got) == len(data)


@pytest.mark.parametrize("size", [0, 1000, CHUNK, 3 * CHUNK + 12345])
def test_the_pump_hashes_in_order_exactly_the_bytes_it_writes(size: int) -> None:
    """Two buffers, the hash of one overlapping the copy of the next: the digest is still that of the bytes, in order."""
    data = os.urandom(size)
    pos = 0

    def fill(view: memoryview) -> None:
        nonlocal pos
        view[:] = data[pos:pos + len(view)]
        pos += len(view)

    out = bytearray()
    digest = hashlib.sha256()
    pump = Pump()
    try:
        pump.move(size, fill, out.extend, [digest])
    finally:
        pump.close()
    assert bytes(out) == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_failed_write_leaves_no_hashing_behind() -> None:
    """The drain fails on the second chunk: the error comes out, and the first chunk's hash has finished."""
    digest = hashlib.sha256()
    calls = 0

    def drain(view: memoryview) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")

    pump = Pump()
    try:
        with pytest.raises(OSError):
            pump.move(3 * CHUNK, lambda v: None, drain, [digest])
        assert digest.hexdigest() == hashlib.sha256(bytes(CHUNK)).hexdigest()
    finally:
        pump.close()
