"""Fakes for the GPU stack's seams, without torch: ctypes.CDLL for the CUDA libraries, the nvidia-* wheels'
packages, and shared objects the test builds with the system C compiler.

Only CUDA libraries are faked: any other ctypes.CDLL call (torch, soundfile, ...) goes to the real one.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal
from unittest.mock import MagicMock

import pytest

CUDA_PREFIXES = ("libcublas", "libcudnn")


def fake_cdll(mocker: Any, *, present: Iterable[str] | bool = (), files: Literal["real", "fake"] = "real") -> MagicMock:
    """ctypes.CDLL where a CUDA library loads by soname only if it is in ``present`` (True: all of them); a path
    (a wheel's file) loads for real (``files="real"``) or always succeeds (``"fake"``)."""
    real = ctypes.CDLL
    names = present if isinstance(present, bool) else set(present)

    def cdll(name: Any, *args: Any, **kwargs: Any) -> Any:
        text = str(name)
        base = os.path.basename(text)
        if not base.startswith(CUDA_PREFIXES):
            return real(name, *args, **kwargs)
        if "/" not in text:
            if names is True or (not isinstance(names, bool) and base in names):
                return MagicMock(name=base)
            raise OSError(f"{base}: cannot open shared object file: No such file or directory")
        if files == "fake":
            return MagicMock(name=text)
        return real(name, *args, **kwargs)

    return mocker.patch("ctypes.CDLL", side_effect=cdll)


def fake_wheel(monkeypatch: pytest.MonkeyPatch, folder: Path, package: str = "nvidia.cublas.lib") -> Path:
    """``package`` resolves to ``folder``, laid out as the wheel's namespace package: ``__file__`` None,
    ``__path__`` the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    module = ModuleType(package)
    module.__file__ = None
    module.__path__ = [str(folder)]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, package, module)
    return folder


def no_wheels(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """The wheels are not installed (whatever this machine has): importing their packages fails."""
    for package in packages or ("nvidia.cublas.lib", "nvidia.cudnn.lib"):
        monkeypatch.setitem(sys.modules, package, None)


def compile_cublas(folder: Path, major: int = 12) -> tuple[Path, Path]:
    """libcublasLt.so.N and libcublas.so.N (which needs libcublasLt.so.N, as the real one does), built with the
    system C compiler; each exports a function saying which one it is. Skips the test without a compiler."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build a shared object with")
    folder.mkdir(parents=True, exist_ok=True)
    lt, blas = folder / f"libcublasLt.so.{major}", folder / f"libcublas.so.{major}"
    (folder / "lt.c").write_text("int lyricsub_fake_cublaslt(void) { return 1; }\n")
    (folder / "blas.c").write_text("int lyricsub_fake_cublaslt(void);\n"
                                   f"int lyricsub_fake_cublas(void) {{ return {major} * 10 + lyricsub_fake_cublaslt(); }}\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lt), str(folder / "lt.c"), f"-Wl,-soname,{lt.name}"], check=True)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(blas), str(folder / "blas.c"), str(lt), f"-Wl,-soname,{blas.name}"],
                   check=True)
    for source in ("lt.c", "blas.c"):
        (folder / source).unlink()
    return lt, blas


def loaded_paths() -> set[str]:
    """The shared objects mapped into this process now (/proc/self/maps)."""
    with open("/proc/self/maps", encoding="utf-8") as fh:
        return {line.split(None, 5)[5].strip() for line in fh if len(line.split(None, 5)) == 6}
