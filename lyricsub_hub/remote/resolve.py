"""What the Hub says about a file at the pinned commit, checked against the pin before anything is used.

Every value from the answer is untrusted: the commit must be the pinned one, the
size the pinned size, a sha256 etag the pinned sha256, and an etag that is no
digest must at least be a plain token (olah's offline mode invents
'<32 hex>-10'; the bytes still have to hash to the pin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from ..core.checks import acceptable_etag, clean_etag, is_commit, is_sha256
from ..errors import Hint, PinConflictError
from .http import BadAnswer, Client


@dataclass(frozen=True)
class FileSource:
    """Where one pinned file's bytes are, and what the answer said about them (all checked)."""

    url: str  # the resolve URL at the pinned commit
    location: str  # where to GET them (a CDN's signed URL after a redirect, else url)
    size: int
    etag: str | None
    lfs: bool  # the Hub named it by sha256 (X-Linked-Etag): its blob is named by the sha256
    ranges: bool  # byte ranges may be asked for


def resolve_url(endpoint: str, repo: str, commit: str, fname: str) -> str:
    return f"{endpoint.rstrip('/')}/{quote(repo, safe='/')}/resolve/{commit}/{quote(fname)}"


MAX_UNPINNED_SIZE = 16 << 30  # the cap for a file whose size the index does not pin


def resolve(client: Client, *, model: str, repo: str, commit: str, fname: str, size: int | None,
            sha256: str) -> FileSource:
    """HEAD at the pinned commit; raises PinConflictError or BadAnswer when the answer contradicts the pin."""
    url = resolve_url(client.endpoint, repo, commit, fname)
    head = client.head(url)
    lfs, announced = check_answer(head.headers, model=model, commit=commit, fname=fname, size=size, sha256=sha256,
                                  whole=head.status == 200)
    if size is None:
        if announced is None:
            raise BadAnswer(f"the index pins no size for {fname} and the Hub announced none; refusing an unbounded download")
        size = announced
    redirected = head.location != url
    ranges = redirected or head.headers.get("accept-ranges", "").strip().lower() == "bytes"
    return FileSource(url, head.location, size, clean_etag(head.headers.get("x-linked-etag") or head.headers.get("etag")),
                      lfs, ranges)


def check_answer(headers: Mapping[str, str], *, model: str, commit: str, fname: str, size: int | None, sha256: str,
                 whole: bool) -> tuple[bool, int | None]:
    """Validate the endpoint's own answer for a file: (the Hub names it by sha256, the size it announced).

    whole: Content-Length describes the whole file (a 200 answer to HEAD or to a GET without Range).
    """
    answered = headers.get("x-repo-commit")
    if answered is not None and answered.strip() != commit:
        shown = answered.strip() if is_commit(answered.strip()) else "an invalid commit id"  # never echo junk
        raise PinConflictError(f"asked for commit {commit} of {fname}, the Hub answered for {shown}", model=model,
                               hint=Hint.warm(model))
    linked = clean_etag(headers.get("x-linked-etag"))
    etag = linked or clean_etag(headers.get("etag"))
    if not acceptable_etag(etag):
        raise BadAnswer(f"the Hub answered an etag for {fname} that is neither a digest nor a plain token; refusing it")
    if linked is not None and not is_sha256(linked):
        raise BadAnswer(f"the Hub answered an X-Linked-Etag for {fname} that is not a sha256")
    if etag is not None and is_sha256(etag) and etag != sha256:
        raise PinConflictError(f"the Hub's sha256 for {fname} is {etag[:12]}…, the index pins {sha256[:12]}…",
                               model=model, hint=Hint.lock_update(model))
    raw = headers.get("x-linked-size") or (headers.get("content-length") if whole else None)
    announced = None
    if raw is not None:
        if not raw.strip().isdigit() or len(raw.strip()) > 16 or (size is None and int(raw) > MAX_UNPINNED_SIZE):
            raise BadAnswer(f"the Hub answered a size for {fname} that is not a sane whole number")
        announced = int(raw)
        if size is not None and announced != size:
            raise PinConflictError(f"the Hub says {fname} has {announced} bytes, the index pins {size}", model=model,
                                   hint=Hint.lock_update(model))
    return linked is not None, announced
