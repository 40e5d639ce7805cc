"""faster-whisper (CTranslate2) models through whisperx, from a local snapshot folder.

The VAD is always whisperx's bundled pyannote segmentation asset: the silero
option goes through torch.hub to GitHub, which an offline cache cannot serve.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..index import ModelSpec
from .devices import split_device

OPTIONS = frozenset({"compute_type", "language", "asr_options", "vad_method", "vad_options", "threads", "batch_size"})
SMOKE_SECONDS = 4.0


def default_compute_type(device: str) -> str:
    """int8 on CPU (fast, small), float16 on GPU, as the whisperx docs advise."""
    return "float16" if device.startswith("cuda") else "int8"


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import whisperx.asr  # noqa: F401


def load(spec: ModelSpec, folder: Path, device: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    vad_method = options.get("vad_method") or "pyannote"
    if vad_method != "pyannote":
        raise UsageError(
            f"vad_method '{vad_method}' is not supported: silero loads through torch.hub from GitHub; "
            "use 'pyannote' (whisperx's bundled VAD, no download)",
            model=spec.name,
        )
    import whisperx
    from whisperx.asr import WhisperModel  # faster-whisper's, plus the batched decode whisperx calls

    kind, index = split_device(device)
    compute_type = options.get("compute_type") or default_compute_type(device)
    threads = int(options.get("threads") or min(4, os.cpu_count() or 1))
    # Build the CTranslate2 model ourselves to learn whether it is English-only: whisperx
    # guesses that from a ".en" suffix of the *name*, which a snapshot folder lacks.
    ct2 = WhisperModel(str(folder), device=kind, device_index=index, compute_type=compute_type,
                       cpu_threads=threads, local_files_only=True)
    multilingual = bool(ct2.model.is_multilingual)
    language = options.get("language") or (None if multilingual else "en")
    pipeline = whisperx.load_model(
        str(folder), device=kind, device_index=index, compute_type=compute_type,
        asr_options=options.get("asr_options"), language=language, vad_method="pyannote",
        vad_options=options.get("vad_options"), model=ct2, threads=threads, local_files_only=True,
    )
    extra = {
        "compute_type": compute_type,
        "language": language,
        "multilingual": multilingual,
        "threads": threads,
        "vad": "pyannote (whisperx bundled)",
        "batch_size": int(options.get("batch_size") or 1),
    }
    return pipeline, extra


def smoke(loaded: Any) -> tuple[str, dict[str, Any]]:
    """Transcribe a few seconds of speech-like audio, greedy and at temperature 0 (random
    weights would otherwise spend their time on fallbacks); expect a dict with segments."""
    from . import check
    from ..testing.tiny_models import speech_like

    pipeline = loaded.model
    audio = speech_like(SMOKE_SECONDS, 16000)
    saved = pipeline.options
    pipeline.options = dataclasses.replace(saved, beam_size=1, best_of=1, temperatures=[0.0])
    try:
        result = pipeline.transcribe(audio, batch_size=loaded.extra["batch_size"],
                                     language=loaded.extra["language"] or "en")
    finally:
        pipeline.options = saved
    check(isinstance(result, dict), loaded, f"transcribe returned {type(result).__name__}, not dict")
    segments = result.get("segments")
    check(isinstance(segments, list), loaded, "result has no 'segments' list")
    for seg in segments:
        check(isinstance(seg, dict) and {"text", "start", "end"} <= set(seg), loaded,
              f"segment without text/start/end: {seg!r}")
        check(0.0 <= float(seg["start"]) <= float(seg["end"]) <= SMOKE_SECONDS + 0.5, loaded,
              f"segment times out of range: {seg['start']}..{seg['end']}")
    language = result.get("language")
    summary = f"{len(segments)} segment(s) from {SMOKE_SECONDS:g} s, language {language}"
    return summary, {"segments": len(segments), "language": language, "audio_seconds": SMOKE_SECONDS,
                     "text": " ".join(str(s["text"]).strip() for s in segments)[:200]}
