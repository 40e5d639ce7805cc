"""ModelManager: the app's facade over the index, the cache, downloads and the families.

Every query answers from the local cache alone and makes no network request,
whatever HF_HUB_OFFLINE says; downloading is ModelDownloader's job. Loading hands
a family's library links to verified files only: the pinned sha256 is the one way
in. Nothing in the package imports this module back.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache, ModelStatus
from .cache.status import not_available_error
from .core import env
from .errors import Hint, LoadError, UsageError
from .index import FileSpec, ModelIndex, ModelSpec, load_index, unpinned_error

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from .cache.records import RecordStore
    from .cache.removal import RemovalReport
    from .cache.status import Verify
    from .download import DownloadResult, ModelDownloader
    from .families import LoadedModel, SmokeReport


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


@dataclass(frozen=True)
class VerifyReport:
    """One model's verification: its status before, and after a repair when one ran."""

    model: str
    before: ModelStatus
    after: ModelStatus  # same as before unless a repair ran
    repaired: tuple[str, ...] = ()
    repair_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.after.status == "available"


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
        site_caches: Iterable[str | os.PathLike[str]] | None = None,
    ) -> None:
        """site_caches: read-only caches under cache_dir (default: $LYRICSUB_SITE_CACHE); never written."""
        self.cache = Cache.at(cache_dir, state_dir, site_caches)
        self.index = index if isinstance(index, ModelIndex) else load_index(index, state_dir=self.cache.state_dir)
        self.endpoint = endpoint
        self._token = token

    @property
    def cache_dir(self) -> Path:
        return self.cache.cache_dir

    @property
    def state_dir(self) -> Path:
        return self.cache.state_dir

    @property
    def records(self) -> RecordStore:
        return self.cache.records

    @property
    def token(self) -> str | None:
        return env.token(self._token)

    # -- answers from the cache -------------------------------------------------------------------
    def spec(self, name: str) -> ModelSpec:
        return self.index.resolve(name)

    def status(self, name: str | ModelSpec, verify: Verify = "record") -> ModelStatus:
        spec = name if isinstance(name, ModelSpec) else self.spec(name)
        return self.cache.status(spec, verify)

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
        """Statuses of the named models and set with what they require; every model of the index when none named."""
        return [self.status(s, verify) for s in self.index.select(names, set_name, default=None)]

    def list_available_models(self) -> list[str]:
        return [s.name for s in self.list_models() if s.available]

    def get_model_metadata(self, name: str) -> ModelMetadata:
        spec = self.spec(name)
        return ModelMetadata(spec.name, spec.family, spec.repo, spec.revision, spec.branch, spec.license, spec.gated,
                             spec.pinned, spec.description, spec.files, spec.total_size, self.status(spec))

    # -- changes to the cache ---------------------------------------------------------------------
    def remove_model(self, name: str) -> RemovalReport:
        return self.clear_model_cache([name])

    def clear_model_cache(self, names: Iterable[str] | None = None, *, dry_run: bool = False) -> RemovalReport:
        """Remove the index's models (all of them when names is None) through huggingface_hub's own deletion;
        with dry_run, report what would be removed and freed, and remove nothing.

        Models outside the index are never touched: the HF cache is shared with other tools. What a named model
        requires stays: other models may require it too.
        """
        from .cache.removal import remove_models

        specs = [self.spec(n) for n in names] if names is not None else list(self.index.models.values())
        report = remove_models(specs, self.cache.cache_dir, dry_run=dry_run)
        if dry_run:
            return report
        for spec in specs:
            if spec.revision:
                self.cache.records.forget(self.cache.key, spec.repo, spec.revision)
        return report

    def downloader(self, **kwargs: Any) -> ModelDownloader:
        from .download import ModelDownloader

        return ModelDownloader(self, **kwargs)

    def download_model(self, name: str, **kwargs: Any) -> DownloadResult:
        """Fetch a model into the cache (see ModelDownloader.download_model)."""
        force = kwargs.pop("force", False)
        return self.downloader(**kwargs).download_model(name, force=force)

    def verify(self, names: Iterable[str] = (), set_name: str | None = None, *, deep: bool = False, repair: bool = False,
               downloader: ModelDownloader | None = None) -> list[VerifyReport]:
        """Check files against their pins (named models, or every model with something in the cache); repair refetches."""
        mode: Verify = "deep" if deep else "record"
        reports = []
        for spec in self._select(list(names), set_name):
            before = self.status(spec, verify=mode)
            if not repair or before.available or before.status == "unpinned":
                reports.append(VerifyReport(spec.name, before, before))
                continue
            dl = downloader or self.downloader()
            bad = tuple(f.name for f in before.files if f.state not in ("ok", "unpinned"))
            result = dl.download_model(spec.name)
            after = self.status(spec, verify=mode)
            reports.append(VerifyReport(spec.name, before, after, bad if result.success else (), result.error))
        return reports

    def _select(self, names: list[str], set_name: str | None) -> list[ModelSpec]:
        if names or set_name:
            return self.index.select(names, set_name)
        return [s for s in self.index.models.values() if self.status(s, verify="stat").status not in ("missing", "unpinned")]

    # -- loading -----------------------------------------------------------------------------------
    def load(self, name: str, device: str = "auto", **options: Any) -> LoadedModel:
        """The library's own model object (a demucs bag, a whisperX pipeline, ...) from verified files only."""
        from .families import loading

        spec, request, gpu = self._prepare(name, device, options)
        return loading.load(spec.family, request, gpu_bytes=gpu)

    def smoke_test(self, name: str, device: str = "auto", **options: Any) -> SmokeReport:
        """Load, then run once on a short synthetic signal; returns a SmokeReport (device, load and run time)."""
        from .families import loading

        return loading.smoke(self.load(name, device, **options))

    def _prepare(self, name: str, device: str, options: dict[str, Any]) -> tuple[ModelSpec, Any, int]:
        from .cache.views import make_view
        from .families import LoadRequest, family, family_module
        from .families.devices import check_free_memory, resolve_device

        spec = self.spec(name)
        if not spec.pinned:
            raise unpinned_error(spec)
        fam = family(spec.family)
        for key, value in options.items():
            why = fam.option_problem(key, value, from_index=False)
            if why:
                raise UsageError(why, model=spec.name)
        folder = self.get_model_path(spec.name)
        files = {f.name: folder / f.name for f in spec.files}
        merged = {**spec.options, **options}
        module = family_module(spec.family)
        try:
            reads = module.reads(folder, set(files), spec.variant, merged)
            unpinned = [r for r in reads.files if r not in files]
            if unpinned:
                raise LoadError(f"its library would read {', '.join(unpinned[:3])}, which no pin covers")
            required = self._required(spec, reads.repos)
            resolved = resolve_device(device)
        except LoadError as exc:
            raise _named(exc, spec.name) from exc
        weights = sum(f.size or 0 for f in spec.files if f.name in reads.files)
        weights += sum(f.size or 0 for dep in required.values() for f in dep.files)
        scale = getattr(module, "gpu_scale", lambda _o, _d: 1.0)(merged, resolved)
        gpu = fam.gpu.bytes_for(weights, scale)
        check_free_memory(resolved, gpu, model=spec.name)
        view, placed, subs = make_view(spec.name, {r: files[r] for r in reads.files},
                                       {repo: {f.name: self.get_model_path(dep.name) / f.name for f in dep.files}
                                        for repo, dep in required.items()})
        return spec, LoadRequest(spec.name, spec.variant, view, placed, resolved, merged, subs), gpu

    def _required(self, spec: ModelSpec, repos: tuple[str, ...]) -> dict[str, ModelSpec]:
        """Each Hub repo the library would open, as a verified model of this one's `requires`."""
        deps = {dep.repo: dep for dep in self.index.required(spec)}
        out = {}
        for repo in repos:
            dep = deps.get(repo)
            if dep is None:
                raise LoadError(f"its config loads {repo} from the Hub, which none of its `requires` entries pins; "
                                f"add that model to the index and to requires", hint=Hint.lock(spec.name))
            self.get_model_path(dep.name)  # verified, or a clear error naming that model
            out[repo] = dep
        return out


def _named(exc: LoadError, model: str) -> LoadError:
    return exc if exc.model else LoadError(exc.message, model=model, hint=exc.hint)
