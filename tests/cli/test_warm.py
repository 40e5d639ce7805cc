"""`lyricsub-hub warm` as people and scripts run it: JSON events, kills, Ctrl-C, several at once, offline, full disks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager
from tests.helpers import ROOT, add, held_bytes, payload, run_cli, write_index

BIG = 6_000_000


def warm_args(hub, index: Path, *names: str) -> list[str]:
    return ["warm", *names, "--index", str(index), "--endpoint", hub.endpoint, "--no-load"]


def spawn(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lyricsub_hub", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=dict(os.environ), **kw)


def partial_size(cache_dir: Path, repo: str) -> int:
    return held_bytes(cache_dir, repo)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def big(hub, tmp_path):
    repo = add(hub, "demucs:big", "test/big", {"big.yaml": b"x: 1\n", "w.safetensors": payload(7, BIG)})
    return repo, write_index(tmp_path / "big.yaml", [repo], sets={"default": ["demucs:big"]})


def test_warm_json_prints_one_event_per_line_then_a_summary(hub, index_file, cache_dir) -> None:
    proc = run_cli(*warm_args(hub, index_file), "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "summary" and kinds.count("model_done") == 2 and "file_done" in kinds
    summary = events[-1]
    assert summary["ok"] and {m["name"]: m["status"] for m in summary["models"]} == {"demucs:tiny": "available", "whisper:tiny": "available"}
    hub.clear_log()
    again = run_cli(*warm_args(hub, index_file))
    assert again.returncode == 0 and hub.count(method="GET") == 0 and "fetched 0 B" in again.stdout


def test_sigkill_mid_file_then_warm_fetches_only_the_rest(hub, big, cache_dir) -> None:
    repo, index = big
    hub.throttle(1_500_000)
    proc = spawn(warm_args(hub, index))
    wait_for(lambda: partial_size(cache_dir, repo.repo) >= 1_000_000)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    kept = partial_size(cache_dir, repo.repo)
    assert 0 < kept < BIG
    assert not ModelManager(index, cache_dir).check_model_availability("demucs:big")  # never reported available
    hub.throttle(None)
    hub.clear_log()
    done = run_cli(*warm_args(hub, index))
    assert done.returncode == 0, done.stderr
    gets = [r for r in hub.requests if r.method == "GET" and "w.safetensors" in r.path and r.range]
    assert len(gets) == 1 and gets[0].range == f"bytes={kept}-{BIG - 1}"  # (the killed run's own GET may be logged late)
    assert gets[0].bytes_sent == BIG - kept  # what was missing and not one byte more
    assert not [r for r in hub.requests if r.method == "GET" and r.bytes_sent == BIG]
    assert ModelManager(index, cache_dir).status("demucs:big", verify="deep").available


def test_ctrl_c_exits_130_and_keeps_the_partial(hub, big, cache_dir) -> None:
    repo, index = big
    hub.throttle(1_500_000)
    proc = spawn(warm_args(hub, index))
    wait_for(lambda: partial_size(cache_dir, repo.repo) >= 500_000)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and "cancelled" in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("lyricsub-hub:")]
    assert len(errors) == 1 and "lyricsub-hub warm demucs:big" in errors[0]
    assert partial_size(cache_dir, repo.repo) > 0
    assert ModelManager(index, cache_dir).status("demucs:big").status in ("missing", "partial")


def test_three_warm_processes_share_the_cache_and_each_file_is_served_once(hub, big, cache_dir) -> None:
    repo, index = big
    hub.throttle(4_000_000)
    procs = [spawn(warm_args(hub, index)) for _ in range(3)]
    codes = [p.wait(60) for p in procs]
    assert codes == [0, 0, 0], [p.stderr.read() for p in procs]
    assert hub.count(method="GET", contains="w.safetensors") == 1
    assert hub.count(method="GET", contains="big.yaml") == 1
    assert ModelManager(index, cache_dir).status("demucs:big", verify="deep").available


def test_offline_warm_of_a_missing_model_fails_at_once_with_no_request(hub, index_file) -> None:
    started = time.monotonic()
    proc = run_cli(*warm_args(hub, index_file, "demucs:tiny"), "--offline")
    assert time.monotonic() - started < 10
    assert proc.returncode == 1 and hub.requests == []
    assert "abc.safetensors" in proc.stderr and "lyricsub-hub warm demucs:tiny" in proc.stderr
    env_proc = run_cli(*warm_args(hub, index_file, "demucs:tiny"), env={"HF_HUB_OFFLINE": "1"})
    assert env_proc.returncode == 1 and hub.requests == []


def test_warm_then_offline_status_and_path_make_no_request(hub, index_file) -> None:
    assert run_cli(*warm_args(hub, index_file)).returncode == 0
    hub.clear_log()
    for args in (["status", "--set", "default"], ["path", "whisper:tiny"], ["verify"], ["list"]):
        proc = run_cli(*args, "--index", str(index_file), env={"HF_HUB_OFFLINE": "1"})
        assert proc.returncode == 0, proc.stderr
    assert hub.requests == []


def test_token_never_appears_in_any_output(hub, tmp_path, cache_dir) -> None:
    token = "hf_DoNotPrintThis0123456789abcdef"
    gated = add(hub, "diarize:g", "test/gated", {"config.yaml": b"a: 1\n"}, gated=True)
    index = write_index(tmp_path / "g.yaml", [gated], gated={"diarize:g"})
    denied = run_cli(*warm_args(hub, index, "diarize:g"), env={"HF_TOKEN": token})
    assert denied.returncode == 3 and "accept its terms" in denied.stderr
    hub.grant("test/gated", token)
    for extra in ([], ["--json"]):
        proc = run_cli(*warm_args(hub, index, "diarize:g"), *extra, env={"HF_TOKEN": token})
        assert proc.returncode == 0
        for text in (proc.stdout, proc.stderr, denied.stdout, denied.stderr):
            assert token not in text and token[3:12] not in text


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_not_enough_space_fails_before_downloading(hub, tmp_path, small_disk) -> None:
    repo = add(hub, "demucs:huge", "test/huge", {"w.safetensors": payload(8, 9_000_000)})
    index = write_index(tmp_path / "h.yaml", [repo])
    proc = run_cli(*warm_args(hub, index, "demucs:huge"), "--cache-dir", str(small_disk / "hub"))
    assert proc.returncode == 4 and "needs 9.0 MB" in proc.stderr and "free" in proc.stderr
    assert hub.count(method="GET") == 0


def test_disk_filling_up_mid_download_is_clear_and_resumable(hub, big, small_disk) -> None:
    repo, index = big
    cache = small_disk / "hub"
    hub.throttle(2_000_000)
    proc = spawn(warm_args(hub, index) + ["--cache-dir", str(cache)])
    wait_for(lambda: partial_size(cache, repo.repo) >= 500_000)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # someone else takes the rest of the disk
    try:
        while os.write(fd, b"\0" * 65536):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4 and "disk filled up" in err and "Traceback" not in err
    st = ModelManager(index, cache).status("demucs:big")
    assert st.status == "partial" and st.resumable_bytes > 0  # big.yaml is whole, the weights are not
    filler.unlink()
    hub.throttle(None)
    assert run_cli(*warm_args(hub, index), "--cache-dir", str(cache)).returncode == 0
    assert ModelManager(index, cache).status("demucs:big", verify="deep").available
