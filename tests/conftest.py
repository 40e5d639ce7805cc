"""Shared fixtures: an isolated HF home per test, a loopback test Hub, and an index of its repos.

huggingface_hub reads its environment at import, so the variables that must hold
for the whole run are set here, before any test module imports it; everything
per-test is passed explicitly (endpoint=, cache_dir=).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(_var, None)
os.environ.pop("HF_TOKEN", None)

import pytest  # noqa: E402

from lyricsub_hub.testing.hub import TestHub  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The light huggingface_hub 2.x environment has no torch: skip the modules that need it.
import importlib.util  # noqa: E402

if importlib.util.find_spec("torch") is None:
    collect_ignore = ["test_loaders.py", "test_tiny_models.py", "test_full_cycle.py"]


@dataclass(frozen=True)
class Repo:
    model: str  # index name, e.g. "demucs:tiny"
    repo: str
    commit: str
    files: dict[str, bytes]


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(autouse=True)
def restore_environ():
    """Whatever a test (or the code under test) writes into os.environ is undone afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own HF home, cache and state folder."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("LYRICSUB_STATE_DIR", str(tmp_path / "state"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                "HF_TOKEN", "LYRICSUB_MODEL_INDEX", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def cache_dir(isolated_home: Path) -> Path:
    return isolated_home / "hub"


@pytest.fixture
def hub():
    with TestHub() as server:
        yield server


def add(hub: TestHub, model: str, repo: str, files: dict[str, bytes], **kw) -> Repo:
    commit = hub.add_repo(repo, files, **kw)
    return Repo(model, repo, commit, dict(files))


def write_index(path: Path, repos: list[Repo], *, sets: dict[str, list[str]] | None = None, gated: set[str] = frozenset(),
                pin: bool = True) -> Path:
    """An index pinning each repo's commit, sizes and sha256, as `lyricsub-hub lock` would."""
    lines = ["version: 1", "models:"]
    for r in repos:
        lines += [f"  {r.model}:", f"    repo: {r.repo}"]
        if pin:
            lines.append(f"    revision: {r.commit}")
        lines.append(f"    gated: {'true' if r.model in gated else 'false'}")
        lines.append("    files:")
        for name, data in r.files.items():
            lines.append(f"      - {{name: {name}, size: {len(data)}, sha256: {hashlib.sha256(data).hexdigest()}}}")
    if sets:
        lines.append("sets:")
        lines += [f"  {k}: [{', '.join(v)}]" for k, v in sets.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small_repos(hub: TestHub) -> list[Repo]:
    """Two tiny models: one with a weight file (LFS) and a config (git), one with a nested path."""
    a = add(hub, "demucs:tiny", "test/tiny-demucs", {"tiny.yaml": b"models: ['abc']\n", "abc.safetensors": payload(1, 300_000)})
    b = add(hub, "whisper:tiny", "test/tiny-whisper", {
        "config.json": b'{"a": 1}\n', "model.bin": payload(2, 500_000), "sub/vocabulary.json": b'{"x": 0}\n'})
    return [a, b]


@pytest.fixture
def index_file(tmp_path: Path, small_repos: list[Repo]) -> Path:
    return write_index(tmp_path / "index.yaml", small_repos, sets={"default": ["demucs:tiny", "whisper:tiny"]})


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real command in a fresh process (needed wherever HF_HUB_OFFLINE must be read at import)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "lyricsub_hub", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT, **kw)
