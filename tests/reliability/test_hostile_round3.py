"""Hostile input, round 3 (issue 20): gc through planted links, sparse giants, FIFOs, planted ranges records, bundle
floods and manifests, absurd values, terminal escapes. One section per finding, numbered as in the issue.

Files another user of a shared cache plants are chowned to another uid where the machine allows it (root). Every
command runs with a timeout, so a hang is a failure, not a stuck suite. With LYRICSUB_CLI_PYTHONPATH pointing at an
older checkout, the command-line tests run that checkout's command: that is how each was shown to fail before its fix.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.cache.layout import PART_SUFFIX, RANGES_SUFFIX

from .helpers import (
    Exchange,
    Proxy,
    add,
    assert_clean_failure,
    blobs_dir,
    error_lines,
    payload,
    repo_dir,
    run_cli,
    sha256,
    tree_listing,
    warm_args,
    write_index,
    write_results,
)

pytestmark = pytest.mark.reliability

STATS: dict = {"findings": {}, "tests": 0}
OTHER_UID = 12345  # "another user of the cache"
HANG = 30  # seconds: a command that takes longer is taken to hang


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("hostile_round3", STATS)


def _count(finding: str) -> None:
    STATS["findings"][finding] = STATS["findings"].get(finding, 0) + 1
    STATS["tests"] += 1


def _theirs(*paths: Path) -> None:
    """Give paths (not following links) to another uid, where this process may."""
    if os.geteuid() != 0:
        return
    for path in paths:
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)


def _warm(hub, index: Path, cache: Path, *names: str) -> None:
    mgr = ModelManager(index, cache, endpoint=hub.endpoint)
    dl = ModelDownloader(mgr)
    try:
        for result in dl.download_models(list(names)):
            assert result.success, result.error
    finally:
        dl.close()


@pytest.fixture
def one(hub, tmp_path, cache_dir):
    """demucs:r3 warmed into the cache (a weight file and its yaml)."""
    repo = add(hub, "demucs:r3", "test/r3", {"r3.yaml": b"models: ['w']\n", "w.safetensors": payload(301, 60_000)})
    index = write_index(tmp_path / "r3.yaml", [repo])
    _warm(hub, index, cache_dir, "demucs:r3")
    return repo, index


# --- 1. gc and warm never follow a repo folder, or its snapshots folder, planted as a link -------------------------

def _victim(root: Path, commit: str) -> tuple[Path, Path]:
    """A victim's private HF cache repo (with a revision at the index's commit) and a folder of projects."""
    repo = root / "victim-hf" / "models--test--r3"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / ("b" * 40)).mkdir()
    (repo / "snapshots" / ("b" * 40) / "notes.txt").write_text("theirs\n")
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    projects = root / "victim-projects"
    for name in ("thesis", "photos"):
        (projects / name).mkdir(parents=True)
        (projects / name / "keep.txt").write_text(f"{name}\n")
    for dirpath, dirnames, filenames in os.walk(root):
        _theirs(Path(dirpath), *(Path(dirpath) / n for n in dirnames + filenames))
    return repo, projects


@pytest.mark.parametrize("planted", ["repo-folder", "snapshots-folder"])
def test_1_gc_and_warm_refuse_a_repo_whose_folders_are_links(hub, one, tmp_path, cache_dir, planted) -> None:
    repo, index = one
    victim_repo, projects = _victim(tmp_path / "victim", repo.commit)
    folder = repo_dir(cache_dir, repo.repo)
    if planted == "repo-folder":
        os.rename(folder, tmp_path / "moved-away")
        folder.symlink_to(victim_repo)
    else:
        os.rename(folder / "snapshots", tmp_path / "moved-away")
        (folder / "snapshots").symlink_to(projects)
    before = tree_listing(tmp_path / "victim")
    proc = run_cli("gc", "--index", str(index), "--cache-dir", str(cache_dir), timeout=HANG)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (1,), "test/r3", "symbolic link")
    assert tree_listing(tmp_path / "victim") == before  # no victim folder taken for a stale revision
    warm = run_cli(*warm_args(hub.endpoint, index, "demucs:r3", cache_dir=cache_dir), timeout=HANG)
    assert_clean_failure(warm.returncode, warm.stdout, warm.stderr, (1,), "demucs:r3", "symbolic link")
    assert tree_listing(tmp_path / "victim") == before  # no file, no refs/main written into the victim's folder
    base = ["--index", str(index), "--cache-dir", str(cache_dir)]
    status = run_cli("status", "demucs:r3", *base, timeout=HANG)
    assert_clean_failure(status.returncode, status.stdout, status.stderr, (1,), "demucs:r3", "symbolic link")
    doctor = run_cli("doctor", "demucs:r3", "--offline", *base, timeout=HANG)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr[-2000:]
    assert "symbolic link" in doctor.stdout  # a finding among the others, not the end of the report
    _count("1-planted-repo-links")


# --- 2. gc's budget: blocks on disk, the index's repos only ---------------------------------------------------------

def test_2_a_sparse_giant_in_another_repo_evicts_nothing(hub, one, tmp_path, cache_dir) -> None:
    repo, index = one
    giant = repo_dir(cache_dir, "someone/giant")
    blob = giant / "blobs" / ("c" * 64)
    snap = giant / "snapshots" / ("d" * 40)
    blob.parent.mkdir(parents=True)
    snap.mkdir(parents=True)
    blob.touch()
    os.truncate(blob, 8 << 40)  # 8 TiB that hold no block
    (snap / "huge.bin").symlink_to(f"../../blobs/{'c' * 64}")
    (giant / "refs").mkdir()
    (giant / "refs" / "main").write_text("d" * 40)
    proc = run_cli("gc", "--max-size", "10G", "--json", "--index", str(index), "--cache-dir", str(cache_dir),
                   timeout=HANG)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["fits"] and doc["size_before"] < 10**9 and doc["removed"] == []
    assert ModelManager(index, cache_dir).status("demucs:r3", verify="deep").available
    assert blob.stat().st_size == 8 << 40  # and the other repo is not touched either
    _count("2-sparse-giant")


# --- 3. a flood of stray members costs neither memory nor time ------------------------------------------------------

def _bundle(hub, small_repos, index_file, cache_dir, tmp_path) -> bytes:
    from lyricsub_hub.cli import main

    _warm(hub, index_file, cache_dir, "demucs:tiny", "whisper:tiny")
    path = tmp_path / "true.tar"
    assert main(["export", "demucs:tiny", "whisper:tiny", "-o", str(path), "--index", str(index_file)]) == 0
    return path.read_bytes()


def _body(raw: bytes) -> bytes:
    """A tar stream without its end-of-archive blocks (members may be appended)."""
    pos = 0
    while raw[pos:pos + 512] != bytes(512):
        info = tarfile.TarInfo.frombuf(raw[pos:pos + 512], "utf-8", "surrogateescape")
        pos += 512 + -(-info.size // 512) * 512
    return raw[:pos]


def _import_peak(bundle: bytes, index_file: Path, cache: Path) -> tuple[int, float, object]:
    from lyricsub_hub.bundles.bundle import import_bundle
    from lyricsub_hub.cache import Cache
    from lyricsub_hub.index import load_index

    index = load_index(index_file)
    tracemalloc.start()
    started = time.monotonic()
    try:
        report = import_bundle(Cache.at(cache), index, io.BytesIO(bundle))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, time.monotonic() - started, report


def test_3_a_flood_of_identical_stray_members_is_bounded(hub, small_repos, index_file, cache_dir, tmp_path) -> None:
    body = _body(_bundle(hub, small_repos, index_file, cache_dir, tmp_path))
    stray = tarfile.TarInfo("junk/" + "x" * 60).tobuf(tarfile.USTAR_FORMAT)  # one header, no data: 512 bytes
    peaks = {}
    for n in (2_000, 200_000):
        target = tmp_path / f"cache-{n}"
        peaks[n], seconds, report = _import_peak(body + stray * n + bytes(1024), index_file, target)
        STATS.setdefault("flood", {})[n] = {"peak_bytes": peaks[n], "seconds": round(seconds, 3)}
        assert [m.state for m in report.models] == ["imported", "imported"]  # the models still come in
        assert len(report.problems) == 1 and "refused" in report.problems[0].message
        assert seconds < 20
    assert peaks[200_000] - peaks[2_000] < 1 << 20, peaks  # not ~100 bytes per member
    _count("3-bundle-flood")


# --- 4. FIFOs planted in the cache never hang a command -------------------------------------------------------------

def test_4_fifos_as_ranges_record_lock_and_ref_hang_nothing(hub, small_repos, index_file, cache_dir) -> None:
    _warm(hub, index_file, cache_dir, "demucs:tiny")
    whisper = small_repos[1]
    sha = sha256(whisper.files["model.bin"])
    blobs = blobs_dir(cache_dir, whisper.repo)
    blobs.mkdir(parents=True)
    locks = cache_dir / ".locks" / repo_dir(cache_dir, whisper.repo).name
    locks.mkdir(parents=True)
    fifos = [blobs / f"{sha}{RANGES_SUFFIX}", locks / f"{sha}.lock",
             repo_dir(cache_dir, small_repos[0].repo) / "refs" / "main"]
    fifos[2].unlink()
    for fifo in fifos:
        os.mkfifo(fifo)
    _theirs(*fifos)
    base = ["--index", str(index_file), "--cache-dir", str(cache_dir)]
    runs = {"status": run_cli("status", "demucs:tiny", "whisper:tiny", *base, timeout=HANG),
            "list": run_cli("list", *base, timeout=HANG),
            "doctor": run_cli("doctor", "demucs:tiny", "--offline", *base, timeout=HANG),
            "gc": run_cli("gc", "--dry-run", *base, timeout=HANG),
            "warm": run_cli(*warm_args(hub.endpoint, index_file, "whisper:tiny", cache_dir=cache_dir), timeout=HANG)}
    for name, proc in runs.items():
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])
    assert runs["status"].returncode == 1 and runs["list"].returncode == 0
    assert runs["warm"].returncode == 0, runs["warm"].stderr
    assert ModelManager(index_file, cache_dir).status("whisper:tiny", verify="deep").available
    _count("4-fifos")


# --- 5. a ranges record's fields are bounded --------------------------------------------------------------------

def _record(body: dict | None = None, head: bytes | None = None) -> bytes:
    import zlib

    if head is not None:
        return head
    raw = json.dumps(body).encode()
    return b"LSHR1 %d %08x\n" % (len(raw), zlib.crc32(raw)) + raw


@pytest.mark.parametrize("lie", ["length-overflow", "length-huge", "claims-beyond-size"])
def test_5_another_users_ranges_record_with_absurd_fields_is_ignored(hub, small_repos, index_file, cache_dir,
                                                                       lie) -> None:
    whisper = small_repos[1]
    data = whisper.files["model.bin"]
    sha = sha256(data)
    blobs = blobs_dir(cache_dir, whisper.repo)
    blobs.mkdir(parents=True)
    record = {"length-overflow": _record(head=b"LSHR1 " + b"9" * 30 + b" 00000000\n{}"),
              "length-huge": _record(head=b"LSHR1 1099511627776 00000000\n{}"),
              "claims-beyond-size": _record({"size": len(data), "sha256": sha, "ranges": [[0, 10**15]]})}[lie]
    (blobs / f"{sha}{RANGES_SUFFIX}").write_bytes(record)
    (blobs / f"{sha}{PART_SUFFIX}").write_bytes(b"")
    _theirs(blobs / f"{sha}{RANGES_SUFFIX}", blobs / f"{sha}{PART_SUFFIX}")
    status = run_cli("status", "whisper:tiny", "--json", "--index", str(index_file), "--cache-dir", str(cache_dir),
                     timeout=HANG)
    assert status.returncode == 1 and "Traceback" not in status.stderr, status.stderr[-2000:]
    assert json.loads(status.stdout)["models"][0].get("resumable_bytes", 0) == 0  # nothing is held, whatever it says
    warm = run_cli(*warm_args(hub.endpoint, index_file, "whisper:tiny", cache_dir=cache_dir), timeout=HANG)
    assert warm.returncode == 0, warm.stderr
    assert ModelManager(index_file, cache_dir).status("whisper:tiny", verify="deep").available
    _count("5-ranges-record")


def test_5_a_record_claiming_a_whole_petabyte_file_does_not_pass_the_disk_check(hub, tmp_path, cache_dir) -> None:
    size, sha = 10**15, "e" * 64
    index = tmp_path / "peta.yaml"
    index.write_text(f"version: 1\nmodels:\n  whisper:peta:\n    repo: test/peta\n    revision: {'f' * 40}\n"
                     f"    files:\n      - {{name: model.bin, size: {size}, sha256: {sha}}}\n")
    blobs = blobs_dir(cache_dir, "test/peta")
    blobs.mkdir(parents=True)
    (blobs / f"{sha}{RANGES_SUFFIX}").write_bytes(_record({"size": size, "sha256": sha, "ranges": [[0, size]]}))
    (blobs / f"{sha}{PART_SUFFIX}").write_bytes(b"")
    _theirs(blobs / f"{sha}{RANGES_SUFFIX}", blobs / f"{sha}{PART_SUFFIX}")
    proc = run_cli(*warm_args(hub.endpoint, index, "whisper:peta", cache_dir=cache_dir), timeout=HANG)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (4,), "whisper:peta", "free")
    assert hub.requests == []  # refused before a single request
    _count("5-ranges-record")


# --- 6. folder members against a large manifest: linear time ------------------------------------------------------

def _manifest_bundle(manifest: bytes, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for member in extra:
            tar.addfile(member)
    return buf.getvalue()


def test_6_folder_members_against_a_100k_file_manifest_take_linear_time(tmp_path, index_file, cache_dir) -> None:
    files = [{"name": f"f{i}", "size": 1, "sha256": f"{i:064x}", "blob": f"{i:040x}"} for i in range(100_000)]
    manifest = json.dumps({"format": 1, "models": [{"name": "whisper:flood", "repo": "test/flood",
                                                    "revision": "a" * 40, "files": files}]}).encode()
    folders = []
    for i in range(2_000):
        info = tarfile.TarInfo(f"nowhere/{i}")
        info.type = tarfile.DIRTYPE
        folders.append(info)
    bundle = tmp_path / "flood.tar"
    bundle.write_bytes(_manifest_bundle(manifest, folders))
    started = time.monotonic()
    proc = run_cli("import", str(bundle), "--index", str(index_file), "--cache-dir", str(cache_dir), timeout=60)
    seconds = time.monotonic() - started
    STATS["folders_vs_100k_manifest_seconds"] = round(seconds, 3)
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "whisper:flood" in proc.stderr and "refused 2000 member(s)" in proc.stderr
    assert seconds < 20, seconds  # 2,000 folder members: 40 ms each against the manifest before
    _count("6-manifest-index")


# --- 7. the manifest parser is bounded and typed -----------------------------------------------------------------

def _one_model(size: str = "1", tool: str = '"x"') -> bytes:
    return (b'{"format": 1, "tool": %s, "models": [{"name": "whisper:tiny", "repo": "test/tiny-whisper", '
            b'"revision": "%s", "files": [{"name": "f", "size": %s, "sha256": "%s", "blob": "%s"}]}]}'
            % (tool.encode(), b"a" * 40, size.encode(), b"b" * 64, b"b" * 64))


MANIFESTS = {
    "deep": b'{"format": 1, "models": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "400-digit-size": _one_model(size="9" * 400),
    "nan-size": _one_model(size="NaN"),
    "infinity-size": _one_model(size="1e999"),
    "escapes": _one_model(tool='"\\u001b]0;pwned\\u0007\\u009b2J\\ud800"').replace(b'"format": 1', b'"format": 7'),
}


@pytest.mark.parametrize("case", [*MANIFESTS, "garbage-stdin", "deep-stdin"])
def test_7_hostile_manifests_and_garbage_are_one_line_and_exit_2(tmp_path, index_file, cache_dir, case) -> None:
    base = ["--index", str(index_file), "--cache-dir", str(cache_dir)]
    if case == "garbage-stdin":
        proc = run_cli("import", "-", *base, input=os.urandom(1 << 16).decode("latin-1"), timeout=HANG)
    elif case == "deep-stdin":
        proc = run_cli("import", "-", *base, input=_manifest_bundle(MANIFESTS["deep"]).decode("latin-1"),
                       timeout=HANG)
    else:
        bundle = tmp_path / f"{case}.tar"
        bundle.write_bytes(_manifest_bundle(MANIFESTS[case]))
        proc = run_cli("import", str(bundle), *base, timeout=HANG)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,))
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr and "\x9b" not in proc.stderr
    assert not any(cache_dir.rglob("*")) if cache_dir.exists() else True  # nothing written
    _count("7-manifest-parser")


# --- 8. absurd knob values: one line, exit 2, at parse time; the slow-body rule knows the user's cap ---------------

@pytest.mark.parametrize(("knob", "value", "words"), [
    ("HF_ENDPOINT", "http://127.0.0.1:99999", "port"),
    ("HF_ENDPOINT", "http://[::1", "IPv6"),
    ("HF_ENDPOINT", "http://127.0.0.2:8080/?tenant=x", "query"),
    ("--endpoint", "http://127.0.0.1:notaport", "port"),
    ("--connections", "100000", "--connections"),
    ("--connections", "-3", "--connections"),
])
def test_8_absurd_knobs_are_refused_at_parse_time(hub, small_repos, index_file, cache_dir, knob, value, words) -> None:
    args = ["warm", "demucs:tiny", "--index", str(index_file), "--cache-dir", str(cache_dir), "--no-load"]
    env = {}
    if knob == "HF_ENDPOINT":
        env["HF_ENDPOINT"] = value
    elif knob == "--endpoint":
        args += ["--endpoint", value]
    else:
        args += ["--endpoint", hub.endpoint, knob, value]
    proc = run_cli(*args, env=env, timeout=HANG)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), words)
    assert hub.requests == [] and not blobs_dir(cache_dir, small_repos[0].repo).exists()
    _count("8-knobs")


def test_8_a_cap_below_the_slow_body_floor_is_not_taken_for_a_slow_server(hub, tmp_path, cache_dir) -> None:
    from lyricsub_hub import RetryPolicy
    from lyricsub_hub.remote.http import Timeouts

    repo = add(hub, "whisper:capped", "test/capped", {"model.bin": payload(308, 9_000), "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "capped.yaml", [repo])
    # the slow-body rule at 4 KB/s over 2 s (the default is 1 KB/s over 30 s), under a cap of 1000 bytes per second
    dl = ModelDownloader(ModelManager(index, cache_dir, endpoint=hub.endpoint), max_rate="1000", connections=2,
                         retry=RetryPolicy(attempts=1), timeouts=Timeouts(window=2.0, min_rate=4096))
    try:
        result = dl.download_model("whisper:capped")
    finally:
        dl.close()
    assert result.success, result.error  # the cap, not the server, set the pace
    assert result.seconds >= 3  # and the cap held
    _count("8-knobs")


# --- 9. values from outside reach the terminal escaped ----------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b]52;c;cm0gLXJm\x07\x1b[2J\x9b2J"


def test_9_warm_retry_lines_escape_what_a_mirror_sends(hub, tmp_path, cache_dir) -> None:
    repo = add(hub, "whisper:esc", "test/esc", {"model.bin": payload(309, 5_000), "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "esc.yaml", [repo])
    seen: set[str] = set()

    def rewrite(ex: Exchange) -> None:
        if ex.method == "GET" and "/resolve/" in ex.path and ex.path not in seen:
            seen.add(ex.path)  # the first answer sends the client to an address full of escapes
            ex.status, ex.body = 302, b""
            ex.set_header("Location", "/mirror/" + ESCAPES.encode("utf-8").decode("latin-1") + "/x")
        elif ex.path.startswith("/mirror/"):
            ex.status, ex.body = 503, b""
    with Proxy(hub.endpoint, rewrite) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "whisper:esc", cache_dir=cache_dir), timeout=HANG)
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "retrying" in text or error_lines(proc.stderr), text[-2000:]
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in text, repr(text[-1500:])
    _count("9-escapes")


def test_9_lock_escapes_file_names_with_8_bit_controls(hub, tmp_path, cache_dir) -> None:
    name = "w\x9b2J\x85.safetensors"
    hub.add_repo("test/esc-lock", {"esc.yaml": b"models: ['w']\n", name: payload(310, 3_000)})
    index = tmp_path / "lock.yaml"
    index.write_text("version: 1\nmodels:\n  demucs:esc:\n    repo: test/esc-lock\n")
    proc = run_cli("lock", "demucs:esc", "--index", str(index), "--endpoint", hub.endpoint, "--cache-dir",
                   str(cache_dir), timeout=HANG)
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-2000:]
    assert "\x9b" not in text and "\x85" not in text, repr(text)
    if proc.returncode == 0:
        assert "w\\x9b2J\\x85.safetensors" in proc.stdout  # shown, escaped
    _count("9-escapes")

