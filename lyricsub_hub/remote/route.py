"""Which way a request goes (straight, or through the proxy the environment names) and which roots verify TLS.

Proxy selection is requests' own (requests.utils: scheme proxy, then ALL_PROXY, lowercase forms, NO_PROXY with
hosts, suffixes, `*`, host:port and CIDR ranges), so users behind a company proxy get what huggingface_hub's
requests session gave them. Credentials in the proxy URL go to the proxy alone, as Proxy-Authorization, and are
never shown (`user:***@host:port`). With no CA variable set, TLS is verified against the system trust store
(truststore, as pip does), where company roots are installed; certifi where there is none.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")  # requests' order, then OpenSSL's own
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True)
class Proxy:
    """A proxy the environment names for a URL. `url` holds the credentials: never print it, print `shown`."""

    url: str
    variable: str  # the environment variable it came from, e.g. HTTPS_PROXY
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def shown(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.scheme}://{user}{self.address}"

    @property
    def is_socks(self) -> bool:
        return self.scheme.startswith("socks")

    def manager(self, pool_kw: dict[str, Any]) -> Any:
        """A urllib3 manager that speaks to this proxy; the credentials travel in the proxy's own headers only."""
        import urllib3

        bare = f"{self.scheme}://{self.address}"
        if self.is_socks:
            try:
                from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:
                from .http import ProxyFailure

                raise ProxyFailure(f"the proxy {self.shown} (from {self.variable}) is a SOCKS proxy, which needs PySocks",
                                   fix="pip install PySocks") from None
            return SOCKSProxyManager(bare, username=self.username, password=self.password, **pool_kw)
        headers = urllib3.make_headers(proxy_basic_auth=f"{self.username}:{self.password or ''}") if self.username else {}
        return urllib3.ProxyManager(bare, proxy_headers=headers, **pool_kw)


def proxy_for(url: str) -> Proxy | None:
    """The proxy a request to url goes through, by the environment as requests reads it; None when direct."""
    from urllib.request import getproxies

    if not getproxies():  # what requests reads too: with none set, skip importing requests (~40 ms of every warm)
        return None
    from requests.utils import get_auth_from_url, get_environ_proxies, prepend_scheme_if_needed, select_proxy

    chosen = select_proxy(url, get_environ_proxies(url))
    if not chosen:
        return None
    full = prepend_scheme_if_needed(chosen, "http")
    parts = urlsplit(full)
    scheme = parts.scheme.lower()
    user, password = get_auth_from_url(full)
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
    except ValueError:  # a port that is not a number: let urllib3 say so on use
        port = _DEFAULT_PORTS.get(scheme, 80)
    return Proxy(full, _variable(urlsplit(url).scheme.lower(), chosen), scheme, (parts.hostname or "").lower(), port,
                 user or None, password or None)


def excluded_by_no_proxy(url: str) -> bool:
    """A proxy variable names a proxy for this URL, and NO_PROXY sends it direct all the same."""
    from urllib.request import getproxies

    from requests.utils import select_proxy

    return bool(select_proxy(url, getproxies())) and proxy_for(url) is None


def _variable(scheme: str, value: str) -> str:
    """The variable that named the proxy: lowercase first, as urllib's reading of the environment prefers."""
    for key in (scheme, "all"):
        for name in (f"{key}_proxy", f"{key.upper()}_PROXY"):
            if os.environ.get(name) == value:
                return name
    return "the environment"


@dataclass(frozen=True)
class Trust:
    """The roots TLS is verified against, and where that choice came from."""

    source: str  # in words: "REQUESTS_CA_BUNDLE (/etc/corp.pem)", "the system trust store (truststore)", ...
    variable: str | None = None
    path: str | None = None
    problem: str | None = None  # a CA variable naming nothing usable: said before any request

    def pool_kwargs(self) -> dict[str, Any]:
        if self.problem is not None:
            return {}
        if self.path is not None:
            return {"ca_cert_dir": self.path} if os.path.isdir(self.path) else {"ca_certs": self.path}
        if self.source.endswith("(truststore)"):
            import truststore

            return {"ssl_context": truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)}
        if self.source == "certifi":
            import certifi

            return {"ca_certs": certifi.where()}
        return {"ssl_context": ssl.create_default_context()}


def trust() -> Trust:
    """A CA variable wins (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE); else the system store; else certifi."""
    for name in CA_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            if not os.path.exists(value):
                return Trust(f"{name} ({value})", name, value,
                             problem=f"{name} names {value}, which does not exist, so no TLS connection can be verified")
            return Trust(f"{name} ({value})", name, value)
    if _system_store():
        try:
            import truststore  # noqa: F401

            return Trust("the system trust store (truststore)")
        except ImportError:
            pass
    try:
        import certifi  # noqa: F401

        return Trust("certifi")
    except ImportError:
        return Trust("the system trust store (OpenSSL)")


def _system_store() -> bool:
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        return True
    try:
        return bool(paths.capath and os.listdir(paths.capath))
    except OSError:
        return False
