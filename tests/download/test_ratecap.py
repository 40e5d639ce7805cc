"""The bandwidth cap: one limit for every connection of the process, accurate over seconds, without bursts."""

from __future__ import annotations

import threading
import time

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.core.text import parse_rate
from lyricsub_hub.errors import UsageError
from lyricsub_hub.remote.ratelimit import RateLimiter
from tests.helpers import add, payload, run_cli, write_index

MIB = 1 << 20


@pytest.mark.parametrize(("text", "rate"), [("20M", 20_000_000), ("20MB", 20_000_000), ("20MiB", 20 * MIB),
                                            ("1.5G", 1_500_000_000), ("512K", 512_000), ("20mb/s", 20_000_000)])
def test_rates_are_spelled_like_sizes(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20X", "-5M", "", "999"])
def test_a_bad_rate_is_one_usage_error(hub, small_repos, index_file, cache_dir, text: str) -> None:
    with pytest.raises(UsageError, match="bad bandwidth cap"):
        ModelDownloader(ModelManager(index_file, cache_dir, endpoint=hub.endpoint), max_rate=text)


def test_threads_sharing_one_limiter_get_the_rate_together() -> None:
    limiter = RateLimiter(4_000_000)
    taken = [0, 0, 0, 0]

    def pull(i: int) -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            taken[i] += limiter.take(65536)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(taken) / (time.monotonic() - started)
    assert 0.9 * 4_000_000 <= rate <= 1.1 * 4_000_000
    assert min(taken) > 0.1 * sum(taken)  # no connection starves


@pytest.mark.slow
def test_warm_holds_the_cap_within_ten_percent_with_no_burst(hub, tmp_path, cache_dir) -> None:
    """24 MB at 2 MB/s over four connections: about 12 s, and no second after the first above twice the cap."""
    cap = 2_000_000
    repo = add(hub, "whisper:capped", "test/capped", {"model.bin": payload(31, 24_000_000), "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "cap.yaml", [repo])
    samples: list[tuple[float, int]] = []
    lock = threading.Lock()

    def record(ev) -> None:
        with lock:
            samples.append((time.monotonic(), ev.model_bytes_done))

    dl = ModelDownloader(ModelManager(index, cache_dir, endpoint=hub.endpoint), connections=4, max_rate=cap)
    dl.set_progress_callback(record)
    started = time.monotonic()
    assert dl.download_model("whisper:capped").success
    elapsed = time.monotonic() - started
    total = 24_000_002
    assert elapsed >= 10
    assert abs(total / elapsed - cap) <= 0.1 * cap
    per_second: dict[int, int] = {}
    last = 0
    for stamp, done in sorted(samples):
        second = int(stamp - started)
        per_second[second] = per_second.get(second, 0) + done - last
        last = done
    assert max(v for s, v in per_second.items() if s >= 1) <= 2 * cap


def test_the_cap_reaches_the_command_line_and_its_environment_variable(hub, small_repos, index_file) -> None:
    bad = run_cli("warm", "demucs:tiny", "--index", str(index_file), "--endpoint", hub.endpoint, "--no-load",
                  "--max-rate", "quick")
    assert bad.returncode == 2 and "bad bandwidth cap" in bad.stderr and hub.requests == []
    env = run_cli("warm", "demucs:tiny", "--index", str(index_file), "--endpoint", hub.endpoint, "--no-load",
                  env={"LYRICSUB_MAX_RATE": "nope"})
    assert env.returncode == 2 and "bad bandwidth cap" in env.stderr
    ok = run_cli("warm", "demucs:tiny", "--index", str(index_file), "--endpoint", hub.endpoint, "--no-load",
                 "--max-rate", "50MiB")
    assert ok.returncode == 0, ok.stderr
