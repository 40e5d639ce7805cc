"""devices: --device resolution, the free-memory check, OOM recognition and where weights are.

Every CUDA decision runs here on a machine without a GPU: the hardware seam (torch.cuda's is_available,
device_count, mem_get_info, get_device_name and ctranslate2's device count) is replaced by a stand-in that
reports N GPUs; nothing else is faked.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import torch

from lyricsub_hub.errors import EXIT_LOAD, EXIT_USAGE, GpuMemoryError, LoadError, UsageError
from lyricsub_hub.families.devices import (
    check_free_memory,
    is_out_of_memory,
    out_of_memory_error,
    resolve_device,
    split_device,
    torch_placement,
)

pytestmark = pytest.mark.torch

GB = 10**9


@dataclass(frozen=True)
class FakeGpus:
    """The mocks standing in for the hardware, to assert on what was asked of it."""

    count: int
    is_available: MagicMock
    device_count: MagicMock
    mem_get_info: MagicMock
    get_device_name: MagicMock
    ct2_device_count: MagicMock


def fake_gpus(mocker: Any, count: int = 2, *, free: int = 80 * GB, total: int = 80 * GB,
              ct2_count: int | None = None, capability: tuple[int, int] = (8, 0),
              arch_list: tuple[str, ...] = ("sm_70", "sm_80", "sm_86", "sm_90"), cuda_libs: bool = True) -> FakeGpus:
    """torch (and CTranslate2) see `count` GPUs with `free` bytes free each, of this compute capability; an index
    past the last one is refused the way the driver refuses it. With ``cuda_libs`` the CUDA libraries CTranslate2
    opens load by soname (as on a machine whose torch brought them); without, ctypes.CDLL is left alone."""
    import ctranslate2

    from tests.families.gpu_stack import fake_cdll

    mocker.patch("torch.cuda.get_device_capability", side_effect=lambda device=None: (index_of(device), capability)[1])
    mocker.patch("torch.cuda.get_arch_list", return_value=list(arch_list))
    if cuda_libs:
        fake_cdll(mocker, present=True)

    def index_of(device: Any = None) -> int:
        if device is None:
            return 0
        if isinstance(device, int):
            index = device
        else:
            dev = torch.device(device)
            assert dev.type == "cuda", f"asked the GPU about {dev}"
            index = dev.index or 0
        if not 0 <= index < count:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return index

    def mem_get_info(device: Any = None) -> tuple[int, int]:
        index_of(device)
        return free, total

    def name(device: Any = None) -> str:
        return f"Fake GPU {index_of(device)}"

    return FakeGpus(
        count,
        mocker.patch("torch.cuda.is_available", return_value=count > 0),
        mocker.patch("torch.cuda.device_count", return_value=count),
        mocker.patch("torch.cuda.mem_get_info", side_effect=mem_get_info),
        mocker.patch("torch.cuda.get_device_name", side_effect=name),
        mocker.patch.object(ctranslate2, "get_cuda_device_count", return_value=count if ct2_count is None else ct2_count),
    )


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# --------------------------------------------------------------------------- resolve_device

@pytest.mark.parametrize(("count", "asked", "expected"), [
    (2, "auto", "cuda:0"),
    (2, "cuda", "cuda:0"),
    (2, "cuda:0", "cuda:0"),
    (2, "cuda:1", "cuda:1"),  # N-1
    (1, "cuda:0", "cuda:0"),
    (8, "cuda:7", "cuda:7"),
    (2, " CUDA:1 ", "cuda:1"),
    (2, "cpu", "cpu"),
])
def test_gpu_devices_resolve_to_an_indexed_cuda_device(mocker: Any, count: int, asked: str, expected: str) -> None:
    """The bug of issue 10: with a GPU present, "cuda" and "cuda:N" crashed (the regex group holding
    "cuda" was read as the index), and "auto" gave an unindexed "cuda"."""
    fake_gpus(mocker, count)
    assert resolve_device(asked) == expected


@pytest.mark.parametrize(("count", "asked"), [(2, "cuda:2"), (2, "cuda:7"), (1, "cuda:1"), (4, "cuda:999")])
def test_a_gpu_past_the_last_is_a_usage_error(mocker: Any, count: int, asked: str) -> None:
    fake_gpus(mocker, count)
    with pytest.raises(UsageError) as info:
        resolve_device(asked)
    assert info.value.exit_code == EXIT_USAGE == 2
    text = one_line(info.value)
    assert text.startswith(f"{asked} was requested but torch sees {count} GPU(s) (cuda:0..cuda:{count - 1})")
    assert "--device cuda" in text


@pytest.mark.parametrize("asked", ["gpu", "cuda:", "cuda:-1", "cuda:1:2", "cuda:x", "cuda 1", "cuda:0001", "cpu:0",
                                   "auto:0", "mps", "", "cuda:1\x1b[2J", None, 0])
def test_a_malformed_device_is_a_usage_error_without_asking_the_gpu(mocker: Any, asked: Any) -> None:
    gpus = fake_gpus(mocker, 2)
    with pytest.raises(UsageError) as info:
        resolve_device(asked)
    assert info.value.exit_code == EXIT_USAGE
    assert "use auto, cpu, cuda or cuda:N" in one_line(info.value)
    assert gpus.is_available.call_count == 0 and gpus.device_count.call_count == 0


def test_cpu_never_asks_about_the_gpu(mocker: Any) -> None:
    gpus = fake_gpus(mocker, 2)
    assert resolve_device("cpu") == "cpu"
    assert gpus.is_available.call_count == 0


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_is_one_load_error_naming_the_torch_build(mocker: Any, asked: str) -> None:
    fake_gpus(mocker, 0)
    with pytest.raises(LoadError) as info:
        resolve_device(asked)
    assert info.value.exit_code == EXIT_LOAD
    text = one_line(info.value)
    assert "torch sees no GPU" in text and torch.__version__ in text and text.endswith("use --device cpu")


def test_auto_without_a_gpu_is_cpu(mocker: Any) -> None:
    fake_gpus(mocker, 0)
    assert resolve_device("auto") == "cpu"


@pytest.mark.parametrize(("device", "parts"), [("cuda:0", ("cuda", 0)), ("cuda:3", ("cuda", 3)), ("cpu", ("cpu", 0))])
def test_split_device_for_ctranslate2(device: str, parts: tuple[str, int]) -> None:
    assert split_device(device) == parts


# --------------------------------------------------------------------------- free memory before a load

def test_a_model_that_cannot_fit_is_refused_in_one_line(mocker: Any) -> None:
    gpus = fake_gpus(mocker, 2, free=1 * GB)
    with pytest.raises(GpuMemoryError) as info:
        check_free_memory("cuda:1", 3 * GB + 200 * 10**6, model="whisper:large-v3")
    assert info.value.exit_code == EXIT_LOAD and isinstance(info.value, MemoryError)
    assert info.value.message == ("needs about 3.2 GB of GPU memory, cuda:1 has 1.0 GB free; "
                                  "use --device cpu or a smaller model")
    assert one_line(info.value).startswith("whisper:large-v3: needs about 3.2 GB")
    assert info.value.hint == "lyricsub-hub load whisper:large-v3 --device cpu"
    gpus.mem_get_info.assert_called_once_with(1)  # the GPU that was asked for, not the first


def test_a_model_that_fits_passes_and_cpu_is_not_checked(mocker: Any) -> None:
    gpus = fake_gpus(mocker, 2, free=4 * GB)
    assert check_free_memory("cuda:0", 4 * GB, model="m") == 4 * GB
    assert check_free_memory("cpu", 10**15, model="m") is None
    assert gpus.mem_get_info.call_count == 1


# --------------------------------------------------------------------------- an OOM raised by a library

@pytest.mark.parametrize("exc", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 1 has a total capacity of 79.19 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory."),
    RuntimeError("CUDA failed with error out of memory"),  # CTranslate2
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
])
def test_library_out_of_memory_errors_are_recognised(exc: BaseException) -> None:
    assert is_out_of_memory(exc)


@pytest.mark.parametrize("exc", [
    RuntimeError("CUDA failed with error no CUDA-capable device is detected"),
    RuntimeError("Found no NVIDIA driver on your system."),
    KeyError("model"),
    OSError("No such file"),
])
def test_other_errors_are_not_out_of_memory(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)


def test_an_oom_becomes_the_same_kind_of_line(mocker: Any) -> None:
    fake_gpus(mocker, 2, free=512 * 10**6)
    exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nsee the docs")
    err = out_of_memory_error(exc, "cuda:1", 3 * GB, model="demucs:htdemucs")
    assert isinstance(err, GpuMemoryError) and err.exit_code == EXIT_LOAD
    assert err.message == ("ran out of GPU memory while loading (needs about 3.0 GB of GPU memory, cuda:1 has 512.0 MB "
                           "free); use --device cpu or a smaller model")
    assert one_line(err)


def test_an_oom_while_running_says_so_and_claims_no_figure(mocker: Any) -> None:
    fake_gpus(mocker, 1, free=GB)
    err = out_of_memory_error(RuntimeError("CUDA failed with error out of memory"), "cuda:0", 0, model="m",
                              during="running")
    assert err.message == "ran out of GPU memory while running (cuda:0 has 1.0 GB free); use --device cpu or a smaller model"


def test_an_oom_when_the_gpu_cannot_be_asked_still_gives_one_line(mocker: Any) -> None:
    mocker.patch("torch.cuda.mem_get_info", side_effect=RuntimeError("Found no NVIDIA driver on your system."))
    err = out_of_memory_error(RuntimeError("CUDA failed with error out of memory"), "cuda:0", 2 * GB, model="m")
    assert err.message == ("ran out of GPU memory while loading (needs about 2.0 GB of GPU memory); "
                           "use --device cpu or a smaller model")


# --------------------------------------------------------------------------- where the weights are

def _stand_in(*devices: torch.device) -> Any:
    """A module whose parameters say they live on these devices (real CUDA tensors need a GPU)."""
    return SimpleNamespace(parameters=lambda: iter([SimpleNamespace(device=d) for d in devices]))


@pytest.mark.parametrize(("devices", "expected"), [
    ((torch.device("cuda", 1),), "cuda:1"),
    ((torch.device("cuda"),), "cuda:0"),
    ((torch.device("cpu"), torch.device("cuda", 0)), "cpu"),  # the first parameter decides
    ((), "cpu"),
])
def test_placement_is_where_the_parameters_are(devices: tuple[torch.device, ...], expected: str) -> None:
    assert torch_placement(_stand_in(*devices)) == expected


def test_placement_of_a_real_module_and_of_an_object_without_parameters() -> None:
    assert torch_placement(torch.nn.Linear(2, 2)) == "cpu"
    assert torch_placement(object()) == "cpu"

