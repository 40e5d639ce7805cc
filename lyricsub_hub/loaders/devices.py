"""Turn a --device string into one torch accepts, failing early and in one line.

"cpu" is answered without importing torch (about 2 s), so listing or loading on
CPU does not pay for a CUDA probe.
"""

from __future__ import annotations

import re

from ..errors import LoadError, UsageError

_DEVICE = re.compile(r"^(auto|cpu|cuda(?::(\d+))?)$")


def resolve_device(device: str) -> str:
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when torch sees a GPU, else cpu).

    A malformed string is a UsageError; asking for a GPU that torch cannot see is
    a LoadError whose message says which torch build is installed.
    """
    text = device.strip().lower() if isinstance(device, str) else ""
    match = _DEVICE.match(text)
    if not match:
        raise UsageError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)")
    if text == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if text == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise LoadError(no_gpu_message())
    if match.group(1) is not None:
        index, count = int(match.group(1)), torch.cuda.device_count()
        if index >= count:
            raise LoadError(f"{text} was requested but torch sees {count} GPU(s) (cuda:0..cuda:{count - 1}); use --device cuda")
    return text


def no_gpu_message() -> str:
    import torch

    built = torch.version.cuda
    build = f"built for CUDA {built}" if built else "a CPU-only build"
    return f"CUDA was requested but torch sees no GPU (torch {torch.__version__}, {build}); use --device cpu"


def split_device(device: str) -> tuple[str, int]:
    """("cuda", N) for "cuda:N", (device, 0) otherwise: CTranslate2 takes the index apart."""
    kind, _, index = device.partition(":")
    return kind, int(index) if index else 0
