"""Moving bundle bytes: every byte reaches the sink (and the hash), in writes the kernel handles at full speed."""

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


def test_a_plain_bundle_file_hands_a_member_to_a_helper_and_reads_on_after_it(tmp_path) -> None:
    """Import reads a bundle file with no buffer: a member's data is left where it lies (its offset goes to a helper
    thread, which reads it with pread) and the stream goes on exactly after it."""
    from lyricsub_hub.bundles.tarstream import Source

    data = os.urandom(3 << 20)
    src_path = tmp_path / "b.tar"
    src_path.write_bytes(b"HEAD" + data + b"TAIL")
    with open(src_path, "rb", buffering=0) as raw:
        src = Source(raw)
        assert src.exact(4) == b"HEAD"
        assert src.hand_off(len(data)) == 4
        assert src.exact(4) == b"TAIL"
        assert src.arrived == len(data) + 8


def test_a_file_too_short_for_the_member_is_not_handed_off(tmp_path) -> None:
    """A bundle cut inside a member is read the usual way, so the cut is reported where it is."""
    from lyricsub_hub.bundles.tarstream import Source, Truncated

    path = tmp_path / "b.tar"
    path.write_bytes(b"HEAD" + bytes(1000))
    with open(path, "rb", buffering=0) as raw:
        src = Source(raw)
        src.exact(4)
        assert src.hand_off(1001) is None
        with pytest.raises(Truncated, match="at byte 1004"):
            src.exact(1001)


def test_a_pipe_or_a_buffered_source_is_never_handed_off(tmp_path) -> None:
    """No descriptor whose offset is what was read (a BytesIO, a buffered file): its bytes are read as they come."""
    import io

    from lyricsub_hub.bundles.tarstream import Source

    path = tmp_path / "b.tar"
    path.write_bytes(b"HEAD" + bytes(1000))
    assert Source(io.BytesIO(path.read_bytes())).hand_off(10) is None
    with open(path, "rb") as buffered:
        src = Source(buffered)
        src.exact(4)
        assert src.hand_off(10) is None


def test_skipping_a_member_of_a_plain_file_reads_none_of_it(tmp_path, mocker) -> None:
    """A member the import does not need (its model is in the cache already) is passed over by lseek, not read."""
    from lyricsub_hub.bundles.tarstream import Source, TarReader

    path = tmp_path / "b.tar"
    path.write_bytes(b"HEAD" + bytes(8 << 20) + b"TAIL")
    with open(path, "rb", buffering=0) as raw:
        reader = TarReader(Source(raw))
        reader.src.exact(4)
        reads = mocker.spy(raw, "readinto")
        reader.src.pass_over(8 << 20, memoryview(bytearray(1 << 20)))
        assert reads.call_count == 0
        assert reader.src.exact(4) == b"TAIL"


def test_carry_writes_the_very_bytes_it_hashes(tmp_path) -> None:
    """The helper's copy: the bytes of the member, and nothing around them, reach the file and the hash."""
    from lyricsub_hub.bundles.tarstream import CARRY, carry

    data = os.urandom(3 * CARRY + 12345)
    src_path = tmp_path / "b.tar"
    src_path.write_bytes(b"HEAD" + data + b"TAIL")
    sha = hashlib.sha256()
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert carry(src, 4, len(data), dst, [sha]) == len(data)
    finally:
        os.close(src)
        os.close(dst)
    assert (tmp_path / "out").read_bytes() == data
    assert sha.hexdigest() == hashlib.sha256(data).hexdigest()


def test_carry_stops_short_at_the_end_of_the_file_or_when_told(tmp_path) -> None:
    import threading

    from lyricsub_hub.bundles.tarstream import CARRY, carry

    src_path = tmp_path / "b.tar"
    src_path.write_bytes(bytes(2 * CARRY))
    stop = threading.Event()
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert carry(src, CARRY, 5 * CARRY, dst, []) == CARRY  # the file ends one CARRY in
        stop.set()
        assert carry(src, 0, 2 * CARRY, dst, [], stop) == 0  # an import being cancelled
    finally:
        os.close(src)
        os.close(dst)
