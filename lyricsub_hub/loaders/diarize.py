"""pyannote speaker diarization pipelines from a local snapshot folder.

community-1 is self-contained (its config.yaml names ``$model/segmentation``,
``$model/embedding``, ``$model/plda``, all inside the folder). Older pipelines
such as speaker-diarization-3.1 name other Hub repos; those load only in offline
mode, where pyannote resolves them from the cache instead of downloading.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import LoadError
from ..index import ModelSpec

OPTIONS = frozenset({"num_speakers", "min_speakers", "max_speakers"})
SMOKE_SECONDS = 6.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?$")


def hub_references(config: Any) -> list[str]:
    """Values in config.yaml that look like Hub repo ids rather than ``$model/...`` or paths."""
    found: list[str] = []
    if isinstance(config, dict):
        for value in config.values():
            found += hub_references(value)
    elif isinstance(config, list):
        for value in config:
            found += hub_references(value)
    elif isinstance(config, str) and _HUB_ID.match(config) and not config.startswith("$model/"):
        if not os.path.exists(config) and "." not in config.split("/", 1)[0]:
            found.append(config)
    return found


def _offline_mode() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import pyannote.audio  # noqa: F401


def load(spec: ModelSpec, folder: Path, device: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import yaml

    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise LoadError(f"no config.yaml in {folder}", model=spec.name)
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    pipeline_section = config.get("pipeline", {}) if isinstance(config, dict) else {}
    refs = hub_references(pipeline_section.get("params", {}))
    if refs and not _offline_mode():
        raise LoadError(
            f"config.yaml loads other Hub repos ({', '.join(refs)}), which pyannote would download; "
            "set HF_HUB_OFFLINE=1 so it takes them from the cache",
            model=spec.name,
        )
    import torch
    from pyannote.audio import Pipeline

    token = os.environ.get("HF_TOKEN") or None  # only read by pyannote for gated Hub refs
    pipeline = Pipeline.from_pretrained(str(folder), token=token)
    if pipeline is None:
        raise LoadError(f"pyannote could not build a pipeline from {config_file}", model=spec.name)
    pipeline.to(torch.device(device))
    extra = {
        "pipeline": pipeline_section.get("name", type(pipeline).__name__),
        "hub_references": refs,
        "speakers": {k: options[k] for k in ("num_speakers", "min_speakers", "max_speakers") if k in options},
    }
    return pipeline, extra


def smoke(loaded: Any) -> tuple[str, dict[str, Any]]:
    """Diarize a few seconds of speech-like audio held in memory; expect an Annotation."""
    import torch
    from pyannote.core import Annotation

    from . import check
    from ..testing.tiny_models import speech_like

    audio = speech_like(SMOKE_SECONDS, 16000)
    output = loaded.model({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000},
                          **loaded.extra.get("speakers", {}))
    annotation = getattr(output, "speaker_diarization", output)  # pyannote 4: DiarizeOutput
    check(isinstance(annotation, Annotation), loaded, f"diarization returned {type(output).__name__}, not an Annotation")
    turns = list(annotation.itertracks(yield_label=True))
    for segment, _, _ in turns:
        check(0.0 <= segment.start <= segment.end <= SMOKE_SECONDS + 0.5, loaded, f"turn out of range: {segment}")
    speakers = sorted(annotation.labels())
    summary = f"{len(speakers)} speaker(s), {len(turns)} turn(s) in {SMOKE_SECONDS:g} s"
    return summary, {"speakers": speakers, "turns": len(turns), "output": type(output).__name__}
