"""ModelManager answers from the cache alone: caches filled by the real huggingface_hub client, then damaged by hand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from lyricsub_hub import ModelManager
from lyricsub_hub.errors import IntegrityError, ModelNotAvailableError
from tests.helpers import Repo, payload


def fill(hub, repo: Repo, cache_dir: Path, only: list[str] | None = None) -> None:
    """Download with huggingface_hub itself, at the pinned commit, as any other tool would."""
    for name in only or list(repo.files):
        hf_hub_download(repo.repo, name, revision=repo.commit, cache_dir=cache_dir, endpoint=hub.endpoint)


def test_missing_partial_available_from_a_real_client_cache(hub, small_repos, index_file, cache_dir) -> None:
    demucs, whisper = small_repos
    mgr = ModelManager(index_file, cache_dir)
    assert mgr.status("demucs:tiny").status == "missing"
    fill(hub, whisper, cache_dir, only=["config.json", "model.bin"])
    assert mgr.status("whisper:tiny").status == "partial"
    fill(hub, demucs, cache_dir)
    hub.clear_log()
    st = mgr.status("demucs:tiny")
    assert st.status == "available" and st.path == cache_dir / "models--test--tiny-demucs" / "snapshots" / demucs.commit
    assert mgr.check_model_availability("demucs:tiny") and not mgr.check_model_availability("whisper:tiny")
    assert mgr.get_model_path("demucs:tiny") == st.path
    assert mgr.list_available_models() == ["demucs:tiny"]
    with pytest.raises(ModelNotAvailableError, match="partially downloaded.*vocabulary.json.*run: lyricsub-hub warm whisper:tiny"):
        mgr.get_model_path("whisper:tiny")
    assert hub.requests == []  # not one request, though the Hub was up the whole time


def test_status_honours_hf_home_and_hf_hub_cache(hub, small_repos, index_file, tmp_path, monkeypatch) -> None:
    other = tmp_path / "elsewhere"
    fill(hub, small_repos[0], other)
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    assert ModelManager(index_file).check_model_availability("demucs:tiny")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home2"))
    assert not ModelManager(index_file).check_model_availability("demucs:tiny")
    fill(hub, small_repos[0], tmp_path / "home2" / "hub")
    assert ModelManager(index_file).check_model_availability("demucs:tiny")


def blob_of(path: Path) -> Path:
    return path.resolve()


def test_wrong_size_is_partial_and_a_flipped_byte_is_corrupt(hub, small_repos, index_file, cache_dir) -> None:
    demucs = small_repos[0]
    fill(hub, demucs, cache_dir)
    mgr = ModelManager(index_file, cache_dir)
    weights = cache_dir / "models--test--tiny-demucs" / "snapshots" / demucs.commit / "abc.safetensors"
    assert mgr.check_model_availability("demucs:tiny")  # hashes once, records the result
    blob = blob_of(weights)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))  # same size, new mtime: the record no longer vouches for it
    st = mgr.status("demucs:tiny")
    assert st.status == "corrupt" and st.path is None
    assert [f.state for f in st.files] == ["ok", "mismatch"]
    with pytest.raises(IntegrityError, match="abc.safetensors.*verify --repair demucs:tiny"):
        mgr.get_model_path("demucs:tiny")
    blob.write_bytes(bytes(data[:-10]))
    assert mgr.status("demucs:tiny").status == "partial"


def test_a_record_is_trusted_only_while_size_mtime_and_inode_match(hub, small_repos, index_file, cache_dir) -> None:
    demucs = small_repos[0]
    fill(hub, demucs, cache_dir)
    mgr = ModelManager(index_file, cache_dir)
    first = mgr.status("demucs:tiny")
    assert {f.checked for f in first.files} == {"hashed"}
    second = mgr.status("demucs:tiny")
    assert {f.checked for f in second.files} == {"record"}
    blob = blob_of(second.files[1].path)
    os.utime(blob, ns=(blob.stat().st_atime_ns, blob.stat().st_mtime_ns + 1_000_000))
    third = mgr.status("demucs:tiny")
    assert [f.checked for f in third.files] == ["record", "hashed"] and third.available


def test_symlink_leaving_the_cache_is_refused(hub, small_repos, index_file, cache_dir, tmp_path) -> None:
    demucs = small_repos[0]
    fill(hub, demucs, cache_dir)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(demucs.files["abc.safetensors"])  # even with the right bytes
    link = cache_dir / "models--test--tiny-demucs" / "snapshots" / demucs.commit / "abc.safetensors"
    link.unlink()
    link.symlink_to(outside)
    st = ModelManager(index_file, cache_dir).status("demucs:tiny")
    assert st.status == "corrupt" and "outside the cache" in st.files[1].detail


def test_remove_model_goes_through_the_hub_cache_and_spares_other_repos(hub, small_repos, index_file, cache_dir) -> None:
    demucs, whisper = small_repos
    fill(hub, demucs, cache_dir)
    fill(hub, whisper, cache_dir)
    foreign = hub.add_repo("someone/else", {"w.bin": payload(9, 5000)})
    hf_hub_download("someone/else", "w.bin", revision=foreign, cache_dir=cache_dir, endpoint=hub.endpoint)
    mgr = ModelManager(index_file, cache_dir)
    report = mgr.remove_model("demucs:tiny")
    assert report.removed == ("demucs:tiny",) and report.bytes_freed >= 300_000
    assert not mgr.check_model_availability("demucs:tiny") and mgr.check_model_availability("whisper:tiny")
    report = mgr.clear_model_cache()
    assert report.removed == ("whisper:tiny",) and report.absent == ("demucs:tiny",)
    assert (cache_dir / "models--someone--else" / "snapshots" / foreign / "w.bin").is_file()


def test_metadata_describes_the_pin_and_the_cache(small_repos, index_file, cache_dir) -> None:
    meta = ModelManager(index_file, cache_dir).get_model_metadata("whisper:tiny")
    assert meta.repo == "test/tiny-whisper" and meta.revision == small_repos[1].commit and meta.pinned
    assert meta.total_size == sum(len(v) for v in small_repos[1].files.values())
    assert meta.status.status == "missing"
