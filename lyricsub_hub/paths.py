"""Where things live: huggingface_hub's cache layout and our own state folder.

The cache layout (models--org--name/{blobs,snapshots,refs}) is huggingface_hub's
documented on-disk format; reading it directly keeps the warm path free of the
~0.4 s huggingface_hub import and of any network code.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

STATE_ENV = "LYRICSUB_STATE_DIR"


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The same answer huggingface_hub gives: HF_HUB_CACHE, else HF_HOME/hub, else XDG/~/.cache."""
    if explicit:
        return Path(explicit).expanduser()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return hf_home() / "hub"


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def resolve_state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Our own records live outside the cache, so read-only and shared caches work."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "lyricsub-hub"


def repo_folder(cache_dir: Path, repo: str) -> Path:
    return cache_dir / ("models--" + repo.replace("/", "--"))


def snapshot_dir(cache_dir: Path, repo: str, commit: str) -> Path:
    return repo_folder(cache_dir, repo) / "snapshots" / commit


def lock_path(cache_dir: Path, repo: str, etag: str) -> Path:
    """The per-blob lock huggingface_hub itself takes, so our writers and its writers exclude each other."""
    return cache_dir / ".locks" / ("models--" + repo.replace("/", "--")) / f"{etag}.lock"


def read_ref(cache_dir: Path, repo: str, ref: str) -> str | None:
    try:
        return (repo_folder(cache_dir, repo) / "refs" / ref).read_text().strip() or None
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def cache_key(cache_dir: Path) -> str:
    """Short stable name for a cache folder, so one state folder can serve several caches (memoised: warm path)."""
    real = os.path.realpath(cache_dir)
    return hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def inside(base: Path | str, candidate: Path, *, base_is_real: bool = False) -> bool:
    """True when candidate (resolved) stays under base (resolved); pass an already-resolved base to save the lookups."""
    root = str(base) if base_is_real else os.path.realpath(base)
    return os.path.realpath(candidate).startswith(root.rstrip(os.sep) + os.sep)
