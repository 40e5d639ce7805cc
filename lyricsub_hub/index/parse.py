"""The model index: which Hub repo, commit and files make up each variant.

Parsed from YAML *nodes* rather than plain data so that every error can name
the file, the line and the field a person has to fix.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..core.checks import is_commit, is_repo_id, is_sha256, safe_file_name, safe_ref_name
from ..errors import IndexFileError
from ..families import FAMILIES
from .model import FileSpec, ModelIndex, ModelSpec

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a cold start 2 ms
    from typing import Any

_DIGITS = re.compile(r"[0-9]{1,16}")  # up to 10 PB: no float, no 4,300-digit int
_VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
MAX_DEPTH = 200  # libyaml's C parser recurses per level of flow nesting; a hostile file must not crash it
_MODEL_KEYS = {"family", "repo", "revision", "branch", "files", "license", "gated", "description", "requires", "options"}
_FILE_KEYS = {"name", "size", "sha256"}

try:  # the C loader keeps index loading well under a millisecond per model
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


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
                raise self.fail(knode, f"unknown top-level key '{_shown(key)}' (expected version, models, sets)", _shown(key))
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
        for spec in models.values():
            models[spec.name] = self.check_requires(spec, models, top["models"][1])
        sets: dict[str, tuple[str, ...]] = {}
        if "sets" in top:
            for sname, (knode, vnode) in self.mapping(top["sets"][1], "sets").items():
                if not _VARIANT.fullmatch(sname):
                    raise self.fail(knode, f"set name '{_shown(sname)}' must be letters, digits and ._+-", "sets")
                sets[sname] = self.set_(sname, vnode, models)
        return ModelIndex(Path(self.path), models, sets)

    def check_requires(self, spec: ModelSpec, models: dict[str, ModelSpec], node: yaml.Node) -> ModelSpec:
        """Each `requires` entry names one model of the index; stored as its full name."""
        full = []
        for ref in spec.requires:
            names = [ref] if ref in models else [m for m in models if m.split(":", 1)[1] == ref]
            if len(names) != 1 or names[0] == spec.name:
                line = spec.line - 1 if spec.line else None
                raise IndexFileError(f"{spec.name} requires '{_shown(ref)}', which names no other model of the index",
                                     path=self.path, line=line + 1 if line is not None else None, field=f"{spec.name}.requires")
            full.append(names[0])
        if tuple(full) == spec.requires:
            return spec
        from dataclasses import replace

        return replace(spec, requires=tuple(full))

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
                raise self.fail(knode, f"duplicate name '{_shown(key)}' in {what}", _shown(key))
            out[key] = (knode, vnode)
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"'{what}' must be a single value", what)
        return str(node.value)

    def model(self, name: str, knode: yaml.Node, node: yaml.Node) -> ModelSpec:
        family, sep, variant = name.partition(":")
        if not sep or family not in FAMILIES or not _VARIANT.fullmatch(variant):
            raise self.fail(knode, f"model name '{_shown(name)}' must be family:variant with family one of "
                            f"{', '.join(FAMILIES)} and a variant of letters, digits and ._+-", _shown(name))
        fields = self.mapping(node, name)
        for key, (k, _) in fields.items():
            if key not in _MODEL_KEYS and not key.startswith("x-"):
                raise self.fail(k, f"unknown key '{_shown(key)}' in {name} (known: {', '.join(sorted(_MODEL_KEYS))})",
                                f"{name}.{_shown(key)}")
        get = lambda key: self.scalar(fields[key][1], f"{name}.{key}") if key in fields else None  # noqa: E731
        declared = get("family")
        if declared is not None and declared != family:
            raise self.fail(fields["family"][1], f"family '{declared}' does not match the name prefix '{family}'", f"{name}.family")
        if declared is None and "family" not in fields:
            pass  # the name prefix says it
        repo = get("repo")
        if not repo or not is_repo_id(repo):
            raise self.fail(fields["repo"][1] if "repo" in fields else knode, f"repo '{_shown(repo)}' must be org/name",
                            f"{name}.repo")
        revision = get("revision")
        if revision is not None and not is_commit(revision):
            raise self.fail(fields["revision"][1], f"revision '{_shown(revision)}' is not a 40-hex commit", f"{name}.revision")
        branch = get("branch") or "main"
        if not safe_ref_name(branch):
            raise self.fail(fields["branch"][1], f"branch '{_shown(branch)}' is not a plain git branch name", f"{name}.branch")
        files = self.files(name, fields["files"][1]) if "files" in fields else ()
        gated = (get("gated") or "false").lower()
        if gated not in ("true", "false"):
            raise self.fail(fields["gated"][1], "gated must be true or false", f"{name}.gated")
        requires = tuple(self.scalar(n, f"{name}.requires") for n in self.sequence(fields["requires"][1], f"{name}.requires")) if "requires" in fields else ()
        options = self.options(name, family, fields["options"][1]) if "options" in fields else {}
        return ModelSpec(
            name=name, family=family, repo=repo, revision=revision, files=files,
            branch=branch, license=get("license"), gated=gated == "true",
            description=get("description"), requires=requires, options=options or {},
            line=knode.start_mark.line + 1,
        )

    def options(self, model: str, family: str, node: yaml.Node) -> dict[str, Any]:
        """Loader options, built with the safe constructor and allowed only as the family's rules say (no paths)."""
        try:
            value = _Loader(yaml.serialize(node)).get_single_data()
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            raise self.fail(node, f"options of {model} cannot be read: {str(exc).splitlines()[0][:120]}", f"{model}.options") from None
        if not isinstance(value, dict):
            raise self.fail(node, f"options of {model} must be a mapping", f"{model}.options")
        for key, item in value.items():
            why = FAMILIES[family].option_problem(str(key), item, from_index=True)
            if why:
                raise self.fail(node, _shown(why), f"{model}.options.{_shown(str(key))}")
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
                    raise self.fail(k, f"unknown file key '{_shown(key)}' (known: name, size, sha256)", f"{model}.files.{_shown(key)}")
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
                    raise self.fail(fields["size"][1], f"size '{_shown(raw[:40])}' of {fname} must be a whole number of bytes "
                                    "(at most 16 digits)", f"{model}.files.size")
                size = int(raw)
            sha = None
            if "sha256" in fields:
                sha = self.scalar(fields["sha256"][1], f"{model}.files.sha256").lower()
                if not is_sha256(sha):
                    raise self.fail(fields["sha256"][1], f"sha256 of {fname} is not 64 hex characters", f"{model}.files.sha256")
            out.append(FileSpec(fname, size, sha))
        return tuple(out)

    def check_file_name(self, node: yaml.Node, model: str, fname: str) -> None:
        if not safe_file_name(fname):
            raise self.fail(node, f"file name '{_shown(fname)}' must be a relative path inside the repo (no '..', no "
                            "absolute path, no control characters)", f"{model}.files.name")

    def set_(self, sname: str, node: yaml.Node, models: dict[str, ModelSpec]) -> tuple[str, ...]:
        names = []
        for item in self.sequence(node, f"sets.{sname}"):
            ref = self.scalar(item, f"sets.{sname}")
            if ref not in models:
                bare = [m for m in models if m.split(":", 1)[1] == ref]
                if len(bare) != 1:
                    raise self.fail(item, f"set '{_shown(sname)}' names unknown model '{_shown(ref)}'", f"sets.{_shown(sname)}")
                ref = bare[0]
            names.append(ref)
        return tuple(names)


def _shown(value: object) -> str:
    """A value from the file, as it may appear in a one-line error: short and without control characters."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text if len(text) <= 80 else text[:79] + "…"
