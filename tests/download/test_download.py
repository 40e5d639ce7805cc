"""Downloads through huggingface_hub's cache, against the test Hub, with the real client."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lyricsub_hub import ModelDownloader, ModelManager, RetryPolicy
from lyricsub_hub.testing.hub import Fault
from tests.helpers import add, payload, sha256, write_index

FAST = RetryPolicy(attempts=4, first_delay=0.05, max_delay=0.2, budget=5)


def downloader(index_file, cache_dir, hub, **kw) -> ModelDownloader:
    mgr = ModelManager(index_file, cache_dir, endpoint=hub.endpoint)
    return ModelDownloader(mgr, retry=kw.pop("retry", FAST), **kw)


def gets(hub, name: str) -> int:
    return hub.count(method="GET", contains=name)


def test_download_fetches_exactly_the_index_files_and_points_main(hub, small_repos, index_file, cache_dir) -> None:
    hub.add_repo("test/tiny-whisper", {**small_repos[1].files, "extra.bin": payload(3, 1000)})  # newer commit on main
    dl = downloader(index_file, cache_dir, hub)
    result = dl.download_model("whisper:tiny")
    assert result.success and result.bytes_fetched >= 500_000 and result.error is None
    snap = cache_dir / "models--test--tiny-whisper" / "snapshots" / small_repos[1].commit
    assert result.local_path == snap
    assert sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()) == [
        "config.json", "model.bin", "sub/vocabulary.json"]
    assert (snap / "model.bin").is_symlink()  # huggingface_hub's own layout
    assert (cache_dir / "models--test--tiny-whisper" / "refs" / "main").read_text() == small_repos[1].commit
    assert gets(hub, "extra.bin") == 0 and gets(hub, "model.bin") == 1
    hub.clear_log()
    again = dl.download_model("whisper:tiny")
    assert again.success and again.bytes_fetched == 0 and hub.requests == []


def test_progress_reports_bytes_speed_and_stages(hub, small_repos, index_file, cache_dir) -> None:
    events = []
    dl = downloader(index_file, cache_dir, hub)
    dl.set_progress_callback(events.append)
    assert dl.download_model("demucs:tiny").success
    stages = [e.stage for e in events]
    assert stages[0] == "plan" and stages[-1] == "done" and "verify" in stages and stages.count("file_done") == 2
    done = [e.model_bytes_done for e in events]
    assert done == sorted(done) and done[-1] == events[-1].model_bytes_total == sum(len(v) for v in small_repos[0].files.values())
    assert any(e.stage == "download" and e.file == "abc.safetensors" and e.speed > 0 for e in events)


def test_async_downloads_run_at_once(hub, small_repos, index_file, cache_dir) -> None:
    hub.throttle(2_000_000)  # 0.3 MB and 0.5 MB: sequential would take about 0.4 s
    dl = downloader(index_file, cache_dir, hub)

    async def both():
        return await asyncio.gather(dl.download_model_async("demucs:tiny"), dl.download_model_async("whisper:tiny"))

    started = time.monotonic()
    results = asyncio.run(both())
    elapsed = time.monotonic() - started
    assert all(r.success for r in results)
    starts = sorted(r.client for r in hub.requests if r.method == "GET")
    assert elapsed < sum(r.seconds for r in results)  # overlapped, not one after the other
    assert len(starts) >= 2


def test_cancel_stops_within_a_second_and_leaves_a_resumable_partial(hub, tmp_path, cache_dir) -> None:
    big = add(hub, "demucs:big", "test/big", {"w.safetensors": payload(5, 4_000_000)})
    index = write_index(tmp_path / "i.yaml", [big])
    hub.throttle(1_000_000)
    dl = downloader(index, cache_dir, hub)
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("r", dl.download_model("demucs:big")))
    worker.start()
    time.sleep(1.2)
    asked = time.monotonic()
    dl.cancel_download("demucs:big")
    worker.join(5)
    stopped = time.monotonic() - asked
    result = box["r"]
    assert not result.success and result.error_code == "cancelled" and result.exit_code == 130
    assert stopped < 1.5
    deadline = time.monotonic() + 1.5  # the server's side of the transfer ends too, long before the file would
    while not hub.count(method="GET", contains="w.safetensors") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.count(method="GET", contains="w.safetensors") == 1
    assert hub.bytes_served("w.safetensors") < 2_500_000
    mgr = ModelManager(index, cache_dir, endpoint=hub.endpoint)
    st = mgr.status("demucs:big")
    assert st.status == "missing" and 0 < st.resumable_bytes < 4_000_000
    hub.throttle(None)
    hub.clear_log()
    again = dl.download_model("demucs:big")
    assert again.success and again.resumed_bytes == st.resumable_bytes
    ranged = [r for r in hub.requests if r.method == "GET" and r.range]
    assert [r.range for r in ranged] == [f"bytes={st.resumable_bytes}-{4_000_000 - 1}"]
    assert ranged[0].bytes_sent == 4_000_000 - st.resumable_bytes  # only the rest


@pytest.mark.parametrize("fault", [
    Fault("status", status=500, path_contains="abc.safetensors", method="GET", times=2),
    Fault("status", status=503, path_contains="abc.safetensors", method="HEAD", times=1),
    Fault("status", status=429, retry_after=0.1, path_contains="abc.safetensors", method="GET", times=1),
    Fault("drop", after_bytes=100_000, path_contains="abc.safetensors", method="GET", times=1),
    Fault("truncate", after_bytes=50_000, path_contains="abc.safetensors", method="GET", times=1),
    Fault("flip", after_bytes=1234, path_contains="abc.safetensors", method="GET", times=1),
], ids=lambda f: f.kind + str(f.status or ""))
def test_transient_faults_are_retried_and_the_file_verifies(hub, small_repos, index_file, cache_dir, fault) -> None:
    hub.inject(fault)
    result = downloader(index_file, cache_dir, hub).download_model("demucs:tiny")
    assert result.success, result.error
    mgr = ModelManager(index_file, cache_dir)
    assert mgr.status("demucs:tiny", verify="deep").available


def test_dropped_connection_resumes_with_range(hub, tmp_path, cache_dir) -> None:
    repo = add(hub, "demucs:mid", "test/mid", {"w.safetensors": payload(6, 1_500_000)})
    index = write_index(tmp_path / "mid.yaml", [repo])
    hub.inject(Fault("drop", after_bytes=700_000, path_contains="w.safetensors", method="GET"))
    result = downloader(index, cache_dir, hub).download_model("demucs:mid")
    assert result.success
    ranged = [r for r in hub.requests if r.method == "GET" and "w.safetensors" in r.path and r.range]
    assert len(ranged) == 1
    start = int(ranged[0].range.removeprefix("bytes=").split("-")[0])
    assert ranged[0].range == f"bytes={start}-1499999"
    assert 500_000 <= start <= 700_000  # what arrived before the reset was kept
    assert ranged[0].bytes_sent == 1_500_000 - start  # and only the rest was asked for


def test_persistent_5xx_ends_in_one_clear_error_within_the_budget(hub, small_repos, index_file, cache_dir) -> None:
    hub.inject(Fault("status", status=503, path_contains="abc.safetensors", method="GET", times=100))
    started = time.monotonic()
    result = downloader(index_file, cache_dir, hub).download_model("demucs:tiny")
    assert time.monotonic() - started < 10
    assert not result.success and result.exit_code == 3 and result.error_code == "hub"
    assert "HTTP 503" in result.error and "abc.safetensors" in result.error and "lyricsub-hub warm demucs:tiny" in result.error
    assert not ModelManager(index_file, cache_dir).check_model_availability("demucs:tiny")


def _closed_port() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("endpoint,words", [
    (None, "Connection refused"),
    ("http://hub.invalid", "cannot resolve hub.invalid"),  # as on a machine with no network: the name does not resolve
])
def test_unreachable_hub_fails_fast(small_repos, index_file, cache_dir, endpoint, words) -> None:
    mgr = ModelManager(index_file, cache_dir, endpoint=endpoint or _closed_port())
    started = time.monotonic()
    result = ModelDownloader(mgr).download_model("demucs:tiny")
    assert time.monotonic() - started < 6
    assert result.exit_code == 3 and result.error_code == "unreachable" and "cannot be reached" in result.error
    assert words in result.error and "demucs:tiny" in result.error


@pytest.mark.parametrize("case,code,words", [
    ("repo", "not_found", "repo test/gone not found"),
    ("revision", "not_found", "revision"),
    ("file", "not_found", "file nope.bin does not exist"),
])
def test_unknown_repo_revision_and_file_each_say_which(hub, tmp_path, cache_dir, case, code, words) -> None:
    good = add(hub, "demucs:x", "test/x", {"a.bin": payload(1, 2000)})
    spec = {"repo": "test/gone" if case == "repo" else "test/x", "rev": "f" * 40 if case == "revision" else good.commit,
            "file": "nope.bin" if case == "file" else "a.bin"}
    index = tmp_path / "i.yaml"
    index.write_text(f"version: 1\nmodels:\n  demucs:x:\n    repo: {spec['repo']}\n    revision: {spec['rev']}\n"
                     f"    files:\n      - {{name: {spec['file']}, sha256: {sha256(good.files['a.bin'])}}}\n")
    result = downloader(index, cache_dir, hub).download_model("demucs:x")
    assert not result.success and result.error_code == code and result.exit_code == 3
    assert words in result.error


def test_gated_repo_says_accept_terms_and_never_shows_the_token(hub, tmp_path, cache_dir) -> None:
    gated = add(hub, "diarize:g", "test/gated", {"config.yaml": b"a: 1\n", "w.bin": payload(4, 3000)}, gated=True)
    index = write_index(tmp_path / "i.yaml", [gated], gated={"diarize:g"})
    token = "hf_SuperSecretToken1234567890"
    bad = ModelManager(index, cache_dir, endpoint=hub.endpoint, token="hf_WrongTokenAbcdefghijkl")
    result = ModelDownloader(bad, retry=FAST).download_model("diarize:g")
    assert result.error_code == "access_denied" and result.exit_code == 3
    assert "accept its terms" in result.error and "HF_TOKEN" in result.error and "hf_Wrong" not in result.error
    hub.grant("test/gated", token)
    good = ModelManager(index, cache_dir, endpoint=hub.endpoint, token=token)
    result = ModelDownloader(good, retry=FAST).download_model("diarize:g")
    assert result.success and token not in repr(result)


def test_not_enough_disk_space_fails_before_any_byte(hub, small_repos, tmp_path, cache_dir) -> None:
    huge = write_index(tmp_path / "i.yaml", small_repos)
    text = huge.read_text().replace("size: 300000", "size: 900000000000000")
    huge.write_text(text)
    dl = downloader(huge, cache_dir, hub)
    from lyricsub_hub.errors import DiskSpaceError

    with pytest.raises(DiskSpaceError, match=r"needs 900.0 TB .* free"):
        dl.check_disk_space(["demucs:tiny"])
    assert hub.count(method="GET") == 0


def test_offline_with_a_missing_model_fails_at_once_without_a_request(hub, small_repos, index_file, cache_dir, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    result = downloader(index_file, cache_dir, hub).download_model("demucs:tiny")
    assert time.monotonic() - started < 1
    assert not result.success and result.error_code == "offline" and "lyricsub-hub warm demucs:tiny" in result.error
    assert "abc.safetensors" in result.error and hub.requests == []


def test_hub_transfer_is_refused_with_the_reason(hub, small_repos, index_file, cache_dir) -> None:
    """--transfer hub handed the cache's file names to huggingface_hub's unchecked answers (issue 14): gone, said once."""
    from lyricsub_hub.errors import UsageError

    with pytest.raises(UsageError, match="unchecked server answers"):
        downloader(index_file, cache_dir, hub, transfer="hub")
    assert hub.requests == []
