"""TestHub against the REAL huggingface_hub client (0.36.x over requests, 2.x over httpx2).

Everything passes endpoint= and cache_dir= explicitly: huggingface_hub reads HF_ENDPOINT and
HF_HOME at import, so patching the environment here would come too late.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import time
import urllib.error
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # read at import: must precede huggingface_hub
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # 2.x would otherwise fetch /api/agent-harnesses from huggingface.co

import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub import __version__ as hf_version
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from lyricsub_hub.testing.hub import Fault, TestHub

HF_MAJOR = int(hf_version.split(".")[0])
REPO = "org/model"
WEIGHTS = random.Random(7).randbytes(300_000)
FILES = {"config.json": b'{"dim": 4}\n', "model.bin": WEIGHTS, "sub/dir/vocab.json": b'{"a": 0}\n'}


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(autouse=True)
def _hf_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def hub():
    with TestHub() as server:
        yield server
        assert server.errors == [], server.errors[0]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def commit(hub: TestHub) -> str:
    return hub.add_repo(REPO, FILES)


def download(hub: TestHub, cache: Path, filename: str, repo: str = REPO, **kw) -> Path:
    return Path(hf_hub_download(repo, filename, endpoint=hub.endpoint, cache_dir=cache, **kw))


def raw(hub: TestHub, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    """One plain HTTP exchange, outside huggingface_hub; returns (status, headers, body)."""
    req = urllib.request.Request(hub.endpoint + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


# --- downloads ---------------------------------------------------------------------------------
def test_download_by_branch_then_by_commit_makes_no_request(hub: TestHub, cache: Path, commit: str) -> None:
    path = download(hub, cache, "config.json")
    assert path.read_bytes() == FILES["config.json"]
    assert f"snapshots/{commit}/config.json" in path.as_posix()
    assert hub.count("HEAD", "/resolve/main/config.json") == 1 and hub.count("GET", "config.json") == 1
    hub.clear_log()
    again = download(hub, cache, "config.json", revision=commit)
    assert again == path and hub.requests == []


def test_snapshot_nested_and_blob_names_are_etags(hub: TestHub, cache: Path, commit: str) -> None:
    folder = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache))
    assert folder.name == commit
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
        assert hub.count("GET", f"/resolve/{commit}/{name}") + hub.count("GET", f"/resolve/main/{name}") == 1
    blobs = {p.name for p in (cache / "models--org--model" / "blobs").iterdir()}
    assert blobs == {hashlib.sha256(WEIGHTS).hexdigest(), git_sha1(FILES["config.json"]),
                     git_sha1(FILES["sub/dir/vocab.json"])}
    assert {hub.file_info(REPO, n)["etag"] for n in FILES} == blobs
    # 2.x lists the tree (and caches it); 0.36 asks /revision/ and HEADs each file.
    assert hub.count("GET", "/tree/") == (1 if HF_MAJOR >= 1 else 0) and hub.count("GET", "/revision/main") == 1
    hub.clear_log()
    assert snapshot_download(REPO, revision=commit, endpoint=hub.endpoint, cache_dir=cache) == str(folder)
    assert [r.path.split("?")[0] for r in hub.requests] == ([] if HF_MAJOR >= 1 else [f"/api/models/{REPO}/revision/{commit}"])
    assert hub.file_info(REPO, "model.bin") == {"size": len(WEIGHTS), "sha256": hashlib.sha256(WEIGHTS).hexdigest(),
                                                "etag": hashlib.sha256(WEIGHTS).hexdigest(), "lfs": True,
                                                "commit": commit}


def test_file_metadata_headers(hub: TestHub, commit: str) -> None:
    meta = get_hf_file_metadata(hf_hub_url(REPO, "model.bin", endpoint=hub.endpoint), endpoint=hub.endpoint)
    assert (meta.commit_hash, meta.etag, meta.size) == (commit, hashlib.sha256(WEIGHTS).hexdigest(), len(WEIGHTS))
    status, headers, body = raw(hub, f"/{REPO}/resolve/main/config.json", "HEAD")
    assert status == 200 and body == b"" and headers["ETag"] == f'"{git_sha1(FILES["config.json"])}"'
    assert headers["X-Repo-Commit"] == commit and headers["Accept-Ranges"] == "bytes"
    assert "X-Linked-Etag" not in headers and not any(k.lower().startswith("x-xet") for k in headers)
    _, lfs_headers, _ = raw(hub, f"/{REPO}/resolve/{commit}/model.bin", "HEAD")
    assert lfs_headers["X-Linked-Size"] == lfs_headers["Content-Length"] == str(len(WEIGHTS))


def test_range_requests(hub: TestHub, commit: str) -> None:
    url = f"/{REPO}/resolve/{commit}/model.bin"
    status, headers, body = raw(hub, url, headers={"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, WEIGHTS[10:20], f"bytes 10-19/{len(WEIGHTS)}")
    assert raw(hub, url, headers={"Range": "bytes=299990-"})[2] == WEIGHTS[299990:]
    assert raw(hub, url, headers={"Range": "bytes=-5"})[2] == WEIGHTS[-5:]
    status, headers, _ = raw(hub, url, headers={"Range": f"bytes={len(WEIGHTS)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(WEIGHTS)}"
    assert [r.range for r in hub.requests] == ["bytes=10-19", "bytes=299990-", "bytes=-5", f"bytes={len(WEIGHTS)}-"]


def test_new_commit_moves_branch_old_commit_still_served(hub: TestHub, tmp_path: Path, commit: str) -> None:
    first = download(hub, tmp_path / "a", "config.json")
    newer = hub.add_repo(REPO, {**FILES, "config.json": b'{"dim": 8}\n'})
    assert newer != commit and len(newer) == 40
    assert download(hub, tmp_path / "a", "config.json").read_bytes() == b'{"dim": 8}\n'
    assert (tmp_path / "a" / "models--org--model" / "refs" / "main").read_text() == newer
    assert first.read_bytes() == FILES["config.json"]
    old = download(hub, tmp_path / "b", "config.json", revision=commit)
    assert old.read_bytes() == FILES["config.json"] and hub.count("HEAD", f"/resolve/{commit}/") == 1
    api = HfApi(endpoint=hub.endpoint)
    assert api.model_info(REPO).sha == newer and api.model_info(REPO, revision=commit).sha == commit
    assert [(b.name, b.target_commit) for b in api.list_repo_refs(REPO).branches] == [("main", newer)]


def test_paths_folders_and_lfs_override(hub: TestHub, cache: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "nested" / "big.dat").write_bytes(WEIGHTS * 4)
    (src / "small.txt").write_bytes(b"hi")
    hub.add_repo("org/folder", src)
    assert download(hub, cache, "nested/big.dat", repo="org/folder").read_bytes() == WEIGHTS * 4
    assert hub.file_info("org/folder", "nested/big.dat")["sha256"] == hashlib.sha256(WEIGHTS * 4).hexdigest()
    hub.add_repo("org/mixed", {"w.bin": src / "small.txt", "c.json": b"{}"}, lfs={"c.json"})
    assert hub.file_info("org/mixed", "c.json")["etag"] == hashlib.sha256(b"{}").hexdigest()
    assert hub.file_info("org/mixed", "w.bin") == {**hub.file_info("org/mixed", "w.bin"), "lfs": False,
                                                   "etag": git_sha1(b"hi")}


# --- API ---------------------------------------------------------------------------------------
def test_model_info_files_metadata(hub: TestHub, commit: str) -> None:
    info = HfApi(endpoint=hub.endpoint).model_info(REPO, files_metadata=True)
    assert info.id == REPO and info.sha == commit and info.gated is False
    sib = {s.rfilename: s for s in info.siblings}
    assert {n: s.size for n, s in sib.items()} == {n: len(d) for n, d in FILES.items()}
    assert sib["model.bin"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest() and sib["config.json"].lfs is None
    assert sib["config.json"].blob_id == git_sha1(FILES["config.json"])
    assert hub.count("GET", "blobs=") == 1
    plain = HfApi(endpoint=hub.endpoint).model_info(REPO, revision=commit)
    assert plain.sha == commit and {s.size for s in plain.siblings} == {None}


def test_list_repo_tree_recursive_paged_and_paths_info(hub: TestHub, commit: str) -> None:
    api = HfApi(endpoint=hub.endpoint)
    hub.page_size = 2
    tree = {e.path: e for e in api.list_repo_tree(REPO, recursive=True, revision=commit)}
    assert set(tree) == {"config.json", "model.bin", "sub", "sub/dir", "sub/dir/vocab.json"}
    assert hub.count("GET", "/tree/") == 3 and hub.count("GET", "cursor=") == 2
    assert tree["model.bin"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest() and tree["model.bin"].size == len(WEIGHTS)
    assert tree["config.json"].blob_id == git_sha1(FILES["config.json"]) and not hasattr(tree["sub"], "size")
    top = {e.path for e in api.list_repo_tree(REPO, path_in_repo="sub", expand=True)}
    assert top == {"sub/dir"}
    infos = {e.path: e for e in api.get_paths_info(REPO, ["config.json", "sub", "missing.txt"], revision=commit)}
    assert set(infos) == {"config.json", "sub"} and infos["config.json"].size == len(FILES["config.json"])
    assert type(infos["sub"]).__name__ == "RepoFolder"


def test_tree_pages_at_1000_with_absolute_link(hub: TestHub) -> None:
    hub.add_repo("org/wide", {f"f{i:04d}.txt": b"x" for i in range(1001)})
    assert len(list(HfApi(endpoint=hub.endpoint).list_repo_tree("org/wide"))) == 1001
    assert hub.count("GET", "/tree/main") == 2 and hub.count("GET", "cursor=1000") == 1
    status, headers, _ = raw(hub, "/api/models/org/wide/tree/main?recursive=false")
    assert status == 200
    assert headers["Link"] == f'<{hub.endpoint}/api/models/org/wide/tree/main?recursive=false&cursor=1000>; rel="next"'


def test_no_traffic_leaves_loopback(hub: TestHub, cache: Path, commit: str) -> None:
    from lyricsub_hub.testing.netguard import no_network

    with no_network() as guard:
        snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache)
        HfApi(endpoint=hub.endpoint).model_info(REPO, files_metadata=True)
    assert guard.attempts == [] and guard.allowed


def test_unknown_api_paths_are_plain_404(hub: TestHub, commit: str) -> None:
    for path in ("/api/agent-harnesses", "/api/whoami-v2", f"/api/models/{REPO}/nope"):
        status, headers, body = raw(hub, path)
        assert status == 404 and "X-Error-Code" not in headers and b"error" in body


# --- errors ------------------------------------------------------------------------------------
def test_error_classes(hub: TestHub, cache: Path, commit: str) -> None:
    with pytest.raises(RepositoryNotFoundError):
        download(hub, cache, "config.json", repo="org/missing")
    with pytest.raises(RevisionNotFoundError):
        download(hub, cache, "config.json", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError) as missing:
        download(hub, cache, "nope.txt")
    assert not isinstance(missing.value, LocalEntryNotFoundError)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint).model_info("org/missing")
    with pytest.raises(RevisionNotFoundError):
        HfApi(endpoint=hub.endpoint).list_repo_tree(REPO, revision="b" * 40).__next__()
    statuses = [(r.status, r.path.split("/")[-1]) for r in hub.requests]
    assert statuses[:3] == [(401, "config.json"), (404, "config.json"), (404, "nope.txt")]


def test_gated_repo(hub: TestHub, cache: Path) -> None:
    hub.add_repo("org/gated", {"config.json": b"{}"}, gated=True)
    with pytest.raises(GatedRepoError) as anonymous:
        download(hub, cache, "config.json", repo="org/gated", token=False)
    assert anonymous.value.response.status_code == 401
    assert "Access to model org/gated is restricted" in str(anonymous.value)
    with pytest.raises(GatedRepoError) as wrong:
        download(hub, cache, "config.json", repo="org/gated", token="hf_wrong")
    assert wrong.value.response.status_code == 403
    hub.grant("org/gated", "hf_good")
    assert download(hub, cache, "config.json", repo="org/gated", token="hf_good").read_bytes() == b"{}"
    assert [r.authorization_present for r in hub.requests] == [False, True, True, True]
    assert HfApi(endpoint=hub.endpoint).model_info("org/gated").gated == "auto"


# --- faults ------------------------------------------------------------------------------------
def test_status_fault_then_success(hub: TestHub, cache: Path, commit: str) -> None:
    hub.inject(Fault("status", status=500, method="GET", path_contains="model.bin"))
    for _attempt in range(2):  # 0.36 retries a 5xx GET itself; 2.x raises and the caller retries
        try:
            path = download(hub, cache, "model.bin")
            break
        except HfHubHTTPError as err:
            assert err.response.status_code == 500
    assert path.read_bytes() == WEIGHTS and hub.pending_faults == []
    assert [r.status for r in hub.requests if r.method == "GET"] == [500, 200]


def test_429_carries_retry_after(hub: TestHub, commit: str) -> None:
    hub.inject(Fault("status", status=429, retry_after=7, times=2))
    for _ in range(2):
        status, headers, _ = raw(hub, f"/api/models/{REPO}")
        assert (status, headers["Retry-After"], headers.get("X-Error-Code")) == (429, "7", None)
    assert raw(hub, f"/api/models/{REPO}")[0] == 200


def test_flip_corrupts_one_byte_and_client_does_not_notice(hub: TestHub, cache: Path, commit: str) -> None:
    hub.inject(Fault("flip", after_bytes=1234, path_contains="model.bin"))
    got = download(hub, cache, "model.bin").read_bytes()
    diff = [i for i in range(len(WEIGHTS)) if got[i] != WEIGHTS[i]]
    assert diff == [1234] and got[1234] == WEIGHTS[1234] ^ 0xFF


def _raw_partial(hub: TestHub, path: str) -> tuple[int, bytes, BaseException]:
    """GET with http.client, reading until the connection breaks."""
    conn = http.client.HTTPConnection("127.0.0.1", int(hub.endpoint.rsplit(":", 1)[1]), timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    got = b""
    try:
        while chunk := resp.read1(65536):
            got += chunk
        error: BaseException = AssertionError("body ended cleanly")
    except (ConnectionError, http.client.IncompleteRead) as err:
        error = err
    conn.close()
    return int(resp.headers["Content-Length"]), got, error


def test_drop_resets_and_truncate_closes_cleanly(hub: TestHub, commit: str) -> None:
    url = f"/{REPO}/resolve/{commit}/model.bin"
    hub.inject(Fault("drop", after_bytes=5000))
    length, got, error = _raw_partial(hub, url)
    assert length == len(WEIGHTS) and got == WEIGHTS[:5000] and isinstance(error, ConnectionResetError)
    hub.inject(Fault("truncate", after_bytes=7000))
    length, got, error = _raw_partial(hub, url)
    assert got == WEIGHTS[:7000] and isinstance(error, AssertionError)  # clean EOF: short body, no reset
    assert [r.bytes_sent for r in hub.requests] == [5000, 7000]
    assert raw(hub, url)[2] == WEIGHTS  # the hub keeps serving


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_broken_body_with_real_client(hub: TestHub, cache: Path, kind: str) -> None:
    """What each client does with a body cut at 11 MB of 12 MB (reset vs clean close)."""
    big = random.Random(11).randbytes(12 << 20)
    hub.add_repo("org/big", {"w.bin": big})
    hub.inject(Fault(kind, after_bytes=11 << 20, path_contains="w.bin"))
    resumes_in_call = HF_MAJOR >= 1 and kind == "truncate"  # 2.x retries RemoteProtocolError, not ReadError
    if not resumes_in_call:
        with pytest.raises(Exception):  # noqa: B017 - 0.36: ChunkedEncodingError; 2.x: httpx2.ReadError
            download(hub, cache, "w.bin", repo="org/big")
    assert download(hub, cache, "w.bin", repo="org/big").read_bytes() == big
    gets = [r for r in hub.requests if r.method == "GET"]
    assert (gets[0].status, gets[0].bytes_sent) == (200, 11 << 20) and len(gets) == 2
    # Partial data survives only in whole DOWNLOAD_CHUNK_SIZE (10 MiB) pieces; 2.x never resumes across calls.
    resumed = HF_MAJOR == 0 or resumes_in_call
    assert gets[1].range == (f"bytes={10 << 20}-" if resumed else None)
    assert hub.bytes_served("w.bin") == (11 << 20) + len(big) - (10 << 20 if resumed else 0)


def test_slow_fault_and_throttle(hub: TestHub, commit: str) -> None:
    url = f"/{REPO}/resolve/{commit}/model.bin"
    hub.inject(Fault("slow", bytes_per_second=1_000_000))
    start = time.monotonic()
    assert raw(hub, url)[2] == WEIGHTS
    assert time.monotonic() - start >= 0.25
    start = time.monotonic()
    raw(hub, url)
    assert time.monotonic() - start < 0.25  # the fault was used up
    hub.throttle(1_500_000)
    start = time.monotonic()
    assert raw(hub, url)[2] == WEIGHTS
    assert time.monotonic() - start >= 0.15
    hub.throttle(None)


def test_redirect_to_second_origin_drops_authorization(hub: TestHub, cache: Path) -> None:
    hub.add_repo("org/gated", {"model.bin": WEIGHTS}, gated=True)
    hub.grant("org/gated", "hf_good")
    hub.inject(Fault("redirect", path_contains="model.bin"))
    path = download(hub, cache, "model.bin", repo="org/gated", token="hf_good")
    assert path.read_bytes() == WEIGHTS
    log = hub.requests
    assert [(r.method, r.status) for r in log] == [("HEAD", 200), ("GET", 302), ("GET", 200)]
    assert log[2].path.startswith("/cdn/") and not log[2].authorization_present and log[1].authorization_present
    assert hub.bytes_served("/cdn/") == len(WEIGHTS)


# --- log and lifecycle -------------------------------------------------------------------------
def test_log_counts_and_bytes(hub: TestHub, cache: Path, commit: str) -> None:
    download(hub, cache, "model.bin")
    download(hub, cache, "config.json")
    assert hub.count() == 4 and hub.count("HEAD") == 2 and hub.count(contains="model.bin") == 2
    assert hub.bytes_served("model.bin") == len(WEIGHTS) and hub.bytes_served() == len(WEIGHTS) + len(FILES["config.json"])
    req = hub.requests[0]
    assert (req.method, req.status, req.bytes_sent, req.authorization_present) == ("HEAD", 200, 0, False)
    assert isinstance(req.client, int) and req.client > 0
    hub.clear_log()
    assert hub.count() == 0


def test_stop_closes_listener() -> None:
    hub = TestHub()
    with hub:
        endpoint = hub.endpoint
        hub.add_repo(REPO, FILES)
        assert raw(hub, f"/{REPO}/resolve/main/config.json")[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(endpoint + f"/{REPO}/resolve/main/config.json", timeout=2)
    with pytest.raises(RuntimeError):
        _ = hub.endpoint
