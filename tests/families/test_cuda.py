"""Every CUDA decision of the loaders, on a machine without a GPU.

The hardware seam is faked (torch.cuda and ctranslate2's device count, see test_devices.fake_gpus); the
libraries get real tiny models, and each library call that would touch the GPU is spied on at the library
boundary: the device, index and compute type it was handed are recorded, then the call goes on for real on
the CPU. So the rest of every load (and smoke run) is real, and the placement reported is where the weights
really ended up: the CPU here, whatever string was asked for.
"""

from __future__ import annotations

import logging
import signal
import warnings
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
import torch

from lyricsub_hub.core.text import human_size
from lyricsub_hub.errors import EXIT_LOAD, EXIT_USAGE, GpuMemoryError, GpuStackError, LoadError
from lyricsub_hub.families import FAMILIES, LoadedModel, family_module
from lyricsub_hub.families.loading import load, smoke
from lyricsub_hub.families.whisper import default_compute_type, gpu_scale
from lyricsub_hub.manager import ModelManager
from lyricsub_hub.testing import tiny_models as tm
from lyricsub_hub.testing.catalog import TINY, TOKEN, publish_index
from lyricsub_hub.testing.hub import TestHub
from tests.families.test_devices import GB, fake_gpus, one_line
from tests.families.test_loaders import NAMES, request

pytestmark = pytest.mark.torch

FOLDERS = {"demucs": "demucs-htdemucs", "whisper": "whisper-tiny", "align": "align-en", "diarize": "diarize-community-1"}
CPU = torch.device("cpu")
OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 1 has a total capacity of 79.19 GiB "
                             "of which 1.06 GiB is free.")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four tiny real models, in the folders the test Hub catalog publishes from."""
    root = tmp_path_factory.mktemp("tiny-cuda")
    for folder in FOLDERS.values():
        tm.MAKERS[folder](root / folder)
    return root


@pytest.fixture(scope="module")
def nltk_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nltk_data")


def folder_request(tiny: Path, family: str, device: str, nltk_root: Path | None = None, **options: Any) -> Any:
    if family == "align" and nltk_root is not None:
        options.setdefault("nltk_data", str(nltk_root))
    return request(family, tiny / FOLDERS[family], device, **options)


# --------------------------------------------------------------------------- spies at the library boundary

def spy_to(mocker: Any, cls: Any, *, raises: BaseException | None = None) -> MagicMock:
    """cls.to records the device it is handed, then moves to the CPU (or raises, like a full GPU would)."""
    original = cls.to

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        if raises is not None:
            raise raises
        return original(self, CPU)

    return mocker.patch.object(cls, "to", autospec=True, side_effect=to)


def moved_to(spy: MagicMock) -> list[torch.device]:
    """Each device a spied .to was handed, as a torch.device (a string or a torch.device mean the same)."""
    out = []
    for call in spy.call_args_list:
        arg = call.args[1] if len(call.args) > 1 else call.kwargs["device"]
        out.append(torch.device(arg))
    return out


def spy_whisper(mocker: Any, *, raises: BaseException | None = None) -> tuple[MagicMock, MagicMock]:
    """faster-whisper's WhisperModel (as whisperx.asr names it) and whisperx.load_model record what they are
    handed, then build on the CPU."""
    import whisperx
    import whisperx.asr

    real_model, real_load = whisperx.asr.WhisperModel, whisperx.load_model
    on_cpu = {"device": "cpu", "device_index": 0, "compute_type": "int8"}

    def build(*args: Any, **kwargs: Any) -> Any:
        if raises is not None:
            raise raises
        return real_model(*args, **{**kwargs, **on_cpu})

    model = mocker.patch.object(whisperx.asr, "WhisperModel", side_effect=build)
    pipeline = mocker.patch.object(whisperx, "load_model", side_effect=lambda *a, **k: real_load(*a, **{**k, **on_cpu}))
    return model, pipeline


def spies(mocker: Any, family: str) -> list[MagicMock]:
    """The calls through which each family hands its library the device."""
    if family == "demucs":
        from demucs.apply import BagOfModels

        return [spy_to(mocker, BagOfModels)]
    if family == "align":
        from transformers import Wav2Vec2ForCTC

        return [spy_to(mocker, Wav2Vec2ForCTC)]
    if family == "diarize":
        from pyannote.audio import Pipeline

        return [spy_to(mocker, Pipeline)]
    return list(spy_whisper(mocker))


# --------------------------------------------------------------------------- what each loader hands its library

@pytest.mark.parametrize("family", ["demucs", "align", "diarize"])
@pytest.mark.parametrize(("count", "device"), [(2, "cuda:0"), (2, "cuda:1"), (4, "cuda:3")])
def test_torch_models_are_moved_to_the_asked_gpu(mocker: Any, tiny: Path, nltk_root: Path, family: str, count: int,
                                                 device: str) -> None:
    fake_gpus(mocker, count)
    (spy,) = spies(mocker, family)
    loaded = load(family, folder_request(tiny, family, device, nltk_root))
    assert moved_to(spy) == [torch.device(device)]
    assert (loaded.device, loaded.requested) == ("cpu", device)  # where the weights are, not what was asked


def test_pyannote_is_handed_a_torch_device(mocker: Any, tiny: Path) -> None:
    """Pipeline.to refuses a string; the argument itself must be a torch.device."""
    from pyannote.audio import Pipeline

    fake_gpus(mocker, 2)
    spy = spy_to(mocker, Pipeline)
    load("diarize", folder_request(tiny, "diarize", "cuda:1"))
    arg = spy.call_args.args[1]
    assert isinstance(arg, torch.device) and arg == torch.device("cuda", 1)


def test_a_lone_pyannote_model_is_moved_to_the_asked_gpu(mocker: Any, tiny: Path, tmp_path: Path) -> None:
    from pyannote.audio import Model

    (tmp_path / "pytorch_model.bin").write_bytes((tiny / FOLDERS["diarize"] / "segmentation" / "pytorch_model.bin").read_bytes())
    fake_gpus(mocker, 2)
    spy = spy_to(mocker, Model)
    loaded = load("diarize", request("diarize", tmp_path, "cuda:1", name="diarize:segmentation"))
    assert moved_to(spy)[-1] == torch.device("cuda", 1)  # pyannote itself moves it to the CPU first
    assert (loaded.extra["kind"], loaded.device) == ("model", "cpu")


@pytest.mark.parametrize(("count", "device", "index"), [(2, "cuda:0", 0), (2, "cuda:1", 1), (8, "cuda:7", 7)])
def test_whisper_gets_cuda_and_the_index_and_float16(mocker: Any, tiny: Path, count: int, device: str, index: int) -> None:
    fake_gpus(mocker, count)
    model, pipeline = spy_whisper(mocker)
    loaded = load("whisper", folder_request(tiny, "whisper", device))
    for spy in (model, pipeline):
        spy.assert_called_once()
        handed = spy.call_args.kwargs
        assert (handed["device"], handed["device_index"], handed["compute_type"]) == ("cuda", index, "float16")
    assert pipeline.call_args.kwargs["model"] is not None  # whisperx reuses our model, builds no second one
    assert (loaded.extra["compute_type"], loaded.extra["device_index"]) == ("float16", index)
    assert (loaded.device, loaded.requested) == ("cpu", device)


@pytest.mark.parametrize(("device", "compute_type"), [("cuda:1", "int8_float16"), ("cuda:0", "float32"), ("cpu", "float32")])
def test_whisper_compute_type_can_be_overridden(mocker: Any, tiny: Path, device: str, compute_type: str) -> None:
    fake_gpus(mocker, 2)
    model, pipeline = spy_whisper(mocker)
    loaded = load("whisper", folder_request(tiny, "whisper", device, compute_type=compute_type))
    assert model.call_args.kwargs["compute_type"] == pipeline.call_args.kwargs["compute_type"] == compute_type
    assert loaded.extra["compute_type"] == compute_type


def test_whisper_on_cpu_defaults_to_int8(mocker: Any, tiny: Path) -> None:
    import whisperx.asr

    fake_gpus(mocker, 2)  # a GPU being there changes nothing when cpu is asked for
    spy = mocker.spy(whisperx.asr, "WhisperModel")
    loaded = load("whisper", folder_request(tiny, "whisper", "cpu"))
    assert (spy.call_args.kwargs["device"], spy.call_args.kwargs["compute_type"]) == ("cpu", "int8")
    assert loaded.model.model.model.compute_type == "int8_float32"  # what CTranslate2 itself made of int8 on a CPU
    assert loaded.device == "cpu"


@pytest.mark.parametrize(("device", "options", "default", "scale"), [
    ("cuda:0", {}, "float16", 1.0), ("cuda:3", {}, "float16", 1.0), ("cpu", {}, "int8", 0.5),
    ("cuda:0", {"compute_type": "int8"}, "float16", 0.5), ("cpu", {"compute_type": "float32"}, "int8", 2.0),
    ("cuda:1", {"compute_type": "int8_float16"}, "float16", 0.5), ("cuda:0", {"compute_type": "bfloat16"}, "float16", 1.0),
])
def test_default_compute_type_and_gpu_scale(device: str, options: dict[str, str], default: str, scale: float) -> None:
    """The default follows the device alone; the memory scale follows the compute type used (the option wins)."""
    assert default_compute_type(device) == default
    assert gpu_scale(options, device) == scale


def test_whisper_when_ctranslate2_sees_no_gpu_is_one_line(mocker: Any, tiny: Path) -> None:
    """torch sees two GPUs, CTranslate2 none (its CUDA libraries are missing): refused before faster-whisper."""
    fake_gpus(mocker, 2, ct2_count=0)
    model, _ = spy_whisper(mocker)
    with pytest.raises(LoadError) as info:
        load("whisper", folder_request(tiny, "whisper", "cuda:0"))
    assert not isinstance(info.value, GpuMemoryError) and info.value.exit_code == EXIT_LOAD
    assert one_line(info.value).startswith(f"{NAMES['whisper']}: cuda:0 was requested but CTranslate2")
    assert "use --device cpu" in str(info.value)
    model.assert_not_called()


def test_whisper_index_past_what_ctranslate2_sees(mocker: Any, tiny: Path) -> None:
    fake_gpus(mocker, 2, ct2_count=1)
    model, _ = spy_whisper(mocker)
    with pytest.raises(LoadError, match="sees 1 GPU"):
        load("whisper", folder_request(tiny, "whisper", "cuda:1"))
    model.assert_not_called()


@pytest.mark.parametrize(("ct2", "device", "expected"), [
    ({"device": "cuda", "device_index": [1]}, "cuda:1", "cuda:1"),
    ({"device": "cuda", "device_index": [0, 1]}, "cuda:0", "cuda:0"),
    ({"device": "cuda", "device_index": 2}, "cuda:2", "cuda:2"),
    ({"device": "cpu", "device_index": [0]}, "cpu", "cpu"),
])
def test_whisper_placement_is_what_ctranslate2_says(ct2: dict[str, Any], device: str, expected: str) -> None:
    """The whisperx pipeline's own .device always says cpu; CTranslate2's model knows."""
    from types import SimpleNamespace

    pipeline = SimpleNamespace(device=CPU, model=SimpleNamespace(model=SimpleNamespace(**ct2)))
    assert family_module("whisper").placement(pipeline) == expected


# --------------------------------------------------------------------------- the smoke report says where it ran

@pytest.mark.parametrize("family", sorted(FOLDERS))
def test_smoke_report_says_where_the_model_is_not_what_was_asked(mocker: Any, tiny: Path, nltk_root: Path,
                                                                 family: str) -> None:
    fake_gpus(mocker, 2)
    spies(mocker, family)
    loaded = load(family, folder_request(tiny, family, "cuda:1", nltk_root))
    report = smoke(loaded)
    assert loaded.requested == "cuda:1"
    assert loaded.device == report.device == "cpu"


def test_smoke_runs_on_the_device_the_weights_are_on(mocker: Any, tiny: Path) -> None:
    import demucs.apply

    fake_gpus(mocker, 2)
    spies(mocker, "demucs")
    loaded = load("demucs", folder_request(tiny, "demucs", "cuda:1"))
    spy = mocker.spy(demucs.apply, "apply_model")
    smoke(loaded)
    assert spy.call_args_list[0].kwargs["device"] == "cpu"  # not "cuda:1", where the bag is not


# --------------------------------------------------------------------------- an OOM raised inside a library

@pytest.mark.parametrize("family", sorted(FOLDERS))
def test_an_oom_while_loading_is_one_line(mocker: Any, tiny: Path, nltk_root: Path, family: str) -> None:
    fake_gpus(mocker, 2, free=GB)
    cause: BaseException = OOM
    if family == "whisper":
        cause = RuntimeError("CUDA failed with error out of memory")  # CTranslate2's text
        spy_whisper(mocker, raises=cause)
    else:
        cls = {"demucs": "demucs.apply.BagOfModels", "align": "transformers.Wav2Vec2ForCTC",
               "diarize": "pyannote.audio.Pipeline"}[family]
        module, _, name = cls.rpartition(".")
        spy_to(mocker, getattr(__import__(module, fromlist=[name]), name), raises=cause)
    with pytest.raises(GpuMemoryError) as info:
        load(family, folder_request(tiny, family, "cuda:1", nltk_root), gpu_bytes=3 * GB)
    assert info.value.exit_code == EXIT_LOAD
    assert info.value.model == NAMES[family]
    assert info.value.message == ("ran out of GPU memory while loading (needs about 3.0 GB of GPU memory, cuda:1 has "
                                  "1.0 GB free); use --device cpu or a smaller model")
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is cause  # the library's own error stays chained (shown with --debug)


def test_an_oom_while_running_is_one_line(mocker: Any, tiny: Path) -> None:
    import dataclasses

    import demucs.apply

    fake_gpus(mocker, 1, free=GB)
    loaded: LoadedModel = load("demucs", folder_request(tiny, "demucs", "cpu"))
    on_gpu = dataclasses.replace(loaded, device="cuda:0")  # as if the bag were there
    mocker.patch.object(demucs.apply, "apply_model", side_effect=OOM)
    with pytest.raises(GpuMemoryError) as info:
        smoke(on_gpu)
    assert info.value.message == ("ran out of GPU memory while running (cuda:0 has 1.0 GB free); "
                                  "use --device cpu or a smaller model")


def test_another_cuda_failure_stays_a_load_error(mocker: Any, tiny: Path) -> None:
    fake_gpus(mocker, 2)
    spy_whisper(mocker, raises=RuntimeError("CUDA failed with error no CUDA-capable device is detected"))
    with pytest.raises(LoadError) as info:
        load("whisper", folder_request(tiny, "whisper", "cuda:0"))
    assert not isinstance(info.value, GpuMemoryError)
    assert one_line(info.value).endswith("whisper loader failed: RuntimeError: CUDA failed with error no CUDA-capable "
                                         "device is detected")


def test_running_out_of_memory_on_the_cpu_is_not_a_gpu_error(mocker: Any, tiny: Path) -> None:
    from demucs.apply import BagOfModels

    spy_to(mocker, BagOfModels, raises=RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate "
                                                    "out of memory"))
    with pytest.raises(LoadError) as info:
        load("demucs", folder_request(tiny, "demucs", "cpu"))
    assert not isinstance(info.value, GpuMemoryError)


# --------------------------------------------------------------------------- the manager: free memory before a load

@pytest.fixture(scope="module")
def warmed(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """demucs and whisper warmed from the loopback test Hub into a cache of this module (the real download path)."""
    root = tmp_path_factory.mktemp("cuda-cache")
    models = {name: TINY[name] for name in ("demucs:htdemucs", "whisper:large-v3")}
    with TestHub() as hub:
        index = publish_index(hub, tiny, root / "model_index.yaml", models=models)
        online = ModelManager(index, root / "hub", state_dir=root / "state", endpoint=hub.endpoint, token=TOKEN)
        results = online.downloader().download_models(list(models))
    assert all(r.success for r in results), [r.error for r in results]
    return {"index": index, "cache": root / "hub", "state": root / "state"}


def manager(warmed: dict[str, Path]) -> ModelManager:
    return ModelManager(warmed["index"], warmed["cache"], state_dir=warmed["state"])


def needed(mgr: ModelManager, name: str, scale: float = 1.0) -> int:
    """The family's figure for this model: its weights (the files its library reads) times a factor, plus overhead."""
    spec = mgr.spec(name)
    folder = mgr.get_model_path(name)
    reads = family_module(spec.family).reads(folder, {f.name for f in spec.files}, spec.variant, spec.options)
    weights = sum(f.size or 0 for f in spec.files if f.name in reads.files)
    return FAMILIES[spec.family].gpu.bytes_for(weights, scale)


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("auto", 0), ("cuda:1", 1)])
def test_a_model_that_cannot_fit_is_refused_before_its_library_is_touched(mocker: Any, warmed: dict[str, Path],
                                                                          device: str, index: int) -> None:
    import demucs.hf

    gpus = fake_gpus(mocker, 2, free=GB)
    reader = mocker.spy(demucs.hf, "load_safetensors_model")
    mgr = manager(warmed)
    figure = needed(mgr, "demucs:htdemucs")
    assert GB < figure < 2 * GB  # 1.5 GB of working memory plus the tiny weights
    with pytest.raises(GpuMemoryError) as info:
        mgr.load("demucs:htdemucs", device=device)
    assert info.value.exit_code == EXIT_LOAD
    assert info.value.message == (f"needs about {human_size(figure)} of GPU memory, cuda:{index} has 1.0 GB free; "
                                  "use --device cpu or a smaller model")
    assert one_line(info.value)
    gpus.mem_get_info.assert_called_once_with(index)
    reader.assert_not_called()


def test_a_model_that_fits_is_checked_then_loaded(mocker: Any, warmed: dict[str, Path]) -> None:
    from demucs.apply import BagOfModels

    mgr = manager(warmed)
    gpus = fake_gpus(mocker, 2, free=needed(mgr, "demucs:htdemucs"))  # exactly enough
    spy = spy_to(mocker, BagOfModels)
    loaded = mgr.load("demucs:htdemucs", device="cuda:1")
    gpus.mem_get_info.assert_called_once_with(1)
    assert moved_to(spy) == [torch.device("cuda", 1)]
    assert (loaded.requested, loaded.device) == ("cuda:1", "cpu")


def test_whisper_figure_follows_the_compute_type(mocker: Any, warmed: dict[str, Path]) -> None:
    """model.bin is float16: int8 needs half the weight memory, so it fits where float16 (the default) does not."""
    mgr = manager(warmed)
    full, half = needed(mgr, "whisper:large-v3"), needed(mgr, "whisper:large-v3", 0.5)
    assert half < full
    fake_gpus(mocker, 1, free=full - 1)
    model, _ = spy_whisper(mocker)
    with pytest.raises(GpuMemoryError, match=f"needs about {human_size(full)}"):
        mgr.load("whisper:large-v3", device="cuda")
    model.assert_not_called()
    loaded = mgr.load("whisper:large-v3", device="cuda", compute_type="int8")
    assert model.call_args.kwargs["compute_type"] == "int8"
    assert loaded.extra["compute_type"] == "int8"


def test_an_oom_through_the_manager_names_the_family_figure(mocker: Any, warmed: dict[str, Path]) -> None:
    from demucs.apply import BagOfModels

    mgr = manager(warmed)
    fake_gpus(mocker, 1, free=80 * GB)  # the check passes; the library then runs out anyway
    spy_to(mocker, BagOfModels, raises=OOM)
    with pytest.raises(GpuMemoryError) as info:
        mgr.smoke_test("demucs:htdemucs", device="cuda")
    figure = human_size(needed(mgr, "demucs:htdemucs"))
    assert info.value.message == (f"ran out of GPU memory while loading (needs about {figure} of GPU memory, cuda:0 has "
                                  "80.0 GB free); use --device cpu or a smaller model")


# --------------------------------------------------------------------------- once through the command line

def run_main(argv: list[str]) -> int:
    """lyricsub_hub.cli.main in this process, putting back what it sets process-wide (log level, warning
    filters, the SIGTERM handler)."""
    from lyricsub_hub.cli import main

    disabled, sigterm = logging.root.manager.disable, signal.getsignal(signal.SIGTERM)
    try:
        with warnings.catch_warnings():
            return main(argv)
    finally:
        logging.disable(disabled)
        signal.signal(signal.SIGTERM, sigterm)


def cli_args(warmed: dict[str, Path], *args: str) -> list[str]:
    return [*args, "--index", str(warmed["index"]), "--cache-dir", str(warmed["cache"])]


def test_cli_load_on_a_gpu_with_too_little_memory(mocker: Any, warmed: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LYRICSUB_STATE_DIR", str(warmed["state"]))
    fake_gpus(mocker, 1, free=100 * 10**6)
    code = run_main(cli_args(warmed, "load", "demucs:htdemucs", "--device", "cuda"))
    out, err = capsys.readouterr()
    assert code == EXIT_LOAD == 5
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("lyricsub-hub: demucs:htdemucs: needs about 1.5 GB of GPU memory, cuda:0 has 100.0 MB free; "
                          "use --device cpu or a smaller model")


def test_cli_load_on_a_gpu_that_is_not_there(mocker: Any, warmed: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LYRICSUB_STATE_DIR", str(warmed["state"]))
    gpus = fake_gpus(mocker, 2)
    code = run_main(cli_args(warmed, "load", "demucs:htdemucs", "--device", "cuda:7"))
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE == 2
    assert out == "" and err.count("\n") == 1
    assert "cuda:7 was requested but torch sees 2 GPU(s) (cuda:0..cuda:1)" in err
    gpus.mem_get_info.assert_not_called()


# --------------------------------------------------------------------------- the GPU stack, before the library is touched

def test_whisper_without_cublas_is_refused_before_faster_whisper_with_the_fixes(
        mocker: Any, tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The H200 case: torch built for CUDA 13 brings libcublas.so.13 only; CTranslate2 opens libcublas.so.12."""
    import ctranslate2

    from tests.families.gpu_stack import fake_cdll, no_wheels

    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False)
    fake_cdll(mocker, present=("libcublas.so.13", "libcublasLt.so.13"))
    no_wheels(monkeypatch)
    mocker.patch.object(ctranslate2, "__version__", "4.6.3")
    model, pipeline = spy_whisper(mocker)
    with pytest.raises(GpuStackError) as info:
        load("whisper", folder_request(tiny, "whisper", "cuda:0"))
    assert isinstance(info.value, LoadError) and info.value.exit_code == EXIT_LOAD
    assert one_line(info.value) == (
        f"{NAMES['whisper']}: CTranslate2 4.6.3 (built for CUDA 12.8) needs libcublasLt.so.12 and libcublas.so.12, "
        "which are not on the library path and in no nvidia-cublas-cu12 wheel here; fix: pip install "
        "nvidia-cublas-cu12, or a torch built for CUDA 12, or use --device cpu")
    assert info.value.lacks == ("libcublasLt.so.12", "libcublas.so.12")
    model.assert_not_called()
    pipeline.assert_not_called()


def test_whisper_with_cublas_in_the_wheel_folder_preloads_it_then_loads(
        mocker: Any, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    from tests.families.gpu_stack import fake_cdll, fake_wheel

    folder = fake_wheel(monkeypatch, tmp_path / "nvidia" / "cublas" / "lib")
    for name in ("libcublasLt.so.12", "libcublas.so.12"):
        (folder / name).write_bytes(b"\x7fELF")
    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False)
    cdll = fake_cdll(mocker, present=(), files="fake")
    model, _ = spy_whisper(mocker)
    loaded = load("whisper", folder_request(tiny, "whisper", "cuda:0"))
    preloaded = [c.args[0] for c in cdll.call_args_list if "/" in str(c.args[0])]
    assert preloaded == [str(folder / "libcublasLt.so.12"), str(folder / "libcublas.so.12")]
    assert all(c.kwargs.get("mode") == ctypes.RTLD_GLOBAL for c in cdll.call_args_list if "/" in str(c.args[0]))
    model.assert_called_once()
    assert loaded.requested == "cuda:0"


@pytest.mark.parametrize("family", ["demucs", "align", "diarize", "whisper"])
def test_a_gpu_torch_has_no_kernels_for_is_refused_before_loading(mocker: Any, tiny: Path, nltk_root: Path,
                                                                  family: str) -> None:
    """A Blackwell card (sm_120) with a torch built before it: one line, exit 5, the library never called."""
    fake_gpus(mocker, 1, capability=(12, 0), arch_list=("sm_50", "sm_80", "sm_86", "sm_90"))
    mocker.patch.object(torch.version, "cuda", "12.4")
    moved = spies(mocker, family)
    with pytest.raises(GpuStackError) as info:
        load(family, folder_request(tiny, family, "cuda:0", nltk_root))
    assert info.value.exit_code == EXIT_LOAD
    assert info.value.message == (
        f"torch {torch.__version__} (built for CUDA 12.4) has no kernels for Fake GPU 0 (sm_120; it covers sm_50 sm_80 "
        "sm_86 sm_90); fix: install a torch built for CUDA 12.8 or later (https://pytorch.org/get-started/locally/), "
        "or use --device cpu")
    for spy in moved:
        spy.assert_not_called()


def test_cli_load_whisper_without_cublas(mocker: Any, warmed: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tests.families.gpu_stack import fake_cdll, no_wheels

    monkeypatch.setenv("LYRICSUB_STATE_DIR", str(warmed["state"]))
    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False)
    fake_cdll(mocker, present=())
    no_wheels(monkeypatch)
    code = run_main(cli_args(warmed, "load", "whisper:large-v3", "--device", "cuda"))
    out, err = capsys.readouterr()
    assert code == EXIT_LOAD == 5
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("lyricsub-hub: whisper:large-v3: CTranslate2 ")
    assert "needs libcublasLt.so.12 and libcublas.so.12" in err and "pip install nvidia-cublas-cu12" in err


# --------------------------------------------------------------------------- scripts/gpu_check.py: ours, or the machine's

def gpu_check_script() -> Any:
    import importlib.util

    from tests.helpers import ROOT

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_rows_keep_the_machines_stack_apart_from_our_code(mocker: Any, warmed: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """whisper cannot run (no libcublas.so.12): its row says why in load's words, cause "stack". demucs loads but
    (faked) ends up on the CPU, not cuda:0: that is ours, cause "code". The summary and exit code keep them apart."""
    from tests.families.gpu_stack import fake_cdll, no_wheels

    script = gpu_check_script()
    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False)
    fake_cdll(mocker, present=())
    no_wheels(monkeypatch)
    for call in ("synchronize", "empty_cache", "reset_peak_memory_stats"):
        mocker.patch(f"torch.cuda.{call}")
    mocker.patch("torch.cuda.max_memory_allocated", return_value=0)
    from demucs.apply import BagOfModels

    spy_to(mocker, BagOfModels)
    mgr = manager(warmed)
    whisper = script.measure(mgr, "whisper:large-v3", "cuda")
    with pytest.raises(GpuStackError) as info:
        mgr.load("whisper:large-v3", device="cuda")
    assert (whisper["ok"], whisper["cause"], whisper["error"]) == (False, "stack", info.value.message)
    assert whisper["lacks"] == ["libcublasLt.so.12", "libcublas.so.12"]
    demucs = script.measure(mgr, "demucs:htdemucs", "cuda")
    assert (demucs["ok"], demucs["cause"]) == (False, "code")
    assert demucs["error"].startswith("LoadedModel.device says cpu, expected cuda:0")
    table = script.table([demucs, whisper])
    assert f"CANNOT RUN HERE: {info.value.message}" in table and "NO: LoadedModel.device says cpu" in table
    lines, code = script.summary([demucs, whisper])
    assert code == 1
    assert lines[0].startswith("our code failed: demucs:htdemucs on cuda: LoadedModel.device says cpu")
    assert lines[1] == ("the machine's stack lacks: libcublasLt.so.12 (for whisper:large-v3); libcublas.so.12 (for "
                        "whisper:large-v3)")
    assert script.summary([whisper]) == ([
        "our code failed: nowhere", lines[1]], 2)
    assert script.summary([]) == (["our code failed: nowhere", "the machine's stack lacks: nothing these families need"], 0)


def test_cli_warm_on_a_gpu_without_cublas_is_refused_after_the_download_check(
        mocker: Any, warmed: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """warm --device cuda: the files are there and verified; the load check is refused in the same line, exit 5."""
    import whisperx.asr

    from tests.families.gpu_stack import fake_cdll, no_wheels

    monkeypatch.setenv("LYRICSUB_STATE_DIR", str(warmed["state"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False)
    fake_cdll(mocker, present=())
    no_wheels(monkeypatch)
    model = mocker.spy(whisperx.asr, "WhisperModel")
    code = run_main(cli_args(warmed, "warm", "whisper:large-v3", "--device", "cuda"))
    out, err = capsys.readouterr()
    assert code == EXIT_LOAD
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "libcublas" in line]
    assert line.startswith("lyricsub-hub: whisper:large-v3: CTranslate2 ")
    assert line.endswith("fix: pip install nvidia-cublas-cu12, or a torch built for CUDA 12, or use --device cpu")
    model.assert_not_called()
