"""The Hub's file list for pinning: huggingface_hub's model_info, every value checked before it is used.

A hostile or broken Hub (or mirror) could answer a commit that is a path, a
negative size or a sha256 that is not hex; none of that may reach the index or
the disk. Small files have no sha256 in the listing: they are fetched into memory
(bounded by their listed size, never through the cache) and hashed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.checks import is_commit, is_git_sha1, is_sha256, safe_file_name
from ..core.digest import git_blob_id, mismatch, sha256_of
from ..errors import HubError
from .http import BadAnswer, Client, ConnectionLost, HttpStatus, _reason
from .resolve import resolve_url

MAX_SIZE = 2**50  # 1 PB: any listed size beyond is junk


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo as the Hub's listing gives it."""

    name: str
    size: int
    sha256: str | None  # LFS files only
    git_oid: str | None  # git blob id of the file (small files) or of its LFS pointer


@dataclass(frozen=True)
class RepoListing:
    """A repo's files at one commit, with the names refused as unsafe kept apart."""

    repo: str
    commit: str
    files: Mapping[str, RemoteFile]
    unsafe_names: tuple[str, ...]  # names that would leave the repo folder (kept apart, never pinned)


def list_repo(endpoint: str, token: str | None, repo: str, revision: str, *, model: str) -> RepoListing:
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint, token=token or False).model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # huggingface_hub's errors differ by version: keep what the table needs
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            headers = {str(k).lower(): str(v) for k, v in getattr(response, "headers", {}).items()}
            raise HttpStatus(status, f"{endpoint}/api/models/{repo}", headers) from None
        # no answer at all: say why (refused, no such host, ...) so the table can tell "cannot reach" from a cut
        raise ConnectionLost(_reason(exc, endpoint).rsplit(" (", 1)[0]) from None  # the table names the endpoint
    commit = getattr(info, "sha", None)
    if not is_commit(commit):
        raise HubError(f"the Hub answered a commit id for {repo} that is not 40 hex; refusing it", model=model)
    files: dict[str, RemoteFile] = {}
    unsafe: list[str] = []
    for sib in info.siblings or []:
        name = getattr(sib, "rfilename", None)
        if not isinstance(name, str) or not safe_file_name(name):
            unsafe.append(str(name)[:80])
            continue
        size = getattr(sib, "size", None)
        lfs = getattr(sib, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        oid = getattr(sib, "blob_id", None)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
            raise HubError(f"the Hub answered a size for {name} that is not a whole number of bytes; refusing it", model=model)
        if sha is not None and not is_sha256(sha):
            raise HubError(f"the Hub answered a sha256 for {name} that is not 64 hex; refusing it", model=model)
        if oid is not None and not is_git_sha1(oid):
            oid = None  # only ever compared, never used as a name
        files[name] = RemoteFile(name, size, sha, oid)
    return RepoListing(repo, str(commit), files, tuple(unsafe))


def small_file_sha256(client: Client, listing: RepoListing, name: str, *, model: str) -> str:
    """Fetch a small file into memory (at most its listed size) and hash it; its git id must match the listing."""
    entry = listing.files[name]
    data, _ = client.get_small(resolve_url(client.endpoint, listing.repo, listing.commit, name), entry.size)
    if len(data) != entry.size:
        raise BadAnswer(f"{name}: got {len(data)} bytes, the listing says {entry.size}")
    sha256 = sha256_of(data)
    if entry.git_oid is not None and mismatch(sha256, git_blob_id(data), pin=None, name=entry.git_oid):
        raise BadAnswer(f"{name}: the bytes do not match the git id the Hub listed")
    return sha256
