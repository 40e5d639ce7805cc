"""A quick answer to "can this machine reach the Hub at all?" before any download.

huggingface_hub 0.36 retries an unreachable host for about 23 s per file; one
TCP connect with a short timeout tells an air-gapped machine the same thing at
once, so the user gets one clear error instead of minutes of silent retries.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

PROBE_TIMEOUT = 5.0


def unreachable_reason(endpoint: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to the endpoint opens; otherwise why not, in a few words."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror or exc})"
    except socket.timeout:
        return f"no answer from {host}:{port} within {timeout:.0f}s"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
