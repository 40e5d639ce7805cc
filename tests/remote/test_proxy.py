"""Behind a company network: a real squid (Basic auth through basic_ncsa_auth), a host name only the proxy can
resolve, a Hub behind TLS signed by a private CA. Each scenario runs through `lyricsub-hub warm` and through
huggingface_hub's own snapshot_download (the expectation users bring); squid's access log proves the route.

A failure is one line naming its cause, exit 3, within 2 s, with no secret in the output, the cache or the log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote

import pytest

from lyricsub_hub.testing.hub import TestHub
from tests.helpers import LoopbackServer, add, payload, repo_dir, run_cli, write_index

from .netfixtures import MICROSOCKS, PASSWORD, PROXY_ONLY_HOST, Socks, Squid, TlsFront, free_port, need_squid

ROUTE_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                   "SSL_CERT_FILE", "SSL_CERT_DIR")
SECRETS = (PASSWORD, quote(PASSWORD, safe=""))
MODEL = "demucs:px"


@dataclass
class Net:
    squid: Squid
    hub: TestHub
    front: TlsFront
    repo: object
    index: Path
    socks: Socks | None = None  # where microsocks is installed
    closed: int = field(default_factory=free_port)  # nothing listens there

    @property
    def port(self) -> int:
        return int(self.hub.endpoint.rsplit(":", 1)[1])

    def endpoint(self, kind: str) -> str:
        return {"http-ip": self.hub.endpoint, "http-name": f"http://{PROXY_ONLY_HOST}:{self.port}",
                "http-localhost": f"http://localhost:{self.port}",
                "https-name": f"https://{PROXY_ONLY_HOST}:{self.front.port}",
                "https-ip": f"https://127.0.0.1:{self.front.port}",
                "http-closed": f"http://127.0.0.1:{self.closed}", "https-closed": f"https://127.0.0.1:{self.closed}"}[kind]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    need_squid()
    work = tmp_path_factory.mktemp("net")
    squid = Squid().start()
    hub = TestHub().start()
    front = socks = None
    try:
        front = TlsFront(int(hub.endpoint.rsplit(":", 1)[1]), work)
        socks = Socks(work) if MICROSOCKS else None
        repo = add(hub, MODEL, "corp/px", {"px.yaml": b"models: ['px']\n", "px.safetensors": payload(17, 400_000)})
        index = write_index(work / "index.yaml", [repo])
        yield Net(squid, hub, front, repo, index, socks)
    finally:
        if socks is not None:
            socks.stop()
        if front is not None:
            front.stop()
        hub.stop()
        squid.stop()


@dataclass(frozen=True)
class Case:
    id: str
    endpoint: str
    env: Callable[[Net], dict[str, str]]
    fails: str | None = None  # words the one error line must hold; None: the model is warmed
    via: str | None = None  # "open" or "auth": the squid port that must carry the requests; None: squid sees nothing
    cdn: bool = False  # LFS files answer 302 to the second host (127.0.0.2), as the Hub's CDN
    hf_differs: dict[str, str] = field(default_factory=dict)  # huggingface_hub major -> why its result differs


def _socks(net: Net) -> Socks:
    if net.socks is None:
        pytest.skip("microsocks not installed (apt-get install microsocks; .ci/run does)")
    return net.socks


def _closed(net: Net) -> str:
    return f"http://127.0.0.1:{free_port()}"


CA = "REQUESTS_CA_BUNDLE"
NO_SSL_CERT_FILE = "requests reads REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE, not SSL_CERT_FILE"
NO_REQUESTS_CA = "httpx reads SSL_CERT_FILE, not REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE"
CASES = [
    Case("HTTP_PROXY", "http-ip", lambda n: {"HTTP_PROXY": n.squid.open_url()}, via="open"),
    Case("http_proxy lowercase", "http-ip", lambda n: {"http_proxy": n.squid.open_url()}, via="open"),
    Case("HTTPS_PROXY CONNECT tunnel, private CA", "https-name",
         lambda n: {"HTTPS_PROXY": n.squid.open_url(), CA: str(n.front.ca_file)}, via="open",
         hf_differs={"2": NO_REQUESTS_CA}),
    Case("CDN redirect through the proxy", "http-ip", lambda n: {"HTTP_PROXY": n.squid.open_url()}, via="open", cdn=True),
    Case("credentials, http", "http-ip", lambda n: {"HTTP_PROXY": n.squid.auth_url()}, via="auth"),
    Case("credentials, https tunnel", "https-name",
         lambda n: {"HTTPS_PROXY": n.squid.auth_url(), CA: str(n.front.ca_file)}, via="auth",
         hf_differs={"2": NO_REQUESTS_CA}),
    Case("proxy-only DNS, http", "http-name", lambda n: {"HTTP_PROXY": n.squid.open_url()}, via="open"),
    Case("ALL_PROXY", "http-ip", lambda n: {"ALL_PROXY": n.squid.open_url()}, via="open"),
    Case("all_proxy lowercase, credentials, https", "https-name",
         lambda n: {"all_proxy": n.squid.auth_url(), "SSL_CERT_FILE": str(n.front.ca_file)}, via="auth",
         hf_differs={"0": NO_SSL_CERT_FILE}),
    Case("NO_PROXY hosts", "http-ip", lambda n: {"HTTP_PROXY": n.squid.open_url(), "NO_PROXY": "127.0.0.1,127.0.0.2"},
         cdn=True),
    Case("NO_PROXY CIDR", "http-ip", lambda n: {"HTTP_PROXY": n.squid.open_url(), "NO_PROXY": "127.0.0.0/8"}, cdn=True),
    Case("NO_PROXY *", "http-ip", lambda n: {"ALL_PROXY": n.squid.open_url(), "no_proxy": "*"}),
    Case("NO_PROXY host:port", "http-localhost",
         lambda n: {"HTTP_PROXY": n.squid.open_url(), "NO_PROXY": f"localhost:{n.port}"}),
    Case("socks5h, credentials", "http-ip", lambda n: {"ALL_PROXY": _socks(n).url()}, via="socks",
         hf_differs={"2": "httpx needs the socksio package for SOCKS proxies"}),
    Case("socks5h, wrong credentials", "http-ip", lambda n: {"ALL_PROXY": _socks(n).url("wrong")},
         fails="the proxy at 127.0.0.1:{socks} refused the credentials (SOCKS5 authentication failed) that ALL_PROXY gives"),
    Case("SSL_CERT_FILE", "https-ip", lambda n: {"SSL_CERT_FILE": str(n.front.ca_file)}, hf_differs={"0": NO_SSL_CERT_FILE}),
    Case("CURL_CA_BUNDLE", "https-ip", lambda n: {"CURL_CA_BUNDLE": str(n.front.ca_file)}, hf_differs={"2": NO_REQUESTS_CA}),
    Case("company root in the system store", "https-ip", lambda n: {"SSL_CERT_DIR": str(n.front.ca_dir)},
         hf_differs={"0": "requests verifies against certifi alone"}),
    Case("wrong credentials, http", "http-ip", lambda n: {"HTTP_PROXY": n.squid.auth_url(password="wrong")},
         fails="the proxy at 127.0.0.1:{auth} refused the credentials (407) that HTTP_PROXY gives", via="auth"),
    Case("wrong credentials, https", "https-name",
         lambda n: {"HTTPS_PROXY": n.squid.auth_url(password="wrong"), CA: str(n.front.ca_file)},
         fails="the proxy at 127.0.0.1:{auth} refused the credentials (407) that HTTPS_PROXY gives", via="auth"),
    Case("no credentials for an auth proxy", "http-ip", lambda n: {"HTTP_PROXY": n.squid.auth_url(user=None)},
         fails="the proxy at 127.0.0.1:{auth} (from HTTP_PROXY) asks for credentials (407)", via="auth"),
    Case("proxy down, http", "http-ip", lambda n: {"HTTP_PROXY": _closed(n)},
         fails="cannot connect to the proxy at 127.0.0.1:"),
    Case("proxy down, https", "https-name", lambda n: {"HTTPS_PROXY": _closed(n), CA: str(n.front.ca_file)},
         fails="cannot connect to the proxy at 127.0.0.1:"),
    Case("proxy cannot reach the Hub, http", "http-closed", lambda n: {"HTTP_PROXY": n.squid.open_url()},
         fails="the proxy at 127.0.0.1:{open} (from HTTP_PROXY) could not reach 127.0.0.1:", via="open"),
    Case("proxy cannot reach the Hub, https", "https-closed", lambda n: {"HTTPS_PROXY": n.squid.open_url()},
         fails="the proxy at 127.0.0.1:{open} (from HTTPS_PROXY) could not open a tunnel to 127.0.0.1:", via="open"),
    Case("private CA not configured", "https-ip", lambda n: {},
         fails="the TLS certificate chain of 127.0.0.1:{tls} is not trusted"),
    Case("private CA not configured, through the proxy", "https-name", lambda n: {"HTTPS_PROXY": n.squid.open_url()},
         fails=f"the TLS certificate chain of {PROXY_ONLY_HOST}:{{tls}} is not trusted", via="open"),
    Case("CA variable naming a missing file", "https-ip", lambda n: {CA: "/nonexistent/corp-ca.pem"},
         fails="REQUESTS_CA_BUNDLE names /nonexistent/corp-ca.pem, which does not exist"),
]
IDS = [c.id for c in CASES]


def _route_env(monkeypatch: pytest.MonkeyPatch, net: Net, case: Case) -> dict[str, str]:
    """The machine's own proxy and CA settings out of the way; the scenario's in."""
    for name in list(os.environ):
        if name.lower() in {v.lower() for v in ROUTE_VARIABLES}:
            monkeypatch.delenv(name)
    env = case.env(net)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    net.hub.use_cdn(3600.0 if case.cdn else None)
    return env


def _port(net: Net, via: str) -> int:
    return net.squid.open_port if via == "open" else net.squid.auth_port


def _mark(net: Net) -> tuple[int, int]:
    return net.squid.mark(), len(net.socks.log_text().splitlines()) if net.socks else 0


def _check_route(net: Net, case: Case, since: tuple[int, int], hub_before: int) -> None:
    # Only requests for the test Hub's hosts count: another program on the machine that picks up the proxy
    # variables while they are set (a telemetry CONNECT was seen once) is not ours to judge.
    entries = [e for e in net.squid.entries(since[0]) if e["method"] != "-" and _to_test_hub(e["url"])]
    if case.via == "socks":
        assert net.socks is not None and entries == [], entries
        lines = net.socks.log_text().splitlines()[since[1]:]
        assert any(f"connected to 127.0.0.1:{net.port}" in line for line in lines), lines
        return
    if case.via is None:
        assert entries == [], f"{case.id}: nothing may go through the proxy, squid saw {entries}"
        return
    assert entries, f"{case.id}: the requests must go through the proxy"
    https = net.endpoint(case.endpoint).startswith("https")
    assert all(e["method"] == ("CONNECT" if https else e["method"]) for e in entries), entries
    if case.via == "auth" and not case.fails:
        assert all(e["user"] == "alice" for e in entries if e["status"] != "407"), entries
    if case.cdn:
        assert any("127.0.0.2" in e["url"] for e in entries), f"the CDN host must be fetched through the proxy: {entries}"
    del hub_before


def _to_test_hub(url: str) -> bool:
    return any(host in url for host in ("127.0.0.1:", "127.0.0.2", "hub.corp.test"))


def _no_secret(net: Net, texts: list[str], folder: Path) -> None:
    for secret in SECRETS:
        for text in texts:
            assert secret not in text
        assert secret not in net.squid.log_text()
        assert net.socks is None or secret not in net.socks.log_text()
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                assert secret.encode() not in path.read_bytes(), path


def _words(case: Case, net: Net) -> str:
    assert case.fails is not None
    return case.fails.format(auth=net.squid.auth_port, open=net.squid.open_port, tls=net.front.port,
                             socks=net.socks.port if net.socks else 0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_warm(case: Case, net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _route_env(monkeypatch, net, case)
    cache = tmp_path / "cache"
    since, hub_before = _mark(net), len(net.hub.requests)
    started = time.monotonic()
    proc = run_cli("warm", MODEL, "--index", str(net.index), "--endpoint", net.endpoint(case.endpoint), "--no-load",
                   "--cache-dir", str(cache), timeout=60)
    took = time.monotonic() - started
    if case.fails is None:
        assert proc.returncode == 0, proc.stderr
        snapshot = repo_dir(cache, net.repo.repo) / "snapshots" / net.repo.commit
        assert (snapshot / "px.safetensors").read_bytes() == net.repo.files["px.safetensors"]
    else:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 3, proc.stderr
        assert len(lines) == 1, proc.stderr
        assert _words(case, net) in lines[0], lines[0]
        assert "Traceback" not in proc.stderr
        assert took < 2.0, f"{case.id}: {took:.2f}s"
        if "missing file" in case.id:
            assert len(net.hub.requests) == hub_before, "said before any request"
    _check_route(net, case, since, hub_before)
    _no_secret(net, [proc.stdout, proc.stderr], tmp_path)


class _NoWait:
    """time for huggingface_hub's retry loop with the waits between tries left out (the tries themselves are real):
    its ~23 s of backoff per failure says nothing the first try did not."""

    def __getattr__(self, name: str):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        pass


def _no_backoff_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    http = importlib.import_module("huggingface_hub.utils._http")
    if hasattr(http, "time"):
        monkeypatch.setattr(http, "time", _NoWait())


def _hf_major() -> str:
    import huggingface_hub

    return huggingface_hub.__version__.split(".")[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_snapshot_download_reference(case: Case, net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scenario with huggingface_hub's own client: what users of it already get."""
    import huggingface_hub
    import huggingface_hub.utils as hf_utils

    differs = case.hf_differs.get(_hf_major())  # where it does worse (or better) than we do, it still must do that
    _route_env(monkeypatch, net, case)
    close = getattr(hf_utils, "close_session", None) or getattr(hf_utils, "reset_sessions", None)
    if close is not None:
        close()  # httpx reads proxies and CA settings when its client is made
    if case.fails is not None or differs:
        _no_backoff_waits(monkeypatch)
    since = _mark(net)
    cache = tmp_path / "hf-cache"
    try:
        path = huggingface_hub.snapshot_download(net.repo.repo, revision=net.repo.commit, cache_dir=str(cache),
                                                 endpoint=net.endpoint(case.endpoint))
        error = None
    except Exception as exc:
        error = exc
    finally:
        if close is not None:
            close()
    if (case.fails is None) != bool(differs):
        assert error is None, repr(error)
        assert (Path(path) / "px.safetensors").read_bytes() == net.repo.files["px.safetensors"]
    else:
        assert error is not None, differs
    if not differs:
        _check_route(net, case, since, 0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_doctor_network_finding(case: Case, net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doctor says which way the download goes, and is right about whether it works."""
    from lyricsub_hub.doctor import examine

    env = _route_env(monkeypatch, net, case)
    report = examine(net.index, cache_dir=tmp_path / "cache", endpoint=net.endpoint(case.endpoint), probe_timeout=2)
    (network,) = [f for f in report.findings if f.check == "network"]
    if case.fails is None:
        assert network.level == "ok", network.message
        assert network.details["route_ok"] is True
    else:
        assert network.level == "warning" and _words(case, net) in network.message, network.message
        assert network.hint
    if case.via is not None:
        variable = next(name for name in env if name.lower().endswith("_proxy") and name.lower() != "no_proxy")
        assert network.details["variable"] == variable and f"(from {variable}" in network.message, network.message
    elif not case.fails:
        assert network.details["proxy"] is None and "direct" in network.message, network.message
        excluded = any(name.lower() == "no_proxy" for name in env)
        assert ("NO_PROXY excludes" in network.message) is excluded, network.message
    if case.endpoint.startswith("https"):
        assert network.details["ca"] in network.message
    shown = " ".join(f"{f.message} {f.hint} {f.details}" for f in report.findings)
    assert not any(secret in shown for secret in SECRETS)


def test_proxy_credentials_reach_the_proxy_and_never_the_server(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through squid with Basic auth, the server behind it sees the token (its own origin) and no Proxy-Authorization."""
    from lyricsub_hub.remote.http import Client

    seen: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    _route_env(monkeypatch, net, Case("recorder", "http-ip", lambda n: {"HTTP_PROXY": n.squid.auth_url()}))
    server = LoopbackServer()
    server.serve(Recorder)
    since = net.squid.mark()
    with server:
        client = Client(server.endpoint, "hf_TokenForTheServerOnly")
        data, _ = client.get_small(server.endpoint + "/file", 2)
    assert data == b"ok" and len(seen) == 1
    assert "proxy-authorization" not in seen[0] and seen[0]["authorization"] == "Bearer hf_TokenForTheServerOnly"
    assert not any(secret in str(seen) for secret in SECRETS)
    (entry,) = [e for e in net.squid.entries(since) if e["method"] == "GET"]
    assert entry["user"] == "alice" and entry["status"] == "200", entry
