"""A Hub-compatible HTTP server on 127.0.0.1, so the real huggingface_hub client can be tested offline.

It answers what hf_hub_download, snapshot_download, model_info(files_metadata=True),
list_repo_tree, get_paths_info and get_hf_file_metadata ask for (0.36.x over requests and
2.x over httpx2): /resolve with X-Repo-Commit/ETag/X-Linked-* and Range, /api/models info,
tree (paged), paths-info and refs, and Hub-style errors via X-Error-Code. It never sends
Xet headers, so clients use plain HTTP. Standard library only; files given as Paths are
streamed from disk. Faults (hub_faults.Fault) and a throttle make failures reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .hub_faults import (
    LFS_MIN_SIZE,
    LFS_SUFFIXES,
    Abort,
    Blob,
    BodyWriter,
    Commit,
    Fault,
    FaultQueue,
    FileSource,
    RepoState,
    Stopped,
    collect_files,
    make_blob,
    parse_range,
)

__all__ = ["LFS_MIN_SIZE", "LFS_SUFFIXES", "Fault", "Request", "TestHub"]


@dataclass(frozen=True)
class Request:
    """One served request, as the hub saw it (bytes_sent = body bytes that reached the socket)."""

    method: str
    path: str
    status: int
    bytes_sent: int
    range: str | None
    authorization_present: bool
    client: int
    origin: str = "hub"  # "hub", or "cdn" for the second host that redirects point to
    started: float = 0.0  # time.monotonic() when the request arrived
    ended: float = 0.0  # time.monotonic() when its answer was written (or abandoned)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """Query booleans: 0.36 sends True/False, 2.x true/false."""
    return (query.get(name) or ["false"])[-1].lower() in ("true", "1", "yes")


def _drain(sock: socket.socket, timeout: float) -> None:
    """Wait until the peer acknowledged all we wrote (Linux TIOCOUTQ): a reset must not eat the bytes before it."""
    try:
        import fcntl
        import termios
    except ImportError:
        return
    deadline = time.monotonic() + timeout
    while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] > 0:
        if time.monotonic() > deadline:
            return
        time.sleep(0.001)


def _second_host(host: str) -> str:
    """127.0.0.2 for a hub on 127.0.0.1 (another host, as a CDN is), when this machine routes it."""
    if host != "127.0.0.1":
        return host
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        return host
    return "127.0.0.2"


def _origin(server: socketserver.TCPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # aria2c and eight-connection warms open many at once; 5 would drop some

    def __init__(self, hub: TestHub, cdn: bool, address: tuple[str, int]) -> None:
        self.hub, self.cdn = hub, cdn
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's getfqdn(): no name lookups, ever."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client hanging up is normal; anything else is kept in hub.errors."""
        err = traceback.format_exc()
        if not any(name in err for name in ("ConnectionError", "BrokenPipe", "ConnectionReset", "TimeoutError")):
            self.hub._record_error(err)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._track(self.connection, False)

    def _serve(self) -> None:
        """Entry for every method: apply a fault or route, and always log the request."""
        hub = self.server.hub
        self._status, self._tail = 0, False
        self._writer: BodyWriter | None = None
        self._started = time.monotonic()
        split = urlsplit(self.path)
        self._query = parse_qs(split.query, keep_blank_values=True)
        self._seg = split.path.strip("/").split("/")
        self._payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        resolve_get = self.command == "GET" and not self.server.cdn and "/resolve/" in split.path
        self._fault: Fault | None = hub._faults.take(self.command, unquote(split.path), resolve_get)
        try:
            if self._fault is not None and self._fault.kind == "status":
                retry = {"Retry-After": str(self._fault.retry_after)} if self._fault.status == 429 else {}
                self._json(self._fault.status, {"error": f"injected status {self._fault.status}"}, retry)
            elif self.server.cdn:
                self._route_cdn()
            else:
                self._route()
        except Abort as abort:
            self._close(abrupt=abort.kind == "drop")
        except (Stopped, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            hub._record_error(traceback.format_exc())
            self.close_connection, self._fault = True, None
            if self._status == 0:
                self._json(500, {"error": "test hub internal error"})
        finally:
            sent = self._writer.sent if self._writer else 0
            hub._record(Request(self.command, self.path, self._status, sent, self.headers.get("Range"),
                                "Authorization" in self.headers, self.client_address[1],
                                "cdn" if self.server.cdn else "hub", self._started, time.monotonic()), self._tail)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    # --- responses -------------------------------------------------------------------------
    def _mark_tail(self) -> None:
        """The next write may let the client finish: make hub.requests wait for our log entry."""
        if not self._tail:
            self._tail = True
            self.server.hub._begin_tail()

    def _send(self, status: int, headers: Mapping[str, str], chunks: Iterable[bytes | memoryview], length: int) -> None:
        """Headers always carry Content-Length (keep-alive); the body goes through faults and throttle."""
        self._status = status
        if self.server.hub.latency:
            self.server.hub._stop.wait(self.server.hub.latency)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        if self.command == "HEAD":
            self._mark_tail()
            self.end_headers()
            return
        if length == 0:
            self._mark_tail()
        self.end_headers()
        hub = self.server.hub
        self._writer = BodyWriter(self.wfile.write, self._fault, hub._current_rate, hub._stop, self._mark_tail,
                                  hub._line_wait, hub._current_line_rate)
        self._writer.run(chunks, length)

    def _json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._send(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, [body], len(body))

    def _error(self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> None:
        extra = {"X-Error-Code": code} if code else {}
        self._json(status, {"error": message}, {**extra, "X-Error-Message": message, **(headers or {})})

    def _not_found(self) -> None:
        self._json(404, {"error": "Sorry, we can't find the page you are looking for."})

    def _close(self, abrupt: bool) -> None:
        """After drop (RST) or truncate (FIN): the connection cannot carry another response."""
        self.close_connection = True
        if abrupt:
            try:
                _drain(self.connection, timeout=2.0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass

    # --- routing ---------------------------------------------------------------------------
    def _find_repo(self, seg: list[str]) -> tuple[RepoState | None, list[str]]:
        """Repo ids have one or two segments; prefer the one the hub knows. Returns (repo, rest)."""
        for n in (2, 1):
            repo = self.server.hub._repo("/".join(unquote(s) for s in seg[:n])) if len(seg) >= n else None
            if repo is not None:
                return repo, seg[n:]
        return None, seg[2:]

    def _route(self) -> None:
        seg = self._seg
        if seg[0] == "api":
            return self._route_api(seg[1:])
        at = next((i for i in (2, 1) if len(seg) > i + 2 and seg[i] == "resolve"), None)
        if at is None or self.command not in ("GET", "HEAD"):
            return self._not_found()
        repo, _ = self._find_repo(seg[:at])
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        self._resolve(repo, unquote(seg[at + 1]), unquote("/".join(seg[at + 2:])))

    def _route_api(self, seg: list[str]) -> None:
        if len(seg) < 2 or seg[0] != "models":
            return self._not_found()
        repo, rest = self._find_repo(seg[1:])
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        get = self.command == "GET"
        if get and not rest:
            return self._info(repo, repo.default_branch)
        if get and len(rest) == 2 and rest[0] == "revision":
            return self._info(repo, unquote(rest[1]))
        if get and len(rest) >= 2 and rest[0] == "tree":
            return self._tree(repo, unquote(rest[1]), unquote("/".join(rest[2:])).strip("/"))
        if self.command == "POST" and len(rest) == 2 and rest[0] == "paths-info":
            return self._paths_info(repo, unquote(rest[1]))
        if get and rest == ["refs"]:
            return self._refs(repo)
        self._not_found()

    def _commit(self, repo: RepoState, rev: str) -> Commit | None:
        commit = repo.resolve(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    def _gate(self, repo: RepoState) -> bool:
        """Gated repos: 401 without a token, 403 with one that was not granted (both GatedRepo)."""
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token and token in repo.tokens:
            return True
        if not token:
            msg = (f"Access to model {repo.name} is restricted. You must have access to it and be authenticated "
                   "to access it. Please log in.")
            self._error(401, "GatedRepo", msg)
        else:
            msg = (f"Access to model {repo.name} is restricted and you are not in the authorized list. "
                   f"Visit {self.server.hub.endpoint}/{repo.name} to ask for access.")
            self._error(403, "GatedRepo", msg)
        return False

    def _resolve(self, repo: RepoState, rev: str, path: str) -> None:
        if not self._gate(repo) or (commit := self._commit(repo, rev)) is None:
            return None
        blob = commit.files.get(path)
        if blob is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"",
                               {"X-Repo-Commit": commit.sha})
        hub = self.server.hub
        headers = {**self._file_headers(blob, hub), "X-Repo-Commit": commit.sha}
        redirect = (self._fault is not None and self._fault.kind == "redirect") or (
            hub.cdn_ttl is not None and blob.lfs and self.command in ("GET", "HEAD"))
        if redirect:
            location = hub._signed_url(repo.name, commit.sha, path)
            return self._send(302, {**headers, "Location": location}, [], 0)
        self._serve_blob(blob, headers)

    def _route_cdn(self) -> None:
        """Second origin (imitates a CDN): signed-URL style, so no gating and no X-Repo-Commit."""
        seg = self._seg
        if seg[0] != "cdn" or len(seg) < 4 or self.command not in ("GET", "HEAD"):
            return self._not_found()
        hub = self.server.hub
        repo = hub._repo(unquote(seg[1]))
        commit = repo.commits.get(seg[2]) if repo else None
        path = unquote("/".join(seg[3:]))
        blob = commit.files.get(path) if commit else None
        if blob is None:
            return self._json(404, {"error": "NoSuchKey"})
        if not hub._signature_ok(unquote(seg[1]), seg[2], path, self._query):
            return self._json(403, {"error": "AccessDenied: Request has expired"})
        self._serve_blob(blob, self._file_headers(blob, hub))

    @staticmethod
    def _file_headers(blob: Blob, hub: TestHub) -> dict[str, str]:
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{blob.etag}"'}
        if hub.ranges:
            headers["Accept-Ranges"] = "bytes"
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        return headers

    def _serve_blob(self, blob: Blob, headers: dict[str, str]) -> None:
        start, end, status = 0, blob.size, 200
        wanted = self.headers.get("Range") if self.command == "GET" and not self.server.hub.ignore_range else None
        if wanted:
            span = parse_range(wanted, blob.size)
            if span is None:
                return self._send(416, {**headers, "Content-Range": f"bytes */{blob.size}"}, [], 0)
            (start, end), status = span, 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{blob.size}"}
        hub = self.server.hub
        host = "cdn" if self.server.cdn else "hub"
        if self.command == "GET" and not hub._admit(host):  # more bodies at once than this host allows
            return self._json(429, {"error": "Too many concurrent downloads"}, hub._refusal_headers())
        chunks = blob.chunks(start, end)
        hub._gauge(+1)
        try:
            self._send(status, headers, chunks, end - start)
        finally:
            hub._gauge(-1)
            if self.command == "GET":
                hub._leave(host)
            chunks.close()

    def _info(self, repo: RepoState, rev: str) -> None:
        if (commit := self._commit(repo, rev)) is not None:
            self._json(200, repo.info(commit, _flag(self._query, "blobs")))

    def _tree(self, repo: RepoState, rev: str, base: str) -> None:
        """Tree listing, paged like the Hub: Link: <absolute next url>; rel="next" with a cursor."""
        if (commit := self._commit(repo, rev)) is None:
            return None
        names = commit.listing(base, _flag(self._query, "recursive"))
        if names is None:
            return self._error(404, "EntryNotFound", f"{base} does not exist on \"{rev}\"")
        hub, expand = self.server.hub, _flag(self._query, "expand")
        cursor = int((self._query.get("cursor") or ["0"])[-1] or 0)
        page = names[cursor:cursor + hub.page_size]
        headers = {}
        if cursor + hub.page_size < len(names):
            query = {k: v[-1] for k, v in self._query.items()} | {"cursor": str(cursor + hub.page_size)}
            headers["Link"] = f'<{hub.endpoint}{urlsplit(self.path).path}?{urlencode(query)}>; rel="next"'
        self._json(200, [commit.entry(n, expand) for n in page], headers)

    def _paths_info(self, repo: RepoState, rev: str) -> None:
        """POST form (paths=..&paths=..&expand=..) or JSON {paths, expand}; unknown paths are skipped."""
        if (commit := self._commit(repo, rev)) is None:
            return
        text = self._payload.decode("utf-8", "replace")
        if "json" in (self.headers.get("Content-Type") or ""):
            body = json.loads(text or "{}")
            paths, expand = body.get("paths") or [], bool(body.get("expand"))
            paths = [paths] if isinstance(paths, str) else paths
        else:
            form = parse_qs(text, keep_blank_values=True)
            paths, expand = form.get("paths", []), _flag(form, "expand")
        entries = (commit.entry(p.strip("/"), expand) for p in paths)
        self._json(200, [e for e in entries if e is not None])

    def _refs(self, repo: RepoState) -> None:
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha} for b, sha in sorted(repo.branches.items())]
        out: dict[str, Any] = {"branches": branches, "tags": [], "converts": []}
        if "include_prs" in self._query:
            out["pullRequests"] = []
        self._json(200, out)


class TestHub:
    """In-process Hub on 127.0.0.1 (ephemeral port); a context manager that starts and stops it."""

    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._lock = threading.RLock()
        self._repos: dict[str, RepoState] = {}
        self._log: list[Request] = []
        self._log_cond = threading.Condition()
        self._finishing = 0
        self._faults = FaultQueue()
        self._rate: int | None = None
        self._stop = threading.Event()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self.page_size = 1000
        self.errors: list[str] = []  # tracebacks of hub bugs (tests may assert it stays empty)
        self.cdn_ttl: float | None = None  # set: LFS files answer 302 to a signed CDN URL valid this many seconds
        self.ranges = True  # False: no Accept-Ranges header
        self.ignore_range = False  # True: answer a Range request with 200 and the whole body
        self.latency = 0.0  # seconds before each answer's headers (a round trip to a far host)
        self.max_bodies = 0  # the most bodies ever sent at once (a gauge of concurrent connections)
        self._bodies = 0
        self.line_rate: int | None = None  # bytes per second shared by every connection of both hosts (the line)
        self._line_next = 0.0
        self._line_lock = threading.Lock()
        self.body_limit = 0  # > 0: a host sending this many bodies answers the next GET 429 (see limit_bodies)
        self.limit_retry_after: str = "1"
        self.refused = 0  # GETs answered 429 by the body limit
        self._host_bodies: dict[str, int] = {"hub": 0, "cdn": 0}
        self._secret = os.urandom(16)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> TestHub:
        """Start the hub and its second ("CDN") origin, on 127.0.0.2 where that loopback address works; idempotent."""
        with self._lock:
            if self._servers:
                return self
            self._stop.clear()
            for cdn, address in ((False, self._address), (True, (_second_host(self._address[0]), 0))):
                server = _Server(self, cdn, address)
                thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                          name=f"TestHub{'-cdn' if cdn else ''}", daemon=True)
                thread.start()
                self._servers.append(server)
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop listening, cut open connections (throttled bodies end too) and join the threads."""
        with self._lock:
            self._stop.set()
            for server in self._servers:
                server.shutdown()
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            for server in self._servers:
                server.server_close()
            for thread in self._threads:
                thread.join(timeout=5)
            self._servers.clear()
            self._threads.clear()

    def __enter__(self) -> TestHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:PORT (pass as endpoint= to huggingface_hub)."""
        if not self._servers:
            raise RuntimeError("TestHub is not started")
        return _origin(self._servers[0])

    @property
    def _cdn_origin(self) -> str:
        return _origin(self._servers[1])

    # --- content ---------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Mapping[str, FileSource] | os.PathLike, branch: str = "main",
                 gated: bool | None = None, lfs: set[str] | None = None) -> str:
        """Commit ``files`` (replacing the file set) on ``branch``; returns the new 40-hex commit.

        gated=None keeps the repo's current setting (False for a new repo). Older commits stay servable.
        """
        blobs = {name: make_blob(name, value, lfs) for name, value in collect_files(files).items()}
        with self._lock:
            repo = self._repos.setdefault(repo_id, RepoState(repo_id, default_branch=branch))
            if gated is not None:
                repo.gated = gated
            parent = repo.branches.get(branch) or repo.branches.get(repo.default_branch)
            h = hashlib.sha1(f"{repo_id}\0{branch}\0{parent}\0{len(repo.commits)}\0".encode())
            for name in sorted(blobs):
                h.update(f"{name}\0{blobs[name].etag}\0".encode())
            sha = h.hexdigest()
            repo.commits[sha] = Commit(sha, parent, _now(), f"Commit {len(repo.commits) + 1}", blobs)
            repo.branches[branch] = sha
        return sha

    def grant(self, repo_id: str, token: str) -> None:
        """Let ``token`` download from a gated repo."""
        with self._lock:
            self._repos[repo_id].tokens.add(token)

    def file_info(self, repo_id: str, filename: str, revision: str | None = None) -> dict[str, Any]:
        """What the client will see for a file: size, sha256, etag (cache blob name), lfs, commit."""
        with self._lock:
            repo = self._repos[repo_id]
            commit = repo.resolve(revision or repo.default_branch)
            if commit is None:
                raise KeyError(f"{repo_id}@{revision}: no such revision")
            blob = commit.files[filename]
        return {"size": blob.size, "sha256": blob.sha256, "etag": blob.etag, "lfs": blob.lfs, "commit": commit.sha}

    def use_cdn(self, ttl: float | None = 3600.0) -> None:
        """Answer LFS files as the real Hub does: a 302 to a signed URL on the second host that expires after
        ttl seconds (None: serve them directly again)."""
        self.cdn_ttl = ttl

    def _signed_url(self, repo: str, commit: str, path: str) -> str:
        expires = f"{time.time() + (self.cdn_ttl or 3600.0):.3f}"
        sig = hmac.new(self._secret, f"{repo}\0{commit}\0{path}\0{expires}".encode(), "sha256").hexdigest()[:32]
        query = urlencode({"Expires": expires, "Signature": sig, "Key-Pair-Id": "TESTHUB"})
        return f"{self._cdn_origin}/cdn/{quote(repo, safe='')}/{commit}/{quote(path)}?{query}"

    def _signature_ok(self, repo: str, commit: str, path: str, query: dict[str, list[str]]) -> bool:
        expires = (query.get("Expires") or [""])[-1]
        if not expires:
            return True  # an unsigned URL (the redirect fault): always served
        sig = hmac.new(self._secret, f"{repo}\0{commit}\0{path}\0{expires}".encode(), "sha256").hexdigest()[:32]
        try:
            fresh = float(expires) > time.time()
        except ValueError:
            return False
        return fresh and hmac.compare_digest(sig, (query.get("Signature") or [""])[-1])

    def _gauge(self, delta: int) -> None:
        with self._lock:
            self._bodies += delta
            self.max_bodies = max(self.max_bodies, self._bodies)

    def _repo(self, repo_id: str) -> RepoState | None:
        with self._lock:
            return self._repos.get(repo_id)

    # --- request log -----------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        """Snapshot of the log; waits (up to 2 s) for requests whose last bytes are on the way."""
        with self._log_cond:
            self._log_cond.wait_for(lambda: self._finishing == 0, timeout=2.0)
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_cond:
            self._log_cond.wait_for(lambda: self._finishing == 0, timeout=2.0)
            self._log.clear()

    def count(self, method: str | None = None, contains: str | None = None) -> int:
        """Requests matching method and a substring of the (raw or unquoted) path."""
        return len(self._matching(method, contains))

    def bytes_served(self, contains: str | None = None) -> int:
        return sum(r.bytes_sent for r in self._matching(None, contains))

    def _matching(self, method: str | None, contains: str | None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method.upper())
                and (contains is None or contains in r.path or contains in unquote(r.path))]

    def _begin_tail(self) -> None:
        with self._log_cond:
            self._finishing += 1

    def _record(self, request: Request, tail: bool) -> None:
        with self._log_cond:
            self._log.append(request)
            if tail:
                self._finishing -= 1
            self._log_cond.notify_all()

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # --- faults and pacing -----------------------------------------------------------------
    def throttle(self, bytes_per_second: int | None) -> None:
        """Pace every body write (takes effect mid-transfer); None = full speed."""
        if bytes_per_second is not None and bytes_per_second < 1:
            raise ValueError("bytes_per_second must be >= 1 or None")
        self._rate = bytes_per_second

    def _current_rate(self) -> int | None:
        return self._rate

    def line(self, bytes_per_second: int | None) -> None:
        """Cap what all connections together get, as a home line or a NIC does (with throttle(): a per-connection
        cap under it, as a CDN adds); None = no line cap."""
        if bytes_per_second is not None and bytes_per_second < 1:
            raise ValueError("bytes_per_second must be >= 1 or None")
        with self._line_lock:
            self.line_rate, self._line_next = bytes_per_second, 0.0

    def _current_line_rate(self) -> int | None:
        return self.line_rate

    def _line_wait(self, n: int) -> float:
        """Book n bytes on the line; the seconds until the line has carried them (no credit builds up while idle)."""
        rate = self.line_rate
        if not rate:
            return 0.0
        with self._line_lock:
            now = time.monotonic()
            self._line_next = max(now, self._line_next) + n / rate
            return self._line_next - now

    def limit_bodies(self, bodies: int, retry_after: str | float = 1) -> None:
        """Each host sends at most `bodies` bodies at once and answers a GET beyond them with 429, `Retry-After`
        (seconds, or an HTTP date when given a string) and the RateLimit headers the Hub sends; 0 = no limit."""
        with self._lock:
            self.body_limit = max(0, bodies)
            self.limit_retry_after = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"

    def _admit(self, host: str) -> bool:
        with self._lock:
            if self.body_limit and self._host_bodies[host] >= self.body_limit:
                self.refused += 1
                return False
            self._host_bodies[host] += 1
            return True

    def _leave(self, host: str) -> None:
        with self._lock:
            self._host_bodies[host] -= 1

    def _refusal_headers(self) -> dict[str, str]:
        wait = self.limit_retry_after
        reset = wait if wait.replace(".", "", 1).isdigit() else "1"
        return {"Retry-After": wait, "RateLimit": f'"bodies";r=0;t={int(float(reset) + 0.999)}',
                "RateLimit-Policy": f'"concurrency";"bodies";q={self.body_limit};w=1'}

    def inject(self, fault: Fault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not yet used up (to assert a test really triggered them)."""
        return self._faults.pending()
