#!/usr/bin/env python3
"""Benchmarks of lyricsub-hub, each measured side by side with its anchor in one run; writes docs/benchmarks.md.

    .venv/bin/python scripts/bench.py             # full run (make bench), ~10-12 minutes, writes docs/benchmarks.md
    .venv/bin/python scripts/bench.py --quick     # small sizes, a smoke run; prints the report, writes only with --out
    .venv-hf2/bin/python scripts/bench.py --quick # huggingface_hub 2.x, no torch: the load figure is skipped

Everything runs against the loopback test Hub (lyricsub_hub.testing.hub) under .bench/, with its own HF_HOME
and state folder, and is removed at the end. One function per figure, each returning a small dataclass whose
rows() are the table rows; render() in bench_render.py turns them into markdown.

Figures 1-6 are the original ones; A-G are GitHub issue 11's (C is figure 3): A, B, D and F in bench_capped.py,
E in bench_cli.py, G from scripts/bench_bundle.py where that exists; H-J are issue 21's (bench_adapt.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bench_support as bs

bs.isolate()  # HF_* variables and an isolated HF_HOME, before anything can import huggingface_hub

from bench_adapt import fig_limited, fig_lines, fig_whole_command  # noqa: E402
from bench_capped import fig_model, fig_one_file, fig_rate_cap, fig_split  # noqa: E402
from bench_cli import fig_cli_startup  # noqa: E402
from bench_proxy import fig_proxy  # noqa: E402
from bench_render import Reliability, Row, ratio, render  # noqa: E402
from bench_support import GIB, MIB, PY, ROOT, SCRIPTS, WORK, blob, child_env, interleave, median, ms  # noqa: E402
from bench_transfer import fig_download, fig_memory  # noqa: E402


@dataclass(frozen=True)
class Plan:
    """Sizes and repeats: the full run, or --quick."""

    models: int = 10
    loops: int = 200  # get-path calls per timing (each over all models)
    repeats: int = 7
    proc_repeats: int = 31  # fresh interpreters for start-up
    loaded_repeats: int = 21  # E again with one core kept busy
    lookup_repeats: int = 15
    dl_files: tuple[int, ...] = (512 * MIB, 512 * MIB)
    dl_repeats: int = 5
    dl_warm_repeats: int = 3
    hash_size: int = GIB
    many: tuple[int, ...] = (256 * MIB,) * 4
    hash_repeats: int = 9
    verify_repeats: int = 9
    rss_sizes: tuple[int, ...] = (128 * MIB, 512 * MIB, GIB)
    rss_repeats: int = 3
    load_repeats: int = 13  # demucs (about 2.3 s a pair)
    load_repeats_whisper: int = 31  # whisper calls are shorter and vary more from call to call
    one_file: int = 256 * MIB  # A: one file over capped connections
    model_files: tuple[int, ...] = (96 * MIB,) * 3  # B: the large files of a model (plus 4 small ones)
    capped_repeats: int = 3
    rate_file: int = 256 * MIB  # D: 13.4 s at 20 MB/s
    split_sizes: tuple[int, ...] = tuple(n * MIB for n in (2, 4, 8, 16, 32, 64))  # F
    split_repeats: int = 3
    bundle_mib: int = 512  # G, passed to bench_bundle.bundle_figures where it takes them
    bundle_repeats: int = 5
    line_file: int = 512 * MIB  # H: one file over a capped line
    limited_file: int = 256 * MIB  # I: a host that answers 429 beyond 4 bodies
    cli_file: int = 128 * MIB  # J: the whole command vs aria2c
    adapt_repeats: int = 3


QUICK = Plan(models=3, loops=20, repeats=3, proc_repeats=5, loaded_repeats=3, lookup_repeats=3, dl_files=(16 * MIB, 16 * MIB),
             dl_repeats=1, dl_warm_repeats=1, hash_size=64 * MIB, many=(16 * MIB,) * 4, hash_repeats=2, verify_repeats=2,
             rss_sizes=(8 * MIB, 32 * MIB, 64 * MIB), rss_repeats=1, load_repeats=1, load_repeats_whisper=1,
             one_file=16 * MIB, model_files=(8 * MIB,) * 3, capped_repeats=1, rate_file=48 * MIB,
             split_sizes=(2 * MIB, 8 * MIB, 16 * MIB), split_repeats=1, bundle_mib=32, bundle_repeats=1,
             line_file=64 * MIB, limited_file=64 * MIB, cli_file=32 * MIB, adapt_repeats=1)


def pair(top: list[float], bottom: list[float]) -> float:
    """Median of the per-repeat ratios: each repeat runs both back to back, so a burst of other load hits both."""
    return median([t / b for t, b in zip(top, bottom)])


# --------------------------------------------------------------------------- shared warm cache (figures 1, 2, 4)

@dataclass
class WarmCache:
    index: Path
    cache: Path
    state: Path
    models: list[bs.HubModel]  # the timed ones, all pinned, cached and verified
    spare: bs.HubModel  # a model of the same kind, for the partial-snapshot demonstration


def build_warm_cache(hub, plan: Plan) -> WarmCache:
    """N small models shaped like real ones (config, weights, tokenizer), warmed through ModelDownloader."""
    from lyricsub_hub import ModelDownloader, ModelManager

    models = []
    for i in range(plan.models + 1):
        files = {"config.json": b'{"bench": %d}\n' % i, "model.safetensors": os.urandom(MIB),
                 "tokenizer.json": os.urandom(48 * 1024).hex().encode()}
        models.append(bs.publish(hub, f"whisper:bench-{i}", f"bench/warm-{i}", files))
    root = WORK / "warm"
    index = bs.write_index(root / "index.yaml", models, sets={"bench": [m.name for m in models[:-1]]})
    dl = ModelDownloader(ModelManager(index, root / "hub", state_dir=root / "state", endpoint=hub.endpoint))
    for m in models:
        result = dl.download_model(m.name)
        assert result.success, result.error
    return WarmCache(index, root / "hub", root / "state", models[:-1], models[-1])


# --------------------------------------------------------------------------- 1. warm path

@dataclass
class WarmPath:
    n: int
    files: int
    repeats: int
    loops: int
    ours: float  # seconds per model, median
    local: float
    online: float
    requests: dict[str, int]  # per pass over the N models
    checked: int  # files whose status came from a matching verification record
    partial_ours: str
    partial_local: str

    def rows(self) -> list[Row]:
        per = f"per model, N={self.n} pinned+cached+verified models"
        return [
            Row(f"1. Warm path: `get_model_path` vs `snapshot_download(local_files_only=True)`, {per}", ms(self.ours),
                ms(self.local), ratio(self.ours, self.local), "< 1 ms per model", self.ours < 1e-3),
            Row(f"1. Warm path: `get_model_path` vs `snapshot_download(revision=commit)` online, {per}", ms(self.ours),
                ms(self.online), ratio(self.ours, self.online), "< 1 ms per model", self.ours < 1e-3),
            Row(f"1. HTTP requests for {self.n} lookups (test Hub log)", str(self.requests["ours"]),
                f"online {self.requests['online']}, local-only {self.requests['local']}", "—", "0", self.requests["ours"] == 0),
            Row("1. Files checked against their verification record (stat + record)", f"{self.checked}/{self.n * self.files}",
                f"local-only 0/{self.n * self.files}", "—", "every file", self.checked == self.n * self.files),
            Row("1. One file of a snapshot deleted", self.partial_ours, f"local-only: {self.partial_local}", "—",
                "never return a partial snapshot", self.partial_ours.startswith("partial")),
        ]

    def notes(self) -> list[str]:
        return [f"Figure 1: {self.repeats} repeats of {self.loops} passes over the {self.n} models (online: fewer passes), "
                "interleaved, median, in one process with imports warm (the online anchor shares the process, and the GIL, "
                "with the test Hub). `local_files_only=True` checks no file, only that the snapshot folder exists: "
                f"after deleting one file of a cached snapshot it {self.partial_local}, while ours answered "
                f"`{self.partial_ours}`."]


def fig_warm_path(hub, wc: WarmCache, plan: Plan) -> WarmPath:
    from huggingface_hub import snapshot_download

    from lyricsub_hub import ModelManager, ModelNotAvailableError

    mgr = ModelManager(wc.index, wc.cache, state_dir=wc.state)
    ours = lambda: [mgr.get_model_path(m.name) for m in wc.models]  # noqa: E731
    local = lambda: [snapshot_download(m.repo, revision=m.commit, cache_dir=wc.cache, local_files_only=True) for m in wc.models]  # noqa: E731
    online = lambda: [snapshot_download(m.repo, revision=m.commit, cache_dir=wc.cache, endpoint=hub.endpoint) for m in wc.models]  # noqa: E731
    assert [str(p) for p in ours()] == [str(p) for p in local()] == [str(p) for p in online()]
    requests = {}
    for key, call in (("ours", ours), ("local", local), ("online", online)):
        hub.clear_log()
        call()
        requests[key] = hub.count()
    loops = {"ours": plan.loops, "local": plan.loops, "online": max(1, plan.loops // 20)}
    times = interleave({"ours": ours, "local": local, "online": online}, plan.repeats, loops)
    checked = sum(f.checked == "record" for m in wc.models for f in mgr.status(m.name).files)
    # A snapshot with one file gone: what does each side say?
    spare = wc.spare
    (wc.cache / f"models--{spare.repo.replace('/', '--')}" / "snapshots" / spare.commit / "model.safetensors").unlink()
    try:
        folder = Path(snapshot_download(spare.repo, revision=spare.commit, cache_dir=wc.cache, local_files_only=True))
        present = sum(1 for f in spare.files if (folder / f).exists())
        partial_local = f"returned the folder ({present} of {len(spare.files)} files present)"
    except Exception as exc:
        partial_local = f"raised {type(exc).__name__}"
    try:
        mgr.get_model_path(spare.name)
        partial_ours = "returned the folder"
    except ModelNotAvailableError:
        partial_ours = f"{mgr.status(spare.name).status}: raises ModelNotAvailableError"
    return WarmPath(len(wc.models), len(wc.models[0].files), plan.repeats, plan.loops,
                    median([t / len(wc.models) for t in times["ours"]]), median([t / len(wc.models) for t in times["local"]]),
                    median([t / len(wc.models) for t in times["online"]]), requests, checked, partial_ours, partial_local)


# --------------------------------------------------------------------------- 2. start-up

@dataclass
class Startup:
    repeats: int
    lookup_repeats: int
    bare: float
    imported: float
    it_bare: int  # -X importtime, sum of self microseconds
    it_ours: int
    it_pkg: int  # cumulative microseconds of `lyricsub_hub` itself
    ours_lookup: float
    hf_lookup: float

    def rows(self) -> list[Row]:
        extra = self.imported - self.bare
        it_extra = (self.it_ours - self.it_bare) / 1e6
        return [
            Row("2. Start-up: fresh `python -c 'import lyricsub_hub'` vs `python -c pass` (wall)", ms(self.imported),
                ms(self.bare), ratio(self.imported, self.bare), f"≤ bare + 30 ms (+{extra * 1e3:.1f} ms)", extra <= 0.030),
            Row("2. Start-up: `-X importtime` total (sum of self times)", ms(self.it_ours / 1e6), ms(self.it_bare / 1e6),
                ratio(self.it_ours, self.it_bare), f"≤ bare + 30 ms (+{it_extra * 1e3:.1f} ms)", it_extra <= 0.030),
            Row("2. Fresh process: import + one model's path vs `import huggingface_hub` + `snapshot_download(local_files_only=True)`",
                ms(self.ours_lookup), ms(self.hf_lookup), ratio(self.ours_lookup, self.hf_lookup), "≤ 1.00×",
                self.ours_lookup <= self.hf_lookup),
        ]

    def notes(self) -> list[str]:
        return [f"Figure 2: {self.repeats} fresh interpreters each for bare/import, {self.lookup_repeats} each for the "
                f"look-ups, interleaved, after one untimed run of each; median wall time seen by the parent. "
                "Children run from bytecode (written under `.bench/` via PYTHONPYCACHEPREFIX), as an installed "
                f"package does. `import lyricsub_hub` itself: {self.it_pkg} µs cumulative in `-X importtime`."]


def fig_startup(wc: WarmCache, plan: Plan) -> Startup:
    m = wc.models[0]
    env = child_env()
    cmds = {"bare": [PY, "-c", "pass"], "imported": [PY, "-c", "import lyricsub_hub"]}
    ours_cmd = [PY, "-c", "import sys\nfrom lyricsub_hub import ModelManager\n"
                "print(ModelManager(sys.argv[1], sys.argv[2], state_dir=sys.argv[3]).get_model_path(sys.argv[4]))",
                str(wc.index), str(wc.cache), str(wc.state), m.name]
    hf_cmd = [PY, "-c", "import sys\nfrom huggingface_hub import snapshot_download\n"
              "print(snapshot_download(sys.argv[1], revision=sys.argv[2], cache_dir=sys.argv[3], local_files_only=True))",
              m.repo, m.commit, str(wc.cache)]
    for cmd in (*cmds.values(), ours_cmd, hf_cmd):  # one untimed run each: bytecode written, files in the page cache
        bs.run_child(cmd, env)
    times = {k: [] for k in cmds}
    for _ in range(plan.proc_repeats):
        for key, cmd in cmds.items():
            times[key].append(bs.run_child(cmd, env).seconds)
    it = {k: [] for k in cmds}
    for _ in range(max(3, plan.proc_repeats // 6)):
        for key, cmd in cmds.items():
            it[key].append(bs.importtime_total(bs.run_child([PY, "-X", "importtime", *cmd[1:]], env).stderr))
    look = {"ours": [], "hf": []}
    for _ in range(plan.lookup_repeats):
        outs = []
        for key, cmd in (("ours", ours_cmd), ("hf", hf_cmd)):
            child = bs.run_child(cmd, env)
            assert child.rc == 0, child.stderr
            outs.append(child.stdout.strip())
            look[key].append(child.seconds)
        assert outs[0] == outs[1], outs
    return Startup(plan.proc_repeats, plan.lookup_repeats, median(times["bare"]), median(times["imported"]),
                   int(median([t for t, _ in it["bare"]])), int(median([t for t, _ in it["imported"]])),
                   int(median([top.get("lyricsub_hub", 0) for _, top in it["imported"]])),
                   median(look["ours"]), median(look["hf"]))


# --------------------------------------------------------------------------- 4. verification

@dataclass
class Verification:
    size: int
    repeats: int
    ours: float
    plain: float
    many: tuple[int, ...]
    w1: float
    w2: float
    n: int
    verify_repeats: int
    inproc: float  # seconds per model, median
    inproc_deep: float
    cli: float
    cli_deep: float
    cli_one: float  # the CLI verifying one model: mostly interpreter start and imports
    hash_share: float  # median over repeats of hashlib time / ours (each repeat runs both back to back)
    speedup: float  # median over repeats of workers=1 time / workers=2 time

    def rows(self) -> list[Row]:
        rate = lambda s: f"{self.size / s / MIB:.0f} MiB/s"  # noqa: E731
        many = f"{len(self.many)} × {bs.size_label(self.many[0])}"
        return [
            Row(f"4. Deep verify of one {bs.size_label(self.size)} file: `digest_file` vs `hashlib.sha256`, 1 MiB reads, page cache",
                rate(self.ours), rate(self.plain), f"{self.hash_share:.2f}×", "≥ 0.90×", self.hash_share >= 0.90),
            Row(f"4. `digest_many` on {many}: workers=2 vs workers=1 (speed-up)", f"{self.w2:.2f} s", f"{self.w1:.2f} s",
                f"{self.speedup:.2f}×", "— (report; 2 cores, ideal 2.00×)", None),
            Row(f"4. Second `verify` of a recorded cache, in-process (`ModelManager.verify`), per model, N={self.n}", ms(self.inproc),
                f"--deep {ms(self.inproc_deep)}", ratio(self.inproc, self.inproc_deep), "< 10 ms per model", self.inproc < 0.010),
            Row(f"4. Second `lyricsub-hub verify --set bench` as a CLI process, wall / N, N={self.n}", ms(self.cli),
                f"--deep {ms(self.cli_deep)}", ratio(self.cli, self.cli_deep), "< 10 ms per model", self.cli < 0.010),
        ]

    def notes(self) -> list[str]:
        return [f"Figure 4: hashing {self.repeats} repeats each, interleaved, median, after one read-through so the files "
                f"are in the page cache. Hashing ratios are medians of the per-repeat ratios (both calls back to back): "
                f"hashlib time / ours, i.e. our share of hashlib's throughput, and workers=1 time / workers=2 time. "
                f"`verify`: {self.verify_repeats} repeats, interleaved with `--deep` (and, for the CLI, with a run "
                f"naming one model). The CLI figure is the process wall time / N and includes the interpreter's start "
                f"and imports: {ms(self.cli * self.n)} for all {self.n} models, {ms(self.cli_one)} for one model" +
                (f", so about {ms(extra)} per additional model." if (extra := (self.cli * self.n - self.cli_one) / max(1, self.n - 1)) > 0
                 else ": the difference is within the noise, nearly all of it is the process's start.")]


def fig_verification(wc: WarmCache, plan: Plan) -> Verification:
    import hashlib

    from lyricsub_hub import ModelManager
    from lyricsub_hub.cache.hashing import digest_file, digest_many

    big = blob(plan.hash_size, 0)
    many = [blob(size, i) for i, size in enumerate(plan.many)]
    bs.read_through([big, *many])

    def plain() -> str:
        h = hashlib.sha256()
        with open(big, "rb") as fh:
            while chunk := fh.read(MIB):
                h.update(chunk)
        return h.hexdigest()

    assert digest_file(big).sha256 == plain()
    hashing = interleave({"ours": lambda: digest_file(big), "plain": plain}, plan.hash_repeats)
    par = interleave({"w1": lambda: digest_many([(p, False) for p in many], workers=1),
                      "w2": lambda: digest_many([(p, False) for p in many], workers=2)}, plan.hash_repeats)
    mgr = ModelManager(wc.index, wc.cache, state_dir=wc.state)
    specs = mgr.index.expand([], "bench")
    assert all(r.ok for r in mgr.verify(set_name="bench"))
    ver = interleave({"record": lambda: mgr.verify(set_name="bench"), "deep": lambda: mgr.verify(set_name="bench", deep=True)},
                     plan.verify_repeats)
    cmd = [PY, "-m", "lyricsub_hub", "verify", "--set", "bench", "--index", str(wc.index), "--cache-dir", str(wc.cache)]
    env = child_env(LYRICSUB_STATE_DIR=wc.state)
    one = [PY, "-m", "lyricsub_hub", "verify", specs[0].name, "--index", str(wc.index), "--cache-dir", str(wc.cache)]
    cli: dict[str, list[float]] = {"record": [], "deep": [], "one": []}
    for _ in range(plan.verify_repeats):
        for key, full in (("record", cmd), ("deep", cmd + ["--deep"]), ("one", one)):
            child = bs.run_child(full, env)
            assert child.rc == 0, child.stderr
            cli[key].append(child.seconds)
    n = len(specs)
    return Verification(plan.hash_size, plan.hash_repeats, median(hashing["ours"]), median(hashing["plain"]),
                        plan.many, median(par["w1"]), median(par["w2"]), n, plan.verify_repeats,
                        median(ver["record"]) / n, median(ver["deep"]) / n, median(cli["record"]) / n, median(cli["deep"]) / n,
                        median(cli["one"]), pair(hashing["plain"], hashing["ours"]), pair(par["w1"], par["w2"]))


# --------------------------------------------------------------------------- 5. load

@dataclass
class Load:
    results: dict[str, dict] = field(default_factory=dict)  # name -> {family, ours, bare, ours_all, bare_all}
    skipped: str = ""

    def rows(self) -> list[Row]:
        if self.skipped:
            return [Row("5. Load + smoke through lyricsub_hub vs the bare library call", "skipped", "skipped", "—",
                        "≤ 1.05×", None)]
        bare = {"demucs": "demucs.hf `load_safetensors_model` + `apply_model`", "whisper": "`whisperx.load_model` + `transcribe`"}
        return [Row(f"5. Load + smoke, tiny {r['family']} (`ModelManager.smoke_test`) vs {bare[r['family']]} on the snapshot",
                    ms(r["ours"]), ms(r["bare"]), f"{self.paired(r):.2f}×", "≤ 1.05× (< 5% overhead)", self.paired(r) <= 1.05)
                for r in self.results.values()]

    @staticmethod
    def paired(r: dict) -> float:
        return pair(r["ours_all"], r["bare_all"])

    def notes(self) -> list[str]:
        if self.skipped:
            return [f"Figure 5 skipped: {self.skipped}."]
        return ["Figure 5: one process with HF_HUB_OFFLINE=1, one warm-up call of each, then repeats ("
                + ", ".join(f"{r['family']} {len(r['ours_all'])}" for r in self.results.values()) + ") "
                "interleaved (order alternating, `gc.collect()` before each), median, on CPU, torch limited to one thread for "
                "both (with two threads, load from other processes on the second core made single calls 1-5 s). Ours includes the cache check "
                "(records), loader dispatch and smoke checks. The ratio is the median of the per-repeat ratios; the "
                "ratio of the medians: " + ", ".join(f"{r['family']} {r['ours'] / r['bare']:.2f}×" for r in self.results.values())
                + "; per-repeat seconds (ours/bare): " + "; ".join(
                    f"{r['family']} " + " ".join(f"{o:.2f}/{b:.2f}" for o, b in zip(r["ours_all"], r["bare_all"]))
                    for r in self.results.values()) + "."]


def fig_load(hub, plan: Plan) -> Load:
    if not bs.have_torch():
        return Load(skipped="torch is not installed in this environment (run it in .venv)")
    from lyricsub_hub import ModelDownloader, ModelManager

    tiny = WORK / "load" / "tiny"
    bs.py_child(["make-tiny", str(tiny)]).json()
    models = [bs.publish(hub, "demucs:htdemucs", "bench/tiny-demucs", tiny / "demucs"),
              bs.publish(hub, "whisper:tiny", "bench/tiny-whisper", tiny / "whisper")]
    root = WORK / "load"
    index = bs.write_index(root / "index.yaml", models)
    dl = ModelDownloader(ModelManager(index, root / "hub", state_dir=root / "state", endpoint=hub.endpoint))
    for m in models:
        assert dl.download_model(m.name).success
    repeats = {"demucs:htdemucs": plan.load_repeats, "whisper:tiny": plan.load_repeats_whisper}
    child = bs.py_child(["load", str(index), str(root / "hub"), str(root / "state"), *[f"{k}={v}" for k, v in repeats.items()]],
                        child_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    return Load(child.json())


# --------------------------------------------------------------------------- test data

def prepare_data(plan: Plan) -> None:
    """Every random file the figures use, written up front and flushed, so no figure competes with writeback."""
    for i, size in enumerate(plan.dl_files):
        blob(size, i)
    for i, size in enumerate(plan.many):
        blob(size, i)
    for size in (plan.hash_size, *plan.rss_sizes, plan.one_file, plan.rate_file):
        blob(size, 0)
    for i, size in enumerate(plan.model_files):
        blob(size, 10 + i)
    for size in plan.split_sizes:
        blob(size, 20)
    os.sync()


# --------------------------------------------------------------------------- G. bundles (scripts/bench_bundle.py)

@dataclass
class Bundles:
    figures: dict = field(default_factory=dict)
    missing: str = ""  # why there are no figures

    GOAL = 0.8

    def rows(self) -> list[Row]:
        if self.missing:
            return [Row("G. Bundles: `lyricsub-hub export` / `import` vs `tar -cf` / `tar -xf`", "not measured", self.missing, "—",
                        f"≥ {self.GOAL:.2f}× of tar", None)]
        f = self.figures
        size = f"{f.get('payload_bytes', 0) / MIB:.0f} MiB of models"
        rows = []
        for what, ours, tar, key in (("export", "export_cli", "tar_c", "export_ratio"), ("import", "import_cli", "tar_x", "import_ratio")):
            r = f.get(key)
            how = ("files a verification record vouches for copied unhashed, as `verify` trusts them" if what == "export"
                   else "every byte hashed")
            rows.append(Row(f"G. Bundles: `lyricsub-hub {what}` ({how}) vs `tar -{tar[-1]}f`, {size} (throughput)",
                            f"{f.get(f'{ours}_MBps', '?')} MB/s", f"{f.get(f'{tar}_MBps', '?')} MB/s",
                            f"{r:.2f}×" if isinstance(r, (int, float)) else "—", f"≥ {self.GOAL:.2f}×",
                            r >= self.GOAL if isinstance(r, (int, float)) else None))
        for what, lib, tar in (("export_file", "export_lib", "tar_c"), ("import_bundle", "import_lib", "tar_x")):
            r = f.get(f"{lib}_ratio")
            rows.append(Row(f"G. Bundles: `{what}` in-process (no interpreter start) vs `tar -{tar[-1]}f`, {size} (throughput)",
                            f"{f.get(f'{lib}_MBps', '?')} MB/s", f"{f.get(f'{tar}_MBps', '?')} MB/s",
                            f"{r:.2f}×" if isinstance(r, (int, float)) else "—", "— (report)", None))
        return rows

    def notes(self) -> list[str]:
        if self.missing:
            return [f"Figure G: not measured ({self.missing})."]
        f = self.figures
        return ["Figure G: from `bundle_figures()` of scripts/bench_bundle.py, as it returns them (ratios are tar's time / "
                f"ours, medians of per-repeat ratios; {f.get('repeats', '?')} repeat(s); the commands are fresh processes, tar "
                f"too). Bundle {f.get('bundle_bytes', '?')} bytes; the same with zstd: {f.get('zstd_bundle_bytes', '?')} bytes, "
                f"export {f.get('zstd_export_MBps', '?')} MB/s, import {f.get('zstd_import_MBps', '?')} MB/s (information). "
                f"bench_bundle's own verdict (`met`, on the in-process ratios): {f.get('met', '?')}.",
                "Per-repeat seconds (the commands are the installed console script; each import starts from an empty "
                "cache and an empty state folder, so it parses the index's YAML too): "
                + "; ".join(f"{k} {' '.join(f'{x:.3f}' for x in v)}" for k, v in f.get("seconds", {}).items()) + "."]


def fig_bundles(plan: Plan) -> Bundles:
    """Figure G, when another script provides it: bench_bundle.bundle_figures(work_dir) -> dict."""
    if not (SCRIPTS / "bench_bundle.py").is_file():
        return Bundles(missing="scripts/bench_bundle.py does not exist")
    try:
        import importlib
        import inspect

        make = importlib.import_module("bench_bundle").bundle_figures
        params = inspect.signature(make).parameters
        sizes = {"size_mib": plan.bundle_mib, "repeats": plan.bundle_repeats}
        figures = make(WORK / "bundle", **{k: v for k, v in sizes.items() if k in params})
    except Exception as exc:
        return Bundles(missing=f"bench_bundle.bundle_figures failed: {type(exc).__name__}: {str(exc).strip()[:300]}")
    finally:
        bs.remove(WORK / "bundle")
    if not isinstance(figures, dict):
        return Bundles(missing=f"bench_bundle.bundle_figures returned {type(figures).__name__}, not a dict")
    return Bundles(figures)


# --------------------------------------------------------------------------- 7. reliability

def fig_reliability() -> Reliability:
    """Counts the reliability suite leaves behind (kills, faults, fuzz cases), as given; none until `make test`."""
    return Reliability.read(ROOT / "tests" / "reliability" / ".results")


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--out", type=Path, help="markdown to write (default: docs/benchmarks.md; --quick writes none)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    out = args.out or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    info = bs.machine(sys.argv[1:])
    _, sources = bs.library_state()
    from lyricsub_hub.testing.hub import TestHub

    bs.deep_listen_queue()
    started = time.monotonic()
    figures: list = []
    others: dict[str, float] = {}
    overflows: dict[str, int] = {}
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        with TestHub() as hub:
            def step(title: str, make: Callable[[], object], record: bool = True) -> object:
                print(f"[bench] {title} ...", file=sys.stderr, flush=True)
                before, dropped = bs.cpu_sample(), bs.listen_overflows()
                result = make()
                after = bs.cpu_sample()
                others[title] = bs.other_cores(before, after)
                if bs.listen_overflows() > dropped:
                    overflows[title] = bs.listen_overflows() - dropped
                print(f"[bench] {title}: {after.wall - before.wall:.1f} s", file=sys.stderr, flush=True)
                if record:
                    figures.append(result)
                return result

            bs.compile_bytecode()
            step("test data", lambda: prepare_data(plan), record=False)
            wc = build_warm_cache(hub, plan)
            step("1 warm path", lambda: fig_warm_path(hub, wc, plan))
            step("2 start-up", lambda: fig_startup(wc, plan))
            download = step("3 download", lambda: fig_download(hub, plan))
            step("4 verification", lambda: fig_verification(wc, plan))
            step("5 load", lambda: fig_load(hub, plan))
            step("6 memory", lambda: fig_memory(hub, plan, download))  # type: ignore[arg-type]
            step("A one file, capped connections", lambda: fig_one_file(hub, plan))
            step("B a model, capped connections", lambda: fig_model(hub, plan))
            step("D bandwidth cap", lambda: fig_rate_cap(hub, plan))
            step("E command start-up", lambda: fig_cli_startup(hub, wc.cache, wc.state, wc.models[0], plan))
            step("F split threshold", lambda: fig_split(hub, plan))
            step("G bundles", lambda: fig_bundles(plan))
            step("P through a proxy", lambda: fig_proxy(hub, plan))
            step("H lines", lambda: fig_lines(hub, plan))
            step("I a host that answers 429", lambda: fig_limited(hub, plan))
            step("J the whole command vs aria2c", lambda: fig_whole_command(hub, plan))
            assert not hub.errors, hub.errors[:1]
    finally:
        bs.remove(WORK)
        try:
            WORK.parent.rmdir()  # .bench, when nothing else is in it
        except OSError:
            pass
    info.notes.append("CPU used by anything else on the machine (other processes, kernel threads such as disk "
                      f"writeback) while each step ran, average cores of {info.cores}: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in others.items())
                      + ". The figures are side by side, so such load hits ours and the anchor alike, but it adds noise.")
    if overflows:
        info.notes.append("Connections the kernel dropped because a listening queue was full (machine-wide, so other "
                          "processes' too; each costs its client a retry after about a second): "
                          + ", ".join(f"{k} {v}" for k, v in overflows.items()) + ".")
    changed = [f for f, m in bs.library_state()[1].items() if sources.get(f) != m]
    if changed:
        info.notes.append(f"**lyricsub_hub changed while this ran** ({', '.join(changed)}): figures may mix versions; run again.")
    info.notes.append(f"Total run time {time.monotonic() - started:.0f} s{' (--quick: small sizes, not a result)' if args.quick else ''}.")
    text = render(info, figures, fig_reliability(), quick=args.quick)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"[bench] wrote {out}", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
