"""The command line: output, JSON envelope, exit codes, options before or after the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from huggingface_hub import hf_hub_download

from lyricsub_hub.cli import main
from tests.helpers import run_cli


def fill(hub, repo, cache_dir) -> None:
    for name in repo.files:
        hf_hub_download(repo.repo, name, revision=repo.commit, cache_dir=cache_dir, endpoint=hub.endpoint)


def test_status_json_before_and_after_the_command(hub, small_repos, index_file, cache_dir, capsys) -> None:
    fill(hub, small_repos[0], cache_dir)
    code = main(["--json", "--index", str(index_file), "status", "demucs:tiny", "whisper:tiny", "--cache-dir", str(cache_dir)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["exit_code"] == 1 and not doc["ok"]
    assert [(m["name"], m["status"]) for m in doc["models"]] == [("demucs:tiny", "available"), ("whisper:tiny", "missing")]
    assert doc["models"][0]["path"].endswith(small_repos[0].commit)
    assert doc["errors"][0]["model"] == "whisper:tiny" and doc["errors"][0]["hint"] == "lyricsub-hub warm whisper:tiny"


def test_status_text_names_the_next_command(small_repos, index_file, capsys) -> None:
    assert main(["status", "--set", "default", "--index", str(index_file)]) == 1
    out, err = capsys.readouterr()
    assert "demucs:tiny" in out and "missing" in out and "run: lyricsub-hub warm demucs:tiny" in out
    # the table says which models and what to run; stderr does not repeat them, it sums them up in one line
    assert err.splitlines() == ["lyricsub-hub: 2 of 2 models not available: demucs:tiny, whisper:tiny (the table above says why)"]


def test_path_prints_only_the_folder_and_fails_cleanly(hub, small_repos, index_file, cache_dir, capsys) -> None:
    assert main(["path", "whisper:tiny", "--index", str(index_file)]) == 1
    assert capsys.readouterr().out == ""
    fill(hub, small_repos[1], cache_dir)
    assert main(["path", "tiny", "--index", str(index_file)]) == 2  # ambiguous bare name: usage error
    capsys.readouterr()
    assert main(["path", "whisper:tiny", "--index", str(index_file)]) == 0
    assert capsys.readouterr().out.strip() == str(cache_dir / "models--test--tiny-whisper" / "snapshots" / small_repos[1].commit)


def test_list_info_rm_clear(hub, small_repos, index_file, cache_dir, capsys) -> None:
    fill(hub, small_repos[0], cache_dir)
    assert main(["list", "--json", "--index", str(index_file)]) == 0
    assert {m["name"]: m["status"] for m in json.loads(capsys.readouterr().out)["models"]} == {
        "demucs:tiny": "available", "whisper:tiny": "missing"}
    assert main(["info", "demucs:tiny", "--index", str(index_file)]) == 0
    assert "test/tiny-demucs" in capsys.readouterr().out
    assert main(["clear", "--index", str(index_file)]) == 2  # not a terminal: only --yes removes
    assert "--yes" in capsys.readouterr().err
    assert main(["rm", "demucs:tiny", "--index", str(index_file)]) == 2  # rm asks the same way
    assert "lyricsub-hub rm demucs:tiny --yes" in capsys.readouterr().err
    assert main(["rm", "demucs:tiny", "--dry-run", "--json", "--index", str(index_file)]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["removed"] == ["demucs:tiny"] and dry["bytes_freed"] >= 300_000
    assert (cache_dir / "models--test--tiny-demucs" / "snapshots").is_dir()  # the dry run removed nothing
    assert main(["rm", "demucs:tiny", "--yes", "--json", "--index", str(index_file)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["removed"] == ["demucs:tiny"] and doc["bytes_freed"] == dry["bytes_freed"] and doc["dry_run"] is False
    assert not (cache_dir / "models--test--tiny-demucs" / "snapshots").exists()


@pytest.mark.parametrize("argv,code,words", [
    (["status", "nope"], 2, "unknown model 'nope'"),
    (["status", "--set", "nope"], 2, "unknown set"),
    (["frobnicate"], 2, "invalid choice"),
    (["status", "x", "--index", "/nonexistent.yaml"], 2, "cannot read the index"),
])
def test_bad_input_is_one_line_and_exit_2(argv, code, words, index_file) -> None:
    args = argv if "--index" in argv else argv + ["--index", str(index_file)]
    proc = run_cli(*args)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_bad_index_names_file_line_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nmodels:\n  demucs:x:\n    repo: a/b\n    revision: 123\n")
    proc = run_cli("list", "--index", str(bad))
    assert proc.returncode == 2 and f"{bad}:5 [demucs:x.revision]" in proc.stderr and "Traceback" not in proc.stderr


def test_import_is_light() -> None:
    code = ("import sys, lyricsub_hub; heavy = [m for m in ('torch', 'demucs', 'whisperx', 'huggingface_hub', 'yaml') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_warm_recorded_path_and_status_load_no_hashing_and_no_argparse(hub, small_repos, index_file, cache_dir) -> None:
    """A container calls these on every start: with the files already hashed and recorded, nothing is hashed again,
    so OpenSSL (hashlib) is never loaded, and the fast two are parsed without argparse."""
    fill(hub, small_repos[1], cache_dir)
    assert run_cli("status", "whisper:tiny", "--index", str(index_file)).returncode == 0  # hashes once, records it
    for argv in (["path", "whisper:tiny"], ["status", "whisper:tiny"]):
        code = (f"import sys; from lyricsub_hub.cli import main; rc = main({[*argv, '--index', str(index_file)]!r}); "
                "print(rc, sorted(m for m in ('hashlib', '_hashlib', 'argparse') if m in sys.modules), file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.stderr.strip().splitlines()[-1] == "0 []", proc.stderr


def test_console_script_start_loads_no_inspect(hub, small_repos, index_file, cache_dir) -> None:
    """The console script's own start (lyricsub_hub.__main__:run) leaves inspect, ast and tokenize unloaded on the
    warm path: about 7 ms of the start-up goal (figure E)."""
    fill(hub, small_repos[1], cache_dir)
    assert run_cli("status", "whisper:tiny", "--index", str(index_file)).returncode == 0
    for argv in (["path", "whisper:tiny"], ["status", "whisper:tiny"]):
        code = (f"import sys, atexit; sys.argv = ['lyricsub-hub', *{[*argv, '--index', str(index_file)]!r}]; "
                "atexit.register(lambda: print(sorted(m for m in ('inspect', 'ast', 'tokenize') if m in sys.modules), "
                "file=sys.stderr)); from lyricsub_hub.__main__ import run; run()")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
