"""Helpers every test layer shares: repos on the test Hub, index files, the CLI in a fresh process."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lyricsub_hub.index import FileSpec, ModelSpec
from lyricsub_hub.index.write import write_index as _write_index
from lyricsub_hub.testing.hub import TestHub

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Repo:
    model: str  # index name, e.g. "demucs:tiny"
    repo: str
    commit: str
    files: dict[str, bytes]

    def spec(self, *, pin: bool = True, gated: bool = False) -> ModelSpec:
        files = tuple(FileSpec(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in self.files.items())
        return ModelSpec(self.model, self.model.split(":", 1)[0], self.repo, self.commit if pin else None, files,
                         gated=gated)


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def add(hub: TestHub, model: str, repo: str, files: dict[str, bytes], **kw) -> Repo:
    commit = hub.add_repo(repo, files, **kw)
    return Repo(model, repo, commit, dict(files))


def write_index(path: Path, repos: list[Repo], *, sets: dict[str, list[str]] | None = None, gated: set[str] = frozenset(),
                pin: bool = True) -> Path:
    """An index pinning each repo's commit, sizes and sha256, as `lyricsub-hub lock` would."""
    return _write_index(path, [r.spec(pin=pin, gated=r.model in gated) for r in repos], sets)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The real command in a fresh process (needed wherever HF_HUB_OFFLINE must be read at import).

    LYRICSUB_CLI_PYTHONPATH runs another checkout's command instead (to show a test failing on older code).
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    other = os.environ.get("LYRICSUB_CLI_PYTHONPATH")
    if other:
        full_env["PYTHONPATH"] = other
    return subprocess.run([sys.executable, "-m", "lyricsub_hub", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=other or ROOT, **kw)


def closed_endpoint() -> str:
    """An http:// endpoint on loopback where nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def repo_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def held_bytes(cache: Path, repo: str, sha: str | None = None) -> int:
    """Bytes interrupted downloads of this repo (or of one blob) hold, as their ranges records say."""
    from lyricsub_hub.cache.layout import RANGES_SUFFIX
    from lyricsub_hub.cache.parts import held_bytes as held

    blobs = repo_dir(cache, repo) / "blobs"
    if sha is not None:
        return held(cache, repo, sha)
    return sum(held(cache, repo, p.name.split(".")[0]) for p in blobs.glob(f"*{RANGES_SUFFIX}")) if blobs.is_dir() else 0


def plant_part(cache: Path, repo: str, data: bytes, upto: int, *, content: bytes | None = None, extra: bytes = b"") -> Path:
    """What a warm killed after `upto` bytes of `data` leaves: a part file and its ranges record (content
    replaces the bytes written, for a corrupted prefix; extra is appended behind the record's back)."""
    from lyricsub_hub.cache.parts import PartFile

    part = PartFile(cache, repo, sha256(data), len(data))
    if upto:
        part.write(0, content if content is not None else data[:upto])
    part.close()
    if extra:
        with open(part.paths.part, "ab") as fh:
            fh.write(extra)
    return part.paths.part


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (killed, or giving up on a slow body) is normal here."""


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 for a test's own handler (proxies in front of the test Hub); a context
    manager that serves while open."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
