"""Connections that find the line's speed: the test Hub's line cap and body limit, the controller's decisions on
fed rates, and whole downloads that add connections on a fast line, keep few on a full one, stay under the
ceiling, and live through 429 + Retry-After without failing."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager, RetryPolicy
from lyricsub_hub.download.adapt import Controller, Gate, GateClosed
from lyricsub_hub.download.downloader import DEFAULT_CONNECTIONS
from lyricsub_hub.remote.failures import rate_limited, wait_told
from lyricsub_hub.remote.http import HttpStatus
from lyricsub_hub.testing.hub import Fault
from tests.helpers import add, payload, write_index

MIB = 1 << 20
FAST = RetryPolicy(attempts=4, first_delay=0.05, max_delay=0.2, budget=20)


def _dl(index: Path, cache: Path, hub, **kw) -> ModelDownloader:
    return ModelDownloader(ModelManager(index, cache, endpoint=hub.endpoint), retry=kw.pop("retry", FAST), **kw)


def _model(hub, tmp_path: Path, size: int, seed: int = 5):
    repo = add(hub, "whisper:line", "test/line", {"config.json": b"{}\n", "model.bin": payload(seed, size)})
    return repo, write_index(tmp_path / "line.yaml", [repo])


# --------------------------------------------------------------------------- the test Hub's knobs

def _url(hub, repo) -> str:
    return f"{hub.endpoint}/{repo.repo}/resolve/{repo.commit}/model.bin"


def _get(url: str, out: dict, key: str) -> None:
    began = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            out[key] = (resp.status, len(resp.read()), time.monotonic() - began, dict(resp.headers))
    except urllib.error.HTTPError as exc:
        out[key] = (exc.code, 0, time.monotonic() - began, dict(exc.headers))


def test_the_line_cap_is_shared_by_every_connection(hub, tmp_path) -> None:
    repo, _ = _model(hub, tmp_path, 2 * MIB)
    hub.line(4_000_000)  # both bodies together: 4 MB/s
    out: dict = {}
    threads = [threading.Thread(target=_get, args=(_url(hub, repo), out, str(i))) for i in range(2)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    assert [out[k][:2] for k in ("0", "1")] == [(200, 2 * MIB), (200, 2 * MIB)]
    assert 0.9 * 4 * MIB / 4_000_000 <= took <= 2.5 * 4 * MIB / 4_000_000  # 4 MiB over a 4 MB/s line, not 2 × 4 MB/s


def test_a_host_beyond_its_body_limit_answers_429_with_retry_after_and_ratelimit(hub, tmp_path) -> None:
    repo, _ = _model(hub, tmp_path, 2 * MIB)
    hub.throttle(2_000_000)
    hub.limit_bodies(2, retry_after=3)
    out: dict = {}
    url = _url(hub, repo)
    threads = [threading.Thread(target=_get, args=(url, out, str(i))) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while hub._bodies < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    _get(url, out, "third")
    for t in threads:
        t.join()
    status, _, _, headers = out["third"]
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert headers["RateLimit"] == '"bodies";r=0;t=3'
    assert "q=2" in headers["RateLimit-Policy"]
    assert hub.refused == 1
    assert [out[k][:2] for k in ("0", "1")] == [(200, 2 * MIB), (200, 2 * MIB)]  # the two within the limit were served


# --------------------------------------------------------------------------- what a refusal says

def test_retry_after_is_read_as_seconds_an_http_date_or_a_ratelimit_reset() -> None:
    assert wait_told({"retry-after": "7"}) == 7.0
    in_30s = wait_told({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert in_30s is not None and 27 <= in_30s <= 30
    assert wait_told({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0  # a date past: now
    assert wait_told({"ratelimit": '"api";r=0;t=55', "ratelimit-policy": '"fixed window";"api";q=500;w=300'}) == 55.0
    assert wait_told({"ratelimit": '"api";r=12;t=55'}) is None  # requests left: no wait told
    assert wait_told({"retry-after": "soon"}) is None


def test_a_plain_503_is_trouble_but_a_503_with_a_wait_is_a_rate_limit() -> None:
    assert rate_limited(HttpStatus(503, "http://h/x", {})) is None
    assert rate_limited(HttpStatus(503, "http://h/x", {"retry-after": "2"})) == 2.0
    assert rate_limited(HttpStatus(429, "http://h/x", {})) == 0.0
    assert rate_limited(HttpStatus(500, "http://h/x", {"retry-after": "2"})) is None


# --------------------------------------------------------------------------- the controller, fed rates

def _feed(ctl: Controller, rate_of, seconds: float, demand: int = 1000) -> list[int]:
    """Drive the controller with a line whose aggregate rate is rate_of(target) for `seconds` more (its clock and
    byte count go on from the last call); returns the targets seen."""
    now, total = getattr(ctl, "_test_clock", (0.0, 0.0))
    end, seen = now + seconds, []
    while now < end:
        now += 0.02
        total += rate_of(ctl.target) * 0.02
        seen.append(ctl.observe(now, int(total), demand))
    ctl._test_clock = (now, total)  # type: ignore[attr-defined]
    return seen


def test_the_controller_adds_connections_while_the_rate_rises_and_holds_what_the_line_needs() -> None:
    ctl = Controller(32)
    seen = _feed(ctl, lambda n: min(160e6, 10e6 * n), 3.0)  # 160 MB/s line, 10 MB/s per connection
    assert seen[0] <= 4  # it starts with a few
    assert 16 <= ctl.held <= 18  # and settles on what fills the line (16), not the ceiling
    assert max(seen) <= 32


def test_the_controller_keeps_few_connections_on_a_line_two_fill() -> None:
    ctl = Controller(32)
    _feed(ctl, lambda n: min(80e6, 40e6 * n), 3.0)  # 80 MB/s line, 40 MB/s per connection
    assert ctl.held == 2


def test_the_controller_climbs_again_when_the_line_gets_faster() -> None:
    ctl = Controller(32)
    line = {"rate": 40e6}
    _feed(ctl, lambda n: min(line["rate"], 10e6 * n), 2.0)
    assert ctl.held <= 5
    line["rate"] = 200e6
    _feed(ctl, lambda n: min(line["rate"], 10e6 * n), 12.0)
    assert ctl.held >= 18


def test_the_controller_never_passes_the_ceiling_and_one_means_one() -> None:
    ctl = Controller(6)
    assert max(_feed(ctl, lambda n: 10e6 * n, 3.0)) == 6
    one = Controller(1)
    assert set(_feed(one, lambda n: 10e6 * n, 1.0)) == {1}


def test_the_gate_holds_a_refusing_host_to_the_bodies_it_was_sending() -> None:
    gate = Gate(lambda: 8)
    for _ in range(4):
        gate.enter("cdn", lambda: False)
        gate.answered("cdn")  # four bodies flowing ...
    for _ in range(2):
        gate.enter("cdn", lambda: False)  # ... and two requests on their way
    assert gate.refused("cdn") == 4  # one of the two was refused: the host carries four, not five
    gate.leave("cdn")  # the refused request gives its place back
    assert not gate.room("cdn")  # five still open there (four bodies and one request): no room on that host ...
    assert gate.room("other")  # ... while another host still has room


def test_the_gate_sends_a_host_no_more_requests_at_once_than_it_is_sending_bodies() -> None:
    gate = Gate(lambda: 32)
    for _ in range(2):
        gate.enter("cdn", lambda: False)  # two requests on their way, none answered yet
    waited = threading.Event()
    with pytest.raises(GateClosed):
        gate.enter("cdn", lambda: waited.set() or True)  # a third waits (here: is stopped while it waits)
    assert waited.is_set()
    gate.answered("cdn")
    gate.answered("cdn")
    gate.enter("cdn", lambda: False)  # two bodies flowing: two more may be on their way
    gate.enter("cdn", lambda: False)
    assert gate.open == 4


# --------------------------------------------------------------------------- whole downloads

def test_a_fast_line_with_capped_connections_gets_more_connections(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 48 * MIB)
    hub.throttle(4_000_000)  # per connection
    hub.line(48_000_000)  # twelve connections fill it
    dl = _dl(index, cache_dir, hub)
    result = dl.download_model("whisper:line")
    assert result.success, result.error
    assert hub.max_bodies >= 8  # it went well past where it started (4)
    assert ModelManager(index, cache_dir).status("whisper:line", verify="deep").available


def test_a_line_that_two_connections_fill_keeps_few(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 64 * MIB)
    hub.throttle(20_000_000)
    hub.line(40_000_000)
    dl = _dl(index, cache_dir, hub)
    samples: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            samples.append(hub._bodies)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = dl.download_model("whisper:line")
    finally:
        done.set()
        watcher.join()
    assert result.success, result.error
    late = samples[len(samples) // 2:]  # the second half of the run, after the controller found the line full
    assert sum(late) / len(late) <= 3.5  # shed back to about two, not the ceiling of 32


def test_connections_1_means_one_body_at_a_time(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 24 * MIB)
    hub.throttle(30_000_000)
    assert _dl(index, cache_dir, hub, connections=1).download_model("whisper:line").success
    assert hub.max_bodies == 1
    assert [r.range for r in hub.requests if r.method == "GET" and "model.bin" in r.path] == [None]


def test_the_default_ceiling_fills_a_10_gbit_line_at_40_mb_s_per_connection() -> None:
    assert DEFAULT_CONNECTIONS * 40e6 >= 10e9 / 8


def test_a_server_allowing_few_bodies_is_obeyed_not_failed(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 40 * MIB)
    hub.use_cdn(ttl=600)
    hub.throttle(10_000_000)
    hub.limit_bodies(2, retry_after=0.5)
    messages: list[str] = []
    dl = _dl(index, cache_dir, hub, retry=RetryPolicy(attempts=2, first_delay=0.05, max_delay=0.2, budget=20))
    dl.set_progress_callback(lambda ev: ev.message and messages.append(ev.message))
    result = dl.download_model("whisper:line")
    assert result.success, result.error
    assert 1 <= hub.refused <= 4  # it asked beyond the limit, learned it, and stopped asking
    limited = [m for m in messages if "rate limited" in m]
    assert len(limited) == 1 and "HTTP 429" in limited[0]  # one line says so
    gets = [r for r in hub.requests if r.method == "GET" and "model.bin" in r.path and r.status in (200, 206)]
    assert sum(r.bytes_sent for r in gets) <= 40 * MIB + 2 * MIB  # refused ranges were fetched once, not twice
    assert ModelManager(index, cache_dir).status("whisper:line", verify="deep").available


def test_repeated_429s_on_one_file_are_waited_out_not_counted_as_failed_tries(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 1 * MIB)
    hub.inject(Fault("status", status=429, retry_after=0.4, path_contains="model.bin", method="GET", times=3))
    policy = RetryPolicy(attempts=2, first_delay=0.05, max_delay=0.2, budget=20)  # two failed tries would end it
    began = time.monotonic()
    result = _dl(index, cache_dir, hub, retry=policy).download_model("whisper:line")
    assert result.success, result.error
    assert time.monotonic() - began >= 3 * 0.4  # it waited as told each time (not the 0.05 s back-off)
    assert not hub.pending_faults


@pytest.mark.parametrize("budget", [1.0])
def test_a_wait_longer_than_the_budget_ends_in_one_line(hub, tmp_path, cache_dir, budget) -> None:
    repo, index = _model(hub, tmp_path, 1 * MIB)
    hub.inject(Fault("status", status=429, retry_after=30, path_contains="model.bin", method="GET", times=5))
    policy = RetryPolicy(attempts=4, first_delay=0.05, max_delay=0.2, budget=budget)
    result = _dl(index, cache_dir, hub, retry=policy).download_model("whisper:line")
    assert not result.success
    assert "HTTP 429" in (result.error or "") and result.exit_code == 3


def test_with_no_count_a_run_starts_with_few_and_with_a_count_it_starts_there(hub, tmp_path, cache_dir) -> None:
    repo, index = _model(hub, tmp_path, 1 * MIB)
    assert _dl(index, cache_dir, hub)._engine_for().controller.target == 4  # a few (a line two fill is found on the first step down)
    assert _dl(index, cache_dir, hub, connections=6)._engine_for().controller.target == 6  # as asked, e.g. aria2c's -x6
    assert _dl(index, cache_dir, hub, connections=20)._engine_for().controller.target == 8  # at most 8 before measuring


def _most_at_once(requests) -> int:
    """The most of these requests the hub was answering at the same moment."""
    edges = sorted([(r.started, 1) for r in requests] + [(r.ended, -1) for r in requests])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _hash_at(mocker, bytes_per_second: float) -> None:
    """A machine that hashes this fast (the connection's own thread hashes what it receives)."""
    from lyricsub_hub.download import hasher

    real = hasher.PrefixHasher._update

    def slow(self, data) -> None:
        time.sleep(len(data) / bytes_per_second)
        real(self, data)

    mocker.patch.object(hasher.PrefixHasher, "_update", slow)


def test_a_file_whose_connection_is_busier_hashing_than_waiting_keeps_one_connection(hub, tmp_path, cache_dir, mocker) -> None:
    """Over a line faster than this machine checks bytes (loopback, a mirror next door), a second connection to the
    same file only adds work: its sha256 is sequential, so the second connection's bytes would wait on disk to be
    read back (measured on 2 x 512 MiB over loopback: 0.93-1.03 s with one connection per file, 1.41-1.57 s when
    the files were split)."""
    repo, index = _model(hub, tmp_path, 32 * MIB)
    _hash_at(mocker, 50e6)
    result = _dl(index, cache_dir, hub).download_model("whisper:line")
    assert result.success, result.error
    gets = [r for r in hub.requests if r.method == "GET" and r.path.endswith("/model.bin")]
    assert _most_at_once(gets) == 1


def test_a_file_whose_connections_wait_for_bytes_gets_more_with_the_same_hashing(hub, tmp_path, cache_dir, mocker) -> None:
    repo, index = _model(hub, tmp_path, 32 * MIB)
    _hash_at(mocker, 50e6)
    hub.throttle(4_000_000)  # per connection: each waits far longer for its bytes than it takes to hash them
    result = _dl(index, cache_dir, hub).download_model("whisper:line")
    assert result.success, result.error
    gets = [r for r in hub.requests if r.method == "GET" and r.path.endswith("/model.bin")]
    assert _most_at_once(gets) >= 4
