#!/usr/bin/env python3
"""`make demo`: the whole lyricsub-hub cycle on a machine with no internet.

Starts the loopback test Hub with tiny but real generated models (Demucs, a
faster-whisper model, a wav2vec2 aligner, a pyannote pipeline), then runs the
real command line against it: warm a set, verify it, load each model on CPU,
and do it all again offline with the Hub switched off. Everything lives under
.demo/ (its own HF_HOME), so your real cache is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def cli(*args: str, env: dict[str, str]) -> int:
    print("$ lyricsub-hub " + " ".join(args), flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "lyricsub_hub", *args], env=env, cwd=ROOT)
    print(f"(exit {code}, {time.monotonic() - started:.1f}s)", flush=True)
    return code


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    env = {**os.environ, "HF_HOME": str(DEMO / "hf"), "LYRICSUB_STATE_DIR": str(DEMO / "state"),
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "PYANNOTE_METRICS_ENABLED": "false",
           "LYRICSUB_MODEL_INDEX": str(DEMO / "index.yaml"), "PYTHONPATH": str(ROOT)}
    os.environ.update({k: env[k] for k in ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_TELEMETRY")})
    from lyricsub_hub.index import load_index
    from lyricsub_hub.testing.catalog import TINY, TOKEN, make_tiny, publish_index
    from lyricsub_hub.testing.hub import TestHub

    step("1. generating tiny but real models (Demucs, faster-whisper, wav2vec2, pyannote)")
    print("  importing torch and the speech libraries and writing the models: about 15 s, no network", flush=True)
    tiny = make_tiny(DEMO / "tiny")
    with TestHub() as hub:
        step(f"2. a Hub-compatible server on {hub.endpoint} serves them (diarization is gated)")
        publish_index(hub, tiny, DEMO / "index.yaml", set_name="demo")
        for spec in load_index(DEMO / "index.yaml").models.values():
            print(f"  {spec.repo} @ {(spec.revision or '')[:12]}")
        online = {**env, "HF_ENDPOINT": hub.endpoint}
        step("3. status before: nothing cached")
        cli("status", "--set", "demo", env=online)
        step("4. gated model without a token: one clear line, exit 3")
        cli("warm", "diarize:community-1", "--no-load", env=online)
        step("5. warm the set (downloads, verifies, loads each model on CPU and runs it once)")
        if cli("warm", "--set", "demo", "--device", "cpu", env={**online, "HF_TOKEN": TOKEN}) != 0:
            return 1
        step("6. verify every file against its pinned sha256")
        if cli("verify", "--deep", env=online) != 0:
            return 1
        print(f"\n  requests the Hub served: {len(hub.requests)}")
    step("7. the Hub is gone now: offline status, path and load (HF_HUB_OFFLINE=1)")
    offline = {**env, "HF_ENDPOINT": "http://127.0.0.1:9"}
    cli("--offline", "status", "--set", "demo", env=offline)
    cli("--offline", "path", "whisper:large-v3", env=offline)
    if cli("--offline", "load", *TINY, "--device", "cpu", env=offline) != 0:
        return 1
    step("done: everything above ran without internet; the cache is in .demo/hf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
