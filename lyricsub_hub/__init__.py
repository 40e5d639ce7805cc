"""lyricsub-hub: pinned, verified, offline-ready model cache for Demucs + WhisperX pipelines.

Importing this package is cheap on purpose (no torch, no huggingface_hub, no
YAML): names are loaded on first use, so an app can import it before inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelManager": "manager",
    "ModelMetadata": "manager",
    "ModelDownloader": "download",
    "RetryPolicy": "download",
    "DownloadProgress": "events",
    "DownloadResult": "events",
    "ModelStatus": "status",
    "FileStatus": "status",
    "ModelIndex": "index",
    "ModelSpec": "index",
    "FileSpec": "index",
    "load_index": "index",
    "go_offline": "environment",
    "LyricsubError": "errors",
    "ModelNotAvailableError": "errors",
    "IntegrityError": "errors",
    "HubError": "errors",
    "DiskSpaceError": "errors",
    "DownloadCancelled": "errors",
    "LoadError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lyricsub_hub' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .download import ModelDownloader, RetryPolicy
    from .environment import go_offline
    from .errors import (DiskSpaceError, DownloadCancelled, HubError, IntegrityError, LoadError, LyricsubError,
                         ModelNotAvailableError, UsageError)
    from .events import DownloadProgress, DownloadResult
    from .index import FileSpec, ModelIndex, ModelSpec, load_index
    from .manager import ModelManager, ModelMetadata
    from .status import FileStatus, ModelStatus
