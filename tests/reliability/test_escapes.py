"""File names and links that try to leave the cache: refused before any request, never followed, never deleted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.errors import IntegrityError, ModelNotAvailableError

from .helpers import add, assert_clean_failure, payload, repo_dir, run_cli, tree_listing, warm_args, write_index, write_results

pytestmark = pytest.mark.reliability

STATS: dict = {"escapes": {}}


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("escapes", STATS)


def _doc(models: str, extra: str = "") -> str:
    return f"version: 1\nmodels:\n{models}{extra}"


# --- file names that try to leave the cache -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../../evil.bin", "/tmp/evil.bin", "sub/../../../../evil.bin", "./../evil.bin"])
def test_index_file_names_leaving_the_cache_are_refused_before_any_request(hub, tmp_path, cache_dir, name) -> None:
    index = tmp_path / "esc.yaml"
    entry = f"  demucs:esc:\n    repo: test/esc\n    revision: {'c' * 40}\n    files:\n      - {{name: '{name}'}}\n"
    index.write_text(_doc(entry))
    before = tree_listing(tmp_path)
    proc = run_cli(*warm_args(hub.endpoint, index, "demucs:esc"))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), "relative path")
    assert hub.requests == [] and tree_listing(tmp_path) == before and not Path("/tmp/evil.bin").exists()
    STATS["escapes"]["index_names_refused"] = STATS["escapes"].get("index_names_refused", 0) + 1


@pytest.fixture
def escaped(hub, tmp_path, cache_dir):
    """A warm model plus a copy of its files outside the cache, byte for byte right (so only 'outside' can tell)."""
    repo = add(hub, "whisper:esc", "test/esc", {"config.json": b'{"e": 1}\n', "model.bin": payload(501, 40_000),
                                                "sub/vocabulary.json": b'{"v": 1}\n'})
    index = write_index(tmp_path / "esc.yaml", [repo])
    assert ModelDownloader(ModelManager(index, cache_dir, endpoint=hub.endpoint)).download_model("whisper:esc").success
    outside = tmp_path / "outside"
    for name, data in repo.files.items():
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_bytes(data)
    return repo, index, repo_dir(cache_dir, repo.repo) / "snapshots" / repo.commit, outside


def _assert_refused(index: Path, cache: Path, snap: Path) -> None:
    mgr = ModelManager(index, cache)
    st = mgr.status("whisper:esc", verify="deep")
    assert st.status == "corrupt" and st.path is None
    assert any("outside" in f.detail for f in st.files), [f.detail for f in st.files]
    assert not mgr.check_model_availability("whisper:esc")
    with pytest.raises(IntegrityError):
        mgr.get_model_path("whisper:esc")
    for args in (["status", "whisper:esc"], ["path", "whisper:esc"], ["verify", "--deep", "whisper:esc"]):
        proc = run_cli(*args, "--index", str(index))
        assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (1,), "outside")
        if args[0] == "verify":  # its rows name each file and what is wrong with it
            assert "whisper:esc" in proc.stdout and "outside" in proc.stdout, proc.stdout
        else:  # the folder of a corrupt model is never handed out
            assert str(snap) not in proc.stdout and "whisper:esc" in proc.stdout + proc.stderr


def test_snapshot_file_symlinked_outside_the_cache_is_corrupt_and_repair_leaves_the_target(hub, escaped, cache_dir) -> None:
    repo, index, snap, outside = escaped
    (snap / "model.bin").unlink()
    (snap / "model.bin").symlink_to(outside / "model.bin")
    _assert_refused(index, cache_dir, snap)
    fixed = run_cli("verify", "--repair", "whisper:esc", "--index", str(index), "--endpoint", hub.endpoint)
    assert fixed.returncode == 0, fixed.stderr
    assert (outside / "model.bin").read_bytes() == repo.files["model.bin"]  # the outside file was not touched
    assert os.path.realpath(snap / "model.bin").startswith(os.path.realpath(cache_dir))
    assert ModelManager(index, cache_dir).status("whisper:esc", verify="deep").available
    STATS["escapes"]["symlink_outside_refused"] = STATS["escapes"].get("symlink_outside_refused", 0) + 1


@pytest.mark.parametrize("which", ["snapshot", "subfolder"])
def test_snapshot_folder_symlinked_outside_the_cache_is_refused(escaped, cache_dir, which) -> None:
    import shutil

    repo, index, snap, outside = escaped
    target = snap if which == "snapshot" else snap / "sub"
    shutil.rmtree(target)
    target.symlink_to(outside if which == "snapshot" else outside / "sub", target_is_directory=True)
    mgr = ModelManager(index, cache_dir)
    assert not mgr.check_model_availability("whisper:esc")
    with pytest.raises(ModelNotAvailableError):
        mgr.get_model_path("whisper:esc")


