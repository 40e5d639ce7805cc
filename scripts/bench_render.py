"""docs/benchmarks.md from the figures of scripts/bench.py: machine, results table, notes, reliability counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    what: str
    ours: str
    anchor: str
    ratio: str
    goal: str
    met: bool | None  # None: reported, no goal

    @property
    def met_text(self) -> str:
        return "—" if self.met is None else ("yes" if self.met else "**no**")


def ratio(ours: float, anchor: float) -> str:
    return f"{ours / anchor:.2f}×" if anchor else "—"


@dataclass
class Reliability:
    """Counts written by the reliability suite (tests/reliability/.results/*.json), shown as given."""

    files: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> Reliability:
        files = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                files[path.name] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                files[path.name] = f"unreadable: {exc}"
        return cls(files)

    def lines(self) -> list[str]:
        if not self.files:
            return ["No results from the reliability suite (`tests/reliability/.results/*.json`): run `make test` first."]
        out = ["Counts written by the reliability suite (`tests/reliability/.results/`), shown as given; nested "
               "per-case details stay in the files.", ""]
        for name, data in self.files.items():
            by = data.get("by_huggingface_hub") if isinstance(data, dict) else None
            cols = {f"huggingface_hub {v}": d for v, d in by.items()} if isinstance(by, dict) and by else {"value": data}
            flat = {col: dict(_flatten(d)) for col, d in cols.items()}
            keys = list(dict.fromkeys(k for f in flat.values() for k in f))
            out += [f"`{name}`", "", "| count | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
            out += [f"| {k} | " + " | ".join(_cell(flat[c].get(k, "")) for c in cols) + " |" for k in keys]
            out.append("")
        return out


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict)


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalars as they are; a dict of scalars as key.sub; anything nested deeper is summarised."""
    if not isinstance(data, dict):
        return [(prefix or "value", data)]
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if _scalar(value):
            items.append((name, value))
        elif all(_scalar(v) for v in value.values()) and not prefix:
            items += [(f"{name}.{k}", v) for k, v in value.items()]
        else:
            items.append((name, f"{len(value)} entries (details in the file)"))
    return items


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, list) and len(text) > 80:
        text = f"{len(value)} items"
    return text.replace("|", "\\|").replace("\n", " ")


INTRO = """\
# Benchmarks

Written by `scripts/bench.py`; do not edit by hand. Reproduce with `make bench` (it runs
`.venv/bin/python scripts/bench.py`; `--quick` is a smoke run with small sizes, and the script also runs
under `.venv-hf2`, huggingface_hub 2.x without torch, where the load figure is skipped). Every figure is a
ratio measured side by side with its anchor in the same run, on the same machine, against the loopback
test Hub (`lyricsub_hub.testing.hub`, 127.0.0.1) with an isolated `HF_HOME` under `.bench/`; the
repeats and the statistic are named under the table. Ratios are ours / anchor: for times lower is
better, for throughputs higher is better. Figures 1-6 give throughputs in MiB/s (2^20 bytes); A-G, the
figures of GitHub issue 11 (C is figure 3), in MB/s (10^6 bytes), the unit of the caps they set.
"""


def render(info, figures: list, reliability: Reliability, quick: bool = False) -> str:
    lines = [INTRO]
    if quick:
        lines.append("**This is a `--quick` smoke run: small sizes and few repeats; the figures are not results.**\n")
    lines += ["## Machine", "", "| | |", "|---|---|",
              f"| CPU | {info.cpu} |", f"| cores | {info.cores} |", f"| RAM | {info.ram} |", f"| OS | {info.os} |",
              f"| Python | {info.python} |", f"| huggingface_hub | {info.hub} |", f"| torch | {info.torch} |",
              f"| date | {info.date} |", f"| command | `{info.command}` |", f"| lyricsub_hub measured | {info.library} |", ""]
    rows = [row for fig in figures for row in fig.rows()]
    lines += ["## Results", "", "| what | ours | anchor | ratio | goal | met |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.what} | {r.ours} | {r.anchor} | {r.ratio} | {r.goal} | {r.met_text} |" for r in rows]
    met = [r.met for r in rows if r.met is not None]
    lines += ["", f"Goals met: {sum(met)} of {len(met)}.", "", "## How each figure was measured", ""]
    lines += [f"- {note}" for fig in figures for note in fig.notes()]
    lines += [f"- {note}" for note in info.notes]
    lines += ["", "## Reliability", ""] + reliability.lines()
    return "\n".join(lines) + "\n"
