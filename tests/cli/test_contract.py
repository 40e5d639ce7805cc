"""The JSON contract: one versioned envelope for every command, and warm's event lines shaped like it.
Scripts parse these keys; a change here is a change of schema, not a refactor."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli

ENVELOPE = {"schema", "command", "ok", "exit_code", "models", "errors"}
ERROR = {"code", "model", "message", "hint", "fix", "exit_code"}
MODEL = {"name", "status", "path", "family", "repo", "revision", "pinned", "expected_bytes", "present_bytes",
         "resumable_bytes", "cache", "files"}
FILE = {"name", "state", "size", "expected_size", "sha256", "checked", "detail"}
EVENT = {"schema", "command", "event", "model", "file", "bytes_done", "bytes_total", "model_bytes_done",
         "model_bytes_total", "speed", "eta", "message", "time"}
EXTRA = {  # the keys a command adds to the envelope
    "list": set(), "status": set(), "info": set(), "path": set(), "verify": set(), "load": set(),
    "rm": {"dry_run", "removed", "absent", "bytes_freed"}, "clear": {"dry_run", "removed", "absent", "bytes_freed"},
    "warm": {"bytes_fetched", "skipped"},
    "gc": {"dry_run", "cache_dir", "max_size", "keep", "size_before", "size_after", "fits", "bytes_to_free",
           "bytes_freed", "planned", "removed", "skipped"},
    "lock": {"index"},
    "export": {"bundle"},
    "import": {"bytes_read", "seconds"},
    "doctor": {"verdict", "summary", "cache_dir", "state_dir", "endpoint", "offline", "seconds", "findings"},
}
ROW = {  # the keys of one model row, where a command's rows are not MODEL (plus what it adds)
    "info": MODEL | {"license", "gated", "branch", "description"},
    "verify": MODEL | {"repaired", "before"},
    "warm": MODEL | {"bytes_fetched", "seconds"},
    "gc": {"name", "repo", "revision", "removed"},
    "lock": {"name", "old_revision", "revision", "changed", "files"},
    "export": {"name", "status", "path", "repo", "revision", "files"},
    "import": MODEL | {"import", "files_imported", "bytes_imported"},
    "doctor": MODEL | {"level", "ref"},
}


def _doc(*args: str) -> dict:
    proc = run_cli(*args, "--json")
    return json.loads(proc.stdout)


@pytest.fixture
def warmed(hub, index_file) -> str:
    proc = run_cli("warm", "--index", str(index_file), "--endpoint", hub.endpoint, "--no-load", "--json")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_warm_line_is_an_event_shaped_like_the_envelope(warmed) -> None:
    lines = [json.loads(line) for line in warmed.splitlines()]
    *events, summary = lines
    assert events and all(set(e) == EVENT for e in events)
    assert {e["schema"] for e in events} == {1} and {e["command"] for e in events} == {"warm"}
    assert {e["event"] for e in events} <= {"start", "progress", "file_done", "verify", "model_done", "error"}
    assert set(summary) == ENVELOPE | EXTRA["warm"] | {"event"} and summary["event"] == "summary"


@pytest.mark.parametrize("command", [("list",), ("status", "--set", "default"), ("info", "whisper:tiny"),
                                     ("path", "whisper:tiny"), ("verify",)])
def test_the_envelope_and_model_rows_keep_their_keys(warmed, index_file, command) -> None:
    doc = _doc(*command, "--index", str(index_file))
    assert doc["schema"] == 1 and doc["command"] == command[0] and doc["ok"] is True and doc["exit_code"] == 0
    assert set(doc) == ENVELOPE | EXTRA[command[0]]
    assert doc["errors"] == []
    for row in doc["models"]:
        extra = {"info": {"license", "gated", "branch", "description"}, "verify": {"repaired", "before"}}.get(command[0], set())
        assert set(row) == MODEL | extra
        assert all(set(f) == FILE for f in row["files"])


def test_errors_keep_their_keys_and_exit_codes(index_file) -> None:
    doc = _doc("status", "whisper:tiny", "--index", str(index_file))
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert [set(e) for e in doc["errors"]] == [ERROR]
    assert doc["errors"][0]["code"] == "not_available" and doc["errors"][0]["hint"] == "lyricsub-hub warm whisper:tiny"
    # the same fix as data, for a script that acts on it rather than parsing the line
    assert doc["errors"][0]["fix"] == {"command": "warm", "args": ["whisper:tiny"], "env": {}, "note": None}
    unknown = _doc("info", "nope", "--index", str(index_file))
    assert unknown["exit_code"] == 2 and unknown["errors"][0]["code"] == "usage"


def test_the_table_and_the_contract_name_the_same_commands() -> None:
    from lyricsub_hub.cli import COMMANDS

    assert set(COMMANDS) == set(EXTRA) and len(COMMANDS) == 14


def _argv(command: str, hub, index_file, tmp_path) -> list[str]:
    """One ordinary run of each command against a warmed cache."""
    if command == "lock":  # a copy of the index without pins, filled from the test Hub
        unpinned = tmp_path / "unpinned.yaml"
        unpinned.write_text(index_file.read_text().replace("revision:", "# revision:"))
        return ["lock", "demucs:tiny", "--index", str(unpinned), "--endpoint", hub.endpoint]
    if command == "import":
        bundle = tmp_path / "b.tar"
        assert run_cli("export", "demucs:tiny", "-o", str(bundle), "--index", str(index_file)).returncode == 0
        return ["import", str(bundle), "--index", str(index_file)]
    rest = {"list": [], "status": ["--set", "default"], "info": ["whisper:tiny"], "path": ["whisper:tiny"],
            "verify": [], "rm": ["whisper:tiny", "--yes"], "clear": ["--yes"], "gc": ["--dry-run"],
            "warm": ["demucs:tiny", "--no-load", "--endpoint", hub.endpoint], "load": ["whisper:tiny", "--device", "cpu"],
            "export": ["demucs:tiny", "-o", str(tmp_path / "e.tar")], "doctor": ["--offline"]}[command]
    return [command, *rest, "--index", str(index_file)]


@pytest.mark.parametrize("command", sorted(EXTRA))
def test_every_command_keeps_its_envelope_and_row_keys(warmed, hub, index_file, tmp_path, command) -> None:
    proc = run_cli(*_argv(command, hub, index_file, tmp_path), "--json")
    doc = json.loads(proc.stdout.splitlines()[-1])
    if command == "warm":
        assert doc.pop("event") == "summary"
    assert set(doc) == ENVELOPE | EXTRA[command], proc.stderr
    assert doc["schema"] == 1 and doc["command"] == command and doc["exit_code"] == proc.returncode
    assert doc["ok"] is (proc.returncode == 0)
    assert all(set(e) == ERROR for e in doc["errors"])
    if command == "doctor":  # ready where the speech stack is installed; a problem (exit 1) per missing library else
        problems = [f for f in doc["findings"] if f["level"] == "problem"]
        assert proc.returncode == (1 if problems else 0) and len(doc["errors"]) == len(problems)
        assert all(f["check"] in ("libraries", "nltk") for f in problems), problems
    if command not in ("load", "doctor"):  # the tiny whisper fake is no real model: load fails (exit 5), one error row
        assert proc.returncode == 0 and doc["errors"] == [], proc.stderr
        # each says which models it touched (gc: none here, the warm cache holds nothing to collect)
        assert (doc.get("removed") if command in ("rm", "clear") else doc["models"]) or command == "gc", command
    elif command == "load":
        assert proc.returncode == 5 and [e["model"] for e in doc["errors"]] == ["whisper:tiny"]
    for row in doc["models"]:
        assert set(row) == ROW.get(command, MODEL), command
        assert command not in ("list", "status", "path", "info") or all(set(f) == FILE for f in row["files"])


def test_removal_reports_what_it_freed(warmed, index_file) -> None:
    doc = _doc("rm", "whisper:tiny", "--yes", "--index", str(index_file))
    assert set(doc) == ENVELOPE | EXTRA["rm"]
    assert doc["removed"] == ["whisper:tiny"] and doc["absent"] == [] and doc["bytes_freed"] > 0
