"""pyannote speaker diarization pipelines (and the pyannote models they use), from verified snapshots.

A pipeline's config.yaml names what pyannote will load: `$model/<sub>` folders of
the same snapshot, or other Hub repos (speaker-diarization-3.1 names
segmentation-3.0 and wespeaker). Each must be pinned: a folder's files in this
model's entry, a Hub repo as a `requires` entry of the index. The loader then
hands pyannote a rewritten config whose every reference is a verified local
path, so pyannote never resolves anything through the Hub or refs/main of some
other cache. (pyannote unpickles checkpoints: loading is running code.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.checks import is_repo_id, safe_file_name
from ..errors import LoadError
from .base import LoadedModel, LoadRequest, Reads
from .devices import torch_placement

SMOKE_SECONDS = 6.0
COMMUNITY = "pyannote/speaker-diarization-community-1"  # where pyannote takes a PLDA from when a config names none
_FILES = {"plda": ("xvec_transform.npz", "plda.npz")}


def _config(folder: Path) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict) or not isinstance(config.get("pipeline"), dict):
        raise LoadError("config.yaml has no 'pipeline' section")
    return config


def _references(config: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(param, $model sub-folder) pairs and the Hub repos a pipeline config names."""
    params = config["pipeline"].get("params") or {}
    if not isinstance(params, dict):
        raise LoadError("config.yaml: pipeline.params must be a mapping")
    subs: list[tuple[str, str]] = []
    repos: list[str] = []
    for key, value in params.items():
        target = value.get("checkpoint") if isinstance(value, dict) else value
        if not isinstance(target, str):
            continue
        if target.startswith("$model/"):
            sub = target[len("$model/"):]
            if not safe_file_name(sub):
                raise LoadError(f"config.yaml: {key} names a folder outside the snapshot: {sub[:60]!r}")
            subs.append((str(key), sub))
        elif is_repo_id(target):
            repos.append(target)
        elif "/" in target or target.startswith(("~", ".")):
            raise LoadError(f"config.yaml: {key} names a local path ({target[:60]!r}); only pinned files may be loaded")
    if "plda" not in params and str(config["pipeline"].get("name", "")).endswith("SpeakerDiarization"):
        repos.append(COMMUNITY)  # pyannote would fetch community-1's PLDA from the Hub by itself
    return subs, repos


def reads(folder: Path, names: set[str], variant: str, options: Mapping[str, Any]) -> Reads:
    if "config.yaml" not in names:
        if "pytorch_model.bin" in names:
            return Reads(("pytorch_model.bin",))  # a pyannote model (segmentation, embedding) of its own
        raise LoadError("neither a pipeline (config.yaml) nor a model (pytorch_model.bin) is pinned")
    subs, repos = _references(_config(folder))
    files = ["config.yaml"]
    for key, sub in subs:
        wanted = [f"{sub}/{f}" for f in _FILES.get(key, ("pytorch_model.bin",))]
        missing = [w for w in wanted if w not in names]
        if missing:
            raise LoadError(f"config.yaml loads {', '.join(missing)}, which the index does not pin")
        files += wanted
    return Reads(tuple(files), tuple(dict.fromkeys(repos)))


def import_libraries() -> None:
    """Imported apart from loading, so load_seconds measures the model, not the import."""
    import pyannote.audio  # noqa: F401


def load(req: LoadRequest) -> tuple[Any, dict[str, Any]]:
    import torch

    if "config.yaml" not in req.files:
        from pyannote.audio import Model

        model = Model.from_pretrained(str(req.files["pytorch_model.bin"]), strict=False)
        if model is None:
            raise LoadError("pyannote could not load pytorch_model.bin", model=req.name)
        model.eval()
        model.to(torch.device(req.device))
        return model, {"kind": "model", "class": type(model).__name__}
    config = _config(req.folder)
    subs, repos = _references(config)
    params = config["pipeline"].setdefault("params", {})
    for key, sub in subs:
        params[key] = str(req.folder / sub)
    for key, value in list(params.items()):
        target = value.get("checkpoint") if isinstance(value, dict) else value
        if isinstance(target, str) and is_repo_id(target):
            params[key] = str(req.requires[target])
    if COMMUNITY in repos and "plda" not in params:
        params["plda"] = str(req.requires[COMMUNITY] / "plda")
    config.pop("device", None)
    import yaml
    from pyannote.audio import Pipeline

    with tempfile.TemporaryDirectory(prefix="lyricsub-pyannote-") as tmp:
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        pipeline = Pipeline.from_pretrained(tmp, token=None)
    if pipeline is None:
        raise LoadError("pyannote could not build a pipeline from config.yaml", model=req.name)
    pipeline.to(torch.device(req.device))
    extra = {
        "kind": "pipeline",
        "pipeline": config["pipeline"].get("name", type(pipeline).__name__),
        "hub_references": repos,
        "speakers": {k: req.options[k] for k in ("num_speakers", "min_speakers", "max_speakers") if k in req.options},
    }
    return pipeline, extra


def placement(model: Any) -> str:
    """A model's parameters; for a pipeline, those of the segmentation model it runs."""
    for inference in (getattr(model, "_inferences", None) or {}).values():
        inner = getattr(inference, "model", None) or getattr(inference, "model_", None)
        if inner is not None and hasattr(inner, "parameters"):
            return torch_placement(inner)
    return torch_placement(model)


def smoke(loaded: LoadedModel) -> tuple[str, dict[str, Any]]:
    import torch

    from .loading import check
    from .signals import speech_like

    if loaded.extra.get("kind") == "model":
        chunk = torch.from_numpy(speech_like(5.0, 16000))[None, None].to(torch.device(loaded.device))
        with torch.inference_mode():
            out = loaded.model(chunk)
        out = out[0] if isinstance(out, (tuple, list)) else out
        check(bool(torch.isfinite(out).all()), loaded, "model output has NaN or inf")
        return f"{type(loaded.model).__name__} output {tuple(out.shape)}", {"shape": list(out.shape)}
    from pyannote.core import Annotation

    audio = speech_like(SMOKE_SECONDS, 16000)
    output = loaded.model({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000},
                          **loaded.extra.get("speakers", {}))
    annotation = getattr(output, "speaker_diarization", output)  # pyannote 4: DiarizeOutput
    check(isinstance(annotation, Annotation), loaded, f"diarization returned {type(output).__name__}, not an Annotation")
    turns = list(annotation.itertracks(yield_label=True))
    for segment, _, _ in turns:
        check(0.0 <= segment.start <= segment.end <= SMOKE_SECONDS + 0.5, loaded, f"turn out of range: {segment}")
    speakers = sorted(annotation.labels())
    summary = f"{len(speakers)} speaker(s), {len(turns)} turn(s) in {SMOKE_SECONDS:g} s"
    return summary, {"speakers": speakers, "turns": len(turns), "output": type(output).__name__}
