"""refs/<branch> after a pin moves: warm points it at the pin, so huggingface_hub's own loaders offline, `hf cache
prune` and get_model_path all agree on one snapshot; --keep-refs leaves refs alone for caches shared with other pins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager, gc
from lyricsub_hub.cache import Cache
from lyricsub_hub.index import load_index
from tests.helpers import ROOT, add, payload, repo_dir, run_cli, write_index

HF = ROOT / ".venv-hf2" / "bin" / "hf"  # huggingface_hub 2.4's own cache tools, run from either environment
needs_hf = pytest.mark.skipif(not HF.exists(), reason="needs the hf 2.x command (.venv-hf2, make install-hf2)")

UPSTREAM = """
import json, sys
from huggingface_hub import hf_hub_download, snapshot_download
cache = sys.argv[1]
one = hf_hub_download("test/r", "model.bin", cache_dir=cache, local_files_only=True)  # revision "main", as loaders ask
print(json.dumps({"file": one, "snapshot": snapshot_download("test/r", cache_dir=cache, local_files_only=True)}))
"""


def upstream(cache: Path) -> dict[str, str]:
    """What huggingface_hub's own loaders read offline, in a fresh process (HF_HUB_OFFLINE is read at import)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", UPSTREAM, str(cache)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def ref(cache: Path) -> str:
    return (repo_dir(cache, "test/r") / "refs" / "main").read_text()


def warm(hub, index: Path, *extra: str) -> None:
    proc = run_cli("warm", "whisper:r", "--index", str(index), "--endpoint", hub.endpoint, "--no-load", *extra)
    assert proc.returncode == 0, proc.stderr


def hf(*args: str, hub) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint)  # hf asks {endpoint}/api/agent-harnesses when it starts
    return subprocess.run([str(HF), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def pinned(hub, tmp_path, cache_dir):
    """whisper:r warmed at its first pin; then a second commit upstream changes model.bin."""
    v1 = add(hub, "whisper:r", "test/r", {"config.json": b"{}\n", "model.bin": payload(1, 120_000)})
    index = write_index(tmp_path / "index.yaml", [v1])
    warm(hub, index)
    assert ref(cache_dir) == v1.commit
    v2 = add(hub, "whisper:r", "test/r", {"config.json": b"{}\n", "model.bin": payload(2, 120_000)})
    return v1, v2, index


def test_after_lock_update_and_warm_upstream_loaders_offline_read_the_new_pin(hub, pinned, cache_dir) -> None:
    v1, v2, index = pinned
    snap = repo_dir(cache_dir, "test/r") / "snapshots"
    assert upstream(cache_dir)["snapshot"] == str(snap / v1.commit)

    moved = run_cli("lock", "whisper:r", "--update", "--index", str(index), "--endpoint", hub.endpoint)
    assert moved.returncode == 0, moved.stderr
    assert load_index(index).models["whisper:r"].revision == v2.commit
    assert ref(cache_dir) == v1.commit  # until warm fetches the new pin, loaders keep the old, whole snapshot

    warm(hub, index)
    assert ref(cache_dir) == v2.commit
    seen = upstream(cache_dir)
    ours = ModelManager(index, cache_dir).get_model_path("whisper:r")
    assert seen["snapshot"] == str(ours) == str(snap / v2.commit)
    assert Path(seen["file"]).read_bytes() == v2.files["model.bin"]


def test_keep_refs_leaves_refs_alone_and_gc_keeps_the_revision_a_ref_names(hub, pinned, cache_dir, tmp_path) -> None:
    v1, v2, _ = pinned
    index = write_index(tmp_path / "moved.yaml", [v2])
    warm(hub, index, "--keep-refs")
    assert ref(cache_dir) == v1.commit  # another tool sharing this cache pins v1 on main: left alone
    assert ModelManager(index, cache_dir).get_model_path("whisper:r").name == v2.commit
    assert upstream(cache_dir)["snapshot"].endswith(v1.commit)

    plan = gc.plan(Cache.at(cache_dir), load_index(index).models.values())
    assert plan.removals == ()
    (skip,) = plan.skipped
    assert (skip.target, skip.hint) == (v1.commit, "lyricsub-hub warm whisper:r") and "refs/main" in skip.reason

    warm(hub, index)  # without --keep-refs: the ref follows the pin, and gc may take the old revision
    assert ref(cache_dir) == v2.commit
    report = gc.execute(gc.plan(Cache.at(cache_dir), load_index(index).models.values()), Cache.at(cache_dir))
    assert [r.target for r in report.removed] == [v1.commit] and report.freed == 120_000
    assert upstream(cache_dir)["snapshot"].endswith(v2.commit)


@needs_hf
def test_hf_cache_prune_after_a_pin_moves_keeps_the_pinned_revision(hub, pinned, cache_dir, tmp_path) -> None:
    v1, v2, _ = pinned
    index = write_index(tmp_path / "moved.yaml", [v2])
    warm(hub, index)
    dry = hf("cache", "prune", "--dry-run", "--cache-dir", str(cache_dir), hub=hub)
    assert dry.returncode == 0, dry.stderr
    done = hf("cache", "prune", "-y", "--cache-dir", str(cache_dir), hub=hub)
    assert done.returncode == 0, done.stderr
    snap = repo_dir(cache_dir, "test/r") / "snapshots"
    assert sorted(p.name for p in snap.iterdir()) == [v2.commit]  # the detached old pin went, the ref'd new one stayed
    assert ModelManager(index, cache_dir).status("whisper:r", verify="deep").available
    assert upstream(cache_dir)["snapshot"] == str(snap / v2.commit)
    listed = hf("cache", "ls", "--revisions", "--show-warnings", "--cache-dir", str(cache_dir), hub=hub)
    assert listed.returncode == 0 and v2.commit[:7] in listed.stdout + listed.stderr
    assert "warning" not in (listed.stdout + listed.stderr).lower()


@needs_hf
def test_with_keep_refs_hf_cache_prune_takes_the_detached_pin(hub, pinned, cache_dir, tmp_path) -> None:
    """The price of --keep-refs, pinned down: the pin is detached, so `hf cache prune` removes it (warm brings it back)."""
    v1, v2, _ = pinned
    index = write_index(tmp_path / "moved.yaml", [v2])
    warm(hub, index, "--keep-refs")
    assert hf("cache", "prune", "-y", "--cache-dir", str(cache_dir), hub=hub).returncode == 0
    snap = repo_dir(cache_dir, "test/r") / "snapshots"
    assert sorted(p.name for p in snap.iterdir()) == [v1.commit]
    assert ModelManager(index, cache_dir).status("whisper:r").status == "missing"
    warm(hub, index)
    assert ModelManager(index, cache_dir).status("whisper:r", verify="deep").available and ref(cache_dir) == v2.commit
