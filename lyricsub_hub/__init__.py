"""lyricsub-hub: pinned, verified, offline-ready model cache for Demucs + WhisperX pipelines.

Importing this package is cheap on purpose (no torch, no huggingface_hub, no
YAML): names are loaded on first use, so an app can import it before inference.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "ModelManager": "manager",
    "ModelMetadata": "manager",
    "ModelDownloader": "download",
    "RetryPolicy": "download",
    "DownloadProgress": "download",
    "DownloadResult": "download",
    "ModelStatus": "cache",
    "FileStatus": "cache",
    "Cache": "cache",
    "ModelIndex": "index",
    "ModelSpec": "index",
    "FileSpec": "index",
    "load_index": "index",
    "go_offline": "core.env",
    "LyricsubError": "errors",
    "ModelNotAvailableError": "errors",
    "IntegrityError": "errors",
    "HubError": "errors",
    "DiskSpaceError": "errors",
    "DownloadCancelled": "errors",
    "LoadError": "errors",
    "UsageError": "errors",
}

__all__ = [
    "Cache", "DiskSpaceError", "DownloadCancelled", "DownloadProgress", "DownloadResult", "FileSpec", "FileStatus",
    "HubError", "IntegrityError", "LoadError", "LyricsubError", "ModelDownloader", "ModelIndex", "ModelManager",
    "ModelMetadata", "ModelNotAvailableError", "ModelSpec", "ModelStatus", "RetryPolicy", "UsageError", "__version__",
    "go_offline", "load_index",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lyricsub_hub' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache, FileStatus, ModelStatus
    from .core.env import go_offline
    from .download import DownloadProgress, DownloadResult, ModelDownloader, RetryPolicy
    from .errors import (
        DiskSpaceError,
        DownloadCancelled,
        HubError,
        IntegrityError,
        LoadError,
        LyricsubError,
        ModelNotAvailableError,
        UsageError,
    )
    from .index import FileSpec, ModelIndex, ModelSpec, load_index
    from .manager import ModelManager, ModelMetadata
