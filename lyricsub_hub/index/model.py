"""What the index says: models, their pinned files, and sets. Frozen, validated on the way in (see parse.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Hint, UsageError

DEFAULT_SET = "default"  # what a command acts on when it names no model and no set

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class FileSpec:
    """One file of a model; size and sha256 are absent where nobody has pinned them."""

    name: str
    size: int | None = None
    sha256: str | None = None

    @property
    def pinned(self) -> bool:
        """A sha256 decides which bytes are right; a missing size is taken from the Hub as a cap only."""
        return self.sha256 is not None


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
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    line: int | None = None

    @property
    def variant(self) -> str:
        return self.name.split(":", 1)[1]

    @property
    def pinned(self) -> bool:
        """A commit, a file list, and a sha256 for every file: the only models fetched or loaded."""
        return bool(self.revision and self.files and all(f.pinned for f in self.files))

    @property
    def unpinned_reason(self) -> str | None:
        """Why the model is not pinned, in a few words; None when it is."""
        if not self.revision:
            return "the index pins no commit"
        if not self.files:
            return "the index lists no files"
        loose = [f.name for f in self.files if not f.pinned]
        if loose:
            return f"the index pins no sha256 for {', '.join(loose[:3])}{' …' if len(loose) > 3 else ''}"
        return None

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if not sizes or None in sizes else sum(s for s in sizes if s is not None)


@dataclass(frozen=True)
class ModelIndex:
    """The parsed index: every model by name, and the named sets of models."""

    path: Path
    models: Mapping[str, ModelSpec]
    sets: Mapping[str, tuple[str, ...]]

    def resolve(self, name: str) -> ModelSpec:
        """Accept ``family:variant`` or a bare variant that names one model alone."""
        if name in self.models:
            return self.models[name]
        matches = [m for m in self.models.values() if m.variant == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(sorted(m.name for m in matches))
            raise UsageError(f"'{name}' is ambiguous: it names {options}", model=name, hint=Hint.listing())
        raise UsageError(f"unknown model '{name}' in {self.path}", model=name, hint=Hint.listing())

    def expand(self, names: Iterable[str] = (), set_name: str | None = None) -> list[ModelSpec]:
        """Models named and models of a set, in order, each once."""
        wanted = list(names)
        if set_name is not None:
            if set_name not in self.sets:
                known = ", ".join(sorted(self.sets)) or "none"
                raise UsageError(f"unknown set '{set_name}' (sets: {known})", hint=Hint.listing())
            wanted += self.sets[set_name]
        specs: dict[str, ModelSpec] = {}
        for name in wanted:
            spec = self.resolve(name)
            specs.setdefault(spec.name, spec)
        return list(specs.values())

    def select(self, names: Iterable[str] = (), set_name: str | None = None, *, with_requires: bool = True,
               default: str | None = DEFAULT_SET) -> list[ModelSpec]:
        """The one way every command and the API pick models: the named ones and the set's, in order, each once,
        each followed by what it `requires` (transitively) unless with_requires is False.

        With no names and no set: the `default` set (default=None: every model of the index instead). An index
        without that set is a usage error, not a silent "everything".
        """
        names = list(names)
        if not names and set_name is None:
            if default is None:
                specs = list(self.models.values())
            elif default in self.sets:
                specs = self.expand([], default)
            else:
                raise UsageError(f"name models or --set SET: {self.path} has no '{default}' set to use instead",
                                 hint=Hint.listing())
        else:
            specs = self.expand(names, set_name)
        if not with_requires:
            return specs
        out: dict[str, ModelSpec] = {}
        for spec in specs:
            for s in (spec, *self.required(spec)):
                out.setdefault(s.name, s)
        return list(out.values())

    def required(self, spec: ModelSpec) -> list[ModelSpec]:
        """The models a model needs besides itself (`requires`), each once, depth first."""
        seen: dict[str, ModelSpec] = {}

        def walk(s: ModelSpec) -> None:
            for ref in s.requires:
                dep = self.resolve(ref)
                if dep.name not in seen and dep.name != spec.name:
                    seen[dep.name] = dep
                    walk(dep)

        walk(spec)
        return list(seen.values())


def unpinned_error(spec: ModelSpec) -> UsageError:
    from ..errors import UnpinnedModelError

    return UnpinnedModelError(f"not fully pinned: {spec.unpinned_reason}; it is never fetched or loaded as it is",
                              model=spec.name, hint=Hint.lock(spec.name))
