"""A mirror that answers at once but sends the first body byte late (olah refilling a 64 MiB block), made
deterministic: a streaming proxy in front of the test Hub sends the headers, then holds the body back.

A slow first byte on a ranged answer is no "cannot reach": the transfer waits longer for it than for a stalled
body, names the mirror, and when a ranged try makes no progress it asks for the rest of the file without Range.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import pytest

from lyricsub_hub import ModelDownloader, ModelManager, RetryPolicy
from lyricsub_hub.remote.http import Timeouts
from tests.helpers import LoopbackServer, add, payload, write_index

NAME = "whisper:slow"
BIG = 18 << 20  # split into ranges (8 MiB and more)
FAST = RetryPolicy(attempts=2, first_delay=0.05, max_delay=0.1, budget=20)


class SlowFirstByte(LoopbackServer):
    """Forwards to the upstream and streams the answer back: headers at once, the body after `delay` seconds for
    answers to ranged requests (and, with every_answer, for all). log: (method, Range or None, status)."""

    def __init__(self, upstream: str, delay: float, *, every_answer: bool = False) -> None:
        up = urlsplit(upstream)
        self.log: list[tuple[str, str | None, int]] = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=30)
                try:
                    conn.request(self.command, self.path, headers=headers)
                    resp = conn.getresponse()
                    ranged = self.headers.get("Range")
                    with lock:
                        proxy.log.append((self.command, ranged, resp.status))
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                            self.send_header(key, value)
                    self.end_headers()
                    self.wfile.flush()
                    if self.command == "HEAD":
                        return
                    if ranged or every_answer:
                        time.sleep(delay)
                    while chunk := resp.read(1 << 16):
                        self.wfile.write(chunk)
                finally:
                    conn.close()

            do_GET = do_HEAD = _forward

        self.serve(Handler)


@pytest.fixture
def slow_repo(hub, tmp_path):
    repo = add(hub, NAME, "test/slow", {"config.json": b'{"slow": 1}\n', "model.bin": payload(41, BIG)})
    return repo, write_index(tmp_path / "slow.yaml", [repo])


def download(index, cache, endpoint: str, timeouts: Timeouts):
    dl = ModelDownloader(ModelManager(index, cache, endpoint=endpoint), timeouts=timeouts, retry=FAST)
    messages: list[str] = []
    dl.set_progress_callback(lambda ev: messages.append(ev.message) if ev.message else None)
    try:
        return dl.download_model(NAME), messages
    finally:
        dl.close()


def test_ranged_answers_slow_to_start_fall_back_to_the_rest_of_the_file_without_range(hub, slow_repo, tmp_path) -> None:
    repo, index = slow_repo
    with SlowFirstByte(hub.endpoint, delay=3.0) as proxy:
        started = time.monotonic()
        result, messages = download(index, tmp_path / "cache", proxy.endpoint, Timeouts(first_byte_ranged=0.5))
        seconds = time.monotonic() - started
    assert result.success, result.error
    assert ModelManager(index, tmp_path / "cache").status(NAME, verify="deep").available
    gets = [(r, s) for m, r, s in proxy.log if m == "GET"]
    assert any(r for r, _ in gets) and (None, 200) in gets  # ranges first, then the file without Range
    fallback = [m for m in messages if "asking for the whole file instead" in m]
    assert len(fallback) == 1 and proxy.endpoint in fallback[0] and "ranged request" in fallback[0], messages
    assert "cannot reach" not in " ".join(messages)
    assert seconds < 3.0 + 10  # the fallback did not wait for the slow ranges


def test_a_mirror_slow_on_every_answer_is_called_slow_and_named_not_unreachable(hub, slow_repo, tmp_path) -> None:
    repo, index = slow_repo
    with SlowFirstByte(hub.endpoint, delay=2.5, every_answer=True) as proxy:
        result, messages = download(index, tmp_path / "cache", proxy.endpoint,
                                    Timeouts(headers=0.5, first_byte_ranged=0.5, stall=0.5))
    assert not result.success and result.exit_code == 3
    assert "cannot reach" not in result.error and "unreachable" not in result.error, result.error
    assert "127.0.0.1:" in result.error and NAME in result.error, result.error
    assert "too slow to start sending" in result.error and "breaking off" not in result.error, result.error
    st = ModelManager(index, tmp_path / "cache").status(NAME)
    assert st.status in ("missing", "partial")  # nothing half-written is ever available
