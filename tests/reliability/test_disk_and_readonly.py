"""A read-only cache (a shared or baked-in one) still answers status, verify and path, keeping its records in the
writable state folder; and the disk check counts what interrupted downloads already hold.

Tests run as root, and root ignores permission bits, so "read-only" here is a read-only bind mount; where mounting
is not permitted the tests skip.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.cache.layout import cache_key

from .helpers import (
    add,
    assert_clean_failure,
    held_bytes,
    payload,
    plant_part,
    repo_dir,
    run_cli,
    sha256,
    snapshot_is_true,
    tree_listing,
    warm_args,
    write_index,
)

pytestmark = pytest.mark.reliability

NAME = "whisper:ro"


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def read_only(tmp_path):
    """mount_ro(folder) -> a read-only view of folder; unmounted after the test."""
    mounts: list[Path] = []

    def mount_ro(source: Path) -> Path:
        target = tmp_path / f"ro-{len(mounts)}"
        target.mkdir()
        if _mount("--bind", str(source), str(target)).returncode != 0:
            pytest.skip("bind mounts are not permitted here")
        mounts.append(target)
        if _mount("-o", "remount,ro,bind", str(target)).returncode != 0:
            pytest.skip("cannot remount a bind mount read-only here")
        try:  # prove it: root ignores permissions but not a read-only mount
            (target / ".probe").write_text("x")
        except OSError as exc:
            assert exc.errno == errno.EROFS
        else:
            pytest.fail("the read-only mount accepted a write")
        return target

    yield mount_ro
    for target in reversed(mounts):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


@pytest.fixture
def warmed(hub, tmp_path, cache_dir):
    repo = add(hub, NAME, "test/ro", {"config.json": b'{"ro": 1}\n', "model.bin": payload(401, 600_000),
                                      "sub/vocabulary.json": b'{"a": 0}\n'})
    other = add(hub, "whisper:cold", "test/cold", {"model.bin": payload(402, 50_000)})
    index = write_index(tmp_path / "ro.yaml", [repo, other])
    assert ModelDownloader(ModelManager(index, cache_dir, endpoint=hub.endpoint)).download_model(NAME).success
    return repo, index


def _records(state: Path, cache: Path) -> list[Path]:
    return sorted((state / "records" / cache_key(cache)).rglob("*.json"))


def test_read_only_cache_answers_status_verify_and_path(hub, warmed, cache_dir, read_only, tmp_path) -> None:
    repo, index = warmed
    ro = read_only(cache_dir)
    state = tmp_path / "state-ro"  # fresh and writable: nothing is known about this cache yet
    env = {"LYRICSUB_STATE_DIR": str(state)}
    before = tree_listing(ro)
    hub.clear_log()
    snap = ro / "models--test--ro" / "snapshots" / repo.commit
    common = ["--index", str(index), "--cache-dir", str(ro)]

    status = run_cli("status", NAME, *common, env=env)
    assert status.returncode == 0, status.stderr
    assert "available" in status.stdout and str(snap) in status.stdout
    assert _records(state, ro), "the hashes of a read-only cache are remembered in the state folder"
    doc = json.loads(run_cli("status", NAME, "--json", *common, env=env).stdout)
    assert doc["ok"] and doc["models"][0]["status"] == "available" and doc["models"][0]["path"] == str(snap)
    for args in (["verify", NAME], ["verify", "--deep", NAME], ["verify"], ["list"]):
        proc = run_cli(*args, *common, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr == ""
    path = run_cli("path", NAME, *common, env=env)
    assert path.returncode == 0 and path.stdout == f"{snap}\n" and path.stderr == ""

    mgr = ModelManager(index, ro, state_dir=state)
    assert mgr.get_model_path(NAME) == snap and mgr.check_model_availability(NAME)
    assert [f.checked for f in mgr.status(NAME).files] == ["record"] * 3  # the records serve the next question
    assert tree_listing(ro) == before  # not a byte written to the cache
    assert hub.requests == []  # and not a request made


def test_read_only_cache_with_a_read_only_state_folder_still_answers(hub, warmed, cache_dir, read_only, tmp_path) -> None:
    repo, index = warmed
    ro = read_only(cache_dir)
    empty = tmp_path / "no-state"
    empty.mkdir()
    state = read_only(empty)
    env = {"LYRICSUB_STATE_DIR": str(state)}
    for args in (["status", NAME], ["verify", NAME], ["verify", "--deep", NAME], ["path", NAME]):
        proc = run_cli(*args, "--index", str(index), "--cache-dir", str(ro), env=env)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    assert not any(state.iterdir())  # nothing could be remembered: every answer simply hashed again
    assert [f.checked for f in ModelManager(index, ro, state_dir=state).status(NAME).files] == ["hashed"] * 3


def test_warm_into_a_read_only_cache_fails_in_one_line(hub, warmed, cache_dir, read_only) -> None:
    _, index = warmed
    ro = read_only(cache_dir)
    before = tree_listing(ro)
    proc = run_cli(*warm_args(hub.endpoint, index, "whisper:cold", cache_dir=ro))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (4,), "whisper:cold", "Read-only file system")
    assert tree_listing(ro) == before
    ok = run_cli(*warm_args(hub.endpoint, index, NAME, cache_dir=ro))  # an available model warms with no write at all
    assert ok.returncode == 0 and "fetched 0 B" in ok.stdout, ok.stderr


# --- the disk check and resumable bytes ------------------------------------------------------------------------------

SIZE = 6_000_000
HELD = 5_000_000


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _leave_free(disk: Path, free: int) -> None:
    """Fill the disk until about `free` bytes are left (someone else's files)."""
    st = os.statvfs(disk)
    take = st.f_bavail * st.f_frsize - free
    assert take > 0
    with open(disk / "filler", "wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * take)


@pytest.mark.parametrize("free,ok", [(1_600_000, True), (600_000, False)])
def test_disk_check_counts_the_bytes_an_interrupted_download_already_holds(hub, tmp_path, small_disk, free, ok) -> None:
    """6 MB model, 5 MB of it already in a part file: 1.6 MB free is enough, 0.6 MB is not (and says so first)."""
    data = payload(411, SIZE)
    repo = add(hub, "demucs:disk", "test/disk", {"disk.yaml": b"x: 1\n", "w.safetensors": data})
    index = write_index(tmp_path / "disk.yaml", [repo])
    cache = small_disk / "hub"
    plant_part(cache, repo.repo, data, HELD)  # what a killed warm left
    _leave_free(small_disk, free)
    proc = run_cli(*warm_args(hub.endpoint, index, "demucs:disk", cache_dir=cache))
    if ok:
        assert proc.returncode == 0, proc.stderr
        gets = [r for r in hub.requests if r.method == "GET" and "w.safetensors" in r.path]
        assert [(r.range, r.bytes_sent) for r in gets] == [(f"bytes={HELD}-{SIZE - 1}", SIZE - HELD)]
        assert ModelManager(index, cache).status("demucs:disk", verify="deep").available and snapshot_is_true(cache, repo)
    else:
        assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (4,), "needs 1.0 MB", "free")
        assert hub.count(method="GET") == 0
        assert held_bytes(cache, repo.repo, sha256(data)) == HELD  # the partial is kept for when there is room
        snapshots = repo_dir(cache, repo.repo) / "snapshots"
        assert not snapshots.exists() or not any(snapshots.rglob("w.*"))


def test_import_into_a_read_only_cache_fails_in_one_line_before_writing(hub, warmed, cache_dir, read_only, tmp_path) -> None:
    """A bundle of a model the read-only cache lacks: one line naming it and the read-only cache, exit 4, nothing
    written; a bundle of what the cache already holds imports with no write at all."""
    _, index = warmed
    other = tmp_path / "other"
    assert ModelDownloader(ModelManager(index, other, endpoint=hub.endpoint)).download_model("whisper:cold").success
    cold, present = tmp_path / "cold.tar", tmp_path / "present.tar"
    assert run_cli("export", "whisper:cold", "-o", str(cold), "--index", str(index), "--cache-dir", str(other)).returncode == 0
    assert run_cli("export", NAME, "-o", str(present), "--index", str(index), "--cache-dir", str(cache_dir)).returncode == 0
    ro = read_only(cache_dir)
    before = tree_listing(ro)
    proc = run_cli("import", str(cold), "--index", str(index), "--cache-dir", str(ro))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (4,), "whisper:cold", "Read-only file system")
    assert "lyricsub-hub import FILE" in proc.stderr  # the way out is to import elsewhere, not to download
    assert tree_listing(ro) == before
    ok = run_cli("import", str(present), "--index", str(index), "--cache-dir", str(ro))
    assert ok.returncode == 0, ok.stderr
