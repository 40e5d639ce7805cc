"""The model families, one record each: the library, the files it reads, the options it takes, its GPU needs.

The index checks names and option values against these records, pinning picks
files by their patterns, and the manager loads through the family's module
(imported only when a model is loaded, so importing this stays cheap).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .base import Family, GpuNeed, LoadedModel, LoadRequest, OptionRule, Reads, SmokeReport, word

__all__ = ["FAMILIES", "Family", "GpuNeed", "LoadRequest", "LoadedModel", "OptionRule", "Reads", "SmokeReport",
           "family", "family_module", "library_missing"]

_GB = 10**9
_PROBABILITY = OptionRule("float", 0.0, 1.0)
_LANGUAGE = OptionRule("str", pattern=r"[a-z]{2,3}")
_SPEAKERS = OptionRule("int", 1, 100)

_ASR = {
    "beam_size": OptionRule("int", 1, 32), "best_of": OptionRule("int", 1, 32), "patience": OptionRule("float", 0, 10),
    "length_penalty": OptionRule("float", 0, 10), "repetition_penalty": OptionRule("float", 0, 10),
    "no_repeat_ngram_size": OptionRule("int", 0, 100), "temperatures": OptionRule("floats", 0.0, 2.0),
    "compression_ratio_threshold": OptionRule("float", 0, 100), "log_prob_threshold": OptionRule("float", -100, 0),
    "no_speech_threshold": _PROBABILITY, "condition_on_previous_text": OptionRule("bool"),
    "prompt_reset_on_temperature": OptionRule("float", 0, 2), "initial_prompt": OptionRule("str", max_len=2000),
    "suppress_blank": OptionRule("bool"), "without_timestamps": OptionRule("bool"),
    "max_initial_timestamp": OptionRule("float", 0, 30), "word_timestamps": OptionRule("bool"),
    "suppress_numerals": OptionRule("bool"), "max_new_tokens": OptionRule("int", 1, 448),
}
_COMPUTE = ("default", "auto", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16",
            "bfloat16", "float32")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        "demucs", "demucs", "demucs", ("*.yaml", "*.safetensors"),
        {"name": word()},  # the bag name when it differs from the variant: a plain name, never a path
        GpuNeed(factor=1.0, overhead=int(1.5 * _GB)),
    ),
    Family(
        "whisper", "whisperx", "whisper",
        ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"),
        {"compute_type": OptionRule("choice", choices=_COMPUTE), "language": _LANGUAGE,
         "asr_options": OptionRule("mapping", keys=_ASR), "vad_method": OptionRule("choice", choices=("pyannote",)),
         "vad_options": OptionRule("mapping", keys={"vad_onset": _PROBABILITY, "vad_offset": _PROBABILITY,
                                                    "chunk_size": OptionRule("int", 1, 30)}),
         "threads": OptionRule("int", 1, 64), "batch_size": OptionRule("int", 1, 64)},
        GpuNeed(factor=1.0, overhead=1 * _GB, engines=("torch", "ctranslate2")),  # model.bin is float16; see whisper.gpu_scale for other compute types
    ),
    Family(
        "align", "whisperx", "align",
        ("config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json", "special_tokens_map.json",
         "model.safetensors"),
        {"language": _LANGUAGE, "nltk_data": OptionRule("str", max_len=4096, from_index=False)},
        GpuNeed(factor=1.0, overhead=int(0.5 * _GB)),
    ),
    Family(
        "diarize", "pyannote.audio", "diarize",
        ("config.yaml", "*/pytorch_model.bin", "*/*.npz", "pytorch_model.bin", "*.npz"),
        {"num_speakers": _SPEAKERS, "min_speakers": _SPEAKERS, "max_speakers": _SPEAKERS},
        GpuNeed(factor=1.0, overhead=int(0.5 * _GB)),
    ),
)}


def family(name: str) -> Family:
    return FAMILIES[name]


def family_module(name: str) -> ModuleType:
    """The module with the family's reads/load/smoke/placement (imports no heavy library by itself)."""
    return importlib.import_module(f"{__name__}.{FAMILIES[name].module}")


def library_missing(name: str) -> str | None:
    """The module a family needs, when it is not installed (a light install without torch)."""
    lib = FAMILIES[name].library
    try:
        return lib if importlib.util.find_spec(lib.split(".")[0]) is None else None
    except ValueError:
        return lib
