"""The Cache: one small object (cache folder, state folder, records) that the layers above reach into,
and the few operations that put verified bytes into huggingface_hub's layout.

Blobs take their final name only after their sha256 matched the pin; snapshot
links and refs are made here, from validated values only, never by handing a
server's answer to huggingface_hub.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from ..core.checks import is_commit, is_git_sha1, is_sha256, safe_file_name, safe_ref_name
from ..core.env import resolve_cache_dir, resolve_site_caches, resolve_state_dir
from ..core.fs import UnsafePathError, atomic_write, file_mode, inside, real_dir, replace_link, unlink_inside
from ..index import ModelSpec
from .layout import blobs_dir, cache_key, link_target, repo_folder, snapshot_dir
from .records import RecordStore, Stamp
from .status import ModelStatus, model_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .status import Verify

@dataclass(frozen=True)
class Cache:
    """Where models live (huggingface_hub's cache) and where our records live (the state folder)."""

    cache_dir: Path = field(default_factory=resolve_cache_dir)
    state_dir: Path = field(default_factory=resolve_state_dir)
    site_dirs: tuple[Path, ...] = ()  # read-only caches under this one (LYRICSUB_SITE_CACHE): read, never written

    @classmethod
    def at(cls, cache_dir: str | os.PathLike[str] | None = None, state_dir: str | os.PathLike[str] | None = None,
           site_dirs: Iterable[str | os.PathLike[str]] | None = None) -> Cache:
        own = resolve_cache_dir(cache_dir)
        sites = resolve_site_caches(own) if site_dirs is None else tuple(Path(p).expanduser() for p in site_dirs)
        return cls(own, resolve_state_dir(state_dir), sites)

    @cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.state_dir)

    @property
    def key(self) -> str:
        return cache_key(self.cache_dir)

    def status(self, spec: ModelSpec, verify: Verify = "record") -> ModelStatus:
        """The user's own cache first; a model it does not hold whole is looked up in each site cache in turn.

        A site cache's files were not written by us, so they are hashed against the pins once, and the result is
        remembered in the user's own state folder (keyed by that cache), never in the site cache: the next look-up
        costs a stat per file. A site copy that is not whole is ignored, and warm fetches into the user's cache.
        """
        own = model_status(spec, self.cache_dir, self.records, verify)
        if own.available or own.status == "unpinned" or not self.site_dirs or spec.revision is None:
            return own
        for site in self.site_dirs:
            if not os.path.isdir(snapshot_dir(site, spec.repo, spec.revision)):
                continue
            found = model_status(spec, site, self.records, verify)
            if found.available:
                return replace(found, site=True)
        return own

    def repo_dir(self, repo: str) -> Path:
        return repo_folder(self.cache_dir, repo)

    # -- placing verified bytes -----------------------------------------------------------------
    def publish(self, fd: int, temp: Path, repo: str, blob: str, sha256: str) -> Stamp:
        """Give a fully written and hashed temp/part file its blob name.

        The record's stamp is the fstat of that same descriptor after the rename (which moves ctime).
        """
        if not (is_sha256(blob) or is_git_sha1(blob)) or not is_sha256(sha256):
            raise UnsafePathError(errno.EINVAL, f"refusing blob name {blob[:80]!r}")
        target = blobs_dir(self.cache_dir, repo) / blob
        os.fchmod(fd, file_mode(target.parent))  # the descriptor, never a path; group rw in a team's folder
        os.replace(temp, target)
        return Stamp.of(os.fstat(fd), sha256)

    def link(self, spec: ModelSpec, fname: str, blob: str) -> None:
        """snapshots/<commit>/<fname> -> ../../blobs/<blob>, as huggingface_hub writes it (a copy where links fail)."""
        assert spec.revision is not None
        assert is_commit(spec.revision)
        assert safe_file_name(fname)
        repo = self.repo_dir(spec.repo)
        entry = snapshot_dir(self.cache_dir, spec.repo, spec.revision) / fname
        real_dir(entry.parent, repo)
        try:
            replace_link(entry, link_target(fname, blob))
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            import shutil

            tmp = entry.with_name(f".{entry.name}.{os.getpid()}.copy")
            shutil.copyfile(blobs_dir(self.cache_dir, spec.repo) / blob, tmp, follow_symlinks=False)
            os.replace(tmp, entry)
        if not inside(repo, entry):
            unlink_inside(entry, repo)
            raise UnsafePathError(errno.EXDEV, f"{entry} leaves the cache")

    def point_ref(self, spec: ModelSpec) -> bool:
        """refs/<branch> = the pinned commit, so upstream loaders offline read the pinned snapshot. False when read-only."""
        if spec.revision is None or not safe_ref_name(spec.branch):
            return False
        if not os.path.isdir(snapshot_dir(self.cache_dir, spec.repo, spec.revision)):
            return False  # held by a site cache (or not at all): no ref to a revision this cache lacks
        repo = self.repo_dir(spec.repo)
        ref = repo / "refs" / spec.branch
        try:
            real_dir(ref.parent, repo)
            if ref.is_symlink() or (ref.exists() and not ref.is_file()):
                unlink_inside(ref, repo)
            try:
                if ref.read_text().strip() == spec.revision:
                    return True
            except OSError:
                pass
            atomic_write(ref, spec.revision.encode())
        except OSError:
            return False
        return True

    def remember(self, spec: ModelSpec, stamps: dict[str, Stamp]) -> None:
        assert spec.revision is not None
        self.records.update(self.key, spec.repo, spec.revision, stamps)

    def drop_bad(self, spec: ModelSpec, status: ModelStatus) -> None:
        """Unlink corrupt or wrong-size entries (and their blobs, when inside this repo) so pinned bytes can replace them."""
        self.drop(spec, [f.name for f in status.files if f.state in ("mismatch", "size_mismatch")])

    def drop(self, spec: ModelSpec, names: list[str]) -> None:
        """Unlink these snapshot entries and the blobs they point to inside this repo (never anything outside)."""
        if spec.revision is None:
            return
        repo = self.repo_dir(spec.repo)
        blobs_real = os.path.realpath(blobs_dir(self.cache_dir, spec.repo))
        snap = snapshot_dir(self.cache_dir, spec.repo, spec.revision)
        for name in names:
            entry = snap / name
            target = os.path.realpath(entry)
            if entry.is_symlink() and os.path.dirname(target) == blobs_real:
                unlink_inside(Path(target), repo)  # the bad bytes themselves, never a file outside this repo
            unlink_inside(entry, repo)

