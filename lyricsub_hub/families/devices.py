"""Devices: turn --device into one torch accepts, check free GPU memory before a load, and turn a CUDA
out-of-memory raised deep inside a library into one line.

"cpu" is answered without importing torch (about 2 s), so listing or loading on
CPU does not pay for a CUDA probe. The hardware seam is torch.cuda (is_available,
device_count, mem_get_info, get_device_name); tests replace exactly that.
"""

from __future__ import annotations

import re

from ..core.text import human_size
from ..errors import Fix, GpuMemoryError, LoadError, UsageError

_DEVICE = re.compile(r"(auto|cpu|cuda)(?::([0-9]{1,3}))?")


def resolve_device(device: str) -> str:
    """"cpu", "cuda", "cuda:N" or "auto" (cuda:0 when torch sees a GPU, else cpu) -> "cpu" or "cuda:N".

    A malformed string or a GPU index past the last is a UsageError; a GPU torch cannot see (or no torch at
    all) is a LoadError that says which torch is installed.
    """
    text = device.strip().lower() if isinstance(device, str) else ""
    match = _DEVICE.fullmatch(text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)", hint=Fix("load", "NAME", "--device", "cpu"))
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:  # a light install: no torch, so no GPU either
        if kind == "auto":
            return "cpu"
        raise LoadError("CUDA was requested but torch is not installed (pip install 'lyricsub-hub[full]'); "
                        "use --device cpu") from None
    available = bool(torch.cuda.is_available())
    if kind == "auto":
        return "cuda:0" if available else "cpu"
    if not available:
        raise LoadError(no_gpu_message())
    count = int(torch.cuda.device_count())
    wanted = int(index) if index is not None else 0
    if wanted >= count:
        raise UsageError(f"{text} was requested but torch sees {count} GPU(s) (cuda:0..cuda:{count - 1})",
                         hint=Fix("load", "NAME", "--device", "cuda"))
    return f"cuda:{wanted}"


def no_gpu_message() -> str:
    import torch

    built = torch.version.cuda
    build = f"built for CUDA {built}" if built else "a CPU-only build"
    return f"CUDA was requested but torch sees no GPU (torch {torch.__version__}, {build}); use --device cpu"


def split_device(device: str) -> tuple[str, int]:
    """("cuda", N) for "cuda:N", ("cpu", 0) otherwise: CTranslate2 takes the index apart."""
    kind, _, index = device.partition(":")
    return kind, int(index) if index else 0


def check_free_memory(device: str, needed: int, *, model: str) -> int | None:
    """Refuse a load that cannot fit, before the library tries; returns the free bytes (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    _, index = split_device(device)
    free, _total = torch.cuda.mem_get_info(index)
    if needed > free:
        raise GpuMemoryError(f"needs about {human_size(needed)} of GPU memory, {device} has {human_size(free)} free; "
                             "use --device cpu or a smaller model", model=model, hint=Fix("load", model, "--device", "cpu"))
    return int(free)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError, or CTranslate2's and cuBLAS's RuntimeError texts for the same."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "cublas_status_alloc_failed" in text)


def out_of_memory_error(exc: BaseException, device: str, needed: int, *, model: str,
                        during: str = "loading") -> GpuMemoryError:
    """The same kind of line as check_free_memory's, for an OOM a library raised while loading or running."""
    facts = [f"needs about {human_size(needed)} of GPU memory"] if needed > 0 else []
    free = _free_now(device)
    if free is not None:
        facts.append(f"{device} has {human_size(free)} free")
    where = f" ({', '.join(facts)})" if facts else ""
    return GpuMemoryError(f"ran out of GPU memory while {during}{where}; use --device cpu or a smaller model",
                          model=model, hint=Fix("load", model, "--device", "cpu"))


def _free_now(device: str) -> int | None:
    try:
        import torch

        return int(torch.cuda.mem_get_info(split_device(device)[1])[0])
    except Exception:
        return None


def torch_placement(module: object) -> str:
    """Where a torch module's weights are, as "cpu" or "cuda:N" (from its first parameter)."""
    params = getattr(module, "parameters", None)
    if params is None:
        return "cpu"
    first = next(iter(params()), None)
    if first is None:
        return "cpu"
    dev = first.device
    return "cpu" if dev.type == "cpu" else f"{dev.type}:{dev.index if dev.index is not None else 0}"


def device_problem(device: str) -> str | None:
    """What is wrong with a --device string, without importing torch (for checking options before any work)."""
    match = _DEVICE.fullmatch(device.strip().lower())
    if match and (match.group(2) is None or match.group(1) == "cuda"):
        return None
    return f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)"
