"""Integrity: damaged files are found, reported, refused and repaired; records keep the warm path at stat cost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.errors import IntegrityError, ModelNotAvailableError
from tests.helpers import add, payload, run_cli, sha256, write_index


@pytest.fixture
def three(hub, tmp_path):
    repo = add(hub, "demucs:three", "test/three", {
        "three.yaml": b"models: [a, b, c]\n", "a.safetensors": payload(11, 200_000),
        "b.safetensors": payload(12, 200_000), "c.safetensors": payload(13, 200_000)})
    return repo, write_index(tmp_path / "three.yaml", [repo])


def warm(hub, index: Path, cache: Path, name: str) -> None:
    assert ModelDownloader(ModelManager(index, cache, endpoint=hub.endpoint)).download_model(name).success


def test_flipped_truncated_and_replaced_files_are_found_refused_and_repaired(hub, three, cache_dir) -> None:
    repo, index = three
    warm(hub, index, cache_dir, "demucs:three")
    snap = cache_dir / "models--test--three" / "snapshots" / repo.commit
    flipped = bytearray((snap / "a.safetensors").read_bytes())
    flipped[4242] ^= 0x01
    (snap / "a.safetensors").resolve().write_bytes(bytes(flipped))  # one byte, same size
    with open((snap / "b.safetensors").resolve(), "r+b") as fh:  # truncated
        fh.truncate(150_000)
    with open(snap / "c.safetensors", "wb") as fh:  # replaced through its symlink
        fh.write(payload(99, 200_000))
    mgr = ModelManager(index, cache_dir)
    st = mgr.status("demucs:three")
    assert {f.name: f.state for f in st.files} == {
        "three.yaml": "ok", "a.safetensors": "mismatch", "b.safetensors": "size_mismatch", "c.safetensors": "mismatch"}
    with pytest.raises(IntegrityError):
        mgr.get_model_path("demucs:three")
    assert not mgr.check_model_availability("demucs:three")

    proc = run_cli("verify", "demucs:three", "--json", "--index", str(index))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["models"][0]["status"] == "corrupt"
    assert [f["state"] for f in doc["models"][0]["files"]] == ["ok", "mismatch", "size_mismatch", "mismatch"]
    text = run_cli("verify", "--index", str(index))
    assert text.returncode == 1 and "verify --repair demucs:three" in text.stderr

    hub.clear_log()
    fixed = run_cli("verify", "demucs:three", "--repair", "--index", str(index), "--endpoint", hub.endpoint)
    assert fixed.returncode == 0, fixed.stderr
    assert "(repaired)" in fixed.stdout
    fetched = sorted(r.path.rsplit("/", 1)[1] for r in hub.requests if r.method == "GET")
    assert fetched == ["a.safetensors", "b.safetensors", "c.safetensors"]  # only the bad ones
    assert mgr.status("demucs:three", verify="deep").available
    assert (snap / "c.safetensors").read_bytes() == repo.files["c.safetensors"]


def test_a_rewrite_with_its_mtime_put_back_is_caught_without_deep(hub, three, cache_dir) -> None:
    repo, index = three
    warm(hub, index, cache_dir, "demucs:three")
    blob = (cache_dir / "models--test--three" / "snapshots" / repo.commit / "a.safetensors").resolve()
    st = blob.stat()
    data = bytearray(blob.read_bytes())
    data[7] ^= 0xFF
    blob.write_bytes(bytes(data))
    import os

    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, mtime and inode; only the ctime moved
    plain = run_cli("verify", "demucs:three", "--index", str(index))
    assert plain.returncode == 1 and "mismatch" in plain.stdout  # the record keeps the ctime no user-space call sets back
    assert "a.safetensors" in plain.stderr and "sha256" in plain.stderr
    assert not ModelManager(index, cache_dir).check_model_availability("demucs:three")  # the failure was remembered


def test_verify_reports_unpinned_and_missing(hub, tmp_path, cache_dir) -> None:
    repo = add(hub, "whisper:x", "test/x", {"model.bin": payload(3, 5000)})
    index = tmp_path / "i.yaml"
    index.write_text(f"version: 1\nmodels:\n  whisper:x:\n    repo: test/x\n    revision: {repo.commit}\n"
                     f"    files:\n      - {{name: model.bin, sha256: {sha256(repo.files['model.bin'])}}}\n"
                     "  whisper:y:\n    repo: test/y\n")
    proc = run_cli("verify", "whisper:x", "whisper:y", "--json", "--index", str(index))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert [(m["name"], m["status"]) for m in doc["models"]] == [("whisper:x", "missing"), ("whisper:y", "unpinned")]
    assert {e["hint"] for e in doc["errors"]} == {"lyricsub-hub warm whisper:x", "lyricsub-hub lock whisper:y"}
    warm(hub, index, cache_dir, "whisper:x")  # no size in the index: the Hub's answer caps it, the sha256 checks it
    st = ModelManager(index, cache_dir).status("whisper:x", verify="deep")
    assert st.available and st.files[0].state == "ok"


def test_a_cache_without_symlinks_is_verified_too(hub, three, cache_dir) -> None:
    """As huggingface_hub lays it out where symlinks are off: real files in snapshots/, blobs/ empty."""
    repo, index = three
    warm(hub, index, cache_dir, "demucs:three")
    snap = cache_dir / "models--test--three" / "snapshots" / repo.commit
    for entry in list(snap.iterdir()):
        blob = entry.resolve()
        entry.unlink()
        shutil.move(str(blob), entry)
    mgr = ModelManager(index, cache_dir, state_dir=cache_dir.parent / "fresh-state")
    assert mgr.status("demucs:three").available
    data = bytearray((snap / "b.safetensors").read_bytes())
    data[0] ^= 1
    (snap / "b.safetensors").write_bytes(bytes(data))
    st = mgr.status("demucs:three")
    assert st.status == "corrupt" and [f.name for f in st.problems] == ["b.safetensors"]
    with pytest.raises(ModelNotAvailableError):
        mgr.get_model_path("demucs:three")


def test_warm_path_hashes_once_then_trusts_the_record(hub, three, cache_dir) -> None:
    repo, index = three
    warm(hub, index, cache_dir, "demucs:three")
    mgr = ModelManager(index, cache_dir)
    # every file was hashed once during the warm (large ones while written): now stat and record only
    assert [f.checked for f in mgr.status("demucs:three").files] == ["record"] * 4
    assert [f.checked for f in mgr.status("demucs:three", verify="deep").files] == ["hashed"] * 4
