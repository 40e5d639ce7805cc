"""What crosses into and out of a family: option rules, the load request, the loaded model, the smoke report.

A family never sees the index or the cache: it gets a LoadRequest holding
verified paths only, and says beforehand (``reads``) which files and repos its
library will open, so the layer above can refuse anything no pin covers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs the first parse of an index 2 ms
    from typing import Any, Literal

    Kind = Literal["str", "int", "float", "bool", "choice", "floats", "mapping"]

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


@dataclass(frozen=True)
class OptionRule:
    """One allowed option and the values it may take. ``from_index`` False: only a caller may pass it (paths)."""

    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    keys: Mapping[str, OptionRule] = field(default_factory=dict)
    from_index: bool = True
    max_len: int = 200

    def problem(self, value: Any) -> str | None:
        """Why value is not allowed; None when it is."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind == "int" and not isinstance(value, int)):
                return f"must be {'a whole number' if self.kind == 'int' else 'a number'}"
            if value != value or (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"must be between {self.low:g} and {self.high:g}"
            return None
        if self.kind == "floats":
            if not isinstance(value, list) or not value or len(value) > 16:
                return "must be a list of 1 to 16 numbers"
            inner = OptionRule("float", self.low, self.high)
            return next((p for p in map(inner.problem, value) if p), None)
        if self.kind == "mapping":
            if not isinstance(value, dict):
                return "must be a mapping"
            for key, item in value.items():
                rule = self.keys.get(key) if isinstance(key, str) else None
                if rule is None:
                    return f"has an unknown key {key!r} (known: {', '.join(sorted(self.keys))})"
                why = rule.problem(item)
                if why:
                    return f"{key} {why}"
            return None
        if not isinstance(value, str) or len(value) > self.max_len or any(ord(c) < 32 for c in value):
            return f"must be text of at most {self.max_len} characters"
        if self.kind == "choice" and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return "has characters that are not allowed"
        return None


def word(**kw: Any) -> OptionRule:
    """A plain name: letters, digits and ._+- only, so it can never be a path."""
    return OptionRule("str", pattern=_WORD.pattern, **kw)


@dataclass(frozen=True)
class Reads:
    """What a library will open for a model: files of the snapshot, and other Hub repos a config names."""

    files: tuple[str, ...]
    repos: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadRequest:
    """Everything a family needs to load one model; every path in it was verified against its pin."""

    name: str
    variant: str
    folder: Path
    files: Mapping[str, Path]
    device: str
    options: Mapping[str, Any]
    requires: Mapping[str, Path] = field(default_factory=dict)  # repo id -> verified snapshot folder


@dataclass(frozen=True)
class LoadedModel:
    """A model object from its own library, with where its weights really are and how fast it loaded."""

    name: str
    family: str
    device: str  # where the weights are (e.g. cuda:0), not the string that was asked for
    model: Any = field(repr=False, compare=False)
    load_seconds: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    requested: str = ""  # the device string the caller asked for


@dataclass(frozen=True)
class SmokeReport:
    """One run on a synthetic signal: timings, a one-line summary and what was checked."""

    name: str
    family: str
    device: str
    load_seconds: float
    run_seconds: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GpuNeed:
    """Rough GPU memory a model needs: its weights times a factor, plus working memory."""

    factor: float
    overhead: int
    engines: tuple[str, ...] = ("torch",)  # what runs it on a GPU (cudalibs checks each before a load)

    def bytes_for(self, weight_bytes: int, scale: float = 1.0) -> int:
        return int(weight_bytes * self.factor * scale + self.overhead)


@dataclass(frozen=True)
class Family:
    """One model family: the library that owns it, what it reads, the options it takes, what it needs on a GPU."""

    name: str
    library: str  # the module that must be importable to load it
    module: str  # lyricsub_hub.families.<module>: reads, import_libraries, load, smoke, placement
    patterns: tuple[str, ...]  # files its library reads, for pinning a model whose index entry names none
    options: Mapping[str, OptionRule]
    gpu: GpuNeed

    def option_problem(self, key: str, value: Any, *, from_index: bool) -> str | None:
        rule = self.options.get(key)
        if rule is None or (from_index and not rule.from_index):
            allowed = sorted(k for k, r in self.options.items() if r.from_index or not from_index)
            return f"unknown option '{key}' for {self.name} (known: {', '.join(allowed)})"
        why = rule.problem(value)
        return f"option {key} {why}" if why else None
