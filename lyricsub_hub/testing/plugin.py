"""A pytest plugin for apps built on lyricsub-hub: their inference code, tested offline in CI.

Installed with the package (`pip install 'lyricsub-hub[testing]'` brings pytest), it gives tests:

- ``lyricsub_hub_server``: a Hub-compatible server on 127.0.0.1 (a TestHub) for the session;
- ``lyricsub_tiny_models``: tiny but real Demucs, faster-whisper, wav2vec2 and pyannote models (needs the full
  stack: ``pip install 'lyricsub-hub[full]'``);
- ``lyricsub_models``: a ModelManager over a warmed cache of those tiny models, under the real names
  (demucs:htdemucs, whisper:large-v3, align:en, diarize:community-1), so ``mgr.load(...)`` returns the libraries'
  own objects with no network at all.

Nothing is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..manager import ModelManager
    from .hub import TestHub


@pytest.fixture(scope="session")
def lyricsub_hub_server() -> Iterator[TestHub]:
    from .hub import TestHub

    with TestHub() as hub:
        yield hub


@pytest.fixture(scope="session")
def lyricsub_tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .catalog import make_tiny

    return make_tiny(tmp_path_factory.mktemp("lyricsub-tiny"))


@pytest.fixture(scope="session")
def lyricsub_models(lyricsub_hub_server: TestHub, lyricsub_tiny_models: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """Warmed and verified; the manager reads the cache only (the loopback Hub is not needed any more)."""
    from ..manager import ModelManager
    from .catalog import TOKEN, publish_index

    root = tmp_path_factory.mktemp("lyricsub-cache")
    index = publish_index(lyricsub_hub_server, lyricsub_tiny_models, root / "model_index.yaml")
    online = ModelManager(index, root / "hub", state_dir=root / "state", endpoint=lyricsub_hub_server.endpoint,
                          token=TOKEN)
    failed = [r for r in online.downloader().download_models(list(online.index.models)) if not r.success]
    if failed:
        raise RuntimeError(f"lyricsub_models: warming the tiny models failed: {failed[0].error}")
    return ModelManager(index, root / "hub", state_dir=root / "state")
