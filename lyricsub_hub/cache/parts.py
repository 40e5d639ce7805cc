"""Part files of downloads in progress: bytes at their offsets, and a record of which ranges are written.

A segmented download writes ranges out of order, so its part file has holes and
must never carry huggingface_hub's own ".incomplete" name (whose resume logic
appends to a contiguous prefix). Beside it, the ranges record says what is on
disk; it is rewritten in one write with a length and CRC at most every SAVE_EVERY
seconds while bytes arrive (once per 256 KiB read it cost a JSON dump and a write
per read) and when the file is closed, so a kill at any moment leaves either the
old record or the new one, claiming only written bytes and losing at most the
last SAVE_EVERY of them; a torn one (power loss) is discarded (that file then
starts over; the sha256 check guards the rest).
Both files are opened without following links and must be ours.
"""

from __future__ import annotations

import bisect
import json
import os
import stat
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.checks import acceptable_etag
from ..core.fs import file_mode, inside, on_disk, open_own, open_regular, real_dir, regular_file, unlink_inside
from .layout import HF_INCOMPLETE, PART_SUFFIX, RANGES_SUFFIX, blobs_dir, lock_path, repo_folder, repo_problem
from .locks import lock_held, take_lock

_MAGIC = b"LSHR1"
MAX_RECORD = 8 << 20  # a record's body: ~400,000 ranges, far more than any download writes
MAX_FILE = 1 << 50  # no pinned file is larger (1 PiB): any size or offset beyond it in a record is a lie
SAVE_EVERY = 0.1  # seconds between rewrites of a record while its file's bytes arrive
PART_ENDINGS = (PART_SUFFIX, RANGES_SUFFIX, HF_INCOMPLETE)  # ours, and huggingface_hub's partial downloads


class RangeSet:
    """Sorted, disjoint, merged [start, end) intervals."""

    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in sorted(ranges or []):
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)  # first interval that ends at or after start
        j = bisect.bisect_right(self._starts, end)  # intervals starting after end stay
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def covered(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))

    def prefix(self) -> int:
        """End of the contiguous run from byte 0."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def gaps(self, size: int) -> list[tuple[int, int]]:
        out, pos = [], 0
        for s, e in zip(self._starts, self._ends):
            if s > pos:
                out.append((pos, min(s, size)))
            pos = max(pos, e)
        if pos < size:
            out.append((pos, size))
        return [(s, e) for s, e in out if e > s]

    def contains(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def as_list(self) -> list[list[int]]:
        return [[s, e] for s, e in zip(self._starts, self._ends)]


@dataclass(frozen=True)
class PartPaths:
    """Where an interrupted download keeps its bytes and the record of which ranges are on disk."""

    part: Path
    ranges: Path

    @classmethod
    def of(cls, cache_dir: Path, repo: str, sha256: str) -> PartPaths:
        blobs = blobs_dir(cache_dir, repo)
        return cls(blobs / f"{sha256}{PART_SUFFIX}", blobs / f"{sha256}{RANGES_SUFFIX}")


class PartFile:
    """The part file and ranges record of one blob, opened safely; the caller holds the blob's lock."""

    def __init__(self, cache_dir: Path, repo: str, sha256: str, size: int) -> None:
        self.cache_dir, self.repo, self.sha256, self.size = cache_dir, repo, sha256, size
        self.paths = PartPaths.of(cache_dir, repo, sha256)
        self.repo_dir = repo_folder(cache_dir, repo)
        real_dir(self.paths.part.parent, self.repo_dir)
        self.lock = threading.Lock()
        self.done = RangeSet()
        self._saved = 0.0  # when the record was last written (monotonic)
        self._dirty = False  # bytes are written that the record does not claim yet
        self.fd = self._open(self.paths.part)
        self._rec = self._open(self.paths.ranges)
        self._load()

    def _open(self, path: Path) -> int:
        try:
            return open_own(path, os.O_RDWR)
        except FileNotFoundError:
            pass
        except OSError:  # a planted link (ELOOP), a hard link or another user's file: drop the entry, never write through it
            unlink_inside(path, self.repo_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.fchmod(fd, file_mode(path.parent, 0o600))  # 0660 in a group's folder: gc and status by another member read it
        return fd

    def _load(self) -> None:
        record = read_record(self._rec)
        if record is None or record.get("size") != self.size or record.get("sha256") != self.sha256:
            # Unknown content: nothing of it can be kept. A new, empty file is never truncated: ext4 writes out a
            # file truncated to zero when it is closed (auto_da_alloc), 0.2 s per 512 MiB after every download.
            if os.fstat(self.fd).st_size:
                os.ftruncate(self.fd, 0)
            return
        ranges = record_ranges(record, self.size)
        on_disk = os.fstat(self.fd).st_size
        if on_disk > self.size:  # never publish bytes past the end: they would become part of the blob
            os.ftruncate(self.fd, self.size)
            on_disk = self.size
        self.done = RangeSet([(s, min(e, on_disk)) for s, e in ranges])

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """pwrite the bytes, then record them (the record never claims bytes that are not written)."""
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(self.fd, view[written:], offset + written)
        with self.lock:
            self.done.add(offset, offset + len(view))
            self._dirty = True
            if time.monotonic() - self._saved >= SAVE_EVERY:
                self._save()

    def _save(self) -> None:
        body = json.dumps({"size": self.size, "sha256": self.sha256, "ranges": self.done.as_list()},
                          separators=(",", ":")).encode()
        blob = b"%s %d %08x\n" % (_MAGIC, len(body), zlib.crc32(body)) + body
        os.pwrite(self._rec, blob, 0)
        self._saved, self._dirty = time.monotonic(), False

    def reset(self) -> None:
        """Forget every byte (a server ignored Range, or the whole file failed its hash)."""
        with self.lock:
            os.ftruncate(self.fd, 0)
            self.done = RangeSet()
            self._save()

    def complete(self) -> bool:
        with self.lock:
            return self.done.contains(0, self.size) or self.size == 0

    def close(self) -> None:
        """Close both descriptors once: a second os.close of the same number could close someone else's file."""
        with self.lock:
            if self._dirty and self._rec >= 0:
                try:
                    self._save()
                except OSError:  # a full disk: the record claims less than is written, never more
                    pass
            fds, self.fd, self._rec = (self.fd, self._rec), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def discard(self) -> None:
        """Remove part and record (after publishing, or when the bytes are worthless)."""
        with self.lock:
            self._dirty = False  # no record to bring up to date: it goes too
        self.close()
        for path in (self.paths.part, self.paths.ranges):
            unlink_inside(path, self.repo_dir)


def read_record(fd: int) -> dict[str, object] | None:
    """The record's JSON object, or None when it is torn, tampered with or out of bounds (another user may write it)."""
    try:
        head = os.pread(fd, 64, 0)
        line, _, _ = head.partition(b"\n")
        magic, length, crc = line.split(b" ")
        if magic != _MAGIC or not length.isdigit() or len(length) > 9 or int(length) > MAX_RECORD or len(crc) != 8:
            return None
        start = len(line) + 1
        body = os.pread(fd, int(length), start)
        if len(body) != int(length) or zlib.crc32(body) != int(crc, 16):
            return None
        value = json.loads(body, parse_constant=_no_constant)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError, RecursionError):
        return None


def _no_constant(word: str) -> object:
    raise ValueError(f"{word} is not a number a record holds")


def record_ranges(record: dict[str, object], size: int) -> list[tuple[int, int]]:
    """The record's ranges that lie within a file of `size` bytes; none at all when any is malformed or beyond it."""
    raw = record.get("ranges")
    if not isinstance(raw, list) or not 0 <= size <= MAX_FILE:
        return []
    out = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and all(type(v) is int for v in item)
                and 0 <= item[0] < item[1] <= size):
            return []  # a claim past the pinned size, or anything odd: the whole record is ignored
        out.append((item[0], item[1]))
    return out


def held_bytes(cache_dir: Path, repo: str, sha256: str, size: int | None = None) -> int:
    """Bytes an interrupted download of this blob holds for us, read from its record (0 when none, unreadable, when it
    claims more than the pinned size, or when part or record is not ours: PartFile drops those and starts over)."""
    paths = PartPaths.of(cache_dir, repo, sha256)
    try:
        fd = open_regular(paths.ranges)
    except OSError:
        return 0
    try:
        record = read_record(fd) if _ours(os.fstat(fd)) else None
    finally:
        os.close(fd)
    if not record or record.get("sha256") != sha256:
        return 0
    claimed = record.get("size")
    if type(claimed) is not int or (size is not None and claimed != size):
        return 0
    try:  # never more than the part file holds on disk: a record can claim what it likes, blocks cannot
        part = os.lstat(paths.part)
    except OSError:
        return 0
    if not stat.S_ISREG(part.st_mode) or not _ours(part):
        return 0
    return min(RangeSet(record_ranges(record, claimed)).covered(), part.st_size, part.st_blocks * 512)


def _ours(st: os.stat_result) -> bool:
    """What open_own accepts (PartFile opens both files with it): our own file, with one link."""
    return st.st_uid == os.geteuid() and st.st_nlink == 1


# -- part files on disk: found, probed, removed under their blob's lock (download, gc, rm and doctor) ------------
@dataclass(frozen=True)
class Part:
    """The partial files of one blob's download (ours and huggingface_hub's), guarded by one lock."""

    repo: str
    stem: str  # the blob name the download will give: its lock is .locks/models--org--name/<stem>.lock
    names: tuple[str, ...]
    size: int
    held: bool  # a process holds the download's lock now
    problem: str = ""  # the lock could not be probed


def is_part(name: str) -> bool:
    """A name a download's partial file has: <etag><one of PART_ENDINGS>."""
    stem = name.split(".", 1)[0]
    return name.endswith(PART_ENDINGS) and bool(stem) and acceptable_etag(stem)


def blob_files(cache_dir: Path, repo: str) -> list[tuple[str, os.stat_result]]:
    """The regular files of a repo's blobs folder with their lstat; a blobs folder that leaves the repo is not read,
    and links (huggingface_hub 2.x's shared store) and folders are not ours to judge."""
    folder, base = blobs_dir(cache_dir, repo), repo_folder(cache_dir, repo)
    if not folder.is_dir() or not inside(base, folder):
        return []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((entry.name, st))
    return out


def group_parts(cache_dir: Path, repo: str, files: Iterable[tuple[str, os.stat_result]]) -> list[Part]:
    """The part files among these blobs-folder files, one Part per blob, each with whether its lock is held."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, st in files:
        if is_part(name):
            groups.setdefault(name.split(".", 1)[0], []).append((name, on_disk(st)))  # blocks, not a claimed size
    parts = []
    for stem, items in sorted(groups.items()):
        held = lock_held(lock_path(cache_dir, repo, stem))
        parts.append(Part(repo, stem, tuple(sorted(n for n, _ in items)), sum(s for _, s in items), bool(held),
                          "its lock cannot be probed" if held is None else ""))
    return parts


def parts_of(cache_dir: Path, repos: Iterable[str]) -> list[Part]:
    """The partial downloads of these repos, each with whether a process holds its lock (no huggingface_hub import)."""
    out: list[Part] = []
    for repo in sorted(set(repos)):
        if repo_problem(cache_dir, repo) is None:  # a repo folder planted as a link is not read
            out += group_parts(cache_dir, repo, blob_files(cache_dir, repo))
    return out


def remove_part(cache_dir: Path, repo: str, stem: str, names: Iterable[str]) -> tuple[int, str]:
    """Unlink one download's part files while holding its blob lock: (bytes freed on disk, "") or (0, why not)."""
    lock, why = take_lock(cache_dir, repo, stem)
    if lock is None:
        return 0, why
    folder, base = blobs_dir(cache_dir, repo), repo_folder(cache_dir, repo)
    size = 0
    try:
        for name in names:
            st = regular_file(folder / name)
            if st is not None and unlink_inside(folder / name, base):
                size += on_disk(st)
    finally:
        lock.release()
    return size, ""


def remove_parts(cache_dir: Path, repo: str, shas: Iterable[str] | None, *, dry_run: bool = False) -> int:
    """Part files (ours and huggingface_hub's) of these blobs, or of every blob when shas is None; bytes freed
    (with dry_run: that would be freed)."""
    blobs = blobs_dir(cache_dir, repo)
    wanted = set(shas) if shas is not None else None
    freed = 0
    try:
        entries = list(os.scandir(blobs))
    except OSError:
        return 0
    for entry in entries:
        stem, _, _ = entry.name.partition(".")
        if not entry.name.endswith(PART_ENDINGS) or (wanted is not None and stem not in wanted):
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        if dry_run:
            freed += size
            continue
        lock, _ = take_lock(cache_dir, repo, stem)
        if lock is None:
            continue  # a download holds it (another member's warm, in a team's cache): its bytes stay
        try:
            if unlink_inside(Path(entry.path), repo_folder(cache_dir, repo)):
                freed += size
        finally:
            lock.release()
    return freed
