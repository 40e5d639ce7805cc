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


def test_a_plain_bundle_file_is_copied_by_the_kernel(tmp_path, mocker) -> None:
    """Import reads a bundle file with no buffer: member bytes go file to file with copy_file_range, none through
    Python, and the stream goes on exactly after them."""
    from lyricsub_hub.bundles.tarstream import Source

    data = os.urandom(3 << 20)
    src_path = tmp_path / "b.tar"
    src_path.write_bytes(b"HEAD" + data + b"TAIL")
    kernel = mocker.spy(os, "copy_file_range")
    out = tmp_path / "out"
    with open(src_path, "rb", buffering=0) as raw, open(out, "wb", buffering=0) as dst:
        src = Source(raw)
        assert src.exact(4) == b"HEAD"
        assert src.copy_to(dst.fileno(), len(data)) == len(data)
        assert src.exact(4) == b"TAIL"
    assert out.read_bytes() == data
    assert kernel.call_count >= 1


def test_a_pipe_or_a_buffered_source_is_read_the_usual_way(tmp_path) -> None:
    """No descriptor whose offset is what was read (a BytesIO, a buffered file): nothing is copied by the kernel."""
    import io

    from lyricsub_hub.bundles.tarstream import Source

    path = tmp_path / "b.tar"
    path.write_bytes(b"HEAD" + bytes(1000))
    with open(tmp_path / "out", "wb", buffering=0) as dst:
        assert Source(io.BytesIO(path.read_bytes())).copy_to(dst.fileno(), 10) == 0
        with open(path, "rb") as buffered:
            src = Source(buffered)
            src.exact(4)
            assert src.copy_to(dst.fileno(), 10) == 0
