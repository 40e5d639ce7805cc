"""`lock`: fill or move an index's pins from the Hub's metadata, keeping the file's comments and order.

This is the only way pins change: nothing moves unless a person runs it.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HubError, LyricsubError, UsageError
from .failures import translate
from .index import ModelSpec, load_index, safe_file_name

# Which files a family's library reads, when the index names none.
FAMILY_PATTERNS = {
    "whisper": ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"],
    "demucs": ["*.yaml", "*.safetensors", "*.th"],
    "align": ["config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.json", "special_tokens_map.json",
              "model.safetensors"],
    "diarize": ["config.yaml", "*/pytorch_model.bin", "*/*.npz", "pytorch_model.bin", "*.npz"],
}


@dataclass(frozen=True)
class FileChange:
    name: str
    change: str  # added | removed | changed | same
    old_sha256: str | None = None
    new_sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class LockResult:
    model: str
    old_revision: str | None
    new_revision: str
    files: tuple[FileChange, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.old_revision != self.new_revision or any(f.change != "same" for f in self.files)


def lock(index_path: Path, names: list[str], *, update: bool, endpoint: str | None, token: str | None,
         cache_dir: Path | None) -> list[LockResult]:
    """Resolve pins for the named models (all when none) and write them back into index_path."""
    index = load_index(index_path)
    specs = index.expand(names) if names else list(index.models.values())
    results = []
    for spec in specs:
        if spec.pinned and not update:
            results.append(LockResult(spec.name, spec.revision, spec.revision or "", tuple(
                FileChange(f.name, "same", f.sha256, f.sha256, f.size) for f in spec.files)))
            continue
        results.append(_resolve(spec, update=update, endpoint=endpoint, token=token, cache_dir=cache_dir))
    _write(index_path, results)
    return results


def _resolve(spec: ModelSpec, *, update: bool, endpoint: str | None, token: str | None, cache_dir: Path | None) -> LockResult:
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=endpoint, token=token)
    revision = spec.branch if (update or not spec.revision) else spec.revision
    try:
        info = api.model_info(spec.repo, revision=revision, files_metadata=True)
        siblings = {s.rfilename: s for s in (info.siblings or [])}
        wanted = [f.name for f in spec.files] or _pick(spec.family, list(siblings))
        hostile = [n for n in wanted if not safe_file_name(n)]
        if hostile:
            raise HubError(f"the Hub's file list for {spec.repo} names paths outside the repo: {', '.join(hostile[:3])}; refusing to pin them",
                           model=spec.name)
        if not wanted:
            raise UsageError(f"{spec.repo} at {revision} has no files a {spec.family} model needs", model=spec.name)
        old = {f.name: f for f in spec.files}
        changes = []
        for name in wanted:
            sib = siblings.get(name)
            if sib is None:
                changes.append(FileChange(name, "removed", old[name].sha256 if name in old else None))
                continue
            sha = sib.lfs.sha256 if sib.lfs else _small_sha256(hf_hub_download, spec.repo, name, info.sha, cache_dir, endpoint, token)
            before = old.get(name)
            kind = "added" if before is None else ("same" if before.sha256 == sha and before.size == sib.size else "changed")
            changes.append(FileChange(name, kind, before.sha256 if before else None, sha, sib.size))
    except LyricsubError:
        raise
    except Exception as exc:
        raise translate(exc, model=spec.name, repo=spec.repo, revision=revision, filename=None,
                        endpoint=(endpoint or "https://huggingface.co"), token=token) from None
    return LockResult(spec.name, spec.revision, info.sha or "", tuple(changes))


def _pick(family: str, names: list[str]) -> list[str]:
    patterns = FAMILY_PATTERNS.get(family, ["*"])
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))


def _small_sha256(download, repo: str, name: str, commit: str, cache_dir: Path | None, endpoint: str | None, token: str | None) -> str:
    """The Hub gives only a git sha1 for small files: fetch the file (into the cache) and hash it."""
    path = download(repo, name, revision=commit, cache_dir=cache_dir, endpoint=endpoint, token=token)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write(index_path: Path, results: list[LockResult]) -> None:
    """Round-trip edit: comments, key order and untouched entries stay as the person wrote them."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(index_path.read_text(encoding="utf-8"))
    for res in results:
        if not res.changed:
            continue
        entry = doc["models"][res.model]
        _set_after(entry, "revision", res.new_revision, after="repo")
        files = CommentedSeq()
        for f in res.files:
            if f.change == "removed":
                continue
            item = CommentedMap([("name", f.name), ("size", f.size), ("sha256", f.new_sha256)])
            item.fa.set_flow_style()
            files.append(item)
        _set_after(entry, "files", files, after="revision")
    tmp = index_path.with_name(f".{index_path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        yaml.dump(doc, fh)
    tmp.replace(index_path)


def _set_after(entry, key: str, value, *, after: str) -> None:
    if key in entry:
        entry[key] = value
        return
    keys = list(entry.keys())
    pos = keys.index(after) + 1 if after in keys else len(keys)
    entry.insert(pos, key, value)
