"""faster-whisper (CTranslate2) models through whisperx, from a verified snapshot.

The VAD is always whisperx's bundled pyannote segmentation asset (the silero
option goes through torch.hub to GitHub, and `model_fp` would load any file).
A snapshot without tokenizer.json is refused: faster-whisper would fetch one
from the Hub by itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Fix, LoadError
from .base import LoadedModel, LoadRequest, Reads
from .devices import split_device

SMOKE_SECONDS = 4.0
_BYTES = {"float32": 4.0, "int16": 2.0, "float16": 2.0, "bfloat16": 2.0, "int8": 1.0, "int8_float16": 1.0,
          "int8_float32": 1.0, "int8_bfloat16": 1.0}


def default_compute_type(device: str) -> str:
    """int8 on CPU (fast, small), float16 on GPU, as the whisperx docs advise; the option overrides both."""
    return "float16" if device.startswith("cuda") else "int8"


def gpu_scale(options: Mapping[str, Any], device: str) -> float:
    """GPU memory relative to model.bin (stored as float16) for the compute type that will be used."""
    compute = str(options.get("compute_type") or default_compute_type(device))
    return _BYTES.get(compute, 2.0) / 2.0


def reads(folder: Path, names: set[str], variant: str, options: Mapping[str, Any]) -> Reads:
    """model.bin, tokenizer.json and the vocabulary are required; config and preprocessor config when pinned."""
    if "tokenizer.json" not in names:
        raise LoadError("no pinned tokenizer.json: faster-whisper would fetch a tokenizer from the Hub by itself; "
                        "add tokenizer.json to the index entry")
    vocab = [n for n in sorted(names) if n.startswith("vocabulary.") and "/" not in n]
    if "model.bin" not in names or not vocab:
        raise LoadError("a CTranslate2 whisper model needs model.bin and vocabulary.json or vocabulary.txt")
    optional = [n for n in ("config.json", "preprocessor_config.json") if n in names]
    return Reads(("model.bin", "tokenizer.json", *vocab, *optional))


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import whisperx.asr  # noqa: F401


def load(req: LoadRequest) -> tuple[Any, dict[str, Any]]:
    import whisperx
    from whisperx.asr import WhisperModel  # faster-whisper's, plus the batched decode whisperx calls

    options = req.options
    kind, index = split_device(req.device)
    if kind == "cuda":
        _check_ctranslate2_sees(req.device, index, req.name)
    compute_type = str(options.get("compute_type") or default_compute_type(req.device))
    threads = int(options.get("threads") or min(4, os.cpu_count() or 1))
    # Build the CTranslate2 model ourselves to learn whether it is English-only: whisperx
    # guesses that from a ".en" suffix of the *name*, which a snapshot folder lacks.
    ct2 = WhisperModel(str(req.folder), device=kind, device_index=index, compute_type=compute_type,
                       cpu_threads=threads, local_files_only=True)
    multilingual = bool(ct2.model.is_multilingual)
    language = options.get("language") or (None if multilingual else "en")
    pipeline = whisperx.load_model(
        str(req.folder), device=kind, device_index=index, compute_type=compute_type,
        asr_options=dict(options["asr_options"]) if options.get("asr_options") else None, language=language,
        vad_method="pyannote", vad_options=dict(options["vad_options"]) if options.get("vad_options") else None,
        model=ct2, threads=threads, local_files_only=True,
    )
    extra = {
        "compute_type": compute_type,
        "language": language,
        "multilingual": multilingual,
        "threads": threads,
        "vad": "pyannote (whisperx bundled)",
        "batch_size": int(options.get("batch_size") or 1),
        "device_index": index,
    }
    return pipeline, extra


def _check_ctranslate2_sees(device: str, index: int, model: str) -> None:
    """torch seeing a GPU does not mean CTranslate2 does (its CUDA runtime is its own, linked in; its cuBLAS was
    checked by cudalibs before this): say so in one line instead of faster-whisper's "CUDA failed with error ..."."""
    import ctranslate2

    count = int(ctranslate2.get_cuda_device_count())
    if index >= count:
        raise LoadError(f"{device} was requested but CTranslate2 (faster-whisper's engine) sees {count} GPU(s): its "
                        f"own CUDA runtime cannot use this driver (nvidia-smi shows it; {Fix('doctor')} names the "
                        "stack); use --device cpu", model=model)


def placement(pipeline: Any) -> str:
    """CTranslate2 knows where its weights are (the pipeline's own .device always says cpu)."""
    ct2 = getattr(getattr(pipeline, "model", None), "model", None)
    kind = str(getattr(ct2, "device", "cpu"))
    if kind != "cuda":
        return "cpu"
    indexes = getattr(ct2, "device_index", [0]) or [0]
    return f"cuda:{indexes[0] if isinstance(indexes, (list, tuple)) else indexes}"


def smoke(loaded: LoadedModel) -> tuple[str, dict[str, Any]]:
    """Transcribe a few seconds of speech-like audio, greedy and at temperature 0 (random
    weights would otherwise spend their time on fallbacks); expect a dict with segments."""
    from .loading import check
    from .signals import speech_like

    pipeline = loaded.model
    audio = speech_like(SMOKE_SECONDS, 16000)
    saved = pipeline.options
    pipeline.options = dataclasses.replace(saved, beam_size=1, best_of=1, temperatures=[0.0])
    try:
        result = pipeline.transcribe(audio, batch_size=loaded.extra["batch_size"], language=loaded.extra["language"] or "en")
    finally:
        pipeline.options = saved
    check(isinstance(result, dict), loaded, f"transcribe returned {type(result).__name__}, not dict")
    segments = result.get("segments")
    check(isinstance(segments, list), loaded, "result has no 'segments' list")
    for seg in segments:
        check(isinstance(seg, dict) and {"text", "start", "end"} <= set(seg), loaded, f"segment without text/start/end: {seg!r}")
        check(0.0 <= float(seg["start"]) <= float(seg["end"]) <= SMOKE_SECONDS + 0.5, loaded,
              f"segment times out of range: {seg['start']}..{seg['end']}")
    language = result.get("language")
    summary = f"{len(segments)} segment(s) from {SMOKE_SECONDS:g} s, language {language}"
    return summary, {"segments": len(segments), "language": language, "audio_seconds": SMOKE_SECONDS,
                     "text": " ".join(str(s["text"]).strip() for s in segments)[:200]}
