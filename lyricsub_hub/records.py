"""Verification records: once a file has hashed right, remember it by (size, mtime, inode).

A record is trusted only while the file's stat still matches, so the warm path
costs one stat per file. Records are small versioned JSON files written
atomically (write to a temp file, then os.replace); an unreadable record counts
as absent, which only means "hash again".
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_VERSION = 2


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


_BOOT: str | None = None


@dataclass(frozen=True)
class Stamp:
    size: int
    mtime_ns: int
    ino: int
    dev: int
    sha256: str
    boot: str = ""

    def matches(self, st: os.stat_result) -> bool:
        return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, boot_id()) == (
            self.size, self.mtime_ns, self.ino, self.dev, self.boot)

    @classmethod
    def of(cls, st: os.stat_result, sha256: str) -> "Stamp":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, sha256, boot_id())


class RecordStore:
    """One JSON file per (cache, repo, commit) under the state folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, cache_key: str, repo: str, commit: str) -> Path:
        return self.root / "records" / cache_key / repo.replace("/", "--") / f"{commit}.json"

    def load(self, cache_key: str, repo: str, commit: str) -> dict[str, Stamp]:
        try:
            data = json.loads(self._file(cache_key, repo, commit).read_bytes())
            if data.get("version") != RECORD_VERSION:
                return {}
            return {name: Stamp(**fields) for name, fields in data["files"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def save(self, cache_key: str, repo: str, commit: str, stamps: dict[str, Stamp]) -> bool:
        """Write atomically; False when the state folder is not writable (we then simply hash again next time)."""
        target = self._file(cache_key, repo, commit)
        payload = json.dumps({"version": RECORD_VERSION, "files": {n: asdict(s) for n, s in sorted(stamps.items())}})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            os.replace(tmp, target)
        except OSError:
            return False
        return True

    def forget(self, cache_key: str, repo: str, commit: str | None = None) -> None:
        folder = self.root / "records" / cache_key / repo.replace("/", "--")
        targets = [folder / f"{commit}.json"] if commit else list(folder.glob("*.json")) if folder.is_dir() else []
        for path in targets:
            try:
                path.unlink()
            except OSError:
                pass
