"""Moving bundle bytes: every byte reaches the sink, in writes the kernel handles at full speed."""

from __future__ import annotations

from lyricsub_hub.bundles.tarstream import WRITE_MAX, write_all


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
