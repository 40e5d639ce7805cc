"""Segmented downloads against the test Hub: ranges over several connections from one shared budget, servers
that differ (no ranges, ranges ignored, a CDN with expiring signed URLs), the token kept to the endpoint's host,
byte-accurate progress, cancellation, and resume that keeps every finished byte of every segment."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager, RetryPolicy
from lyricsub_hub.cache.parts import PartPaths, read_record
from lyricsub_hub.download.plan import SPLIT_MIN
from lyricsub_hub.testing.hub import Fault
from tests.helpers import add, held_bytes, payload, run_cli, write_index

MIB = 1 << 20
FAST = RetryPolicy(attempts=4, first_delay=0.05, max_delay=0.2, budget=20)


def _gets(hub, name: str) -> list:
    return [r for r in hub.requests if r.method == "GET" and name in r.path]


def _ranges(hub, name: str) -> list[tuple[int, int]]:
    out = []
    for r in _gets(hub, name):
        if r.range:
            start, end = r.range.removeprefix("bytes=").split("-")
            out.append((int(start), int(end) + 1))
    return sorted(out)


@pytest.fixture(scope="module")
def big_bytes() -> bytes:
    return payload(11, 40 * MIB)


@pytest.fixture
def big(hub, tmp_path, big_bytes):
    repo = add(hub, "whisper:big", "test/big", {"config.json": b'{"big": 1}\n', "model.bin": big_bytes})
    return repo, write_index(tmp_path / "big.yaml", [repo])


def _dl(index: Path, cache: Path, hub, **kw) -> ModelDownloader:
    mgr = ModelManager(index, cache, endpoint=hub.endpoint, token=kw.pop("token", None))
    return ModelDownloader(mgr, retry=kw.pop("retry", FAST), **kw)


def test_a_large_file_starts_on_one_connection_and_splits_into_ranges_while_it_runs(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    hub.throttle(20_000_000)  # per connection, as a CDN caps it
    result = _dl(index, cache_dir, hub, connections=4).download_model("whisper:big")
    assert result.success, result.error
    gets = sorted(_gets(hub, "model.bin"), key=lambda r: r.started)
    assert gets[0].range == f"bytes=0-{8 * MIB - 1}"  # the file (40 MiB) starts with one piece from byte 0 ...
    assert gets[1].started >= gets[0].started + 0.05  # ... alone, until its rate is known ...
    ranges = _ranges(hub, "model.bin")
    assert len(ranges) >= 4  # ... and the rest came in more ranges, in pieces
    covered = sorted(ranges)
    assert max(e for _, e in covered) == len(big_bytes)
    assert all(a[1] >= b[0] for a, b in itertools.pairwise(covered))  # no gap
    served = sum(r.bytes_sent for r in gets)
    assert len(big_bytes) <= served <= len(big_bytes) + 2 * MIB  # a cut range costs at most what was in flight
    assert hub.max_bodies >= 3  # they really ran at the same time
    assert ModelManager(index, cache_dir).status("whisper:big", verify="deep").available


def test_small_files_go_whole_in_one_request_each(hub, big, cache_dir) -> None:
    repo, index = big
    assert _dl(index, cache_dir, hub, connections=4).download_model("whisper:big").success
    small = _gets(hub, "config.json")
    assert len(small) == 1 and small[0].range is None
    assert not [r for r in hub.requests if r.method == "HEAD" and "config.json" in r.path]  # no HEAD for a small file
    assert len(repo.files["config.json"]) < SPLIT_MIN


def test_one_connection_budget_is_shared_by_every_file_and_model(hub, tmp_path, cache_dir) -> None:
    a = add(hub, "demucs:a", "test/a", {"a.safetensors": payload(21, 24 * MIB), "a.yaml": b"a: 1\n"})
    b = add(hub, "demucs:b", "test/b", {"b.safetensors": payload(22, 24 * MIB), "b.yaml": b"b: 1\n"})
    index = write_index(tmp_path / "ab.yaml", [a, b])
    hub.throttle(15_000_000)
    dl = _dl(index, cache_dir, hub, connections=3)
    results = dl.download_models(["demucs:a", "demucs:b"])
    assert [r.success for r in results] == [True, True]
    assert dl._engine is not None and dl._engine.gate.peak == 3  # never more bodies open than the ceiling ...
    assert hub.max_bodies >= 3  # ... and all of it used (the hub may count a range cut short a moment longer)


def test_progress_counts_every_byte_once(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    events = []
    lock = threading.Lock()

    def record(ev) -> None:
        with lock:
            events.append(ev)

    dl = _dl(index, cache_dir, hub, connections=4)
    dl.set_progress_callback(record)
    assert dl.download_model("whisper:big").success
    total = len(big_bytes) + len(repo.files["config.json"])
    done = [e.model_bytes_done for e in events]
    assert done == sorted(done)
    assert done[-1] == total
    assert events[-1].model_bytes_total == total
    finished = {e.file: e.bytes_done for e in events if e.stage == "file_done"}
    assert finished == {"model.bin": len(big_bytes), "config.json": len(repo.files["config.json"])}


def test_a_server_that_ignores_range_gets_one_connection_and_a_clean_restart(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    hub.ignore_range = True
    result = _dl(index, cache_dir, hub, connections=4).download_model("whisper:big")
    assert result.success, result.error
    gets = sorted(_gets(hub, "model.bin"), key=lambda r: r.started)
    whole = [r for r in gets if r.range is None]
    assert whole[-1].bytes_sent == len(big_bytes)  # the last request brought the whole file, from byte 0
    # the file starts as one whole request; where it split before the server's answer showed that ranges are
    # ignored, the file started over once as one stream
    assert len(whole) <= 2 and all(r.status == 200 for r in gets)
    assert ModelManager(index, cache_dir).status("whisper:big", verify="deep").available


def test_a_server_without_accept_ranges_gets_one_connection(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    hub.ranges = False
    assert _dl(index, cache_dir, hub, connections=4).download_model("whisper:big").success
    gets = _gets(hub, "model.bin")
    assert [(r.range, r.bytes_sent) for r in gets] == [(None, len(big_bytes))]


def test_the_token_goes_to_the_endpoint_host_never_to_the_cdn(hub, tmp_path, cache_dir, big_bytes) -> None:
    token = "hf_SegmentedTokenXyz0123456789abcd"
    gated = add(hub, "whisper:g", "test/gated-big", {"config.json": b"{}\n", "model.bin": big_bytes}, gated=True)
    hub.grant("test/gated-big", token)
    index = write_index(tmp_path / "g.yaml", [gated], gated={"whisper:g"})
    hub.use_cdn(ttl=600)
    hub.throttle(20_000_000)  # slow enough per connection that the file splits
    assert _dl(index, cache_dir, hub, connections=4, token=token).download_model("whisper:g").success
    cdn = [r for r in hub.requests if r.origin == "cdn"]
    own = [r for r in hub.requests if r.origin == "hub"]
    assert len([r for r in cdn if r.range]) >= 2  # the ranges came from the CDN host
    assert not any(r.authorization_present for r in cdn)
    assert own and all(r.authorization_present for r in own)


def test_an_expired_signed_url_is_asked_for_again_and_finished_bytes_are_kept(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    hub.use_cdn(ttl=1.0)
    hub.throttle(8_000_000)
    hub.inject(Fault("drop", after_bytes=6 * MIB, path_contains="/cdn/", method="GET"))
    retry = RetryPolicy(attempts=4, first_delay=1.2, max_delay=1.5, budget=30)  # the retry comes after the URL expired
    result = _dl(index, cache_dir, hub, connections=2, retry=retry).download_model("whisper:big")
    assert result.success, result.error
    refused = [r for r in hub.requests if r.origin == "cdn" and r.status == 403]
    assert refused  # the stale URL was really tried, and refused
    assert len([r for r in hub.requests if r.method == "HEAD" and "model.bin" in r.path]) >= 2  # resolved again
    served = sum(r.bytes_sent for r in _gets(hub, "model.bin"))
    assert served <= len(big_bytes) + 2 * (1 << 18)  # nothing finished was fetched twice, beyond reads in flight


def test_cancel_stops_every_connection_within_a_read(hub, big, cache_dir) -> None:
    repo, index = big
    hub.throttle(2_000_000)
    dl = _dl(index, cache_dir, hub, connections=4)
    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", dl.download_model("whisper:big")))
    worker.start()
    deadline = time.monotonic() + 10
    while hub.max_bodies < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    asked = time.monotonic()
    dl.cancel_download()
    worker.join(5)
    assert time.monotonic() - asked < 1.5
    assert box["r"].error_code == "cancelled" and box["r"].exit_code == 130
    ended = time.monotonic() + 2
    while hub._bodies and time.monotonic() < ended:  # the server's side of every connection ends too
        time.sleep(0.05)
    assert hub._bodies == 0
    assert 0 < held_bytes(cache_dir, repo.repo) < len(repo.files["model.bin"])


def test_a_dropped_segment_is_retried_while_the_others_go_on(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    hub.inject(Fault("drop", after_bytes=3 * MIB, path_contains="model.bin", method="GET"))
    hub.throttle(20_000_000)  # paced, so that a range cut short (the file splits as it goes) has little in flight
    result = _dl(index, cache_dir, hub, connections=4).download_model("whisper:big")
    assert result.success, result.error
    served = sum(r.bytes_sent for r in _gets(hub, "model.bin"))
    assert len(big_bytes) <= served <= len(big_bytes) + MIB  # what arrived before the reset was kept


def _warm(hub, index: Path, *extra: str) -> list[str]:
    return ["warm", "whisper:big", "--index", str(index), "--endpoint", hub.endpoint, "--no-load", *extra]


def _kill_midway(hub, index: Path, cache_dir: Path, repo, share: float) -> None:
    """SIGKILL a segmented warm once `share` of the big file is on disk."""
    from tests.reliability.helpers import spawn_cli

    hub.throttle(3_000_000)
    proc = spawn_cli(_warm(hub, index, "--connections", "4"))
    sha = hashlib.sha256(repo.files["model.bin"]).hexdigest()
    deadline = time.monotonic() + 30
    while held_bytes(cache_dir, repo.repo, sha) < share * len(repo.files["model.bin"]):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    hub.throttle(None)


def test_resume_after_a_kill_keeps_every_finished_byte_of_every_segment(hub, big, cache_dir, big_bytes) -> None:
    repo, index = big
    _kill_midway(hub, index, cache_dir, repo, 0.4)
    paths = PartPaths.of(cache_dir, repo.repo, hashlib.sha256(big_bytes).hexdigest())
    fd = os.open(paths.ranges, os.O_RDONLY)
    try:
        kept = [tuple(r) for r in read_record(fd)["ranges"]]  # type: ignore[index,union-attr]
    finally:
        os.close(fd)
    assert len(kept) >= 2  # holes: several segments were under way
    assert not (paths.part.parent / (paths.part.name.split(".")[0] + ".incomplete")).exists()
    hub.clear_log()
    done = run_cli(*_warm(hub, index))
    assert done.returncode == 0, done.stderr
    asked = _ranges(hub, "model.bin")
    held = sum(e - s for s, e in kept)
    assert sum(e - s for s, e in asked) == len(big_bytes) - held  # exactly the gaps, not one finished byte again
    assert all(not (s < ke and ks < e) for s, e in asked for ks, ke in kept)
    assert ModelManager(index, cache_dir).status("whisper:big", verify="deep").available


def test_huggingface_hub_fetching_the_same_file_after_a_kill_gets_a_right_blob(hub, big, cache_dir, big_bytes) -> None:
    """Our part file has holes, so it must never be the `.incomplete` that huggingface_hub appends to."""
    from huggingface_hub import hf_hub_download

    repo, index = big
    _kill_midway(hub, index, cache_dir, repo, 0.3)
    path = hf_hub_download(repo.repo, "model.bin", revision=repo.commit, cache_dir=cache_dir, endpoint=hub.endpoint)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(big_bytes).hexdigest()
    done = run_cli(*_warm(hub, index))  # and ours still ends right on the same cache
    assert done.returncode == 0, done.stderr
    assert ModelManager(index, cache_dir).status("whisper:big", verify="deep").available
