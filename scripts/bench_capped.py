"""Figures A, B, D and F of scripts/bench.py (GitHub issue 11): downloads when each connection is capped, as a
CDN caps a single connection; our own bandwidth cap; where splitting a file starts to pay.

A and B: `ModelDownloader` against `snapshot_download` and `aria2c` with the loopback Hub's throttle at CAP bytes
per second on every connection. D: `lyricsub-hub warm --max-rate` (and LYRICSUB_MAX_RATE) with no throttle, its
progress events sampled for the rate over time, and the process's CPU from rusage. F: one connection against
segments for files of 2 to 64 MiB, throttled and with a delay before every answer (a round trip to a CDN).

Each run is its own process writing into a fresh folder, deleted and synced after. Repeats are interleaved with
the order rotating; speed-ups are medians of the per-repeat ratios (the runs of one repeat are back to back, so a
burst of other load hits them alike), throughputs are medians of the repeats.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import bench_support as bs
from bench_render import Row, ratio
from bench_support import GIB, MIB, WORK, blob, child_env, mb_s, median, rotate

CAP = 20_000_000  # bytes per second: the hub's cap on each connection, and the --max-rate figure's cap ("20M")
CAP_TEXT = "20M"
LATENCY = 0.05  # seconds before each answer's headers in figure F
CONNECTIONS = 8  # the count A, B and F set for ours (the default is DEFAULT_CONNECTIONS, an adaptive ceiling of 32); aria2c gets -x8 -s8
GOAL_HF = 6.0
GOAL_ARIA2 = 0.9
SPLIT_GAIN = 1.5


def _aria2_cmd(aria2: str, hub, model: bs.HubModel, out: Path) -> list[str]:
    """aria2c as the issue names it (-x8 -s8 -k1M); several files go through an input file, all at once (-j)."""
    base = [aria2, "--no-conf", "-q", "-x8", "-s8", "-k1M", "--file-allocation=falloc", "--allow-overwrite=true",
            "--auto-file-renaming=false", "-d", str(out)]
    if len(model.files) == 1:
        (fname,) = model.files
        return base + ["-o", fname, model.url(hub.endpoint, fname)]
    listing = out.with_suffix(".aria2-input")
    listing.write_text("".join(f"{model.url(hub.endpoint, f)}\n  out={f}\n" for f in model.files))
    return base + ["-j", str(len(model.files)), "-i", str(listing)]


def aria2_line(n_files: int) -> str:
    extra = f" -j{n_files} -i LIST" if n_files > 1 else ""
    return f"aria2c -x8 -s8 -k1M{extra}"


def download(tool: str, hub, model: bs.HubModel, index: Path, out: Path, *options: str) -> tuple[float, bs.Child]:
    """One run into a fresh folder: (seconds spent downloading, the child). ours and hf time themselves after their
    imports; aria2c is timed as its process (it starts in milliseconds)."""
    out.mkdir(parents=True, exist_ok=True)
    if tool == "ours":
        connections = next((o.split("=", 1)[1] for o in options if o.startswith("connections=")), str(CONNECTIONS))
        rest = [o for o in options if not o.startswith("connections=")]
        child = bs.py_child(["download-ours", str(index), str(out / "hub"), str(out / "state"), hub.endpoint, model.name,
                             connections, *rest])
        took, got = child.json()["seconds"], child.json()["bytes"]
    elif tool == "hf":
        child = bs.py_child(["download-hf", model.repo, model.commit, str(out / "hub"), hub.endpoint])
        took, got = child.json()["seconds"], child.json()["bytes"]
    else:
        aria2 = bs.aria2_binary()
        assert aria2 is not None
        child = bs.run_child(_aria2_cmd(aria2, hub, model, out))
        if child.rc != 0:
            raise RuntimeError(f"aria2c failed (exit {child.rc}): {(child.stderr or child.stdout).strip()[-1500:]}")
        took = child.seconds
        got = sum(p.stat().st_size for p in out.iterdir() if p.is_file() and not p.name.endswith(".aria2"))
    assert got == model.total, (tool, got, model.total)
    return took, child


def _clean(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            bs.remove(path)
        else:
            path.unlink(missing_ok=True)
    os.sync()


# --------------------------------------------------------------------------- A and B: capped connections

@dataclass
class Capped:
    key: str  # "A" or "B"
    what: str
    sizes: tuple[int, ...]
    repeats: int
    seconds: dict[str, list[float]]  # ours, hf, aria2c (absent where aria2c is missing)
    walls: dict[str, list[float]]  # each run's process wall time
    conns: dict[str, int]  # the most response bodies the hub had in flight at once, over the repeats
    goals: bool  # A has goals; B is reported

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def rate(self, tool: str) -> float:
        return self.total / median(self.seconds[tool])

    def gain(self, tool: str, times: dict[str, list[float]] | None = None) -> float:
        """Median over repeats of the tool's time / ours: ours' throughput as a multiple of the tool's."""
        t = times or self.seconds
        return median([a / o for o, a in zip(t["ours"], t[tool])])

    def rows(self) -> list[Row]:
        head = f"{self.key}. {self.what}, {mb_s(CAP)} per connection: `ModelDownloader` (connections={CONNECTIONS})"
        hf, a2 = self.gain("hf"), ("aria2c" in self.seconds and self.gain("aria2c")) or 0.0
        at_once = lambda tool: f", at most {self.conns['ours']} vs {self.conns[tool]} connections at once"  # noqa: E731
        rows = [Row(f"{head} vs `snapshot_download` (throughput{at_once('hf')})", mb_s(self.rate("ours")), mb_s(self.rate("hf")), f"{hf:.2f}×",
                    f"≥ {GOAL_HF:.2f}×" if self.goals else "— (report)", hf >= GOAL_HF if self.goals else None)]
        line = aria2_line(len(self.sizes))
        if "aria2c" in self.seconds:
            rows.append(Row(f"{head} vs `{line}` (throughput{at_once('aria2c')})", mb_s(self.rate("ours")), mb_s(self.rate("aria2c")),
                            f"{a2:.2f}×", f"≥ {GOAL_ARIA2:.2f}×" if self.goals else "— (report)",
                            a2 >= GOAL_ARIA2 if self.goals else None))
        else:
            rows.append(Row(f"{head} vs `{line}`", mb_s(self.rate("ours")), "aria2c is not installed (apt-get install aria2)",
                            "—", f"≥ {GOAL_ARIA2:.2f}×" if self.goals else "— (report)", None))
        return rows

    def notes(self) -> list[str]:
        med = ", ".join(f"{k} {median(v):.2f} s" for k, v in self.seconds.items())
        conns = ", ".join(f"{k} {v}" for k, v in self.conns.items())
        out = (f"Figure {self.key}: {self.what} ({' + '.join(bs.size_label(s) if s >= MIB else f'{s} B' for s in self.sizes)}), "
               f"the hub's throttle at {mb_s(CAP)} on every connection, {self.repeats} repeat(s), interleaved with the "
               f"order rotating, each run a fresh process into an empty folder. Seconds downloading (median): {med} "
               "(ours and snapshot_download inside their process after imports; aria2c its process's wall time). "
               f"Most connections the hub served at once: {conns}. Ratios are medians of the per-repeat ratios of seconds.")
        if "aria2c" in self.seconds:
            walls = self.gain("aria2c", self.walls)
            out += (f" Counting ours' whole process (interpreter, imports, index; median {median(self.walls['ours']):.2f} s) "
                    f"against aria2c's: {walls:.2f}×. aria2c checks no hash; ours hashes every byte as it arrives.")
        if not self.goals:
            out += (" No goal: with files in parallel aria2c opens -x8 connections per file (up to -j × 8 in all) and "
                    f"snapshot_download one per file, while ours shares {CONNECTIONS} connections among all files.")
        return [out]


def _contest(hub, key: str, what: str, model: bs.HubModel, index: Path, repeats: int, goals: bool) -> Capped:
    tools = ["ours", "hf"] + (["aria2c"] if bs.aria2_binary() else [])
    seconds: dict[str, list[float]] = {t: [] for t in tools}
    walls: dict[str, list[float]] = {t: [] for t in tools}
    conns = dict.fromkeys(tools, 0)
    sizes = tuple(size for size, _ in model.files.values())
    hub.throttle(CAP)
    try:
        for i in range(repeats):
            for tool in rotate(tools, i):
                out = WORK / "capped" / f"{key}-{tool}"
                hub.max_bodies = 0
                took, child = download(tool, hub, model, index, out, f"connections={CONNECTIONS}")
                conns[tool] = max(conns[tool], hub.max_bodies)
                seconds[tool].append(took)
                walls[tool].append(child.seconds)
                _clean(out, out.with_suffix(".aria2-input"))
    finally:
        hub.throttle(None)
    return Capped(key, what, sizes, repeats, seconds, walls, conns, goals)


def big_model_files(plan) -> dict[str, Path | bytes]:
    """Figure B's model: a few large weights files and the small files a real model ships beside them."""
    files: dict[str, Path | bytes] = {f"model-{i + 1:05d}-of-{len(plan.model_files):05d}.safetensors": blob(size, 10 + i)
                                      for i, size in enumerate(plan.model_files)}
    files.update({"config.json": b'{"architectures": ["Bench"], "hidden_size": 1280}\n' * 32,
                  "preprocessor_config.json": b'{"feature_size": 128, "sampling_rate": 16000}\n',
                  "tokenizer.json": os.urandom(MIB).hex().encode(), "vocabulary.json": os.urandom(MIB // 4).hex().encode()})
    return files


def fig_one_file(hub, plan) -> Capped:
    model = bs.publish(hub, "whisper:capped-one", "bench/capped-one", {"model.safetensors": blob(plan.one_file, 0)})
    index = bs.write_index(WORK / "capped" / "one.yaml", [model])
    bs.read_through([blob(plan.one_file, 0)])
    return _contest(hub, "A", f"One {bs.size_label(plan.one_file)} file", model, index, plan.capped_repeats, goals=True)


def fig_model(hub, plan) -> Capped:
    files = big_model_files(plan)
    model = bs.publish(hub, "whisper:capped-model", "bench/capped-model", files)
    index = bs.write_index(WORK / "capped" / "model.yaml", [model])
    bs.read_through([p for p in files.values() if isinstance(p, Path)])
    small = len(files) - len(plan.model_files)
    what = f"A model of {len(plan.model_files)} × {bs.size_label(plan.model_files[0])} + {small} small files"
    return _contest(hub, "B", what, model, index, plan.capped_repeats, goals=False)


# --------------------------------------------------------------------------- D: the bandwidth cap

@dataclass
class CapRun:
    seconds: float  # first event to the file's end, from the command's own event times
    rate: float  # bytes / seconds
    peak: float | None  # the largest rate over a window of at least 1 s starting 1 s or more after the start
    samples: int
    cpu: float  # user + system seconds of the process
    wall: float


@dataclass
class RateCap:
    size: int
    connections: int
    runs: dict[str, CapRun]  # flag, env, uncapped
    idle_cpu: float  # the same command again with nothing left to fetch: start-up, index, status

    def rows(self) -> list[Row]:
        out = []
        size = bs.size_label(self.size)
        for key, how in (("flag", f"`--max-rate {CAP_TEXT}`"), ("env", f"`LYRICSUB_MAX_RATE={CAP_TEXT}`")):
            r = self.runs[key]
            head = f"D. Bandwidth cap {how}: `lyricsub-hub warm` of one {size} file ({r.seconds:.1f} s, {self.connections} connections)"
            out.append(Row(f"{head}, mean rate vs the cap", mb_s(r.rate), mb_s(CAP), ratio(r.rate, CAP), "within ±10%",
                           abs(r.rate / CAP - 1) <= 0.10))
            if r.peak is None:
                out.append(Row(f"{head}, largest one-second window after the first vs the cap", "n/a (under 2 s)", mb_s(CAP), "—",
                               "≤ 2.00×", None))
            else:
                out.append(Row(f"{head}, largest one-second window after the first vs the cap", mb_s(r.peak), mb_s(CAP),
                               ratio(r.peak, CAP), "≤ 2.00×", r.peak <= 2 * CAP))
        capped, free = self.runs["flag"], self.runs["uncapped"]
        out.append(Row(f"D. CPU seconds per GiB of the `lyricsub-hub warm` process (rusage), capped at {CAP_TEXT} vs uncapped "
                       f"({mb_s(free.rate)})", f"{self.per_gib(capped.cpu):.2f} s/GiB", f"{self.per_gib(free.cpu):.2f} s/GiB",
                       ratio(capped.cpu, free.cpu), "— (report)", None))
        return out

    def per_gib(self, cpu: float) -> float:
        return cpu / (self.size / GIB)

    def notes(self) -> list[str]:
        r = self.runs
        short = [k for k in ("flag", "env") if r[k].seconds < 10]
        return [f"Figure D: `lyricsub-hub warm NAME --no-load --json` (the console script) into an empty HF_HOME, the hub "
                f"unthrottled, one run each. The rate and the windows come from the command's own progress events "
                f"(model bytes and a time stamp, about every 0.1 s: {r['flag'].samples} and {r['env'].samples} samples); "
                "the mean is the file's bytes over the time from the first event to the file's end. Windows start at a "
                "sample 1 s or more after the first event and end at the first sample at least 1 s later. CPU is the "
                f"child's user + system time from wait4; the same command with nothing left to fetch used {self.idle_cpu:.2f} s "
                f"(start-up, index, status), so net of that: capped {self.per_gib(r['flag'].cpu - self.idle_cpu):.2f}, "
                f"uncapped {self.per_gib(r['uncapped'].cpu - self.idle_cpu):.2f} s/GiB; the capped process kept "
                f"{r['flag'].cpu / r['flag'].wall:.0%} of one core busy on average. Process wall times: "
                + ", ".join(f"{k} {v.wall:.1f} s" for k, v in r.items()) + "."
                + (f" The capped transfers took under the 10 s the figure asks for ({', '.join(short)}): a --quick size."
                   if short else "")]


def _events(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _cap_run(child: bs.Child, size: int) -> CapRun:
    if child.rc != 0:
        raise RuntimeError(f"lyricsub-hub warm failed (exit {child.rc}): {child.stderr.strip()[-1500:]}")
    events = _events(child.stdout)
    start = next(e["time"] for e in events if e.get("event") == "start")
    end = next(e["time"] for e in events if e.get("event") == "file_done")
    samples = [(start, 0)] + [(e["time"], e["model_bytes_done"]) for e in events if e.get("event") == "progress"] + [(end, size)]
    peak = None
    for j, (tj, bj) in enumerate(samples):
        if tj < start + 1.0:
            continue
        later = next(((ti, bi) for ti, bi in samples[j + 1:] if ti - tj >= 1.0), None)
        if later is not None:
            peak = max(peak or 0.0, (later[1] - bj) / (later[0] - tj))
    seconds = max(end - start, 1e-3)
    return CapRun(seconds, size / seconds, peak, len(samples) - 2, child.cpu, child.seconds)


def fig_rate_cap(hub, plan) -> RateCap:
    from lyricsub_hub.download.downloader import DEFAULT_CONNECTIONS

    model = bs.publish(hub, "whisper:rate", "bench/rate", {"model.safetensors": blob(plan.rate_file, 0)})
    index = bs.write_index(WORK / "rate" / "index.yaml", [model])
    bs.read_through([blob(plan.rate_file, 0)])
    cmd = bs.console_script() + ["warm", model.name, "--no-load", "--json", "--index", str(index), "--endpoint", hub.endpoint]
    runs: dict[str, CapRun] = {}
    idle = 0.0
    for key, extra, env in (("flag", ["--max-rate", CAP_TEXT], {}), ("env", [], {"LYRICSUB_MAX_RATE": CAP_TEXT}),
                            ("uncapped", [], {})):
        home = WORK / "rate" / "home"
        child_vars = child_env(HF_HOME=home / "hf", LYRICSUB_STATE_DIR=home / "state", **env)
        runs[key] = _cap_run(bs.run_child(cmd + extra, child_vars), model.total)
        if key == "flag":
            again = bs.run_child(cmd + extra, child_vars)  # nothing left to fetch
            assert again.rc == 0, again.stderr
            idle = again.cpu
        _clean(home)
    return RateCap(model.total, DEFAULT_CONNECTIONS, runs, idle)


# --------------------------------------------------------------------------- F: where splitting pays

@dataclass
class Split:
    sizes: tuple[int, ...]
    repeats: int
    single: dict[int, list[float]]
    segmented: dict[int, list[float]]
    gets: dict[int, int]  # GETs on the CDN host in one segmented run: its ranges, stolen halves included
    split_min: int
    segment_min: int
    steal_min: int  # an idle connection takes half of a running range with at least this much left

    def gain(self, size: int) -> float:
        return median([s / g for s, g in zip(self.single[size], self.segmented[size])])

    @property
    def threshold(self) -> int | None:
        """The smallest size from which every larger size measured is at least SPLIT_GAIN faster segmented."""
        found = None
        for size in sorted(self.sizes, reverse=True):
            if self.gain(size) < SPLIT_GAIN:
                break
            found = size
        return found

    def rows(self) -> list[Row]:
        t = self.threshold
        gains = ", ".join(f"{s // MIB} MiB {self.gain(s):.2f}×" for s in self.sizes)
        found = f"≥ {SPLIT_GAIN}× from {bs.size_label(t)}" if t else f"never ≥ {SPLIT_GAIN}× up to {bs.size_label(max(self.sizes))}"
        verdict = "confirms it" if t == self.split_min else f"measured {bs.size_label(t) if t else 'none'}: does not confirm it"
        return [Row(f"F. Split threshold: connections={CONNECTIONS} with segments vs one connection, one file of "
                    f"{'/'.join(str(s // MIB) for s in self.sizes)} MiB, {mb_s(CAP)} per connection, {LATENCY * 1e3:.0f} ms "
                    f"before each answer, 302 to a CDN host (speed-up per size: {gains})", found,
                    f"SPLIT_MIN = {bs.size_label(self.split_min)}", f"{self.gain(self.split_min):.2f}× at SPLIT_MIN"
                    if self.split_min in self.sizes else "—", f"measured threshold = SPLIT_MIN ({verdict})",
                    t == self.split_min)]

    def notes(self) -> list[str]:
        each = "; ".join(f"{s // MIB} MiB: one {median(self.single[s]):.3f} s, segmented {median(self.segmented[s]):.3f} s, "
                         f"{self.gets[s]} GET(s)" for s in self.sizes)
        return [f"Figure F: ModelDownloader in a fresh process per run, connections=1 (one GET, no HEAD: what any "
                f"connections= does below SPLIT_MIN) against connections={CONNECTIONS} with "
                "SPLIT_MIN set to 0 in that process only (so every size goes through the segmented path: a HEAD, then "
                f"ranges of at least SEGMENT_MIN = {bs.size_label(self.segment_min)}, an idle connection taking half of the "
                f"largest range still running when {bs.size_label(self.steal_min)} or more of it is left), {self.repeats} repeat(s), interleaved, median of seconds downloading and of "
                f"per-repeat speed-ups. The hub answers LFS files with a 302 to its second host (a CDN), every answer "
                f"after {LATENCY * 1e3:.0f} ms, every connection at {mb_s(CAP)}. The threshold is the smallest size from "
                f"which every larger size is at least {SPLIT_GAIN}× faster segmented. {each}."]


def fig_split(hub, plan) -> Split:
    from lyricsub_hub.download import transfer
    from lyricsub_hub.download.plan import SEGMENT_MIN, SPLIT_MIN

    models = {size: bs.publish(hub, f"whisper:split-{size // MIB}", f"bench/split-{size // MIB}",
                               {"model.safetensors": blob(size, 20)}) for size in plan.split_sizes}
    index = bs.write_index(WORK / "split" / "index.yaml", list(models.values()))
    bs.read_through([blob(size, 20) for size in plan.split_sizes])
    single: dict[int, list[float]] = {s: [] for s in plan.split_sizes}
    segmented: dict[int, list[float]] = {s: [] for s in plan.split_sizes}
    gets: dict[int, int] = {}
    modes = {"single": ("connections=1",), "segmented": (f"connections={CONNECTIONS}", "split_min=0")}
    hub.throttle(CAP)
    hub.latency = LATENCY
    hub.use_cdn(3600.0)
    try:
        for i in range(plan.split_repeats):
            for size, model in models.items():
                for mode in rotate(list(modes), i):
                    out = WORK / "split" / mode
                    hub.clear_log()
                    took, _ = download("ours", hub, model, index, out, *modes[mode])
                    (single if mode == "single" else segmented)[size].append(took)
                    if mode == "segmented":
                        gets[size] = sum(1 for r in hub.requests if r.method == "GET" and r.origin == "cdn")
                    _clean(out)
    finally:
        hub.throttle(None)
        hub.latency = 0.0
        hub.use_cdn(None)
    steal = getattr(transfer, "STEAL_MIN", 2 * SEGMENT_MIN)
    return Split(tuple(plan.split_sizes), plan.split_repeats, single, segmented, gets, SPLIT_MIN, SEGMENT_MIN, steal)
