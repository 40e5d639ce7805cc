"""wav2vec2 CTC alignment models through whisperx, from a verified transformers snapshot.

whisperx.align also needs nltk's punkt_tab and would nltk.download() it; the
loader writes it first (see punkt.ensure_punkt_tab), into the state folder unless
the caller names another NLTK data folder (the index may not: no paths from it).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.env import resolve_state_dir
from ..errors import LoadError
from .base import LoadedModel, LoadRequest, Reads
from .devices import torch_placement
from .punkt import ensure_punkt_tab, use_nltk_data

SMOKE_SECONDS = 2.0
_REQUIRED = ("config.json", "preprocessor_config.json", "vocab.json")
_OPTIONAL = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def align_language(variant: str, options: Mapping[str, Any]) -> str:
    """options["language"], else the variant: align:en -> "en"."""
    return str(options.get("language") or variant)


def reads(folder: Path, names: set[str], variant: str, options: Mapping[str, Any]) -> Reads:
    """transformers' processor and model files: config, preprocessor config, vocab and one weights file."""
    missing = [n for n in _REQUIRED if n not in names]
    weights = next((w for w in _WEIGHTS if w in names), None)
    if missing or weights is None:
        need = missing + ([] if weights else ["model.safetensors or pytorch_model.bin"])
        raise LoadError(f"an alignment model needs pinned {', '.join(need)}")
    return Reads((*_REQUIRED, weights, *(n for n in _OPTIONAL if n in names)))


def prepare_punkt(language: str, nltk_data: Path | None) -> Path | None:
    """Make nltk find punkt_tab for this language without a download; return the data root used."""
    import nltk.data
    from whisperx.utils import PUNKT_LANGUAGES

    punkt = PUNKT_LANGUAGES.get(language, "english")  # whisperx falls back to English too
    if nltk_data is None:
        try:
            nltk.data.find(f"tokenizers/punkt_tab/{punkt}/")
            return None  # already installed where nltk looks
        except LookupError:
            nltk_data = resolve_state_dir() / "nltk_data"
    root = ensure_punkt_tab(Path(nltk_data), punkt)
    use_nltk_data(root)
    return root


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import whisperx.alignment  # noqa: F401


def load(req: LoadRequest) -> tuple[Any, dict[str, Any]]:
    import whisperx

    language = align_language(req.variant, req.options)
    nltk_data = req.options.get("nltk_data")
    nltk_root = prepare_punkt(language, Path(nltk_data) if nltk_data else None)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # whisperx prints its load errors
            model, metadata = whisperx.load_align_model(language, req.device, model_name=str(req.folder),
                                                        model_cache_only=True)
    except Exception as exc:
        detail = printed.getvalue().strip().splitlines()
        if detail and not str(exc).lower().count("cuda"):
            raise LoadError(f"alignment model did not load: {detail[0]}", model=req.name) from exc
        raise
    extra = {
        "language": language,
        "type": metadata.get("type"),
        "dictionary_size": len(metadata.get("dictionary", {})),
        "nltk_data": str(nltk_root) if nltk_root else None,
    }
    return (model, metadata), extra


def placement(pair: Any) -> str:
    return torch_placement(pair[0])


def _smoke_text(dictionary: dict[str, int]) -> str:
    """Two short words the model can spell: English if it can, else letters from its vocabulary."""
    if all(ch in dictionary for ch in "helloworld"):
        return "hello world"
    letters = [ch for ch in dictionary if len(ch) == 1 and ch.isalpha()][:8]
    if len(letters) < 2:
        letters = [ch for ch in dictionary if len(ch) == 1 and ch not in "|<>"][:8]
    half = max(1, len(letters) // 2)
    return "".join(letters[:half]) + " " + "".join(letters[half:])


def smoke(loaded: LoadedModel) -> tuple[str, dict[str, Any]]:
    """Align one two-word segment to 2 s of speech-like audio; expect words with timestamps."""
    import whisperx

    from .loading import check
    from .signals import speech_like

    model, metadata = loaded.model
    text = _smoke_text(metadata["dictionary"])
    segments = [{"text": text, "start": 0.0, "end": SMOKE_SECONDS}]
    result = whisperx.align(segments, model, metadata, speech_like(SMOKE_SECONDS, 16000), loaded.device,
                            return_char_alignments=False, print_progress=False)
    check(isinstance(result, dict) and isinstance(result.get("segments"), list), loaded, "align returned no 'segments' list")
    check(len(result["segments"]) >= 1, loaded, "align returned no segment")
    words = [w for seg in result["segments"] for w in seg.get("words", [])]
    check(len(words) >= 1 and all("word" in w for w in words), loaded, "aligned segment has no words")
    timed = [w for w in words if "start" in w and "end" in w]
    check(len(timed) >= 1, loaded, "no word got timestamps")
    for w in timed:
        check(0.0 <= w["start"] <= w["end"] <= SMOKE_SECONDS + 0.01, loaded, f"word timestamps out of range: {w!r}")
    summary = f"{len(words)} word(s) aligned, {len(timed)} with timestamps"
    return summary, {"text": text, "words": len(words), "timed_words": len(timed),
                     "segments": len(result["segments"]), "word_segments": len(result.get("word_segments", []))}
