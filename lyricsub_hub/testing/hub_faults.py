"""TestHub below the HTTP layer: what a repo holds, and how serving it can go wrong.

Two parts, kept out of hub.py's routing: the repo content model (blobs with the ids
the Hub reports, commits, tree entries, ModelInfo JSON) and the faults plus paced
body writing (status, reset, short body, corrupt byte, slow link, CDN redirect).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Union

LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth", ".npz", ".onnx", ".model")
LFS_MIN_SIZE = 1024
_CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_HASHES: dict[tuple[str, int, int, bool], tuple[str, str]] = {}  # files hashed once per (path, size, mtime)
FileSource = Union[bytes, os.PathLike]  # noqa: UP007  (a runtime alias: 3.10 has no | on os.PathLike)


def _git_sha1(data: bytes) -> str:
    """Git blob id: what the Hub uses as etag/oid for non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _hash_file(path: Path, size: int, need_sha1: bool) -> tuple[str, str]:
    """sha256 (and git sha1 if needed) of a file, streamed so 1 GB files never sit in memory."""
    key = (str(path.resolve()), size, path.stat().st_mtime_ns, need_sha1)
    if key not in _HASHES:
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
        with open(path, "rb") as f:
            while buf := f.read(4 * _CHUNK):
                sha256.update(buf)
                if need_sha1:
                    sha1.update(buf)
        _HASHES[key] = (sha256.hexdigest(), sha1.hexdigest() if need_sha1 else "")
    return _HASHES[key]


@dataclass(frozen=True)
class Blob:
    """One file's content and identity as the Hub reports it."""

    size: int
    sha256: str
    git_sha1: str  # of the content; "" for LFS files from disk (not needed)
    lfs: bool
    data: bytes | None = None
    path: Path | None = None

    @cached_property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_sha1

    @cached_property
    def oid(self) -> str:
        """Git blob id in the repo: of the LFS pointer for LFS files (as on the Hub)."""
        return _git_sha1(self.pointer) if self.lfs else self.git_sha1

    def chunks(self, start: int, end: int) -> Generator[bytes | memoryview, None, None]:
        """Bytes [start, end) in chunks; files are read lazily."""
        if self.data is not None:
            view = memoryview(self.data)
            for i in range(start, end, _CHUNK):
                yield view[i:min(i + _CHUNK, end)]
            return
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(start)
            left = end - start
            while left:
                buf = f.read(min(_CHUNK, left))
                if not buf:
                    raise OSError(f"{self.path} shrank while being served")
                left -= len(buf)
                yield buf


def _is_lfs(name: str, size: int, lfs: set[str] | None) -> bool:
    if lfs is not None:
        return name in lfs
    return name.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def make_blob(name: str, value: FileSource, lfs: set[str] | None) -> Blob:
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        is_lfs = _is_lfs(name, len(data), lfs)
        return Blob(len(data), hashlib.sha256(data).hexdigest(), _git_sha1(data), is_lfs, data=data)
    if isinstance(value, os.PathLike):
        path = Path(value)
        size = path.stat().st_size
        is_lfs = _is_lfs(name, size, lfs)
        sha256, sha1 = _hash_file(path, size, need_sha1=not is_lfs)
        return Blob(size, sha256, sha1, is_lfs, path=path)
    raise TypeError(f"file {name!r}: expected bytes or Path, got {type(value).__name__}")


def collect_files(files: Mapping[str, FileSource] | os.PathLike) -> dict[str, FileSource]:
    """Name -> source; a folder Path means every file under it (posix relative names)."""
    if isinstance(files, os.PathLike):
        root = Path(files)
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a folder")
        items: dict[str, FileSource] = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    else:
        items = dict(files)
    for name in items:
        if not name or name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise ValueError(f"invalid file name in repo: {name!r}")
    return items


@dataclass(frozen=True)
class Commit:
    """One commit of a repo on the test Hub."""

    sha: str
    parent: str | None
    date: str
    title: str
    files: Mapping[str, Blob]

    @cached_property
    def dirs(self) -> frozenset[str]:
        return frozenset(p.rsplit("/", i)[0] for p in self.files for i in range(1, p.count("/") + 1))

    def listing(self, base: str, recursive: bool) -> list[str] | None:
        """Paths (files and folders) under base; None when base is not a folder."""
        if base and base not in self.dirs:
            return None
        prefix = base + "/" if base else ""
        return sorted(p for p in (*self.dirs, *self.files)
                      if p.startswith(prefix) and (recursive or "/" not in p[len(prefix):]))

    def entry(self, path: str, expand: bool) -> dict[str, Any] | None:
        """A tree / paths-info entry, as the Hub's JSON spells it."""
        blob = self.files.get(path)
        if blob is not None:
            out: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
            if blob.lfs:
                out["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
        elif path in self.dirs:
            inside = "\n".join(f"{p} {b.oid}" for p, b in sorted(self.files.items()) if p.startswith(path + "/"))
            out = {"type": "directory", "oid": _git_sha1(inside.encode()), "size": 0, "path": path}
        else:
            return None
        if expand:
            out["lastCommit"] = {"id": self.sha, "title": self.title, "date": self.date}
        return out


@dataclass
class RepoState:
    """A repo on the test Hub: its branches and commits."""

    name: str
    default_branch: str
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def resolve(self, rev: str) -> Commit | None:
        rev = rev.removeprefix("refs/heads/")
        return self.commits.get(self.branches.get(rev, rev))

    def info(self, commit: Commit, blobs: bool) -> dict[str, Any]:
        """ModelInfo JSON; sizes/blobIds/lfs only with blobs=true, as on the Hub."""
        siblings = []
        for name, blob in sorted(commit.files.items()):
            sib: dict[str, Any] = {"rfilename": name}
            if blobs:
                sib.update(size=blob.size, blobId=blob.oid)
                if blob.lfs:
                    sib["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": len(blob.pointer)}
            siblings.append(sib)
        first = min(c.date for c in list(self.commits.values()))  # list(): add_repo may run concurrently
        return {"_id": hashlib.sha1(self.name.encode()).hexdigest()[:24], "id": self.name, "modelId": self.name,
                "author": self.name.split("/")[0] if "/" in self.name else None, "sha": commit.sha,
                "lastModified": commit.date, "createdAt": first, "private": False,
                "gated": "auto" if self.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                "tags": [], "siblings": siblings, "spaces": [],
                "usedStorage": sum(b.size for b in commit.files.values())}


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """[start, end) for a single `bytes=` range; None when unsatisfiable or malformed."""
    m = _RANGE.fullmatch(value.strip())
    if not m or not (m[1] or m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        return (max(0, size - n), size) if n and size else None
    start = int(m[1])
    end = min(int(m[2]) + 1, size) if m[2] else size
    return (start, end) if start < size and end > start else None


# --- faults and pacing ---------------------------------------------------------------------

FaultKind = Literal["status", "drop", "truncate", "flip", "slow", "redirect"]
FAULT_KINDS: frozenset[str] = frozenset({"status", "drop", "truncate", "flip", "slow", "redirect"})
BODY_KINDS: frozenset[str] = frozenset({"drop", "truncate", "flip", "slow"})
_FULL_SPEED_PIECE = 1 << 20


@dataclass(frozen=True)
class Fault:
    """One injected failure; applies to the next ``times`` requests it matches, in injection order.

    ``status``: answer ``status`` (no X-Error-Code; 429 gets ``Retry-After: retry_after``).
    ``drop``: full Content-Length, ``after_bytes`` body bytes, then a TCP reset.
    ``truncate``: same, but a clean close (FIN).
    ``flip``: invert the body byte at offset ``after_bytes`` of this response's body.
    ``slow``: this response's body at ``bytes_per_second``.
    ``redirect``: GET /resolve/ answers 302 to a second origin serving the same bytes.
    Body kinds never match HEAD; ``redirect`` only matches GET .../resolve/...
    """

    kind: FaultKind
    status: int = 500
    after_bytes: int = 0
    bytes_per_second: int = 64 * 1024
    retry_after: int = 1
    method: str | None = None
    path_contains: str | None = None
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.times < 1 or self.after_bytes < 0 or self.bytes_per_second < 1:
            raise ValueError("times and bytes_per_second must be >= 1, after_bytes >= 0")

    def matches(self, method: str, path: str, resolve_get: bool) -> bool:
        """Whether this fault applies to a request (path is the URL path, unquoted or not)."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path_contains is not None and self.path_contains not in path:
            return False
        if self.kind in BODY_KINDS and method == "HEAD":
            return False
        return self.kind != "redirect" or resolve_get


class FaultQueue:
    """Thread-safe ordered faults with remaining-use counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[list] = []  # [Fault, remaining]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._items.append([fault, fault.times])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [item[0] for item in self._items]

    def take(self, method: str, path: str, resolve_get: bool) -> Fault | None:
        """Consume one use of the first matching fault."""
        with self._lock:
            for item in self._items:
                if item[0].matches(method, path, resolve_get):
                    item[1] -= 1
                    if item[1] == 0:
                        self._items.remove(item)
                    return item[0]
        return None


class Abort(Exception):
    """Raised after a drop/truncate fault wrote its bytes: the handler must close the socket."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Stopped(Exception):
    """The hub is stopping: abandon the response."""


class BodyWriter:
    """Writes a response body piece by piece, pacing and corrupting it as faults and throttle ask.

    ``sent`` is kept up to date so a failed write still reports what reached the socket.
    ``before_last`` runs right before the write that completes what the client will see,
    so the hub can make its log wait for that request (no race with a fast client).
    """

    def __init__(self, write: Callable[[Any], object], fault: Fault | None, rate: Callable[[], int | None],
                 stop: threading.Event, before_last: Callable[[], None],
                 line: Callable[[int], float] | None = None, line_rate: Callable[[], int | None] | None = None) -> None:
        self._write, self._fault, self._rate, self._stop, self._before_last = write, fault, rate, stop, before_last
        self._line, self._line_rate = line, line_rate  # a cap shared by every connection: seconds to wait after n bytes
        self.sent = 0

    def _current_rate(self) -> int | None:
        if self._fault is not None and self._fault.kind == "slow":
            return self._fault.bytes_per_second
        return self._rate()

    def run(self, chunks: Iterable[bytes | memoryview], total: int) -> None:
        """Write ``total`` bytes from ``chunks`` (or fewer, then raise Abort, for drop/truncate)."""
        abort = self._fault is not None and self._fault.kind in ("drop", "truncate")
        limit = min(self._fault.after_bytes, total) if abort and self._fault else total
        for chunk in chunks:
            view = memoryview(chunk)
            while len(view) and self.sent < limit:
                rate = self._current_rate()
                line = self._line_rate() if self._line_rate is not None else None
                slowest = min(r for r in (rate, line, 1 << 62) if r is not None)
                step = _FULL_SPEED_PIECE if rate is None and line is None else max(1, min(64 * 1024, slowest // 20))
                piece = view[: min(step, limit - self.sent)]
                view = view[len(piece):]
                self._put(piece, last=self.sent + len(piece) >= limit)
                wait = len(piece) / rate if rate is not None else 0.0
                if line is not None and self._line is not None:
                    wait = max(wait, self._line(len(piece)))
                if wait > 0 and self.sent < limit:
                    self._stop.wait(wait)
                if self._stop.is_set():
                    raise Stopped()
            if self.sent >= limit:
                break
        if abort:
            self._before_last()
            raise Abort(self._fault.kind if self._fault else "drop")

    def _put(self, piece: memoryview, last: bool) -> None:
        data: bytes | bytearray | memoryview = piece
        fault = self._fault
        if fault is not None and fault.kind == "flip" and self.sent <= fault.after_bytes < self.sent + len(piece):
            data = bytearray(piece)
            data[fault.after_bytes - self.sent] ^= 0xFF
        if last:
            self._before_last()
        self._write(data)
        self.sent += len(piece)

