"""Tiny real models published on a loopback Hub under the names the libraries know, with an index that pins
them: one place for the tests, the demo, the bench and the pytest plugin."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..index import FileSpec, ModelSpec
from ..index.write import write_index
from .hub import TestHub

TOKEN = "hf_TinyTestToken000000000000000000"  # granted on the gated tiny repos


@dataclass(frozen=True)
class Tiny:
    """Where the test suite's tiny stand-in for a model lives: its upstream repo name and folder."""

    repo: str  # as the upstream loaders name it, so their own offline look-ups find it
    folder: str  # under the tiny_models output folder
    gated: bool = False


TINY: dict[str, Tiny] = {
    "demucs:htdemucs": Tiny("adefossez/HTDemucs", "demucs-htdemucs"),
    "whisper:large-v3": Tiny("Systran/faster-whisper-large-v3", "whisper-tiny"),
    "align:en": Tiny("facebook/wav2vec2-base-960h", "align-en"),
    "diarize:community-1": Tiny("pyannote/speaker-diarization-community-1", "diarize-community-1", gated=True),
}


def make_tiny(out: Path, only: Iterable[str] = ()) -> Path:
    """Write the tiny models into out/<folder> (in a fresh interpreter: it imports the whole speech stack)."""
    args = [sys.executable, "-m", "lyricsub_hub.testing.tiny_models", str(out)]
    for folder in only:
        args += ["--only", folder]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return out


def publish(hub: TestHub, tiny_dir: Path, models: Mapping[str, Tiny] = TINY, token: str = TOKEN) -> list[ModelSpec]:
    """Commit each tiny model to the hub; the specs pin exactly those bytes."""
    specs = []
    for name, tiny in models.items():
        root = tiny_dir / tiny.folder
        commit = hub.add_repo(tiny.repo, root, gated=tiny.gated)
        if tiny.gated:
            hub.grant(tiny.repo, token)
        files = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            files.append(FileSpec(path.relative_to(root).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
        specs.append(ModelSpec(name, name.split(":", 1)[0], tiny.repo, commit, tuple(files), gated=tiny.gated))
    return specs


def publish_index(hub: TestHub, tiny_dir: Path, index: Path, *, set_name: str = "tiny",
                  models: Mapping[str, Tiny] = TINY) -> Path:
    specs = publish(hub, tiny_dir, models)
    return write_index(index, specs, {set_name: [s.name for s in specs]})
