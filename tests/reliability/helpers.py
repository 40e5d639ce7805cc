"""Shared helpers of the reliability suite: CLI processes, cache inspection, a rewriting proxy, result files.

Everything here talks to 127.0.0.1 only, and every wait is bounded in time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.helpers import ROOT, LoopbackServer, Repo, add, held_bytes, payload, plant_part, run_cli, write_index

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "Exchange",
    "Proxy",
    "Repo",
    "add",
    "assert_clean_failure",
    "blob_state",
    "blobs_dir",
    "cli_env",
    "error_lines",
    "finish",
    "hf_version",
    "kill_all",
    "payload",
    "plant_part",
    "repo_dir",
    "run_cli",
    "sha256",
    "snapshot_is_true",
    "spawn_cli",
    "tree_listing",
    "wait_until",
    "warm_args",
    "write_index",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / ".results"


def hf_version() -> str:
    from importlib.metadata import version

    return version("huggingface_hub")


def write_results(name: str, counts: dict[str, Any]) -> Path:
    """tests/reliability/.results/<name>.json: the latest run's counts, plus the latest per huggingface_hub version.

    Both environments write the same file, so each one's counts are also kept under `by_huggingface_hub`.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    try:
        previous = json.loads(path.read_text())
        by_env = previous.get("by_huggingface_hub", {}) if isinstance(previous, dict) else {}
    except (OSError, ValueError):
        by_env = {}
    env = {"huggingface_hub": hf_version(), "python": sys.version.split()[0],
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record = {**env, **counts}
    by_env[env["huggingface_hub"]] = record
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**record, "by_huggingface_hub": by_env}, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def warm_args(endpoint: str, index: Path, *names: str, cache_dir: Path | None = None) -> list[str]:
    args = ["warm", *names, "--index", str(index), "--endpoint", endpoint, "--no-load"]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    return args


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    return env


def spawn_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m lyricsub_hub ARGS` in the background (same environment as run_cli)."""
    return subprocess.Popen([sys.executable, "-m", "lyricsub_hub", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=cli_env(env))


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait (bounded) for a process; kill it if it overruns, so no test leaves one behind."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"process {proc.args} ran past {timeout}s; stderr: {err[-2000:]}") from None
    return proc.returncode, out, err


def kill_all(procs: Iterable[subprocess.Popen]) -> None:
    """Clean-up for procs a failing test may leave running: SIGKILL each by its own pid."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=10)
            except Exception:
                pass


def error_lines(stderr: str) -> list[str]:
    """The CLI's error lines (progress lines on stderr do not start with the program name)."""
    return [line for line in stderr.splitlines() if line.startswith("lyricsub-hub:")]


def assert_clean_failure(code: int, stdout: str, stderr: str, codes: Iterable[int], *words: str) -> str:
    """One clear error line, an expected exit code, no traceback; returns the line."""
    codes = tuple(codes)
    assert code in codes, f"exit {code}, expected one of {codes}; stderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr[-3000:]
    lines = error_lines(stderr)
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def repo_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def blobs_dir(cache: Path, repo: str) -> Path:
    return repo_dir(cache, repo) / "blobs"


def blob_state(cache: Path, repo: str, data: bytes) -> tuple[int, bool]:
    """(bytes held, complete) of an LFS file in the blob store: the published blob, else what its part file holds."""
    blob = blobs_dir(cache, repo) / sha256(data)
    try:
        return blob.stat().st_size, True
    except FileNotFoundError:
        return held_bytes(cache, repo, sha256(data)), False


def snapshot_is_true(cache: Path, repo: Repo) -> bool:
    """Independent of the library: every file of the pinned snapshot is there with exactly the pinned bytes."""
    snap = repo_dir(cache, repo.repo) / "snapshots" / repo.commit
    for name, data in repo.files.items():
        try:
            if (snap / name).read_bytes() != data:
                return False
        except OSError:
            return False
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tree_listing(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """Every file and link under root (name -> size, mtime), not descending into `skip` folders."""
    skip = {os.path.realpath(p) for p in skip}
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in skip]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, root)] = (st.st_size, st.st_mtime_ns)
    return out


# --- a rewriting proxy: Hub answers the TestHub cannot give (lying sizes, hostile names, echoed tokens) ---------


@dataclass
class Exchange:
    """One proxied request and the upstream answer, which a rewrite hook may change in place."""

    method: str
    path: str
    request_headers: dict[str, str]
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    content_length: int | None = None  # set to send a Content-Length other than len(body) (HEAD answers)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str | None) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))


_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


class Proxy(LoopbackServer):
    """HTTP on 127.0.0.1 forwarding to `upstream`; `rewrite(exchange)` may alter any answer. A context manager."""

    def __init__(self, upstream: str, rewrite: Callable[[Exchange], None] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rewrite = rewrite
        self.log: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "host"}
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    upstream_length = resp.getheader("Content-Length")
                    ex = Exchange(self.command, self.path, dict(self.headers.items()), resp.status,
                                  [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP], data,
                                  int(upstream_length) if self.command == "HEAD" and upstream_length else None)
                finally:
                    conn.close()
                if proxy.rewrite is not None:
                    try:
                        proxy.rewrite(ex)
                    except Exception as exc:  # a broken hook must show up in the test, not as a hang
                        with proxy._lock:
                            proxy.errors.append(repr(exc))
                        raise
                with proxy._lock:
                    proxy.log.append((self.command, self.path, ex.status))
                self.send_response(ex.status)
                for key, value in ex.headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(ex.content_length if ex.content_length is not None else len(ex.body)))
                self.end_headers()
                if self.command != "HEAD" and ex.body:
                    self.wfile.write(ex.body)

            do_GET = do_HEAD = do_POST = _forward

        self.serve(Handler)
