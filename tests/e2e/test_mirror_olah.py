"""Through a real Hub mirror: olah 0.5.4 (in its own virtual environment) on 127.0.0.1 in front of the test Hub.

Online warm, resume after a SIGKILL mid-file, olah's offline mode (upstream stopped), and a ranged request
whose first byte comes too late (olah fetches a whole 64 MiB block upstream before it answers inside it).
The command runs as users run it (`python -m lyricsub_hub warm --endpoint <olah>`) except where a test needs
shorter waits (ModelDownloader(timeouts=...)). Skipped, with the reason, only where olah is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.remote.http import Timeouts
from lyricsub_hub.testing.olah import missing_reason, olah_server
from tests.helpers import add, held_bytes, payload, repo_dir, run_cli, sha256, write_index
from tests.reliability.helpers import error_lines, finish, kill_all, spawn_cli, wait_until, warm_args, write_results

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(missing_reason()), reason=missing_reason() or "olah is installed")]

NAME = "whisper:mirror"
BIG = 20 << 20  # above the split size (8 MiB): HEAD, then ranges; inside olah's first 64 MiB block
RESULTS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    if RESULTS:
        write_results("mirror_olah", RESULTS)


@pytest.fixture
def mirrored(hub, tmp_path):
    files = {"config.json": b'{"mirror": 1}\n', "tokenizer.json": payload(30, 300_000), "model.bin": payload(31, BIG)}
    repo = add(hub, NAME, "test/mirror", files)
    return repo, write_index(tmp_path / "mirror.yaml", [repo])


def warm(endpoint: str, index, cache, *extra: str):
    done = run_cli("--json", *warm_args(endpoint, index, NAME, cache_dir=cache), *extra, timeout=300)
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def assert_true_copy(index, cache, repo) -> None:
    st = ModelManager(index, cache).status(NAME, verify="deep")
    assert st.available, [(f.name, f.state, f.detail) for f in st.files]
    for name, data in repo.files.items():
        assert (st.path / name).read_bytes() == data
    assert (repo_dir(cache, repo.repo) / "refs" / "main").read_text() == repo.commit


def test_online_warm_through_olah_then_offline_mode_with_the_upstream_stopped(hub, mirrored, tmp_path) -> None:
    repo, index = mirrored
    olah_dir = tmp_path / "olah"
    with olah_server(hub.endpoint, olah_dir) as olah:
        done, doc = warm(olah.endpoint, index, tmp_path / "online")
        assert done.returncode == 0, done.stderr + olah.output()
        assert doc["bytes_fetched"] == sum(len(d) for d in repo.files.values())
        assert_true_copy(index, tmp_path / "online", repo)
        upstream = {name: hub.bytes_served(name) for name in repo.files}
        assert upstream["model.bin"] == BIG  # olah asked upstream for each byte once
        hub.clear_log()
        again, _ = warm(olah.endpoint, index, tmp_path / "online")
        assert again.returncode == 0 and hub.requests == []  # a warm model asks nobody anything
    hub.stop()  # the upstream is gone: olah in offline mode serves what it cached
    with olah_server("http://127.0.0.1:9", olah_dir, offline=True) as olah:
        done, doc = warm(olah.endpoint, index, tmp_path / "offline")
        assert done.returncode == 0, done.stderr + olah.output()
        assert_true_copy(index, tmp_path / "offline", repo)
        blobs = sorted(p.name for p in (repo_dir(tmp_path / "offline", repo.repo) / "blobs").iterdir())
        assert blobs == sorted(sha256(d) for d in repo.files.values())  # olah's invented etags name nothing
        other = add(hub, "whisper:never", "test/never", {"config.json": b"{}\n", "model.bin": payload(32, 2000)})
        never = write_index(tmp_path / "never.yaml", [other])
        missing = run_cli(*warm_args(olah.endpoint, never, "whisper:never", cache_dir=tmp_path / "offline"), timeout=120)
        lines = error_lines(missing.stderr)
        assert missing.returncode == 3 and len(lines) == 1 and "whisper:never" in lines[0], missing.stderr
        assert "offline mode" in lines[0] and "lock --update" not in lines[0], lines[0]
    RESULTS["online_upstream_bytes"] = upstream
    RESULTS["offline_blob_names"] = "sha256 for every file (small files' invented etags are not used as names)"
    RESULTS["offline_never_cached_line"] = lines[0]


def test_resume_after_sigkill_through_olah(hub, mirrored, tmp_path) -> None:
    """Kill the warm mid-file while olah fills its block from a slow upstream; warm again through olah."""
    repo, index = mirrored
    cache = tmp_path / "cache"
    sha = sha256(repo.files["model.bin"])
    procs = []
    with olah_server(hub.endpoint, tmp_path / "olah") as olah:
        hub.throttle(3_000_000)
        try:
            proc = spawn_cli(["--json", *warm_args(olah.endpoint, index, NAME, cache_dir=cache)])
            procs.append(proc)
            assert wait_until(lambda: held_bytes(cache, repo.repo, sha) >= 3_000_000, 60), olah.output()
            os.kill(proc.pid, signal.SIGKILL)
            finish(proc, 10)
        finally:
            kill_all(procs)
        held = held_bytes(cache, repo.repo, sha)  # what the ranges record vouches for after the kill
        assert 0 < held < BIG
        after_kill = ModelManager(index, cache).status(NAME)
        missing = sum(len(repo.files[f.name]) - held_bytes(cache, repo.repo, sha256(repo.files[f.name]))
                      for f in after_kill.files if f.state != "ok")
        time.sleep(0.5)  # olah notices the closed connections
        upstream_first = hub.bytes_served("model.bin")
        hub.clear_log()
        hub.throttle(8_000_000)
        started = time.monotonic()
        done, doc = warm(olah.endpoint, index, cache)
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr + olah.output()
    assert_true_copy(index, cache, repo)
    fetched_twice = doc["bytes_fetched"] - missing
    assert 0 <= fetched_twice <= 8 * 256 * 1024, fetched_twice  # at most the reads in flight at the kill
    RESULTS["resume"] = {"file_bytes": BIG, "held_after_kill": held, "client_bytes_fetched_again": fetched_twice,
                         "second_warm_bytes": doc["bytes_fetched"], "second_warm_seconds": round(seconds, 2),
                         "olah_upstream_bytes_first_run": upstream_first,
                         "olah_upstream_bytes_second_run": hub.bytes_served("model.bin")}


def test_a_ranged_request_olah_is_slow_to_start_falls_back_to_the_whole_file(hub, mirrored, tmp_path) -> None:
    """Ranges inside a block olah lacks get their first byte only once olah has the block; with a short wait the
    transfer gives up on ranges (no progress) and asks for the rest of the file without Range, naming the mirror."""
    repo, index = mirrored
    with olah_server(hub.endpoint, tmp_path / "olah") as olah:
        hub.throttle(6_000_000)  # the 20 MiB block takes olah over 3 s upstream; ranges wait up to 1 s
        dl = ModelDownloader(ModelManager(index, tmp_path / "cache", endpoint=olah.endpoint),
                             timeouts=Timeouts(first_byte_ranged=1.0))
        messages: list[str] = []
        dl.set_progress_callback(lambda ev: messages.append(ev.message) if ev.message else None)
        try:
            result = dl.download_model(NAME)
        finally:
            dl.close()
        assert result.success, (result.error, olah.output())
    assert any(olah.endpoint in m and "ranged request" in m and "asking for the whole file instead" in m
               for m in messages), messages
    assert_true_copy(index, tmp_path / "cache", repo)
    RESULTS["slow_first_byte_message"] = next(m for m in messages if "whole file" in m)
