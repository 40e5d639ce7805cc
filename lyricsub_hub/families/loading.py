"""Load a model through its family, from verified paths only, and prove it runs.

``load`` hands back exactly what the library returns (a demucs BagOfModels, a
whisperx FasterWhisperPipeline, whisperx's (model, metadata) alignment pair, a
pyannote Pipeline), so callers keep using the library's own API. ``smoke`` runs
it once on a short signal made in memory and checks shapes and types, not words.

Nothing here downloads or reads the cache: the layer above verified every file
the family said its library reads, and passes their paths in the LoadRequest.
"""

from __future__ import annotations

import time

from ..core.env import close_side_doors
from ..core.text import one_line
from ..errors import LoadError, LyricsubError
from . import family_module
from .base import LoadedModel, LoadRequest, SmokeReport
from .cudalibs import require
from .devices import is_out_of_memory, out_of_memory_error


def load(family: str, request: LoadRequest, *, gpu_bytes: int = 0) -> LoadedModel:
    """Load on request.device; load_seconds excludes importing the library (that is extra["import_seconds"])."""
    module = family_module(family)
    close_side_doors()  # pyannote telemetry would otherwise phone home on model init
    started = time.perf_counter()
    try:
        module.import_libraries()
        if request.device.startswith("cuda"):
            require(family, request.device, model=request.name)  # refuses, or preloads CUDA libraries a wheel holds
        imported = time.perf_counter()
        model, extra = module.load(request)
        where = module.placement(model)
    except LyricsubError:
        raise
    except Exception as exc:  # the libraries raise anything from OSError to KeyError
        if request.device.startswith("cuda") and is_out_of_memory(exc):
            raise out_of_memory_error(exc, request.device, gpu_bytes, model=request.name) from exc
        raise LoadError(f"{family} loader failed: {_one_line(exc)}", model=request.name) from exc
    seconds = time.perf_counter() - imported
    extra = {**extra, "import_seconds": round(imported - started, 3)}
    return LoadedModel(request.name, family, where, model, max(seconds, 1e-9), extra, requested=request.device)


def smoke(loaded: LoadedModel) -> SmokeReport:
    """Run the model once on a short synthetic signal; a failed run or check raises LoadError."""
    module = family_module(loaded.family)
    started = time.perf_counter()
    try:
        summary, details = module.smoke(loaded)
    except LyricsubError:
        raise
    except Exception as exc:
        if loaded.device.startswith("cuda") and is_out_of_memory(exc):
            raise out_of_memory_error(exc, loaded.device, 0, model=loaded.name, during="running") from exc
        raise LoadError(f"{loaded.family} smoke run failed: {_one_line(exc)}", model=loaded.name) from exc
    seconds = time.perf_counter() - started
    return SmokeReport(loaded.name, loaded.family, loaded.device, loaded.load_seconds, seconds, summary, details)


def check(condition: bool, loaded: LoadedModel, message: str) -> None:
    """Fail a smoke check with a LoadError that names the model."""
    if not condition:
        raise LoadError(f"smoke check failed: {message}", model=loaded.name)


def _one_line(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}").rstrip(": ")
