"""`lock` fills pins from the Hub and `lock --update` moves them, keeping the index's comments and order."""

from __future__ import annotations

import hashlib
import json

from lyricsub_hub.index import load_index
from tests.helpers import payload, run_cli

INDEX = """\
version: 1
# our models, pinned by `lyricsub-hub lock`
models:
  whisper:tiny:   # the small one
    family: whisper
    repo: test/tw
    license: mit
  demucs:x:
    repo: test/dx
    revision: {rev}
    files:
      - {{name: x.yaml}}
      - {{name: w.safetensors}}
sets:
  default: [whisper:tiny]   # keep me
"""


def test_lock_fills_missing_pins_and_keeps_comments(hub, tmp_path) -> None:
    files = {"config.json": b'{"a": 1}\n', "model.bin": payload(1, 4000), "vocabulary.json": b"{}\n", "README.md": b"hi\n"}
    hub.add_repo("test/tw", files)
    dx = hub.add_repo("test/dx", {"x.yaml": b"a: 1\n", "w.safetensors": payload(2, 3000)})
    index = tmp_path / "index.yaml"
    index.write_text(INDEX.format(rev=dx))
    proc = run_cli("lock", "--index", str(index), "--endpoint", hub.endpoint, "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    text = index.read_text()
    assert "# our models, pinned by `lyricsub-hub lock`" in text and "# the small one" in text and "# keep me" in text
    idx = load_index(index)
    tiny = idx.resolve("whisper:tiny")
    assert tiny.pinned and tiny.license == "mit"
    assert {f.name: (f.size, f.sha256) for f in tiny.files} == {
        n: (len(d), hashlib.sha256(d).hexdigest()) for n, d in files.items() if n != "README.md"}  # only what faster-whisper reads
    assert idx.resolve("demucs:x").pinned and idx.resolve("demucs:x").revision == dx
    assert list(idx.models) == ["whisper:tiny", "demucs:x"]


def test_lock_update_moves_to_the_newest_commit_and_says_what_changed(hub, tmp_path) -> None:
    old = hub.add_repo("test/dx", {"x.yaml": b"a: 1\n", "w.safetensors": payload(2, 3000)})
    hub.add_repo("test/tw", {"model.bin": payload(1, 100)})
    index = tmp_path / "index.yaml"
    index.write_text(INDEX.format(rev=old))
    args = ["--index", str(index), "--endpoint", hub.endpoint, "--cache-dir", str(tmp_path / "c")]
    assert run_cli("lock", "demucs:x", *args).returncode == 0
    assert run_cli("lock", "demucs:x", *args).stdout.startswith("demucs:x: unchanged")  # nothing moves by itself
    new = hub.add_repo("test/dx", {"x.yaml": b"a: 1\n", "w.safetensors": payload(3, 3000)})
    proc = run_cli("lock", "demucs:x", "--update", "--json", *args)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["models"][0]["old_revision"] == old and doc["models"][0]["revision"] == new
    assert {f["name"]: f["change"] for f in doc["models"][0]["files"]} == {"x.yaml": "same", "w.safetensors": "changed"}
    assert load_index(index).resolve("demucs:x").revision == new


def test_lock_of_an_unknown_repo_is_one_clear_error(hub, tmp_path) -> None:
    index = tmp_path / "index.yaml"
    index.write_text("version: 1\nmodels:\n  whisper:gone:\n    repo: test/gone\n")
    proc = run_cli("lock", "--index", str(index), "--endpoint", hub.endpoint)
    assert proc.returncode == 3 and "test/gone not found" in proc.stderr and "Traceback" not in proc.stderr
    assert index.read_text() == "version: 1\nmodels:\n  whisper:gone:\n    repo: test/gone\n"
