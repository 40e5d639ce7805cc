"""The GPU stack a family's library needs, checked before the library is touched on a GPU.

torch brings its own CUDA: importing it loaded its cuBLAS and cuDNN, so what can still fail is a GPU its build has
no kernels for (``torch.cuda.get_arch_list`` against the GPU's compute capability). CTranslate2 (faster-whisper's
engine) links the CUDA runtime statically but opens cuBLAS (and cuDNN before 4.6.3) by soname at the first matrix
product: the model loads, then the first transcription fails with "Library libcublas.so.12 is not found". So for
CTranslate2 this module names the libraries its version opens (the table below), tries each by soname as
CTranslate2 will, and otherwise looks in the folders of the nvidia-cublas-cu12 / nvidia-cudnn-cu12 wheels. A file
found there is loaded with RTLD_GLOBAL, libcublasLt before libcublas, so CTranslate2's own dlopen finds it with no
LD_LIBRARY_PATH; a library found nowhere is one line naming it, the CTranslate2 version, the CUDA it was built for
and the fixes, raised before the model is loaded (GpuStackError, exit 5).

The seams, and the only things tests replace: ctypes.CDLL, the wheels' packages (``nvidia.cublas.lib``: a namespace
package whose ``__file__`` is None, so its ``__path__`` is read), ctranslate2.__version__, torch.cuda, nvidia-smi.
"""

from __future__ import annotations

import ctypes
import importlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import GpuStackError

Status = Literal["loads", "preloaded", "missing"]

KNOWN_CTRANSLATE2 = "4.8.5"  # the newest release the table below was checked against
R570 = 570  # the first driver whose JIT reads CUDA 12.8 PTX (CTranslate2 >= 4.6.3 on sm_90 and later)
_SASS_TOP = 86  # CTranslate2's wheels hold kernels up to sm_86; newer GPUs JIT-compile its PTX


@dataclass(frozen=True)
class CudaLib:
    """One shared library a CUDA engine opens, and the wheel that ships it."""

    soname: str
    wheel: str  # the pip requirement that installs it
    package: str  # the import name of the wheel's folder holding it


@dataclass(frozen=True)
class LibState:
    """One CUDA library an engine opens, and whether it loads (by soname or from a wheel)."""

    soname: str
    wheel: str
    status: Status  # loads (by soname, as the engine will), preloaded (from a wheel's folder), missing
    path: str | None = None  # the wheel's file, when preloaded from there
    error: str | None = None  # what the dynamic loader said, when missing


@dataclass(frozen=True)
class EngineCheck:
    """One engine's GPU stack: its version, the CUDA it was built for, the libraries it opens, and a verdict.

    ``problem`` (it cannot run here) and ``warning`` (it may not) are single lines in the words load, doctor and
    gpu-check all use; ``fix`` is the command or step that fixes them.
    """

    engine: str  # "torch" or "CTranslate2"
    version: str
    cuda: str | None  # the CUDA it was built for
    summary: str  # what holds, in one line
    libs: tuple[LibState, ...] = ()
    problem: str | None = None
    warning: str | None = None
    fix: str | None = None
    lacks: tuple[str, ...] = ()  # what the machine's stack lacks (sonames, "sm_120 kernels"), for gpu-check
    details: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def line(self) -> str:
        """The problem (else the warning) and its fix, in one line: what load raises and gpu-check shows."""
        what = self.problem or self.warning or self.summary
        return f"{what}; fix: {self.fix}" if self.fix and what != self.summary else what

    @property
    def level(self) -> Literal["ok", "warning", "problem"]:
        return "problem" if self.problem else "warning" if self.warning else "ok"


# -- CTranslate2: which CUDA libraries each version opens -------------------------------------------------------
def _cublas(major: int) -> tuple[CudaLib, ...]:
    wheel, package = f"nvidia-cublas-cu{major}", "nvidia.cublas.lib"
    return (CudaLib(f"libcublasLt.so.{major}", wheel, package), CudaLib(f"libcublas.so.{major}", wheel, package))


def _cudnn(version: int, cuda: int) -> tuple[CudaLib, ...]:
    wheel, package = f"nvidia-cudnn-cu{cuda}=={version}.*", "nvidia.cudnn.lib"
    names = ("libcudnn_ops_infer.so.8", "libcudnn_cnn_infer.so.8") if version == 8 else \
        ("libcudnn_ops.so.9", "libcudnn_cnn.so.9")
    return tuple(CudaLib(n, wheel, package) for n in names)


def ctranslate2_build(version: str) -> tuple[str, tuple[CudaLib, ...]] | None:
    """(the CUDA it was built for, the libraries it opens in load order), or None for a version past the table.

    3.x: CUDA 11, cuBLAS 11, cuDNN 8; 4.0-4.4: CUDA 12.2, cuBLAS 12, cuDNN 8; 4.5-4.6.0: 12.2 + cuDNN 9;
    4.6.1-4.6.2: 12.4 + cuDNN 9; 4.6.3 and later 4.x: CUDA 12.8, cuBLAS 12 only (its Conv1D is pure CUDA).
    """
    v = _numbers(version)
    if not v or v[0] >= 5:
        return None
    if v[0] <= 3:
        return "11", _cublas(11) + _cudnn(8, 11)
    if v < (4, 5):
        return "12.2", _cublas(12) + _cudnn(8, 12)
    if v < (4, 6, 1):
        return "12.2", _cublas(12) + _cudnn(9, 12)
    if v < (4, 6, 3):
        return "12.4", _cublas(12) + _cudnn(9, 12)
    return "12.8", _cublas(12)


def _numbers(version: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip())
    return tuple(int(g) for g in match.groups() if g is not None) if match else ()


def ctranslate2_version() -> str | None:
    """The installed CTranslate2's version (its module's, else the package metadata's), None when absent."""
    try:
        import ctranslate2

        return str(ctranslate2.__version__)
    except Exception:  # not installed, or its own libraries fail to load
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ctranslate2")
        except PackageNotFoundError:
            return None


def wheel_folders(package: str) -> list[Path]:
    """The folders of a wheel's library package; ``nvidia.cublas.lib.__file__`` is None, its ``__path__`` is not."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return []
    return [Path(p) for p in getattr(module, "__path__", None) or ()]


def open_library(lib: CudaLib) -> LibState:
    """By soname first, as the engine's dlopen will; else from the wheel's folder, RTLD_GLOBAL, so the engine's
    later dlopen by soname finds the copy already loaded."""
    try:
        ctypes.CDLL(lib.soname, mode=ctypes.RTLD_GLOBAL)
        return LibState(lib.soname, lib.wheel, "loads")
    except OSError as exc:
        why = str(exc)
    for folder in wheel_folders(lib.package):
        path = folder / lib.soname
        if not path.is_file():
            continue
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            why = str(exc)
            continue
        return LibState(lib.soname, lib.wheel, "preloaded", str(path))
    return LibState(lib.soname, lib.wheel, "missing", error=why)


def check_ctranslate2(*, version: str | None = None, capability: tuple[int, int] | None = None,
                      driver: str | None = None) -> EngineCheck:
    """The libraries this CTranslate2 opens, each loaded (or preloaded from its wheel) now; a driver older than R570
    is a warning where CTranslate2 >= 4.6.3 has to JIT its kernels (sm_90 and later)."""
    version = version or ctranslate2_version()
    if version is None:
        return EngineCheck("CTranslate2", "not installed", None, "CTranslate2 is not installed")
    build = ctranslate2_build(version)
    if build is None:
        return EngineCheck("CTranslate2", version, None, f"CTranslate2 {version}",
                           warning=f"CTranslate2 {version} is newer than the releases lyricsub-hub knows (up to "
                                   f"{KNOWN_CTRANSLATE2}): the CUDA libraries it opens are not checked",
                           fix="pip install 'ctranslate2<5', or check that a first transcription runs")
    cuda, libs = build
    states = tuple(open_library(lib) for lib in libs)
    missing = [s for s in states if s.status == "missing"]
    details: dict[str, object] = {"libraries": {s.soname: s.path or s.status for s in states}}
    head = f"CTranslate2 {version} (built for CUDA {cuda})"
    if missing:
        wheels = list(dict.fromkeys(s.wheel for s in missing))
        install = "pip install " + " ".join(f"'{w}'" if "*" in w else w for w in wheels)
        names = " and ".join(s.soname for s in missing)
        major = cuda.split(".")[0]
        problem = (f"{head} needs {names}, which {'is' if len(missing) == 1 else 'are'} not on the library path and "
                   f"in no {' or '.join(w.split('==')[0] for w in wheels)} wheel here")
        return EngineCheck("CTranslate2", version, cuda, head, states, problem=problem,
                           fix=f"{install}, or a torch built for CUDA {major}, or use --device cpu",
                           lacks=tuple(s.soname for s in missing), details=details)
    preloaded = [s for s in states if s.status == "preloaded"]
    shown = [s.soname for s in states if s.soname.startswith("libcublas.") or "cudnn" in s.soname]
    names = ", ".join(shown)
    if preloaded:
        folders = sorted({str(Path(s.path).parent) for s in preloaded if s.path})
        summary = (f"{head}: {names} from the {', '.join(dict.fromkeys(s.wheel.split('==')[0] for s in preloaded))} "
                   f"wheel ({', '.join(folders)}), preloaded before each load")
    else:
        summary = f"{head}: {names} load{'s' if len(shown) == 1 else ''}"
    warning = fix = None
    if capability is not None and _numbers(version) >= (4, 6, 3) and capability[0] * 10 + capability[1] > _SASS_TOP \
            and driver and (_numbers(driver) or (0,))[0] < R570:
        warning = (f"{head} has no kernels for sm_{capability[0]}{capability[1]} and JIT-compiles them, which "
                   f"needs an NVIDIA driver R570 or newer (this one: {driver}); the first transcription fails")
        fix = "update the NVIDIA driver to R570 or newer, or pip install 'ctranslate2<4.6.3', or use --device cpu"
    return EngineCheck("CTranslate2", version, cuda, summary, states, warning=warning, fix=fix, details=details)


# -- torch: kernels for this GPU ---------------------------------------------------------------------------------
_NEW_ARCH_CUDA = {120: "12.8", 100: "12.8", 90: "11.8", 89: "11.8", 87: "11.4", 86: "11.1", 80: "11.0"}


def arch_covered(capability: tuple[int, int], arch_list: list[str]) -> bool | None:
    """Whether a build with these arch flags runs on a GPU of this compute capability; None when it cannot tell.

    sm_XY kernels run on the same major and an equal or higher minor (sm_80 on 8.6, not sm_86 on 8.0);
    sm_90a-style kernels only on their own capability; compute_XY PTX is JIT-compiled for anything as new or newer.
    """
    major, minor = capability
    cc = major * 10 + minor
    parsed = [m for a in arch_list if (m := re.fullmatch(r"(sm|compute)_(\d+)([a-z]?)", a.strip()))]
    if not parsed:
        return None
    for kind, number, suffix in (m.groups() for m in parsed):
        n = int(number)
        if kind == "sm" and (n == cc if suffix else (n // 10 == major and n <= cc)):
            return True
        if kind == "compute" and not suffix and n <= cc:
            return True
    return False


def check_torch(device: str) -> EngineCheck:
    """torch's build CUDA, and whether its arch list covers the compute capability of the GPU at ``device``."""
    import torch

    from .devices import split_device

    version, cuda = str(torch.__version__), torch.version.cuda
    head = f"torch {version} (built for CUDA {cuda})" if cuda else f"torch {version} (a CPU-only build)"
    index = split_device(device)[1]
    try:
        capability = tuple(int(x) for x in torch.cuda.get_device_capability(index))
        name = str(torch.cuda.get_device_name(index))
        arches = [str(a) for a in torch.cuda.get_arch_list()]
    except Exception as exc:  # no driver, an index past the last: resolve_device says so in its own words
        return EngineCheck("torch", version, cuda, head, warning=f"{head} could not say which GPU {device} is: "
                           f"{str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}", fix="nvidia-smi")
    cap = (capability[0], capability[1])
    sm = f"sm_{cap[0]}{cap[1]}"
    details: dict[str, object] = {"capability": f"{cap[0]}.{cap[1]}", "gpu": name, "arch_list": arches}
    covered = arch_covered(cap, arches)
    if covered is False:
        newer = cap[0] * 10 + cap[1] > max((int(n) for n in re.findall(r"_(\d+)", " ".join(arches))), default=0)
        need = (f"a torch built for CUDA {_NEW_ARCH_CUDA.get(cap[0] * 10 + cap[1], 'a newer version')} or later"
                if newer else f"an older torch whose arch list still has {sm}")
        problem = f"{head} has no kernels for {name} ({sm}; it covers {' '.join(arches)})"
        return EngineCheck("torch", version, cuda, head, problem=problem,
                           fix=f"install {need} (https://pytorch.org/get-started/locally/), or use --device cpu",
                           lacks=(f"{sm} kernels in torch",), details=details)
    how = "has kernels for" if covered else "has an arch list that cannot be read for"
    return EngineCheck("torch", version, cuda, f"{head} {how} {name} ({sm})", details=details)


# -- a family -----------------------------------------------------------------------------------------------------
def check_family(family: str, device: str, *, driver: str | None = None) -> tuple[EngineCheck, ...]:
    """Each engine the family runs on (FAMILIES[family].gpu.engines), checked for the GPU at ``device``."""
    from . import FAMILIES

    checks: list[EngineCheck] = []
    capability: tuple[int, int] | None = None
    for engine in FAMILIES[family].gpu.engines:
        if engine == "torch":
            checks.append(check_torch(device))
            major, _, minor = str(checks[-1].details.get("capability", "")).partition(".")
            capability = (int(major), int(minor)) if major.isdigit() and minor.isdigit() else None
        elif engine == "ctranslate2":
            checks.append(check_ctranslate2(capability=capability, driver=driver))
    return tuple(checks)


def require(family: str, device: str, *, model: str) -> tuple[EngineCheck, ...]:
    """Refuse, before the model is loaded, what cannot run on this GPU stack; preloads what a wheel holds."""
    checks = check_family(family, device)
    for check in checks:
        if check.problem:
            raise GpuStackError(check.line, model=model, lacks=check.lacks)
    return checks


# -- the driver ---------------------------------------------------------------------------------------------------
def driver_version() -> str | None:
    """The NVIDIA driver's version ("580.65.06"), from nvidia-smi, else pynvml; None when neither answers."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            done = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                                  text=True, timeout=10, check=False)
            first = done.stdout.strip().splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else ""
            if re.fullmatch(r"\d+(\.\d+){1,3}", first):
                return first
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            value = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text if re.fullmatch(r"\d+(\.\d+){1,3}", text) else None
    except Exception:
        return None


MIN_DRIVER = {11: 450, 12: 525, 13: 580}  # the oldest driver branch each CUDA major runs on (minor-version compat)


def driver_too_old(cuda: str | None, driver: str | None) -> str | None:
    """Why a torch built for ``cuda`` cannot use this driver, or None (fine, or unknown)."""
    if not cuda or not driver:
        return None
    need = MIN_DRIVER.get(_numbers(cuda)[0] if _numbers(cuda) else 0)
    have = _numbers(driver)
    if need is None or not have or have[0] >= need:
        return None
    return f"CUDA {cuda} needs an NVIDIA driver R{need} or newer, this one is {driver}"
