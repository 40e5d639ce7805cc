"""A newcomer's first hour (issue 22): each friction seen then, as a test that failed on the code of that day."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest
from huggingface_hub import hf_hub_download

from lyricsub_hub.cli import COMMANDS, build_parser
from lyricsub_hub.cli.output import Bars
from lyricsub_hub.download.progress import DownloadProgress
from tests.cli.test_progress import run_on_a_terminal
from tests.helpers import closed_endpoint, run_cli, write_index

TORCH = importlib.util.find_spec("torch") is not None
DEMUCS = importlib.util.find_spec("demucs") is not None


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- 1. every option is checked before any work ----------------------------------------------------------
@pytest.mark.parametrize("command", ["warm", "load"])
def test_a_malformed_device_is_exit_2_before_any_request_with_this_commands_fix(hub, index_file, command) -> None:
    proc = run_cli(command, "demucs:tiny", "--device", "gpu", "--index", str(index_file), "--endpoint", hub.endpoint)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "unknown device 'gpu'" in line and f"(run: lyricsub-hub {command} demucs:tiny --device cpu)" in line
    assert hub.requests == []  # nothing was downloaded first


def test_a_gpu_that_is_not_there_fails_warm_before_the_download(hub, index_file) -> None:
    proc = run_cli("warm", "demucs:tiny", "--device", "cuda", "--index", str(index_file), "--endpoint", hub.endpoint)
    assert proc.returncode == 5  # a load failure, said before minutes of downloading rather than after
    line = one_line(proc.stderr)
    assert ("torch sees no GPU" in line if TORCH else "torch is not installed" in line), line
    assert "(run: lyricsub-hub warm demucs:tiny --device cpu)" in line
    assert hub.requests == []


# -- 2. lock without network --------------------------------------------------------------------------------
def test_lock_without_network_is_one_network_line_that_hints_lock(tmp_path, small_repos) -> None:
    index = write_index(tmp_path / "unpinned.yaml", small_repos[:1], pin=False)
    proc = run_cli("lock", "demucs:tiny", "--index", str(index), "--endpoint", closed_endpoint())
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert "demucs:tiny: cannot reach http://127.0.0.1:" in line and "Connection refused" in line
    assert "None" not in line and line.endswith("(run: lyricsub-hub lock demucs:tiny)")  # not warm: it would refuse
    doc = json.loads(run_cli("lock", "demucs:tiny", "--json", "--index", str(index), "--endpoint", closed_endpoint()).stdout)
    assert doc["errors"][0]["fix"]["command"] == "lock" and doc["errors"][0]["fix"]["args"] == ["demucs:tiny"]


# -- 3. progress where stderr is no terminal ---------------------------------------------------------------
def _event(stage: str, done: int, total: int = 40_000_000, message: str = "") -> DownloadProgress:
    return DownloadProgress("whisper:big", "model.bin", stage, done, total, done, total, 4_000_000.0,
                            (total - done) / 4_000_000, message)


def test_without_a_terminal_a_start_line_at_once_then_one_progress_line_per_interval() -> None:
    now = [0.0]
    stream = io.StringIO()
    bars = Bars(stream, interval=5.0, clock=lambda: now[0])
    bars(_event("plan", 0))
    assert stream.getvalue() == "whisper:big: fetching 40.0 MB\n"  # at once, before any byte
    for t in range(1, 121):  # 12 s of events every 0.1 s
        now[0] = t / 10
        bars(_event("download", t * 300_000))
    lines = stream.getvalue().splitlines()[1:]
    assert lines == ["whisper:big: 15.0 MB of 40.0 MB (37%) at 4.0 MB/s, about 6s left",
                     "whisper:big: 30.0 MB of 40.0 MB (75%) at 4.0 MB/s, about 2s left"]


def test_warm_without_a_terminal_says_it_started(hub, index_file) -> None:
    proc = run_cli("warm", "demucs:tiny", "--index", str(index_file), "--endpoint", hub.endpoint, "--no-load")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == "demucs:tiny: fetching 300.0 KB"


# -- 4. help ------------------------------------------------------------------------------------------------
def test_help_shows_no_hidden_option_and_every_option_has_words() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        text = sub.choices[name].format_help()
        assert "SUPPRESS" not in text and "--transfer" not in text, name
        for action in sub.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
    assert "--set SET" in sub.choices["warm"].format_help()


# -- 6. one rule for defaults and flags ------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "load", "warm", "export"])
def test_a_command_that_names_no_model_uses_the_default_set(hub, index_file, tmp_path, command) -> None:
    extra = {"warm": ["--endpoint", closed_endpoint(), "--no-load"],
             "export": ["-o", str(tmp_path / "b.tar")]}.get(command, [])
    proc = run_cli(command, "--json", "--index", str(index_file), *extra)
    doc = json.loads(proc.stdout.splitlines()[-1])
    # nothing is cached and (for warm) nothing is reachable: each command fails on exactly the default set
    assert sorted({e["model"] for e in doc["errors"]} | set(doc.get("skipped", []))) == ["demucs:tiny", "whisper:tiny"]
    assert proc.returncode in {"status": (1,), "load": (1,), "warm": (3,), "export": (1,)}[command]


# -- 7. said once ---------------------------------------------------------------------------------------------
def test_offline_doctor_does_not_warn_that_offline_is_not_set(index_file) -> None:
    proc = run_cli("--offline", "doctor", "--json", "--index", str(index_file))
    (offline,) = [f for f in json.loads(proc.stdout)["findings"] if f["check"] == "offline"]
    assert offline["level"] == "ok", offline


def test_a_failed_warm_of_a_set_names_every_model_that_failed(index_file) -> None:
    proc = run_cli("warm", "--set", "default", "--no-load", "--index", str(index_file),
                   "--endpoint", closed_endpoint())
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lyricsub-hub:")]
    assert len(errors) == 2 and "demucs:tiny: the Hub at" in errors[0] and "cannot be reached" in errors[0]
    assert errors[1] == "lyricsub-hub: not warmed either, for the same reason: whisper:tiny"


# -- 8. slow steps say what is happening -----------------------------------------------------------------------
@pytest.mark.skipif(not DEMUCS, reason="demucs is not installed here (the light huggingface_hub 2.x environment)")
def test_load_says_it_is_importing_before_the_slow_import(hub, small_repos, index_file, cache_dir) -> None:
    for name in small_repos[0].files:
        hf_hub_download(small_repos[0].repo, name, revision=small_repos[0].commit, cache_dir=cache_dir,
                        endpoint=hub.endpoint)
    # on a terminal: a line before the slow import; the tiny fake is no real model, so the load then fails (exit 5)
    screen = run_on_a_terminal(["load", "demucs:tiny", "--device", "cpu", "--index", str(index_file)], code=5)
    lines = [line for line in screen.replace("\r\n", "\n").splitlines() if line.startswith("lyricsub-hub:")]
    assert lines[0] == "lyricsub-hub: demucs:tiny: loading on cpu: importing demucs (the first import takes a few seconds)"
    assert len(lines) == 2 and lines[1].startswith("lyricsub-hub: demucs:tiny: ")
    # elsewhere a script gets the one error line alone
    proc = run_cli("load", "demucs:tiny", "--device", "cpu", "--index", str(index_file))
    assert proc.returncode == 5 and proc.stderr.strip() == lines[1]
