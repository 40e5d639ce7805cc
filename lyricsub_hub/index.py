"""The model index: which Hub repo, commit and files make up each variant.

Parsed from YAML *nodes* rather than plain data so that every error can name
the file, the line and the field a person has to fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

import yaml

from .errors import IndexFileError, UsageError

FAMILIES = ("demucs", "whisper", "align", "diarize")
INDEX_ENV = "LYRICSUB_MODEL_INDEX"
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+")
MAX_DEPTH = 200  # libyaml's C parser recurses per level of flow nesting; a hostile file must not crash it
_MODEL_KEYS = {"family", "repo", "revision", "branch", "files", "license", "gated", "description", "requires", "options"}
_FILE_KEYS = {"name", "size", "sha256"}

try:  # the C loader keeps index loading well under a millisecond per model
    _Loader: type = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class FileSpec:
    """One file of a model; size and sha256 are absent where nobody has pinned them."""

    name: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One variant, e.g. ``demucs:htdemucs``."""

    name: str
    family: str
    repo: str
    revision: str | None
    files: tuple[FileSpec, ...]
    branch: str = "main"
    license: str | None = None
    gated: bool = False
    description: str | None = None
    requires: tuple[str, ...] = ()
    options: dict = field(default_factory=dict, hash=False, compare=False)
    line: int | None = None

    @property
    def variant(self) -> str:
        return self.name.split(":", 1)[1]

    @property
    def pinned(self) -> bool:
        """A commit, a file list, and a sha256 for every file."""
        return bool(self.revision and self.files and all(f.sha256 for f in self.files))

    @property
    def downloadable(self) -> bool:
        """A commit and a file list: enough to fetch exactly the right bytes."""
        return bool(self.revision and self.files)

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if not sizes or None in sizes else sum(s for s in sizes if s is not None)


@dataclass(frozen=True)
class ModelIndex:
    path: Path
    models: dict[str, ModelSpec]
    sets: dict[str, tuple[str, ...]]

    def resolve(self, name: str) -> ModelSpec:
        """Accept ``family:variant`` or a bare variant that names one model alone."""
        if name in self.models:
            return self.models[name]
        matches = [m for m in self.models.values() if m.variant == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(sorted(m.name for m in matches))
            raise UsageError(f"'{name}' is ambiguous: it names {options}", model=name, hint="lyricsub-hub list")
        raise UsageError(f"unknown model '{name}' in {self.path}", model=name, hint="lyricsub-hub list")

    def expand(self, names: Iterable[str] = (), set_name: str | None = None) -> list[ModelSpec]:
        """Models named and models of a set, in order, each once."""
        wanted = list(names)
        if set_name is not None:
            if set_name not in self.sets:
                known = ", ".join(sorted(self.sets)) or "none"
                raise UsageError(f"unknown set '{set_name}' (sets: {known})", hint="lyricsub-hub list")
            wanted += self.sets[set_name]
        specs: dict[str, ModelSpec] = {}
        for name in wanted:
            spec = self.resolve(name)
            specs.setdefault(spec.name, spec)
        return list(specs.values())


def safe_file_name(fname: str) -> bool:
    """A relative POSIX path that cannot leave the snapshot folder."""
    return not (
        not fname or fname.startswith(("/", "\\")) or "\\" in fname or ":" in fname or "\x00" in fname
        or any(part in ("..", ".", "") for part in fname.split("/")) or PurePosixPath(fname).is_absolute()
    )


def default_index_path() -> Path:
    """$LYRICSUB_MODEL_INDEX, else the index shipped in the wheel, else the repo checkout's."""
    env = os.environ.get(INDEX_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).with_name("model_index.yaml")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "model_index.yaml"


def load_index(path: str | os.PathLike[str] | None = None) -> ModelIndex:
    path = Path(path) if path is not None else default_index_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IndexFileError(f"cannot read the index: {exc.strerror or exc}", path=str(path)) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise IndexFileError(f"not UTF-8 text (byte {exc.start})", path=str(path), line=line) from None
    return parse_index(text, str(path))


def parse_index(text: str, path: str = "<index>") -> ModelIndex:
    return _Parser(path).parse(text)


class _Parser:
    """Walks the YAML node tree; every failure names path, line and field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str, field_name: str | None = None) -> IndexFileError:
        line = node.start_mark.line + 1 if node is not None else None
        return IndexFileError(message, path=self.path, line=line, field=field_name)

    def parse(self, text: str) -> ModelIndex:
        self.check_depth(text)
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise IndexFileError(f"YAML error: {problem}", path=self.path, line=mark.line + 1 if mark else None) from None
        if root is None:
            raise self.fail(None, "the index is empty")
        top = self.mapping(root, "index")
        allowed = {"version", "models", "sets"}
        for key, (knode, _) in top.items():
            if key not in allowed and not key.startswith("x-"):
                raise self.fail(knode, f"unknown top-level key '{key}' (expected version, models, sets)", key)
        if "version" not in top:
            raise self.fail(root, "missing 'version: 1'", "version")
        vnode = top["version"][1]
        if self.scalar(vnode, "version") != "1":
            raise self.fail(vnode, f"unsupported version {self.scalar(vnode, 'version')!r} (this tool reads 1)", "version")
        if "models" not in top:
            raise self.fail(root, "missing 'models'", "models")
        models = {}
        for name, (knode, vnode) in self.mapping(top["models"][1], "models").items():
            models[name] = self.model(name, knode, vnode)
        sets: dict[str, tuple[str, ...]] = {}
        if "sets" in top:
            for sname, (knode, vnode) in self.mapping(top["sets"][1], "sets").items():
                sets[sname] = self.set_(sname, vnode, models)
        return ModelIndex(Path(self.path), models, sets)

    def check_depth(self, text: str) -> None:
        """Refuse absurd bracket nesting before libyaml sees it (it recurses in C and can crash)."""
        depth = 0
        for line_no, line in enumerate(text.splitlines(), 1):
            for char in line:
                if char in "[{":
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise IndexFileError(f"nesting deeper than {MAX_DEPTH} levels", path=self.path, line=line_no)
                elif char in "]}":
                    depth = max(0, depth - 1)

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"'{what}' must be a mapping", what)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = self.scalar(knode, what)
            if key in out:
                raise self.fail(knode, f"duplicate name '{key}' in {what}", key)
            out[key] = (knode, vnode)
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"'{what}' must be a single value", what)
        return str(node.value)

    def model(self, name: str, knode: yaml.Node, node: yaml.Node) -> ModelSpec:
        family, sep, variant = name.partition(":")
        if not sep or not variant or family not in FAMILIES:
            raise self.fail(knode, f"model name '{name}' must be family:variant with family one of {', '.join(FAMILIES)}", name)
        fields = self.mapping(node, name)
        for key, (k, _) in fields.items():
            if key not in _MODEL_KEYS and not key.startswith("x-"):
                raise self.fail(k, f"unknown key '{key}' in {name} (known: {', '.join(sorted(_MODEL_KEYS))})", f"{name}.{key}")
        get = lambda key: self.scalar(fields[key][1], f"{name}.{key}") if key in fields else None  # noqa: E731
        declared = get("family")
        if declared is not None and declared != family:
            raise self.fail(fields["family"][1], f"family '{declared}' does not match the name prefix '{family}'", f"{name}.family")
        if declared is None and "family" not in fields:
            pass  # the name prefix says it
        repo = get("repo")
        if not repo or not _REPO.fullmatch(repo):
            raise self.fail(fields["repo"][1] if "repo" in fields else knode, f"repo '{repo}' must be org/name", f"{name}.repo")
        revision = get("revision")
        if revision is not None and not _HEX40.fullmatch(revision):
            raise self.fail(fields["revision"][1], f"revision '{revision}' is not a 40-hex commit", f"{name}.revision")
        files = self.files(name, fields["files"][1]) if "files" in fields else ()
        gated = (get("gated") or "false").lower()
        if gated not in ("true", "false"):
            raise self.fail(fields["gated"][1], "gated must be true or false", f"{name}.gated")
        requires = tuple(self.scalar(n, f"{name}.requires") for n in self.sequence(fields["requires"][1], f"{name}.requires")) if "requires" in fields else ()
        options = self.options(name, fields["options"][1]) if "options" in fields else {}
        return ModelSpec(
            name=name, family=family, repo=repo, revision=revision, files=files,
            branch=get("branch") or "main", license=get("license"), gated=gated == "true",
            description=get("description"), requires=requires, options=options or {},
            line=knode.start_mark.line + 1,
        )

    def options(self, model: str, node: yaml.Node) -> dict:
        """Free-form loader options, built with the safe constructor; anything it refuses is an index error."""
        try:
            value = _Loader(yaml.serialize(node)).get_single_data()
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            raise self.fail(node, f"options of {model} cannot be read: {str(exc).splitlines()[0][:120]}", f"{model}.options") from None
        if not isinstance(value, dict):
            raise self.fail(node, f"options of {model} must be a mapping", f"{model}.options")
        return value

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"'{what}' must be a list", what)
        return list(node.value)

    def files(self, model: str, node: yaml.Node) -> tuple[FileSpec, ...]:
        seen: set[str] = set()
        out = []
        for item in self.sequence(node, f"{model}.files"):
            fields = self.mapping(item, f"{model}.files")
            for key, (k, _) in fields.items():
                if key not in _FILE_KEYS:
                    raise self.fail(k, f"unknown file key '{key}' (known: name, size, sha256)", f"{model}.files.{key}")
            if "name" not in fields:
                raise self.fail(item, "a file needs a name", f"{model}.files.name")
            nnode = fields["name"][1]
            fname = self.scalar(nnode, f"{model}.files.name")
            self.check_file_name(nnode, model, fname)
            if fname in seen:
                raise self.fail(nnode, f"duplicate file '{fname}'", f"{model}.files.name")
            seen.add(fname)
            size = None
            if "size" in fields:
                raw = self.scalar(fields["size"][1], f"{model}.files.size")
                if not _DIGITS.fullmatch(raw):
                    raise self.fail(fields["size"][1], f"size '{raw}' of {fname} must be a whole number of bytes", f"{model}.files.size")
                size = int(raw)
            sha = None
            if "sha256" in fields:
                sha = self.scalar(fields["sha256"][1], f"{model}.files.sha256").lower()
                if not _HEX64.fullmatch(sha):
                    raise self.fail(fields["sha256"][1], f"sha256 of {fname} is not 64 hex characters", f"{model}.files.sha256")
            out.append(FileSpec(fname, size, sha))
        return tuple(out)

    def check_file_name(self, node: yaml.Node, model: str, fname: str) -> None:
        if not safe_file_name(fname):
            raise self.fail(node, f"file name '{fname}' must be a relative path inside the repo (no '..', no absolute path)", f"{model}.files.name")

    def set_(self, sname: str, node: yaml.Node, models: dict[str, ModelSpec]) -> tuple[str, ...]:
        names = []
        for item in self.sequence(node, f"sets.{sname}"):
            ref = self.scalar(item, f"sets.{sname}")
            if ref not in models:
                bare = [m for m in models if m.split(":", 1)[1] == ref]
                if len(bare) != 1:
                    raise self.fail(item, f"set '{sname}' names unknown model '{ref}'", f"sets.{sname}")
                ref = bare[0]
            names.append(ref)
        return tuple(names)
