"""Several warm processes on one cache: all succeed, each file crosses the network once, and a lock left by a
killed process never blocks the next one."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager

from .helpers import (
    add,
    blob_state,
    blobs_dir,
    finish,
    kill_all,
    payload,
    repo_dir,
    run_cli,
    sha256,
    snapshot_is_true,
    spawn_cli,
    wait_until,
    warm_args,
    write_index,
    write_results,
)

pytestmark = pytest.mark.reliability

PROCS = 8
FILES = {"conc.yaml": b"models: [w]\n", "sub/vocab.json": b'{"a": 1}\n',
         "weights.safetensors": payload(201, 3_000_000), "extra.bin": payload(202, 1_000_000),
         "model.bin": payload(203, 20 << 20)}  # the last one comes down in ranges


@pytest.fixture
def shared(hub, tmp_path):
    repo = add(hub, "whisper:conc", "test/conc", FILES)
    return repo, write_index(tmp_path / "conc.yaml", [repo])


def test_eight_warm_processes_at_once_fetch_each_file_once(hub, shared, cache_dir) -> None:
    repo, index = shared
    hub.throttle(3_000_000)  # about a second per file and range: every process is still running when the others start
    started = time.monotonic()
    procs = [spawn_cli(warm_args(hub.endpoint, index, "whisper:conc")) for _ in range(PROCS)]
    try:
        results = [finish(p, 120) for p in procs]
    finally:
        kill_all(procs)
    elapsed = time.monotonic() - started
    codes = [code for code, _, _ in results]
    assert codes == [0] * PROCS, [err[-800:] for code, _, err in results if code]
    assert all("whisper:conc" in out and "available" in out for _, out, _ in results)
    per_file = {name: hub.count(method="GET", contains=name) for name in FILES}
    write_results("concurrency", {"processes": PROCS, "exit_codes": codes, "gets_per_file": per_file,
                                  "bytes_served": hub.bytes_served(), "model_bytes": sum(map(len, FILES.values())),
                                  "seconds": round(elapsed, 2)})
    ranges = per_file.pop("model.bin")
    assert per_file == dict.fromkeys(set(FILES) - {"model.bin"}, 1), per_file  # one GET each, whatever the processes
    assert ranges >= 4 and all(r.range for r in hub.requests if r.method == "GET" and "model.bin" in r.path)
    assert hub.bytes_served() <= sum(map(len, FILES.values())) + 2 * (1 << 20)  # each byte about once
    mgr = ModelManager(index, cache_dir)
    assert mgr.status("whisper:conc", verify="deep").available and snapshot_is_true(cache_dir, repo)
    assert (repo_dir(cache_dir, repo.repo) / "refs" / "main").read_text() == repo.commit
    assert not list(blobs_dir(cache_dir, repo.repo).glob("*.lyricsub-*"))


BIG = payload(211, 3_000_000)


@pytest.fixture
def lonely(hub, tmp_path):
    repo = add(hub, "demucs:lock", "test/lock", {"lock.yaml": b"x: 1\n", "w.safetensors": BIG})
    return repo, write_index(tmp_path / "lock.yaml", [repo])


def _lock_file(cache: Path) -> Path:
    return cache / ".locks" / "models--test--lock" / f"{sha256(BIG)}.lock"


def _locked_by_someone(path: Path) -> bool:
    """Try the same flock huggingface_hub's FileLock takes, without waiting."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_lock_left_by_a_killed_warm_does_not_block_the_next(hub, lonely, cache_dir) -> None:
    repo, index = lonely
    hub.throttle(300_000)
    proc = spawn_cli(warm_args(hub.endpoint, index, "demucs:lock"))
    try:
        assert wait_until(lambda: blob_state(cache_dir, repo.repo, BIG)[0] >= 150_000, 20)
        lock = _lock_file(cache_dir)
        assert lock.exists() and _locked_by_someone(lock)  # it really holds the blob's lock
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        kill_all([proc])
    assert lock.exists()  # left behind
    kept = blob_state(cache_dir, repo.repo, BIG)[0]
    hub.throttle(None)
    started = time.monotonic()
    done = run_cli(*warm_args(hub.endpoint, index, "demucs:lock"), timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 20, f"the next warm took {elapsed:.1f}s"
    wait_until(lambda: hub.count(method="GET", contains="w.safetensors") >= 2, 5)  # the killed GET is logged when it breaks
    gets = sorted((r.range or "", r.bytes_sent) for r in hub.requests if r.method == "GET" and "w.safetensors" in r.path)
    assert [g[0] for g in gets] == ["", f"bytes={kept}-{len(BIG) - 1}"]  # one start, then it took over the killed run's bytes
    assert gets[1][1] == len(BIG) - kept
    assert ModelManager(index, cache_dir).status("demucs:lock", verify="deep").available


def _holder(procs: list, partial: Path) -> int | None:
    """The pid among procs that has the part file open (it holds the lock and writes)."""
    for proc in procs:
        fd_dir = Path(f"/proc/{proc.pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) == str(partial):
                        return proc.pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def test_killing_the_lock_holder_lets_a_waiting_process_take_over(hub, lonely, cache_dir) -> None:
    repo, index = lonely
    hub.throttle(400_000)
    procs = [spawn_cli(warm_args(hub.endpoint, index, "demucs:lock")) for _ in range(4)]
    partial = blobs_dir(cache_dir, repo.repo) / (sha256(BIG) + ".lyricsub-part")
    try:
        assert wait_until(lambda: blob_state(cache_dir, repo.repo, BIG)[0] >= 200_000, 30)
        assert wait_until(lambda: _holder(procs, partial) is not None, 5)
        holder = _holder(procs, partial)
        assert holder is not None
        os.kill(holder, signal.SIGKILL)
        hub.throttle(None)
        results = {p.pid: finish(p, 60) for p in procs}
    finally:
        kill_all(procs)
    assert results[holder][0] == -signal.SIGKILL
    others = {pid: r for pid, r in results.items() if pid != holder}
    assert [code for code, _, _ in others.values()] == [0, 0, 0], [err[-800:] for _, _, err in others.values()]
    gets = [r for r in hub.requests if r.method == "GET" and "w.safetensors" in r.path]
    ranged = [r for r in gets if r.range]
    assert len(gets) == 2 and len(ranged) == 1  # one start, one resume: the waiters never fetched it again
    start = int(ranged[0].range.removeprefix("bytes=").split("-")[0])
    assert start >= 200_000 and ranged[0].bytes_sent == len(BIG) - start  # the waiter took over the holder's prefix
    assert ModelManager(index, cache_dir).status("demucs:lock", verify="deep").available
    assert snapshot_is_true(cache_dir, repo)
