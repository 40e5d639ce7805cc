"""huggingface_hub's cache on disk, read and written without the network: layout, status, records, hashing,
part files, locks, removal and garbage collection. Bundles, a feature built on these, live in bundles/."""

from __future__ import annotations

from .status import FileStatus, ModelStatus, model_status
from .store import Cache

__all__ = ["Cache", "FileStatus", "ModelStatus", "model_status"]
