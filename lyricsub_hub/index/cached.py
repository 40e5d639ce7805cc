"""A parsed copy of the index in the state folder, so a command line starts without importing YAML.

Keyed by the sha256 of the index's bytes (not its mtime): an edited index is
always parsed again. Only a private state folder is used (another user could
otherwise plant a copy that swaps pins); any problem simply means "parse again".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.fs import atomic_write, open_regular, private_dir, private_problem
from .model import FileSpec, ModelIndex, ModelSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = 3  # bump when ModelSpec changes shape



def _sha256(data: bytes) -> Any:
    """CPython's own sha256 where it has one: hashlib would load OpenSSL (about 2 ms of start-up)."""
    from importlib import import_module

    for name in ("_sha2", "_sha256"):  # renamed in 3.12
        try:
            return import_module(name).sha256(data)
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256(data)


def load_cached(path: Path, data: bytes, state_dir: Path | None) -> ModelIndex | None:
    """The parsed index for these bytes, when a good copy is kept; None otherwise."""
    copy = _copy_path(data, state_dir)
    if copy is None or private_problem(copy.parent.parent) or private_problem(copy.parent):
        return None
    try:
        with open(open_regular(copy), "rb") as fh:  # no link, no FIFO: a planted one must not hang a command
            if os.fstat(fh.fileno()).st_uid != os.geteuid():
                return None
            return _from_json(json.loads(fh.read()), path)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def store(index: ModelIndex, data: bytes, state_dir: Path | None) -> None:
    copy = _copy_path(data, state_dir)
    if copy is None or private_problem(copy.parent.parent):
        return
    try:
        private_dir(copy.parent, copy.parent.parent)
        atomic_write(copy, json.dumps(_to_json(index), separators=(",", ":")).encode(), mode=0o600)
    except OSError:
        pass  # a read-only state folder only costs a parse next time


def _copy_path(data: bytes, state_dir: Path | None) -> Path | None:
    if state_dir is None:
        return None
    key = _sha256(b"lyricsub-index-%d\0" % FORMAT + data).hexdigest()[:32]
    return state_dir / "index" / f"{key}.json"


def _to_json(index: ModelIndex) -> dict[str, Any]:
    return {"models": [[m.name, m.family, m.repo, m.revision, [[f.name, f.size, f.sha256] for f in m.files], m.branch,
                        m.license, m.gated, m.description, list(m.requires), dict(m.options), m.line]
                       for m in index.models.values()],
            "sets": {k: list(v) for k, v in index.sets.items()}}


def _from_json(data: dict[str, Any], path: Path) -> ModelIndex:
    models = {}
    for (name, family, repo, revision, files, branch, license_, gated, description, requires, options, line) in data["models"]:
        models[name] = ModelSpec(name, family, repo, revision, tuple(FileSpec(*f) for f in files), branch, license_,
                                 gated, description, tuple(requires), options, line)
    return ModelIndex(path, models, {k: tuple(v) for k, v in data["sets"].items()})
