"""Work that scripts/bench.py measures in a fresh process; each command prints one JSON line.

    bench_child.py download-ours INDEX CACHE STATE ENDPOINT NAME CONNECTIONS [split_min=BYTES] [max_rate=RATE]
    bench_child.py download-hf REPO COMMIT CACHE ENDPOINT [verify]
    bench_child.py make-tiny OUTDIR
    bench_child.py load INDEX CACHE STATE NAME=REPEATS...

The HF_* variables come from the parent's environment. Both download commands import
huggingface_hub before the clock starts, so neither pays for it inside the timing.
"""

from __future__ import annotations

import functools
import gc
import json
import statistics
import sys
import time
from pathlib import Path


def download_ours(index: str, cache: str, state: str, endpoint: str, name: str, connections: str, *options: str) -> dict:
    """ModelDownloader(connections=N), N=0 for none given (the default ceiling); split_min=BYTES sets download.plan.SPLIT_MIN in this process only (the split
    threshold figure measures what segmenting would give below the shipped threshold), max_rate=RATE the cap."""
    import huggingface_hub  # noqa: F401  (ModelDownloader imports it lazily; keep the import out of the clock)
    from huggingface_hub import get_hf_file_metadata, hf_hub_download  # noqa: F401

    from lyricsub_hub import ModelDownloader, ModelManager
    from lyricsub_hub.download import plan

    opts = dict(o.split("=", 1) for o in options)
    if "split_min" in opts:
        plan.SPLIT_MIN = int(opts["split_min"])  # FilePlan.split reads the module's value when it is asked
    dl = ModelDownloader(ModelManager(index, cache, state_dir=state, endpoint=endpoint), connections=int(connections) or None,
                         max_rate=opts.get("max_rate") or None)
    started = time.perf_counter()
    result = dl.download_model(name)
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"ModelDownloader failed: {result.error}")
    engine = dl._engine
    extra = {} if engine is None else {"held": engine.controller.held, "peak": engine.controller.peak,
                                       "refusals": engine.refusals}
    return {"seconds": seconds, "bytes": result.bytes_fetched, **extra}


def download_hf(repo: str, commit: str, cache: str, endpoint: str, verify: str = "") -> dict:
    """snapshot_download; with `verify`, then sha256 of each file: the check ModelDownloader makes while downloading."""
    import hashlib

    from huggingface_hub import get_hf_file_metadata, hf_hub_download, snapshot_download  # noqa: F401

    started = time.perf_counter()
    folder = snapshot_download(repo, revision=commit, cache_dir=cache, endpoint=endpoint)
    if verify:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                with open(path, "rb") as fh:
                    hashlib.file_digest(fh, "sha256")
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return {"seconds": seconds, "bytes": size}


def make_tiny(out: str) -> dict:
    from lyricsub_hub.testing.tiny_models import make_demucs, make_whisper

    make_demucs(Path(out) / "demucs")
    make_whisper(Path(out) / "whisper")
    return {"ok": True}


# --------------------------------------------------------------------------- figure 5

def _bare_demucs(folder: Path) -> None:
    """What demucs.hf.get_hf_model does after its downloads, then one separation: the library alone."""
    import torch
    import yaml
    from demucs.apply import BagOfModels, apply_model
    from demucs.hf import load_safetensors_model

    from lyricsub_hub.families.signals import speech_like_stereo

    bag = yaml.safe_load((folder / "htdemucs.yaml").read_text())
    model = BagOfModels([load_safetensors_model(folder / f"{sig}.safetensors") for sig in bag["models"]],
                        bag.get("weights"), bag.get("segment"))
    model.eval()
    mix = speech_like_stereo(1.0, 44100)
    with torch.inference_mode():
        out = apply_model(model, torch.from_numpy(mix)[None], device="cpu", shifts=0, split=True, progress=False)
    assert out.shape[1] == 4


def _bare_whisper(folder: Path) -> None:
    """whisperx.load_model on the snapshot folder, then one transcription with the same decoding options."""
    import os

    import whisperx

    from lyricsub_hub.families.signals import speech_like

    pipe = whisperx.load_model(str(folder), device="cpu", compute_type="int8", vad_method="pyannote",
                               asr_options={"beam_size": 1, "best_of": 1, "temperatures": [0.0]},
                               threads=min(4, os.cpu_count() or 1), local_files_only=True)
    result = pipe.transcribe(speech_like(4.0, 16000), batch_size=1, language="en")
    assert isinstance(result.get("segments"), list)


def load(index: str, cache: str, state: str, *wanted: str) -> dict:
    """wanted: NAME=REPEATS for each model."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)  # both sides alike: a busy second core would otherwise stall torch's thread team
    from lyricsub_hub import ModelManager

    mgr = ModelManager(index, cache, state_dir=state)
    out = {}
    for name, repeats in (w.rsplit("=", 1) for w in wanted):
        family = mgr.spec(name).family
        folder = mgr.get_model_path(name)
        bare = {"demucs": _bare_demucs, "whisper": _bare_whisper}[family]
        mgr.smoke_test(name, device="cpu")  # warm-up: imports, first-call caches
        bare(folder)
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        calls = {"ours": functools.partial(mgr.smoke_test, name, device="cpu"), "bare": functools.partial(bare, folder)}
        for i in range(int(repeats)):  # interleaved, order alternating, so drift and order hit both alike
            for key in (("ours", "bare") if i % 2 == 0 else ("bare", "ours")):
                gc.collect()  # the previous model's garbage is not collected inside the next timing
                t = time.perf_counter()
                calls[key]()
                times[key].append(time.perf_counter() - t)
        ours, lib = times["ours"], times["bare"]
        out[name] = {"family": family, "ours": statistics.median(ours), "bare": statistics.median(lib),
                     "ours_all": ours, "bare_all": lib}
    return out


COMMANDS = {"download-ours": download_ours, "download-hf": download_hf, "make-tiny": make_tiny, "load": load}

if __name__ == "__main__":
    result = COMMANDS[sys.argv[1]](*sys.argv[2:])
    print(json.dumps(result), flush=True)
