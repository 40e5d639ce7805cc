"""A private folder holding links to verified files only, which is all a library is ever given.

A snapshot folder can hold files no pin covers (another tool wrote them there);
a library handed that folder would read them. A view holds exactly the files the
family said its library reads, each a link to bytes that just passed their pin.
Views live in a temporary folder removed when the process ends, since some
libraries read their files again later (CTranslate2 on reload).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

_ROOT: Path | None = None


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="lyricsub-views-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def make_view(model: str, files: Mapping[str, Path], requires: Mapping[str, Mapping[str, Path]] | None = None
              ) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    """(folder, name -> path in it, required repo -> its sub-folder). Names were validated by the index."""
    folder = Path(tempfile.mkdtemp(prefix="view-", dir=_root()))
    placed = {name: _link(folder, name, target) for name, target in files.items()}
    subs: dict[str, Path] = {}
    for i, (repo, repo_files) in enumerate((requires or {}).items()):
        sub = folder / f"req-{i}"  # a neutral name: pyannote picks loaders by substrings of the path
        for name, target in repo_files.items():
            _link(sub, name, target)
        subs[repo] = sub
    return folder, placed, subs


def _link(folder: Path, name: str, target: Path) -> Path:
    entry = folder / name
    entry.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.realpath(target), entry)
    return entry
