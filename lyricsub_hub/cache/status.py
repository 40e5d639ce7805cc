"""Is a model in the cache, whole and intact? Answered from disk alone.

Deciding is kept apart from doing: this module only reads the cache (and our
verification records) and returns frozen dataclasses; it never downloads,
deletes or prints. Only a fully pinned model can be available: the pinned
sha256 is the one way in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.checks import is_git_sha1, is_sha256
from ..core.fs import inside
from ..errors import Hint, IntegrityError, LyricsubError, ModelNotAvailableError, UnpinnedModelError
from ..index import FileSpec, ModelSpec
from .layout import cache_key, check_repo, repo_folder, snapshot_dir
from .records import RecordStore, Stamp

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Literal

    from .hashing import Digest

    Verify = Literal["stat", "record", "deep"]
    FileState = Literal["ok", "missing", "size_mismatch", "mismatch", "unpinned"]
    ModelState = Literal["available", "missing", "partial", "corrupt", "unpinned"]


@dataclass(frozen=True)
class FileStatus:
    """One file of a model as found on disk, and how it was checked."""

    name: str
    state: FileState
    path: Path | None
    expected_size: int | None
    actual_size: int | None
    expected_sha256: str | None
    checked: str  # "record" (stat matched a record), "hashed", "size" (stat only), "no"
    detail: str = ""


@dataclass(frozen=True)
class ModelStatus:
    """A model in the cache: available, missing, partial, corrupt or unpinned, with each of its files."""

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
    resumable_bytes: int = 0  # bytes interrupted downloads already hold
    reason: str = ""  # why it is unpinned
    cache_dir: Path | None = None  # the cache these files were looked up in (the user's own, or a site cache)
    site: bool = False  # True when that is a read-only site cache (LYRICSUB_SITE_CACHE)

    @property
    def available(self) -> bool:
        return self.status == "available"

    @property
    def problems(self) -> tuple[FileStatus, ...]:
        return tuple(f for f in self.files if f.state not in ("ok", "unpinned"))


def model_status(spec: ModelSpec, cache_dir: Path, records: RecordStore | None, verify: Verify = "record") -> ModelStatus:
    """The one place that decides available / missing / partial / corrupt / unpinned."""
    if not spec.pinned or spec.revision is None:
        return _unpinned(spec)
    check_repo(cache_dir, spec.repo, spec.name)  # a repo folder planted as a link is never read, written or removed
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
        path, st, blob = quick
        stamp = stamps.get(fspec.name)
        if verify == "stat":
            results[fspec.name] = _ok(fspec, path, st, "size")
        elif stamp and stamp.matches(st) and stamp.sha256 == fspec.sha256 and _blob_agrees(blob, stamp.sha256):
            results[fspec.name] = _ok(fspec, path, st, "record")
        else:
            to_hash.append((fspec, path, st, blob))
    if to_hash:
        new = _hash_and_judge(to_hash, results)
        bad = tuple(name for name, f in results.items() if f.state == "mismatch")
        if records and (new or bad):  # a failure is remembered too: no stale record may vouch for it again
            records.update(key, spec.repo, spec.revision, new, drop=bad)
    files = tuple(results[f.name] for f in spec.files)
    return _summarise(spec, snap, files, cache_dir)


def _unpinned(spec: ModelSpec) -> ModelStatus:
    reason = spec.unpinned_reason or "not pinned"
    files = tuple(FileStatus(f.name, "unpinned", None, f.size, None, f.sha256, "no", "no sha256 pinned"
                             if not f.pinned else "") for f in spec.files)
    return ModelStatus(spec.name, spec.family, spec.repo, spec.revision, "unpinned", None, files, False,
                       spec.total_size, 0, reason=reason)


def _stat_check(fspec: FileSpec, snap: Path, repo_real: str) -> FileStatus | tuple[Path, os.stat_result, str | None]:
    """Cheap checks first: present, stays inside the cache, right size."""
    path = snap / fspec.name
    try:
        st = os.stat(path)
    except OSError:
        return FileStatus(fspec.name, "missing", None, fspec.size, None, fspec.sha256, "no")
    if not inside(repo_real, path, base_is_real=True):  # the file, or a folder above it, is a link out
        return FileStatus(fspec.name, "mismatch", None, fspec.size, st.st_size, fspec.sha256, "no",
                          "symlink points outside the cache")
    blob = os.path.basename(os.readlink(path)) if os.path.islink(path) else None
    if fspec.size is not None and st.st_size != fspec.size:
        detail = f"{st.st_size} bytes, expected {fspec.size}"
        return FileStatus(fspec.name, "size_mismatch", None, fspec.size, st.st_size, fspec.sha256, "size", detail)
    return path, st, blob


def _blob_agrees(blob: str | None, sha256: str) -> bool:
    """A blob named by a sha256 must be that sha256; other names (git ids, a mirror's tokens) are checked by hashing."""
    return blob is None or not is_sha256(blob) or blob == sha256


def _ok(fspec: FileSpec, path: Path, st: os.stat_result, how: str) -> FileStatus:
    return FileStatus(fspec.name, "ok", path, fspec.size, st.st_size, fspec.sha256, how)


def _hash_and_judge(jobs: list[tuple[FileSpec, Path, os.stat_result, str | None]],
                    results: dict[str, FileStatus]) -> dict[str, Stamp]:
    from .hashing import digest_many  # hashlib only when something must be hashed

    digests = digest_many([(path, is_git_sha1(blob)) for _, path, _, blob in jobs])
    stamps: dict[str, Stamp] = {}
    for (fspec, path, _st, blob), digest in zip(jobs, digests):
        if isinstance(digest, OSError):
            results[fspec.name] = FileStatus(fspec.name, "missing", None, fspec.size, None, fspec.sha256, "no",
                                             f"unreadable: {digest.strerror}")
            continue
        problem = _compare(fspec, blob, digest)
        if problem:
            results[fspec.name] = FileStatus(fspec.name, "mismatch", None, fspec.size, digest.size, fspec.sha256,
                                             "hashed", problem)
            continue
        results[fspec.name] = FileStatus(fspec.name, "ok", path, fspec.size, digest.size, fspec.sha256, "hashed")
        if digest.stat is not None and _unchanged(path, digest.stat):  # a file rewritten while we read it gets no record
            stamps[fspec.name] = Stamp.of(digest.stat, digest.sha256)
    return stamps


def _unchanged(path: Path, hashed: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_mtime_ns, now.st_ctime_ns, now.st_size, now.st_ino, now.st_dev) == (
        hashed.st_mtime_ns, hashed.st_ctime_ns, hashed.st_size, hashed.st_ino, hashed.st_dev)


def _compare(fspec: FileSpec, blob: str | None, digest: Digest) -> str:
    from ..core.digest import mismatch  # only after hashing: a warm recorded status never gets here

    bad = mismatch(digest.sha256, digest.git_sha1, pin=fspec.sha256, name=blob)
    if bad is None:
        return ""
    if bad.against == "pin":
        return f"sha256 {bad.got[:12]}… does not match the pinned {bad.want[:12]}…"
    word = "sha256" if bad.digest == "sha256" else "git sha1"
    return f"{word} {(bad.got or '?')[:12]}… does not match its blob name {bad.want[:12]}…"


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
    present = sum(f.actual_size or 0 for f in files if f.state == "ok")
    resumable = 0 if status == "available" else resumable_bytes(cache_dir, spec)
    return ModelStatus(spec.name, spec.family, spec.repo, spec.revision, status, snap if status == "available" else None,
                       files, spec.pinned, spec.total_size, present, resumable, cache_dir=cache_dir)


def resumable_bytes(cache_dir: Path, spec: ModelSpec) -> int:
    """Bytes our interrupted downloads of this model's files already hold (what a resume keeps)."""
    from .parts import held_bytes

    return sum(held_bytes(cache_dir, spec.repo, f.sha256, f.size) for f in spec.files if f.sha256)


def not_available_error(st: ModelStatus) -> LyricsubError:
    """One line for a model that cannot be handed out: which model, what is wrong, what to run."""
    if st.status == "unpinned":
        return UnpinnedModelError(f"not fully pinned: {st.reason}; it is never fetched or loaded as it is", model=st.name,
                                  hint=Hint.lock(st.name))
    bad = st.problems
    if st.status == "corrupt":
        names = ", ".join(f"{f.name} ({f.detail})" for f in bad if f.state == "mismatch")
        return IntegrityError(f"corrupt in the cache: {names}", model=st.name, status=st.status, hint=Hint.repair(st.name))
    if st.status == "partial":
        names = ", ".join(f"{f.name} ({f.detail or f.state})" for f in bad)
        return ModelNotAvailableError(f"partially downloaded, not usable: {names}", model=st.name, status=st.status,
                                      hint=Hint.warm(st.name))
    return ModelNotAvailableError("not in the cache", model=st.name, status=st.status, hint=Hint.warm(st.name))
