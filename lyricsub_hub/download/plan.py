"""Deciding what to fetch, before any byte moves (pooch's "decide, then act").

A Plan is frozen: for each model, the files still missing, the bytes they need
(less what interrupted downloads already hold), and whether the disk has room.
Only fully pinned models are planned; executing the plan is execute.py's job.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..cache import Cache, ModelStatus
from ..cache.parts import held_bytes
from ..core.env import is_offline
from ..core.text import human_size
from ..errors import DiskSpaceError, Hint, OfflineError
from ..index import FileSpec, ModelSpec, unpinned_error

MIB = 1 << 20
SPLIT_MIN = 8 * MIB  # files below this go whole, in one request (measured: docs/benchmarks.md, figure F)
SEGMENT_MIN = 4 * MIB  # no range is split below this


@dataclass(frozen=True)
class FilePlan:
    """One pinned file to fetch into the cache."""

    name: str
    size: int | None  # None: the index pins no size; the Hub's answer then caps the download
    sha256: str
    held: int  # bytes an interrupted download already holds

    @property
    def split(self) -> bool:
        return self.size is None or self.size >= SPLIT_MIN


@dataclass(frozen=True)
class ModelPlan:
    """One model's part of a download plan: its status before, and the files still to fetch."""

    spec: ModelSpec
    before: ModelStatus
    files: tuple[FilePlan, ...]  # to fetch; empty when the model is already available

    @property
    def needed(self) -> int:
        return sum((f.size or 0) - f.held for f in self.files)

    @property
    def held(self) -> int:
        return sum(f.held for f in self.files)


@dataclass(frozen=True)
class DiskPlan:
    """Bytes a plan still needs against the free space of the folder it writes to."""

    folder: Path
    needed: int
    free: int
    per_model: tuple[tuple[str, int], ...]

    @property
    def short(self) -> bool:
        return self.needed > self.free

    @classmethod
    def of(cls, cache_dir: Path, wants: list[tuple[str, int]]) -> DiskPlan:
        probe = cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        return cls(cache_dir, sum(n for _, n in wants), free, tuple(wants))

    def error(self) -> DiskSpaceError:
        models = ", ".join(name for name, n in self.per_model if n)
        return DiskSpaceError(f"needs {human_size(self.needed)} in {self.folder} but only {human_size(self.free)} is free",
                              model=models or None,
                              hint=f"free {human_size(self.needed - self.free)} or set HF_HUB_CACHE to a larger disk")

    def raise_if_short(self) -> None:
        if self.short:
            raise self.error()


def plan_model(cache: Cache, spec: ModelSpec, *, force: bool = False) -> ModelPlan:
    """What one model still needs; raises for an unpinned model, or offline with files missing."""
    if not spec.pinned:
        raise unpinned_error(spec)
    before = cache.status(spec)
    files = tuple(_file_plan(cache, spec, f) for f in spec.files if force or _needs(before, f))
    if files and is_offline():
        names = ", ".join(f.name for f in files)
        raise OfflineError(f"offline mode is on and {len(files)} file(s) are missing: {names}", model=spec.name,
                           status=before.status, hint=Hint.offline_warm(spec.name))
    return ModelPlan(spec, before, files)


def disk_plan(cache: Cache, plans: list[ModelPlan]) -> DiskPlan:
    return DiskPlan.of(cache.cache_dir, [(p.spec.name, p.needed) for p in plans])


def _needs(status: ModelStatus, fspec: FileSpec) -> bool:
    return next((f.state != "ok" for f in status.files if f.name == fspec.name), True)


def _file_plan(cache: Cache, spec: ModelSpec, fspec: FileSpec) -> FilePlan:
    assert fspec.sha256 is not None
    held = held_bytes(cache.cache_dir, spec.repo, fspec.sha256, fspec.size)
    if fspec.size is not None:
        held = min(held, fspec.size)
    return FilePlan(fspec.name, fspec.size, fspec.sha256, held)
