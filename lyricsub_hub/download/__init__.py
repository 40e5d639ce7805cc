"""Downloads: a frozen plan (what to fetch, how many bytes, the disk check), then its execution on one shared
pool of connections, with retries, resume, progress and cancellation."""

from __future__ import annotations

from .downloader import ModelDownloader
from .execute import RetryPolicy
from .plan import DiskPlan
from .progress import DownloadProgress, DownloadResult

__all__ = ["DiskPlan", "DownloadProgress", "DownloadResult", "ModelDownloader", "RetryPolicy"]
