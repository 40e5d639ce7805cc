"""Tampered and hostile bundles: every one is refused with one line per failed model and nothing half-placed.

Each case starts from a bundle `lyricsub-hub export` wrote, rewrites it with the standard tarfile module (the
way an attacker or a broken copy would), and imports it with the real command into a cache five folders down,
so any escape would land in folders this test watches. After each import: the exit code, one error line per
failed model (plus one for members no model lists), a failed model has no snapshot entries and no blobs, no
temp file is left, and nothing outside the cache changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.cli import main

from .helpers import ROOT, error_lines, finish, kill_all, payload, repo_dir, tree_listing, wait_until, write_results

pytestmark = pytest.mark.reliability

MODELS = ["demucs:tiny", "whisper:tiny"]
STATS: dict = {"cases": 0, "refused_as_expected": 0, "nothing_half_placed": 0}

Entries = list[tuple[tarfile.TarInfo, bytes | None]]


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("hostile_bundles", STATS)


@pytest.fixture
def source(hub, small_repos, index_file, cache_dir, tmp_path) -> Path:
    """A true bundle of both models (demucs' members first, then whisper's)."""
    results = ModelDownloader(ModelManager(index_file, cache_dir, endpoint=hub.endpoint)).download_models(MODELS)
    assert all(r.success for r in results)
    bundle = tmp_path / "bundles" / "true.tar"
    bundle.parent.mkdir()
    assert main(["export", *MODELS, "-o", str(bundle), "--index", str(index_file)]) == 0
    return bundle


def read(bundle: Path) -> Entries:
    out: Entries = []
    with tarfile.open(bundle) as tar:
        for info in tar.getmembers():
            fh = tar.extractfile(info) if info.isfile() else None
            out.append((info, fh.read() if fh else None))
    return out


def write(entries: Entries, path: Path, *, cut: int | None = None) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    path.write_bytes(raw if cut is None else raw[:cut])
    return path


def find(entries: Entries, suffix: str) -> int:
    return next(i for i, (info, _) in enumerate(entries) if info.name.endswith(suffix))


def blob_of(repo, name: str) -> str:
    return f"blobs/{hashlib.sha256(repo.files[name]).hexdigest()}"


def replace_data(entries: Entries, i: int, data: bytes) -> None:
    info, _ = entries[i]
    info.size = len(data)
    entries[i] = (info, data)


def as_kind(entries: Entries, i: int, kind: bytes, linkname: str = "") -> None:
    info, _ = entries[i]
    info.type, info.linkname, info.size = kind, linkname, 0
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    entries[i] = (info, None)


def manifest_edit(entries: Entries, edit: Callable[[dict], None]) -> None:
    doc = json.loads(entries[0][1])
    edit(doc)
    replace_data(entries, 0, json.dumps(doc).encode())


def extra(entries: Entries, name: str, data: bytes | None = b"x", kind: bytes = tarfile.REGTYPE, at: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if data is not None else 0
    entries.insert(len(entries) if at is None else at, (info, data))


# --- the cases: (id, rewrite(entries, repos), exit code, failed models, a stray line, words in the lines) -------------

def _wrong_bytes(e, r):
    i = find(e, blob_of(r[1], "model.bin"))
    data = bytearray(e[i][1])
    data[123_456] ^= 0x40
    replace_data(e, i, bytes(data))


def _wrong_size(e, r):
    i = find(e, blob_of(r[1], "model.bin"))
    replace_data(e, i, e[i][1][:-10])


def _small_file_swapped(e, r):  # a small git-named file swapped for other bytes of the same length
    replace_data(e, find(e, _git(r[1].files["config.json"])), b'{"b": 2}\n')


def _git(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _manifest_other_sha(e, r):  # bytes and manifest agree with each other, not with the index
    evil = payload(66, 500_000)
    sha = hashlib.sha256(evil).hexdigest()

    def edit(doc):
        for f in doc["models"][1]["files"]:
            if f["name"] == "model.bin":
                f["sha256"] = f["blob"] = sha
    manifest_edit(e, edit)
    i = find(e, blob_of(r[1], "model.bin"))
    e[i][0].name = e[i][0].name.rsplit("/", 1)[0] + "/" + sha
    replace_data(e, i, evil)
    j = find(e, "snapshots/" + r[1].commit + "/model.bin")
    e[j][0].linkname = "../../blobs/" + sha


def _manifest_other_commit(e, r):
    manifest_edit(e, lambda doc: doc["models"][1].update(revision="f" * 40))


def _manifest_unknown_model(e, r):
    manifest_edit(e, lambda doc: doc["models"][1].update(name="whisper:other"))


def _dotdot_name(e, r):
    extra(e, "../../../../../escaped.txt")
    extra(e, "models--test--tiny-whisper/../../../../../../escaped2.txt")


def _absolute_name(e, r):
    extra(e, "/tmp/lyricsub-hostile-bundle-absolute.txt")


def _link_out_of_the_cache(e, r):
    i = find(e, "snapshots/" + r[1].commit + "/model.bin")
    e[i][0].linkname = "../../../../../../../../etc/passwd"


def _blob_is_a_symlink(e, r):
    as_kind(e, find(e, blob_of(r[1], "model.bin")), tarfile.SYMTYPE, "/etc/passwd")


def _blob_is_a_hardlink_out(e, r):
    as_kind(e, find(e, blob_of(r[1], "model.bin")), tarfile.LNKTYPE, "/etc/passwd")


def _blob_is_a_hardlink_up(e, r):
    as_kind(e, find(e, blob_of(r[1], "model.bin")), tarfile.LNKTYPE, "../../../outside.bin")


def _blob_is_a_device(e, r):
    as_kind(e, find(e, blob_of(r[1], "model.bin")), tarfile.CHRTYPE)


def _fifo_member(e, r):
    extra(e, "models--test--tiny-whisper/blobs/pipe", None, tarfile.FIFOTYPE)
    extra(e, "models--test--tiny-whisper/snapshots/dev", None, tarfile.BLKTYPE)


def _unpinned_blob(e, r):
    junk = payload(77, 1000)
    extra(e, f"models--test--tiny-whisper/blobs/{hashlib.sha256(junk).hexdigest()}", junk, at=3)


def _ref_elsewhere(e, r):
    replace_data(e, find(e, "models--test--tiny-whisper/refs/main"), b"e" * 40)


def _second_manifest(e, r):
    extra(e, "manifest.json", e[0][1])


CASES = [
    ("wrong-bytes", _wrong_bytes, 1, ["whisper:tiny"], False, ["model.bin", "hashes to"]),
    ("wrong-size", _wrong_size, 1, ["whisper:tiny"], False, ["model.bin", "499990 bytes, the pin says 500000"]),
    ("wrong-small-file", _small_file_swapped, 1, ["whisper:tiny"], False, ["config.json"]),
    ("manifest-other-sha", _manifest_other_sha, 1, ["whisper:tiny"], False, ["disagrees with the index", "model.bin"]),
    ("manifest-other-commit", _manifest_other_commit, 1, ["whisper:tiny"], True, ["the index pins test/tiny-whisper@"]),
    ("manifest-unknown-model", _manifest_unknown_model, 1, ["whisper:other"], False, ["no model of that name"]),
    ("dotdot-names", _dotdot_name, 1, [], True, ["climbs out"]),
    ("absolute-name", _absolute_name, 1, [], True, ["absolute"]),
    ("snapshot-link-out", _link_out_of_the_cache, 1, ["whisper:tiny"], False, ["etc/passwd"]),
    ("blob-symlink", _blob_is_a_symlink, 1, ["whisper:tiny"], False, ["symbolic link where a file was expected"]),
    ("blob-hardlink-abs", _blob_is_a_hardlink_out, 1, ["whisper:tiny"], False, ["hard link to '/etc/passwd'"]),
    ("blob-hardlink-up", _blob_is_a_hardlink_up, 1, ["whisper:tiny"], False, ["hard link"]),
    ("blob-device", _blob_is_a_device, 1, ["whisper:tiny"], False, ["character device"]),
    ("fifo-and-block-device", _fifo_member, 1, [], True, ["fifo"]),
    ("unpinned-blob", _unpinned_blob, 1, [], True, ["no model of the manifest lists"]),
    ("ref-elsewhere", _ref_elsewhere, 1, ["whisper:tiny"], False, ["refs/main", "names no commit"]),
    ("second-manifest", _second_manifest, 1, [], True, ["manifest.json"]),
]


def watched(tmp_path: Path, cache: Path, state: Path) -> dict:
    return tree_listing(tmp_path, skip=[cache, state, tmp_path / "hf"])


def check_nothing_half_placed(cache: Path, index: Path, state: Path, failed: list[str], small_repos,
                              carried: tuple[str, ...] = tuple(MODELS)) -> None:
    """Failed models (and those the bundle did not carry) have no snapshot entries and no blobs; the rest are whole."""
    assert not list(cache.rglob(".lyricsub-import-*")), "a temp file was left behind"
    mgr = ModelManager(index, cache, state_dir=state)
    for repo in small_repos:
        st = mgr.status(repo.model, verify="deep")
        if repo.model in failed or repo.model not in carried:
            assert st.status == "missing", (repo.model, st.status)
            assert not (repo_dir(cache, repo.repo) / "snapshots").exists() or not any(
                (repo_dir(cache, repo.repo) / "snapshots").rglob("*"))
            blobs = repo_dir(cache, repo.repo) / "blobs"
            assert not blobs.exists() or not any(blobs.iterdir()), list(blobs.iterdir())
        else:
            assert st.status == "available", (repo.model, st.status)
    for path in cache.rglob("*"):
        assert os.path.realpath(path).startswith(os.path.realpath(cache) + os.sep), f"{path} leaves the cache"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_bundle_is_refused_with_nothing_half_placed(source, small_repos, index_file, tmp_path, case) -> None:
    name, rewrite, code, failed, stray, words = case
    STATS["cases"] += 1
    entries = read(source)
    rewrite(entries, small_repos)
    bundle = write(entries, tmp_path / "bundles" / f"{name}.tar")
    cache, state = tmp_path / "a" / "b" / "c" / "d" / "hub", tmp_path / "state"
    before = watched(tmp_path, cache, state)
    done = subprocess.run([sys.executable, "-m", "lyricsub_hub", "import", str(bundle), "--index", str(index_file),
                           "--cache-dir", str(cache)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "LYRICSUB_STATE_DIR": str(state)})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == len(failed) + int(stray), lines
    for model in failed:
        assert sum(line.startswith(f"lyricsub-hub: {model}: not imported: ") for line in lines) == 1, lines
    text = "\n".join(lines)
    for word in words:
        assert word in text, (word, lines)
    STATS["refused_as_expected"] += 1
    assert watched(tmp_path, cache, state) == before  # nothing written outside the cache
    assert not Path("/tmp/lyricsub-hostile-bundle-absolute.txt").exists()
    carried = ("demucs:tiny",) if name == "manifest-unknown-model" else tuple(MODELS)
    check_nothing_half_placed(cache, index_file, state, failed, small_repos, carried)
    STATS["nothing_half_placed"] += 1


@pytest.mark.parametrize("where", ["in-manifest", "in-whisper-blob", "at-end-marker", "zstd-in-whisper-blob"])
def test_truncated_stream(source, small_repos, index_file, tmp_path, where) -> None:
    import zstandard

    entries = read(source)
    raw = write(entries, tmp_path / "full.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        infos = {m.name: m for m in tar.getmembers()}
    blob = next(m for n, m in infos.items() if n.endswith(blob_of(small_repos[1], "model.bin")))
    last = max(infos.values(), key=lambda m: m.offset_data)
    cut = {"in-manifest": infos["manifest.json"].offset_data + 10, "in-whisper-blob": blob.offset_data + 200_000,
           "at-end-marker": last.offset_data + last.size + -last.size % 512,
           "zstd-in-whisper-blob": blob.offset_data + 200_000}[where]
    data = raw[:cut]
    if where.startswith("zstd"):  # random bytes hardly compress: the same cut lands in the same member
        data = zstandard.ZstdCompressor().compress(raw)[:cut]
    bundle = tmp_path / "cut.tar"
    bundle.write_bytes(data)
    cache, state = tmp_path / "cache", tmp_path / "state"
    done = subprocess.run([sys.executable, "-m", "lyricsub_hub", "import", str(bundle), "--index", str(index_file),
                           "--cache-dir", str(cache)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "LYRICSUB_STATE_DIR": str(state)})
    lines = error_lines(done.stderr)
    assert "Traceback" not in done.stderr
    if where == "in-manifest":
        assert done.returncode == 2 and len(lines) == 1 and "not a readable bundle" in lines[0], lines
        assert not cache.exists() or not any(cache.rglob("*"))
        return
    if where == "at-end-marker":  # every byte of both models arrived: both placed; a missing end marker harms nothing
        assert done.returncode == 0, lines
        check_nothing_half_placed(cache, index_file, state, [], small_repos)
        return
    assert done.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith("lyricsub-hub: whisper:tiny: not imported: the bundle is cut short") and "nothing of it was placed" in lines[0]
    check_nothing_half_placed(cache, index_file, state, ["whisper:tiny"], small_repos)


@pytest.mark.parametrize("content,words", [
    (b"", "empty"),
    (b"this is not a tar file at all" * 40, "not a readable bundle"),
    (b"\x28\xb5\x2f\xfd" + b"garbage" * 100, "zstd"),
], ids=["empty", "not-tar", "bad-zstd"])
def test_unreadable_bundles_exit_2(index_file, tmp_path, content, words) -> None:
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "lyricsub_hub", "import", str(bundle), "--index", str(index_file),
                           "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = error_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*"))


def test_unreadable_manifests_exit_2(source, index_file, tmp_path) -> None:
    for i, rewrite in enumerate([
        lambda e: e.pop(0),  # no manifest first
        lambda e: replace_data(e, 0, b"{not json"),
        lambda e: manifest_edit(e, lambda d: d.update(format=99)),
        lambda e: manifest_edit(e, lambda d: d["models"][0]["files"][0].update(name="../../x")),
        lambda e: manifest_edit(e, lambda d: d["models"][0].update(repo="../evil")),
        lambda e: manifest_edit(e, lambda d: d["models"][0]["files"][0].update(blob="not-hex")),
    ]):
        entries = read(source)
        rewrite(entries)
        bundle = write(entries, tmp_path / f"m{i}.tar")
        done = subprocess.run([sys.executable, "-m", "lyricsub_hub", "import", str(bundle), "--index", str(index_file),
                               "--cache-dir", str(tmp_path / "c")], capture_output=True, text=True, cwd=ROOT, timeout=60)
        lines = error_lines(done.stderr)
        assert done.returncode == 2 and len(lines) == 1, (i, done.stderr)
        assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*"))


def test_a_killed_import_leaves_the_cache_consistent(source, small_repos, index_file, tmp_path) -> None:
    """SIGKILL `import -` while whisper's big blob streams in: demucs (complete before) is available, whisper is not
    half there, only our temp file is left, and the same import run again completes."""
    raw = source.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        blob = next(m for m in tar.getmembers() if m.name.endswith(blob_of(small_repos[1], "model.bin")))
    cache, state = tmp_path / "cache", tmp_path / "state"
    args = [sys.executable, "-m", "lyricsub_hub", "import", "-", "--index", str(index_file), "--cache-dir", str(cache)]
    env = {**os.environ, "LYRICSUB_STATE_DIR": str(state)}
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        assert proc.stdin is not None
        proc.stdin.write(raw[: blob.offset_data + 300_000])
        proc.stdin.flush()
        assert wait_until(lambda: any(cache.rglob(".lyricsub-import-*")) and
                          ModelManager(index_file, cache, state_dir=state).status("demucs:tiny").available, 30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        kill_all([proc])
    mgr = ModelManager(index_file, cache, state_dir=state)
    assert mgr.status("demucs:tiny", verify="deep").available
    assert mgr.status("whisper:tiny", verify="deep").status == "missing"
    leftovers = [p.name for p in cache.rglob("*") if p.is_file() and "/blobs/" in p.as_posix()
                 and not p.name.startswith(".lyricsub-import-") and "tiny-whisper" in p.as_posix()]
    assert leftovers == []  # the whisper repo holds nothing but our temp file
    again = subprocess.run(args, input=raw, capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert mgr.status("whisper:tiny", verify="deep").available
    code, _, err = finish(subprocess.Popen(args[:4] + [str(source)] + args[5:], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env), 120)
    assert code == 0 and err == ""
