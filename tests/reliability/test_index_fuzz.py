"""The index fuzz: 500 generated model_index.yaml documents, each either loads into a valid index or fails as one
IndexFileError naming file and line; plus known-bad indexes through the command (exit 2, one line)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lyricsub_hub.errors import IndexFileError
from lyricsub_hub.families import FAMILIES as _FAMILIES
from lyricsub_hub.index import load_index

from .helpers import run_cli, write_results

pytestmark = pytest.mark.reliability

FAMILIES = tuple(_FAMILIES)
STATS: dict = {"fuzz": {}, "cli": {"cases": 0, "clean": 0}}


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("index_fuzz", STATS)


# --- the fuzz: every document either loads into a valid index or fails as one IndexFileError ------------------------

SHA = "a" * 64
REV = "b" * 40
GOOD = f"""\
version: 1
# a comment
models:
  demucs:htdemucs:
    family: demucs
    repo: adefossez/HTDemucs
    revision: {REV}
    files:
      - {{name: htdemucs.yaml, size: 21, sha256: {SHA}}}
      - {{name: sub/w.safetensors, size: 840, sha256: {SHA}}}
    license: mit
    gated: false
  whisper:large-v3:
    repo: Systran/faster-whisper-large-v3
    options: {{compute_type: float16, beams: [1, 2]}}
sets:
  default: [htdemucs, whisper:large-v3]
"""
HEX = "0123456789abcdef"
NASTY = ["!!python/object:os.system {}", "!foo x", "*undefined", "&a x", "2001-13-45", "2001-02-03", "? x", "<<: *a",
         "%TAG", "|", ">-", "- -", "{", "]", "'", '"', "#", "@x", "`x", "~", "null", ".nan", "0x1F", "0o17", "1_000",
         "1e3", "+12", "-0", "yes", "No", "ON", "=", "\t", "..."]
PRINTABLE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=10)
ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | PRINTABLE | st.text(max_size=6)
    | st.sampled_from(NASTY),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
FAMILY = st.sampled_from([*FAMILIES, "speech", "Demucs", "", "whisper ", "démucs"])
VARIANT = st.one_of(st.sampled_from(["tiny", "large-v3", "..", "../x", "a/b", "ü", "x:y", "", " ", "-", "ü/../.."]),
                    st.text(max_size=8))
FILE_NAME = st.one_of(
    st.sampled_from(["model.bin", "sub/vocab.json", "config.json", "..", "../evil", "a/../../b", "/etc/passwd", "a//b",
                     "./a", "a/./b", "a\\b", "C:\\x", "x:y", "", "ü/ñ.bin", "a\x00b", " ", "a/", "/", "~/.ssh/id_rsa",
                     "....", "a/..b", "..a/b", "\u2025/x", "%2e%2e/x"]),
    st.text(max_size=12))
SIZE = st.one_of(st.integers(0, 10**15), st.integers(-5, -1),
                 st.sampled_from(["12", "1e3", "0x10", "²", "٣", "1_0", " 7", "7 "]),
                 st.text(max_size=4), st.floats(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
REPO = st.one_of(st.sampled_from(["org/name", "a/b", "nope", "/abs", "a/b/c", "../x", "a/..", "ö/ä", "a/b\n", "", "-a/b",
                                  "a/b ", "a b/c"]), st.text(max_size=10))
MODEL_KEYS = ["family", "repo", "revision", "branch", "files", "license", "gated", "description", "requires", "options",
              "revison", "x-note", "Files", "ünknown", "repo"]


def hexish(n: int):
    """Mostly right, sometimes a length, case, character or type off."""
    good = st.text(HEX, min_size=n, max_size=n)
    return st.one_of(good, good, good, good, st.text(HEX, min_size=n - 2, max_size=n + 2),
                     st.text(HEX + "ABCDEFgxyz ", min_size=n, max_size=n), good.map(str.upper), good.map(lambda s: s + "\n"),
                     st.just("main"), st.integers(0, 10**50))


GOOD_REPO = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,6}/[A-Za-z0-9_.-]{1,8}", fullmatch=True)
GOOD_FILE = st.one_of(st.sampled_from(["model.bin", "sub/vocab.json", "config.json", "a/b/c.npz", "ü/ñ.bin", "x y.pt"]),
                      st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}){0,2}", fullmatch=True))
GOOD_VARIANT = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True)


class Chaos:
    """How wrong one document gets: each choice is the valid one unless a draw under `percent` says otherwise."""

    def __init__(self, draw, percent: int) -> None:
        self.draw, self.percent = draw, percent

    def bad(self) -> bool:
        return self.percent > 0 and self.draw(st.integers(0, 99)) < self.percent

    def pick(self, good, bad):
        return self.draw(bad if self.bad() else good)


def scalar(draw, value) -> str:
    """One YAML rendering of a value: JSON-quoted, unicode-quoted, single-quoted or plain (which may break the YAML)."""
    if isinstance(value, bool) or value is None:
        choices = ["true", "True", "yes"] if value else ["false", "no"] if value is False else ["null", "~", ""]
        return draw(st.sampled_from(choices))
    if isinstance(value, (int, float)):
        return json.dumps(value) if value == value and value not in (float("inf"), float("-inf")) else ".nan"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(draw, v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(draw, k)}: {scalar(draw, v)}" for k, v in value.items()) + "}"
    style = draw(st.sampled_from(["json", "json", "unicode", "single", "plain"]))
    if style == "json":
        return json.dumps(value)
    if style == "unicode":
        return json.dumps(value, ensure_ascii=False)
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return value


@st.composite
def structured(draw) -> bytes:
    """Near-valid documents: right shape, with keys, types, hex lengths, names, duplicates and references mutated."""
    c = Chaos(draw, draw(st.sampled_from([0, 3, 8, 15, 30, 60])))
    lines = []
    if not c.bad():
        version = c.pick(st.sampled_from([1, "1"]), st.one_of(st.sampled_from([2, 1.0, "one", None]), ANY))
        lines.append(f"version: {scalar(draw, version)}")
    if c.bad():
        lines.append(f"{draw(st.sampled_from(['x-note', 'extra', 'Models', 'x-y']))}: {scalar(draw, draw(ANY))}")
    names: list[str] = []
    if c.bad():
        lines.append(draw(st.sampled_from(["", f"models: {scalar(draw, draw(ANY))}"])))
    else:
        count = draw(st.integers(0, 3))
        lines.append("models:" if count else "models: {}")
        for _ in range(count):
            if names and c.bad() and c.bad():
                name = draw(st.sampled_from(names))  # a duplicate name
            elif c.bad():
                name = draw(st.one_of(VARIANT, st.builds(lambda f, v: f"{f}:{v}", FAMILY, VARIANT)))
            else:
                name = f"{draw(st.sampled_from(FAMILIES))}:{draw(GOOD_VARIANT)}-{len(names)}"
            names.append(name)
            lines.append(f"  {scalar(draw, name)}:")
            if c.bad() and c.bad():
                lines[-1] += f" {scalar(draw, draw(ANY))}"  # the model is not a mapping
                continue
            keys = [] if c.bad() else ["repo"]
            keys += ["revision"] if draw(st.booleans()) else []
            keys += ["files"] if draw(st.integers(0, 3)) else []
            optional = ["branch", "license", "gated", "description", "requires", "options"]
            keys += draw(st.lists(st.sampled_from(optional), max_size=2))
            keys += [draw(st.sampled_from(MODEL_KEYS))] if c.bad() else []
            for key in keys:
                lines += model_field(c, key, name)
    if draw(st.integers(0, 2)):
        snames = draw(st.lists(st.sampled_from(["default", "full", "ü", "x y"]), max_size=3, unique=True))
        lines.append("sets:" if snames or c.bad() else "sets: {}")
        wrong = st.one_of(st.sampled_from(["unknown:model", "tiny", "large-v3"]), st.text(max_size=6))
        for sname in snames:
            refs = [c.pick(st.sampled_from(names), wrong) if names else draw(wrong) for _ in range(draw(st.integers(0, 3)))]
            value = scalar(draw, refs) if not c.bad() else scalar(draw, draw(ANY))
            lines.append(f"  {scalar(draw, sname)}: {value}")
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n", "\n\n# end\n"]))
    return text.encode("utf-8")


def model_field(c: Chaos, key: str, name: str) -> list[str]:
    draw = c.draw
    if key == "files" and not (c.bad() and c.bad()):
        count = draw(st.integers(0, 3))
        out = ["    files:" if count or c.bad() else "    files: []"]
        seen: list[str] = []
        for _ in range(count):
            fkeys = ["name"] + (["size"] if draw(st.booleans()) else []) + (["sha256"] if draw(st.booleans()) else [])
            if c.bad():
                fkeys = draw(st.lists(st.sampled_from(["name", "size", "sha256", "md5", "Name"]), max_size=4))
            parts = []
            for fkey in fkeys:
                if fkey == "name":
                    value = draw(st.sampled_from(seen)) if seen and c.bad() else c.pick(GOOD_FILE, FILE_NAME)
                    seen.append(value)
                elif fkey == "size":
                    value = c.pick(st.integers(0, 10**12), SIZE)
                elif fkey == "sha256":
                    value = c.pick(st.text(HEX, min_size=64, max_size=64), hexish(64))
                else:
                    value = draw(ANY)
                parts.append(f"{fkey}: {scalar(draw, value)}")
            out.append("      - {" + ", ".join(parts) + "}")
        return out
    family = name.partition(":")[0]
    good = {"family": st.just(family), "repo": GOOD_REPO, "revision": st.text(HEX, min_size=40, max_size=40),
            "gated": st.sampled_from(["true", "false"]), "requires": st.lists(GOOD_VARIANT, max_size=2),
            "options": st.dictionaries(GOOD_VARIANT, st.one_of(st.integers(), GOOD_VARIANT), max_size=2)}
    bad = {"family": FAMILY, "repo": REPO, "revision": hexish(40), "gated": st.sampled_from(["maybe", "1", "TRUE", "yes"]),
           "requires": ANY, "options": ANY}
    value = c.pick(good.get(key, GOOD_VARIANT), st.one_of(bad.get(key, ANY), ANY))
    return [f"    {key}: {scalar(draw, value)}"]


@st.composite
def mutated(draw) -> bytes:
    """The good document with a few random edits: cut, insert, duplicate or swap lines."""
    text = GOOD
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cut", "insert", "dup", "swap"]))
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, max(0, len(text) - 1)))
        if op == "cut":
            text = text[:i] + text[i + draw(st.integers(1, 20)):]
        elif op == "insert":
            text = text[:i] + draw(st.text(alphabet="{}[]:-,'\"#&*!|>%@ \n\tabc01./", min_size=1, max_size=6)) + text[i:]
        elif op == "dup" and lines:
            j = draw(st.integers(0, len(lines) - 1))
            lines.insert(j, lines[j])
            text = "".join(lines)
        elif lines:
            j, k = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[j], lines[k] = lines[k], lines[j]
            text = "".join(lines)
    return text.encode("utf-8")


YAMLISH = st.text(alphabet="{}[]:-,'\"#&*!|>%@? \n\t versionmodelsetfilr1:./ü", max_size=200).map(str.encode)
DOCUMENTS = st.one_of(structured(), structured(), structured(), structured(), mutated(), mutated(), YAMLISH,
                      st.text(max_size=200).map(str.encode), st.binary(max_size=120))

_HEX40, _HEX64 = re.compile(r"[0-9a-f]{40}"), re.compile(r"[0-9a-f]{64}")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def validity_problem(idx) -> str | None:
    """What a loaded index must guarantee; None when it does."""
    for name, spec in idx.models.items():
        family, sep, variant = name.partition(":")
        if not sep or not variant or family not in FAMILIES or spec.family != family:
            return f"bad model name {name!r}"
        if not _REPO.fullmatch(spec.repo):
            return f"{name}: repo {spec.repo!r}"
        if spec.revision is not None and not _HEX40.fullmatch(spec.revision):
            return f"{name}: revision {spec.revision!r}"
        seen = set()
        for f in spec.files:
            parts = f.name.split("/")
            if (not f.name or f.name.startswith("/") or "\\" in f.name or "\x00" in f.name
                    or any(p in ("", ".", "..") for p in parts) or f.name in seen):
                return f"{name}: file name {f.name!r}"
            seen.add(f.name)
            if f.size is not None and (not isinstance(f.size, int) or f.size < 0):
                return f"{name}: size {f.size!r}"
            if f.sha256 is not None and not _HEX64.fullmatch(f.sha256):
                return f"{name}: sha256 {f.sha256!r}"
        if not isinstance(spec.gated, bool):
            return f"{name}: gated {spec.gated!r}"
    for sname, members in idx.sets.items():
        if any(m not in idx.models for m in members):
            return f"set {sname} names an unknown model"
    return None


def test_fuzzed_index_either_loads_valid_or_fails_as_one_index_error(tmp_path: Path) -> None:
    path = tmp_path / "model_index.yaml"
    stats = {"cases": 0, "valid": 0, "index_errors": 0, "index_errors_with_line": 0, "yaml_errors": 0,
             "other_exceptions": 0}

    @settings(max_examples=500, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(raw=DOCUMENTS)
    def prop(raw: bytes) -> None:
        stats["cases"] += 1
        path.write_bytes(raw)
        try:
            idx = load_index(path)
        except IndexFileError as err:
            stats["index_errors"] += 1
            text = str(err)
            assert text.startswith(str(path)), text
            assert "\n" not in text and "\r" not in text, text  # one line, a YAML problem quoting the input included
            assert err.exit_code == 2
            stats["yaml_errors"] += "YAML error" in text
            if err.line is not None:
                stats["index_errors_with_line"] += 1
                assert text.startswith(f"{path}:{err.line}")
            else:  # every structural error names its line: only an empty index or a YAML error without a mark does not
                assert text == f"{path}: the index is empty" or text.startswith(f"{path}: YAML error: "), text
            return
        except Exception:
            stats["other_exceptions"] += 1
            raise
        problem = validity_problem(idx)
        assert problem is None, f"loaded an invalid index: {problem}"
        stats["valid"] += 1

    prop()
    STATS["fuzz"] = stats
    assert stats["cases"] >= 500
    assert stats["valid"] >= 10 and stats["index_errors"] >= 250, stats  # both outcomes really occur
    assert stats["index_errors_with_line"] >= stats["index_errors"] // 2, stats


# --- the same through the command: exit 2, one line, no traceback -----------------------------------------------------

def _doc(models: str, extra: str = "") -> str:
    return f"version: 1\nmodels:\n{models}{extra}"


CLI_BAD = {
    "yaml-syntax": "version: 1\nmodels: [\n",
    "tab-indent": "version: 1\nmodels:\n\tdemucs:x: {}\n",
    "empty": "",
    "top-is-list": "- a\n- b\n",
    "version-2": "version: 2\nmodels: {}\n",
    "no-version": "models: {}\n",
    "unknown-family": _doc("  speech:x: {repo: a/b}\n"),
    "duplicate-model": _doc("  demucs:x: {repo: a/b}\n  demucs:x: {repo: a/c}\n"),
    "revision-39-hex": _doc(f"  demucs:x:\n    repo: a/b\n    revision: {'b' * 39}\n"),
    "sha-63-hex": _doc(f"  demucs:x:\n    repo: a/b\n    files:\n      - {{name: f, sha256: {'a' * 63}}}\n"),
    "sha-not-hex": _doc(f"  demucs:x:\n    repo: a/b\n    files:\n      - {{name: f, sha256: {'g' * 64}}}\n"),
    "file-dotdot": _doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: ../../evil}\n"),
    "file-absolute": _doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: /etc/passwd}\n"),
    "file-backslash": _doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: 'a\\..\\..\\evil'}\n"),
    "file-duplicate": _doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: f}\n      - {name: f}\n"),
    "size-negative": _doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: f, size: -1}\n"),
    "set-unknown-model": _doc("  demucs:x: {repo: a/b}\n", "sets:\n  default: [whisper:nope]\n"),
    "unknown-key": _doc("  demucs:x:\n    repo: a/b\n    revison: x\n"),
    "repo-not-org-name": _doc("  demucs:x: {repo: nope}\n"),
    "files-not-a-list": _doc("  demucs:x:\n    repo: a/b\n    files: {name: f}\n"),
    "gated-maybe": _doc("  demucs:x:\n    repo: a/b\n    gated: maybe\n"),
    "unicode-file-escape": _doc("  demucs:ü:\n    repo: a/b\n    files:\n      - {name: \"ü/../../../ëvil\"}\n"),
    "nul-character": "version: 1\x00\nmodels: {}\n",
    "undefined-alias": "version: 1\nmodels: *nope\n",
}
# Regression cases: each once crashed or passed the parser (the reason says how); all are refused now.
REGRESSIONS = {
    "non-utf8-bytes": (b"version: 1\nmodels: {}\n# caf\xe9\n",
                       "a non-UTF-8 index raises UnicodeDecodeError (load_index only catches OSError): traceback"),
    "superscript-size": (_doc("  demucs:x:\n    repo: a/b\n    files:\n      - {name: f, size: '\u00b2'}\n").encode(),
                         "size '\u00b2' passes str.isdigit() and int() raises ValueError: traceback"),
    "options-python-tag": (_doc("  demucs:x:\n    repo: a/b\n    options: !!python/object:os.system {}\n").encode(),
                           "options are re-loaded with yaml.load: an unknown tag raises ConstructorError: traceback"),
    "options-bad-date": (_doc("  demucs:x:\n    repo: a/b\n    options: {when: 2001-13-45}\n").encode(),
                         "options re-loaded with yaml.load: an impossible date raises ValueError: traceback"),
    "options-deep-nesting": (_doc("  demucs:x:\n    repo: a/b\n    options: " + "[" * 3000 + "]" * 3000 + "\n").encode(),
                             "deeply nested options raise RecursionError in yaml.serialize: traceback"),
    "deep-nesting": (("version: 1\nmodels: " + "[" * 60000 + "]" * 60000 + "\n").encode(),
                     "60000 nested brackets crash libyaml's C composer (CSafeLoader): segmentation fault"),
    "revision-trailing-newline": (_doc(f"  demucs:x:\n    repo: a/b\n    revision: \"{'b' * 40}\\n\"\n").encode(),
                                  "'$' in the hex/repo patterns matches before a final newline: the index loads (exit 0)"),
}


def _cli_params() -> list:
    params = [pytest.param(text.encode(), id=key) for key, text in CLI_BAD.items()]
    params += [pytest.param(raw, id=key) for key, (raw, why) in REGRESSIONS.items()]
    return params


@pytest.mark.parametrize("raw", _cli_params())
def test_bad_index_through_the_command_exits_2_in_one_line(raw: bytes, tmp_path: Path) -> None:
    index = tmp_path / "bad index.yaml"
    index.write_bytes(raw)
    STATS["cli"]["cases"] += 1
    proc = run_cli("list", "--index", str(index), timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1500:])
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lyricsub-hub: {index}"), lines
    STATS["cli"]["clean"] += 1


# --- the regressions, in-process (minimal reproductions) ------------------------------------------------------------------

@pytest.mark.parametrize("raw", [pytest.param(raw, id=key) for key, (raw, _) in REGRESSIONS.items() if key != "deep-nesting"])
def test_known_bad_index_raises_index_file_error(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "i.yaml"
    path.write_bytes(raw)
    with pytest.raises(IndexFileError):
        load_index(path)


