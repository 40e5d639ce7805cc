"""Demucs 4.1 from a verified snapshot of an adefossez/* repo: ``{name}.yaml`` + ``{sig}.safetensors``.

Does what demucs.hf.get_hf_model does after its downloads, so the result is the
same BagOfModels that ``demucs.pretrained.get_model(name)`` returns. The bag yaml
names the weights to load; each must be a pinned file of the model (demucs would
otherwise construct whatever class an unpinned file's metadata names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LoadError
from .base import LoadedModel, LoadRequest, Reads
from .devices import torch_placement

_SIG = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _bag(folder: Path, names: set[str], variant: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    import yaml

    wanted = f"{options.get('name') or variant}.yaml"
    if wanted not in names:
        yamls = sorted(n for n in names if n.endswith(".yaml") and "/" not in n)
        if len(yamls) == 1 and not options.get("name"):
            wanted = yamls[0]
        else:
            raise LoadError(f"no pinned {wanted} (pinned yaml files: {', '.join(yamls) or 'none'})")
    bag = yaml.safe_load((folder / wanted).read_text(encoding="utf-8"))
    if not isinstance(bag, dict) or not isinstance(bag.get("models"), list) or not bag["models"]:
        raise LoadError(f"{wanted} lists no models")
    return wanted, bag


def reads(folder: Path, names: set[str], variant: str, options: Mapping[str, Any]) -> Reads:
    """The bag yaml and one {sig}.safetensors per model it lists."""
    wanted, bag = _bag(folder, names, variant, options)
    sigs = [str(sig) for sig in bag["models"]]
    bad = [s for s in sigs if not _SIG.fullmatch(s)]
    if bad:
        raise LoadError(f"{wanted} names weights that are not plain signatures: {bad[0][:40]!r}")
    return Reads((wanted, *(f"{sig}.safetensors" for sig in sigs)))


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import demucs.apply
    import demucs.hf  # noqa: F401


def load(req: LoadRequest) -> tuple[Any, dict[str, Any]]:
    from demucs.apply import BagOfModels
    from demucs.hf import load_safetensors_model

    wanted, bag = _bag(req.folder, set(req.files), req.variant, req.options)
    models = [load_safetensors_model(req.files[f"{sig}.safetensors"]) for sig in bag["models"]]
    model = BagOfModels(models, bag.get("weights"), bag.get("segment"))
    model.eval()
    model.to(req.device)
    extra = {
        "bag": Path(wanted).stem,
        "sources": list(model.sources),
        "samplerate": int(model.samplerate),
        "audio_channels": int(model.audio_channels),
        "segment": float(model.max_allowed_segment),
        "models": len(models),
    }
    return model, extra


def placement(model: Any) -> str:
    return torch_placement(model)


def smoke(loaded: LoadedModel) -> tuple[str, dict[str, Any]]:
    """Separate 1 s of stereo; expect (sources, channels, samples) of finite values."""
    import torch
    from demucs.apply import apply_model

    from .loading import check
    from .signals import speech_like_stereo

    extra = loaded.extra
    samplerate, channels = extra["samplerate"], extra["audio_channels"]
    mix = speech_like_stereo(1.0, samplerate)[:channels]
    with torch.inference_mode():
        out = apply_model(loaded.model, torch.from_numpy(mix)[None], device=loaded.device,
                          shifts=0, split=True, progress=False)  # no random shift: repeatable
    shape = tuple(out.shape)
    expected = (1, len(extra["sources"]), channels, mix.shape[-1])
    check(shape == expected, loaded, f"demucs output shape {shape}, expected {expected}")
    check(bool(torch.isfinite(out).all()), loaded, "demucs output has NaN or inf")
    stems = shape[1:]
    summary = f"{stems[0]} stems ({', '.join(extra['sources'])}) x {stems[1]} channels x {stems[2]} samples"
    return summary, {"shape": list(stems), "sources": extra["sources"], "samplerate": samplerate}
