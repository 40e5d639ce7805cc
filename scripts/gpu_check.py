#!/usr/bin/env python3
"""`make gpu-check`: every model family loaded and run on a real GPU, with tiny real models and no internet.

Builds the tiny models (Demucs, faster-whisper, wav2vec2, pyannote), serves them from the loopback test Hub,
warms a throwaway cache from it, goes offline, then for each model and each of --device cuda and cuda:0:
loads it through ModelManager, checks its weights ended up on cuda:0 (LoadedModel.device and SmokeReport.device),
runs the smoke test, and measures load time, run time and the peak GPU memory torch allocated (reset per run).
Prints one table and writes the same as JSON (--out, default .bench/gpu_check.json). A family this machine's GPU
stack cannot run (a CUDA library CTranslate2 opens is missing, torch has no kernels for this GPU) gets a row saying
why in the words `load` uses; the summary keeps "our code failed" apart from "the machine's stack lacks X".
Exit 0: every check passed; 1: our code failed somewhere; 2: only the machine's stack lacked something.

Without a GPU it says so in one line and exits 0, building nothing. No internet needed; the models are tiny, so
the run is mostly imports and CUDA start-up (budget: under five minutes on one GPU).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("cuda", "cuda:0")
EXPECTED = "cuda:0"  # where both must put the weights
MB = 10**6


def no_gpu() -> str | None:
    """One line saying why there is nothing to check here, or None when torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return "gpu-check: skipped, torch is not installed (no GPU to check)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA initialization: ..." when there is no driver
        if torch.cuda.is_available():
            return None
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return f"gpu-check: skipped, torch {torch.__version__} ({build}) sees no CUDA GPU here"


def isolate(work: Path) -> None:
    """A throwaway HF home and state folder, no telemetry; set before huggingface_hub is imported."""
    os.environ.update({
        "HF_HOME": str(work / "hf"), "LYRICSUB_STATE_DIR": str(work / "state"), "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYANNOTE_METRICS_ENABLED": "false",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN"):
        os.environ.pop(var, None)


def quiet() -> None:
    """The speech libraries warn and log a lot on import and load; the table is what this script is for."""
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.disable(logging.WARNING)


def warm(work: Path) -> tuple[Path, list[str]]:
    """Tiny models built, published on the loopback Hub and downloaded into work/hf/hub; the index path and names."""
    from lyricsub_hub.manager import ModelManager
    from lyricsub_hub.testing.catalog import TINY, TOKEN, make_tiny, publish_index
    from lyricsub_hub.testing.hub import TestHub

    tiny = make_tiny(work / "tiny")
    with TestHub() as hub:
        index = publish_index(hub, tiny, work / "model_index.yaml")
        online = ModelManager(index, work / "hf" / "hub", state_dir=work / "state", endpoint=hub.endpoint, token=TOKEN)
        failed = [r for r in online.downloader().download_models(list(TINY)) if not r.success]
    if failed:
        raise SystemExit(f"gpu-check: warming the tiny models failed: {failed[0].error}")
    return index, list(TINY)


def measure(mgr: Any, name: str, device: str) -> dict[str, Any]:
    """Load and smoke-run one model on one device; the row of the table (ok False with the error on failure, and
    cause "stack" when the machine's GPU stack cannot run it, "code" otherwise)."""
    import torch

    from lyricsub_hub.errors import GpuStackError
    from lyricsub_hub.families import loading

    row: dict[str, Any] = {"model": name, "family": mgr.spec(name).family, "device": device}
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(0)
    free_before = torch.cuda.mem_get_info(0)[0]
    try:
        loaded = mgr.load(name, device=device)
        torch.cuda.synchronize()
        report = loading.smoke(loaded)
        torch.cuda.synchronize()
    except GpuStackError as exc:  # the machine's stack, refused before loading: load's own words
        return {**row, "ok": False, "cause": "stack", "lacks": list(exc.lacks), "error": exc.message}
    except Exception as exc:  # one failed family must not hide the others: its row says what went wrong
        return {**row, "ok": False, "cause": "code", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    row.update(loaded_on=loaded.device, reported_on=report.device, load_s=round(report.load_seconds, 3),
               run_s=round(report.run_seconds, 3), peak_torch_bytes=int(torch.cuda.max_memory_allocated(0)),
               gpu_used_bytes=int(free_before - torch.cuda.mem_get_info(0)[0]), summary=report.summary)
    problems = [f"{what} says {where}, expected {EXPECTED}"
                for what, where in (("LoadedModel.device", loaded.device), ("SmokeReport.device", report.device))
                if where != EXPECTED]
    row.update(ok=not problems, error="; ".join(problems) or None, cause="code" if problems else None)
    del loaded, report
    gc.collect()
    torch.cuda.empty_cache()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'family':<8} {'model':<22} {'device':<7} {'on':<7} {'load s':>7} {'run s':>7} {'peak MB':>8} {'used MB':>8}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "load_s" in r:
            lines.append(f"{r['family']:<8} {r['model']:<22} {r['device']:<7} {r['loaded_on']:<7} {r['load_s']:>7.2f} "
                         f"{r['run_s']:>7.2f} {r['peak_torch_bytes'] / MB:>8.1f} {r['gpu_used_bytes'] / MB:>8.1f}  "
                         f"{'yes' if r['ok'] else 'NO: ' + r['error']}")
        else:
            verdict = "CANNOT RUN HERE" if r.get("cause") == "stack" else "NO"
            lines.append(f"{r['family']:<8} {r['model']:<22} {r['device']:<7} {'-':<7} {'':>7} {'':>7} {'':>8} {'':>8}  "
                         f"{verdict}: {r['error']}")
    lines.append("peak MB: torch.cuda.max_memory_allocated, reset per run (CTranslate2, under faster-whisper, allocates "
                 "outside torch); used MB: the drop in free GPU memory the driver reports")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Two lines that keep apart what is ours to fix and what the machine lacks, and the exit code."""
    ours = [r for r in rows if not r["ok"] and r.get("cause") != "stack"]
    stack = [r for r in rows if not r["ok"] and r.get("cause") == "stack"]
    lacks: dict[str, list[str]] = {}
    for r in stack:
        for item in r.get("lacks") or ["?"]:
            lacks.setdefault(item, [])
            if r["model"] not in lacks[item]:
                lacks[item].append(r["model"])
    lines = [
        "our code failed: " + ("; ".join(f"{r['model']} on {r['device']}: {r['error']}" for r in ours) if ours else "nowhere"),
        "the machine's stack lacks: " + ("; ".join(f"{item} (for {', '.join(models)})" for item, models in lacks.items())
                                         if lacks else "nothing these families need"),
    ]
    return lines, 1 if ours else 2 if stack else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "gpu_check.json", help="the JSON file")
    parser.add_argument("--work", type=Path, help="folder for the models and the cache (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    why = no_gpu()
    if why:
        print(why)
        return 0
    started = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="lyricsub-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        isolate(work)
        quiet()
        index, names = warm(work)
        import ctranslate2
        import torch

        from lyricsub_hub.core.env import go_offline
        from lyricsub_hub.families.cudalibs import driver_version
        from lyricsub_hub.manager import ModelManager

        go_offline()  # the loads below read the cache only
        mgr = ModelManager(index, work / "hf" / "hub", state_dir=work / "state")
        rows = [measure(mgr, name, device) for name in names for device in DEVICES]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(r["ok"] for r in rows)
    lines, code = summary(rows)
    major, minor = torch.cuda.get_device_capability(0)
    doc = {"schema": 2, "ok": ok, "gpu": torch.cuda.get_device_name(0), "sm": f"sm_{major}{minor}",
           "driver": driver_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "ctranslate2": ctranslate2.__version__, "seconds": round(time.monotonic() - started, 1), "rows": rows,
           "summary": lines}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"gpu-check on {doc['gpu']} ({doc['sm']}, driver {doc['driver'] or 'unknown'}; torch {doc['torch']}, CUDA "
          f"{doc['cuda']}; ctranslate2 {doc['ctranslate2']})")
    print(table(rows))
    print("\n".join(lines))
    print(f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} in {doc['seconds']} s; JSON: {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
