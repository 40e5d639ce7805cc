"""A company network on loopback: Debian's squid as the forward proxy (one port open, one with Basic auth through
basic_ncsa_auth and an htpasswd file made here), a host name only squid can resolve (its hosts_file), and a TLS
front whose certificate a private CA made here signs (trustme).

Start costs about a second; tests share one squid per module. The access log proves which requests went through.
"""

from __future__ import annotations

import os
import pwd
import selectors
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

SQUID = shutil.which("squid") or ("/usr/sbin/squid" if os.path.exists("/usr/sbin/squid") else None)
NCSA = next((p for p in ("/usr/lib/squid/basic_ncsa_auth", "/usr/lib64/squid/basic_ncsa_auth",
                         "/usr/libexec/squid/basic_ncsa_auth") if os.path.exists(p)), None)
HTPASSWD = shutil.which("htpasswd")
MICROSOCKS = shutil.which("microsocks")
PROXY_ONLY_HOST = "hub.corp.test"  # resolvable by squid alone (its hosts_file), never by the client
USER = "alice"
PASSWORD = "p@ss:w%rd-7Qz"  # every character that needs percent-encoding in a URL


def need_squid() -> None:
    missing = [name for name, path in (("squid", SQUID), ("basic_ncsa_auth", NCSA), ("htpasswd", HTPASSWD)) if not path]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install squid apache2-utils; .ci/run does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Squid:
    """squid -N on two loopback ports: `open` (anyone) and `auth` (Basic, USER/PASSWORD)."""

    def __init__(self) -> None:
        need_squid()
        self.dir = Path(tempfile.mkdtemp(prefix="lyricsub-squid-"))
        self.open_port, self.auth_port = free_port(), free_port()
        self.access_log = self.dir / "access.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Squid:
        d = self.dir
        subprocess.run([HTPASSWD, "-b", "-c", "-m", str(d / "htpasswd"), USER, PASSWORD], check=True, capture_output=True)
        (d / "hosts").write_text(f"127.0.0.1 {PROXY_ONLY_HOST}\n")
        root = os.geteuid() == 0
        lines = [
            f"http_port 127.0.0.1:{self.open_port} name=open",
            f"http_port 127.0.0.1:{self.auth_port} name=auth",
            f"pid_filename {d}/squid.pid",
            f"access_log stdio:{self.access_log} squid",
            f"cache_log {d}/cache.log",
            f"coredump_dir {d}",
            f"hosts_file {d}/hosts",
            f"auth_param basic program {NCSA} {d}/htpasswd",
            "auth_param basic realm lyricsub-test",
            "auth_param basic children 2 startup=1 idle=1",
            "acl open_port myportname open",
            "acl authed proxy_auth REQUIRED",
            "http_access allow open_port",
            "http_access allow authed",
            "http_access deny all",
            "cache deny all",
            "via off",
            "forwarded_for delete",
            "shutdown_lifetime 0 seconds",
            "dns_nameservers 127.0.0.1",
            "dns_timeout 2 seconds",
            "connect_timeout 5 seconds",
            "netdb_filename none",
            "logfile_rotate 0",
            "max_filedescriptors 4096",
        ]
        if root:  # squid will not run as root: it becomes `proxy`, which must read and write this folder
            account = _squid_account()
            lines.append(f"cache_effective_user {account.pw_name}")
            for path in (d, *d.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        (d / "squid.conf").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([SQUID, "-N", "-f", str(d / "squid.conf")], stdout=subprocess.DEVNULL,
                                     stderr=open(d / "stderr.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"squid exited: {(d / 'stderr.log').read_text()[-2000:]}{self.cache_log()[-2000:]}")
            if all(_listening(p) for p in (self.open_port, self.auth_port)):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"squid did not listen within 20 s: {self.cache_log()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cache_log(self) -> str:
        try:
            return (self.dir / "cache.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- URLs a user would put into HTTPS_PROXY -----------------------------------------------------
    def open_url(self) -> str:
        return f"http://127.0.0.1:{self.open_port}"

    def auth_url(self, user: str | None = USER, password: str | None = PASSWORD) -> str:
        cred = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"http://{cred}127.0.0.1:{self.auth_port}"

    # -- what went through ----------------------------------------------------------------------------
    def log_text(self) -> str:
        """squid writes its log asynchronously: wait until the line count stops changing for a moment."""
        last, stable = None, 0
        for _ in range(40):
            text = self.access_log.read_text(errors="replace") if self.access_log.exists() else ""
            stable = stable + 1 if text == last else 0
            if stable >= 2:
                return text
            last = text
            time.sleep(0.05)
        return last or ""

    def entries(self, since: int = 0) -> list[dict[str, str]]:
        """The access log from line `since`: method, url, status (e.g. TCP_MISS/200), user, port of the client side."""
        out = []
        for line in self.log_text().splitlines()[since:]:
            f = line.split()
            if len(f) >= 8:
                out.append({"code": f[3], "status": f[3].rpartition("/")[2], "method": f[5], "url": f[6], "user": f[7]})
        return out

    def mark(self) -> int:
        return len(self.log_text().splitlines())


def _squid_account() -> pwd.struct_passwd:
    """Debian's squid runs as `proxy`, Fedora's as `squid`; `nobody` elsewhere."""
    for name in ("proxy", "squid", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no account for squid to run as (proxy, squid, nobody)")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Socks:
    """microsocks (Debian's), a SOCKS5 proxy with user/password auth on a loopback port; it logs each connection."""

    def __init__(self, workdir: Path) -> None:
        if not MICROSOCKS:
            pytest.skip("microsocks not installed (apt-get install microsocks; .ci/run does)")
        self.port = free_port()
        self.log = workdir / "microsocks.log"
        self._out = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([MICROSOCKS, "-i", "127.0.0.1", "-p", str(self.port), "-u", USER, "-P", PASSWORD],
                                     stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"microsocks did not start: {self.log.read_text(errors='replace')[-500:]}")
            time.sleep(0.02)

    def url(self, password: str = PASSWORD) -> str:
        return f"socks5h://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def log_text(self) -> str:
        time.sleep(0.05)
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self._out.close()


class TlsFront:
    """https on loopback in front of a plain-http server, with a certificate from a private CA made here."""

    def __init__(self, upstream_port: int, workdir: Path) -> None:
        trustme = pytest.importorskip("trustme", reason="trustme makes the private CA (pip install trustme)")
        self.ca = trustme.CA(organization_name="lyricsub test corp CA")
        cert = self.ca.issue_cert(PROXY_ONLY_HOST, "localhost", "127.0.0.1")
        self.ca_file = workdir / "corp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.ca_dir = workdir / "system-certs"  # an OpenSSL hashed folder: what a system store looks like
        self.ca_dir.mkdir(exist_ok=True)
        shutil.copy(self.ca_file, self.ca_dir / "corp-ca.pem")
        subprocess.run(["openssl", "rehash", str(self.ca_dir)], check=False, capture_output=True)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        upstream = ("127.0.0.1", upstream_port)

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    tls = ctx.wrap_socket(self.request, server_side=True)
                except (OSError, ssl.SSLError):
                    return  # a client that does not trust us hangs up in the handshake
                try:
                    with socket.create_connection(upstream) as up:
                        _pipe(tls, up)
                except OSError:
                    pass
                finally:
                    try:
                        tls.close()
                    except OSError:
                        pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Pipe)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    while True:
        pending = a.pending() if isinstance(a, ssl.SSLSocket) else 0
        events = [(k, None) for k in sel.get_map().values() if k.fileobj is a] if pending else sel.select(30)
        if not events:
            return
        for key, _ in events:
            try:
                data = key.fileobj.recv(1 << 16)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                return
            if not data:
                return
            key.data.sendall(data)
