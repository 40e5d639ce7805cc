"""Removing models through huggingface_hub's own cache deletion (plan, then execute)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .index import ModelSpec
from .paths import repo_folder


@dataclass(frozen=True)
class RemovalReport:
    removed: tuple[str, ...]  # model names whose files were deleted
    absent: tuple[str, ...]  # model names that had nothing in the cache
    bytes_freed: int


def remove_models(specs: list[ModelSpec], cache_dir: Path) -> RemovalReport:
    """Delete each model's pinned revision, plus its interrupted downloads; nothing else."""
    removed, absent, freed = [], [], 0
    targets = {s.repo: set() for s in specs}
    for spec in specs:
        if spec.revision:
            targets[spec.repo].add(spec.revision)
    deleted, freed = _delete_revisions(cache_dir, targets)
    for spec in specs:
        partial = _remove_incomplete(cache_dir, spec)
        freed += partial
        if spec.revision in deleted.get(spec.repo, ()) or partial:
            removed.append(spec.name)
        else:
            absent.append(spec.name)
    return RemovalReport(tuple(removed), tuple(absent), freed)


def _delete_revisions(cache_dir: Path, targets: dict[str, set[str]]) -> tuple[dict[str, set[str]], int]:
    """Plan with huggingface_hub's scan, then execute; returns the revisions deleted per repo and the bytes freed."""
    if not cache_dir.is_dir():
        return {}, 0
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache_dir)
    found: dict[str, set[str]] = {}
    commits: list[str] = []
    for repo in info.repos:
        if repo.repo_type != "model" or repo.repo_id not in targets:
            continue
        for rev in repo.revisions:
            if rev.commit_hash in targets[repo.repo_id]:
                found.setdefault(repo.repo_id, set()).add(rev.commit_hash)
                commits.append(rev.commit_hash)
    if not commits:
        return found, 0
    strategy = info.delete_revisions(*commits)
    strategy.execute()
    return found, strategy.expected_freed_size


def _remove_incomplete(cache_dir: Path, spec: ModelSpec) -> int:
    """Interrupted downloads of this model's files (named after their sha256 etag)."""
    blobs = repo_folder(cache_dir, spec.repo) / "blobs"
    shas = {f.sha256 for f in spec.files if f.sha256}
    freed = 0
    if not blobs.is_dir():
        return 0
    for entry in os.scandir(blobs):
        if entry.name.endswith(".incomplete") and entry.name.split(".", 1)[0] in shas:
            try:
                freed += entry.stat().st_size
                os.unlink(entry.path)
            except OSError:
                pass
    return freed
