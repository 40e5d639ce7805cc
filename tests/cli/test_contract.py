"""The JSON contract: one versioned envelope for every command, and warm's event lines shaped like it.
Scripts parse these keys; a change here is a change of schema, not a refactor."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli

ENVELOPE = {"schema", "command", "ok", "exit_code", "models", "errors"}
ERROR = {"code", "model", "message", "hint", "exit_code"}
MODEL = {"name", "status", "path", "family", "repo", "revision", "pinned", "expected_bytes", "present_bytes",
         "resumable_bytes", "cache", "files"}
FILE = {"name", "state", "size", "expected_size", "sha256", "checked", "detail"}
EVENT = {"schema", "command", "event", "model", "file", "bytes_done", "bytes_total", "model_bytes_done",
         "model_bytes_total", "speed", "eta", "message", "time"}
EXTRA = {  # the keys a command adds to the envelope
    "list": set(), "status": set(), "info": set(), "path": set(), "verify": set(),
    "rm": {"dry_run", "removed", "absent", "bytes_freed"}, "clear": {"dry_run", "removed", "absent", "bytes_freed"},
    "warm": {"bytes_fetched"},
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
    unknown = _doc("info", "nope", "--index", str(index_file))
    assert unknown["exit_code"] == 2 and unknown["errors"][0]["code"] == "usage"


def test_removal_reports_what_it_freed(warmed, index_file) -> None:
    doc = _doc("rm", "whisper:tiny", "--yes", "--index", str(index_file))
    assert set(doc) == ENVELOPE | EXTRA["rm"]
    assert doc["removed"] == ["whisper:tiny"] and doc["absent"] == [] and doc["bytes_freed"] > 0
