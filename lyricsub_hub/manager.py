"""ModelManager: the app-facing API over the index and the cache.

Every method here answers from the local cache alone and makes no network
request, whatever HF_HUB_OFFLINE says; downloading is ModelDownloader's job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import IntegrityError, ModelNotAvailableError, UnpinnedModelError
from .index import FileSpec, ModelIndex, ModelSpec, load_index
from .paths import cache_key, resolve_cache_dir, resolve_state_dir
from .records import RecordStore
from .removal import RemovalReport, remove_models
from .status import ModelStatus, Verify, model_status

if TYPE_CHECKING:
    from .download import DownloadResult


@dataclass(frozen=True)
class ModelMetadata:
    """What the index says about a model, and what the cache holds of it."""

    name: str
    family: str
    repo: str
    revision: str | None
    branch: str
    license: str | None
    gated: bool
    pinned: bool
    description: str | None
    files: tuple[FileSpec, ...]
    total_size: int | None
    status: ModelStatus


def warm_hint(name: str) -> str:
    return f"lyricsub-hub warm {name}"


class ModelManager:
    """Index + cache + verification records, with the names the app already uses."""

    def __init__(
        self,
        index: ModelIndex | str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        endpoint: str | None = None,
        token: str | None = None,
    ) -> None:
        self.index = index if isinstance(index, ModelIndex) else load_index(index)
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.state_dir = resolve_state_dir(state_dir)
        self.records = RecordStore(self.state_dir)
        self.endpoint = endpoint
        self._token = token

    # -- answers from the cache -------------------------------------------------
    def spec(self, name: str) -> ModelSpec:
        return self.index.resolve(name)

    def status(self, name: str | ModelSpec, verify: Verify = "record") -> ModelStatus:
        spec = name if isinstance(name, ModelSpec) else self.spec(name)
        return model_status(spec, self.cache_dir, self.records, verify)

    def check_model_availability(self, name: str) -> bool:
        """True only when every file is present, of the right size and hash."""
        return self.status(name).available

    def get_model_path(self, name: str) -> Path:
        """The snapshot folder of a whole, verified model; raises instead of returning a bad one."""
        st = self.status(name)
        if st.available and st.path is not None:
            return st.path
        raise not_available_error(st)

    def list_models(self, names: Iterable[str] = (), set_name: str | None = None, verify: Verify = "record") -> list[ModelStatus]:
        specs = self.index.expand(names, set_name) if (names or set_name) else list(self.index.models.values())
        return [self.status(s, verify) for s in specs]

    def list_available_models(self) -> list[str]:
        return [s.name for s in self.list_models() if s.available]

    def get_model_metadata(self, name: str) -> ModelMetadata:
        spec = self.spec(name)
        return ModelMetadata(
            spec.name, spec.family, spec.repo, spec.revision, spec.branch, spec.license, spec.gated,
            spec.pinned, spec.description, spec.files, spec.total_size, self.status(spec),
        )

    # -- changes to the cache ---------------------------------------------------
    def remove_model(self, name: str) -> RemovalReport:
        return self.clear_model_cache([name])

    def clear_model_cache(self, names: Iterable[str] | None = None) -> RemovalReport:
        """Remove the index's models (all of them when names is None) through huggingface_hub's own deletion.

        Models outside the index are never touched: the HF cache is shared with other tools.
        """
        specs = [self.spec(n) for n in names] if names is not None else list(self.index.models.values())
        report = remove_models(specs, self.cache_dir)
        key = cache_key(self.cache_dir)
        for spec in specs:
            if spec.revision:
                self.records.forget(key, spec.repo, spec.revision)
        return report

    def download_model(self, name: str, **kwargs) -> "DownloadResult":
        """Fetch a model into the cache (see ModelDownloader.download_model)."""
        from .download import ModelDownloader

        return ModelDownloader(self).download_model(name, **kwargs)

    def load(self, name: str, device: str = "auto", **options):
        """The library's own model object (a demucs bag, a whisperX pipeline, ...) from the verified snapshot."""
        from .loading import load

        return load(self, name, device, **options)

    def smoke_test(self, name: str, device: str = "auto", **options):
        """Load, then run once on a short synthetic signal; returns a SmokeReport (device, load and run time)."""
        from .loading import load_and_smoke

        return load_and_smoke(self, name, device, **options)

    @property
    def token(self) -> str | None:
        return self._token or os.environ.get("HF_TOKEN") or None


def not_available_error(st: ModelStatus) -> ModelNotAvailableError:
    """One line: which model, what is wrong, what to run."""
    if st.status == "unpinned":
        return UnpinnedModelError(  # type: ignore[return-value]
            "the index has no pinned commit or file list for it", model=st.name, hint=f"lyricsub-hub lock {st.name}"
        )
    bad = st.problems
    if st.status == "corrupt":
        names = ", ".join(f"{f.name} ({f.detail})" for f in bad if f.state == "mismatch")
        return IntegrityError(f"corrupt in the cache: {names}", model=st.name, status=st.status, hint=f"lyricsub-hub verify --repair {st.name}")
    if st.status == "partial":
        names = ", ".join(f"{f.name} ({f.detail or f.state})" for f in bad)
        return ModelNotAvailableError(f"partially downloaded, not usable: {names}", model=st.name, status=st.status, hint=warm_hint(st.name))
    return ModelNotAvailableError("not in the cache", model=st.name, status=st.status, hint=warm_hint(st.name))
