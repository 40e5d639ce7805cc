"""The index format: what loads, and that every mistake names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lyricsub_hub.errors import IndexFileError, UsageError
from lyricsub_hub.index import load_index, parse_index

SHA = "a" * 64
REV = "b" * 40
GOOD = textwrap.dedent(f"""\
    version: 1
    models:
      demucs:htdemucs:
        family: demucs
        repo: adefossez/HTDemucs
        revision: {REV}
        files:
          - {{name: htdemucs.yaml, size: 21, sha256: {SHA}}}
          - {{name: sub/955717e8.safetensors, size: 84025440, sha256: {SHA}}}
        license: mit
        gated: false
      whisper:large-v3:
        repo: Systran/faster-whisper-large-v3
      demucs:large-v3:
        repo: x/y
    sets:
      default: [htdemucs, whisper:large-v3]
    """)


def test_good_index_resolves_names_and_sets() -> None:
    idx = parse_index(GOOD, "m.yaml")
    spec = idx.resolve("htdemucs")
    assert spec.name == "demucs:htdemucs" and spec.pinned and spec.total_size == 84025461
    assert idx.sets["default"] == ("demucs:htdemucs", "whisper:large-v3")
    assert not idx.resolve("whisper:large-v3").pinned
    assert [s.name for s in idx.expand(["htdemucs"], "default")] == ["demucs:htdemucs", "whisper:large-v3"]


def test_bare_name_naming_two_models_is_refused() -> None:
    idx = parse_index(GOOD, "m.yaml")
    with pytest.raises(UsageError, match="ambiguous"):
        idx.resolve("large-v3")
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        idx.resolve("nope")
    with pytest.raises(UsageError, match="unknown set"):
        idx.expand([], "nope")


BAD = [
    ("version: 1\nmodels: [\n", 3, None, "YAML error"),
    ("version: 2\nmodels: {}\n", 1, "version", "unsupported version"),
    ("models: {}\n", 1, "version", "missing 'version"),
    ("version: 1\nmodels:\n  speech:x: {repo: a/b}\n", 3, "speech:x", "family"),
    ("version: 1\nmodels:\n  demucs:x: {repo: a/b}\n  demucs:x: {repo: a/c}\n", 4, "demucs:x", "duplicate name"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    revision: main\n", 5, "demucs:x.revision", "40-hex"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    files:\n      - {name: f, sha256: abc}\n", 6, "demucs:x.files.sha256", "64 hex"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    files:\n      - {name: /etc/passwd}\n", 6, "demucs:x.files.name", "relative path"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    files:\n      - {name: a/../../x}\n", 6, "demucs:x.files.name", "relative path"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    files:\n      - {name: f, size: -3}\n", 6, "demucs:x.files.size", "whole number"),
    ("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    revison: " + REV + "\n", 5, "demucs:x.revison", "unknown key"),
    ("version: 1\nmodels:\n  demucs:x: {repo: a/b}\nsets:\n  default: [demucs:y]\n", 5, "sets.default", "unknown model"),
    ("version: 1\nmodels:\n  demucs:x: {repo: nope}\n", 3, "demucs:x.repo", "org/name"),
    ("version: 1\nmodels:\n  demucs:x: {family: whisper, repo: a/b}\n", 3, "demucs:x.family", "does not match"),
]


@pytest.mark.parametrize("text,line,field,words", BAD)
def test_bad_index_names_file_line_and_field(text: str, line: int, field: str | None, words: str) -> None:
    with pytest.raises(IndexFileError) as info:
        parse_index(text, "idx.yaml")
    err = info.value
    assert err.line == line and err.field == field and words in str(err)
    assert str(err).startswith(f"idx.yaml:{line}")
    assert err.exit_code == 2


def test_missing_index_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="cannot read the index"):
        load_index(tmp_path / "nope.yaml")


def test_bundled_index_loads_with_the_sets_the_app_uses() -> None:
    idx = load_index()
    for name in ("demucs:htdemucs", "whisper:large-v3", "align:en", "diarize:community-1"):
        assert idx.resolve(name)
    assert set(idx.sets["default"]) == {"demucs:htdemucs", "whisper:large-v3", "align:en"}
    assert {"demucs:htdemucs_ft", "whisper:large-v3-turbo", "diarize:community-1"} <= set(idx.sets["lyrics-full"])
    assert idx.resolve("large-v3").repo == "Systran/faster-whisper-large-v3"
    assert idx.resolve("diarize:community-1").gated
