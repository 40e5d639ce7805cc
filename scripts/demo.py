#!/usr/bin/env python3
"""`make demo`: the whole lyricsub-hub cycle on a machine with no internet.

Starts the loopback test Hub with tiny but real generated models (Demucs, a
faster-whisper model, a wav2vec2 aligner, a pyannote pipeline), then runs the
real command line against it: warm a set, verify it, load each model on CPU,
and do it all again offline with the Hub switched off. Everything lives under
.demo/ (its own HF_HOME), so your real cache is never touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
MODELS = {  # index name -> (repo, tiny model folder)
    "demucs:htdemucs": ("adefossez/HTDemucs", "demucs-htdemucs"),
    "whisper:large-v3": ("Systran/faster-whisper-large-v3", "whisper-tiny"),
    "align:en": ("facebook/wav2vec2-base-960h", "align-en"),
    "diarize:community-1": ("pyannote/speaker-diarization-community-1", "diarize-community-1"),
}
TOKEN = "hf_demo_token_not_a_real_one_000000"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def cli(*args: str, env: dict[str, str]) -> int:
    print("$ lyricsub-hub " + " ".join(args), flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "lyricsub_hub", *args], env=env, cwd=ROOT)
    print(f"(exit {code}, {time.monotonic() - started:.1f}s)", flush=True)
    return code


def write_index(path: Path, commits: dict[str, str], tiny: Path) -> None:
    lines = ["version: 1", "models:"]
    for name, (repo, folder) in MODELS.items():
        lines += [f"  {name}:", f"    repo: {repo}", f"    revision: {commits[name]}",
                  f"    gated: {'true' if name.startswith('diarize') else 'false'}", "    files:"]
        for file in sorted(p for p in (tiny / folder).rglob("*") if p.is_file()):
            data = file.read_bytes()
            rel = file.relative_to(tiny / folder).as_posix()
            lines.append(f"      - {{name: {rel}, size: {len(data)}, sha256: {hashlib.sha256(data).hexdigest()}}}")
    lines += ["sets:", f"  demo: [{', '.join(MODELS)}]"]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    env = {**os.environ, "HF_HOME": str(DEMO / "hf"), "LYRICSUB_STATE_DIR": str(DEMO / "state"),
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "PYANNOTE_METRICS_ENABLED": "false",
           "LYRICSUB_MODEL_INDEX": str(DEMO / "index.yaml"), "PYTHONPATH": str(ROOT)}
    os.environ.update({k: env[k] for k in ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_TELEMETRY")})
    from lyricsub_hub.testing.hub import TestHub

    step("1. generating tiny but real models (Demucs, faster-whisper, wav2vec2, pyannote)")
    tiny = DEMO / "tiny"
    subprocess.run([sys.executable, "-m", "lyricsub_hub.testing.tiny_models", str(tiny)], check=True, cwd=ROOT, env=env)
    with TestHub() as hub:
        step(f"2. a Hub-compatible server on {hub.endpoint} serves them (diarization is gated)")
        commits = {}
        for name, (repo, folder) in MODELS.items():
            commits[name] = hub.add_repo(repo, tiny / folder, gated=name.startswith("diarize"))
            print(f"  {repo} @ {commits[name][:12]}")
        hub.grant(MODELS["diarize:community-1"][0], TOKEN)
        write_index(DEMO / "index.yaml", commits, tiny)
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
    if cli("--offline", "load", *MODELS, "--device", "cpu", env=offline) != 0:
        return 1
    step("done: everything above ran without internet; the cache is in .demo/hf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
