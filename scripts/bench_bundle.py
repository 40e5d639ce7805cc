#!/usr/bin/env python3
"""Bundle throughput: `lyricsub-hub export` and `lyricsub-hub import` against `tar -cf` and `tar -xf` of the same
files, side by side in one run (each of ours hashes every byte; tar hashes none). Goal: at least 0.8x of tar.

    .venv/bin/python scripts/bench_bundle.py [WORK_DIR] [--size-mib N] [--repeats N]

bundle_figures(work_dir) builds a cache of a few hundred MB with the loopback test Hub, then times, interleaved:
export (a fresh process, as a user runs it) against `tar -cf` of the model folders, and import into an empty cache
against `tar -xf` into an empty folder. Everything is in the page cache for both. The same bundle once with zstd,
and the library calls without a process start, are reported for information.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_support as bs

MIB = 1 << 20
GOAL = 0.8


def _models(work: Path, size_mib: int) -> dict[str, dict[str, object]]:
    """Three models shaped like real ones: a big weights file or two, configs, a tokenizer; about size_mib in all."""
    big = size_mib * MIB // 4
    data = work / "data"
    return {
        "demucs:bench-a": {"htdemucs.yaml": b"models: ['a', 'b']\n", "a.th": bs.random_file(data / "a.th", big),
                           "b.th": bs.random_file(data / "b.th", big)},
        "whisper:bench-b": {"config.json": b'{"bench": 1}\n', "model.bin": bs.random_file(data / "model.bin", big),
                            "tokenizer.json": bs.random_file(data / "tokenizer.json", 2 * MIB),
                            "vocabulary.json": b'{"a": 0}\n'},
        "align:bench-c": {"config.json": b'{"bench": 2}\n', "model.safetensors": bs.random_file(data / "w.st", big - 2 * MIB)},
    }


def _cache(work: Path, size_mib: int) -> tuple[Path, Path, list[str], int]:
    """Warm the models through ModelDownloader from the test Hub: (index, cache, model folders, payload bytes)."""
    from lyricsub_hub import ModelDownloader, ModelManager
    from lyricsub_hub.testing.hub import TestHub

    cache = work / "cache"
    with TestHub() as hub:
        models = [bs.publish(hub, name, f"bench/{name.split(':')[1]}", files) for name, files in _models(work, size_mib).items()]
        index = bs.write_index(work / "index.yaml", models, sets={"bench": [m.name for m in models]})
        mgr = ModelManager(index, cache, state_dir=work / "state", endpoint=hub.endpoint)
        results = ModelDownloader(mgr, connections=4).download_models([m.name for m in models])
        failed = [r.error for r in results if not r.success]
        if failed:
            raise RuntimeError(f"warming the bench cache failed: {failed}")
    folders = ["models--" + m.repo.replace("/", "--") for m in models]
    return index, cache, folders, sum(m.total for m in models)


def _cli(*args: str) -> list[str]:
    return [*bs.console_script(), *args]  # as users run it (and as figures E and J do)


def _run(cmd: list[str], env: dict[str, str]) -> float:
    child = bs.run_child(cmd, env)
    if child.rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed (exit {child.rc}): {child.stderr.strip()[-1500:]}")
    return child.seconds


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def bundle_figures(work_dir: Path, *, size_mib: int = 512, repeats: int = 5) -> dict:
    """Seconds, MB/s and ratios (tar's time over ours: 1.0 = as fast as tar, higher is better) for export and import.

    Each repeat runs every contender once, in a rotating order, after os.sync() (so no run pays for the previous
    one's writeback); figures are medians. "cli" is the command as a user runs it (a fresh Python process:
    about 0.1 s of start-up, index and cache checks); "library" is export_file / import_bundle in this process.
    """
    from lyricsub_hub import ModelManager
    from lyricsub_hub.bundles.bundle import export_file, import_bundle, plan_export

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    state = work / "state"
    index, cache, folders, payload = _cache(work, size_mib)
    out = work / "out"
    out.mkdir(exist_ok=True)
    bundle, ref = out / "models.tar", out / "ref.tar"
    mgr = ModelManager(index, cache, state_dir=state)
    plan = plan_export(mgr.cache, mgr.index.expand([], "bench"))
    bs.read_through([p for p in cache.rglob("*") if p.is_file()])

    def export_cli() -> None:
        _run(_cli("export", "--set", "bench", "-o", str(bundle), "--index", str(index), "--cache-dir", str(cache)),
             bs.child_env(LYRICSUB_STATE_DIR=str(state)))

    def export_lib() -> None:
        export_file(plan, bundle)

    def tar_c() -> None:
        _run(["tar", "-cf", str(ref), "-C", str(cache), *folders], bs.child_env())

    def import_cli() -> None:
        _run(_cli("import", str(bundle), "--index", str(index), "--cache-dir", str(work / "import-cache")),
             bs.child_env(LYRICSUB_STATE_DIR=str(work / "istate")))

    def import_lib() -> None:
        other = ModelManager(index, work / "import-cache", state_dir=work / "istate")
        with open(bundle, "rb", buffering=0) as fh:
            result = import_bundle(other.cache, other.index, fh)
        if not result.ok:
            raise RuntimeError(f"import failed: {[str(m.error) for m in result.models if m.error]}")

    def tar_x() -> None:
        _run(["tar", "-xf", str(ref), "-C", str(work / "tar-x")], bs.child_env())

    export_cli()  # untimed: the bundle and the reference tar exist before the first import, bytecode is compiled
    tar_c()
    import_cli()
    exports = {"export_cli": export_cli, "export_lib": export_lib, "tar_c": tar_c}
    imports = {"import_cli": import_cli, "import_lib": import_lib, "tar_x": tar_x}
    times: dict[str, list[float]] = {k: [] for k in (*exports, *imports)}
    for i in range(repeats):
        for group, reset in ((exports, _reset_outputs(bundle, ref)), (imports, _reset_targets(work))):
            keys = list(group)
            for key in keys[i % len(keys):] + keys[: i % len(keys)]:
                reset(key)
                os.sync()
                started = time.perf_counter()
                group[key]()
                times[key].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    figures: dict[str, object] = {"payload_bytes": payload, "bundle_bytes": bundle.stat().st_size, "repeats": repeats,
                                  "goal": GOAL, "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    for key, seconds in med.items():
        figures[f"{key}_s"] = round(seconds, 4)
        figures[f"{key}_MBps"] = round(payload / seconds / 1e6, 1)
    for ours, tar in (("export_cli", "tar_c"), ("export_lib", "tar_c"), ("import_cli", "tar_x"), ("import_lib", "tar_x")):
        figures[f"{ours}_ratio"] = round(statistics.median(t / o for t, o in zip(times[tar], times[ours])), 3)
    figures["export_ratio"], figures["import_ratio"] = figures["export_cli_ratio"], figures["import_cli_ratio"]
    figures["met"] = min(figures["export_lib_ratio"], figures["import_lib_ratio"]) >= GOAL  # type: ignore[call-overload]
    figures.update(_zstd_figures(work, mgr, plan, index, payload))
    return figures


def _reset_outputs(bundle: Path, ref: Path):
    def reset(key: str) -> None:
        (ref if key == "tar_c" else bundle).unlink(missing_ok=True)

    return reset


def _reset_targets(work: Path):
    def reset(key: str) -> None:
        for name in ("import-cache", "istate", "tar-x"):
            shutil.rmtree(work / name, ignore_errors=True)
        (work / "tar-x").mkdir()

    return reset


def _zstd_figures(work: Path, mgr, plan, index: Path, payload: int) -> dict:
    """The same bundle compressed with zstd, once each way (information, not the goal: weights hardly compress)."""
    from lyricsub_hub import ModelManager
    from lyricsub_hub.bundles.bundle import export_file, import_bundle

    path = work / "out" / "models.tar.zst"
    os.sync()
    report = export_file(plan, path)
    target = _fresh(work / "zstd-import")
    other = ModelManager(index, target, state_dir=_fresh(work / "zstd-state"))
    os.sync()
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        result = import_bundle(other.cache, other.index, fh)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError("zstd import failed")
    shutil.rmtree(target, ignore_errors=True)
    return {"zstd_bundle_bytes": report.written, "zstd_export_MBps": round(payload / report.seconds / 1e6, 1),
            "zstd_import_MBps": round(payload / seconds / 1e6, 1)}


def main(argv: list[str]) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", nargs="?", type=Path)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    bs.isolate()
    work = args.work or bs.WORK / "bundle"
    try:
        figures = bundle_figures(work, size_mib=args.size_mib, repeats=args.repeats)
    finally:
        shutil.rmtree(bs.WORK, ignore_errors=True)
        if args.work is not None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
