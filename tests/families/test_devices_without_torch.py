"""devices on a light install (no torch): --device is still parsed, auto means cpu, and asking for CUDA is one
line, not an ImportError traceback. Runs in both environments: torch is hidden here where it is installed."""

from __future__ import annotations

import sys

import pytest

from lyricsub_hub.errors import EXIT_LOAD, EXIT_USAGE, LoadError, UsageError
from lyricsub_hub.families.devices import check_free_memory, resolve_device


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError


@pytest.mark.usefixtures("no_torch")
@pytest.mark.parametrize(("asked", "expected"), [("auto", "cpu"), ("cpu", "cpu"), (" CPU ", "cpu")])
def test_auto_and_cpu_without_torch(asked: str, expected: str) -> None:
    assert resolve_device(asked) == expected


@pytest.mark.usefixtures("no_torch")
@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_torch_is_one_load_error(asked: str) -> None:
    with pytest.raises(LoadError) as info:
        resolve_device(asked)
    assert info.value.exit_code == EXIT_LOAD
    assert str(info.value) == ("CUDA was requested but torch is not installed (pip install 'lyricsub-hub[full]'); "
                               "use --device cpu")
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.usefixtures("no_torch")
@pytest.mark.parametrize("asked", ["gpu", "cuda:", "cuda:1:2", "cpu:0", ""])
def test_malformed_device_is_a_usage_error_before_torch_is_needed(asked: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_device(asked)
    assert info.value.exit_code == EXIT_USAGE and "\n" not in str(info.value)


@pytest.mark.usefixtures("no_torch")
def test_cpu_needs_no_memory_check() -> None:
    assert check_free_memory("cpu", 10**15, model="m") is None
