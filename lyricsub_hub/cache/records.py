"""Verification records: once a file has hashed right, remember it by its inode's stat.

A record is trusted only while size, mtime, ctime, inode, device and boot all
still match, so the warm path costs one stat per file. ctime matters: no
user-space call can set it back, so a byte rewritten with its mtime restored
(os.utime) is seen without re-hashing everything. Records are small versioned
JSON written atomically; an unreadable one counts as absent ("hash again").

Records vouch for bytes, so they live in a private state folder: one that another
user owns or may write is refused, as ssh refuses such a key folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.fs import atomic_write, private_dir, private_problem, read_regular
from ..errors import UnsafeStateError

RECORD_VERSION = 3
MAX_RECORD = 16 << 20  # bytes: a record of a model with ~50,000 files
_BOOT: str | None = None


def boot_id() -> str:
    """Changes at every boot. Downloads are not fsynced (as in huggingface_hub), so after a crash a file can
    keep its size and time with unflushed blocks: a record from an earlier boot is re-checked once."""
    global _BOOT
    if _BOOT is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as fh:
                _BOOT = fh.read().strip()
        except OSError:
            _BOOT = ""
    return _BOOT


@dataclass(frozen=True)
class Stamp:
    """What a verified file looked like (its stat and sha256): a record vouches for it while these still match."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    sha256: str
    boot: str = ""

    def matches(self, st: os.stat_result) -> bool:
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, boot_id()) == (
            self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev, self.boot)

    @classmethod
    def of(cls, st: os.stat_result, sha256: str) -> Stamp:
        """From the fstat of the descriptor that was hashed (never a later stat of the path)."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, sha256, boot_id())


class RecordStore:
    """One JSON file per (cache, repo, commit) under the state folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._checked = False

    def check(self) -> None:
        """Refuse a state folder others could write records into (once per store)."""
        if self._checked:
            return
        for folder in (self.root, self.root / "records"):
            why = private_problem(folder)
            if why:
                raise UnsafeStateError(f"the state folder cannot vouch for files: {why}",
                                       hint=f"chmod go-w {folder}, or set LYRICSUB_STATE_DIR to a folder of your own")
        self._checked = True

    def _file(self, cache_key: str, repo: str, commit: str) -> Path:
        return self.root / "records" / cache_key / repo.replace("/", "--") / f"{commit}.json"

    def load(self, cache_key: str, repo: str, commit: str) -> dict[str, Stamp]:
        self.check()
        try:
            data = json.loads(read_regular(self._file(cache_key, repo, commit), MAX_RECORD))  # no link, no FIFO
            if data.get("version") != RECORD_VERSION:
                return {}
            return {name: Stamp(**fields) for name, fields in data["files"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return {}

    def save(self, cache_key: str, repo: str, commit: str, stamps: dict[str, Stamp]) -> bool:
        """Write atomically; False when the state folder is not writable (we then simply hash again next time)."""
        self.check()
        target = self._file(cache_key, repo, commit)
        payload = json.dumps({"version": RECORD_VERSION, "files": {n: asdict(s) for n, s in sorted(stamps.items())}})
        try:
            private_dir(target.parent, self.root)  # 0700 from the root down, whatever the umask
            atomic_write(target, payload.encode(), mode=0o600)
        except OSError:
            return False
        return True

    def update(self, cache_key: str, repo: str, commit: str, stamps: dict[str, Stamp], drop: tuple[str, ...] = ()) -> bool:
        """Merge stamps into the stored record (and forget `drop`)."""
        merged = self.load(cache_key, repo, commit)
        merged.update(stamps)
        for name in drop:
            merged.pop(name, None)
        return self.save(cache_key, repo, commit, merged)

    def forget(self, cache_key: str, repo: str, commit: str | None = None) -> None:
        folder = self.root / "records" / cache_key / repo.replace("/", "--")
        targets = [folder / f"{commit}.json"] if commit else list(folder.glob("*.json")) if folder.is_dir() else []
        for path in targets:
            try:
                path.unlink()
            except OSError:
                pass

    def commits(self, cache_key: str, repo: str) -> list[str]:
        folder = self.root / "records" / cache_key / repo.replace("/", "--")
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
