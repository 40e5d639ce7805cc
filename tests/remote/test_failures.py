"""remote/failures.TABLE row by row (our error class, its exit code, whether another try is worth it, the fix it
names), and the bounds remote/http.py puts on every answer, against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import os
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from lyricsub_hub.errors import (
    EXIT_DISK,
    EXIT_NETWORK,
    AccessDeniedError,
    DiskSpaceError,
    Fix,
    HubError,
    HubTimeoutError,
    HubUnreachableError,
    LyricsubError,
    ProxyRouteError,
    RemoteNotFoundError,
    UntrustedCertificateError,
)
from lyricsub_hub.remote.failures import TABLE, Context, is_transient, translate
from lyricsub_hub.remote.http import (
    MAX_REDIRECTS,
    BadAnswer,
    BadBytes,
    Client,
    ConnectionLost,
    HttpStatus,
    NoFirstByte,
    ProxyFailure,
    Timeouts,
    TooSlow,
    TrustFailure,
)
from tests.helpers import LoopbackServer

MODEL, REPO, COMMIT = "whisper:x", "org/x", "a" * 40
HUB = "https://hub.example"
URL = f"{HUB}/{REPO}/resolve/{COMMIT}/model.bin"
CDN = "https://cdn.example/blob/123?X-Amz-Signature=secret"
CTX = Context(model=MODEL, repo=REPO, revision=COMMIT, filename="model.bin", endpoint=HUB, attempts=3)
WARM = f"lyricsub-hub warm {MODEL}"


def status(code: int, error_code: str = "", *, cdn: bool = False) -> HttpStatus:
    return HttpStatus(code, CDN if cdn else URL, {"x-error-code": error_code} if error_code else {}, "", cdn)


# --------------------------------------------------------------------------- TABLE: one case per row at least

# (case id, exception, our class (exactly), its JSON code, worth another try, words of the message, the hint)
CASES: list[tuple[str, BaseException, type[LyricsubError], str, bool, str, str]] = [
    ("proxy-env-fix", ProxyFailure("the proxy at p:3128 could not reach hub.example", url=URL, fix="NO_PROXY=hub.example"),
     ProxyRouteError, "proxy", False, "could not reach hub.example after 3 tries", f"NO_PROXY=hub.example {WARM}"),
    ("proxy-words-fix", ProxyFailure("cannot connect to the proxy at p:3128", url=URL, fix="check HTTPS_PROXY"),
     ProxyRouteError, "proxy", False, "cannot connect to the proxy", f"check HTTPS_PROXY, then {WARM}"),
    ("proxy-no-fix", ProxyFailure("the proxy at p:3128 said no", url=URL), ProxyRouteError, "proxy", False, "said no", WARM),
    ("trust", TrustFailure("the TLS certificate chain of hub.example is not trusted", url=URL,
                           fix="REQUESTS_CA_BUNDLE=/path/to/company-ca.pem"),
     UntrustedCertificateError, "certificate", False, "not trusted", f"REQUESTS_CA_BUNDLE=/path/to/company-ca.pem {WARM}"),
    ("gated", status(403, "GatedRepo"), AccessDeniedError, "access_denied", False,
     f"{REPO} is gated: accept its terms at {HUB}/{REPO}", f"HF_TOKEN=<your token> {WARM}"),
    ("revision", status(404, "RevisionNotFound"), RemoteNotFoundError, "not_found", False,
     f"revision {COMMIT} does not exist in {REPO}", f"lyricsub-hub lock --update {MODEL}"),
    ("repo", status(401, "RepoNotFound"), RemoteNotFoundError, "not_found", False, f"repo {REPO} not found on {HUB}",
     f"lyricsub-hub info {MODEL}"),
    ("entry-code", status(404, "EntryNotFound"), RemoteNotFoundError, "not_found", False,
     f"file model.bin does not exist in {REPO} at {COMMIT} on {HUB}", f"HF_ENDPOINT=https://huggingface.co {WARM}"),
    ("entry-404", status(404), RemoteNotFoundError, "not_found", False, "a mirror in offline mode",
     f"HF_ENDPOINT=https://huggingface.co {WARM}"),
    ("cdn-403", status(403, cdn=True), HubError, "hub", False,
     "the download address https://cdn.example gave for model.bin kept being refused (HTTP 403) after 3 tries", WARM),
    ("cdn-404", status(404, cdn=True), HubError, "hub", False, "kept being refused (HTTP 404)", WARM),
    ("denied-401", status(401), AccessDeniedError, "access_denied", False, f"{HUB} refused access to {REPO} (HTTP 401)", WARM),
    ("denied-403", status(403), AccessDeniedError, "access_denied", False, "(HTTP 403); check HF_TOKEN", WARM),
    ("status-500", status(500), HubError, "hub", True, "https://hub.example answered HTTP 500 for model.bin after 3 tries",
     WARM),
    ("status-429", status(429), HubError, "hub", True, "answered HTTP 429", WARM),
    ("status-400", status(400), HubError, "hub", False, "answered HTTP 400", WARM),
    ("no-first-byte", NoFirstByte("https://mirror.example sent no answer to a ranged request within 180s", url=URL),
     HubTimeoutError, "timeout", True, "too slow to start sending model.bin", WARM),
    ("too-slow", TooSlow("https://hub.example sent 10 bytes in 30s (less than 1024 bytes per second)", url=URL, got=10),
     HubTimeoutError, "timeout", True, "model.bin: https://hub.example sent 10 bytes in 30s", WARM),
    ("bad-bytes", BadBytes("model.bin: the bytes hash to 0123…, the pin is 4567…"), HubError, "hub", True,
     "kept sending bytes that do not match the pin", WARM),
    ("bad-answer", BadAnswer("https://hub.example sent a body with Content-Encoding 'gzip'", url=URL), HubError, "hub",
     False, "refusing the answer for model.bin: https://hub.example sent a body with Content-Encoding", WARM),
    ("refused", ConnectionLost("Connection refused (https://hub.example)", url=URL), HubUnreachableError, "unreachable",
     True, f"cannot reach {HUB} after 3 tries: Connection refused", WARM),
    ("broke-off", ConnectionLost("connection reset (https://hub.example) after 5 of 10 bytes", url=URL, got=5), HubError,
     "hub", True, "the download of model.bin kept breaking off after 3 tries", WARM),
    ("reset-before-a-byte", ConnectionLost("connection reset (https://hub.example) after 0 of 10 bytes", url=URL),
     HubError, "hub", True, "kept breaking off", WARM),
]


@pytest.mark.parametrize(("exc", "cls", "code", "transient", "words", "hint"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_wire_failure_becomes_its_error(exc: BaseException, cls: type[LyricsubError], code: str, transient: bool,
                                             words: str, hint: str) -> None:
    err = translate(exc, CTX)
    assert type(err) is cls
    assert err.code == code
    assert err.exit_code == EXIT_NETWORK
    assert is_transient(exc) is transient
    assert err.model == MODEL
    assert words in err.message
    assert err.hint == hint
    assert isinstance(err.fix, Fix)  # the same fix as data, for --json
    assert "secret" not in str(err)  # a signed address's query string is never shown


def _row(exc: BaseException) -> int:
    return next(i for i, (test, _) in enumerate(TABLE) if test(exc))


def test_every_row_of_the_table_has_a_case_here() -> None:
    """A row added without a case above fails here (row 0, our own errors, is the next test)."""
    assert {_row(c[1]) for c in CASES} == set(range(1, len(TABLE)))


def test_first_matching_row_decides() -> None:
    """A gated repo's 403 is not a plain refusal; a CDN's 404 is not a missing file; a Hub's 404 is not a CDN's."""
    assert _row(status(403, "GatedRepo")) < _row(status(403))
    assert type(translate(status(404, cdn=True), CTX)) is HubError
    assert type(translate(status(404), CTX)) is RemoteNotFoundError


def test_our_own_errors_pass_through_unchanged() -> None:
    mine = DiskSpaceError("the disk filled up", model=MODEL)
    assert translate(mine, CTX) is mine
    assert mine.exit_code == EXIT_DISK
    assert is_transient(mine) is False


def test_the_official_hub_names_the_pin_not_a_mirror() -> None:
    err = translate(status(404, "EntryNotFound"), Context(MODEL, REPO, COMMIT, "model.bin", "https://huggingface.co"))
    assert err.message == f"file model.bin does not exist in {REPO} at {COMMIT}"
    assert err.hint == f"lyricsub-hub lock --update {MODEL}"


def test_one_try_says_no_count() -> None:
    err = translate(status(502), Context(MODEL, REPO, COMMIT, "model.bin", HUB, attempts=1))
    assert err.message == "https://hub.example answered HTTP 502 for model.bin"


def test_anything_else_is_a_plain_hub_error_without_the_query() -> None:
    err = translate(ValueError(f"odd thing at {CDN}"), CTX)
    assert type(err) is HubError
    assert err.message.startswith("download of model.bin failed: ValueError: odd thing at https://cdn.example/blob/123")
    assert "secret" not in err.message
    assert is_transient(ValueError("x")) is False


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_statuses_worth_another_try(code: int) -> None:
    assert is_transient(status(code))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 416, 501])
def test_statuses_not_worth_another_try(code: int) -> None:
    assert not is_transient(status(code))


def test_a_proxy_whose_own_way_out_failed_is_worth_another_try() -> None:
    failure = ProxyFailure("could not open a tunnel (502 from the proxy)", url=URL, fix="check")
    failure.transient = True  # as remote/http.py marks a 502/503/504 from the proxy
    assert is_transient(failure)
    assert type(translate(failure, CTX)) is ProxyRouteError


# --------------------------------------------------------------------------- the bounds of remote/http.py


class Script(BaseHTTPRequestHandler):
    """Answers by path: each test sets what its path does."""

    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        self.routes[self.path.split("?")[0]](self)

    def answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)
    Script.routes, Script.seen = {}, []
    srv = LoopbackServer()
    srv.serve(Script)
    with srv:
        yield srv


def client(srv: LoopbackServer, token: str | None = None, **timeouts: Any) -> Client:
    return Client(srv.endpoint, token, timeouts=Timeouts(**timeouts))


def body(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(n % 256)


def chain(prefix: str, hops: int) -> str:
    """/<prefix>0 redirects to /<prefix>1 ... and /<prefix><hops> answers: `hops` redirects in all."""
    for i in range(hops):
        Script.routes[f"/{prefix}{i}"] = lambda h, i=i: h.answer(302, {"Location": f"/{prefix}{i + 1}", "Content-Length": "0"})
    Script.routes[f"/{prefix}{hops}"] = lambda h: h.answer(200, {"Content-Length": "3"}, b"end")
    return f"/{prefix}0"


def test_redirects_are_followed_up_to_max_redirects(server) -> None:
    with client(server).get(server.endpoint + chain("a", MAX_REDIRECTS), total=3) as stream:
        assert b"".join(stream.chunks()) == b"end"


def test_one_redirect_more_is_refused(server) -> None:
    with pytest.raises(BadAnswer, match=f"more than {MAX_REDIRECTS} redirects"):
        client(server).get(server.endpoint + chain("b", MAX_REDIRECTS + 1), total=3)


@pytest.mark.parametrize(("start", "target", "why"), [
    ("https://hub.example/x", "http://hub.example/y", "refusing a redirect from https to http://hub.example/y"),
    ("http://hub.example/x", "file:///etc/passwd", "redirect to an unsupported address"),
    ("http://hub.example/x", "ftp://hub.example/y", "redirect to an unsupported address"),
])
def test_a_redirect_never_downgrades_or_leaves_http(start: str, target: str, why: str) -> None:
    with pytest.raises(BadAnswer, match=why):
        Client("https://hub.example", None)._next_hop(start, target, 0)


def test_the_token_goes_to_the_endpoint_only_not_to_a_redirect_target(server) -> None:
    other = LoopbackServer()
    other.serve(Script)
    with other:
        Script.routes["/file"] = lambda h: h.answer(302, {"Location": f"{other.endpoint}/cdn", "Content-Length": "0"})
        Script.routes["/cdn"] = lambda h: h.answer(200, {"Content-Length": "3"}, b"abc")
        with client(server, token="hf_secret").get(f"{server.endpoint}/file", total=3) as stream:
            assert b"".join(stream.chunks()) == b"abc"
    assert [(s["path"], s.get("authorization")) for s in Script.seen] == [("/file", "Bearer hf_secret"), ("/cdn", None)]


def test_compressed_bodies_are_refused(server) -> None:
    Script.routes["/gz"] = lambda h: h.answer(200, {"Content-Length": "3", "Content-Encoding": "gzip"}, b"abc")
    with pytest.raises(BadAnswer, match="Content-Encoding 'gzip'; refusing it"):
        client(server).get(f"{server.endpoint}/gz", total=3)
    assert Script.seen[0]["accept-encoding"] == "identity"


def test_a_range_answered_for_other_bytes_is_refused(server) -> None:
    Script.routes["/r"] = lambda h: h.answer(206, {"Content-Length": "10", "Content-Range": "bytes 0-9/100"}, body(10))
    with pytest.raises(BadAnswer, match="answered range 'bytes 0-9/100' for 'bytes 50-59/100'"):
        client(server).get(f"{server.endpoint}/r", start=50, end=60, total=100)


def test_a_length_other_than_asked_for_is_refused(server) -> None:
    Script.routes["/long"] = lambda h: h.answer(200, {"Content-Length": "101"}, body(101))
    with pytest.raises(BadAnswer, match="announced 101 bytes where 100 were expected"):
        client(server).get(f"{server.endpoint}/long", total=100)


def test_a_body_is_never_read_past_the_pinned_size(server) -> None:
    """No Content-Length, more bytes than the pin: the stream stops at the pin."""
    def endless(h: Script) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body(5000))
        h.wfile.flush()

    Script.routes["/endless"] = endless
    with client(server).get(f"{server.endpoint}/endless", total=1000) as stream:
        assert b"".join(stream.chunks()) == body(5000)[:1000]


def test_a_small_body_larger_than_its_limit_is_refused(server) -> None:
    Script.routes["/small"] = lambda h: h.answer(200, {"Content-Length": "2000"}, body(2000))
    with pytest.raises(BadAnswer, match="announced 2000 bytes where 1000 were expected"):
        client(server).get_small(f"{server.endpoint}/small", 1000)


def test_no_answer_within_the_header_wait_ends_the_try(server) -> None:
    Script.routes["/mute"] = lambda h: time.sleep(1.5)
    began = time.monotonic()
    with pytest.raises(NoFirstByte, match="sent no answer within 0.3s"):
        client(server, headers=0.3).get(f"{server.endpoint}/mute", total=3)
    assert time.monotonic() - began < 1.2


def test_a_ranged_answer_waits_first_byte_ranged_not_headers(server) -> None:
    def late(h: Script) -> None:
        time.sleep(0.6)
        h.answer(206, {"Content-Length": "10", "Content-Range": "bytes 10-19/100"}, body(20)[10:])

    Script.routes["/late"] = late
    with client(server, headers=0.2, first_byte_ranged=2.0).get(f"{server.endpoint}/late", start=10, end=20,
                                                                   total=100) as stream:
        assert b"".join(stream.chunks()) == body(20)[10:]


def test_a_body_that_stops_ends_the_try_after_the_stall_wait(server) -> None:
    def stops(h: Script) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(body(100))
        h.wfile.flush()
        time.sleep(1.5)

    Script.routes["/stops"] = stops
    began = time.monotonic()
    with pytest.raises(ConnectionLost, match="timed out .* after 100 of 1000 bytes"), \
            client(server, stall=0.3).get(f"{server.endpoint}/stops", total=1000) as stream:
        for _ in stream.chunks():
            pass
    assert time.monotonic() - began < 1.2


def test_a_trickle_below_the_floor_ends_the_try(server) -> None:
    def trickle(h: Script) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(40):
            h.wfile.write(b"x" * 50)  # 1000 bytes per second
            h.wfile.flush()
            time.sleep(0.05)

    Script.routes["/trickle"] = trickle
    with pytest.raises(TooSlow, match=r"sent \d+ bytes in 0s \(less than 4096 bytes per second\)"), \
            client(server, window=0.5, min_rate=4096).get(f"{server.endpoint}/trickle", total=100_000) as stream:
        for _ in stream.chunks():
            pass
