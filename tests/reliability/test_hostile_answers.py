"""Hostile Hub answers: file lists, etags and commit headers that try to name paths outside the cache."""

from __future__ import annotations

import json
import os

import pytest

from lyricsub_hub import ModelManager
from lyricsub_hub.index import load_index

from .helpers import (
    Exchange,
    Proxy,
    add,
    assert_clean_failure,
    payload,
    run_cli,
    tree_listing,
    warm_args,
    write_index,
    write_results,
)

pytestmark = pytest.mark.reliability

STATS: dict = {"hostile_lock": {"runs": 0, "refused": 0}}


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("hostile_answers", STATS)


# --- hostile Hub answers ----------------------------------------------------------------------------------------------

def _with_siblings(names: list[str]):
    def rewrite(ex: Exchange) -> None:
        if ex.method == "GET" and ex.path.startswith("/api/models/") and ex.status == 200:
            info = json.loads(ex.body)
            for name in names:
                info["siblings"].append({"rfilename": name, "size": 12, "blobId": "0" * 40,
                                         "lfs": {"sha256": "1" * 64, "size": 12, "pointerSize": 130}})
            ex.body = json.dumps(info).encode()
    return rewrite


@pytest.fixture
def deep_home(tmp_path):
    """The cache five levels down, so any '../' that escapes it lands in folders this test watches."""
    cache = tmp_path / "a" / "b" / "c" / "d" / "hub"
    state = tmp_path / "state"
    return cache, state


@pytest.mark.parametrize("family,names", [
    ("demucs", ["../../evil.yaml"]),
    ("demucs", ["/etc/passwd.yaml"]),
    ("diarize", ["../../../../../../evil/pytorch_model.bin"]),
    ("demucs", ["ok.yaml", "sub/../../../../../../evil.safetensors"]),
])
def test_lock_refuses_a_file_list_that_leaves_the_repo(hub, tmp_path, deep_home, family, names) -> None:
    cache, state = deep_home
    hub.add_repo("test/hostile", {"good.yaml": b"a: 1\n", "w.safetensors": payload(601, 3000),
                                  "pytorch_model.bin": payload(602, 2000)})
    index = tmp_path / "lock.yaml"
    index.write_text(f"version: 1\n# keep me\nmodels:\n  {family}:h:\n    repo: test/hostile\n")
    original = index.read_bytes()
    before = tree_listing(tmp_path, skip=[cache, state])
    with Proxy(hub.endpoint, _with_siblings(names)) as proxy:
        proc = run_cli("lock", f"{family}:h", "--index", str(index), "--endpoint", proxy.endpoint, "--cache-dir", str(cache),
                       env={"LYRICSUB_STATE_DIR": str(state)})
    STATS["hostile_lock"]["runs"] += 1
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), f"{family}:h", "outside the repo")
    assert index.read_bytes() == original  # nothing pinned
    assert tree_listing(tmp_path, skip=[cache, state]) == before  # nothing written outside the cache
    assert not [r for r in hub.requests if "/resolve/" in r.path and "evil" in r.path]
    assert not os.path.exists("/etc/passwd.yaml") and not os.path.exists("/evil")
    STATS["hostile_lock"]["refused"] += 1


def test_lock_ignores_hostile_names_no_pattern_wants(hub, tmp_path, deep_home) -> None:
    """`../../evil` and `/etc/passwd` match none of demucs' file patterns: they are left out, the rest is pinned."""
    cache, state = deep_home
    hub.add_repo("test/hostile", {"good.yaml": b"a: 1\n", "w.safetensors": payload(601, 3000)})
    index = tmp_path / "lock.yaml"
    index.write_text("version: 1\nmodels:\n  demucs:h:\n    repo: test/hostile\n")
    before = {k: v for k, v in tree_listing(tmp_path, skip=[cache, state]).items() if k != index.name}
    with Proxy(hub.endpoint, _with_siblings(["../../evil", "/etc/passwd"])) as proxy:
        proc = run_cli("lock", "demucs:h", "--index", str(index), "--endpoint", proxy.endpoint, "--cache-dir", str(cache),
                       env={"LYRICSUB_STATE_DIR": str(state)})
    assert proc.returncode == 0, proc.stderr
    spec = load_index(index).resolve("demucs:h")
    assert sorted(f.name for f in spec.files) == ["good.yaml", "w.safetensors"]
    assert "evil" not in index.read_text() and "passwd" not in index.read_text()
    assert {k: v for k, v in tree_listing(tmp_path, skip=[cache, state]).items() if k != index.name} == before


def _hostile_headers(header: str, value: str):
    def rewrite(ex: Exchange) -> None:
        if "/resolve/" in ex.path and ex.path.endswith("esc.yaml") and ex.status in (200, 206):
            ex.set_header(header, value)
    return rewrite


@pytest.fixture
def hostile_repo(hub, tmp_path):
    repo = add(hub, "demucs:esc", "test/hesc", {"esc.yaml": b"e: 1\n", "w.safetensors": payload(611, 20_000)})
    return repo, write_index(tmp_path / "hesc.yaml", [repo])


def test_hostile_etag_writes_nothing_outside_the_cache(hub, hostile_repo, tmp_path, cache_dir) -> None:
    repo, index = hostile_repo
    before = tree_listing(tmp_path, skip=[cache_dir, tmp_path / "state"])
    with Proxy(hub.endpoint, _hostile_headers("ETag", '"../../../../evil"')) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "demucs:esc"))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "demucs:esc", "etag")
    assert not ModelManager(index, cache_dir).check_model_availability("demucs:esc")
    assert tree_listing(tmp_path, skip=[cache_dir, tmp_path / "state"]) == before, proc.stderr


def test_hostile_commit_header_writes_nothing_outside_the_cache(hub, hostile_repo, tmp_path, cache_dir) -> None:
    repo, index = hostile_repo
    before = tree_listing(tmp_path, skip=[cache_dir, tmp_path / "state"])
    with Proxy(hub.endpoint, _hostile_headers("X-Repo-Commit", "../../../../evil")) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "demucs:esc"))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "demucs:esc")
    assert not ModelManager(index, cache_dir).check_model_availability("demucs:esc")
    assert tree_listing(tmp_path, skip=[cache_dir, tmp_path / "state"]) == before


