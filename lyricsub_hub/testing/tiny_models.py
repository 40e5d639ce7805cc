"""Tiny but real models, written as the Hub lays them out, for tests without a network.

Each ``make_*`` writes the files that the real library downloads for one model
(same names, same formats), with a few random but seeded weights, so that the
real loaders (demucs, faster-whisper/CTranslate2, transformers, pyannote) load
and run them in seconds. Outputs are meaningless; shapes and file layout are not.
Heavy libraries are imported inside the functions only.

    python -m lyricsub_hub.testing.tiny_models OUTDIR   # writes all of them
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20261123
DEMUCS_SOURCES = ("drums", "bass", "other", "vocals")

# OpenAI Whisper's language tokens, in token order (v1/v2: 99 languages; v3 adds "yue").
WHISPER_LANGUAGES = ["en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su"]

# The character vocabulary of facebook/wav2vec2-base-960h (CTC, upper-case English).
WAV2VEC2_EN_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M", "W", "C", "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z"]


from ..families.signals import speech_like, speech_like_stereo  # noqa: E402,F401  (re-exported for tests)

# The real repos' file names, as the shipped model_index.yaml pins them (tests/families/test_tiny_models.py compares):
# each tiny model carries exactly these, whichever transformers, CTranslate2 or torch version built it.
STANDS_FOR = {"demucs-htdemucs": "demucs:htdemucs", "whisper-tiny": "whisper:large-v3", "whisper-tiny.en": "whisper:tiny.en",
              "align-en": "align:en", "diarize-community-1": "diarize:community-1"}
DEMUCS_SIGNATURES = {"htdemucs": "955717e8"}  # the weights file adefossez/HTDemucs's htdemucs.yaml names
REPO_FILES: dict[str, tuple[str, ...]] = {
    "demucs-htdemucs": ("htdemucs.yaml", "955717e8.safetensors"),
    "whisper-tiny": ("config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json"),
    "whisper-tiny.en": ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"),
    "align-en": ("config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json",
                 "special_tokens_map.json", "model.safetensors"),
    "diarize-community-1": ("config.yaml", "segmentation/pytorch_model.bin", "embedding/pytorch_model.bin",
                            "plda/plda.npz", "plda/xvec_transform.npz"),
}
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


def conform(out: Path, names: tuple[str, ...]) -> Path:
    """Give a built folder exactly the real repo's file names, whatever version of a library wrote it.

    transformers 5 saves a processor's feature extractor inside processor_config.json (the repos keep
    preprocessor_config.json) and may fold special_tokens_map.json into tokenizer_config.json; CTranslate2 writes
    vocabulary.json where older repos keep vocabulary.txt (it reads either). Anything else a library adds is
    removed; a name still missing afterwards is an error here, not a confusing load failure later.
    """
    expected = set(names)
    processor, preprocessor = out / "processor_config.json", out / "preprocessor_config.json"
    if "preprocessor_config.json" in expected and not preprocessor.exists() and processor.exists():
        data = json.loads(processor.read_text(encoding="utf-8"))
        extractor = data.get("feature_extractor")
        if isinstance(extractor, dict):
            fields = {k: v for k, v in extractor.items() if not k.startswith("_")}
            if data.get("processor_class"):
                fields["processor_class"] = data["processor_class"]
            _write_json(preprocessor, dict(sorted(fields.items())))
    tokenizer_config, special = out / "tokenizer_config.json", out / "special_tokens_map.json"
    if "special_tokens_map.json" in expected and not special.exists() and tokenizer_config.exists():
        config = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        tokens = {k: v.get("content") if isinstance(v, dict) else v for k, v in config.items() if k in _SPECIAL_TOKENS}
        _write_json(special, {k: v for k, v in sorted(tokens.items()) if isinstance(v, str)})
    for want, have in (("vocabulary.txt", "vocabulary.json"), ("vocabulary.json", "vocabulary.txt")):
        if want in expected and not (out / want).exists() and (out / have).exists():
            _convert_vocabulary(out / have, out / want)
    for path in sorted(out.rglob("*"), reverse=True):
        name = path.relative_to(out).as_posix()
        if path.is_file() and name not in expected:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    missing = sorted(n for n in expected if not (out / n).is_file())
    if missing:
        raise RuntimeError(f"{out.name}: the real repo has {', '.join(missing)}, which this build did not write")
    return out


def _convert_vocabulary(source: Path, target: Path) -> None:
    """CTranslate2's vocabulary.json (a JSON list) <-> vocabulary.txt (one token a line), same tokens, same order."""
    if source.suffix == ".json":
        tokens = json.loads(source.read_text(encoding="utf-8"))
        if any("\n" in t or "\r" in t for t in tokens):
            raise RuntimeError(f"{source.name}: a token holds a line break; it cannot be written as {target.name}")
        target.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    else:
        _write_json(target, source.read_text(encoding="utf-8").splitlines())


# --------------------------------------------------------------------------- helpers

def _seed_everything() -> None:
    import torch

    torch.manual_seed(SEED)
    np.random.seed(SEED % (2**32))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _quiet_imports() -> Iterator[None]:
    """pyannote warns at import that torchcodec cannot decode files; these helpers never decode files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _fresh_dir(out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- demucs

def _encode_json(value: Any) -> Any:
    """Inverse of demucs.hf._decode_json: fractions become tagged dicts."""
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {key: _encode_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_json(item) for item in value]
    return value


def _sort_safetensors_metadata(path: Path) -> None:
    """Rewrite the header with sorted metadata keys: safetensors stores them in hash order,
    which differs from run to run. Tensor bytes and offsets stay as they are."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size:])


def demucs_kwargs() -> dict[str, Any]:
    """Init arguments of the tiny HTDemucs: real architecture, 8 channels, 1 transformer layer."""
    return {
        "sources": list(DEMUCS_SOURCES),
        "audio_channels": 2,
        "samplerate": 44100,
        "segment": Fraction(39, 5),  # like the real htdemucs (7.8 s)
        "channels": 8,
        "t_layers": 1,
        "t_heads": 2,
        "dconv_comp": 4,
    }


def make_demucs(out: Path, name: str = "htdemucs") -> Path:
    """Write ``{name}.yaml`` + ``{sig}.safetensors`` as in adefossez/HTDemucs (demucs 4.1 hf format)."""
    from demucs.htdemucs import HTDemucs
    from safetensors.torch import save_file

    out = _fresh_dir(out)
    _seed_everything()
    kwargs = demucs_kwargs()
    model = HTDemucs(**kwargs)
    encoded_kwargs = json.dumps(_encode_json(kwargs), sort_keys=True)
    sig = DEMUCS_SIGNATURES.get(name) or hashlib.sha256(f"tiny-{name}-{SEED}-{encoded_kwargs}".encode()).hexdigest()[:8]
    tensors = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    metadata = {"klass": "demucs.htdemucs.HTDemucs", "args": "[]", "kwargs": encoded_kwargs}
    path = out / f"{sig}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    _sort_safetensors_metadata(path)
    (out / f"{name}.yaml").write_text(f"models: ['{sig}']\n", encoding="utf-8")
    return conform(out, REPO_FILES["demucs-htdemucs"]) if name == "htdemucs" else out


# --------------------------------------------------------------------------- whisper

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, in GPT-2 token order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, (chr(c) for c in cs)))


# faster-whisper suppresses the first token of " -" and " '" (and encodes " ♪"): give each
# a merge, or the bare space token is what gets suppressed and decoding goes wrong.
_WHISPER_MERGES = (("Ġ", "-"), ("Ġ", "'"), ("Ġ", "â"), ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"))


def whisper_special_tokens(languages: tuple[str, ...] | list[str] = WHISPER_LANGUAGES) -> list[str]:
    """Special tokens after the text vocabulary, in OpenAI order (without timestamps)."""
    return (
        ["<|endoftext|>", "<|startoftranscript|>"]
        + [f"<|{code}|>" for code in languages]
        + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    )


def whisper_tokenizer_json(languages: tuple[str, ...] | list[str] = WHISPER_LANGUAGES, *,
                           multilingual: bool = True) -> dict[str, Any]:
    """A byte-level BPE tokenizer.json with Whisper's layout and a tiny merge table.

    A multilingual text vocabulary ends with an empty-string token, as OpenAI's
    does: CTranslate2 >= 4.7 reads that token as "multilingual". English-only
    (".en") vocabularies lack it.
    """
    byte_chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {ch: i for i, ch in enumerate(byte_chars)}
    for a, b in _WHISPER_MERGES:
        vocab[a + b] = len(vocab)
    if multilingual:
        vocab[""] = len(vocab)
    added = []
    specials = whisper_special_tokens(languages) + [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for content in specials:
        token_id = len(vocab) + len(added)
        added.append({
            "id": token_id, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": not content[2:3].isdigit(),
        })
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", **byte_level, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": [f"{a} {b}" for a, b in _WHISPER_MERGES],
        },
    }


WHISPER_PREPROCESSOR = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def _write_whisper_hf(hf_dir: Path, multilingual: bool) -> None:
    """A random transformers WhisperForConditionalGeneration (d_model 64, 2+2 layers)."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    tokenizer = whisper_tokenizer_json(multilingual=multilingual)
    _write_json(hf_dir / "tokenizer.json", tokenizer)
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    vocab_size = len(tokenizer["model"]["vocab"]) + len(tokenizer["added_tokens"])
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    space = tokenizer["model"]["vocab"]["Ġ"]
    _write_json(hf_dir / "tokenizer_config.json", {
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024, "errors": "replace",
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "add_prefix_space": False,
    })
    _write_json(hf_dir / "preprocessor_config.json", WHISPER_PREPROCESSOR)
    _seed_everything()
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=80, d_model=64,
        encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=448, begin_suppress_tokens=[space, eot], suppress_tokens=[],
        is_multilingual=multilingual, no_timestamps_token_id=ids["<|notimestamps|>"],
        alignment_heads=[[1, 0], [1, 1]],
        **({"lang_to_id": {f"<|{code}|>": ids[f"<|{code}|>"] for code in WHISPER_LANGUAGES},
            "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}}
           if multilingual else {}),
    )
    model.save_pretrained(str(hf_dir), safe_serialization=True)


def make_whisper(out: Path, *, multilingual: bool = True) -> Path:
    """Write a CTranslate2 faster-whisper folder, like Systran/faster-whisper-tiny
    (or, with ``multilingual=False``, like faster-whisper-tiny.en).

    Files: config.json, model.bin, tokenizer.json, vocabulary.json, preprocessor_config.json.
    """
    import ctranslate2.converters

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="tiny-whisper-hf-") as tmp:
        hf_dir = Path(tmp)
        _write_whisper_hf(hf_dir, multilingual)
        converter = ctranslate2.converters.TransformersConverter(
            str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
        )
        converter.convert(str(out), force=True)
    return conform(out, REPO_FILES["whisper-tiny" if multilingual else "whisper-tiny.en"])


# --------------------------------------------------------------------------- wav2vec2

def make_wav2vec2(out: Path) -> Path:
    """Write a transformers Wav2Vec2ForCTC + processor folder with the 32-character English vocab.

    Real convolutional front end (7 layers, strides 5,2,2,2,2,2,2: 20 ms frames), 32 channels.
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    out = _fresh_dir(out)
    vocab = {token: i for i, token in enumerate(WAV2VEC2_EN_VOCAB)}
    with tempfile.TemporaryDirectory(prefix="tiny-w2v2-") as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        _write_json(vocab_file, vocab)
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file), unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
            word_delimiter_token="|", do_lower_case=False,
        )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False,
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out))
    _seed_everything()
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="group", do_stable_layer_norm=False, pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], ctc_loss_reduction="sum",
    )
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    return conform(out, REPO_FILES["align-en"])


# --------------------------------------------------------------------------- pyannote

_CANONICAL = "lyricsub_hub.testing.tiny_models"
_TINY_EMBEDDING_CLASS: type | None = None


def _tiny_wespeaker_class() -> type:
    """WeSpeaker ResNet embedding (pyannote's own code) with 4 channels and 1 block per stage.

    The real community-1 embedding (ResNet34, 32 channels) is 26 MB; this one keeps
    the same front end (kaldi fbank), pooling and interface at a few hundred KB.
    pyannote rebuilds it from the checkpoint's module/class names, hence the
    module-level ``TinyWeSpeakerResNet`` attribute (created lazily, see __getattr__).
    """
    global _TINY_EMBEDDING_CLASS
    if __name__ != _CANONICAL:  # run as __main__: the checkpoint must name the importable module
        return importlib.import_module(_CANONICAL)._tiny_wespeaker_class()
    if _TINY_EMBEDDING_CLASS is not None:
        return _TINY_EMBEDDING_CLASS
    with _quiet_imports():
        from pyannote.audio.models.embedding.wespeaker import BaseWeSpeakerResNet
        from pyannote.audio.models.embedding.wespeaker.resnet import BasicBlock, ResNet

    class TinyWeSpeakerResNet(BaseWeSpeakerResNet):
        def __init__(self, sample_rate: int = 16000, num_channels: int = 1, num_mel_bins: int = 40,
                     frame_length: int = 25, frame_shift: int = 10, dither: float = 0.0,
                     window_type: str = "hamming", use_energy: bool = False, task: Any = None) -> None:
            super().__init__(sample_rate=sample_rate, num_channels=num_channels, num_mel_bins=num_mel_bins,
                             frame_length=frame_length, frame_shift=frame_shift, dither=dither,
                             window_type=window_type, use_energy=use_energy, task=task)
            self.resnet = ResNet(BasicBlock, [1, 1, 1, 1], m_channels=4, feat_dim=num_mel_bins,
                                 embed_dim=32, pooling_func="TSTP", two_emb_layer=False)

    TinyWeSpeakerResNet.__module__ = _CANONICAL
    TinyWeSpeakerResNet.__qualname__ = "TinyWeSpeakerResNet"
    _TINY_EMBEDDING_CLASS = TinyWeSpeakerResNet
    return TinyWeSpeakerResNet


def __getattr__(name: str) -> Any:  # PEP 562: pyannote looks the class up by name
    if name == "TinyWeSpeakerResNet":
        return _tiny_wespeaker_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _save_pyannote_checkpoint(model: Any, path: Path) -> None:
    """Save what Model.from_pretrained reads: a Lightning-style checkpoint dict."""
    import lightning
    import torch
    from pyannote.audio import __version__ as pyannote_version

    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "hyper_parameters": dict(model.hparams),
        "pyannote.audio": {
            "versions": {"torch": torch.__version__.split("+")[0], "pyannote.audio": pyannote_version},
            "architecture": {"module": type(model).__module__, "class": type(model).__name__},
            "specifications": model.specifications,
        },
    }
    torch.save(checkpoint, str(path))


DIARIZATION_CONFIG = """\
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: VBxClustering
    segmentation: $model/segmentation
    segmentation_batch_size: 32
    embedding: $model/embedding
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    plda: $model/plda

params:
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""


def _write_plda(plda_dir: Path, embedding_dim: int, lda_dim: int) -> None:
    """xvec_transform.npz (mean1, mean2, lda) and plda.npz (mu, tr, psi), well conditioned."""
    rng = np.random.default_rng(SEED)
    plda_dir.mkdir(parents=True, exist_ok=True)
    lda = np.linalg.qr(rng.standard_normal((embedding_dim, embedding_dim)))[0][:, :lda_dim]
    np.savez(plda_dir / "xvec_transform.npz",
             mean1=(0.01 * rng.standard_normal(embedding_dim)), mean2=(0.01 * rng.standard_normal(lda_dim)),
             lda=lda)
    tr = np.eye(lda_dim) + 0.05 * rng.standard_normal((lda_dim, lda_dim))
    psi = np.sort(rng.uniform(0.5, 5.0, lda_dim))[::-1].copy()
    np.savez(plda_dir / "plda.npz", mu=np.zeros(lda_dim), tr=tr, psi=psi)


def make_diarization(out: Path) -> Path:
    """Write a pyannote pipeline folder laid out like pyannote/speaker-diarization-community-1.

    config.yaml (community-1's own), segmentation/pytorch_model.bin (PyanNet, powerset,
    3 speakers, tiny LSTM), embedding/pytorch_model.bin (tiny WeSpeaker ResNet),
    plda/plda.npz + plda/xvec_transform.npz. Loading the embedding needs this
    module importable (its class lives here).
    """
    with _quiet_imports():
        from pyannote.audio.core.task import Problem, Resolution, Specifications
        from pyannote.audio.models.segmentation import PyanNet

    out = _fresh_dir(out)
    (out / "config.yaml").write_text(DIARIZATION_CONFIG, encoding="utf-8")
    _seed_everything()
    segmentation = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True, "monolithic": True, "dropout": 0.0},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=5.0,
        min_duration=None, warm_up=(0.0, 0.0), classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2, permutation_invariant=True,
    )
    segmentation.build()
    _save_pyannote_checkpoint(segmentation.eval(), out / "segmentation" / "pytorch_model.bin")
    embedding = _tiny_wespeaker_class()()
    embedding.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0,
    )
    _save_pyannote_checkpoint(embedding.eval(), out / "embedding" / "pytorch_model.bin")
    _write_plda(out / "plda", embedding_dim=32, lda_dim=16)
    return conform(out, REPO_FILES["diarize-community-1"])


# --------------------------------------------------------------------------- CLI

MAKERS: dict[str, Callable[[Path], Path]] = {
    "demucs-htdemucs": make_demucs,
    "whisper-tiny": make_whisper,
    "whisper-tiny.en": functools.partial(make_whisper, multilingual=False),
    "align-en": make_wav2vec2,
    "diarize-community-1": make_diarization,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lyricsub_hub.testing.tiny_models",
                                     description="Write tiny, real, random-weight models into OUTDIR/<family-name>/.")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--only", action="append", choices=sorted(MAKERS), help="write only these (repeatable)")
    args = parser.parse_args(argv)
    import time

    for folder, maker in MAKERS.items():
        if args.only and folder not in args.only:
            continue
        target = args.outdir / folder
        if target.exists():
            shutil.rmtree(target)
        started = time.perf_counter()
        maker(target)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"{folder:22s} {size / 1e6:6.2f} MB  {time.perf_counter() - started:5.1f} s  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
