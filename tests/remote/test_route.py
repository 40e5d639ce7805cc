"""Which proxy a URL goes through and which roots verify TLS, read from the environment as requests reads it.
No sockets here: tests/remote/test_proxy.py runs the same choices against a real squid."""

from __future__ import annotations

import base64
import os
import sys

import pytest

from lyricsub_hub.remote.http import Client, ProxyFailure
from lyricsub_hub.remote.route import proxy_for, trust

PROXY = "http://proxy.corp.example:3128"


@pytest.fixture(autouse=True)
def clean_route(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "request_method") or name in (
                "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.delenv(name)


def test_the_scheme_proxy_wins_over_all_proxy_and_names_its_variable(monkeypatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://all.corp.example:8080")
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    https = proxy_for("https://huggingface.co/x")
    assert https is not None and (https.address, https.variable) == ("proxy.corp.example:3128", "HTTPS_PROXY")
    plain = proxy_for("http://mirror.example/x")  # no HTTP_PROXY: ALL_PROXY applies
    assert plain is not None and (plain.address, plain.variable) == ("all.corp.example:8080", "ALL_PROXY")


def test_lowercase_wins_and_a_bare_host_port_means_http(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper.example:1")
    monkeypatch.setenv("https_proxy", "lower.example:2")
    chosen = proxy_for("https://huggingface.co/")
    assert chosen is not None and (chosen.scheme, chosen.address, chosen.variable) == ("http", "lower.example:2", "https_proxy")


@pytest.mark.parametrize(("no_proxy", "url", "direct"), [
    ("*", "https://huggingface.co/", True),
    ("huggingface.co", "https://huggingface.co/", True),
    (".corp.example", "https://hub.corp.example/", True),
    ("corp.example", "https://hub.corp.example/", True),
    ("corp.example", "https://huggingface.co/", False),
    ("10.0.0.0/8", "http://10.1.2.3:8080/", True),
    ("10.0.0.0/8", "http://11.1.2.3:8080/", False),
    ("127.0.0.0/8,::1", "http://127.0.0.2:9000/", True),
    ("hub.corp.example:8443", "https://hub.corp.example:8443/", True),
    ("hub.corp.example:8443", "https://hub.corp.example:443/", False),
    (" a.example , huggingface.co ", "https://huggingface.co/", True),
])
def test_no_proxy_hosts_suffixes_star_ports_and_cidr(monkeypatch, no_proxy: str, url: str, direct: bool) -> None:
    monkeypatch.setenv("ALL_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert (proxy_for(url) is None) is direct


def test_credentials_are_percent_decoded_sent_to_the_proxy_only_and_never_shown(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://al%40ice:p%40ss%3Aw%25rd@proxy.corp.example:3128")
    chosen = proxy_for("https://huggingface.co/")
    assert chosen is not None and (chosen.username, chosen.password) == ("al@ice", "p@ss:w%rd")
    assert "p@ss" not in chosen.shown and "p%40ss" not in chosen.shown and chosen.shown.endswith(":***@proxy.corp.example:3128")
    manager = chosen.manager({})
    sent = manager.proxy_headers["proxy-authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == "al@ice:p@ss:w%rd"
    assert manager.proxy.auth is None  # the credentials travel in the header, not in the proxy URL urllib3 keeps
    client = Client("https://huggingface.co", "hf_secret")
    assert "Proxy-Authorization" not in client.headers_for("https://huggingface.co/x")  # nothing for the Hub itself


def test_socks5h_uses_urllib3s_socks_support_or_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5h://bob:pw@socks.corp.example:1080")
    chosen = proxy_for("https://huggingface.co/")
    assert chosen is not None and chosen.is_socks and chosen.variable == "ALL_PROXY"
    monkeypatch.setitem(sys.modules, "urllib3.contrib.socks", None)  # as where PySocks is not installed
    with pytest.raises(ProxyFailure) as caught:
        chosen.manager({})
    assert caught.value.fix == "pip install PySocks" and not caught.value.transient
    monkeypatch.delitem(sys.modules, "urllib3.contrib.socks")
    pytest.importorskip("socks", reason="PySocks is not installed")
    manager = chosen.manager({})
    assert type(manager).__name__ == "SOCKSProxyManager" and manager.proxy_url.startswith("socks5h://")


def test_ca_variables_win_in_requests_order_and_a_missing_file_is_a_problem(monkeypatch, tmp_path) -> None:
    bundle, other = tmp_path / "corp.pem", tmp_path / "other.pem"
    bundle.write_text("x")
    other.write_text("x")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    chosen = trust()
    assert (chosen.variable, chosen.path, chosen.problem) == ("REQUESTS_CA_BUNDLE", str(bundle), None)
    assert chosen.pool_kwargs() == {"ca_certs": str(bundle)}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))  # a hashed folder of certificates
    assert trust().pool_kwargs() == {"ca_cert_dir": str(tmp_path)}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert "missing.pem, which does not exist" in (trust().problem or "")


def test_without_a_ca_variable_the_system_store_verifies_through_truststore() -> None:
    pytest.importorskip("truststore")
    import ssl

    paths = ssl.get_default_verify_paths()
    if not (paths.cafile or paths.capath):
        pytest.skip("this machine has no system trust store")
    chosen = trust()
    assert chosen.source == "the system trust store (truststore)" and chosen.variable is None
    assert type(chosen.pool_kwargs()["ssl_context"]).__module__.startswith("truststore")
