"""One check of bytes against a pin, spelled once for download, status, bundles and pin.

Two digests name a model file's bytes: sha256 (the index's pin, and the blob name of an LFS file) and git's blob
id, sha1 over the header `blob <size>\\0` and then the bytes (the Hub's etag and the blob name of a small file kept
in git). Every hasher is made here, and `mismatch` is the one comparison of digests against a pin and a blob name,
so the header and the rules cannot drift apart between the paths that write or judge the cache. Callers word the
failure for their own context from the Mismatch it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from .checks import is_git_sha1, is_sha256

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Hasher = Any  # hashlib objects have no public common type


def git_blob_header(size: int) -> bytes:
    """What git hashes before a blob's bytes: `blob <size>` and a NUL."""
    return b"blob %d\0" % size


def sha256_hasher() -> Hasher:
    import hashlib  # here, not at import: OpenSSL loads only when something is hashed (a warm status never is)

    return hashlib.sha256()


def git_blob_hasher(size: int) -> Hasher:
    """A sha1 already fed the header of a blob of this size: update it with exactly `size` bytes."""
    import hashlib

    return hashlib.sha1(git_blob_header(size), usedforsecurity=False)


def new_hashers(size: int, git: bool) -> list[Hasher]:
    """[sha256] or [sha256, git blob id] for `size` bytes, fed together as the bytes stream by."""
    return [sha256_hasher(), git_blob_hasher(size)] if git else [sha256_hasher()]


def sha256_of(data: bytes) -> str:
    h = sha256_hasher()
    h.update(data)
    return str(h.hexdigest())


def git_blob_id(data: bytes) -> str:
    h = git_blob_hasher(len(data))
    h.update(data)
    return str(h.hexdigest())


@dataclass(frozen=True)
class Mismatch:
    """What did not match: the pin (sha256), or the name the bytes go under (a blob name or the Hub's etag)."""

    against: Literal["pin", "name"]
    digest: Literal["sha256", "git"]
    got: str  # "" when the git id was not computed
    want: str


def mismatch(sha256: str, git: str | None, *, pin: str | None, name: str | None = None) -> Mismatch | None:
    """The first way these digests of some bytes fail their pin, then their blob name or etag; None when they match.

    A name that is neither a sha256 nor a git blob id (a plain etag token) says nothing about the bytes.
    """
    if pin and sha256 != pin:
        return Mismatch("pin", "sha256", sha256, pin)
    if name and is_sha256(name) and sha256 != name:
        return Mismatch("name", "sha256", sha256, name)
    if name and is_git_sha1(name) and git != name:
        return Mismatch("name", "git", git or "", name)
    return None
