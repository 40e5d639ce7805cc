"""Load a verified local snapshot with the library that owns it, and prove it runs.

``load_model`` hands back exactly what the library returns (a demucs BagOfModels,
a whisperx FasterWhisperPipeline, whisperx's (model, metadata) alignment pair, a
pyannote Pipeline), so callers keep using the library's own API. ``smoke`` runs
it once on a short signal made in memory and checks shapes and types, not words.

Nothing here downloads: each loader gets a folder the cache layer has already
found and verified. Importing this package stays cheap; torch and the speech
libraries are imported by the family module that needs them, when it is called.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LoadError, LyricsubError, UsageError
from ..index import FAMILIES, ModelSpec
from .devices import resolve_device

__all__ = ["LoadedModel", "SmokeReport", "load_model", "smoke", "resolve_device"]


@dataclass(frozen=True)
class LoadedModel:
    """A model object from its own library, with where and how fast it was loaded."""

    name: str
    family: str
    device: str
    model: Any = field(repr=False, compare=False)
    load_seconds: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SmokeReport:
    """One run on a synthetic signal: timings, a one-line summary and what was checked."""

    name: str
    family: str
    device: str
    load_seconds: float
    run_seconds: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)


def _family_module(family: str) -> Any:
    if family not in FAMILIES:
        raise UsageError(f"unknown model family '{family}' (known: {', '.join(FAMILIES)})")
    return importlib.import_module(f"{__name__}.{family}")


def load_model(spec: ModelSpec, snapshot: Path, device: str = "auto", **options: Any) -> LoadedModel:
    """Load ``spec`` from the local ``snapshot`` folder on ``device`` (auto, cpu, cuda, cuda:N).

    ``options`` override ``spec.options``; each family accepts its own (see its
    ``OPTIONS``), an unknown one is a UsageError. Any library failure becomes a
    LoadError naming the model. ``load_seconds`` excludes importing the library
    (seconds on a cold start); that is ``extra["import_seconds"]``.
    """
    module = _family_module(spec.family)
    unknown = sorted(set(options) - set(module.OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown option(s) {', '.join(unknown)} for {spec.family} (known: {', '.join(sorted(module.OPTIONS))})",
            model=spec.name,
        )
    resolved = resolve_device(device)
    folder = Path(snapshot)
    if not folder.is_dir():
        raise LoadError(f"snapshot folder {folder} does not exist", model=spec.name)
    merged = {**{k: v for k, v in spec.options.items() if k in module.OPTIONS}, **options}
    from .offline import close_side_doors

    close_side_doors()  # pyannote telemetry would otherwise phone home on model init
    started = time.perf_counter()
    try:
        module.import_libraries()
        imported = time.perf_counter()
        model, extra = module.load(spec, folder, resolved, merged)
    except LyricsubError:
        raise
    except Exception as exc:  # the libraries raise anything from OSError to KeyError
        raise LoadError(f"{spec.family} loader failed: {_one_line(exc)}", model=spec.name) from exc
    seconds = time.perf_counter() - imported
    extra = {**extra, "import_seconds": round(imported - started, 3)}
    return LoadedModel(spec.name, spec.family, resolved, model, max(seconds, 1e-9), extra)


def smoke(loaded: LoadedModel) -> SmokeReport:
    """Run the model once on a short synthetic signal; a failed run or check raises LoadError."""
    module = _family_module(loaded.family)
    started = time.perf_counter()
    try:
        summary, details = module.smoke(loaded)
    except LyricsubError:
        raise
    except Exception as exc:
        raise LoadError(f"{loaded.family} smoke run failed: {_one_line(exc)}", model=loaded.name) from exc
    seconds = time.perf_counter() - started
    return SmokeReport(loaded.name, loaded.family, loaded.device, loaded.load_seconds, seconds, summary, details)


def check(condition: bool, loaded: LoadedModel, message: str) -> None:
    """Fail a smoke check with a LoadError that names the model."""
    if not condition:
        raise LoadError(f"smoke check failed: {message}", model=loaded.name)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
