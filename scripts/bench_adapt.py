"""Figures H, I and J of scripts/bench.py (GitHub issue 21): connections that find the line's speed.

H: no flags (the default ceiling of 32), the loopback Hub with a line cap shared by all connections and a cap
on each connection: a 160 MB/s line at 10 MB/s per connection (16 connections fill it) and an 80 MB/s line at
40 MB/s per connection (2 fill it); ours' rate against the line, and how many connections it held.
I: a host that sends at most 4 bodies at once and answers 429 + Retry-After beyond them (20 MB/s per
connection): ours with no flags against ours with --connections 4 on the same host without the limit (what 4
connections give), and how many requests were refused.
J: the whole command as a user runs it, `lyricsub-hub warm NAME --no-load` (interpreter, imports, index, plan,
hashing, verification) against `aria2c -x8 -s8 -k1M`, one 128 MiB file at 20 MB/s per connection, process wall
time each; where our time goes (process start to the first request, transfer, last byte to exit) from the Hub's
request log.

Each run is its own process into an empty folder, deleted and synced after; repeats interleave with the order
rotating, and ratios are medians of per-repeat ratios.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_support as bs
from bench_capped import _aria2_cmd, _clean, download
from bench_render import Row
from bench_support import WORK, blob, child_env, mb_s, median, rotate

LINES = ((160_000_000, 10_000_000, 0.80), (80_000_000, 40_000_000, 0.85))  # line, per connection, goal (× line)
LIMIT_BODIES = 4
LIMIT_CAP = 20_000_000
GOAL_LIMITED = 0.70
CLI_CAP = 20_000_000
GOAL_CLI = 0.90


def _ours(hub, model: bs.HubModel, index: Path, tag: str, connections: str = "0") -> tuple[float, dict]:
    out = WORK / "adapt" / tag
    took, child = download("ours", hub, model, index, out, f"connections={connections}")
    report = child.json()
    _clean(out)
    return took, report


# --------------------------------------------------------------------------- H: lines

@dataclass
class LineRun:
    line: int
    per: int
    goal: float
    size: int
    seconds: list[float]
    held: list[int]  # connections the controller settled on, per repeat
    peak: list[int]  # the most it tried (target), per repeat
    bodies: list[int]  # the most bodies the hub had in flight at once, per repeat

    @property
    def rate(self) -> float:
        return self.size / median(self.seconds)


@dataclass
class Lines:
    runs: list[LineRun]
    repeats: int

    def rows(self) -> list[Row]:
        out = []
        for r in self.runs:
            ratio = r.rate / r.line
            need = -(-r.line // r.per)
            out.append(Row(f"H. No flags, one {bs.size_label(r.size)} file, a {mb_s(r.line)} line at {mb_s(r.per)} per "
                           f"connection ({need} fill it): `ModelDownloader` vs the line (held {median(r.held):.0f} "
                           f"connections, tried up to {max(r.peak)}, at most {max(r.bodies)} bodies at the hub at once)",
                           mb_s(r.rate), mb_s(r.line), f"{ratio:.2f}×", f"≥ {r.goal:.2f}×", ratio >= r.goal))
        return out

    def notes(self) -> list[str]:
        parts = []
        for r in self.runs:
            parts.append(f"{mb_s(r.line)} line at {mb_s(r.per)}: seconds " + " ".join(f"{s:.2f}" for s in r.seconds)
                         + ", held " + " ".join(str(h) for h in r.held) + ", tried up to " + " ".join(str(p) for p in r.peak))
        return [f"Figure H: `ModelDownloader()` with no connections argument (ceiling {32}), {self.repeats} repeat(s) "
                "each; the test Hub's line cap is shared by every connection of both hosts, its throttle caps each "
                "connection (it sleeps after each write, so a connection gets a little under its cap). Seconds are "
                "the download inside the child after its imports (plan, the reachability probe, HEAD, transfer, "
                "hash tail, verification). The controller starts with 4 connections, multiplies them by 4 while the "
                "rate rises by a fair share, then holds the fewest that carry the best rate (held = that level at the "
                "end); 'tried up to' counts its steps and probes above it. Per repeat: " + "; ".join(parts) + "."]


def fig_lines(hub, plan) -> Lines:
    size = plan.line_file
    model = bs.publish(hub, "whisper:line", "bench/line", {"model.safetensors": blob(size, 3)})
    index = bs.write_index(WORK / "adapt" / "line.yaml", [model])
    bs.read_through([blob(size, 3)])
    runs = []
    try:
        for line, per, goal in LINES:
            hub.line(line)
            hub.throttle(per)
            run = LineRun(line, per, goal, size, [], [], [], [])
            for i in range(plan.adapt_repeats):
                hub.max_bodies = 0
                took, report = _ours(hub, model, index, f"line-{line}-{i}")
                run.seconds.append(took)
                run.held.append(int(report.get("held", 0)))
                run.peak.append(int(report.get("peak", 0)))
                run.bodies.append(hub.max_bodies)
            runs.append(run)
    finally:
        hub.line(None)
        hub.throttle(None)
    return Lines(runs, plan.adapt_repeats)


# --------------------------------------------------------------------------- I: a host that answers 429

@dataclass
class Limited:
    size: int
    repeats: int
    seconds: dict[str, list[float]] = field(default_factory=dict)  # limited (no flags), four (--connections 4, no limit)
    refused: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)

    def rows(self) -> list[Row]:
        gain = median([f / o for o, f in zip(self.seconds["limited"], self.seconds["four"])])
        rate = lambda k: mb_s(self.size / median(self.seconds[k]))  # noqa: E731
        return [Row(f"I. A host allowing {LIMIT_BODIES} bodies at once (429 + Retry-After beyond), {mb_s(LIMIT_CAP)} per "
                    f"connection, one {bs.size_label(self.size)} file: no flags vs `--connections {LIMIT_BODIES}` without the "
                    f"limit (refused {max(self.refused)} request(s) at most per run)", rate("limited"), rate("four"),
                    f"{gain:.2f}×", f"≥ {GOAL_LIMITED:.2f}×, success", gain >= GOAL_LIMITED)]

    def notes(self) -> list[str]:
        return [f"Figure I: {self.repeats} repeat(s), interleaved. The limited host answers the fifth body at once with "
                "429, `Retry-After: 1` and `RateLimit`/`RateLimit-Policy`; ours holds that host to what it carried and "
                "hands the refused range to a running connection, so the refusal costs no wait. Refusals per run: "
                + " ".join(str(r) for r in self.refused) + ". Seconds: " + "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in self.seconds.items()) + "."]


def fig_limited(hub, plan) -> Limited:
    size = plan.limited_file
    model = bs.publish(hub, "whisper:limited", "bench/limited", {"model.safetensors": blob(size, 4)})
    index = bs.write_index(WORK / "adapt" / "limited.yaml", [model])
    bs.read_through([blob(size, 4)])
    fig = Limited(size, plan.adapt_repeats, {"limited": [], "four": []})
    hub.use_cdn(ttl=3600)
    hub.throttle(LIMIT_CAP)
    try:
        for i in range(plan.adapt_repeats):
            for key in rotate(["limited", "four"], i):
                if key == "limited":
                    hub.limit_bodies(LIMIT_BODIES, retry_after=1)
                    before = hub.refused
                    took, report = _ours(hub, model, index, f"limited-{i}")
                    fig.refused.append(hub.refused - before)
                    fig.held.append(int(report.get("held", 0)))
                else:
                    hub.limit_bodies(0)
                    took, _ = _ours(hub, model, index, f"four-{i}", str(LIMIT_BODIES))
                fig.seconds[key].append(took)
    finally:
        hub.limit_bodies(0)
        hub.throttle(None)
        hub.use_cdn(None)
    return fig


# --------------------------------------------------------------------------- J: the whole command vs aria2c

@dataclass
class WholeCommand:
    size: int
    repeats: int
    seconds: dict[str, list[float]]  # ours (no flags), ours8 (--connections 8), aria2c: process wall time
    phases: list[tuple[float, float, float]]  # ours: start -> first request, first request -> last byte, last byte -> exit
    missing: str = ""

    def rows(self) -> list[Row]:
        what = f"one {bs.size_label(self.size)} file at {mb_s(CLI_CAP)} per connection, process wall time"
        if self.missing:
            return [Row(f"J. The whole command `lyricsub-hub warm NAME --no-load` vs `aria2c -x8 -s8 -k1M`, {what}",
                        mb_s(self.size / median(self.seconds["ours"])), self.missing, "—", f"≥ {GOAL_CLI:.2f}×", None)]
        gain = lambda k: median([a / o for o, a in zip(self.seconds[k], self.seconds["aria2c"])])  # noqa: E731
        rate = lambda k: mb_s(self.size / median(self.seconds[k]))  # noqa: E731
        return [Row(f"J. The whole command `lyricsub-hub warm NAME --no-load` (no flags) vs `aria2c -x8 -s8 -k1M`, {what}",
                    rate("ours"), rate("aria2c"), f"{gain('ours'):.2f}×", f"≥ {GOAL_CLI:.2f}×", gain("ours") >= GOAL_CLI),
                Row(f"J. The whole command with `--connections 8` (aria2c's count) vs `aria2c -x8 -s8 -k1M`, {what}",
                    rate("ours8"), rate("aria2c"), f"{gain('ours8'):.2f}×", "— (report)", None)]

    def notes(self) -> list[str]:
        start, move, end = (median([p[i] for p in self.phases]) for i in range(3))
        return [f"Figure J: {self.repeats} repeat(s), interleaved with the order rotating; each command a fresh process "
                "(the console script) into an empty HF_HOME. Where ours' time goes (median, from the Hub's request "
                f"log): process start to its first request {start * 1e3:.0f} ms (interpreter, imports, index, plan, "
                f"reachability probe), first request to the last body byte {move:.2f} s, last byte to exit "
                f"{end * 1e3:.0f} ms (hash of what lay past the hashed prefix, publish, verification records, exit). "
                "aria2c checks no hash. Seconds: " + "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs)
                                                            for k, vs in self.seconds.items()) + "."]


def fig_whole_command(hub, plan) -> WholeCommand:
    size = plan.cli_file
    model = bs.publish(hub, "whisper:whole", "bench/whole", {"model.safetensors": blob(size, 6)})
    index = bs.write_index(WORK / "adapt" / "whole.yaml", [model])
    bs.read_through([blob(size, 6)])
    aria2 = bs.aria2_binary()
    tools = ["ours", "ours8"] + (["aria2c"] if aria2 else [])
    seconds: dict[str, list[float]] = {t: [] for t in tools}
    phases: list[tuple[float, float, float]] = []
    script = bs.console_script()
    hub.throttle(CLI_CAP)
    try:
        for i in range(plan.adapt_repeats):
            for tool in rotate(tools, i):
                out = WORK / "adapt" / f"whole-{tool}"
                out.mkdir(parents=True, exist_ok=True)
                if tool == "aria2c":
                    assert aria2 is not None
                    child = bs.run_child(_aria2_cmd(aria2, hub, model, out))
                    assert child.rc == 0, child.stderr
                else:
                    extra = ["--connections", "8"] if tool == "ours8" else []
                    cmd = script + ["warm", model.name, "--no-load", "--index", str(index), "--endpoint", hub.endpoint, *extra]
                    hub.clear_log()
                    began = time.monotonic()
                    child = bs.run_child(cmd, child_env(HF_HOME=out / "hf", LYRICSUB_STATE_DIR=out / "state"))
                    ended = time.monotonic()
                    assert child.rc == 0, child.stderr
                    if tool == "ours":
                        log = hub.requests
                        first = min(r.started for r in log)
                        last = max(r.ended for r in log)
                        phases.append((first - began, last - first, ended - last))
                seconds[tool].append(child.seconds)
                _clean(out, out.with_suffix(".aria2-input"))
    finally:
        hub.throttle(None)
    return WholeCommand(size, plan.adapt_repeats, seconds, phases,
                        "" if aria2 else "aria2c is not installed (apt-get install aria2)")
