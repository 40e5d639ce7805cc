"""Load a cached model through the cache layer: verified path first, then the family loader.

The one entry point the app uses before inference (`ModelManager.load`), and
what `warm` and `lyricsub-hub load` run to prove a model works.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loaders import LoadedModel, SmokeReport
    from .manager import ModelManager

# The library each family needs; warm skips its load check where it is not installed.
FAMILY_LIBRARY = {"demucs": "demucs", "whisper": "whisperx", "align": "whisperx", "diarize": "pyannote.audio"}


def library_missing(family: str) -> str | None:
    """The module a family needs, when it is not installed (a light install without torch)."""
    name = FAMILY_LIBRARY.get(family)
    try:
        return name if name and importlib.util.find_spec(name.split(".")[0]) is None else None
    except ValueError:
        return name


def load(manager: "ModelManager", name: str, device: str = "auto", **options: Any) -> "LoadedModel":
    """Only a whole, verified snapshot is handed to the library; never a download."""
    from .loaders import load_model

    spec = manager.spec(name)
    path = manager.get_model_path(spec.name)
    return load_model(spec, path, device, **options)


def load_and_smoke(manager: "ModelManager", name: str, device: str = "auto", **options: Any) -> "SmokeReport":
    from .loaders import smoke

    return smoke(load(manager, name, device, **options))
