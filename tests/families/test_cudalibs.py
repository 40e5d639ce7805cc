"""cudalibs: which CUDA libraries CTranslate2 opens, found or named before a load; torch's kernels for this GPU.

No GPU here: the seams are ctypes.CDLL (CUDA libraries only; everything else loads for real), the nvidia-* wheels'
packages, nvidia-smi on PATH, and shared objects built by the test with the system C compiler. No torch needed.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lyricsub_hub.families import cudalibs
from lyricsub_hub.families.cudalibs import arch_covered, check_ctranslate2, ctranslate2_build, driver_too_old
from tests.families.gpu_stack import compile_cublas, fake_cdll, fake_wheel, no_wheels
from tests.helpers import ROOT

CUBLAS12 = ["libcublasLt.so.12", "libcublas.so.12"]
CUDNN8 = ["libcudnn_ops_infer.so.8", "libcudnn_cnn_infer.so.8"]
CUDNN9 = ["libcudnn_ops.so.9", "libcudnn_cnn.so.9"]


@pytest.mark.parametrize(("version", "cuda", "libs"), [
    ("3.24.0", "11", ["libcublasLt.so.11", "libcublas.so.11", *CUDNN8]),
    ("4.0.0", "12.2", CUBLAS12 + CUDNN8),
    ("4.4.0", "12.2", CUBLAS12 + CUDNN8),
    ("4.5.0", "12.2", CUBLAS12 + CUDNN9),
    ("4.6.0", "12.2", CUBLAS12 + CUDNN9),
    ("4.6.1", "12.4", CUBLAS12 + CUDNN9),
    ("4.6.2", "12.4", CUBLAS12 + CUDNN9),
    ("4.6.3", "12.8", CUBLAS12),
    ("4.8.5", "12.8", CUBLAS12),
])
def test_each_ctranslate2_names_the_cuda_libraries_it_opens(version: str, cuda: str, libs: list[str]) -> None:
    build = ctranslate2_build(version)
    assert build is not None
    assert build[0] == cuda
    assert [lib.soname for lib in build[1]] == libs  # load order: libcublasLt before libcublas


def test_a_ctranslate2_past_the_table_is_not_guessed(mocker: Any) -> None:
    cdll = fake_cdll(mocker)
    assert ctranslate2_build("5.0.0") is None
    check = check_ctranslate2(version="5.0.0")
    assert (check.level, check.problem) == ("warning", None)
    assert check.warning == ("CTranslate2 5.0.0 is newer than the releases lyricsub-hub knows (up to 4.8.5): the CUDA "
                             "libraries it opens are not checked")
    cdll.assert_not_called()


# --------------------------------------------------------------------------- missing: named, with the fixes

def test_cublas_found_nowhere_is_one_line_with_the_fixes(mocker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cdll(mocker, present=())
    no_wheels(monkeypatch)
    check = check_ctranslate2(version="4.8.5")
    assert check.level == "problem"
    assert check.lacks == ("libcublasLt.so.12", "libcublas.so.12")
    assert check.line == ("CTranslate2 4.8.5 (built for CUDA 12.8) needs libcublasLt.so.12 and libcublas.so.12, which "
                          "are not on the library path and in no nvidia-cublas-cu12 wheel here; fix: pip install "
                          "nvidia-cublas-cu12, or a torch built for CUDA 12, or use --device cpu")
    assert "\n" not in check.line


def test_cudnn_of_4_5_is_named_with_its_wheel(mocker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """cuBLAS loads (torch brought it); cuDNN 9 does not: only cuDNN is named, and its wheel with the major pinned."""
    fake_cdll(mocker, present=CUBLAS12)
    no_wheels(monkeypatch)
    check = check_ctranslate2(version="4.5.0")
    assert check.lacks == tuple(CUDNN9)
    assert check.fix == "pip install 'nvidia-cudnn-cu12==9.*', or a torch built for CUDA 12, or use --device cpu"
    assert check.problem == ("CTranslate2 4.5.0 (built for CUDA 12.2) needs libcudnn_ops.so.9 and libcudnn_cnn.so.9, "
                             "which are not on the library path and in no nvidia-cudnn-cu12 wheel here")


# --------------------------------------------------------------------------- found in the wheel's folder: preloaded

def test_a_wheel_folder_is_preloaded_in_order_with_rtld_global(mocker: Any, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    folder = fake_wheel(monkeypatch, tmp_path / "nvidia" / "cublas" / "lib")
    for name in CUBLAS12:
        (folder / name).write_bytes(b"\x7fELF")
    cdll = fake_cdll(mocker, present=(), files="fake")
    check = check_ctranslate2(version="4.8.5")
    assert check.level == "ok" and check.problem is None
    assert [s.status for s in check.libs] == ["preloaded", "preloaded"]
    tried = [(c.args[0], c.kwargs.get("mode")) for c in cdll.call_args_list]
    assert tried == [("libcublasLt.so.12", ctypes.RTLD_GLOBAL), (str(folder / "libcublasLt.so.12"), ctypes.RTLD_GLOBAL),
                     ("libcublas.so.12", ctypes.RTLD_GLOBAL), (str(folder / "libcublas.so.12"), ctypes.RTLD_GLOBAL)]
    assert check.summary == (f"CTranslate2 4.8.5 (built for CUDA 12.8): libcublas.so.12 from the nvidia-cublas-cu12 wheel "
                             f"({folder}), preloaded before each load")


def test_a_library_that_loads_by_soname_is_not_looked_for(mocker: Any, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    folder = fake_wheel(monkeypatch, tmp_path / "nvidia" / "cublas" / "lib")
    cdll = fake_cdll(mocker, present=CUBLAS12)
    check = check_ctranslate2(version="4.8.5")
    assert [s.status for s in check.libs] == ["loads", "loads"]
    assert [c.args[0] for c in cdll.call_args_list] == CUBLAS12
    assert check.summary == "CTranslate2 4.8.5 (built for CUDA 12.8): libcublas.so.12 loads"
    assert not any(folder.iterdir())


def test_a_broken_file_in_the_wheel_is_missing_with_the_loaders_reason(mocker: Any, monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    folder = fake_wheel(monkeypatch, tmp_path / "nvidia" / "cublas" / "lib")
    for name in CUBLAS12:
        (folder / name).write_bytes(b"not an ELF file")
    fake_cdll(mocker, present=(), files="real")
    no_wheels(monkeypatch, "nvidia.cudnn.lib")
    check = check_ctranslate2(version="4.8.5")
    assert check.level == "problem"
    assert check.libs[0].error is not None and str(folder) in check.libs[0].error


def test_real_shared_objects_from_a_wheel_folder_are_what_ctranslate2_then_finds(tmp_path: Path) -> None:
    """A fresh interpreter, no torch: libcublasLt.so.12 and libcublas.so.12 built here are preloaded from the
    fake wheel folder; afterwards a plain dlopen("libcublas.so.12"), as CTranslate2 does it, gets that very
    library (its function answers), though no LD_LIBRARY_PATH names the folder."""
    folder = tmp_path / "nvidia" / "cublas" / "lib"
    lt, blas = compile_cublas(folder)
    script = textwrap.dedent(f"""
        import ctypes, os, sys, types
        from unittest import mock
        real = ctypes.CDLL
        def cdll(name, *a, **k):  # nothing CUDA on this machine's library path, whatever it has
            if "/" not in str(name) and str(name).startswith("libcublas"):
                raise OSError(str(name) + ": cannot open shared object file")
            return real(name, *a, **k)
        wheel = types.ModuleType("nvidia.cublas.lib")
        wheel.__file__, wheel.__path__ = None, [{str(folder)!r}]
        sys.modules["nvidia.cublas.lib"] = wheel
        from lyricsub_hub.families.cudalibs import check_ctranslate2
        with mock.patch("ctypes.CDLL", side_effect=cdll):
            check = check_ctranslate2(version="4.8.5")
        print(check.level, [s.status for s in check.libs])
        maps = open("/proc/self/maps").read()
        print({str(lt)!r} in maps, {str(blas)!r} in maps)
        print(real("libcublas.so.12").lyricsub_fake_cublas())
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LD_LIBRARY_PATH", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ok ['preloaded', 'preloaded']", "True True", "121"]


def test_the_real_wheel_is_found_through_its_package_path() -> None:
    """Where nvidia-cublas-cu12 is installed: its lib package's __path__ holds libcublas.so.12."""
    folders = cudalibs.wheel_folders("nvidia.cublas.lib")
    if not folders:
        pytest.skip("nvidia-cublas-cu12 is not installed here")
    assert any((f / "libcublas.so.12").is_file() or (f / "libcublas.so.11").is_file() for f in folders)


# --------------------------------------------------------------------------- GPUs and drivers

@pytest.mark.parametrize(("capability", "arches", "covered"), [
    ((9, 0), ["sm_70", "sm_80", "sm_86", "sm_90"], True),
    ((8, 9), ["sm_80", "sm_86"], True),  # same major, lower minor runs
    ((8, 0), ["sm_86", "sm_90"], False),  # a higher minor does not
    ((12, 0), ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"], False),
    ((12, 0), ["sm_80", "sm_90", "compute_90"], True),  # PTX is JIT-compiled for newer GPUs
    ((12, 0), ["sm_90", "sm_100", "sm_120"], True),
    ((10, 0), ["sm_90a"], False),  # arch-specific kernels run on their own GPU only
    ((9, 0), ["sm_90a"], True),
    ((5, 0), ["sm_70", "sm_80"], False),
    ((9, 0), [], None),
])
def test_arch_list_coverage(capability: tuple[int, int], arches: list[str], covered: bool | None) -> None:
    assert arch_covered(capability, arches) is covered


@pytest.mark.parametrize(("version", "capability", "driver", "warns"), [
    ("4.8.5", (9, 0), "550.54.15", True),
    ("4.6.3", (12, 0), "565.57.01", True),
    ("4.8.5", (9, 0), "570.86.10", False),
    ("4.8.5", (8, 6), "535.104.05", False),  # kernels for sm_86 are in the wheel: no JIT
    ("4.6.2", (9, 0), "550.54.15", False),
    ("4.8.5", (9, 0), None, False),  # unknown driver: nothing claimed
])
def test_a_driver_before_r570_warns_where_ctranslate2_must_jit(mocker: Any, version: str, capability: tuple[int, int],
                                                                driver: str | None, warns: bool) -> None:
    fake_cdll(mocker, present=True)
    check = check_ctranslate2(version=version, capability=capability, driver=driver)
    assert check.level == ("warning" if warns else "ok")
    if warns:
        assert check.warning is not None and f"R570 or newer (this one: {driver})" in check.warning
        assert check.fix is not None and check.fix.startswith("update the NVIDIA driver to R570 or newer")


def test_driver_version_comes_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=driver_version ] && echo 580.65.06 && echo 580.65.06\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert cudalibs.driver_version() == "580.65.06"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver'\n"
                   "exit 9\n")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # and no pynvml to ask instead
    assert cudalibs.driver_version() is None


@pytest.mark.parametrize(("cuda", "driver", "why"), [
    ("13.0", "575.51.03", "CUDA 13.0 needs an NVIDIA driver R580 or newer, this one is 575.51.03"),
    ("13.0", "580.65.06", None),
    ("12.8", "535.104.05", None),  # minor-version compatibility: any R525+ runs CUDA 12.x
    ("12.1", "470.82.01", "CUDA 12.1 needs an NVIDIA driver R525 or newer, this one is 470.82.01"),
    (None, "470.82.01", None),
    ("12.8", None, None),
])
def test_driver_too_old_for_a_torch_build(cuda: str | None, driver: str | None, why: str | None) -> None:
    assert driver_too_old(cuda, driver) == why
