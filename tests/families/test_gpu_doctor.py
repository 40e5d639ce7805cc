"""doctor's GPU findings on the stacks users have, with no GPU here: the hardware seams faked (torch.cuda,
ctranslate2.__version__, ctypes.CDLL for CUDA libraries, the nvidia-* wheels' packages, nvidia-smi on PATH)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")  # the light huggingface_hub 2.x environment has no torch

from lyricsub_hub.doctor import Finding, examine  # noqa: E402
from tests.families.gpu_stack import fake_cdll, fake_wheel, no_wheels  # noqa: E402
from tests.families.test_devices import fake_gpus  # noqa: E402
from tests.helpers import ROOT  # noqa: E402

pytestmark = pytest.mark.torch

NAMES = ["demucs:htdemucs", "whisper:large-v3"]


@pytest.fixture
def smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An nvidia-smi on PATH that reports the given driver version."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # doctor probes no endpoint

    def driver(version: str) -> None:
        exe = folder / "nvidia-smi"
        exe.write_text(f"#!/bin/sh\necho {version}\n")
        exe.chmod(0o755)

    return driver


def gpu_findings(tmp_path: Path) -> tuple[Finding, dict[str, Finding]]:
    report = examine(ROOT / "model_index.yaml", cache_dir=tmp_path / "hub", state_dir=tmp_path / "state", names=NAMES)
    (cuda,) = [f for f in report.findings if f.check == "cuda"]
    return cuda, {f.details["family"]: f for f in report.findings if f.check == "gpu"}


def h200(mocker: Any, *, torch_cuda: str = "12.8", ct2: str = "4.8.5", **kw: Any) -> None:
    import ctranslate2

    fake_gpus(mocker, 1, capability=(9, 0), cuda_libs=False, **kw)
    mocker.patch.object(torch.version, "cuda", torch_cuda)
    mocker.patch.object(ctranslate2, "__version__", ct2)


def test_no_gpu_is_one_ok_line_and_no_gpu_findings(mocker: Any, tmp_path: Path, smi: Any) -> None:
    fake_gpus(mocker, 0)
    cuda, gpu = gpu_findings(tmp_path)
    assert cuda.level == "ok" and cuda.message.startswith("no CUDA device: models load on CPU")
    assert gpu == {}


def test_the_pinned_stack_is_ok_everywhere(mocker: Any, tmp_path: Path, smi: Any) -> None:
    """torch 2.8 + cu128 brought libcublas.so.12: CTranslate2 finds it by soname."""
    smi("580.65.06")
    h200(mocker)
    fake_cdll(mocker, present=True)
    cuda, gpu = gpu_findings(tmp_path)
    assert cuda.message == "1 CUDA device(s): Fake GPU 0 (sm_90) (torch built for CUDA 12.8; NVIDIA driver 580.65.06)"
    assert cuda.details["driver"] == "580.65.06"
    assert {f.level for f in gpu.values()} == {"ok"}
    assert gpu["demucs"].message == f"demucs: torch {torch.__version__} (built for CUDA 12.8) has kernels for Fake GPU 0 (sm_90)"
    assert gpu["whisper"].message.endswith("; CTranslate2 4.8.5 (built for CUDA 12.8): libcublas.so.12 loads")


def test_torch_for_cuda_13_without_the_cu12_wheel_is_a_problem_for_whisper_only(mocker: Any, tmp_path: Path, smi: Any,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The H200 run: torch 2.11 built for CUDA 13 brings libcublas.so.13; CTranslate2 4.6.3+ opens libcublas.so.12."""
    smi("580.65.06")
    h200(mocker, torch_cuda="13.0")
    fake_cdll(mocker, present=("libcublasLt.so.13", "libcublas.so.13"))
    no_wheels(monkeypatch)
    _, gpu = gpu_findings(tmp_path)
    assert gpu["demucs"].level == "ok"
    whisper = gpu["whisper"]
    assert whisper.level == "problem"
    assert whisper.message.endswith("; CTranslate2 4.8.5 (built for CUDA 12.8) needs libcublasLt.so.12 and "
                                    "libcublas.so.12, which are not on the library path and in no nvidia-cublas-cu12 "
                                    "wheel here")
    assert whisper.hint == "pip install nvidia-cublas-cu12, or a torch built for CUDA 12, or use --device cpu"
    assert whisper.details["engines"][1]["lacks"] == ["libcublasLt.so.12", "libcublas.so.12"]


def test_the_cu12_wheel_beside_torch_for_cuda_13_is_preloaded_and_ok(mocker: Any, tmp_path: Path, smi: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    smi("580.65.06")
    h200(mocker, torch_cuda="13.0")
    folder = fake_wheel(monkeypatch, tmp_path / "nvidia" / "cublas" / "lib")
    for name in ("libcublasLt.so.12", "libcublas.so.12"):
        (folder / name).write_bytes(b"\x7fELF")
    fake_cdll(mocker, present=(), files="fake")
    _, gpu = gpu_findings(tmp_path)
    assert gpu["whisper"].level == "ok" and gpu["whisper"].hint is None
    assert gpu["whisper"].message.endswith(f"libcublas.so.12 from the nvidia-cublas-cu12 wheel ({folder}), preloaded "
                                           "before each load")


def test_a_driver_before_r570_warns_for_whisper_on_sm_90(mocker: Any, tmp_path: Path, smi: Any) -> None:
    smi("550.54.15")
    h200(mocker)
    fake_cdll(mocker, present=True)
    cuda, gpu = gpu_findings(tmp_path)
    assert "NVIDIA driver 550.54.15" in cuda.message
    assert gpu["demucs"].level == "ok"
    assert gpu["whisper"].level == "warning"
    assert "needs an NVIDIA driver R570 or newer (this one: 550.54.15)" in gpu["whisper"].message
    assert gpu["whisper"].hint is not None and gpu["whisper"].hint.startswith("update the NVIDIA driver to R570")


def test_a_gpu_newer_than_torchs_arch_list_is_a_problem_for_every_family(mocker: Any, tmp_path: Path, smi: Any) -> None:
    smi("575.51.03")
    fake_gpus(mocker, 1, capability=(12, 0), arch_list=("sm_50", "sm_80", "sm_90"))
    mocker.patch.object(torch.version, "cuda", "12.4")
    _, gpu = gpu_findings(tmp_path)
    for fam in ("demucs", "whisper"):
        assert gpu[fam].level == "problem"
        assert "has no kernels for Fake GPU 0 (sm_120; it covers sm_50 sm_80 sm_90)" in gpu[fam].message
        assert gpu[fam].hint == ("install a torch built for CUDA 12.8 or later (https://pytorch.org/get-started/locally/), "
                                 "or use --device cpu")


def test_the_doctor_command_prints_the_gpu_lines(mocker: Any, tmp_path: Path, smi: Any, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.families.test_cuda import run_main

    smi("580.65.06")
    h200(mocker, torch_cuda="13.0")
    fake_cdll(mocker, present=())
    no_wheels(monkeypatch)
    code = run_main(["doctor", "--index", str(ROOT / "model_index.yaml"), "--cache-dir", str(tmp_path / "hub"), *NAMES])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " gpu " in line]
    assert code == 1
    assert len(lines) == 2 and lines[0].lstrip().startswith("ok") and lines[1].lstrip().startswith("PROBLEM")
    assert lines[1].endswith("(fix: pip install nvidia-cublas-cu12, or a torch built for CUDA 12, or use --device cpu)")
