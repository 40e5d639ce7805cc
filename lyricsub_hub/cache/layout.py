"""Where things live in huggingface_hub's cache: models--org--name/{blobs,snapshots,refs}, and .locks.

The layout is huggingface_hub's documented on-disk format; reading it directly
keeps the warm path free of the ~0.4 s huggingface_hub import and of any network
code. Every name built here comes from a validated value (repo id, 40-hex commit,
hex blob id, index file name, git branch name).
"""

from __future__ import annotations

import functools
import os
import zlib
from pathlib import Path

PART_SUFFIX = ".lyricsub-part"  # a file with holes: never huggingface_hub's contiguous ".incomplete"
RANGES_SUFFIX = ".lyricsub-ranges"  # which byte ranges of the part file are written
IMPORT_PREFIX = ".lyricsub-import-"  # a bundle's file being hashed before it takes its name
HF_INCOMPLETE = ".incomplete"  # huggingface_hub's own partial downloads


def repo_folder(cache_dir: Path, repo: str) -> Path:
    return cache_dir / ("models--" + repo.replace("/", "--"))


def snapshot_dir(cache_dir: Path, repo: str, commit: str) -> Path:
    return repo_folder(cache_dir, repo) / "snapshots" / commit


def blobs_dir(cache_dir: Path, repo: str) -> Path:
    return repo_folder(cache_dir, repo) / "blobs"


def lock_path(cache_dir: Path, repo: str, blob: str) -> Path:
    """The per-blob lock huggingface_hub itself takes, so our writers and its writers exclude each other."""
    return cache_dir / ".locks" / ("models--" + repo.replace("/", "--")) / f"{blob}.lock"


def link_target(fname: str, blob: str) -> str:
    """The relative link huggingface_hub writes: snapshots/<commit>/<a/b> -> ../../../blobs/<blob>."""
    return "../" * (fname.count("/") + 2) + "blobs/" + blob


def read_ref(cache_dir: Path, repo: str, ref: str) -> str | None:
    """refs/<ref>, read only when it is a small regular file (a planted FIFO or link is no ref)."""
    from ..core.fs import read_regular

    try:
        return read_regular(repo_folder(cache_dir, repo) / "refs" / ref, 4096).decode().strip() or None
    except (OSError, ValueError):
        return None


REPO_PARTS = ("snapshots", "blobs", "refs")


def repo_problem(cache_dir: Path, repo: str) -> str | None:
    """Why no command may read, write or remove in this repo: its folder, or its snapshots, blobs or refs folder,
    is not a real folder inside the cache (lstat: a link another user planted would lead anywhere). None when
    all are real folders or absent."""
    from ..core.fs import real_folder_problem

    folder = repo_folder(cache_dir, repo)
    why = real_folder_problem(folder, cache_dir)
    if why is None and os.path.lexists(folder):
        why = next((w for sub in REPO_PARTS if (w := real_folder_problem(folder / sub, folder))), None)
    return why


def check_repo(cache_dir: Path, repo: str, model: str | None = None) -> None:
    """Raise UnsafeCacheError (one line) when repo_problem finds something."""
    why = repo_problem(cache_dir, repo)
    if why:
        from ..errors import UnsafeCacheError

        raise UnsafeCacheError(f"refusing to touch {repo}: {why} (another user of the cache may have planted it)",
                               model=model, hint=f"ls -ld {repo_folder(cache_dir, repo)} (and remove what is not yours)")


@functools.lru_cache(maxsize=64)
def cache_key(cache_dir: Path) -> str:
    """Short stable name for a cache folder, so one state folder can serve several caches (memoised: warm path)."""
    real = os.path.realpath(cache_dir).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(real):08x}{zlib.adler32(real):08x}"  # a name, not a proof: records still match by stat
