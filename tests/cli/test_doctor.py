"""`lyricsub-hub doctor` on a healthy, a broken and an offline machine: one screen, a fix for every problem,
exit 1 only for problems, no download ever, and seconds (not minutes) with the network down."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from lyricsub_hub import ModelDownloader, ModelManager
from lyricsub_hub.doctor import examine
from lyricsub_hub.index import load_index
from lyricsub_hub.remote.reach import PROBE_TIMEOUT
from tests.helpers import add, closed_endpoint, payload, repo_dir, run_cli, sha256, write_index

ORDER = ["index", "cache", "locks", "state", "versions", "libraries", "cuda", "offline", "telemetry", "nltk",
         "endpoint", "token"]
# the libraries the test index's families need (demucs, whisperx) and torch: a "healthy" machine has them
FULL_STACK = all(importlib.util.find_spec(m) for m in ("torch", "demucs", "whisperx"))


def warm(hub, index: Path, cache: Path, *names: str) -> None:
    dl = ModelDownloader(ModelManager(index, cache, endpoint=hub.endpoint))
    for name in names:
        assert dl.download_model(name).success
    dl.close()


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict, float]:
    started = time.monotonic()
    proc = run_cli("doctor", "--json", *args, env=env)
    took = time.monotonic() - started
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), took


def by_check(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def problems(doc: dict) -> set[tuple[str, str | None]]:
    return {(f["check"], f["model"]) for f in doc["findings"] if f["level"] == "problem"}


def test_a_healthy_machine_is_ready_and_nothing_is_downloaded(hub, small_repos, index_file, cache_dir) -> None:
    warm(hub, index_file, cache_dir, "demucs:tiny", "whisper:tiny")
    hub.clear_log()
    code, doc, took = doctor("--index", str(index_file), "--endpoint", hub.endpoint)
    checks = by_check(doc)
    assert [f["check"] for f in doc["findings"]][: len(ORDER)] == ORDER
    assert [f["model"] for f in checks["model"]] == ["demucs:tiny", "whisper:tiny"]  # the default set
    assert all(f["level"] == "ok" for f in checks["model"]) and checks["endpoint"][0]["details"]["reachable"] is True
    assert [(m["name"], m["status"], m["level"], m["ref"]) for m in doc["models"]] == [
        (r.model, "available", "ok", r.commit) for r in small_repos]
    assert checks["cache"][0]["level"] == "ok" and checks["state"][0]["level"] == "ok"
    assert checks["versions"][0]["details"]["huggingface_hub"]
    if FULL_STACK:
        assert code == 0 and doc["ok"] and doc["verdict"] in ("ok", "warning") and doc["errors"] == []
    else:  # the light environment: the only problem is the libraries it lacks, with the command that installs them
        assert code == 1 and problems(doc) == {("libraries", None)}
        assert checks["libraries"][0]["hint"] == "pip install 'lyricsub-hub[full]'"
    assert hub.requests == []  # the endpoint probe is one TCP connect: no HTTP request, no download
    assert doc["summary"]["problem"] == len(doc["errors"])

    text = run_cli("doctor", "--index", str(index_file), "--endpoint", hub.endpoint)
    assert ("verdict: ready" in text.stdout) == FULL_STACK and "whisper:tiny" in text.stdout

    code, doc, _ = doctor("--index", str(index_file), "--endpoint", hub.endpoint, env={"HF_HUB_OFFLINE": "1"})
    checks = by_check(doc)
    assert checks["offline"][0]["level"] == "ok" and "not probed" in checks["endpoint"][0]["message"]
    assert doc["offline"] and hub.requests == []


def test_a_broken_machine_gets_each_problem_with_its_fix(hub, small_repos, index_file, cache_dir, tmp_path) -> None:
    demucs, whisper = small_repos
    warm(hub, index_file, cache_dir, "demucs:tiny")
    blob = repo_dir(cache_dir, demucs.repo) / "blobs" / sha256(demucs.files["abc.safetensors"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))  # same size: only a hash finds it
    stale = repo_dir(cache_dir, whisper.repo) / "blobs" / f"{sha256(whisper.files['model.bin'])}.lyricsub-part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"z" * 123_000)

    proc = run_cli("doctor", "--json", "--index", str(index_file), "--endpoint", hub.endpoint)
    doc = json.loads(proc.stdout)
    checks = by_check(doc)
    assert proc.returncode == 1 and not doc["ok"]
    assert {("model", "demucs:tiny"), ("model", "whisper:tiny")} <= problems(doc)
    hints = {f["model"]: f["hint"] for f in checks["model"]}
    assert hints == {"demucs:tiny": "lyricsub-hub verify --repair demucs:tiny", "whisper:tiny": "lyricsub-hub warm whisper:tiny"}
    (downloads,) = checks["downloads"]
    assert downloads["level"] == "warning" and "123.0 KB" in downloads["message"] and "lyricsub-hub gc" in downloads["hint"]
    text = run_cli("doctor", "--index", str(index_file), "--endpoint", hub.endpoint)
    assert "demucs:tiny: corrupt in the cache" in text.stdout and "(fix: lyricsub-hub verify --repair demucs:tiny)" in text.stdout
    assert "inference will not work here" in text.stdout
    assert text.stderr == ""  # the findings said it once; stderr does not repeat them after the verdict

    state = Path(os.environ["LYRICSUB_STATE_DIR"])
    state.mkdir(exist_ok=True)
    state.chmod(0o777)  # anyone may write records here: none can vouch for a file
    code, doc, _ = doctor("--index", str(index_file))
    (finding,) = by_check(doc)["state"]
    assert code == 1 and finding["level"] == "problem" and finding["hint"].startswith(f"chmod go-w {state}")
    assert "sizes only" in by_check(doc)["model"][0]["message"]
    state.chmod(0o700)

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nmodels: [\n")
    code, doc, _ = doctor("--index", str(bad))
    assert code == 1 and ("index", None) in problems(doc) and by_check(doc)["cache"]  # the rest is still examined


@pytest.mark.parametrize("down", ["closed-port", "http://hub.invalid"])
def test_with_the_network_down_doctor_finishes_in_seconds(hub, small_repos, index_file, cache_dir, tmp_path, down) -> None:
    warm(hub, index_file, cache_dir, "demucs:tiny", "whisper:tiny")
    gated = add(hub, "diarize:g", "test/gated", {"config.yaml": b"a: 1\n"}, gated=True)
    index = write_index(tmp_path / "g.yaml", [*small_repos, gated], gated={"diarize:g"},
                        sets={"default": ["demucs:tiny", "whisper:tiny"]})
    url = closed_endpoint() if down == "closed-port" else down
    code, doc, took = doctor("--index", str(index), "--endpoint", url, "diarize:g", "demucs:tiny")
    (endpoint,) = by_check(doc)["endpoint"]
    assert endpoint["level"] == "warning" and endpoint["details"]["reachable"] is False
    assert ("cannot connect" if down == "closed-port" else "cannot resolve") in endpoint["message"]
    assert "access" not in by_check(doc)  # no gated check against a Hub that cannot be reached
    assert took < PROBE_TIMEOUT + 10, f"doctor took {took:.1f}s with the network down"  # the probe is bounded
    assert doc["seconds"] < PROBE_TIMEOUT + 2
    print(f"doctor with the network down ({down}): {took:.2f}s wall in a fresh process, {doc['seconds']:.2f}s examining")

    report = examine(index_file, endpoint=url)  # in-process, the library API
    assert report.seconds < PROBE_TIMEOUT + 2 and [f.level for f in report.findings if f.check == "endpoint"] == ["warning"]
    assert all(f.level == "ok" for f in report.findings if f.check == "model")


def test_gated_access_is_one_head_and_the_token_is_never_shown(hub, tmp_path, cache_dir) -> None:
    token = "hf_DoctorMustNotPrint0123456789abc"
    gated = add(hub, "diarize:g", "test/gated", {"config.yaml": b"a: 1\n", "pytorch_model.bin": payload(3, 1000)}, gated=True)
    index = write_index(tmp_path / "g.yaml", [gated], gated={"diarize:g"})
    code, doc, _ = doctor("--index", str(index), "--endpoint", hub.endpoint, "diarize:g")
    checks = by_check(doc)
    assert checks["token"][0]["level"] == "warning" and "diarize:g" in checks["token"][0]["message"]
    assert checks["access"][0]["level"] == "warning" and "HTTP 401" in checks["access"][0]["message"]

    proc = run_cli("doctor", "--index", str(index), "--endpoint", hub.endpoint, "diarize:g", env={"HF_TOKEN": token})
    assert "no access to the gated repo test/gated (HTTP 403)" in proc.stdout
    hub.grant("test/gated", token)
    hub.clear_log()
    for extra in ([], ["--json"]):
        proc = run_cli("doctor", *extra, "--index", str(index), "--endpoint", hub.endpoint, "diarize:g", env={"HF_TOKEN": token})
        assert token not in proc.stdout + proc.stderr and token[3:12] not in proc.stdout + proc.stderr
    assert "access to the gated repo test/gated is granted" in json.dumps(json.loads(proc.stdout)["findings"])
    assert {r.method for r in hub.requests} == {"HEAD"} and hub.count(method="HEAD") == 2  # one per run, never a GET
    assert "from HF_TOKEN; never shown" in proc.stdout


def test_offline_switch_telemetry_and_punkt_are_judged_from_the_environment(hub, tmp_path, cache_dir) -> None:
    import huggingface_hub.constants  # imported with HF_HUB_OFFLINE unset, as an app that went offline too late

    align = add(hub, "align:en", "test/align", {"config.json": b"{}\n", "vocab.json": b"{}\n"})
    index = write_index(tmp_path / "a.yaml", [align])
    late = examine(index, environ={"HF_HUB_OFFLINE": "1"}, endpoint=hub.endpoint)
    (offline,) = [f for f in late.findings if f.check == "offline"]
    assert not huggingface_hub.constants.HF_HUB_OFFLINE
    assert offline.level == "warning" and "read" in offline.message and "go_offline()" in (offline.hint or "")

    leaky = examine(index, environ={}, endpoint=hub.endpoint)
    (telemetry,) = [f for f in leaky.findings if f.check == "telemetry"]
    assert telemetry.level == "warning" and "HF_HUB_DISABLE_TELEMETRY=1" in telemetry.details["unset"]
    assert ("PYANNOTE_METRICS_ENABLED=false" in telemetry.details["unset"]) == bool(importlib.util.find_spec("pyannote"))
    quiet = examine(index, environ={"HF_HUB_DISABLE_TELEMETRY": "1", "PYANNOTE_METRICS_ENABLED": "false"}, endpoint=hub.endpoint)
    assert [f.level for f in quiet.findings if f.check == "telemetry"] == ["ok"]

    data = tmp_path / "nltk"
    punkt = data / "tokenizers" / "punkt_tab" / "english"
    punkt.mkdir(parents=True)
    for name in ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"):
        (punkt / name).write_text("")
    found = examine(index, environ={"NLTK_DATA": str(data)}, endpoint=hub.endpoint)
    assert [(f.level, str(data) in f.message) for f in found.findings if f.check == "nltk"] == [("ok", True)]
    # punkt_tab nowhere: judged by whether the package that carries it is installed, both cases decided here
    # (whatever this environment has) rather than by a guess at its module name
    from lyricsub_hub.doctor import _punkt
    from lyricsub_hub.families.punkt import PUNKT_PACKAGE

    selected = list(load_index(index).models.values())
    state = tmp_path / "state-punkt"
    with_package = _punkt(selected, {}, state, {PUNKT_PACKAGE: "2.2.1"})
    assert with_package.level == "ok" and str(state / "nltk_data") in with_package.message
    without = _punkt(selected, {}, state, {})
    assert without.level == "problem" and without.hint == f"pip install {PUNKT_PACKAGE}"
