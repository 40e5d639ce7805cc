"""Shared fixtures: an isolated HF home per test, a loopback test Hub, and an index of its repos.

huggingface_hub reads its environment at import, so the variables that must hold
for the whole run are set here, before any test module imports it; everything
per-test is passed explicitly (endpoint=, cache_dir=).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.pop(_var, None)
os.environ.pop("HF_TOKEN", None)

# The light huggingface_hub 2.x environment has no torch: skip the modules that need it.
import importlib.util  # noqa: E402

import pytest  # noqa: E402

from lyricsub_hub.testing.hub import TestHub  # noqa: E402
from tests.helpers import Repo, add, payload, write_index  # noqa: E402

if importlib.util.find_spec("torch") is None:
    collect_ignore = ["families/test_loaders.py", "families/test_tiny_models.py", "families/test_devices.py",
                      "families/test_cuda.py", "e2e/test_full_cycle.py"]


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
def hub(request: pytest.FixtureRequest):
    """The loopback test Hub. A test whose Hub raised (hub.errors: its handlers' own exceptions, not clients hanging
    up) fails, unless it is marked `hub_errors` because it provokes them on purpose."""
    with TestHub() as server:
        yield server
    if server.errors and request.node.get_closest_marker("hub_errors") is None:
        pytest.fail(f"the test Hub raised {len(server.errors)} error(s) while serving this test; the first:\n"
                    f"{server.errors[0]}", pytrace=False)


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
