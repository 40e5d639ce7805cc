"""Tokens never appear in any output, whatever a Hub echoes back."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import Exchange, Proxy, add, payload, run_cli, warm_args, write_index, write_results

pytestmark = pytest.mark.reliability

STATS: dict = {"tokens": {"runs": 0, "leaks": 0}}


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    write_results("tokens", STATS)


# --- tokens never appear in output ------------------------------------------------------------------------------------

TOKEN = "hf_RelTokenDoNotPrint0123456789abcdefABC"


def _echo_token(status: int, code: str | None):
    """A Hub that puts the caller's Authorization header into every error it gives, in headers and body."""
    def rewrite(ex: Exchange) -> None:
        if "/resolve/" not in ex.path:
            return
        auth = ex.request_headers.get("Authorization") or ex.request_headers.get("authorization") or "none"
        ex.status = status
        ex.headers = [("Content-Type", "application/json"), ("X-Error-Message", f"bad credentials {auth}"),
                      ("X-Request-Id", auth), ("Retry-After", "0")] + ([("X-Error-Code", code)] if code else [])
        ex.body = json.dumps({"error": f"bad credentials {auth}", "token": auth}).encode()
        ex.content_length = None
    return rewrite


def _commit_is_token(ex: Exchange) -> None:
    """Echo the token where huggingface_hub quotes it in an exception text ("Invalid pointer path ... revision=...")."""
    if "/resolve/" in ex.path and ex.path.endswith(".yaml") and ex.status == 200:
        auth = ex.request_headers.get("Authorization") or ex.request_headers.get("authorization") or ""
        ex.set_header("X-Repo-Commit", "../" + auth.removeprefix("Bearer ").strip())


def test_token_never_appears_in_warm_or_verify_output(hub, tmp_path, cache_dir) -> None:
    gated = add(hub, "diarize:tok", "test/tok-gated", {"config.yaml": b"a: 1\n", "w.bin": payload(701, 30_000)}, gated=True)
    denied = add(hub, "diarize:nope", "test/tok-denied", {"config.yaml": b"b: 1\n"}, gated=True)
    plain = add(hub, "demucs:tokp", "test/tok-plain", {"p.yaml": b"p: 1\n", "w.safetensors": payload(702, 30_000)})
    hub.grant("test/tok-gated", TOKEN)
    index = write_index(tmp_path / "tok.yaml", [gated, denied, plain], gated={"diarize:tok", "diarize:nope"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    env = {"HF_TOKEN": TOKEN}
    assert run_cli(*warm_args(hub.endpoint, index, "diarize:tok"), env=env).returncode == 0

    with Proxy(hub.endpoint, _echo_token(400, None)) as e400, Proxy(hub.endpoint, _echo_token(404, "EntryNotFound")) as e404, \
            Proxy(hub.endpoint, _echo_token(429, None)) as e429, Proxy(hub.endpoint, _commit_is_token) as ecommit:
        runs = {
            "warm-ok": (warm_args(hub.endpoint, index, "diarize:tok"), 0),
            "warm-gated-denied": (warm_args(hub.endpoint, index, "diarize:nope"), 3),
            "warm-unreachable": (warm_args(dead, index, "demucs:tokp"), 3),
            "warm-echo-400": (warm_args(e400.endpoint, index, "demucs:tokp"), 3),
            "warm-echo-404": (warm_args(e404.endpoint, index, "demucs:tokp"), 3),
            "warm-echo-429": (warm_args(e429.endpoint, index, "demucs:tokp"), 3),
            "warm-token-in-exception": (warm_args(ecommit.endpoint, index, "demucs:tokp"), 3),
            "verify": (["verify", "diarize:tok", "--index", str(index)], 0),
            "verify-deep-missing": (["verify", "--deep", "demucs:tokp", "--index", str(index)], 1),
            "verify-repair-echo-400": (["verify", "--repair", "demucs:tokp", "--index", str(index),
                                        "--endpoint", e400.endpoint], 1),
        }
        jobs = [(f"{key}{'-json' if js else ''}", args + (["--json"] if js else []), code) for key, (args, code) in runs.items()
                for js in (False, True)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(lambda job: (job, run_cli(*job[1], env=env, timeout=120)), jobs))
    leaks = []
    pieces = [TOKEN, TOKEN[3:15], TOKEN[-12:]]
    for (key, _, code), proc in done:
        STATS["tokens"]["runs"] += 1
        text = proc.stdout + proc.stderr
        assert "Traceback" not in text, (key, proc.stderr[-1500:])
        expected = (1, 3) if key.startswith("verify-repair") else (code,)
        assert proc.returncode in expected, (key, proc.returncode, proc.stderr[-800:])
        if key.endswith("-json") and key.startswith("warm"):
            assert json.loads(proc.stdout.splitlines()[-1])["event"] == "summary"
        elif key.endswith("-json"):
            json.loads(proc.stdout)
        leaks += [key for piece in pieces if piece in text]
    STATS["tokens"]["leaks"] = len(leaks)
    assert leaks == []
    assert e400 and sum(1 for m, p, _ in e400.log if "/resolve/" in p) > 0  # the echoing Hub was really asked
