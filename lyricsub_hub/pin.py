"""`lock`: fill or move an index's pins from the Hub's listing, keeping the file's comments and order.

This is the only way pins change: nothing moves unless a person runs it. Every
value from the Hub is checked before it is written; small files are hashed from
a bounded in-memory download, never through the cache.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from .core import env
from .errors import Fix, Hint, HubError, LyricsubError, UsageError
from .families import FAMILIES
from .index import FileSpec, ModelSpec, load_index
from .remote.failures import Context, translate


@dataclass(frozen=True)
class FileChange:
    """How one file differs between the old pin and the new one."""

    name: str
    change: str  # added | removed | changed | same
    old_sha256: str | None = None
    new_sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class PinResult:
    """A model's pin before and after `lock`, file by file."""

    model: str
    old_revision: str | None
    new_revision: str
    files: tuple[FileChange, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.old_revision != self.new_revision or any(f.change != "same" for f in self.files)


def pin(index_path: Path, names: list[str], *, update: bool, endpoint: str | None, token: str | None) -> list[PinResult]:
    """Resolve pins for the named models and what they require (all when none) and write them back into index_path."""
    index = load_index(index_path)
    specs = index.select(names, default=None)  # what a named model requires is locked with it
    results = []
    for spec in specs:
        if spec.pinned and not update:
            results.append(PinResult(spec.name, spec.revision, spec.revision or "", tuple(
                FileChange(f.name, "same", f.sha256, f.sha256, f.size) for f in spec.files)))
            continue
        url = env.endpoint(endpoint)
        problem = env.endpoint_problem(url)
        if problem:
            raise UsageError(f"bad endpoint {url}: {problem}", hint="HF_ENDPOINT=https://huggingface.co")
        results.append(_resolve(spec, update=update, endpoint=url, token=env.token(token)))
    changed = {r.model: (r.new_revision, [FileSpec(f.name, f.size, f.new_sha256) for f in r.files if f.change != "removed"])
               for r in results if r.changed}
    if changed:
        from .index.write import edit_pins

        edit_pins(index_path, changed)
    return results


def _resolve(spec: ModelSpec, *, update: bool, endpoint: str, token: str | None) -> PinResult:
    from .remote.http import Client
    from .remote.hubapi import list_repo, small_file_sha256

    revision = spec.branch if (update or not spec.revision) else spec.revision
    try:
        listing = list_repo(endpoint, token, spec.repo, revision, model=spec.name)
        wanted = [f.name for f in spec.files] or _pick(spec.family, list(listing.files))
        hostile = [n for n in wanted if n not in listing.files and n in listing.unsafe_names]
        if listing.unsafe_names and (hostile or (not spec.files and _picks_any(spec.family, listing.unsafe_names))):
            raise HubError(f"the Hub's file list for {spec.repo} names paths outside the repo: "
                           f"{', '.join(listing.unsafe_names[:3])}; refusing to pin them", model=spec.name)
        if not wanted:
            raise UsageError(f"{spec.repo} at {revision} has no files a {spec.family} model needs", model=spec.name)
        old = {f.name: f for f in spec.files}
        client = Client(endpoint, token, connections=2)
        changes = []
        for name in wanted:
            remote = listing.files.get(name)
            if remote is None:
                changes.append(FileChange(name, "removed", old[name].sha256 if name in old else None))
                continue
            sha = remote.sha256 or small_file_sha256(client, listing, name, model=spec.name)
            before = old.get(name)
            kind = "added" if before is None else ("same" if before.sha256 == sha and before.size == remote.size else "changed")
            changes.append(FileChange(name, kind, before.sha256 if before else None, sha, remote.size))
    except LyricsubError as exc:
        raise _again_with_lock(exc, spec.name) from None
    except Exception as exc:
        raise _again_with_lock(translate(exc, Context(spec.name, spec.repo, revision, None, endpoint)), spec.name) from None
    return PinResult(spec.name, spec.revision, listing.commit, tuple(changes))


def _again_with_lock(exc: LyricsubError, name: str) -> LyricsubError:
    """The network table's fix is "warm it again"; for a model lock is filling, warm would refuse (no pins yet)."""
    if exc.fix is not None and exc.fix.command == "warm":
        return exc.with_hint(Fix("lock", *exc.fix.args, env=exc.fix.env, note=exc.fix.note))
    return exc.with_hint(exc.hint.replace(Hint.warm(name), Hint.lock(name))) if exc.hint else exc  # composed in words


def _pick(family: str, names: list[str]) -> list[str]:
    patterns = FAMILIES[family].patterns
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def _picks_any(family: str, names: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(n, p) for n in names for p in FAMILIES[family].patterns)
