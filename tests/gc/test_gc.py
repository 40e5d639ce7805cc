"""gc: what a moved pin leaves behind, interrupted downloads no process runs, blobs no snapshot uses, and a size
budget; never a running download, never a repo outside the index, never a blob a staying pin names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir

from lyricsub_hub import ModelDownloader, ModelManager, gc
from lyricsub_hub.cache import Cache
from lyricsub_hub.cache.layout import lock_path
from lyricsub_hub.cache.locks import lock_held
from lyricsub_hub.index import load_index
from tests.helpers import ROOT, add, held_bytes, payload, repo_dir, run_cli, sha256, write_index

A_YAML = b"models: [w]\n"


def warm(hub, index: Path, cache: Path, *names: str, keep_refs: bool = False) -> None:
    dl = ModelDownloader(ModelManager(index, cache, endpoint=hub.endpoint), keep_refs=keep_refs)
    for name in names:
        result = dl.download_model(name)
        assert result.success, result.error
    dl.close()


def files_of(cache: Path, repo: str) -> dict[str, int]:
    """Every entry under a repo folder (links as links) with its size: what "untouched" means."""
    root = repo_dir(cache, repo)
    return {str(p.relative_to(root)): p.lstat().st_size for p in root.rglob("*") if not p.is_dir() or p.is_symlink()}


def on_disk(path: Path) -> int:
    """What a file takes on disk (its blocks): what gc counts and frees."""
    st = path.lstat()
    return min(st.st_size, st.st_blocks * 512)


def disk_bytes(cache: Path) -> int:
    """Bytes on disk of the blobs and part files of the index's repos (test/*): what gc's freed bytes must match."""
    return sum(on_disk(p) for p in cache.glob("models--test--*/blobs/*") if p.is_file() and not p.is_symlink())


def blob_bytes(cache: Path, repo: str, *contents: bytes) -> int:
    return sum(on_disk(repo_dir(cache, repo) / "blobs" / sha256(c)) for c in contents)


def spawn_warm(hub, index: Path, name: str) -> subprocess.Popen:
    args = ["warm", name, "--index", str(index), "--endpoint", hub.endpoint, "--no-load"]
    return subprocess.Popen([sys.executable, "-m", "lyricsub_hub", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def specs(index: Path) -> list:
    return list(load_index(index).models.values())


@pytest.fixture
def moved(hub, tmp_path, cache_dir):
    """demucs:a warmed at its first pin, then its weights changed upstream, the pin moved and warmed again;
    whisper:b warmed; other/x (not in the index) fetched by huggingface_hub itself at two revisions."""
    a1 = add(hub, "demucs:a", "test/a", {"a.yaml": A_YAML, "w.safetensors": payload(1, 300_000)})
    b = add(hub, "whisper:b", "test/b", {"config.json": b"{}\n", "model.bin": payload(2, 200_000)})
    index = write_index(tmp_path / "index.yaml", [a1, b], sets={"default": ["demucs:a", "whisper:b"]})
    warm(hub, index, cache_dir, "demucs:a", "whisper:b")
    for seed in (3, 4):
        rev = hub.add_repo("other/x", {"x.bin": payload(seed, 50_000)})
        hf_hub_download("other/x", "x.bin", revision=rev, cache_dir=cache_dir, endpoint=hub.endpoint)
    a2 = add(hub, "demucs:a", "test/a", {"a.yaml": A_YAML, "w.safetensors": payload(5, 300_000)})
    index = write_index(tmp_path / "index.yaml", [a2, b], sets={"default": ["demucs:a", "whisper:b"]})
    warm(hub, index, cache_dir, "demucs:a")
    return a1, a2, b, index


def test_after_a_pin_moves_gc_removes_the_old_revision_and_nothing_else(hub, moved, cache_dir) -> None:
    a1, a2, b, index = moved
    cache = Cache.at(cache_dir)
    assert a1.commit in cache.records.commits(cache.key, "test/a")
    outside = files_of(cache_dir, "other/x")
    before = disk_bytes(cache_dir)
    weights = blob_bytes(cache_dir, "test/a", a1.files["w.safetensors"])

    dry = run_cli("gc", "--dry-run", "--json", "--index", str(index))
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [(r["kind"], r["repo"], r["target"]) for r in plan["planned"]] == [("revision", "test/a", a1.commit)]
    assert plan["bytes_to_free"] == weights  # the weights; the yaml blob is shared with the new pin and stays
    assert plan["removed"] == [] and plan["bytes_freed"] == 0 and plan["dry_run"]
    assert plan["size_after"] == plan["size_before"] - weights
    assert (repo_dir(cache_dir, "test/a") / "snapshots" / a1.commit).is_dir() and disk_bytes(cache_dir) == before

    done = run_cli("gc", "--json", "--index", str(index))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["removed"] == plan["planned"] and doc["bytes_freed"] == weights and doc["skipped"] == []
    assert before - disk_bytes(cache_dir) == weights  # what it says it freed, measured
    assert not (repo_dir(cache_dir, "test/a") / "snapshots" / a1.commit).exists()
    assert (repo_dir(cache_dir, "test/a") / "refs" / "main").read_text() == a2.commit
    mgr = ModelManager(index, cache_dir)
    assert mgr.status("demucs:a", verify="deep").available and mgr.status("whisper:b", verify="deep").available
    assert files_of(cache_dir, "other/x") == outside  # both of its revisions, untouched
    assert a1.commit not in cache.records.commits(cache.key, "test/a")  # our record of the removed revision is gone
    assert {r.commit_hash for repo in scan_cache_dir(cache_dir).repos if repo.repo_id == "test/a" for r in repo.revisions} == {a2.commit}

    again = run_cli("gc", "--index", str(index))
    assert again.returncode == 0 and "freed 0 B" in again.stdout


def test_a_running_warm_keeps_its_part_file_and_lock_while_stale_parts_go(hub, moved, cache_dir, tmp_path) -> None:
    a1, a2, b, _ = moved
    big = add(hub, "demucs:a", "test/a", {"a.yaml": A_YAML, "w.safetensors": payload(6, 6_000_000)})
    index = write_index(tmp_path / "index.yaml", [big, b])  # the pin moves again
    # a download killed long ago in test/b: our part file and ranges record, and huggingface_hub's own partial file
    blobs = repo_dir(cache_dir, "test/b") / "blobs"
    dead, hf_etag = sha256(b"dead"), "0123456789abcdef0123456789abcdef01234567"
    (blobs / f"{dead}.lyricsub-part").write_bytes(b"x" * 70_000)
    (blobs / f"{dead}.lyricsub-ranges").write_bytes(b"LSHR1 0 00000000\n")
    (blobs / f"{hf_etag}.incomplete").write_bytes(b"y" * 30_000)
    lock_path(cache_dir, "test/b", dead).touch()  # its lock file stays behind, held by nobody

    running = sha256(big.files["w.safetensors"])
    hub.throttle(1_500_000)
    proc = spawn_warm(hub, index, "demucs:a")
    try:
        wait_for(lambda: held_bytes(cache_dir, "test/a") >= 1_000_000)
        assert lock_held(lock_path(cache_dir, "test/a", running)) is True

        out = run_cli("gc", "--json", "--index", str(index))  # another process, as people run it
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        removed = {(r["kind"], r["target"]): r["bytes"] for r in doc["removed"]}
        assert removed == {("part", dead): 70_017, ("part", hf_etag): 30_000}
        skipped = {(s["kind"], s["target"]): s for s in doc["skipped"]}
        assert skipped[("part", running)]["reason"] == "a running download holds its lock"
        assert "refs/main points at it" in skipped[("revision", a2.commit)]["reason"]  # upstream loaders read it meanwhile
        assert skipped[("revision", a2.commit)]["hint"] == "lyricsub-hub warm demucs:a"
        assert "a download into this repo is running" in skipped[("revision", a1.commit)]["reason"]
        assert lock_held(lock_path(cache_dir, "test/a", running)) is True  # the warm's lock survived
        assert (repo_dir(cache_dir, "test/a") / "blobs" / f"{running}.lyricsub-part").is_file()
        assert not any(blobs.glob("*.lyricsub-*")) and not any(blobs.glob("*.incomplete"))
        hub.throttle(None)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        hub.throttle(None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert ModelManager(index, cache_dir).status("demucs:a", verify="deep").available  # the warm finished whole

    after = run_cli("gc", "--json", "--index", str(index))  # the download is over and refs/main follows the pin
    doc = json.loads(after.stdout)
    assert after.returncode == 0, after.stderr
    assert sorted((r["kind"], r["target"], r["bytes"]) for r in doc["removed"]) == sorted(
        [("revision", a1.commit, 300_000), ("revision", a2.commit, 300_000)])


def test_a_repo_that_loses_every_revision_goes_whole_unless_something_new_is_in_it(hub, tmp_path, cache_dir) -> None:
    old = add(hub, "demucs:s", "test/s", {"s.yaml": b"a: 1\n", "w.safetensors": payload(40, 100_000)})
    index = write_index(tmp_path / "s.yaml", [old])
    warm(hub, index, cache_dir, "demucs:s")
    new = add(hub, "demucs:s", "test/s", {"s.yaml": b"a: 2\n", "w.safetensors": payload(41, 100_000)})
    index = write_index(tmp_path / "s.yaml", [new])
    (repo_dir(cache_dir, "test/s") / "refs" / "main").unlink()  # a tool that writes no refs filled it
    cache = Cache.at(cache_dir)
    stale = repo_dir(cache_dir, "test/s") / "blobs" / f"{sha256(b'stale')}.lyricsub-part"
    stale.write_bytes(b"p" * 1000)
    report = gc.execute(gc.plan(cache, specs(index)), cache)
    assert sorted(r.kind for r in report.removed) == ["part", "revision"] and report.freed == 101_005
    assert not repo_dir(cache_dir, "test/s").exists()  # nothing left in it: the folder went, as `hf cache rm` does

    warm(hub, index, cache_dir, "demucs:s")
    (repo_dir(cache_dir, "test/s") / "refs" / "main").unlink()
    index = write_index(tmp_path / "s.yaml", [old])  # back to the old pin, whose download is still to come
    kept = repo_dir(cache_dir, "test/s") / "blobs" / ".lyricsub-import-3f2a.tmp"  # a bundle import at work
    kept.write_bytes(b"k")
    report = gc.execute(gc.plan(cache, specs(index)), cache)
    assert [r.target for r in report.removed] == [new.commit]
    assert (repo_dir(cache_dir, "test/s") / "snapshots").is_dir() and kept.is_file()  # huggingface_hub would rmtree it


@pytest.fixture
def three(hub, tmp_path, cache_dir):
    """Three 100 kB models used three, two and one days ago, and a repo outside the index used ten days ago."""
    repos = [add(hub, f"demucs:m{i}", f"test/m{i}", {f"m{i}.yaml": b"a: 1\n", "w.safetensors": payload(10 + i, 100_000)})
             for i in (1, 2, 3)]
    index = write_index(tmp_path / "i.yaml", repos, sets={"first": ["demucs:m1"], "all": [r.model for r in repos]})
    warm(hub, index, cache_dir, *[r.model for r in repos])
    rev = hub.add_repo("other/old", {"o.bin": payload(9, 100_000)})
    hf_hub_download("other/old", "o.bin", revision=rev, cache_dir=cache_dir, endpoint=hub.endpoint)
    now = time.time()
    for age, repo in ((3, "test/m1"), (2, "test/m2"), (1, "test/m3"), (10, "other/old")):
        for blob in (repo_dir(cache_dir, repo) / "blobs").iterdir():
            os.utime(blob, (now - age * 86400, blob.stat().st_mtime))
    return repos, index


def test_max_size_removes_the_least_recently_used_models_until_the_cache_fits(three, cache_dir) -> None:
    repos, index = three
    outside = files_of(cache_dir, "other/old")
    total = disk_bytes(cache_dir)
    budget = total - 50_000  # one model has to go
    m1, m2 = (sum(on_disk(p) for p in (repo_dir(cache_dir, r) / "blobs").iterdir()) for r in ("test/m1", "test/m2"))

    plan = gc.plan(Cache.at(cache_dir), specs(index), max_size=budget)
    assert [(r.kind, r.models) for r in plan.removals] == [("model", ("demucs:m1",))]  # oldest in the index
    assert plan.removals[0].size == m1 and plan.fits and plan.size_before == total  # other/old counts for nothing

    kept = run_cli("gc", "--max-size", str(budget), "--keep-set", "first", "--json", "--index", str(index))
    doc = json.loads(kept.stdout)
    assert kept.returncode == 0, kept.stderr
    assert [(m["name"], m["removed"]) for m in doc["models"]] == [("demucs:m2", True)]  # m1 is in the keep set
    assert doc["fits"] and doc["keep"] == ["demucs:m1"] and doc["bytes_freed"] == m2
    assert total - disk_bytes(cache_dir) == m2
    mgr = ModelManager(index, cache_dir)
    assert [mgr.status(r.model).status for r in repos] == ["available", "missing", "available"]
    assert files_of(cache_dir, "other/old") == outside  # older than all of them, and never touched

    tight = run_cli("gc", "--max-size", "50k", "--keep-set", "first", "--index", str(index))
    assert tight.returncode == 4  # it cannot fit without what it must keep
    assert "over --max-size" in tight.stderr and "Traceback" not in tight.stderr
    assert [mgr.status(r.model).status for r in repos] == ["available", "missing", "missing"]
    assert files_of(cache_dir, "other/old") == outside

    bad = run_cli("gc", "--max-size", "lots", "--index", str(index))
    assert bad.returncode == 2 and "--max-size" in bad.stderr
    assert run_cli("gc", "--keep-set", "nope", "--index", str(index)).returncode == 2


def test_two_models_of_one_repo_share_blobs_and_the_budget_counts_that(hub, tmp_path, cache_dir) -> None:
    """Two index models pin one repo at two commits that share blobs: evicting one frees only its own bytes."""
    shared = payload(20, 200_000)
    v1 = add(hub, "whisper:v1", "test/w", {"config.json": b"{}\n", "model.bin": shared, "extra.bin": payload(21, 50_000)})
    v2 = add(hub, "whisper:v2", "test/w", {"config.json": b"{}\n", "model.bin": shared, "extra.bin": payload(22, 80_000)})
    index = write_index(tmp_path / "w.yaml", [v1, v2])
    warm(hub, index, cache_dir, "whisper:v1", "whisper:v2")
    cache = Cache.at(cache_dir)
    assert gc.plan(cache, specs(index)).removals == ()  # both revisions are pinned
    blobs = repo_dir(cache_dir, "test/w") / "blobs"
    now = time.time()
    for blob in blobs.iterdir():
        os.utime(blob, (now - 86400 * 5, now))
    os.utime(blobs / sha256(v2.files["extra.bin"]), (now, now))  # v2 was used today, v1 five days ago
    total = disk_bytes(cache_dir)
    extra = blob_bytes(cache_dir, "test/w", v1.files["extra.bin"])
    report = gc.execute(gc.plan(cache, specs(index), max_size=total - 1), cache)
    assert [r.models for r in report.removed] == [("whisper:v1",)] and report.freed == extra
    assert total - disk_bytes(cache_dir) == extra
    assert ModelManager(index, cache_dir).status("whisper:v2", verify="deep").available


def test_blobs_no_snapshot_uses_go_but_not_fresh_ones_nor_pinned_ones(hub, moved, cache_dir) -> None:
    _a1, a2, _b, index = moved
    blobs = repo_dir(cache_dir, "test/a") / "blobs"
    orphan = blobs / sha256(b"orphan")
    orphan.write_bytes(payload(30, 40_000))
    weights = sha256(a2.files["w.safetensors"])
    (repo_dir(cache_dir, "test/a") / "snapshots" / a2.commit / "w.safetensors").unlink()  # a pinned blob, unlinked
    cache = Cache.at(cache_dir)

    fresh = gc.plan(cache, specs(index))
    assert [(s.kind, s.target) for s in fresh.skipped if s.kind == "blob"] == [("blob", orphan.name)]  # too new to judge
    plan = gc.plan(cache, specs(index), grace=0)
    assert [(r.kind, r.target, r.size) for r in plan.removals if r.kind == "blob"] == [("blob", orphan.name, 40_000)]
    report = gc.execute(plan, cache, grace=0)
    assert not orphan.exists() and (blobs / weights).is_file() and report.freed == 300_000 + 40_000

    hub.clear_log()
    warm(hub, index, cache_dir, "demucs:a")  # the pinned bytes were kept: linked again, not fetched
    assert hub.count(method="GET") == 0 and ModelManager(index, cache_dir).status("demucs:a", verify="deep").available


def test_a_stale_revision_whose_link_leaves_the_cache_is_refused(hub, moved, cache_dir, tmp_path) -> None:
    a1, _a2, _b, index = moved
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    snap = repo_dir(cache_dir, "test/a") / "snapshots" / a1.commit
    os.symlink(victim, snap / "planted.bin")
    proc = run_cli("gc", "--index", str(index))
    assert proc.returncode == 1 and "leave the cache" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_bytes() == b"precious" and snap.is_dir()
