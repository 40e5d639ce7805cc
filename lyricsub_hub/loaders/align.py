"""wav2vec2 CTC alignment models through whisperx, from a local transformers folder.

whisperx.align also needs nltk's punkt_tab and would nltk.download() it; the
loader makes sure it is on disk first (see offline.ensure_punkt_tab).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from ..errors import LoadError
from ..index import ModelSpec
from ..paths import resolve_state_dir
from .offline import close_side_doors, ensure_punkt_tab

OPTIONS = frozenset({"language", "nltk_data"})
SMOKE_SECONDS = 2.0


def align_language(spec: ModelSpec, options: dict[str, Any]) -> str:
    """options["language"], else the variant: align:en -> "en"."""
    return str(options.get("language") or spec.variant)


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
    close_side_doors(root)
    return root


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import whisperx.alignment  # noqa: F401


def load(spec: ModelSpec, folder: Path, device: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import whisperx

    language = align_language(spec, options)
    nltk_root = prepare_punkt(language, options.get("nltk_data"))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # whisperx prints its load errors
            model, metadata = whisperx.load_align_model(language, device, model_name=str(folder),
                                                        model_cache_only=True)
    except Exception as exc:
        detail = printed.getvalue().strip().splitlines()
        raise LoadError(f"alignment model did not load: {detail[0] if detail else exc}", model=spec.name) from exc
    extra = {
        "language": language,
        "type": metadata.get("type"),
        "dictionary_size": len(metadata.get("dictionary", {})),
        "nltk_data": str(nltk_root) if nltk_root else None,
    }
    return (model, metadata), extra


def _smoke_text(dictionary: dict[str, int]) -> str:
    """Two short words the model can spell: English if it can, else letters from its vocabulary."""
    if all(ch in dictionary for ch in "helloworld"):
        return "hello world"
    letters = [ch for ch in dictionary if len(ch) == 1 and ch.isalpha()][:8]
    if len(letters) < 2:
        letters = [ch for ch in dictionary if len(ch) == 1 and ch not in "|<>"][:8]
    half = max(1, len(letters) // 2)
    return "".join(letters[:half]) + " " + "".join(letters[half:])


def smoke(loaded: Any) -> tuple[str, dict[str, Any]]:
    """Align one two-word segment to 2 s of speech-like audio; expect words with timestamps."""
    import whisperx

    from . import check
    from ..testing.tiny_models import speech_like

    model, metadata = loaded.model
    text = _smoke_text(metadata["dictionary"])
    segments = [{"text": text, "start": 0.0, "end": SMOKE_SECONDS}]
    result = whisperx.align(segments, model, metadata, speech_like(SMOKE_SECONDS, 16000), loaded.device,
                            return_char_alignments=False, print_progress=False)
    check(isinstance(result, dict) and isinstance(result.get("segments"), list), loaded,
          "align returned no 'segments' list")
    check(len(result["segments"]) >= 1, loaded, "align returned no segment")
    words = [w for seg in result["segments"] for w in seg.get("words", [])]
    check(len(words) >= 1 and all("word" in w for w in words), loaded, "aligned segment has no words")
    timed = [w for w in words if "start" in w and "end" in w]
    check(len(timed) >= 1, loaded, "no word got timestamps")
    for w in timed:
        check(0.0 <= w["start"] <= w["end"] <= SMOKE_SECONDS + 0.01, loaded,
              f"word timestamps out of range: {w!r}")
    summary = f"{len(words)} word(s) aligned, {len(timed)} with timestamps"
    return summary, {"text": text, "words": len(words), "timed_words": len(timed),
                     "segments": len(result["segments"]), "word_segments": len(result.get("word_segments", []))}
