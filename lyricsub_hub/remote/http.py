"""HTTP for the whole package, on urllib3: one code path whichever huggingface_hub is installed.

What it decides, and huggingface_hub's own session would not let us decide:
- redirects are followed by hand: the token goes to the endpoint's origin only,
  never to a CDN or a mirror's redirect target, and https never downgrades;
- bodies are asked for and accepted with identity encoding only, and never read
  past the byte count the pin allows;
- every read is bounded: a long wait for the first byte of a ranged answer (a
  mirror refilling its cache), a shorter one between bytes, and a floor on
  throughput, so a server that trickles a byte every few seconds ends the try;
- one shared bandwidth cap, and cancellation from another thread within a read.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..core.text import clean_url
from .ratelimit import RateLimiter
from .route import Proxy, Trust, proxy_for, trust

READ_SIZE = 1 << 18  # 256 KiB: what a dropped connection can cost, and the progress granularity
USER_AGENT = "lyricsub-hub/0.2 (huggingface_hub-compatible cache)"
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Timeouts:
    """Seconds, except min_rate (bytes per second over window)."""

    connect: float = 10.0
    headers: float = 30.0  # until the answer's headers (and, for a whole file, its first byte)
    first_byte_ranged: float = 180.0  # a mirror may fetch a whole block upstream before the first byte of a range
    stall: float = 30.0  # no byte at all for this long, once bytes flow
    min_rate: int = 1024  # fewer bytes per second than this, averaged over window, ends the try
    window: float = 30.0


class TransferError(Exception):
    """A try that failed on the wire; `transient` says whether another try may succeed."""

    transient = True

    def __init__(self, message: str, *, url: str = "", got: int = 0) -> None:
        super().__init__(message)
        self.url, self.got = url, got


class ConnectionLost(TransferError):
    """Reset, refused, closed early, or a read that timed out while bytes were flowing."""


class TooSlow(TransferError):
    """Bytes came, but fewer than the floor allows (a trickle)."""


class NoFirstByte(TransferError):
    """A ranged answer whose body never started: a slow mirror, not an unreachable one."""


class BadAnswer(TransferError):
    """An answer we refuse whatever happens next: compressed, too long, a hostile header."""

    transient = False


class BadBytes(TransferError):
    """The bytes received do not hash to the pin: worth one more try from scratch."""


class RouteFailure(TransferError):
    """The way to the host is wrong in a way no retry mends (the proxy, TLS trust); `fix` says what to change."""

    transient = False

    def __init__(self, message: str, *, url: str = "", fix: str | None = None) -> None:
        super().__init__(message, url=url)
        self.fix = fix


class ProxyFailure(RouteFailure):
    """The proxy refused the credentials, could not be reached, or cannot be used here (SOCKS without PySocks)."""


class TrustFailure(RouteFailure):
    """The host's certificate chain is not trusted, or a CA variable names no file."""


class Cancelled(Exception):
    pass


@dataclass
class HttpStatus(Exception):
    """A final answer >= 400 (after redirects); `on_redirect_target` is True when a CDN host gave it."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: str = ""
    on_redirect_target: bool = False

    def __str__(self) -> str:
        return f"HTTP {self.status} from {clean_url(self.url)}"

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers.get("retry-after", ""))
        except ValueError:
            return None


@dataclass(frozen=True)
class Head:
    """The first answer for a URL (a redirect's own headers included) and where the bytes really are."""

    status: int
    headers: Mapping[str, str]  # of the endpoint's answer (a 302's headers carry the Hub's metadata)
    location: str  # the URL to GET (a CDN's signed URL, or the same URL)


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


class Client:
    """A pool of connections to the endpoint and wherever it redirects; thread-safe."""

    def __init__(self, endpoint: str, token: str | None, *, connections: int = 8, timeouts: Timeouts | None = None,
                 limiter: RateLimiter | None = None) -> None:
        import urllib3

        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.timeouts = timeouts or Timeouts()
        self.limiter = limiter
        self._origin = origin(self.endpoint)
        kw: dict[str, Any] = {"num_pools": 16, "maxsize": max(1, connections), "block": False, "retries": False}
        self.trust = trust()
        kw.update(self.trust.pool_kwargs())
        self._kw = kw
        self._direct = urllib3.PoolManager(**kw)
        self._proxies: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------------
    def headers_for(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token and origin(url) == self._origin:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def head(self, url: str) -> Head:
        """HEAD without following a redirect to another origin: the Hub puts a file's metadata on its 302."""
        hops = 0
        while True:
            resp = self._request("HEAD", url, self.headers_for(url), self.timeouts.headers)
            headers = _lower(resp.headers)
            resp.release_conn()
            if resp.status in (301, 302, 303, 307, 308) and headers.get("location"):
                target = self._next_hop(url, headers["location"], hops)
                if origin(target) != self._origin or "x-linked-etag" in headers or "x-repo-commit" in headers:
                    return Head(resp.status, headers, target)
                url, hops = target, hops + 1  # a renamed repo on the same host: ask again there
                continue
            if resp.status >= 400:
                raise HttpStatus(resp.status, url, headers)
            return Head(resp.status, headers, url)

    def get(self, url: str, *, start: int = 0, end: int | None = None, total: int) -> Stream:
        """GET bytes [start, end) of a file of `total` bytes, following redirects by our rules."""
        ranged = start > 0 or (end is not None and end < total)
        extra = {"Range": f"bytes={start}-{(end or total) - 1}"} if ranged else {}
        first_wait = self.timeouts.first_byte_ranged if ranged else self.timeouts.headers
        hops, on_target = 0, origin(url) != self._origin  # a CDN's signed URL, asked for directly on a retry
        first: dict[str, str] | None = None
        while True:
            resp = self._request("GET", url, self.headers_for(url, extra), first_wait)
            if first is None:
                first = _lower(resp.headers)  # the endpoint's own answer: a 302 from the Hub carries the file's metadata
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                location = resp.headers["Location"]
                resp.drain_conn()
                resp.release_conn()
                url, hops = self._next_hop(url, location, hops), hops + 1
                on_target = on_target or origin(url) != self._origin
                continue
            if resp.status >= 400:
                body = _excerpt(resp)
                raise HttpStatus(resp.status, url, _lower(resp.headers), body, on_target)
            return Stream(self, resp, url, start, end if end is not None else total, total, ranged, first)

    def get_small(self, url: str, limit: int) -> tuple[bytes, Mapping[str, str]]:
        """A whole small body held in memory (pinning hashes small files this way), never more than limit bytes."""
        stream = self.get(url, total=limit)
        data = bytearray()
        with stream:
            for chunk in stream.chunks():
                data += chunk
        return bytes(data), stream.headers

    def _next_hop(self, url: str, location: str, hops: int) -> str:
        if hops >= MAX_REDIRECTS:
            raise BadAnswer(f"more than {MAX_REDIRECTS} redirects from {clean_url(url)}", url=url)
        target = urljoin(url, location)
        if urlsplit(target).scheme not in ("http", "https"):
            raise BadAnswer(f"redirect to an unsupported address {clean_url(target)}", url=url)
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
            raise BadAnswer(f"refusing a redirect from https to {clean_url(target)}", url=url)
        return target

    def _request(self, method: str, url: str, headers: dict[str, str], read_timeout: float) -> Any:
        import urllib3

        timeout = urllib3.Timeout(connect=self.timeouts.connect, read=read_timeout)
        proxy = proxy_for(url)
        if url.lower().startswith("https:") and self.trust.problem:
            raise TrustFailure(self.trust.problem, url=url, fix=f"point {self.trust.variable} at your CA bundle (a PEM "
                               f"file), or unset it")
        try:
            resp = self._manager(proxy).request(method, url, headers=headers, redirect=False, retries=False,
                                                preload_content=False, decode_content=False, timeout=timeout)
        except urllib3.exceptions.ReadTimeoutError:  # connected: a slow server (a mirror busy upstream), not an unreachable one
            if "Range" in headers:
                raise NoFirstByte(f"{_host(url)} sent no answer to a ranged request within {read_timeout:g}s",
                                  url=url) from None
            raise NoFirstByte(f"{_host(url)} accepted the connection but sent no answer within {read_timeout:g}s",
                              url=url) from None
        except urllib3.exceptions.ProxyError as exc:
            raise _proxy_failure(exc, proxy, url) from None
        except urllib3.exceptions.SSLError as exc:
            raise _tls_failure(exc, url, self.trust) from None
        except urllib3.exceptions.HTTPError as exc:
            if proxy is not None and proxy.is_socks and isinstance(exc, urllib3.exceptions.NewConnectionError):
                raise _socks_failure(exc, proxy, url) from None
            raise ConnectionLost(_reason(exc, url), url=url) from None
        if proxy is not None and resp.status == 407:  # a plain-http request the proxy itself answered
            resp.drain_conn()
            resp.release_conn()
            raise _refused(proxy, url)
        return resp

    def _manager(self, proxy: Proxy | None) -> Any:
        """Direct, or through the proxy the environment names for this URL (as requests chooses it)."""
        if proxy is None:
            return self._direct
        with self._lock:
            if proxy.url not in self._proxies:
                self._proxies[proxy.url] = proxy.manager(self._kw)
            return self._proxies[proxy.url]


def _refused(proxy: Proxy, url: str, how: str = "407") -> ProxyFailure:
    if proxy.username:
        return ProxyFailure(f"the proxy at {proxy.address} refused the credentials ({how}) that {proxy.variable} gives "
                            f"(user {proxy.username})", url=url,
                            fix=f"put the right USER:PASSWORD@ before {proxy.address} in {proxy.variable}, "
                                "percent-encoding @ : % in them")
    return ProxyFailure(f"the proxy at {proxy.address} (from {proxy.variable}) asks for credentials ({how}) and none "
                        "are set", url=url, fix=f"put USER:PASSWORD@ before {proxy.address} in {proxy.variable}")


def _proxy_failure(exc: BaseException, proxy: Proxy | None, url: str) -> TransferError:
    """urllib3 wraps both a dead proxy and a refused CONNECT in ProxyError; the text says which."""
    if proxy is None:  # cannot happen: urllib3 raises ProxyError only through a proxy
        return ConnectionLost(_reason(exc, url), url=url)
    text = str(exc)
    status = re.search(r"Tunnel connection failed: (\d{3})", text)
    target = urlsplit(url).netloc.rpartition("@")[2]
    if status and status[1] == "407":
        return _refused(proxy, url)
    if status:
        code = int(status[1])
        failure = ProxyFailure(f"the proxy at {proxy.address} (from {proxy.variable}) could not open a tunnel to "
                               f"{target} ({code} from the proxy)", url=url,
                               fix=f"check that the proxy may reach {target}, or add it to NO_PROXY if it is reachable "
                                   "directly")
        failure.transient = code in (502, 503, 504)  # the proxy's own way out may come back
        return failure
    why = _reason(exc, url).split(" (")[0]
    if why.startswith(("ProxyError", "NewConnectionError", "MaxRetryError")):
        why = "no connection"
    return ProxyFailure(f"cannot connect to the proxy at {proxy.address} (from {proxy.variable}): {why}", url=url,
                        fix=f"check {proxy.variable}, or unset it where the Hub is reachable "
                            "directly")


def _socks_failure(exc: BaseException, proxy: Proxy, url: str) -> TransferError:
    """PySocks' words through urllib3: the proxy's auth, the proxy itself, or the proxy's reply about the target."""
    text = str(exc)
    target = urlsplit(url).netloc.rpartition("@")[2]
    if "authentication failed" in text.lower() or "authentication is required" in text.lower():
        return _refused(proxy, url, "SOCKS5 authentication failed")
    reply = re.search(r"0x0[1-8]: ([^)\]]+)", text)
    if reply:
        failure = ProxyFailure(f"the SOCKS proxy at {proxy.address} (from {proxy.variable}) could not reach {target} "
                               f"({reply[1].strip()[:80]})", url=url,
                               fix=f"check that the proxy may reach {target}, or add it to NO_PROXY if it is reachable "
                                   "directly")
        failure.transient = True  # the proxy's own way out may come back
        return failure
    why = re.search(r"\[Errno -?\d+\] ([^)\]]+)", text)
    return ProxyFailure(f"cannot connect to the proxy at {proxy.address} (from {proxy.variable}): "
                        f"{why[1].strip()[:80] if why else 'no connection'}", url=url,
                        fix=f"check {proxy.variable}, or unset it where the Hub is reachable directly")


def _tls_failure(exc: BaseException, url: str, trusted: Trust) -> TransferError:
    text = str(exc)
    target = urlsplit(url).netloc.rpartition("@")[2]
    if "CERTIFICATE_VERIFY_FAILED" not in text and "certificate verify failed" not in text.lower():
        return ConnectionLost(f"TLS with {target} failed ({_reason(exc, url)})", url=url)
    detail = re.search(r"certificate verify failed: ([^(]+?)(?: \(_ssl|\)|$)", text)
    why = (detail[1].strip() if detail else "certificate verify failed")[:120]
    if "mismatch" in why.lower() or "not valid for" in why.lower():
        return TrustFailure(f"the TLS certificate of {target} is not valid for that name ({why})", url=url,
                            fix="use the host name the certificate names in HF_ENDPOINT")
    return TrustFailure(f"the TLS certificate chain of {target} is not trusted ({why}; verified against "
                        f"{trusted.source}): set REQUESTS_CA_BUNDLE, SSL_CERT_FILE or CURL_CA_BUNDLE to a CA bundle "
                        "that holds its root", url=url, fix="REQUESTS_CA_BUNDLE=/path/to/company-ca.pem")


class Stream:
    """One body being read: bounded in length, in time and in rate; close() from any thread stops it."""

    def __init__(self, client: Client, resp: Any, url: str, start: int, end: int, total: int, ranged: bool,
                 first_headers: dict[str, str] | None = None) -> None:
        self.client, self.resp, self.url = client, resp, url
        self.start, self.end, self.total, self.ranged = start, end, total, ranged
        self.status: int = resp.status
        self.headers = _lower(resp.headers)
        self.first_headers = first_headers if first_headers is not None else self.headers
        self.got = 0
        self._closed = threading.Event()
        self._check_answer()

    def _check_answer(self) -> None:
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            self.close()
            raise BadAnswer(f"{_host(self.url)} sent a body with Content-Encoding {encoding[:20]!r}; refusing it "
                            "(only identity bytes can be checked against the pin)", url=self.url)
        if self.status == 200 and self.ranged:
            self.start, self.end = 0, self.total  # it ignored Range: the caller starts this file over
        elif self.status == 206:
            answered = self.headers.get("content-range", "")
            wanted = f"bytes {self.start}-{self.end - 1}/{self.total}"
            if answered.strip() != wanted:
                self.close()
                raise BadAnswer(f"{_host(self.url)} answered range {answered[:60]!r} for {wanted!r}", url=self.url)
        elif self.status != 200:
            self.close()
            raise BadAnswer(f"{_host(self.url)} answered HTTP {self.status} where 200 or 206 was expected", url=self.url)
        length = self.headers.get("content-length")
        expected = self.end - self.start
        if length is not None and length.isdigit() and int(length) != expected:
            self.close()
            raise BadAnswer(f"{_host(self.url)} announced {int(length)} bytes where {expected} were expected", url=self.url)

    @property
    def ignored_range(self) -> bool:
        return self.ranged and self.status == 200

    def chunks(self) -> Iterator[bytes]:
        """Bytes as they arrive, never past `end`; raises TransferError subclasses, or Cancelled after close()."""
        want = self.end - self.start
        t = self.client.timeouts
        window: deque[tuple[float, int]] = deque()  # (time, bytes) of the reads in the last t.window seconds
        in_window = 0  # their sum, kept as reads come and go (a sum per read grew with the window: O(n) per read)
        began = time.monotonic()
        first = True
        limiter = self.client.limiter
        capped = 0.0  # seconds spent waiting on the user's own cap: the slow-body rule judges the server, not the cap
        while self.got < want:
            step = min(READ_SIZE, want - self.got)
            if limiter is not None:
                asked = time.monotonic()
                step = limiter.take(step)
                capped += time.monotonic() - asked
            try:
                data = self.resp.read1(step)
            except Exception as exc:  # urllib3/http.client/socket errors differ by version; all mean the same here
                if self._closed.is_set():
                    raise Cancelled() from None
                if first and _is_timeout(exc):
                    waited = t.first_byte_ranged if self.ranged else t.headers
                    what = "a ranged request" if self.ranged else "the request"
                    raise NoFirstByte(f"{_host(self.url)} answered {what} but sent no byte in {waited:g}s", url=self.url,
                                      got=self.got) from None
                raise ConnectionLost(f"{_reason(exc, self.url)} after {self.got} of {want} bytes", url=self.url,
                                     got=self.got) from None
            if limiter is not None:
                limiter.refund(step - len(data))
            if self._closed.is_set():
                raise Cancelled()
            if not data:
                raise ConnectionLost(f"{_host(self.url)} closed the connection after {self.got} of {want} bytes",
                                     url=self.url, got=self.got)
            if first:
                first = False
                self._set_read_timeout(t.stall)
            self.got += len(data)
            now = time.monotonic() - capped  # a clock that stands still while the cap holds this connection back
            window.append((now, len(data)))
            in_window += len(data)
            while window[0][0] < now - t.window:
                in_window -= window.popleft()[1]
            if now - began >= t.window and in_window < t.min_rate * t.window:
                raise TooSlow(f"{_host(self.url)} sent {in_window} bytes in {t.window:.0f}s "
                              f"(less than {t.min_rate} bytes per second)", url=self.url, got=self.got)
            yield data

    def _set_read_timeout(self, seconds: float) -> None:
        sock = getattr(getattr(self.resp, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.settimeout(seconds)
            except OSError:
                pass

    def close(self) -> None:
        """Stop now, from any thread: the socket is shut down, so a blocked read returns at once."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self.resp.shutdown()
        except Exception:
            sock = getattr(getattr(self.resp, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            self.resp.close()
        except Exception:
            pass

    def finish(self) -> None:
        """A body read to its end goes back to the pool for the next request; anything else is closed."""
        if self.got == self.end - self.start and not self._closed.is_set():
            try:
                self.resp.release_conn()
                return
            except Exception:
                pass
        self.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def _lower(headers: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _is_timeout(exc: BaseException) -> bool:
    import urllib3

    return isinstance(exc, (TimeoutError, socket.timeout, urllib3.exceptions.ReadTimeoutError)) or "timed out" in str(exc)


def _reason(exc: BaseException, url: str) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    for known in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                  "Connection reset", "timed out", "No route to host", "Network is unreachable"):
        if known.lower() in text.lower():
            return f"{known.lower() if known != 'Connection refused' else known} ({_host(url)})"
    return f"{type(exc).__name__} ({_host(url)})"


def _excerpt(resp: Any) -> str:
    try:
        data = resp.read(4096, decode_content=False)
    except Exception:
        data = b""
    finally:
        try:
            resp.release_conn()
        except Exception:
            pass
    return data.decode("utf-8", "replace")[:500]

