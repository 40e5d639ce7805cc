"""Demucs 4.1 from a local snapshot of an adefossez/* repo: ``{name}.yaml`` + ``{sig}.safetensors``.

Does what demucs.hf.get_hf_model does after its downloads, so the result is the
same BagOfModels that ``demucs.pretrained.get_model(name)`` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import LoadError
from ..index import ModelSpec

OPTIONS = frozenset({"name"})  # the bag name when it differs from the variant


def _bag_yaml(spec: ModelSpec, folder: Path, name: str | None) -> Path:
    wanted = folder / f"{name or spec.variant}.yaml"
    if wanted.is_file():
        return wanted
    found = sorted(folder.glob("*.yaml"))
    if len(found) == 1 and name is None:
        return found[0]
    listed = ", ".join(p.name for p in found) or "none"
    raise LoadError(f"no {wanted.name} in {folder} (yaml files: {listed})", model=spec.name)


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import demucs.apply  # noqa: F401
    import demucs.hf  # noqa: F401


def load(spec: ModelSpec, folder: Path, device: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import yaml
    from demucs.apply import BagOfModels
    from demucs.hf import load_safetensors_model

    bag_file = _bag_yaml(spec, folder, options.get("name"))
    bag = yaml.safe_load(bag_file.read_text(encoding="utf-8"))
    if not isinstance(bag, dict) or not bag.get("models"):
        raise LoadError(f"{bag_file.name} lists no models", model=spec.name)
    models = []
    for sig in bag["models"]:
        weights = folder / f"{sig}.safetensors"
        if not weights.is_file():
            raise LoadError(f"{bag_file.name} names {weights.name}, which is not in the snapshot", model=spec.name)
        models.append(load_safetensors_model(weights))
    model = BagOfModels(models, bag.get("weights"), bag.get("segment"))
    model.eval()
    model.to(device)
    extra = {
        "bag": bag_file.stem,
        "sources": list(model.sources),
        "samplerate": int(model.samplerate),
        "audio_channels": int(model.audio_channels),
        "segment": float(model.max_allowed_segment),
        "models": len(models),
    }
    return model, extra


def smoke(loaded: Any) -> tuple[str, dict[str, Any]]:
    """Separate 1 s of stereo; expect (sources, channels, samples) of finite values."""
    import torch
    from demucs.apply import apply_model

    from . import check
    from ..testing.tiny_models import speech_like_stereo

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
