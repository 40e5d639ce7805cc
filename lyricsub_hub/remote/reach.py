"""A quick answer to "can this machine reach the Hub at all?" before any download, along the download's own route.

huggingface_hub 0.36 retries an unreachable host for about 23 s per file; one
name lookup and one TCP connect, each bounded, tell an air-gapped machine the
same thing at once, so the user gets one clear error instead of minutes of
silent retries. Where a proxy applies, the probe is one HEAD through it (a
CONNECT tunnel for https), because behind a mandatory proxy only the proxy can
resolve the Hub's name; an https endpoint also gets its TLS handshake, so an
untrusted chain is named before the first file.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from .http import RouteFailure
from .route import Proxy, proxy_for

PROBE_TIMEOUT = 5.0


def unreachable_reason(endpoint: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when the endpoint answers along the route downloads take; otherwise why not, in a few words.

    Raises RouteFailure (ProxyFailure, TrustFailure) where the cause is the proxy or TLS trust: no retry mends those.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = proxy_for(endpoint)
    if proxy is None:
        reason = _connect(host, port, timeout)
        if reason is not None or parts.scheme != "https":
            return reason
    return _through(endpoint, proxy, timeout)


def _through(endpoint: str, proxy: Proxy | None, timeout: float) -> str | None:
    """One HEAD of the endpoint's root with the download's own client: the proxy, the tunnel, the TLS handshake."""
    from .http import Client, ProxyFailure, Timeouts, TransferError

    client = Client(endpoint, None, connections=1, timeouts=Timeouts(connect=timeout, headers=timeout))
    url = client.endpoint + "/"
    try:
        resp = client._request("HEAD", url, client.headers_for(url), timeout)
    except RouteFailure:
        raise
    except TransferError as exc:
        return str(exc)
    status = resp.status
    resp.release_conn()
    if proxy is not None and not proxy.is_socks and url.startswith("http:") and status in (502, 503, 504):
        target = urlsplit(url).netloc.rpartition("@")[2]
        raise ProxyFailure(f"the proxy at {proxy.address} (from {proxy.variable}) could not reach {target} (HTTP {status} "
                           "from the proxy)", url=url,
                           fix=f"check that the proxy may reach {target}, or add it to NO_PROXY if it is reachable directly")
    return None


def _connect(host: str, port: int, timeout: float) -> str | None:
    addresses = _resolve(host, port, timeout)
    if isinstance(addresses, str):
        return addresses
    last = "no address"
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
                return None
        except TimeoutError:
            last = f"no answer from {host}:{port} within {timeout:.0f}s"
        except OSError as exc:
            last = f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    return last


def _resolve(host: str, port: int, timeout: float) -> list | str:
    """getaddrinfo has no timeout of its own (a dead DNS server can stall it for many seconds)."""
    box: dict[str, object] = {}

    def lookup() -> None:
        try:
            box["ok"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["err"] = f"cannot resolve {host} ({getattr(exc, 'strerror', None) or exc})"

    worker = threading.Thread(target=lookup, daemon=True, name="lyricsub-resolve")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"cannot resolve {host} within {timeout:.0f}s"
    return box.get("ok") or box.get("err") or f"cannot resolve {host}"  # type: ignore[return-value]
