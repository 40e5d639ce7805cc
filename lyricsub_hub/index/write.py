"""Writing index files: a fresh one from specs (tests, bench, demo, the pytest plugin), or pins edited in place.

In-place edits go through ruamel's round-trip loader, so comments, key order and
untouched entries stay as the person wrote them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.fs import atomic_write
from .model import FileSpec, ModelSpec


def render_index(models: Iterable[ModelSpec], sets: Mapping[str, Sequence[str]] | None = None) -> str:
    """A model_index.yaml holding these models (flow style for files, JSON-quoted strings: always valid YAML)."""
    q = json.dumps
    lines = ["version: 1", "models:"]
    for m in models:
        lines += [f"  {q(m.name)}:", f"    family: {m.family}", f"    repo: {q(m.repo)}"]
        if m.revision:
            lines.append(f"    revision: {m.revision}")
        if m.branch != "main":
            lines.append(f"    branch: {q(m.branch)}")
        lines.append(f"    gated: {'true' if m.gated else 'false'}")
        for key in ("license", "description"):
            if getattr(m, key):
                lines.append(f"    {key}: {q(getattr(m, key))}")
        if m.requires:
            lines.append(f"    requires: {q(list(m.requires))}")
        if m.options:
            lines.append(f"    options: {q(dict(m.options))}")
        lines.append("    files:" if m.files else "    files: []")
        lines += [f"      - {_file(f)}" for f in m.files]
    if sets:
        lines.append("sets:")
        lines += [f"  {q(k)}: {q(list(v))}" for k, v in sets.items()]
    return "\n".join(lines) + "\n"


def write_index(path: Path, models: Iterable[ModelSpec], sets: Mapping[str, Sequence[str]] | None = None) -> Path:
    atomic_write(path, render_index(models, sets).encode("utf-8"))
    return path


def _file(f: FileSpec) -> str:
    parts = [f"name: {json.dumps(f.name)}"]
    if f.size is not None:
        parts.append(f"size: {f.size}")
    if f.sha256 is not None:
        parts.append(f"sha256: {f.sha256}")
    return "{" + ", ".join(parts) + "}"


def edit_pins(path: Path, pins: Mapping[str, tuple[str, Sequence[FileSpec]]]) -> None:
    """Set revision and files of the named models in place; everything else in the file stays as it was."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for model, (revision, files) in pins.items():
        entry = doc["models"][model]
        _set_after(entry, "revision", revision, after="repo")
        seq = CommentedSeq()
        for f in files:
            item = CommentedMap([("name", f.name), ("size", f.size), ("sha256", f.sha256)])
            item.fa.set_flow_style()
            seq.append(item)
        _set_after(entry, "files", seq, after="revision")
    from io import StringIO

    out = StringIO()
    yaml.dump(doc, out)
    atomic_write(path, out.getvalue().encode("utf-8"))


def _set_after(entry: Any, key: str, value: Any, *, after: str) -> None:
    if key in entry:
        entry[key] = value
        return
    keys = list(entry.keys())
    pos = keys.index(after) + 1 if after in keys else len(keys)
    entry.insert(pos, key, value)
