"""Garbage collection for the index's repos: what a moved pin leaves behind, downloads no process runs,
blobs no snapshot uses and, with a size budget, the least recently used models. Plan, then act.

survey() reads the cache (huggingface_hub's own scan, the blobs folders, download locks probed without
waiting); decide() is pure and returns a GcPlan: what goes, why, and how many bytes; execute() removes
it and returns a GcReport. Repos outside the index are never touched, and a blob that a pinned file of
an index model (one that stays) is named by is never removed.

The rules, in the order the plan applies them:
- revisions: a revision of an index repo that no index model pins goes, unless a ref names it (another
  tool sharing the cache may use it: `hf cache prune` keeps those too), its links leave the repo folder
  (check_links), the repo has a model the index does not pin yet, or a download into the repo is running
  (any of its blob locks is held: it may be linking a blob an old revision shares). Deletion is
  huggingface_hub's DeleteCacheStrategy, never of a whole repo folder: downloads keep their part files there.
- part files: ours (.lyricsub-part, .lyricsub-ranges) and huggingface_hub's (.incomplete), removed only
  while gc holds that download's own blob lock, taken without waiting; a held lock means a running
  download, whose files stay.
- blobs no snapshot uses, unless an index model pins them, they changed within GRACE seconds (a
  download publishes a blob a moment before it links it), or a download into the repo is running.
- max_size: then whole models (their pinned revision), least recently used first, until the cache fits;
  never a model of the keep set, nor one whose repo a download is running into. A model's last use is the newest access time (atime) of the blobs of
  its files at its pinned revision, as huggingface_hub's scan reports it (loading reads them; with the
  usual relatime mount the kernel moves atime at most once a day). Ties: larger first, then by name.

The cache's size, for the budget, is what the index's repos hold on disk (st_blocks, not the size a sparse
file claims): the blobs their snapshots use, plus their part files and unused blobs. Other repos are never
read, counted or touched. A repo whose folder, or its snapshots, blobs or refs folder, is not a real folder
inside the cache (a link another user planted) is refused whole: nothing in it is read or removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .cache.layout import IMPORT_PREFIX, blobs_dir, check_repo, repo_folder, repo_problem, snapshot_dir
from .cache.locks import downloading, take_lock
from .cache.parts import Part, blob_files, group_parts, is_part, remove_part
from .cache.removal import check_links, scan_repos
from .cache.store import Cache
from .core.checks import acceptable_etag, is_commit
from .core.fs import on_disk, regular_file, unlink_inside
from .core.text import one_line
from .errors import Fix, Hint, LyricsubError, UnsafeCacheError
from .index import ModelSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Kind = Literal["revision", "model", "part", "blob"]

GRACE = 600.0  # seconds a blob no snapshot uses is left alone after it last changed
IMPORT_GRACE = 3600.0  # seconds a bundle import's temporary file is left alone (it may be reading a slow pipe)


# -- what is on disk ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Revision:
    """A cached revision of a repo, with what gc needs to judge it."""

    repo: str
    commit: str
    refs: tuple[str, ...]
    size: int  # huggingface_hub's size of the revision (blobs it uses), not what deleting it frees
    last_used: float  # newest atime of the blobs of the index's files at this revision
    unsafe: str = ""  # why deleting it would follow a link out of the repo ("" when none does)


@dataclass(frozen=True)
class Loose:
    """A regular file in blobs/ that no snapshot entry uses."""

    repo: str
    name: str
    size: int
    changed: float  # ctime


@dataclass(frozen=True)
class Survey:
    """What the cache holds, read once before gc decides anything."""

    cache_dir: Path
    size: int
    revisions: tuple[Revision, ...]
    parts: tuple[Part, ...]
    loose: tuple[Loose, ...]
    unscanned: tuple[tuple[str, str], ...]  # (repo, why huggingface_hub could not scan it)
    busy: frozenset[str] = frozenset()  # repos a download is running into now (one of their blob locks is held)
    hf: Any = field(default=None, compare=False, repr=False)  # HFCacheInfo of the index's repos only
    refused: tuple[tuple[str, str], ...] = ()  # (repo, why): its folders are links or not folders; never read or touched


# -- the plan and the report ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Removal:
    """One thing gc plans to delete, and why."""

    kind: Kind
    repo: str
    target: str  # a commit (revision, model), or a name in blobs/ (blob, the stem of a part)
    reason: str
    size: int  # bytes it frees
    models: tuple[str, ...] = ()  # the index models a "model" removal takes out
    files: tuple[str, ...] = ()  # the part files of a "part" removal


@dataclass(frozen=True)
class Skip:
    """One thing gc leaves, and why."""

    kind: Kind
    repo: str
    target: str
    reason: str
    hint: str | None = None
    refused: bool = False  # a safety refusal (links leaving the cache), not an ordinary "in use"


@dataclass(frozen=True)
class GcPlan:
    """Everything gc would delete and keep, decided before anything is touched (what --dry-run prints)."""

    cache_dir: Path
    removals: tuple[Removal, ...]
    skipped: tuple[Skip, ...]
    size_before: int
    max_size: int | None
    protected: frozenset[tuple[str, str]]  # (repo, blob name) a staying model pins: never deleted
    survey: Survey = field(compare=False, repr=False)

    @property
    def to_free(self) -> int:
        return sum(r.size for r in self.removals)

    @property
    def size_after(self) -> int:
        return max(0, self.size_before - self.to_free)

    @property
    def fits(self) -> bool | None:
        return None if self.max_size is None else self.size_after <= self.max_size


@dataclass(frozen=True)
class GcReport:
    """What gc deleted, what it skipped, and the bytes freed."""

    plan: GcPlan
    removed: tuple[Removal, ...]
    skipped: tuple[Skip, ...]  # the plan's, then what changed between planning and acting
    freed: int

    @property
    def size_after(self) -> int:
        return max(0, self.plan.size_before - self.freed)


# -- survey ---------------------------------------------------------------------------------------------
def survey(cache: Cache, specs: Iterable[ModelSpec]) -> Survey:
    """Read what the index's repos hold. Writes nothing (locks are probed, never taken)."""
    specs = list(specs)
    repos = sorted({s.repo for s in specs})
    info, unscanned, refused = _scan(cache.cache_dir, repos)
    names: dict[tuple[str, str], set[str]] = {}
    for s in specs:
        if s.revision:
            names.setdefault((s.repo, s.revision), set()).update(f.name for f in s.files)
    mine = {r.repo_id: r for r in (info.repos if info is not None else ()) if r.repo_type == "model" and r.repo_id in repos}
    revisions, used = [], {}
    for repo_id, repo in sorted(mine.items()):
        blobs = repo.repo_path / "blobs"
        used[repo_id] = {f.blob_path.name for rev in repo.revisions for f in rev.files if f.blob_path.parent == blobs}
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            revisions.append(Revision(repo_id, rev.commit_hash, tuple(sorted(rev.refs)), rev.size_on_disk,
                                      _last_used(rev, names.get((repo_id, rev.commit_hash), set())),
                                      _unsafe(cache.cache_dir, repo_id, rev.commit_hash)))
    parts: list[Part] = []
    loose: list[Loose] = []
    for repo_id in sorted(set(repos) - {r for r, _ in refused}):  # a refused repo's folders are never read
        p, lo = _blobs(cache.cache_dir, repo_id, used.get(repo_id))
        parts += p
        loose += lo
    size = (info.size_on_disk if info is not None else 0) + sum(p.size for p in parts) + sum(b.size for b in loose)
    narrowed = replace(info, repos=frozenset(mine.values())) if info is not None else None
    busy = frozenset(r for r in repos if downloading(cache.cache_dir, r))
    return Survey(cache.cache_dir, size, tuple(revisions), tuple(parts), tuple(loose), unscanned, busy, narrowed,
                  refused)


def _scan(cache_dir: Path, repos: list[str]) -> tuple[Any, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """huggingface_hub's scan of the index's repos alone: (info, unscanned, refused). Other repos are never read, so
    nothing in them (a sparse giant, a FIFO) can weigh on the budget or hang the scan."""
    if not cache_dir.is_dir() or not repos:
        return None, (), ()
    refused = []
    for repo in repos:
        why = repo_problem(cache_dir, repo)
        if why:
            refused.append((repo, one_line(why, 300)))
    try:
        try:
            info, skipped = scan_repos(cache_dir, repos)
        except FileNotFoundError:  # a file went away under the scan (another process at work): once more
            info, skipped = scan_repos(cache_dir, repos)
    except (OSError, ValueError) as exc:
        raise LyricsubError(f"cannot scan the cache {cache_dir}: {exc}", hint=f"ls -ld {cache_dir}") from None
    gone = {r for r, _ in refused}
    unscanned = tuple((repo, one_line(why, 200)) for repo, why in skipped if repo not in gone)
    return info, unscanned, tuple(refused)


def _last_used(rev: Any, names: set[str]) -> float:
    def rel(path: Path) -> str:
        try:
            return path.relative_to(rev.snapshot_path).as_posix()
        except ValueError:
            return ""

    times = [f.blob_last_accessed for f in rev.files if rel(f.file_path) in names]
    times = times or [f.blob_last_accessed for f in rev.files]
    return max(times, default=rev.last_modified)


def _unsafe(cache_dir: Path, repo: str, commit: str) -> str:
    try:
        check_links(cache_dir, repo, commit)
    except UnsafeCacheError as exc:
        return exc.message
    return ""


def _blobs(cache_dir: Path, repo: str, used: set[str] | None) -> tuple[list[Part], list[Loose]]:
    """Part groups and (when `used` is known) loose blobs of one repo; a blobs folder that leaves the repo is not read."""
    files = blob_files(cache_dir, repo)
    loose = []
    for name, st in files:
        if is_part(name):
            continue
        if used is not None and name not in used and "." not in name and acceptable_etag(name):
            loose.append(Loose(repo, name, on_disk(st), st.st_ctime))  # blocks, not the size a sparse file claims
        elif name.startswith(IMPORT_PREFIX) and name.endswith(".tmp"):
            loose.append(Loose(repo, name, on_disk(st), st.st_mtime))  # a bundle import's file, killed or running
    return group_parts(cache_dir, repo, files), sorted(loose, key=lambda b: b.name)


# -- decide (pure) --------------------------------------------------------------------------------------
def decide(found: Survey, specs: Iterable[ModelSpec], *, max_size: int | None = None, keep: Iterable[str] = (),
           grace: float = GRACE, now: float | None = None) -> GcPlan:
    """What to remove and why, from a survey alone."""
    specs = list(specs)
    now = time.time() if now is None else now
    pinned = {(s.repo, s.revision) for s in specs if s.revision}
    unpinned = {s.repo: s.name for s in specs if not s.revision}
    by_repo = {s.repo: s for s in specs}
    removals: list[Removal] = []
    skipped: list[Skip] = []
    stale: list[Revision] = []
    for rev in found.revisions:
        if (rev.repo, rev.commit) in pinned:
            continue
        spec = by_repo[rev.repo]
        if rev.repo in unpinned:
            name = unpinned[rev.repo]
            skipped.append(Skip("revision", rev.repo, rev.commit, f"the index pins no commit for {name}, so which "
                                "revisions are stale is not known", Hint.lock(name)))
        elif rev.refs:
            ref = rev.refs[0]
            hint = Hint.warm(spec.name) if ref == spec.branch else f"hf cache rm {rev.commit}"
            skipped.append(Skip("revision", rev.repo, rev.commit, f"refs/{ref} points at it (a tool that shares this "
                                "cache may use it)", hint))
        elif rev.repo in found.busy:
            skipped.append(Skip("revision", rev.repo, rev.commit, "a download into this repo is running now; its "
                                "old revisions stay until it ends", Fix("gc", after=" (once the download is done)")))
        elif rev.unsafe:
            skipped.append(Skip("revision", rev.repo, rev.commit, rev.unsafe,
                                f"ls -l {snapshot_dir(found.cache_dir, rev.repo, rev.commit)}", refused=True))
        else:
            stale.append(rev)
    for repo, why in found.unscanned:
        skipped.append(Skip("revision", repo, "*", f"huggingface_hub cannot scan this repo ({why}); its revisions "
                            "stay", Fix("verify", by_repo[repo].name)))
    for repo, why in found.refused:
        skipped.append(Skip("revision", repo, "*", f"nothing in it is read or removed: {why}",
                            f"ls -ld {repo_folder(found.cache_dir, repo)} (and remove what is not yours)", refused=True))
    protected = _protected(specs)
    removals += _revision_removals(found, stale, protected)
    for part in found.parts:
        if part.held or part.problem:
            skipped.append(Skip("part", part.repo, part.stem, part.problem or "a running download holds its lock"))
        else:
            removals.append(Removal("part", part.repo, part.stem, "interrupted download; no process holds its lock",
                                    part.size, files=part.names))
    for blob in found.loose:
        if (blob.repo, blob.name) in protected or blob.repo in unpinned or blob.repo in found.busy:
            continue  # a pinned file's bytes (the next warm links them), or a repo a download is busy in
        age = now - blob.changed
        if blob.name.startswith(IMPORT_PREFIX):  # an import may read a slow pipe for a long time: an hour's grace
            if age >= max(grace, IMPORT_GRACE):
                removals.append(Removal("blob", blob.repo, blob.name, "a killed import's temporary file", blob.size))
            continue
        if age < grace:
            skipped.append(Skip("blob", blob.repo, blob.name, f"changed {max(0, int(age))}s ago: a download may be "
                                "about to link it"))
        else:
            removals.append(Removal("blob", blob.repo, blob.name, "no snapshot uses it", blob.size))
    evicted: list[Removal] = []
    if max_size is not None:
        size = found.size - sum(r.size for r in removals)
        evicted = _evictions(found, specs, stale, set(keep), size, max_size)
        removals += evicted
    gone = {n for r in evicted for n in r.models}
    return GcPlan(found.cache_dir, tuple(removals), tuple(skipped), found.size, max_size,
                  _protected([s for s in specs if s.name not in gone]), found)


def _protected(specs: Iterable[ModelSpec]) -> frozenset[tuple[str, str]]:
    return frozenset((s.repo, f.sha256) for s in specs if s.revision for f in s.files if f.sha256)


def _revision_removals(found: Survey, stale: list[Revision], protected: frozenset[tuple[str, str]]) -> list[Removal]:
    """One removal per stale revision; its bytes are what it adds to huggingface_hub's plan for the ones before it."""
    out, before = [], 0
    for i, rev in enumerate(stale):
        total = freed_by(found, [(r.repo, r.commit) for r in stale[: i + 1]], protected)
        out.append(Removal("revision", rev.repo, rev.commit, "no index model pins it", total - before))
        before = total
    return out


def _evictions(found: Survey, specs: list[ModelSpec], stale: list[Revision], keep: set[str], size: int,
               max_size: int) -> list[Removal]:
    """Whole models, least recently used first, until size fits max_size; never the keep set."""
    revs = {(r.repo, r.commit): r for r in found.revisions}
    units: dict[tuple[str, str], list[str]] = {}
    for s in specs:
        if s.revision and (s.repo, s.revision) in revs:
            units.setdefault((s.repo, s.revision), []).append(s.name)
    candidates = [u for u, names in units.items()
                  if not keep.intersection(names) and not revs[u].unsafe and u[0] not in found.busy]
    candidates.sort(key=lambda u: (revs[u].last_used, -revs[u].size, u))
    base = [(r.repo, r.commit) for r in stale]
    done = freed_by(found, base, _protected(specs))
    chosen: list[tuple[str, str]] = []
    out = []
    for unit in candidates:
        if size <= max_size:
            break
        chosen.append(unit)
        gone = {n for u in chosen for n in units[u]}
        total = freed_by(found, base + chosen, _protected([s for s in specs if s.name not in gone]))
        gain, done = total - done, total
        size -= gain
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(revs[unit].last_used))
        out.append(Removal("model", unit[0], unit[1], f"least recently used (last used {when})", gain,
                           models=tuple(units[unit])))
    return out


def freed_by(found: Survey, commits: list[tuple[str, str]], protected: frozenset[tuple[str, str]]) -> int:
    if not commits or found.hf is None:
        return 0
    return strategy_for(found.hf, commits, protected)[1]


def strategy_for(info: Any, commits: Iterable[tuple[str, str]], protected: frozenset[tuple[str, str]]) -> tuple[Any, int]:
    """huggingface_hub's DeleteCacheStrategy for these (repo, commit), and the bytes it frees.

    Two changes to what huggingface_hub plans: a repo losing every revision keeps its folder (running
    downloads keep their part files and locks in it; its snapshots, refs and blobs still go), and a blob
    that a staying model pins is kept.
    """
    wanted = {(repo, commit) for repo, commit in commits}
    repos = [r for r in info.repos if any((r.repo_id, rev.commit_hash) in wanted for rev in r.revisions)]
    narrowed = replace(info, repos=frozenset(repos))  # no other repo can be hit, whatever its commit ids
    strategy = narrowed.delete_revisions(*sorted({c for _, c in wanted}))
    sizes = {f.blob_path: f.size_on_disk for r in repos for rev in r.revisions for f in rev.files}
    if strategy.repos:
        snaps, refs, blobs = set(strategy.snapshots), set(strategy.refs), set(strategy.blobs)
        for repo in repos:
            if repo.repo_path in strategy.repos:
                for rev in repo.revisions:
                    snaps.add(rev.snapshot_path)
                    refs.update(repo.repo_path / "refs" / ref for ref in rev.refs)
                    blobs.update(f.blob_path for f in rev.files if rev.snapshot_path not in f.blob_path.parents)
        strategy = replace(strategy, repos=frozenset(), snapshots=frozenset(snaps), refs=frozenset(refs),
                           blobs=frozenset(blobs))
    ids = {r.repo_path: r.repo_id for r in repos}
    kept = {b for b in strategy.blobs if (ids.get(b.parent.parent), b.name) in protected}
    freed = strategy.expected_freed_size - sum(sizes.get(b, 0) for b in kept)
    if kept:
        strategy = replace(strategy, blobs=frozenset(strategy.blobs - kept), expected_freed_size=freed)
    return strategy, freed


def plan(cache: Cache, specs: Iterable[ModelSpec], *, max_size: int | None = None, keep: Iterable[str] = (),
         grace: float = GRACE) -> GcPlan:
    specs = list(specs)
    return decide(survey(cache, specs), specs, max_size=max_size, keep=keep, grace=grace)


# -- execute ----------------------------------------------------------------------------------------------
def execute(gc_plan: GcPlan, cache: Cache, *, grace: float = GRACE) -> GcReport:
    """Remove what the plan says, re-checking each thing at the moment it goes."""
    removed: list[Removal] = []
    skipped = list(gc_plan.skipped)
    freed = 0
    revisions = [r for r in gc_plan.removals if r.kind in ("revision", "model")]
    if revisions:
        done, lost, n = _remove_revisions(gc_plan, cache, revisions)
        removed += done
        skipped += lost
        freed += n
    for item in gc_plan.removals:
        if item.kind == "part":
            result: Removal | Skip = _remove_part(cache.cache_dir, item)
        elif item.kind == "blob":
            result = _remove_blob(cache.cache_dir, item, grace)
        else:
            continue
        if isinstance(result, Skip):
            skipped.append(result)
        else:
            removed.append(result)
            freed += result.size
    for repo in sorted({r.repo for r in removed}):
        _drop_empty(cache.cache_dir, repo)
    return GcReport(gc_plan, tuple(removed), tuple(skipped), freed)


def _drop_empty(cache_dir: Path, repo: str) -> None:
    """A repo folder left with nothing (huggingface_hub would have removed it whole) goes too: rmdir only, so
    anything a download put there meanwhile keeps it; a download starting in it now is seen by its lock."""
    folder = repo_folder(cache_dir, repo)
    subs = [folder / sub for sub in ("snapshots", "refs", "blobs")]
    try:
        if downloading(cache_dir, repo) or os.path.islink(folder) or any(os.listdir(p) for p in subs if p.is_dir()):
            return
        for path in subs:
            if path.is_dir() and not path.is_symlink():
                os.rmdir(path)
        os.rmdir(folder)
    except OSError:
        pass  # something is (or just came) there: it stays


def _remove_revisions(gc_plan: GcPlan, cache: Cache, items: list[Removal]) -> tuple[list[Removal], list[Skip], int]:
    safe, lost = [], []
    busy = {i.repo for i in items if downloading(cache.cache_dir, i.repo)}
    for item in items:
        if item.repo in busy:
            lost.append(Skip(item.kind, item.repo, item.target, "a download into this repo started meanwhile"))
            continue
        try:
            check_repo(cache.cache_dir, item.repo)  # again, at the moment it goes: a folder swapped for a link since
            check_links(cache.cache_dir, item.repo, item.target)
        except UnsafeCacheError as exc:
            lost.append(Skip(item.kind, item.repo, item.target, exc.message, exc.hint, refused=True))
            continue
        safe.append(item)
    if not safe or gc_plan.survey.hf is None:
        return [], lost, 0
    strategy, freed = strategy_for(gc_plan.survey.hf, [(i.repo, i.target) for i in safe], gc_plan.protected)
    strategy.execute()
    done = []
    for item in safe:
        if is_commit(item.target):
            cache.records.forget(cache.key, item.repo, item.target)
        if os.path.lexists(snapshot_dir(cache.cache_dir, item.repo, item.target)):
            lost.append(Skip(item.kind, item.repo, item.target, "huggingface_hub could not delete it (permissions?)"))
            freed -= item.size
        else:
            done.append(item)
    return done, lost, max(0, freed)


def _remove_part(cache_dir: Path, item: Removal) -> Removal | Skip:
    """Unlink a download's part files while holding its blob lock."""
    size, why = remove_part(cache_dir, item.repo, item.target, item.files)
    return Skip("part", item.repo, item.target, why) if why else replace(item, size=size)


def _remove_blob(cache_dir: Path, item: Removal, grace: float) -> Removal | Skip:
    """Unlink a blob no snapshot uses, under its lock, after looking again that nothing links it now."""
    lock, why = take_lock(cache_dir, item.repo, item.target)
    if lock is None:
        return Skip("blob", item.repo, item.target, why)
    folder, base = blobs_dir(cache_dir, item.repo), repo_folder(cache_dir, item.repo)
    try:
        st = regular_file(folder / item.target)
        if st is not None and time.time() - st.st_ctime < grace:
            why = "it changed since the plan: a download may be about to link it"
        elif st is not None and _linked(base, item.target):
            why = "a snapshot links it now"
        elif st is None or not unlink_inside(folder / item.target, base):
            why = "already gone"
    finally:
        lock.release()
    return Skip("blob", item.repo, item.target, why) if why or st is None else replace(item, size=on_disk(st))


def _linked(base: Path, blob: str) -> bool:
    """Whether any snapshot entry of the repo points at blobs/<blob> (links are read, never followed)."""
    for dirpath, _dirs, files in os.walk(base / "snapshots"):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                if os.path.islink(path) and os.path.basename(os.readlink(path)) == blob:
                    return True
            except OSError:
                continue
    return False
