"""Is a model in the cache, whole and intact? Answered from disk alone.

Deciding is kept apart from doing: this module only reads the cache (and our
verification records) and returns frozen dataclasses; it never downloads,
deletes or prints.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .hashing import digest_many
from .index import FileSpec, ModelSpec
from .paths import cache_key, inside, repo_folder, snapshot_dir
from .records import RecordStore, Stamp

Verify = Literal["stat", "record", "deep"]
FileState = Literal["ok", "missing", "size_mismatch", "mismatch", "unpinned"]
ModelState = Literal["available", "missing", "partial", "corrupt", "unpinned"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class FileStatus:
    name: str
    state: FileState
    path: Path | None
    expected_size: int | None
    actual_size: int | None
    expected_sha256: str | None
    checked: str  # "record" (stat matched a record), "hashed", "size" (no hash possible), "no"
    detail: str = ""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    family: str
    repo: str
    revision: str | None
    status: ModelState
    path: Path | None  # the snapshot folder, only when status is "available"
    files: tuple[FileStatus, ...]
    pinned: bool
    expected_bytes: int | None
    present_bytes: int
    resumable_bytes: int = 0  # bytes of *.incomplete downloads waiting in the cache

    @property
    def available(self) -> bool:
        return self.status == "available"

    @property
    def problems(self) -> tuple[FileStatus, ...]:
        return tuple(f for f in self.files if f.state not in ("ok", "unpinned"))


def model_status(spec: ModelSpec, cache_dir: Path, records: RecordStore | None, verify: Verify = "record") -> ModelStatus:
    """The one place that decides available / missing / partial / corrupt / unpinned."""
    if not spec.downloadable:
        return _unpinned(spec)
    assert spec.revision is not None
    snap = snapshot_dir(cache_dir, spec.repo, spec.revision)
    key = cache_key(cache_dir)
    stamps = records.load(key, spec.repo, spec.revision) if records and verify == "record" else {}
    results: dict[str, FileStatus] = {}
    to_hash: list[tuple[FileSpec, Path, os.stat_result, str | None]] = []
    repo_real = os.path.realpath(repo_folder(cache_dir, spec.repo))  # once per model: realpath is most of the warm path
    for fspec in spec.files:
        quick = _stat_check(fspec, snap, repo_real)
        if isinstance(quick, FileStatus):
            results[fspec.name] = quick
            continue
        path, st, etag = quick
        stamp = stamps.get(fspec.name)
        if verify == "stat":
            results[fspec.name] = _ok(fspec, path, st, "size")
        elif stamp and stamp.matches(st) and (fspec.sha256 in (None, stamp.sha256)) and _etag_agrees(etag, stamp.sha256):
            results[fspec.name] = _ok(fspec, path, st, "record")
        else:
            to_hash.append((fspec, path, st, etag))
    if to_hash:
        new = _hash_and_judge(to_hash, results)
        bad = {name for name, f in results.items() if f.state == "mismatch"}
        if records and (new or bad):
            fresh = dict(records.load(key, spec.repo, spec.revision)) if verify != "record" else dict(stamps)
            fresh.update(new)
            for name in bad:  # a failure is remembered too: no stale record may vouch for it again
                fresh.pop(name, None)
            records.save(key, spec.repo, spec.revision, fresh)
    files = tuple(results[f.name] for f in spec.files)
    return _summarise(spec, snap, files, cache_dir)


def _unpinned(spec: ModelSpec) -> ModelStatus:
    files = tuple(FileStatus(f.name, "unpinned", None, f.size, None, f.sha256, "no", "no commit pinned") for f in spec.files)
    return ModelStatus(spec.name, spec.family, spec.repo, spec.revision, "unpinned", None, files, False, spec.total_size, 0)


def _stat_check(fspec: FileSpec, snap: Path, repo_real: str) -> FileStatus | tuple[Path, os.stat_result, str | None]:
    """Cheap checks first: present, stays inside the cache, right size."""
    path = snap / fspec.name
    try:
        st = os.stat(path)
    except OSError:
        return FileStatus(fspec.name, "missing", None, fspec.size, None, fspec.sha256, "no")
    if not inside(repo_real, path, base_is_real=True):  # the file, or a folder above it, is a link out
        return FileStatus(fspec.name, "mismatch", None, fspec.size, st.st_size, fspec.sha256, "no", "symlink points outside the cache")
    etag = os.path.basename(os.readlink(path)) if os.path.islink(path) else None
    if fspec.size is not None and st.st_size != fspec.size:
        detail = f"{st.st_size} bytes, expected {fspec.size}"
        return FileStatus(fspec.name, "size_mismatch", None, fspec.size, st.st_size, fspec.sha256, "size", detail)
    return path, st, etag


def _etag_agrees(etag: str | None, sha256: str) -> bool:
    return etag is None or not _HEX64.match(etag) or etag == sha256


def _ok(fspec: FileSpec, path: Path, st: os.stat_result, how: str) -> FileStatus:
    return FileStatus(fspec.name, "ok", path, fspec.size, st.st_size, fspec.sha256, how)


def _hash_and_judge(jobs: list, results: dict[str, FileStatus]) -> dict[str, Stamp]:
    digests = digest_many([(path, bool(etag and _HEX40.match(etag))) for _, path, _, etag in jobs])
    stamps: dict[str, Stamp] = {}
    for (fspec, path, st, etag), digest in zip(jobs, digests):
        if isinstance(digest, OSError):
            results[fspec.name] = FileStatus(fspec.name, "missing", None, fspec.size, None, fspec.sha256, "no", f"unreadable: {digest.strerror}")
            continue
        problem = _compare(fspec, etag, digest.sha256, digest.git_sha1)
        if problem:
            results[fspec.name] = FileStatus(fspec.name, "mismatch", None, fspec.size, digest.size, fspec.sha256, "hashed", problem)
            continue
        verifiable = bool(fspec.sha256 or (etag and (_HEX64.match(etag) or _HEX40.match(etag))))
        state: FileState = "ok" if verifiable else "unpinned"
        results[fspec.name] = FileStatus(fspec.name, state, path, fspec.size, digest.size, fspec.sha256, "hashed")
        if verifiable and _unchanged(path, st):  # a file rewritten while we read it gets no record
            stamps[fspec.name] = Stamp.of(st, digest.sha256)
    return stamps


def _unchanged(path: Path, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_mtime_ns, now.st_size, now.st_ino) == (st.st_mtime_ns, st.st_size, st.st_ino)


def _compare(fspec: FileSpec, etag: str | None, sha256: str, git_sha1: str | None) -> str:
    if fspec.sha256 and sha256 != fspec.sha256:
        return f"sha256 {sha256[:12]}… does not match the pinned {fspec.sha256[:12]}…"
    if etag and _HEX64.match(etag) and sha256 != etag:
        return f"sha256 {sha256[:12]}… does not match the Hub etag {etag[:12]}…"
    if etag and _HEX40.match(etag) and git_sha1 != etag:
        return f"git sha1 {git_sha1[:12] if git_sha1 else '?'}… does not match the Hub etag {etag[:12]}…"
    return ""


def _summarise(spec: ModelSpec, snap: Path, files: tuple[FileStatus, ...], cache_dir: Path) -> ModelStatus:
    states = {f.state for f in files}
    if "mismatch" in states:
        status: ModelState = "corrupt"
    elif states == {"missing"}:
        status = "missing"
    elif states & {"missing", "size_mismatch"}:
        status = "partial"
    else:
        status = "available"
    present = sum(f.actual_size or 0 for f in files if f.state in ("ok", "unpinned"))
    resumable = 0 if status == "available" else incomplete_bytes(cache_dir, spec.repo)
    return ModelStatus(
        spec.name, spec.family, spec.repo, spec.revision, status,
        snap if status == "available" else None, files, spec.pinned, spec.total_size, present, resumable,
    )


def incomplete_bytes(cache_dir: Path, repo: str) -> int:
    """Bytes already fetched by interrupted downloads (ours or huggingface_hub's)."""
    total = 0
    try:
        with os.scandir(repo_folder(cache_dir, repo) / "blobs") as it:
            for entry in it:
                if entry.name.endswith(".incomplete"):
                    try:
                        total += entry.stat().st_size
                    except OSError:
                        pass
    except OSError:
        return 0
    return total
