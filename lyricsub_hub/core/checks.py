"""Validators for every name or value that arrives from outside (an index, a Hub, a mirror, a bundle).

One copy of each rule: the cache names files only after a value passed one of these.
All use fullmatch, so a trailing newline never passes a hex check.
"""

from __future__ import annotations

import functools
import re
from pathlib import PurePosixPath

MAX_NAME = 255  # bytes in one path component on every filesystem we care about
_PATTERNS = {
    "hex40": r"[0-9a-f]{40}",
    "hex64": r"[0-9a-f]{64}",
    "repo": r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+",
    "token": r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,127}",  # an opaque etag a mirror may invent
    "ref_part": r"[A-Za-z0-9_][A-Za-z0-9_.+-]*",
}


@functools.cache
def _re(name: str) -> re.Pattern[str]:
    """Compiled on first use: a command that checks nothing (path, status) does not pay for them at start-up."""
    return re.compile(_PATTERNS[name])


def is_commit(value: object) -> bool:
    """A full 40-hex git commit id (lower case, as the Hub writes them)."""
    return isinstance(value, str) and _re("hex40").fullmatch(value) is not None


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _re("hex64").fullmatch(value) is not None


def is_git_sha1(value: object) -> bool:
    """A git blob id: the Hub's etag for small files kept in git."""
    return is_commit(value)


def is_repo_id(value: object) -> bool:
    """org/name, nothing that could become a path of its own."""
    return isinstance(value, str) and _re("repo").fullmatch(value) is not None and ".." not in value


def safe_file_name(name: object) -> bool:
    """A relative POSIX path that cannot leave the folder it is joined to."""
    if not isinstance(name, str) or not name or len(name) > 1024:
        return False
    if name.startswith(("/", "\\")) or "\\" in name or ":" in name or PurePosixPath(name).is_absolute():
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return False
    return all(part not in ("", ".", "..") and len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME
               for part in name.split("/"))


def safe_ref_name(name: object) -> bool:
    """A branch name as git check-ref-format allows it, restricted to plain characters.

    It becomes refs/<name> in the cache, so it must never climb out or name a lock file.
    """
    if not isinstance(name, str) or not name or len(name) > 200 or name.startswith("/") or name.endswith("/"):
        return False
    parts = name.split("/")
    return all(_re("ref_part").fullmatch(p) and not p.endswith((".lock", ".")) and ".." not in p for p in parts)


def clean_etag(raw: str | None) -> str | None:
    """The etag a server sent, without quotes or a weak marker; None when absent."""
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def acceptable_etag(etag: str | None) -> bool:
    """A hex digest, or an opaque token a mirror invented (olah offline: '<32 hex>-10').

    The pinned sha256 decides about content either way; this only keeps junk out of logs and names.
    """
    return etag is None or is_sha256(etag) or is_git_sha1(etag) or _re("token").fullmatch(etag) is not None
