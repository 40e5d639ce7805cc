"""Part files: a new one is never truncated (ext4 would write all of it out when it is closed)."""

from __future__ import annotations

import os

from lyricsub_hub.cache.parts import PartFile

SHA = "ab" * 32
REPO = "org/model"


def test_a_new_part_file_is_never_truncated(tmp_path, mocker) -> None:
    """ext4 flushes a file that was truncated to zero when it is closed (auto_da_alloc): 0.2 s per 512 MiB after
    every download, measured in figure H before this was fixed."""
    truncate = mocker.spy(os, "ftruncate")
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    part.close()
    assert truncate.call_count == 0


def test_unknown_bytes_of_an_old_part_file_are_dropped(tmp_path) -> None:
    """A part file without a record it matches (another size, or no record) keeps none of its bytes."""
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    part.close()
    again = PartFile(tmp_path, REPO, SHA, 2 << 20)  # the pin's size changed: the old bytes are not these
    assert os.fstat(again.fd).st_size == 0
    assert again.done.covered() == 0
    again.close()


def test_a_recorded_part_file_keeps_its_bytes(tmp_path) -> None:
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    part.close()
    again = PartFile(tmp_path, REPO, SHA, 1 << 20)
    assert again.done.covered() == 4096
    again.close()


def _claimed(part: PartFile) -> int:
    """What the record on disk vouches for now, as a later run (or a kill right now) would find it."""
    from lyricsub_hub.cache.parts import held_bytes

    return held_bytes(part.cache_dir, REPO, SHA, part.size)


def test_the_record_never_claims_more_than_is_written_and_close_brings_it_up_to_date(tmp_path) -> None:
    """The record is rewritten at most every SAVE_EVERY seconds (once per read, it cost a JSON dump and a write per
    256 KiB); in between it lags behind the bytes, never ahead of them."""
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    for i in range(64):
        part.write(i * 4096, b"x" * 4096)
        assert _claimed(part) <= (i + 1) * 4096
    part.close()
    again = PartFile(tmp_path, REPO, SHA, 1 << 20)
    assert again.done.covered() == 64 * 4096
    again.close()


def test_while_bytes_arrive_a_kill_loses_at_most_the_last_save_interval(tmp_path) -> None:
    import time

    from lyricsub_hub.cache.parts import SAVE_EVERY

    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    time.sleep(SAVE_EVERY * 1.5)
    part.write(4096, b"y" * 4096)
    assert _claimed(part) == 8192  # written a save interval after the last save: on disk without a close
    part.close()


def test_a_discarded_part_file_leaves_no_record_behind(tmp_path) -> None:
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    part.discard()
    assert not part.paths.ranges.exists() and not part.paths.part.exists()


def test_another_users_interrupted_download_is_not_counted_as_ours_to_resume(tmp_path) -> None:
    """In a team's folder, a part file another member left is dropped when we open it (we never write through
    another user's file), so the plan must not count its bytes: it said 4.5 MB to fetch, then fetched 50."""
    import pytest

    from lyricsub_hub.cache.parts import held_bytes

    if os.geteuid() != 0:
        pytest.skip("needs root to give the files to another uid")
    part = PartFile(tmp_path, REPO, SHA, 1 << 20)
    part.write(0, b"x" * 4096)
    part.close()
    assert held_bytes(tmp_path, REPO, SHA, 1 << 20) == 4096  # ours: a resume keeps it
    for path in (part.paths.part, part.paths.ranges):
        os.chown(path, 1001, 100)
    assert held_bytes(tmp_path, REPO, SHA, 1 << 20) == 0
