"""Bundles: pinned models carried to machines without network as one tar stream (zstd-compressed when asked),
in huggingface_hub's own cache layout (blobs once, snapshot links, refs) behind a manifest of names, pins,
sizes and sha256.

Export reads each pinned file once and hashes the very buffer it writes; it never seeks, so the output may
be a pipe. Import is plan, then act: the manifest is checked against the index before any member is read,
every member name against what the manifest allows before anything is written for it; each blob streams
into an O_EXCL temp file in its repo's blobs folder while it is hashed, and a model takes its place (blob
names, snapshot links made from validated values, refs, records) only once all its files verified. A
refused member is read and discarded, so the other models go on. Headers are parsed and written by
tarfile's TarInfo; data moves through one buffer (tarfile's own stream mode copies every byte several times,
and extraction is never left to it). No network: nothing here imports remote or download.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..cache.layout import IMPORT_PREFIX, blobs_dir, cache_key, link_target, repo_folder, snapshot_dir
from ..cache.records import Stamp
from ..cache.status import not_available_error
from ..cache.store import Cache
from ..core.checks import is_commit, is_git_sha1, is_repo_id, is_sha256, safe_file_name, safe_ref_name
from ..core.digest import mismatch, new_hashers
from ..core.fs import UMASK, new_temp, real_dir
from ..core.text import human_size, printable
from ..errors import (
    BundleError,
    BundleFormatError,
    DiskSpaceError,
    Fix,
    Hint,
    LyricsubError,
    UnsafeCacheError,
    local_error,
)
from ..index import ModelIndex, ModelSpec, unpinned_error
from .tarstream import (
    Counter,
    Damaged,
    Member,
    Pump,
    Source,
    TarReader,
    TarWriter,
    Truncated,
    carry,
    clean_name,
    fill_from_fd,
    kind_word,
    write_all,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Literal

    Hasher = Any  # hashlib objects have no public common type
    ImportState = Literal["imported", "present", "failed"]
    TargetState = Literal["pending", "imported", "present", "failed"]

    from .tarstream import Readable

MANIFEST = "manifest.json"
FORMAT = 1
MAX_MANIFEST = 16 << 20
MAX_REF = 256
MAX_DEPTH = 8  # of the manifest's JSON: format 1 nests 5 deep (document, models, model, files, file)
MAX_SIZE = 1 << 50  # bytes: no pinned file is larger (1 PiB); a 400-digit size is no size
IN_FLIGHT = 4  # blobs handed to each helper thread at most (each holds a temp file open)
SPARE_MEMBERS = 64  # members a bundle may hold beyond what its manifest lists (folders a re-packing tar adds)
_IMPORT_AGAIN = ("import", "FILE")  # the command a local-storage line names as the way out (after a fix of the cache)


def _again(name: str) -> Fix:
    return Fix("export", name, "-o", "FILE", after=f" where the model is available, then {Fix('import', 'FILE')}")


# -- the manifest -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleFile:
    """One file of a model in a bundle: its name in the snapshot, and the pinned size and sha256 it must hash to."""

    name: str
    size: int
    sha256: str
    blob: str  # its name in blobs/: the sha256, or the git blob id the Hub names small files by


@dataclass(frozen=True)
class BundleModel:
    """One model in a bundle, with the member names its blobs, links and ref take in the archive."""

    name: str
    repo: str
    revision: str
    branch: str
    files: tuple[BundleFile, ...]

    @property
    def folder(self) -> str:
        return repo_folder(Path(), self.repo).name

    def blob_member(self, f: BundleFile) -> str:
        return f"{self.folder}/blobs/{f.blob}"

    def link_member(self, f: BundleFile) -> str:
        return f"{self.folder}/snapshots/{self.revision}/{f.name}"

    @property
    def ref_member(self) -> str:
        return f"{self.folder}/refs/{self.branch}"


@dataclass(frozen=True)
class Manifest:
    """The bundle's table of contents, written first so an import can check each member as it streams by."""

    models: tuple[BundleModel, ...]
    created: str = ""
    tool: str = ""
    format: int = FORMAT

    def to_json(self) -> bytes:
        doc = {"format": self.format, "created": self.created, "tool": self.tool, "models": [
            {"name": m.name, "repo": m.repo, "revision": m.revision, "branch": m.branch,
             "files": [{"name": f.name, "size": f.size, "sha256": f.sha256, "blob": f.blob} for f in m.files]}
            for m in self.models]}
        return json.dumps(doc, indent=1).encode() + b"\n"

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Strict: every value that will become a path is checked here; anything else is a BundleFormatError."""
        doc = _load_json(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("models"), list):
            found = doc.get("format") if isinstance(doc, dict) else None
            tool = str(doc.get("tool", ""))[:40] if isinstance(doc, dict) else ""
            raise BundleFormatError(f"{MANIFEST} is not a format-{FORMAT} bundle manifest (format {str(found)[:20]}"
                                    f"{', written by ' + tool if tool else ''})", hint="pip install --upgrade lyricsub-hub")
        models = tuple(_parse_model(i, m) for i, m in enumerate(doc["models"]))
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise BundleFormatError(f"{MANIFEST} names a model twice")
        _consistent(models)
        return cls(models, str(doc.get("created", ""))[:40], str(doc.get("tool", ""))[:80])


def _load_json(data: bytes) -> object:
    """The manifest's JSON, bounded and typed: no NaN or Infinity, integers of at most 18 digits, no lone surrogate,
    at most MAX_DEPTH levels deep; anything else is a BundleFormatError (exit 2), never a traceback."""
    def constant(word: str) -> object:
        raise ValueError(f"{word} is not allowed")

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > 18:
            raise ValueError(f"a number of {len(text)} digits")
        return int(text)

    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=constant, parse_int=integer, parse_float=constant)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # a lone surrogate (\ud800) breaks every line showing it
    except RecursionError:  # the parser's own bound on nesting (about 1000 levels)
        raise BundleFormatError(f"{MANIFEST} nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeError) as exc:
        raise BundleFormatError(f"{MANIFEST} is not JSON a bundle holds ({printable(str(exc)[:80])})") from None
    if _depth(doc) > MAX_DEPTH:
        raise BundleFormatError(f"{MANIFEST} nests deeper than {MAX_DEPTH} levels")
    return doc


def _depth(value: object, level: int = 1) -> int:
    if level > MAX_DEPTH:
        return level
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_depth(v, level + 1) for v in children), default=level)


def _parse_model(i: int, raw: object) -> BundleModel:
    where = f"{MANIFEST}: models[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("files"), list):
        raise BundleFormatError(f"{where} is not an object with a file list")
    name, repo, rev, branch = raw.get("name"), raw.get("repo"), raw.get("revision"), raw.get("branch", "main")
    if not (isinstance(name, str) and 0 < len(name) <= 200 and name.isprintable()):
        raise BundleFormatError(f"{where}: bad model name")
    if not is_repo_id(repo) or not is_commit(rev) or not safe_ref_name(branch):
        raise BundleFormatError(f"{where} ({name}): bad repo, revision or branch")
    files = []
    for j, f in enumerate(raw["files"]):
        ok = isinstance(f, dict) and safe_file_name(f.get("name")) and type(f.get("size")) is int \
            and 0 <= f["size"] <= MAX_SIZE \
            and is_sha256(f.get("sha256")) and (f.get("blob") == f.get("sha256") or is_git_sha1(f.get("blob")))
        if not ok:
            raise BundleFormatError(f"{where} ({name}): files[{j}] is not a safe name with a size, a sha256 and a blob id")
        files.append(BundleFile(f["name"], f["size"], f["sha256"], f["blob"]))
    if not files or len({f.name for f in files}) != len(files):
        raise BundleFormatError(f"{where} ({name}): no files, or a file named twice")
    return BundleModel(name, str(repo), str(rev), str(branch), tuple(files))


def _consistent(models: tuple[BundleModel, ...]) -> None:
    """One blob member, one content: two models may share a blob only when they agree on its bytes."""
    seen: dict[str, tuple[int, str]] = {}
    for m in models:
        for f in m.files:
            if seen.setdefault(m.blob_member(f), (f.size, f.sha256)) != (f.size, f.sha256):
                raise BundleFormatError(f"{MANIFEST} gives {m.blob_member(f)} two different contents")


# -- results ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportPlan:
    """What an export will write, decided before the first byte: the manifest, where each blob is read from, and the models that cannot be exported (then nothing is written)."""

    manifest: Manifest
    sources: dict[tuple[str, str], Path] = field(hash=False)  # (repo, blob) -> the snapshot entry to read
    problems: tuple[LyricsubError, ...] = ()  # models that cannot be exported: nothing is written then
    # (repo, blob) -> the verification record that vouched for its bytes when planned: copied unhashed while the
    # file still matches it, as `verify` and the warm path trust it (an import hashes every byte anyway)
    vouched: dict[tuple[str, str], Stamp] = field(default_factory=dict, hash=False)

    @property
    def payload_bytes(self) -> int:
        return sum(f.size for m in self.manifest.models for f in m.files)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    models: tuple[BundleModel, ...]
    blobs: int  # blob members with data (each once)
    payload_bytes: int  # file bytes read
    written: int  # bytes of the bundle itself (after compression)
    seconds: float
    compressed: bool
    hashed: int = 0  # of payload_bytes, those hashed on the way (the rest a verification record vouched for)


@dataclass(frozen=True)
class ModelImport:
    """One model as an import left it."""

    name: str
    state: ImportState
    files: int  # files placed from the bundle
    bytes: int
    error: LyricsubError | None = None


@dataclass(frozen=True)
class ImportReport:
    """What an import put into the cache, and what it refused."""

    models: tuple[ModelImport, ...]
    problems: tuple[LyricsubError, ...]  # members that belong to no model of the manifest
    bytes_read: int  # of the bundle stream (compressed, as it arrived)
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems and all(m.state != "failed" for m in self.models)


# -- export -----------------------------------------------------------------------------------------------
def plan_export(cache: Cache, specs: Sequence[ModelSpec], *, deep: bool = False) -> ExportPlan:
    """What would go into the bundle; models that are unpinned or not available are problems (nothing is written)."""
    models: list[BundleModel] = []
    sources: dict[tuple[str, str], Path] = {}
    vouched: dict[tuple[str, str], Stamp] = {}
    problems: list[LyricsubError] = []
    for spec in specs:
        if not spec.pinned or spec.revision is None:
            problems.append(unpinned_error(spec))
            continue
        st = cache.status(spec)
        if not st.available or st.path is None:
            problems.append(not_available_error(st))
            continue
        files = []
        recorded = {fs.name for fs in st.files if fs.checked == "record"}
        stamps = cache.records.load(cache_key(st.cache_dir or cache.cache_dir), spec.repo, spec.revision) if recorded else {}
        for f in spec.files:
            assert f.sha256 is not None  # pinned
            entry = st.path / f.name
            blob = _blob_name(entry, f.sha256)
            files.append(BundleFile(f.name, os.stat(entry).st_size if f.size is None else f.size, f.sha256, blob))
            sources.setdefault((spec.repo, blob), entry)
            if f.name in recorded and f.name in stamps and not deep:
                vouched[(spec.repo, blob)] = stamps[f.name]
        models.append(BundleModel(spec.name, spec.repo, spec.revision, spec.branch, tuple(files)))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return ExportPlan(Manifest(tuple(models), created, f"lyricsub-hub {_version()}"), sources, tuple(problems), vouched)


def _version() -> str:
    """This package's version, from its metadata (the package root is above this layer)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lyricsub-hub")
    except PackageNotFoundError:
        return "unknown"


def _blob_name(entry: Path, sha256: str) -> str:
    """The cache's own blob name where it is a digest (a git id is checked again on the way out); else the sha256."""
    try:
        name = os.path.basename(os.readlink(entry))
    except OSError:
        return sha256
    return name if name == sha256 or is_git_sha1(name) else sha256


def export_file(plan: ExportPlan, path: Path, *, compress: bool | None = None) -> ExportReport:
    """Write the bundle into a temp file beside path; it takes that name only when every byte hashed right."""
    if compress is None:
        compress = path.name.endswith((".zst", ".tzst"))
    fd, temp = new_temp(path.parent, f".{path.name}.")
    try:
        with open(fd, "wb", buffering=0) as out:
            report = export_bundle(plan, out, compress=compress)
            os.fchmod(out.fileno(), 0o644 & ~UMASK)
        os.replace(temp, path)
    except BaseException:
        _unlink(temp)
        raise
    return report


def export_bundle(plan: ExportPlan, out: BinaryIO, *, compress: bool = False) -> ExportReport:
    """Stream the bundle into out (a file or a pipe, never seeked). Raises BundleError when a file no longer hashes
    to its pin: what was written is then no bundle (export_file removes it; an import refuses it)."""
    if plan.problems:
        raise plan.problems[0]
    started = time.monotonic()
    counter = Counter(out)
    zst = None
    if compress:
        import zstandard

        sink: Any = counter  # zstd writes through its write(); it needs no more of a file
        zst = zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(sink, closefd=False)
    tar = TarWriter(zst if zst is not None else counter)
    pump = Pump()
    done: set[tuple[str, str]] = set()  # (repo, blob) members written
    holder: dict[str, str] = {}  # sha256 -> the member that holds those bytes (others hard-link to it)
    hashed = 0
    try:
        tar.small(MANIFEST, plan.manifest.to_json())
        refs: set[str] = set()
        for m in plan.manifest.models:  # per model: its links and ref first, so an import checks them before placing
            for f in m.files:
                tar.member(m.link_member(f), kind=tarfile.SYMTYPE, linkname=link_target(f.name, f.blob))
            if m.ref_member not in refs:
                refs.add(m.ref_member)
                tar.small(m.ref_member, m.revision.encode())
            for f in m.files:
                if (m.repo, f.blob) not in done:
                    hashed += _export_blob(tar, pump, plan, m, f, holder)
                    done.add((m.repo, f.blob))
        tar.close()
        if zst is not None:
            zst.close()  # ends the frame; closefd=False leaves out open
        out.flush()
    finally:
        pump.close()
    return ExportReport(plan.manifest.models, len(holder), plan.payload_bytes, counter.count, time.monotonic() - started,
                        compress, hashed)


def _export_blob(tar: TarWriter, pump: Pump, plan: ExportPlan, m: BundleModel, f: BundleFile,
                 holder: dict[str, str]) -> int:
    """One blob member: its bytes (hashed as they go, unless a verification record still vouches for the file), or a
    hard link to the member that already holds them. Returns the bytes it hashed."""
    if f.sha256 in holder:
        tar.member(m.blob_member(f), kind=tarfile.LNKTYPE, linkname=holder[f.sha256])
        return 0
    hint = Hint.repair(m.name)
    fd = os.open(plan.sources[(m.repo, f.blob)], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size != f.size:
            raise BundleError(f"{f.name} changed since it was verified ({size} bytes, pinned {f.size})", model=m.name,
                              hint=hint)
        stamp = plan.vouched.get((m.repo, f.blob))
        trusted = stamp is not None and stamp.matches(os.fstat(fd))  # the very descriptor that is read
        tar.member(m.blob_member(f), size=f.size)
        hashers = [] if trusted else new_hashers(f.size, is_git_sha1(f.blob))
        try:
            copied = tar.copy_from(fd, f.size) if trusted else 0
            pump.move(f.size - copied, fill_from_fd(fd, copied), tar.write, hashers)
        except EOFError:
            raise BundleError(f"{f.name} shrank while it was exported", model=m.name, hint=hint) from None
    finally:
        os.close(fd)
    tar.pad(f.size)
    problem = "" if trusted else _digest_problem(f, *_hexes(hashers))
    if problem:
        raise BundleError(f"{f.name} {problem} while it was exported; the bundle is not usable", model=m.name, hint=hint)
    holder[f.sha256] = m.blob_member(f)
    return 0 if trusted else f.size


def _hexes(hashers: Sequence[Hasher]) -> tuple[str, str | None]:
    return hashers[0].hexdigest(), (hashers[1].hexdigest() if len(hashers) > 1 else None)


def _digest_problem(f: BundleFile, sha: str, git: str | None) -> str:
    bad = mismatch(sha, git, pin=f.sha256, name=f.blob)
    if bad is None:
        return ""
    if bad.against == "pin":
        return f"hashes to {sha[:12]}…, the pin is {f.sha256[:12]}…"
    return f"has the {'git id' if bad.digest == 'git' else 'sha256'} {bad.got[:12]}…, its blob name says {f.blob[:12]}…"


# -- import -------------------------------------------------------------------------------------------------
class TooMany(Damaged):
    """More members than the manifest accounts for: a flood, whose rest is not read."""


@dataclass
class _Target:
    """One model of the manifest, as the import sees it."""

    bm: BundleModel
    spec: ModelSpec | None = None
    state: TargetState = "pending"  # then imported or failed; or present from the start
    needs: set[str] = field(default_factory=set)  # blob members it still lacks
    have: set[str] = field(default_factory=set)  # its files already right in the cache
    error: LyricsubError | None = None
    files: int = 0
    bytes: int = 0


@dataclass
class _Held:
    """A verified blob: in its temp file until a model publishes it, then under its name (fd closed)."""

    repo: str
    blob: str
    sha256: str
    size: int
    fd: int
    temp: Path
    stamp: Stamp | None = None


class _Job:
    """One call run on a helper thread: done is set when it returned or raised."""

    def __init__(self, call: Callable[[], int]) -> None:
        self.call = call
        self.done = threading.Event()
        self._value = 0
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self.call()
        except BaseException as exc:  # handed to whoever asks for the result, on the importing thread
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> int:
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class _Helpers:
    """A few threads that run jobs in order of submission. concurrent.futures would do, but importing it (and the
    logging it imports) costs an import command 5 ms of start-up, a tenth of its distance to tar -x."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, call: Callable[[], int]) -> _Job:
        job = _Job(call)
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()
        if len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"lyricsub-import-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return job

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            job.run()

    def close(self) -> None:
        """Jobs not started are dropped (their result is 0 bytes); running ones are waited for."""
        with self._cond:
            self._closed = True
            for job in self._jobs:
                job.done.set()
            self._jobs.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()


@dataclass(frozen=True)
class _Hashing:
    """A blob of a plain bundle file being read, hashed and written into its temp file on a helper thread."""

    job: _Job  # its result: the bytes carried
    hashers: list[Hasher]
    users: list[_Target]
    bm: BundleModel
    f: BundleFile
    fd: int
    temp: Path


class _Importer:
    def __init__(self, cache: Cache, index: ModelIndex, manifest: Manifest, *, keep_refs: bool) -> None:
        self.cache, self.index, self.keep_refs = cache, index, keep_refs
        self.targets = [_Target(m) for m in manifest.models]
        self.blobs: dict[str, tuple[BundleModel, BundleFile, list[_Target]]] = {}  # every member the manifest allows
        self.links: dict[str, tuple[_Target, str]] = {}
        self.refs: dict[str, list[_Target]] = {}
        self.held: dict[str, _Held] = {}  # blob member -> verified bytes
        self.hashing: dict[str, _Hashing] = {}  # blob member -> its temp file, being filled on a helper thread
        self.helpers = _Helpers(min(4, os.cpu_count() or 1))
        self._stop = threading.Event()
        self.strays = 0  # refused members: a count and the first one, never a list a flood could grow
        self.first_stray = ""
        self.members = 0
        self.pump = Pump()
        for t in self.targets:
            m = t.bm
            for f in m.files:
                self.blobs.setdefault(m.blob_member(f), (m, f, []))[2].append(t)
                self.links[m.link_member(f)] = (t, link_target(f.name, f.blob))
            self.refs.setdefault(m.ref_member, []).append(t)
        self.folders = {name.rsplit("/", i)[0] for name in (*self.blobs, *self.links, *self.refs)
                        for i in range(1, name.count("/") + 1)}  # every folder above a member: one set, built once
        # what an honest bundle holds: the manifest, each blob, link and ref once, and the folders a tar adds
        self.max_members = 1 + len(self.blobs) + len(self.links) + len(self.refs) + len(self.folders) + SPARE_MEMBERS

    # -- plan: the manifest against the index and the cache, before any member is read
    def plan(self) -> None:
        for t in self.targets:
            why = self._disagreement(t)
            if why:
                self._fail([t], why, hint=Fix("import", "FILE", "--index", "<the model_index.yaml the bundle was made with>"))
                continue
            assert t.spec is not None
            try:
                st = self.cache.status(t.spec)
            except UnsafeCacheError as exc:  # its repo folder is a planted link: nothing is written into it
                self._fail([t], exc.message, hint=exc.fix or exc.hint)
                continue
            if st.available:
                t.state = "present"
                continue
            t.have = {f.name for f in st.files if f.state == "ok"}
            t.needs = {t.bm.blob_member(f) for f in t.bm.files if f.name not in t.have}
        self._check_space()

    def _disagreement(self, t: _Target) -> str:
        m = t.bm
        t.spec = spec = self.index.models.get(m.name)
        if spec is None:
            return f"the index ({self.index.path}) has no model of that name"
        if not spec.pinned:
            return f"the index does not pin it fully ({spec.unpinned_reason}), so nothing vouches for its bytes"
        if (spec.repo, spec.revision) != (m.repo, m.revision):
            return f"the bundle holds {m.repo}@{m.revision[:12]}, the index pins {spec.repo}@{str(spec.revision)[:12]}"
        carried = {f.name: f for f in m.files}
        odd = sorted({f.name for f in spec.files if f.name not in carried or carried[f.name].sha256 != f.sha256
                      or f.size not in (None, carried[f.name].size)} | (carried.keys() - {f.name for f in spec.files}))
        if odd:
            return f"its manifest disagrees with the index about {', '.join(odd[:3])}{' …' if len(odd) > 3 else ''}"
        return ""

    def _check_space(self) -> None:
        wanted = {b for t in self.targets if t.state == "pending" for b in t.needs}
        needed = sum(self.blobs[b][1].size for b in wanted)
        probe = self.cache.cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if any(t.state == "pending" for t in self.targets) and not os.access(probe, os.W_OK):
            read_only = bool(os.statvfs(probe).f_flag & getattr(os, "ST_RDONLY", 1))
            code = errno.EROFS if read_only else errno.EACCES
            names = ", ".join(t.bm.name for t in self.targets if t.state == "pending")
            error = local_error(OSError(code, os.strerror(code), str(self.cache.cache_dir)), model=names,
                                cache_dir=self.cache.cache_dir, again=_IMPORT_AGAIN)
            assert error is not None  # EROFS and EACCES always have their line
            raise error  # one line for the whole import, before anything is written
        free = shutil.disk_usage(probe).free
        if needed > free:
            names = ", ".join(t.bm.name for t in self.targets if t.state == "pending")
            raise DiskSpaceError(f"the import needs {human_size(needed)} in {self.cache.cache_dir} but only "
                                 f"{human_size(free)} is free; nothing was written", model=names or None,
                                 hint=f"free {human_size(needed - free)} or set HF_HUB_CACHE to a larger disk")

    # -- act: member by member, each name checked against the manifest before anything is written for it
    def consume(self, reader: TarReader) -> None:
        try:
            while (member := reader.next()) is not None:
                self.members += 1
                if self.members > self.max_members:
                    raise TooMany(f"it holds more than the {self.max_members} members its manifest accounts for")
                self._member(reader, member)
                self._collect(wait=False)
            self._collect(wait=True)
        except (Truncated, Damaged) as exc:
            self._collect(wait=True)  # models whose every byte arrived before the cut are placed all the same
            self._fail(self._pending(), f"the bundle is cut short or damaged: {exc}",
                       hint=Fix("import", "FILE", before="copy the whole bundle again (or export it again), then "))
            if isinstance(exc, TooMany):  # said even when every model was placed before the flood began
                self._stray("(the rest of the bundle)", f"not read: {exc}")
            return
        for t in self._pending():
            lacking = sorted(f.name for f in t.bm.files if t.bm.blob_member(f) in t.needs)
            self._fail([t], f"the bundle lacks {', '.join(lacking[:3])}{' …' if len(lacking) > 3 else ''}")

    def _pending(self) -> list[_Target]:
        return [t for t in self.targets if t.state == "pending"]

    def _member(self, reader: TarReader, m: Member) -> None:
        name = clean_name(m.name)
        if name is None:
            self._stray(m.name, "its name is absolute, climbs out with '..', or is not a plain path")
        elif name in self.blobs:
            self._blob(reader, name, m)
        elif name in self.links:
            self._link(name, m)
        elif name in self.refs:
            self._ref(reader, name, m)
        elif m.kind != tarfile.DIRTYPE or name not in self.folders:
            self._stray(name, f"a {kind_word(m.kind)} no model of the manifest lists")

    def _blob(self, reader: TarReader, name: str, m: Member) -> None:
        bm, f, targets = self.blobs[name]
        users = [t for t in targets if t.state == "pending" and name in t.needs]
        if not users or name in self.held or name in self.hashing:
            return  # already in the cache, verified already, or every model that needed it failed: skipped
        if m.kind == tarfile.LNKTYPE:
            self._hard_link(users, name, bm, f, m)
        elif m.kind not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            self._fail(users, f"refused {name}: a {kind_word(m.kind)} where a file was expected")
        elif m.size != f.size:
            self._fail(users, f"refused {f.name}: the bundle holds {m.size} bytes, the pin says {f.size}")
        elif (at := reader.hand_off()) is not None:
            self._hand(users, name, bm, f, *at)
        else:  # a pipe or zstd: hashed as it streams, placed at once (a stalled stream must not hold back a model)
            self._take(users, name, bm, f, reader.fill)

    def _hard_link(self, users: list[_Target], name: str, bm: BundleModel, f: BundleFile, m: Member) -> None:
        """The same bytes in another repo: copied from the blob this import verified, or from the cache where a model
        already holds them, and hashed again on the way."""
        self._collect(wait=True)  # the blob it names may still be hashing
        path = self._link_source(clean_name(m.linkname) or "", f)
        if path is None:
            self._fail(users, f"refused {name}: a hard link to {m.linkname[:120]!r}, which is no verified blob of "
                       "this bundle with the same bytes")
            return
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            self._fail(users, f"cannot read {path}: {exc.strerror or exc}")
            return
        try:
            self._take(users, name, bm, f, fill_from_fd(fd))
        finally:
            os.close(fd)

    def _link_source(self, target: str, f: BundleFile) -> Path | None:
        held = self.held.get(target)
        if held is not None:
            if (held.sha256, held.size) != (f.sha256, f.size):
                return None
            return held.temp if held.stamp is None else blobs_dir(self.cache.cache_dir, held.repo) / held.blob
        declared = self.blobs.get(target)
        if declared is None or (declared[1].sha256, declared[1].size) != (f.sha256, f.size):
            return None
        for t in declared[2]:  # a model that already had those bytes in the cache (status verified them)
            for g in t.bm.files:
                if t.bm.blob_member(g) == target and (t.state == "present" or g.name in t.have):
                    return snapshot_dir(self.cache.cache_dir, t.bm.repo, t.bm.revision) / g.name
        return None

    def _take(self, users: list[_Target], name: str, bm: BundleModel, f: BundleFile,
              fill: Callable[[memoryview], None]) -> None:
        """Stream the bytes into an O_EXCL temp file in the repo's blobs folder while hashing; keep them if they verify."""
        made = self._temp(users, bm)
        if made is None:
            return  # its data is skipped with the next member
        fd, temp = made
        hashers = new_hashers(f.size, is_git_sha1(f.blob))
        kept = False
        try:
            self.pump.move(f.size, fill, lambda v: write_all(lambda d: os.write(fd, d), v), hashers)
            problem = _digest_problem(f, *_hexes(hashers))
            if problem:
                self._fail(users, f"refused {f.name}: its bytes in the bundle {problem}")
            else:
                self.held[name] = _Held(bm.repo, f.blob, f.sha256, f.size, fd, temp)
                kept = True
        except EOFError:
            raise Damaged("a blob verified earlier in this import shrank while it was copied") from None
        except OSError as exc:
            self._fail(users, f"could not write {f.name}: {exc.strerror or exc}", exc)
        finally:
            if not kept:
                os.close(fd)
                _unlink(temp)
        if kept:
            self._place_ready()

    def _temp(self, users: list[_Target], bm: BundleModel) -> tuple[int, Path] | None:
        """An O_EXCL temp file (0600) in the repo's own blobs folder, or None after failing the users."""
        repo_dir = self.cache.repo_dir(bm.repo)
        try:
            real_dir(repo_dir, self.cache.cache_dir)
            return new_temp(real_dir(blobs_dir(self.cache.cache_dir, bm.repo), repo_dir), IMPORT_PREFIX)
        except OSError as exc:
            self._fail(users, f"cannot write into {self.cache.cache_dir}: {exc.strerror or exc}", exc)
            return None

    def _hand(self, users: list[_Target], name: str, bm: BundleModel, f: BundleFile, src: int, at: int) -> None:
        """A blob member of a plain bundle file, at offset at: a helper thread reads, hashes and writes it into an
        O_EXCL temp file (0600: no one else can change it before it is placed) while this thread reads the next
        headers and hands on the next blobs, so the blobs of a bundle are hashed on every core at once. It is kept
        only if it hashes to its pin (_collect)."""
        while len(self.hashing) >= IN_FLIGHT * self.helpers.workers:  # each holds a descriptor: a bounded number
            next(iter(self.hashing.values())).job.done.wait()  # the oldest: the helpers take them in order
            self._collect(wait=False)
        made = self._temp(users, bm)
        if made is None:
            return
        fd, temp = made
        hashers = new_hashers(f.size, is_git_sha1(f.blob))
        job = self.helpers.submit(lambda: carry(src, at, f.size, fd, hashers, self._stop))
        self.hashing[name] = _Hashing(job, hashers, users, bm, f, fd, temp)

    def _collect(self, *, wait: bool) -> None:
        """Judge the blobs whose helper is done (all of them with wait); place every model whose blobs all verified."""
        kept = False
        for name, h in list(self.hashing.items()):
            if not wait and not h.job.done.is_set():
                continue
            del self.hashing[name]
            problem, exc = "", None
            try:
                carried = h.job.result()
            except OSError as err:
                problem, exc = f"could not write {h.f.name}: {err.strerror or err}", err
            else:
                if carried < h.f.size:
                    problem = f"refused {h.f.name}: the bundle ends inside it ({carried} of {h.f.size} bytes)"
                elif why := _digest_problem(h.f, *_hexes(h.hashers)):
                    problem = f"refused {h.f.name}: its bytes in the bundle {why}"
            if problem:
                os.close(h.fd)
                _unlink(h.temp)
                self._fail(h.users, problem, exc)
            else:
                self.held[name] = _Held(h.bm.repo, h.f.blob, h.f.sha256, h.f.size, h.fd, h.temp)
                kept = True
        if kept:
            self._place_ready()

    def _link(self, name: str, m: Member) -> None:
        t, expected = self.links[name]
        if m.kind == tarfile.SYMTYPE and m.linkname == expected:
            return  # the link itself is made from the manifest's values, never from the member
        what = f"points to {m.linkname[:120]!r}" if m.kind == tarfile.SYMTYPE else f"is a {kind_word(m.kind)}"
        words = f"refused {name}: it {what}, where the manifest says a link to {expected}"
        if t.state == "pending":
            self._fail([t], words)
        elif t.state != "failed":
            self._stray(name, f"{words} (nothing was written for it)")

    def _ref(self, reader: TarReader, name: str, m: Member) -> None:
        targets = self.refs[name]
        regular = m.kind in (tarfile.REGTYPE, tarfile.AREGTYPE) and m.size <= MAX_REF
        content = reader.data(MAX_REF).decode("ascii", "replace").strip() if regular else ""
        if content in {t.bm.revision for t in targets}:
            return  # refs are pointed from the manifest's values, like links
        words = f"refused {name}: a {kind_word(m.kind)} that names no commit of its models"
        pending = [t for t in targets if t.state == "pending"]
        if pending:
            self._fail(pending, words)
        else:
            self._stray(name, words)

    # -- placing a model whose every file verified
    def _place_ready(self) -> None:
        for t in self._pending():
            if t.needs <= self.held.keys():
                try:
                    self._place(t)
                except OSError as exc:
                    self._fail([t], f"could not place it in the cache: {exc.strerror or exc}", exc)

    def _place(self, t: _Target) -> None:
        """Blob names first (each verified), then snapshot links, then the ref and the records."""
        spec, bm = t.spec, t.bm
        assert spec is not None
        stamps: dict[str, Stamp] = {}
        for f in bm.files:
            if f.name in t.have:
                continue
            held = self.held[bm.blob_member(f)]
            if held.stamp is None:
                held.stamp = self.cache.publish(held.fd, held.temp, bm.repo, f.blob, f.sha256)
                os.close(held.fd)
                held.fd = -1
            self.cache.link(spec, f.name, f.blob)
            stamps[f.name] = held.stamp
            t.files += 1
            t.bytes += f.size
        if not self.keep_refs:
            self.cache.point_ref(spec)
        self.cache.remember(spec, stamps)
        t.state = "imported"

    # -- endings
    def _fail(self, targets: list[_Target], words: str, exc: OSError | None = None, *, hint: str | None = None) -> None:
        for t in targets:
            if t.state != "pending":
                continue
            t.state = "failed"
            local = local_error(exc, model=t.bm.name, cache_dir=self.cache.cache_dir, again=_IMPORT_AGAIN) \
                if exc is not None else None
            if exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                t.error = DiskSpaceError(f"not imported: {words}", model=t.bm.name,
                                         hint="free space, then run the same import again")
            elif local is not None:  # a folder of the cache this user may not write: its fix, not "export again"
                t.error = local
            else:
                t.error = BundleError(f"not imported: {words}; nothing of it was placed", model=t.bm.name,
                                      hint=hint or _again(t.bm.name))

    def _stray(self, name: str, why: str) -> None:
        if not self.strays:
            self.first_stray = f"{name[:160]!r}: {why}"
        self.strays += 1

    def cleanup(self) -> None:
        """Temp files no model published go: a model that failed leaves no new blobs. Placed models stay."""
        self.pump.close()
        self._stop.set()  # only blobs not yet judged are still being carried: interrupted, or the import failed
        self.helpers.close()
        for h in self.hashing.values():  # cut short before they were judged
            os.close(h.fd)
            _unlink(h.temp)
        self.hashing.clear()
        for held in self.held.values():
            if held.stamp is None:
                os.close(held.fd)
                _unlink(held.temp)

    def report(self, arrived: int, seconds: float) -> ImportReport:
        rows = tuple(ModelImport(t.bm.name, "failed" if t.state == "pending" else t.state, t.files, t.bytes, t.error)
                     for t in self.targets)
        problems: list[LyricsubError] = []
        if self.strays:
            more = f" (and {self.strays - 1} more)" if self.strays > 1 else ""
            problems.append(BundleError(f"refused {self.strays} member(s) of the bundle, writing nothing for them: "
                                        f"{self.first_stray}{more}", hint=Fix("export", "NAME...", "-o", "FILE", after=" (make the bundle again)")))
        return ImportReport(rows, tuple(problems), arrived, seconds)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def import_bundle(cache: Cache, index: ModelIndex, source: Readable, *, keep_refs: bool = False) -> ImportReport:
    """Put the models of a bundle stream into the cache, every byte hashed and checked against the manifest and the index.

    Raises BundleFormatError (exit 2) when the stream is no bundle, DiskSpaceError (exit 4) when the disk is too
    small and LocalStorageError (exit 4) when the cache cannot be written, all before anything is written; each model that fails has its one-line error in the report.
    """
    started = time.monotonic()
    src = Source(source)
    if src.empty:
        raise BundleFormatError("the bundle is empty", hint=Fix("export", "NAME...", "-o", "FILE"))
    reader = TarReader(src)
    importer = _Importer(cache, index, _read_manifest(reader), keep_refs=keep_refs)
    try:
        importer.plan()
        importer.consume(reader)
    finally:
        importer.cleanup()
    return importer.report(src.arrived, time.monotonic() - started)


def _read_manifest(reader: TarReader) -> Manifest:
    hint = Fix("export", "NAME...", "-o", "FILE", after=" (on the machine that has the models), then import that file")
    try:
        first = reader.next()
        if first is None or clean_name(first.name) != MANIFEST or first.kind not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            found = "nothing" if first is None else f"a {kind_word(first.kind)} named {first.name[:80]!r}"
            raise BundleFormatError(f"not a lyricsub-hub bundle: it starts with {found}, not {MANIFEST}", hint=hint)
        if first.size > MAX_MANIFEST:
            raise BundleFormatError(f"not a lyricsub-hub bundle: its {MANIFEST} is {first.size} bytes long", hint=hint)
        return Manifest.parse(reader.data(first.size))
    except (Truncated, Damaged) as exc:
        raise BundleFormatError(f"not a readable bundle (tar, or tar compressed with zstd): {exc}", hint=hint) from None
