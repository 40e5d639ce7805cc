"""huggingface_hub's cache on disk, read and written without the network: layout, status, records, hashing,
part files, locks and removal. The features built on these live above: bundles/ and gc.py."""

from __future__ import annotations

from .status import FileStatus, ModelStatus, model_status
from .store import Cache

__all__ = ["Cache", "FileStatus", "ModelStatus", "model_status"]
