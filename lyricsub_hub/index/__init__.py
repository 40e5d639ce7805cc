"""The model index: which Hub repo, commit and files make up each variant, read from model_index.yaml."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import IndexFileError
from .model import DEFAULT_SET, FileSpec, ModelIndex, ModelSpec, unpinned_error

TYPE_CHECKING = False

__all__ = ["DEFAULT_SET", "FileSpec", "ModelIndex", "ModelSpec", "default_index_path", "load_index", "parse_index", "unpinned_error"]

INDEX_ENV = "LYRICSUB_MODEL_INDEX"

if TYPE_CHECKING:
    from .parse import parse_index


def default_index_path() -> Path:
    """$LYRICSUB_MODEL_INDEX, else the index shipped in the wheel, else the repo checkout's."""
    env = os.environ.get(INDEX_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).parent.parent / "model_index.yaml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "model_index.yaml"


def load_index(path: str | os.PathLike[str] | None = None, *, state_dir: Path | None = None) -> ModelIndex:
    """Read and validate an index; with a state folder, a parsed copy keyed by the file's bytes skips the YAML."""
    path = Path(path) if path is not None else default_index_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IndexFileError(f"cannot read the index: {exc.strerror or exc}", path=str(path)) from None
    from .cached import load_cached, store

    cached = load_cached(path, data, state_dir)
    if cached is not None:
        return cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IndexFileError(f"not UTF-8 text (byte {exc.start})", path=str(path), line=line) from None
    from .parse import parse_index

    index = parse_index(text, str(path))
    store(index, data, state_dir)
    return index


def __getattr__(name: str) -> object:  # the YAML parser is imported only when an index has to be parsed
    if name == "parse_index":
        from .parse import parse_index

        return parse_index
    raise AttributeError(name)
