"""Figure E of scripts/bench.py (GitHub issue 11): the installed command's start-up.

`lyricsub-hub path NAME` and `lyricsub-hub status NAME` (the console script, as a container entrypoint calls it)
against a bare `python -c pass` and against huggingface_hub 2.x's own `hf cache ls` on the same cache. The index
is the size of the shipped one (its models plus the benchmark model); the cache is warm and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bench_support as bs
from bench_render import Row, ratio
from bench_support import PY, ROOT, WORK, child_env, median, ms

GOAL_EXTRA = 0.030  # `path` at most this much over bare Python
HF2 = ROOT / ".venv-hf2" / "bin" / "hf"


@dataclass
class CliStartup:
    repeats: int
    models: int  # in the index
    index_bytes: int
    times: dict[str, float]  # bare, path, status, hf (median seconds)
    hf_missing: str = ""
    loaded: dict[str, float] | None = None  # bare, path, status with one core kept busy by another process
    loaded_repeats: int = 0

    def rows(self) -> list[Row]:
        t = self.times
        what = f"index of {self.models} models, warm recorded cache"
        rows = []
        for label, times in (("", t), (", one of the cores kept busy by another process", self.loaded or {})):
            if not times:
                continue
            for key in ("path", "status"):
                extra = times[key] - times["bare"]
                rows.append(Row(f"E. Start-up: `lyricsub-hub {key} NAME` (console script) vs `python -c pass`, {what}{label}",
                                ms(times[key]), ms(times["bare"]), ratio(times[key], times["bare"]),
                                f"≤ bare + 30 ms (+{extra * 1e3:.1f} ms)", extra <= GOAL_EXTRA))
        for key in ("path", "status"):
            if "hf" in t:
                rows.append(Row(f"E. Start-up: `lyricsub-hub {key} NAME` vs huggingface_hub 2.x `hf cache ls` on the same cache",
                                ms(t[key]), ms(t["hf"]), ratio(t[key], t["hf"]), "— (report)", None))
            else:
                rows.append(Row(f"E. Start-up: `lyricsub-hub {key} NAME` vs `hf cache ls`", ms(t[key]), self.hf_missing, "—",
                                "— (report)", None))
        return rows

    def notes(self) -> list[str]:
        return [f"Figure E: {self.repeats} fresh processes of each, interleaved, after one untimed run of each (bytecode "
                "written under the pycache prefix, the parsed index cached in the state folder, files in the page cache); "
                "median wall time seen by the parent. Ours is the console script with LYRICSUB_MODEL_INDEX, HF_HUB_CACHE "
                f"and LYRICSUB_STATE_DIR set, the index {self.index_bytes} bytes ({self.models} models: the shipped "
                "model_index.yaml's and the benchmark model). `hf cache ls --cache-dir CACHE` runs from .venv-hf2 with "
                "HF_ENDPOINT at the loopback hub: at start it asks {HF_ENDPOINT}/api/agent-harnesses (404 here), which "
                "is part of its time." + (f" Then {self.loaded_repeats} more of bare, path and status the same way while "
                "another process spins on one core (`python -c 'while True: pass'`): the machine half busy, as when a "
                "container starts beside other work." if self.loaded else "")]


def fig_cli_startup(hub, cache: Path, state: Path, model: bs.HubModel, plan) -> CliStartup:
    from lyricsub_hub import load_index

    shipped = load_index(ROOT / "model_index.yaml")
    index = bs.write_index(WORK / "cli" / "index.yaml", [*shipped.models.values(), model],
                           {**{k: list(v) for k, v in shipped.sets.items()}, "bench": [model.name]})
    script = bs.console_script()
    ours_env = child_env(LYRICSUB_MODEL_INDEX=index, HF_HUB_CACHE=cache, LYRICSUB_STATE_DIR=state)
    cmds: dict[str, tuple[list[str], dict[str, str]]] = {
        "bare": ([PY, "-c", "pass"], child_env()),
        "path": (script + ["path", model.name], ours_env),
        "status": (script + ["status", model.name], ours_env),
    }
    hf_missing = ""
    if HF2.is_file():
        cmds["hf"] = ([str(HF2), "cache", "ls", "--cache-dir", str(cache)], child_env(HF_ENDPOINT=hub.endpoint))
    else:
        hf_missing = "`.venv-hf2/bin/hf` is missing (make install-hf2)"
    for key, (cmd, env) in cmds.items():  # untimed: bytecode, index cache, page cache
        child = bs.run_child(cmd, env)
        if child.rc != 0:
            raise RuntimeError(f"{key}: {' '.join(cmd)} failed (exit {child.rc}): {child.stderr.strip()[-1500:]}")
    snapshot = cache / f"models--{model.repo.replace('/', '--')}" / "snapshots" / model.commit
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for i in range(plan.proc_repeats):
        for key in bs.rotate(list(cmds), i):
            cmd, env = cmds[key]
            child = bs.run_child(cmd, env)
            assert child.rc == 0, (key, child.stderr)
            if key == "path":
                assert child.stdout.strip() == str(snapshot), child.stdout
            elif key == "hf":
                assert model.repo in child.stdout, child.stdout
            times[key].append(child.seconds)
    loaded = _loaded({k: cmds[k] for k in ("bare", "path", "status")}, plan.loaded_repeats)
    return CliStartup(plan.proc_repeats, len(shipped.models) + 1, index.stat().st_size,
                      {k: median(v) for k, v in times.items()}, hf_missing, loaded, plan.loaded_repeats)


def _loaded(cmds: dict[str, tuple[list[str], dict[str, str]]], repeats: int) -> dict[str, float]:
    """The same start-ups while another process keeps one core busy."""
    import subprocess

    hog = subprocess.Popen([PY, "-c", "while True: pass"])
    try:
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(repeats):
            for key in bs.rotate(list(cmds), i):
                cmd, env = cmds[key]
                child = bs.run_child(cmd, env)
                assert child.rc == 0, (key, child.stderr)
                times[key].append(child.seconds)
    finally:
        hog.kill()
        hog.wait()
    return {k: median(v) for k, v in times.items()}
