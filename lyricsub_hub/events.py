"""What a download reports while it runs and when it ends (the types the app already uses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .errors import LyricsubError

Stage = Literal["plan", "download", "verify", "file_done", "done", "error", "cancelled"]


@dataclass(frozen=True)
class DownloadProgress:
    """One progress event; bytes are counted on the wire for the current file and for the model."""

    model: str
    file: str | None
    stage: Stage
    bytes_done: int = 0
    bytes_total: int | None = None
    model_bytes_done: int = 0
    model_bytes_total: int | None = None
    speed: float = 0.0  # bytes per second over the model so far
    eta: float | None = None  # seconds left for the model, when the total is known
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.model_bytes_total:
            return None
        return min(1.0, self.model_bytes_done / self.model_bytes_total)


@dataclass(frozen=True)
class DownloadResult:
    """The outcome of one model's download; success only when every file verified."""

    model: str
    success: bool
    local_path: Path | None
    bytes_fetched: int
    seconds: float
    error: str | None = None
    error_code: str | None = None
    exit_code: int = 0
    files_fetched: tuple[str, ...] = ()
    resumed_bytes: int = 0
    warnings: tuple[str, ...] = field(default=())
    failure: "LyricsubError | None" = field(default=None, compare=False, repr=False)
