"""Everything the CLI prints: one JSON envelope (or JSON lines for warm), or human text.

Library code returns dataclasses; only this module turns them into output.
Data goes to stdout; hints, progress and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .errors import LyricsubError
from .status import ModelStatus

SCHEMA = 1


def model_json(st: ModelStatus) -> dict[str, Any]:
    return {
        "name": st.name, "status": st.status, "path": str(st.path) if st.path else None,
        "family": st.family, "repo": st.repo, "revision": st.revision, "pinned": st.pinned,
        "expected_bytes": st.expected_bytes, "present_bytes": st.present_bytes, "resumable_bytes": st.resumable_bytes,
        "files": [
            {"name": f.name, "state": f.state, "size": f.actual_size, "expected_size": f.expected_size,
             "sha256": f.expected_sha256, "checked": f.checked, "detail": f.detail or None}
            for f in st.files
        ],
    }


def error_json(exc: LyricsubError) -> dict[str, Any]:
    return {"code": exc.code, "model": exc.model, "message": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}


@dataclass
class Outcome:
    """What a command produced; rendered once at the end."""

    command: str
    exit_code: int = 0
    models: list[dict[str, Any]] = field(default_factory=list)
    errors: list[LyricsubError] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # human text for stdout

    def fail(self, exc: LyricsubError) -> None:
        self.errors.append(exc)
        self.exit_code = worst(self.exit_code, exc.exit_code)


_PRECEDENCE = [130, 4, 3, 2, 5, 1, 0]


def worst(a: int, b: int) -> int:
    rank = {code: i for i, code in enumerate(_PRECEDENCE)}
    return a if rank.get(a, 6) <= rank.get(b, 6) else b


def envelope(out: Outcome) -> dict[str, Any]:
    body = {"schema": SCHEMA, "command": out.command, "ok": out.exit_code == 0, "exit_code": out.exit_code,
            "models": out.models, "errors": [error_json(e) for e in out.errors]}
    body.update(out.data)
    return body


def emit(out: Outcome, as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if as_json and out.data.pop("_printed", False):
        pass  # streamed already (warm --json ends with its summary event)
    elif as_json:
        stdout.write(json.dumps(envelope(out), default=_default) + "\n")
    else:
        for line in out.lines:
            stdout.write(line + "\n")
        for exc in out.errors:
            stderr.write(f"lyricsub-hub: {exc}\n")
    stdout.flush()
    return out.exit_code


def json_line(event: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(event, default=_default) + "\n")
    stream.flush()


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def status_line(st: ModelStatus, width: int = 28) -> str:
    size = human_size(st.expected_bytes)
    tail = str(st.path) if st.path else _advice(st)
    return f"{st.name:<{width}} {st.status:<10} {size:>9}  {tail}"


def _advice(st: ModelStatus) -> str:
    if st.status == "unpinned":
        return f"run: lyricsub-hub lock {st.name}"
    if st.status == "corrupt":
        return f"run: lyricsub-hub verify --repair {st.name}"
    extra = f" ({human_size(st.resumable_bytes)} resumable)" if st.resumable_bytes else ""
    return f"run: lyricsub-hub warm {st.name}{extra}"
