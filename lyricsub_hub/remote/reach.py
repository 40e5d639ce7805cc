"""A quick answer to "can this machine reach the Hub at all?" before any download.

huggingface_hub 0.36 retries an unreachable host for about 23 s per file; one
name lookup and one TCP connect, each bounded, tell an air-gapped machine the
same thing at once, so the user gets one clear error instead of minutes of
silent retries.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

PROBE_TIMEOUT = 5.0


def unreachable_reason(endpoint: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to the endpoint opens; otherwise why not, in a few words."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
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
