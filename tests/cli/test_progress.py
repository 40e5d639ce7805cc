"""Progress on a terminal: one bar per model and one per active file, every bar closed before the summary."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

from tests.helpers import ROOT, add, payload, write_index

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(args: list[str], timeout: float = 60, code: int = 0) -> str:
    """stdout and stderr on one pseudo-terminal, as a person sees them."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "lyricsub_hub", *args], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower, cwd=ROOT, env=env)
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(10)
    os.close(leader)
    assert proc.returncode == code, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


def test_bars_are_closed_before_the_summary_line(hub, tmp_path) -> None:
    a = add(hub, "whisper:a", "test/a", {"model.bin": payload(41, 20_000_000), "tokenizer.json": b"{}"})
    b = add(hub, "whisper:b", "test/b", {"model.bin": payload(42, 6_000_000), "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "p.yaml", [a, b])
    hub.throttle(15_000_000)
    text = run_on_a_terminal(["warm", "whisper:a", "whisper:b", "--index", str(index), "--endpoint", hub.endpoint,
                               "--no-load", "--connections", "4"])
    screen = _ANSI.sub("", text).replace("\r\n", "\n")
    assert "%|" in screen  # bars were drawn
    for model in ("whisper:a", "whisper:b"):
        summary = next(line for line in screen.split("\n") if f"{model}" in line and "available" in line)
        visible = summary.rsplit("\r", 1)[-1]  # what stays on that line once the terminal has drawn it
        assert visible.startswith(model), repr(summary)
