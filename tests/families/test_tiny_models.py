"""The tiny models: Hub file layout, small, byte-for-byte repeatable, loadable by the real libraries.

Running them through whisperx and friends end to end is tests/test_loaders.py's job;
here each library's own loader just has to accept the files. Also the socket guard.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from lyricsub_hub.testing import tiny_models as tm
from lyricsub_hub.testing.netguard import NetworkBlocked, no_network

MAX_BYTES = 5_000_000


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny model written once for this file, under no_network (the makers must not reach out)."""
    root = tmp_path_factory.mktemp("tiny-made")
    with no_network() as guard:
        folders = {name: maker(root / name) for name, maker in tm.MAKERS.items()}
    assert guard.attempts == []
    return folders


# --------------------------------------------------------------------------- signals

def test_speech_like_is_mono_float32_and_repeatable() -> None:
    a = tm.speech_like(2.0)
    assert a.shape == (32000,) and a.dtype == np.float32
    assert np.array_equal(a, tm.speech_like(2.0))
    assert 0.3 < float(np.max(np.abs(a))) <= 0.5
    assert not np.array_equal(a, tm.speech_like(2.0, seed=1))


def test_speech_like_has_a_syllable_rhythm() -> None:
    """Energy rises and falls about four times a second (what makes VAD call it speech)."""
    sr = 16000
    a = tm.speech_like(2.0, sr).astype(np.float64)
    frames = (a[: len(a) // 400 * 400].reshape(-1, 400) ** 2).mean(axis=1)  # 25 ms frames
    loud = frames > frames.max() * 0.3
    onsets = int(np.sum(loud[1:] & ~loud[:-1])) + int(loud[0])
    assert 7 <= onsets <= 9


def test_whisperx_vad_hears_speech_like_but_not_a_tone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason for the signal: whisperx's bundled VAD must find speech in it, or
    transcription gets no segments at all."""
    monkeypatch.setenv("PYANNOTE_METRICS_ENABLED", "false")
    torch = pytest.importorskip("torch")
    from whisperx.vads.pyannote import load_vad_model

    with no_network() as guard:
        vad = load_vad_model("cpu")
        tone = (0.5 * np.sin(2 * np.pi * 220.0 * np.arange(64000) / 16000)).astype(np.float32)
        scores = {name: vad({"waveform": torch.from_numpy(x)[None], "sample_rate": 16000}).data
                  for name, x in (("speech", tm.speech_like(4.0)), ("tone", tone))}
    assert guard.attempts == []
    assert float(np.nanmean(scores["speech"])) > 0.9
    assert float(np.nanmax(scores["tone"])) < 0.5


def test_speech_like_stereo_for_demucs() -> None:
    x = tm.speech_like_stereo(1.0)
    assert x.shape == (2, 44100) and x.dtype == np.float32
    assert not np.array_equal(x[0], x[1])


# --------------------------------------------------------------------------- layout and size

def test_demucs_layout(made: dict[str, Path]) -> None:
    folder = made["demucs-htdemucs"]
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and "htdemucs.yaml" in names
    sig = next(n for n in names if n.endswith(".safetensors"))[: -len(".safetensors")]
    assert len(sig) == 8 and all(c in "0123456789abcdef" for c in sig)
    assert (folder / "htdemucs.yaml").read_text() == f"models: ['{sig}']\n"


def test_whisper_layout(made: dict[str, Path]) -> None:
    folder = made["whisper-tiny"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.bin", "preprocessor_config.json", "tokenizer.json", "vocabulary.json",
    ]


def test_wav2vec2_layout(made: dict[str, Path]) -> None:
    names = {p.name for p in made["align-en"].iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "tokenizer_config.json"} <= names


@pytest.mark.parametrize("folder", sorted(tm.MAKERS))
def test_each_tiny_model_carries_exactly_the_real_repos_file_names(made: dict[str, Path], folder: str) -> None:
    """What model_index.yaml pins for the repo a tiny model stands for is what the tiny model holds."""
    from lyricsub_hub.index import load_index
    from tests.helpers import ROOT

    spec = load_index(ROOT / "model_index.yaml").models[tm.STANDS_FOR[folder]]
    pinned = sorted(f.name for f in spec.files)
    assert sorted(_digests(made[folder])) == pinned
    assert sorted(tm.REPO_FILES[folder]) == pinned


def test_the_catalog_publishes_each_tiny_model_under_the_repo_it_stands_for() -> None:
    from lyricsub_hub.index import load_index
    from lyricsub_hub.testing.catalog import TINY
    from tests.helpers import ROOT

    index = load_index(ROOT / "model_index.yaml")
    for name, tiny in TINY.items():
        assert tm.STANDS_FOR[tiny.folder] == name
        assert index.models[name].repo == tiny.repo


def test_a_transformers_5_processor_layout_is_normalised(made: dict[str, Path], tmp_path: Path, mocker) -> None:
    """transformers 5 saves the feature extractor inside processor_config.json (4.57 does the same with
    legacy_serialization=False, so the case is built for real here): the tiny model still has the repo's names,
    the same bytes as a legacy save, and loads."""
    from transformers import Wav2Vec2Processor

    real = Wav2Vec2Processor.save_pretrained

    def as_v5(self, directory, **kwargs):  # type: ignore[no-untyped-def]
        return real(self, directory, **{**kwargs, "legacy_serialization": False})

    spy = mocker.patch.object(Wav2Vec2Processor, "save_pretrained", autospec=True, side_effect=as_v5)
    written: list[str] = []
    real_conform = tm.conform
    mocker.patch.object(tm, "conform", side_effect=lambda out, names: (written.extend(sorted(_digests(out))),
                                                                       real_conform(out, names))[1])
    folder = tm.make_wav2vec2(tmp_path / "align-en")
    spy.assert_called_once()
    assert "processor_config.json" in written and "preprocessor_config.json" not in written  # the v5 layout, built
    assert _digests(folder) == _digests(made["align-en"])
    processor = Wav2Vec2Processor.from_pretrained(str(folder), local_files_only=True)
    assert processor.feature_extractor.sampling_rate == 16000


def test_conform_names_what_a_build_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "extra.json").write_text("{}")
    with pytest.raises(RuntimeError, match=r"the real repo has model.bin, which this build did not write"):
        tm.conform(tmp_path, ("config.json", "model.bin"))
    assert not (tmp_path / "extra.json").exists()


def test_vocabulary_txt_and_json_hold_the_same_tokens(made: dict[str, Path], tmp_path: Path) -> None:
    tokens = (made["whisper-tiny.en"] / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert len(tokens) > 256 and "<|endoftext|>" in tokens
    tm._convert_vocabulary(made["whisper-tiny.en"] / "vocabulary.txt", tmp_path / "vocabulary.json")
    import json

    assert json.loads((tmp_path / "vocabulary.json").read_text(encoding="utf-8")) == tokens


def test_diarization_layout_matches_community_1(made: dict[str, Path]) -> None:
    folder = made["diarize-community-1"]
    assert sorted(_digests(folder)) == [
        "config.yaml", "embedding/pytorch_model.bin", "plda/plda.npz", "plda/xvec_transform.npz",
        "segmentation/pytorch_model.bin",
    ]
    assert "$model/segmentation" in (folder / "config.yaml").read_text()


@pytest.mark.parametrize("name", sorted(tm.MAKERS))
def test_small(made: dict[str, Path], name: str) -> None:
    assert 0 < _size(made[name]) < MAX_BYTES


@pytest.mark.parametrize("name", sorted(tm.MAKERS))
def test_same_bytes_every_run(made: dict[str, Path], name: str, tmp_path: Path) -> None:
    again = tm.MAKERS[name](tmp_path / name)
    assert _digests(again) == _digests(made[name])


# --------------------------------------------------------------------------- the real libraries accept them

def test_demucs_loads_with_demucs_hf(made: dict[str, Path]) -> None:
    from demucs.hf import load_safetensors_model
    from demucs.htdemucs import HTDemucs

    weights = next(made["demucs-htdemucs"].glob("*.safetensors"))
    model = load_safetensors_model(weights)
    assert isinstance(model, HTDemucs)
    assert list(model.sources) == list(tm.DEMUCS_SOURCES) and model.samplerate == 44100
    assert float(model.segment) == pytest.approx(7.8)


def test_whisper_tokenizer_layout(made: dict[str, Path]) -> None:
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    hf = tokenizers.Tokenizer.from_file(str(made["whisper-tiny"] / "tokenizer.json"))
    tok = Tokenizer(hf, True, task="transcribe", language="en")
    assert tok.no_timestamps + 1 == tok.timestamp_begin == hf.token_to_id("<|0.00|>")
    assert hf.token_to_id("<|30.00|>") == tok.timestamp_begin + 1500
    assert hf.token_to_id("") is not None  # CTranslate2 >= 4.7 reads this as "multilingual"
    space = hf.token_to_id("Ġ")
    assert space not in tok.non_speech_tokens  # " -" and " '" have their own merges
    assert tok.decode(tok.encode(" the cat")) == " the cat"


@pytest.mark.parametrize(("name", "multilingual"), [("whisper-tiny", True), ("whisper-tiny.en", False)])
def test_whisper_loads_with_ctranslate2(made: dict[str, Path], name: str, multilingual: bool) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(made[name]), device="cpu", compute_type="int8", local_files_only=True)
    assert model.model.is_multilingual is multilingual
    assert model.feature_extractor.mel_filters.shape[0] == 80
    assert model.supported_languages == (list(model.supported_languages) if multilingual else ["en"])
    assert "en" in model.supported_languages


def test_wav2vec2_loads_with_transformers(made: dict[str, Path]) -> None:
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    folder = str(made["align-en"])
    processor = Wav2Vec2Processor.from_pretrained(folder, local_files_only=True)
    model = Wav2Vec2ForCTC.from_pretrained(folder, local_files_only=True)
    assert processor.tokenizer.get_vocab() == {t: i for i, t in enumerate(tm.WAV2VEC2_EN_VOCAB)}
    assert model.config.vocab_size == 32


def test_diarization_loads_with_pyannote(made: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYANNOTE_METRICS_ENABLED", "false")  # else pyannote reports the load to its telemetry
    from pyannote.audio import Pipeline
    from pyannote.audio.pipelines import SpeakerDiarization

    with no_network() as guard:
        pipeline = Pipeline.from_pretrained(str(made["diarize-community-1"]))
    assert isinstance(pipeline, SpeakerDiarization)
    assert guard.attempts == []


def test_cli_writes_into_family_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tm.main([str(tmp_path), "--only", "align-en"]) == 0
    assert (tmp_path / "align-en" / "model.safetensors").is_file()
    assert "align-en" in capsys.readouterr().out


# --------------------------------------------------------------------------- socket guard

def test_no_network_refuses_and_counts() -> None:
    with no_network() as guard:
        with pytest.raises(NetworkBlocked):
            socket.create_connection(("192.0.2.1", 443), timeout=1)
        with pytest.raises(OSError):
            socket.getaddrinfo("huggingface.co", 443)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("198.51.100.7", 80))
            with pytest.raises(ConnectionRefusedError):
                s.connect_ex(("198.51.100.7", 81))
        finally:
            s.close()
    assert [host for host, _ in guard.attempts] == ["192.0.2.1", "huggingface.co", "198.51.100.7", "198.51.100.7"]


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        try:
            conn, _ = server.accept()
            conn.sendall(b"ok")
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_no_network_allows_loopback_by_default() -> None:
    server, port = _echo_server()
    try:
        with no_network() as guard:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                assert conn.recv(2) == b"ok"
        assert guard.attempts == [] and ("127.0.0.1", port) in guard.allowed
    finally:
        server.close()


def test_no_network_can_refuse_loopback_too() -> None:
    with no_network(loopback=False) as guard:
        with pytest.raises(NetworkBlocked):
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        with pytest.raises(NetworkBlocked):
            socket.getaddrinfo("localhost", 80)
    assert len(guard.attempts) == 2


def test_no_network_restores_socket_functions() -> None:
    before = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)
    with pytest.raises(RuntimeError):
        with no_network():
            raise RuntimeError("boom")
    assert (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo) == before
