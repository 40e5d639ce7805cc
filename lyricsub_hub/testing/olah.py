"""olah (a Hugging Face Hub mirror, `olah` 0.5.4 on PyPI) as a subprocess on 127.0.0.1 in front of an upstream Hub.

For the mirror tests and the bench. olah needs huggingface_hub >= 1.27, so it lives in its own virtual
environment (`make install-olah`: ROOT/.venv-olah); LYRICSUB_OLAH_CLI names another olah-cli. Facts this
relies on (measured against the test Hub, see the olah notes):

- `olah-cli -c olah.toml` reads everything from the file (offline mode exists only there) except --log-path;
  it answers on its port about half a second after start; `GET /-/olah-ready/x/y/z` is a local 404 (no
  upstream call), so it is the readiness probe; a port already taken makes olah exit (rc 3), and a new port
  is tried.
- SIGINT stops it gracefully (it waits for a response in flight); a second SIGINT forces it; SIGTERM does not.
  It runs in a session of its own so a last-resort SIGKILL reaches olah and nothing else.
- It writes only its workdir (olah.toml, repos/ = its cache, logs/, olah.out); reusing a workdir with
  offline=True serves what an online run cached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

OLAH_ENV = "LYRICSUB_OLAH_CLI"
ROOT = Path(__file__).resolve().parent.parent.parent


def olah_cli() -> Path | None:
    """$LYRICSUB_OLAH_CLI, else ROOT/.venv-olah/bin/olah-cli; None when neither is an executable file."""
    named = os.environ.get(OLAH_ENV)
    path = Path(named) if named else ROOT / ".venv-olah" / "bin" / "olah-cli"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_reason() -> str:
    """Why the olah tests cannot run here (for pytest.skip), or '' when they can."""
    if olah_cli() is not None:
        return ""
    where = os.environ.get(OLAH_ENV) or str(ROOT / ".venv-olah" / "bin" / "olah-cli")
    return f"olah is not installed at {where}: run `make install-olah` (or set {OLAH_ENV})"


@dataclass(frozen=True)
class Olah:
    """A running olah: its endpoint, the folder it works in, and its process."""

    endpoint: str
    workdir: Path
    process: subprocess.Popen[bytes]
    offline: bool

    @property
    def repos(self) -> Path:
        """olah's own cache (files/models/<org>/<name>/resolve/<commit>/<file>/blocks/...)."""
        return self.workdir / "repos"

    def output(self) -> str:
        """What olah printed (its stdout and stderr), for a failing test's message."""
        try:
            return (self.workdir / "olah.out").read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(upstream: str, port: int, repos: Path, offline: bool, metadata_ttl: int) -> str:
    up = urlsplit(upstream)
    me = f"127.0.0.1:{port}"
    return (f'[basic]\nhost = "127.0.0.1"\nport = {port}\nhf-scheme = "{up.scheme}"\nhf-netloc = "{up.netloc}"\n'
            f'hf-lfs-netloc = "{up.netloc}"\nmirror-scheme = "http"\nmirror-netloc = "{me}"\n'
            f'mirror-lfs-netloc = "{me}"\nrepos-path = "{repos}"\nmetadata-cache-ttl = {metadata_ttl}\n'
            f"[accessibility]\noffline = {str(bool(offline)).lower()}\n")


def _ready(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(f"{endpoint}/-/olah-ready/x/y/z", timeout=2).close()  # loopback, plain http
    except urllib.error.HTTPError:
        return True  # the 404 of a route olah does not have: it is listening
    except OSError:
        return False
    return True


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT (graceful), a second SIGINT (forced), then SIGKILL to olah's own process group; always reaped."""
    for wait in (3.0, 5.0):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own session: olah alone
        process.wait(timeout=10)


@contextlib.contextmanager
def olah_server(upstream: str, workdir: str | os.PathLike[str], *, offline: bool = False, port: int | None = None,
                metadata_ttl: int = 0, startup_timeout: float = 30.0) -> Iterator[Olah]:
    """Start olah on 127.0.0.1 in front of `upstream`; yield it once it answers; stop it on the way out.

    workdir is olah's cwd and HOME. metadata_ttl=0: /api/models answers follow upstream at once (olah's default
    keeps a stale sha for 10 minutes). Raises RuntimeError when olah exits or never answers.
    """
    cli = olah_cli()
    if cli is None:
        raise RuntimeError(missing_reason())
    work = Path(workdir).resolve()
    (work / "repos").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HOME=str(work), NO_PROXY="*", no_proxy="*")
    for attempt in range(3):  # a port found free can be taken before olah binds it
        chosen = port or _free_port()
        endpoint = f"http://127.0.0.1:{chosen}"
        (work / "olah.toml").write_text(_config(upstream, chosen, work / "repos", offline, metadata_ttl))
        with open(work / "olah.out", "ab") as out:
            process = subprocess.Popen([str(cli), "-c", str(work / "olah.toml"), "--log-path", str(work / "logs")],
                                       cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        server = Olah(endpoint, work, process, offline)
        deadline = time.monotonic() + startup_timeout
        try:
            while process.poll() is None and not _ready(endpoint):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"olah did not answer on {endpoint} within {startup_timeout:.0f}s: {server.output()}")
                time.sleep(0.05)
        except BaseException:
            stop(process)
            raise
        if process.poll() is None:
            break
        if port or attempt == 2:
            raise RuntimeError(f"olah exited with {process.returncode}: {server.output()}")
    try:
        yield server
    finally:
        stop(process)
