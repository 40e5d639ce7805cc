"""Bundles: export models into one tar (zstd when asked), import them into an empty cache with no network at all.

Caches are filled by ModelDownloader from the test Hub (small files named by git id, large ones by sha256, as a
real warm leaves them); imports run the real command, the decisive one in a process that cannot open a socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir, try_to_load_from_cache

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.bundles.bundle import MANIFEST, Manifest, export_bundle, import_bundle, plan_export
from lyricsub_hub.cli import main
from tests.helpers import ROOT, add, payload, repo_dir, run_cli, write_index

MODELS = ["demucs:tiny", "whisper:tiny"]


def warm(index: Path, cache: Path, hub, names=MODELS) -> None:
    results = ModelDownloader(ModelManager(index, cache, endpoint=hub.endpoint)).download_models(list(names))
    assert all(r.success for r in results), [r.error for r in results]


def layout(cache: Path, repos: list[str]) -> dict[str, str]:
    """Every entry of these repo folders: a link's target, a file's bytes' size, refs' contents (no temp files)."""
    out = {}
    for repo in repos:
        root = repo_dir(cache, repo)
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(cache).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_text() if "/refs/" in rel else f"{path.stat().st_size} bytes"
    return out


def members(bundle: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(bundle) as tar:  # the standard library reads it, compressed or not
        return tar.getmembers()


@pytest.fixture
def warmed(hub, small_repos, index_file, cache_dir) -> Path:
    warm(index_file, cache_dir, hub)
    return cache_dir


IMPORT_WITHOUT_NETWORK = textwrap.dedent("""
    import json, sys
    from lyricsub_hub.testing.netguard import no_network
    with no_network(loopback=False) as guard:   # every connect and name lookup refused and counted, loopback too
        from lyricsub_hub.cli import main
        code = main(sys.argv[1:])
    print(json.dumps({"code": code, "attempts": [list(map(str, a)) for a in guard.attempts]}))
""")


def test_round_trip_into_an_empty_cache_in_a_process_that_cannot_open_sockets(warmed, small_repos, index_file, tmp_path) -> None:
    bundle = tmp_path / "models.tar"
    assert main(["export", *MODELS, "-o", str(bundle), "--index", str(index_file)]) == 0
    names = [m.name for m in members(bundle)]
    assert names[0] == MANIFEST and not any(n.endswith(".tmp") for n in names)
    target, state = tmp_path / "air-gapped" / "hub", tmp_path / "air-gapped" / "state"
    proc = subprocess.run([sys.executable, "-c", IMPORT_WITHOUT_NETWORK, "import", str(bundle), "--index", str(index_file),
                           "--cache-dir", str(target)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "LYRICSUB_STATE_DIR": str(state), "HF_HUB_OFFLINE": "1"})
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "attempts": []}, proc.stderr
    assert "imported" in proc.stdout and proc.stderr == ""
    repos = [r.repo for r in small_repos]
    assert layout(target, repos) == layout(warmed, repos)  # the same blobs, links and refs as the warmed cache
    mgr = ModelManager(index_file, target, state_dir=state)
    for repo in small_repos:
        st = mgr.status(repo.model)
        assert st.available and {f.checked for f in st.files} == {"record"}  # the import's own records: no re-hash
        assert mgr.get_model_path(repo.model) == repo_dir(target, repo.repo) / "snapshots" / repo.commit
        for name, data in repo.files.items():
            assert (st.path / name).read_bytes() == data
            # huggingface_hub's own offline look-up finds it: refs/main -> the pinned snapshot
            assert try_to_load_from_cache(repo.repo, name, cache_dir=target) == str(st.path / name)
    assert not list(target.rglob(".lyricsub-import-*"))
    scan = scan_cache_dir(target)
    assert {r.repo_id for r in scan.repos} == set(repos) and not scan.warnings


def test_zstd_bundle_through_stdin_and_a_pipe_between_two_processes(warmed, small_repos, index_file, tmp_path) -> None:
    bundle = tmp_path / "models.tar.zst"
    assert main(["export", "--set", "default", "-o", str(bundle), "--index", str(index_file)]) == 0
    assert bundle.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    with open(bundle, "rb") as fh:
        done = run_cli("import", "-", "--index", str(index_file), "--cache-dir", str(tmp_path / "a"), stdin=fh)
    assert done.returncode == 0, done.stderr
    # ssh host lyricsub-hub export ... -o - | lyricsub-hub import -
    env = {**os.environ, "LYRICSUB_STATE_DIR": str(tmp_path / "state-b")}
    exporter = subprocess.Popen([sys.executable, "-m", "lyricsub_hub", "export", *MODELS, "-o", "-", "--index",
                                 str(index_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    importer = subprocess.run([sys.executable, "-m", "lyricsub_hub", "import", "-", "--index", str(index_file),
                               "--cache-dir", str(tmp_path / "b")], stdin=exporter.stdout, capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=120)
    exporter.stdout.close()
    assert exporter.wait(timeout=60) == 0 and exporter.stderr.read() == b""
    assert importer.returncode == 0, importer.stderr
    for cache, state in ((tmp_path / "a", None), (tmp_path / "b", tmp_path / "state-b")):
        mgr = ModelManager(index_file, cache, state_dir=state)
        assert all(mgr.status(n).available for n in MODELS)


def test_importing_what_is_there_changes_nothing(warmed, small_repos, index_file, tmp_path, capsys) -> None:
    bundle = tmp_path / "b.tar"
    assert main(["export", *MODELS, "-o", str(bundle), "--index", str(index_file)]) == 0
    assert main(["import", str(bundle), "--index", str(index_file), "--cache-dir", str(tmp_path / "c")]) == 0
    before = {p: (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in (tmp_path / "c").rglob("*")}
    capsys.readouterr()
    assert main(["--json", "import", str(bundle), "--index", str(index_file), "--cache-dir", str(tmp_path / "c")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["import"], m["status"]) for m in doc["models"]] == [
        ("demucs:tiny", "present", "available"), ("whisper:tiny", "present", "available")]
    assert {p: (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in (tmp_path / "c").rglob("*")} == before


def test_export_is_all_or_nothing(hub, small_repos, index_file, cache_dir, tmp_path, capsys) -> None:
    warm(index_file, cache_dir, hub, ["demucs:tiny"])
    bundle = tmp_path / "b.tar"
    assert main(["export", *MODELS, "-o", str(bundle), "--index", str(index_file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lyricsub-hub: whisper:tiny: not in the cache (run: lyricsub-hub warm whisper:tiny)"]
    assert list(tmp_path.glob("b.tar*")) == [] and list(tmp_path.glob(".b.tar*")) == []
    capsys.readouterr()
    assert main(["export", "-o", str(bundle), "--index", str(index_file)]) == 1  # no model named: the default set
    assert "whisper:tiny: not in the cache" in capsys.readouterr().err and not bundle.exists()


def _flip(path: Path, offset: int = 1000) -> None:
    with open(path.resolve(), "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 1]))


def test_export_refuses_bytes_that_no_longer_hash_and_keeps_no_bundle(warmed, small_repos, index_file, tmp_path,
                                                                      capsys) -> None:
    from lyricsub_hub.bundles.bundle import export_file
    from lyricsub_hub.errors import BundleError

    entry = repo_dir(warmed, small_repos[1].repo) / "snapshots" / small_repos[1].commit / "model.bin"
    mgr = ModelManager(index_file, warmed)
    plan = plan_export(mgr.cache, [mgr.spec(n) for n in MODELS])  # verified here...
    _flip(entry)  # ...and changed before its bytes are read
    with pytest.raises(BundleError) as caught:
        export_file(plan, tmp_path / "b.tar")
    assert str(caught.value).startswith("whisper:tiny: model.bin hashes to ") and "verify --repair" in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".b.tar", "b.tar"))]  # no bundle, no temp file
    code = main(["export", *MODELS, "-o", str(tmp_path / "b.tar"), "--index", str(index_file)])
    err = capsys.readouterr().err.strip().splitlines()  # the command sees it when it plans (ctime moved)
    assert code == 1 and len(err) == 1 and err[0].startswith("lyricsub-hub: whisper:tiny: corrupt in the cache: model.bin")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".b.tar", "b.tar"))]


def test_blobs_go_once_and_a_plain_tar_reads_the_layout(hub, tmp_path, cache_dir) -> None:
    shared = payload(7, 200_000)
    a = add(hub, "demucs:one", "test/one", {"one.yaml": b"models: ['w']\n", "w.th": shared})
    b = add(hub, "whisper:two", "test/two", {"config.json": b"{}\n", "model.bin": shared, "copy.bin": shared})
    index = write_index(tmp_path / "i.yaml", [a, b])
    warm(index, cache_dir, hub, ["demucs:one", "whisper:two"])
    bundle = tmp_path / "b.tar"
    assert main(["export", "demucs:one", "whisper:two", "-o", str(bundle), "--index", str(index)]) == 0
    infos = members(bundle)
    data = [m for m in infos if m.isfile() and m.size == len(shared)]
    assert len(data) == 1  # one copy of the bytes in the whole bundle
    links = [m for m in infos if m.islnk()]
    assert [m.name for m in links] == [f"models--test--two/blobs/{b.spec().files[1].sha256}"]
    with tarfile.open(bundle) as tar:
        manifest = Manifest.parse(tar.extractfile(MANIFEST).read())
    assert [m.name for m in manifest.models] == ["demucs:one", "whisper:two"]
    assert manifest.models[1].files[1].blob == manifest.models[1].files[2].blob
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["tar", "-xf", str(bundle), "-C", str(plain)], check=True)
    assert (plain / "models--test--two" / "snapshots" / b.commit / "copy.bin").read_bytes() == shared
    target = tmp_path / "imported"
    assert main(["import", str(bundle), "--index", str(index), "--cache-dir", str(target)]) == 0
    mgr = ModelManager(index, target)
    assert mgr.status("whisper:two").available and mgr.status("demucs:one").available
    assert layout(target, ["test/one", "test/two"]) == layout(cache_dir, ["test/one", "test/two"])


def test_a_partial_model_takes_only_what_it_lacks(warmed, small_repos, index_file, tmp_path) -> None:
    bundle = tmp_path / "b.tar"
    assert main(["export", *MODELS, "-o", str(bundle), "--index", str(index_file)]) == 0
    target = tmp_path / "t"
    assert main(["import", str(bundle), "--index", str(index_file), "--cache-dir", str(target)]) == 0
    snap = repo_dir(target, small_repos[1].repo) / "snapshots" / small_repos[1].commit
    kept = (snap / "config.json").resolve()
    kept_ino = kept.stat().st_ino
    (snap / "model.bin").unlink()
    mgr = ModelManager(index_file, target)
    assert mgr.status("whisper:tiny").status == "partial"
    with open(bundle, "rb") as fh:
        report = import_bundle(mgr.cache, mgr.index, fh)
    assert [(m.name, m.state, m.files) for m in report.models] == [("demucs:tiny", "present", 0), ("whisper:tiny", "imported", 1)]
    assert kept.stat().st_ino == kept_ino and mgr.status("whisper:tiny", verify="deep").available


def test_export_memory_stays_flat_in_file_size(hub, tmp_path, cache_dir) -> None:
    big = add(hub, "demucs:big", "test/big", {"big.yaml": b"models: ['w']\n", "w.th": payload(9, 48 << 20)})
    index = write_index(tmp_path / "i.yaml", [big])
    warm(index, cache_dir, hub, ["demucs:big"])
    mgr = ModelManager(index, cache_dir)
    plan = plan_export(mgr.cache, [mgr.spec("demucs:big")])
    tracemalloc.start()
    try:
        with open(tmp_path / "b.tar", "wb", buffering=0) as out:
            report = export_bundle(plan, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.payload_bytes > 48 << 20 and peak < 12 << 20, peak  # one 4 MiB buffer, not the file
    other = ModelManager(index, tmp_path / "t")
    tracemalloc.start()
    try:
        with open(tmp_path / "b.tar", "rb", buffering=0) as fh:
            assert import_bundle(other.cache, other.index, fh).ok
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, peak


def test_cli_refusals_are_one_line(warmed, index_file, tmp_path) -> None:
    done = run_cli("--json", "export", *MODELS, "-o", "-", "--index", str(index_file))
    assert done.returncode == 2 and json.loads(done.stdout)["errors"][0]["code"] == "usage"
    done = run_cli("import", str(tmp_path / "nope.tar"), "--index", str(index_file))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "cannot read the bundle" in done.stderr
    done = run_cli("export", *MODELS, "-o", str(tmp_path / "no-such-dir" / "b.tar"), "--index", str(index_file))
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot write the bundle" in done.stderr


def test_shared_bytes_of_a_model_already_in_the_cache_serve_the_other_repo(hub, tmp_path, cache_dir) -> None:
    shared = payload(8, 150_000)
    a = add(hub, "demucs:one", "test/one", {"one.yaml": b"models: ['w']\n", "w.th": shared})
    b = add(hub, "whisper:two", "test/two", {"config.json": b"{}\n", "model.bin": shared})
    index = write_index(tmp_path / "i.yaml", [a, b])
    warm(index, cache_dir, hub, ["demucs:one", "whisper:two"])
    bundle = tmp_path / "b.tar"
    assert main(["export", "demucs:one", "whisper:two", "-o", str(bundle), "--index", str(index)]) == 0
    target = tmp_path / "t"
    warm(index, target, hub, ["demucs:one"])  # the bytes the hard-link member points at are already there
    mgr = ModelManager(index, target)
    with open(bundle, "rb") as fh:
        report = import_bundle(mgr.cache, mgr.index, fh)
    assert [(m.name, m.state) for m in report.models] == [("demucs:one", "present"), ("whisper:two", "imported")]
    assert mgr.status("whisper:two", verify="deep").available


def test_long_nested_names_round_trip(hub, tmp_path, cache_dir) -> None:
    deep = "/".join(["folder-with-a-long-name"] * 8) + "/tokenizer_config.json"  # member names and links past 100 chars
    repo = add(hub, "whisper:deep", "a-rather-long-organisation-name/deep-model-repo", {"config.json": b"{}\n", deep: b'{"t": 1}\n',
                                                                             "model.bin": payload(9, 2000)})
    index = write_index(tmp_path / "i.yaml", [repo])
    warm(index, cache_dir, hub, ["whisper:deep"])
    bundle = tmp_path / "b.tar.zst"
    assert main(["export", "whisper:deep", "-o", str(bundle), "--index", str(index)]) == 0
    assert main(["import", str(bundle), "--index", str(index), "--cache-dir", str(tmp_path / "t")]) == 0
    path = ModelManager(index, tmp_path / "t").get_model_path("whisper:deep")
    assert (path / deep).read_bytes() == b'{"t": 1}\n' and os.readlink(path / deep).startswith("../" * 10)


def test_export_into_a_pipe_that_closes_early_is_one_line(warmed, index_file, tmp_path) -> None:
    exporter = subprocess.Popen([sys.executable, "-m", "lyricsub_hub", "export", *MODELS, "-o", "-", "--index",
                                 str(index_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=False)
    exporter.stdout.read(1000)
    exporter.stdout.close()  # the reader goes away mid-bundle
    err = exporter.stderr.read().decode()
    assert exporter.wait(timeout=60) == 1, err
    assert err.count("\n") == 1 and "went away" in err and "Traceback" not in err


def test_export_copies_what_records_vouch_for_without_hashing(warmed, index_file, tmp_path) -> None:
    """As `verify` and the warm path trust a verification record while a file's stat still matches it, export copies
    such files unhashed (the kernel copies them); the import on the other side still hashes every byte."""
    from lyricsub_hub.bundles.bundle import export_file

    mgr = ModelManager(index_file, warmed)
    report = export_file(plan_export(mgr.cache, [mgr.spec(n) for n in MODELS]), tmp_path / "b.tar")
    assert report.payload_bytes > 0
    assert report.hashed == 0
    other = tmp_path / "other"
    done = run_cli("import", str(tmp_path / "b.tar"), "--index", str(index_file), "--cache-dir", str(other))
    assert done.returncode == 0, done.stderr
    assert all(ModelManager(index_file, other).status(n, verify="deep").available for n in MODELS)


def test_export_deep_hashes_every_byte(warmed, index_file, tmp_path) -> None:
    from lyricsub_hub.bundles.bundle import export_file

    mgr = ModelManager(index_file, warmed)
    report = export_file(plan_export(mgr.cache, [mgr.spec(n) for n in MODELS], deep=True), tmp_path / "b.tar")
    assert report.hashed == report.payload_bytes


def test_a_file_changed_since_its_record_is_hashed_on_export(warmed, small_repos, index_file, tmp_path) -> None:
    """A touch after planning moves the file's ctime: its record no longer vouches for it, so its bytes are hashed."""
    from lyricsub_hub.bundles.bundle import export_file

    entry = repo_dir(warmed, small_repos[1].repo) / "snapshots" / small_repos[1].commit / "model.bin"
    mgr = ModelManager(index_file, warmed)
    plan = plan_export(mgr.cache, [mgr.spec(n) for n in MODELS])
    os.utime(entry)
    report = export_file(plan, tmp_path / "b.tar")
    assert report.hashed == entry.stat().st_size


def _many_files(hub, tmp_path, cache_dir, n: int = 24) -> tuple[Path, Path]:
    """A model of n weight files, warmed and exported to a plain bundle file: (index, bundle)."""
    files = {"many.yaml": b"models: ['w']\n", **{f"w{i:02d}.th": payload(i, 70_000) for i in range(n)}}
    index = write_index(tmp_path / "i.yaml", [add(hub, "demucs:many", "test/many", files)])
    warm(index, cache_dir, hub, ["demucs:many"])
    bundle = tmp_path / "b.tar"
    assert main(["export", "demucs:many", "-o", str(bundle), "--index", str(index)]) == 0
    return index, bundle


def test_a_bundle_file_is_carried_on_helper_threads_with_few_blobs_at_once(hub, tmp_path, cache_dir, mocker) -> None:
    """The blobs of a plain bundle file are read, hashed and written on helper threads; the reader never runs more
    than a few ahead of them (each holds a temp file open: a bundle of thousands of files must not run out)."""
    import time

    from lyricsub_hub.bundles import bundle as bundle_mod

    index, bundle = _many_files(hub, tmp_path, cache_dir)
    real_carry = bundle_mod.carry

    def slow_carry(*args, **kwargs):  # helpers slower than the reader: without a bound every blob would be in flight
        time.sleep(0.02)
        return real_carry(*args, **kwargs)

    mocker.patch.object(bundle_mod, "carry", slow_carry)
    ahead: list[int] = []
    real_hand = bundle_mod._Importer._hand

    def hand(self, *args, **kwargs):
        real_hand(self, *args, **kwargs)
        ahead.append(len(self.hashing))

    mocker.patch.object(bundle_mod._Importer, "_hand", hand)
    mgr = ModelManager(index, tmp_path / "t")
    with open(bundle, "rb", buffering=0) as fh:
        report = import_bundle(mgr.cache, mgr.index, fh)
    assert [(m.name, m.state) for m in report.models] == [("demucs:many", "imported")]
    assert len(ahead) == 24 + 1  # every blob went through a helper
    assert max(ahead) <= bundle_mod.IN_FLIGHT * min(4, os.cpu_count() or 1)
    assert mgr.status("demucs:many", verify="deep").available


def test_an_interrupted_import_of_a_bundle_file_leaves_no_temp_file_and_no_thread(hub, tmp_path, cache_dir, mocker) -> None:
    """Ctrl-C while helpers carry blobs: they stop, their temp files go, the model is not half placed."""
    import threading

    from lyricsub_hub.bundles import bundle as bundle_mod
    from lyricsub_hub.cache.layout import IMPORT_PREFIX

    index, bundle = _many_files(hub, tmp_path, cache_dir)
    real_hand = bundle_mod._Importer._hand
    calls = []

    def hand(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        real_hand(self, *args, **kwargs)

    mocker.patch.object(bundle_mod._Importer, "_hand", hand)
    target = tmp_path / "t"
    mgr = ModelManager(index, target)
    with open(bundle, "rb", buffering=0) as fh, pytest.raises(KeyboardInterrupt):
        import_bundle(mgr.cache, mgr.index, fh)
    assert [p.name for p in target.rglob(f"{IMPORT_PREFIX}*")] == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("lyricsub-import")] == []
    assert not mgr.status("demucs:many").available
    assert not list(target.rglob("snapshots/*/*"))
