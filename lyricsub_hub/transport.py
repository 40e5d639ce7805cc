"""A streamed GET through huggingface_hub's own HTTP session, on 0.x (requests) and 1.x+ (httpx).

We stream ourselves instead of calling hf_hub_download for large files because
neither version lets us resume across runs (2.x deletes partial files), hash
while writing, report bytes, or abort a read from another thread. The session,
headers and error classes are still huggingface_hub's.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

READ_SIZE = 1 << 18  # 256 KiB: what a dropped connection can cost, and the progress granularity


@dataclass
class Stream:
    status: int
    content_range: str | None
    length: int | None
    chunks: Iterator[bytes]
    close: Callable[[], None]


@contextmanager
def stream_get(url: str, headers: dict[str, str], timeout: float) -> Iterator[Stream]:
    from huggingface_hub.utils import get_session, hf_raise_for_status

    session = get_session()
    if not _is_requests(session):  # httpx-based client (huggingface_hub >= 1.0)
        with session.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code >= 400:
                resp.read()
            hf_raise_for_status(resp)
            yield Stream(resp.status_code, resp.headers.get("Content-Range"), _int(resp.headers.get("Content-Length")),
                         resp.iter_bytes(READ_SIZE), resp.close)
        return
    resp = session.get(url, headers=headers, stream=True, timeout=timeout)  # requests follows redirects, drops auth cross-origin
    conn = getattr(resp.raw, "connection", None)  # held now: on EOF urllib3 hands it back to its pool
    try:
        hf_raise_for_status(resp)
        yield Stream(resp.status_code, resp.headers.get("Content-Range"), _int(resp.headers.get("Content-Length")),
                     resp.iter_content(READ_SIZE), lambda: _hang_up(resp, conn))
    finally:
        _hang_up(resp, conn)


def _hang_up(resp, conn) -> None:
    """Close the socket itself, so the server stops sending; a plain close() can leave it open in the pool."""
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass
    resp.close()


def _is_requests(session: object) -> bool:
    """requests.Session also has a `stream` attribute (a bool), so ask for the class instead."""
    return any(cls.__module__.startswith("requests") for cls in type(session).__mro__)


def transient_errors() -> tuple[type[BaseException], ...]:
    """Connection-level failures of whichever HTTP stack huggingface_hub uses; worth a retry."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import requests

        kinds += [requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                  requests.exceptions.ContentDecodingError]
    except ImportError:
        pass
    for name in ("httpx2", "httpx"):
        try:
            mod = __import__(name)
            kinds.append(mod.TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
