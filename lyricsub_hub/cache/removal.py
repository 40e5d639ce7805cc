"""Removing models through huggingface_hub's own cache deletion (plan, then execute).

huggingface_hub deletes what snapshot links resolve to, so a revision whose
links leave its repo folder (a shared cache someone tampered with) is refused
before anything is deleted.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.fs import inside, on_disk
from ..errors import UnsafeCacheError, local_error
from ..index import ModelSpec
from .layout import (
    blobs_dir,
    check_repo,
    repo_folder,
    repo_problem,
    snapshot_dir,
)
from .parts import remove_parts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class RemovalReport:
    """What removing models deleted (or, in a dry run, would delete) and the bytes freed."""

    removed: tuple[str, ...]  # model names whose files were deleted
    absent: tuple[str, ...]  # model names that had nothing in the cache
    bytes_freed: int


def remove_models(specs: list[ModelSpec], cache_dir: Path, *, dry_run: bool = False) -> RemovalReport:
    """Delete each model's pinned revision, plus its interrupted downloads; nothing else. With dry_run, the same
    report (what would go, what it would free) and nothing deleted."""
    targets: dict[str, set[str]] = {s.repo: set() for s in specs}
    for spec in specs:
        check_repo(cache_dir, spec.repo, spec.name)
        if spec.revision:
            check_links(cache_dir, spec.repo, spec.revision, model=spec.name)
            check_writable(cache_dir, spec.repo, spec.revision, model=spec.name)
            targets[spec.repo].add(spec.revision)
    deleted, freed = delete_revisions(cache_dir, targets, dry_run=dry_run)
    removed, absent = [], []
    for spec in specs:
        partial = remove_parts(cache_dir, spec.repo, {f.sha256 for f in spec.files if f.sha256}, dry_run=dry_run)
        freed += partial
        if spec.revision in deleted.get(spec.repo, ()) or partial:
            removed.append(spec.name)
        else:
            absent.append(spec.name)
    return RemovalReport(tuple(removed), tuple(absent), freed)


def check_links(cache_dir: Path, repo: str, commit: str, *, model: str | None = None) -> None:
    """Refuse a revision whose snapshot entries resolve outside the repo folder: deleting would follow them."""
    snap = snapshot_dir(cache_dir, repo, commit)
    if not os.path.lexists(snap):
        return
    base = os.path.realpath(repo_folder(cache_dir, repo))
    leaving = []
    if os.path.islink(snap) and not inside(base, snap, base_is_real=True):
        leaving.append(str(snap))
    else:
        for dirpath, dirnames, filenames in os.walk(snap):
            for name in filenames + dirnames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) and not inside(base, path, base_is_real=True):
                    leaving.append(os.path.relpath(path, snap))
    if leaving:
        raise UnsafeCacheError(f"refusing to delete {repo}@{commit[:12]}: {len(leaving)} link(s) leave the cache "
                               f"({', '.join(leaving[:3])}); remove those links by hand first", model=model,
                               hint=f"ls -l {snap}")


def check_writable(cache_dir: Path, repo: str, commit: str, *, model: str | None = None) -> None:
    """Refuse, before anything is deleted, a revision this account may not remove (another group's cache, a
    read-only mount): huggingface_hub's deletion would log each failure, delete what it can and report it freed."""
    snap = snapshot_dir(cache_dir, repo, commit)
    if not os.path.isdir(snap) or os.path.islink(snap):
        return
    folders = [repo_folder(cache_dir, repo), snap.parent, blobs_dir(cache_dir, repo)]
    folders += [Path(dirpath) for dirpath, _, _ in os.walk(snap)]
    for folder in folders:
        if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
            code = errno.EROFS if _read_only(folder) else errno.EACCES
            error = local_error(PermissionError(code, os.strerror(code), os.fspath(folder)), model=model,
                                cache_dir=cache_dir, removing=True)
            assert error is not None
            raise error


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def scan_repos(cache_dir: Path, repos: Iterable[str]) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """huggingface_hub's scan of these repos only (never the rest of the cache), with sizes as blocks on disk.

    A repo whose folders are not real folders (repo_problem) or whose refs hold anything but regular files (a FIFO
    would hang huggingface_hub's read of it) is not scanned: it is returned in the second value with why. Sizes are
    st_blocks * 512, so a sparse file that claims terabytes counts for what it holds.
    """
    from huggingface_hub import HFCacheInfo
    from huggingface_hub.utils._cache_manager import CorruptedCacheException, _scan_cached_repo

    found, refused, warnings = [], [], []
    for repo in sorted(set(repos)):
        folder = repo_folder(cache_dir, repo)
        why = repo_problem(cache_dir, repo) or _refs_problem(folder / "refs")
        if why:
            refused.append((repo, why))
            continue
        if not (folder / "snapshots").is_dir():
            continue  # a first download under way (or nothing): no revisions
        try:
            found.append(_on_disk(_scan_cached_repo(folder)))
        except CorruptedCacheException as exc:
            warnings.append(exc)
            refused.append((repo, str(exc)[:200]))
        except OSError as exc:
            refused.append((repo, f"cannot read it: {exc.strerror or exc}"))
    fields = {"repos": frozenset(found), "size_on_disk": sum(r.size_on_disk for r in found), "warnings": warnings}
    if "incomplete_files" in HFCacheInfo.__dataclass_fields__:  # huggingface_hub 1.x and 2.x
        fields |= {"incomplete_files": frozenset(), "cache_dir": cache_dir}
    info = HFCacheInfo(**fields)
    return info, tuple(refused)


def _refs_problem(refs: Path) -> str | None:
    for dirpath, dirnames, filenames in os.walk(refs):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                return f"{path} is not a regular file"
    return None


def _on_disk(repo: Any) -> Any:
    """The scanned repo with every size as its blocks on disk (huggingface_hub counts st_size)."""
    sizes: dict[Path, int] = {}
    for rev in repo.revisions:
        for f in rev.files:
            if f.blob_path not in sizes:
                try:
                    sizes[f.blob_path] = on_disk(os.stat(f.blob_path))
                except OSError:
                    sizes[f.blob_path] = 0
    revisions = []
    for rev in repo.revisions:
        files = frozenset(replace(f, size_on_disk=sizes[f.blob_path]) for f in rev.files)
        revisions.append(replace(rev, files=files, size_on_disk=sum(sizes[b] for b in {f.blob_path for f in files})))
    return replace(repo, revisions=frozenset(revisions), size_on_disk=sum(sizes.values()))


def delete_revisions(cache_dir: Path, targets: dict[str, set[str]], *,
                     dry_run: bool = False) -> tuple[dict[str, set[str]], int]:
    """Plan with huggingface_hub's scan (of these repos only), then execute (unless dry_run); returns the revisions
    deleted per repo and the bytes freed."""
    if not cache_dir.is_dir() or not any(targets.values()):
        return {}, 0
    info, _refused = scan_repos(cache_dir, [r for r, commits in targets.items() if commits])
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
    if not dry_run:
        strategy.execute()
    return found, strategy.expected_freed_size
