"""Turn huggingface_hub and network exceptions into our one-line errors.

Order matters: GatedRepoError is a RepositoryNotFoundError, and in 0.36
LocalEntryNotFoundError is also an EntryNotFoundError.
"""

from __future__ import annotations

import errno
import re

from .errors import (
    AccessDeniedError, DiskSpaceError, HubError, HubUnreachableError, LyricsubError, OfflineError,
    RemoteNotFoundError,
)
from .fetch import CorruptTransfer
from .transport import transient_errors

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: connection trouble, timeouts, 408/429/5xx."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, CorruptTransfer):
        return True
    status = http_status(exc)
    if status is not None:  # HfHubHTTPError, or a bare requests.HTTPError from 0.x's own backoff
        return status in RETRY_STATUSES
    if isinstance(exc, HfHubHTTPError):
        return True
    return isinstance(exc, transient_errors())


def retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def translate(exc: BaseException, *, model: str, repo: str, revision: str | None, filename: str | None,
              endpoint: str, token: str | None, attempts: int = 1) -> LyricsubError:
    """One clear error naming the model, the problem, and what to run."""
    from huggingface_hub import errors as hf

    if isinstance(exc, LyricsubError):
        return exc
    where = f"{endpoint}/{repo}"
    warm = f"lyricsub-hub warm {model}"
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return OfflineError("offline mode is on (HF_HUB_OFFLINE=1) and the model is not in the cache", model=model,
                            status="missing", hint=f"HF_HUB_OFFLINE=0 {warm}")
    if isinstance(exc, hf.GatedRepoError):
        return AccessDeniedError(f"{repo} is gated: accept its terms at {where} and set HF_TOKEN to a token of that account",
                                 model=model, hint=f"HF_TOKEN=<your token> {warm}")
    if isinstance(exc, hf.RevisionNotFoundError):
        return RemoteNotFoundError(f"revision {revision} does not exist in {repo}", model=model, hint=f"lyricsub-hub lock --update {model}")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return RemoteNotFoundError(f"repo {repo} not found on {endpoint} (or it is private: set HF_TOKEN)", model=model,
                                   hint="lyricsub-hub info " + model)
    if isinstance(exc, hf.LocalEntryNotFoundError):
        return HubUnreachableError(_redact(f"cannot reach {endpoint}: {exc}", token).splitlines()[0], model=model, hint=warm)
    if isinstance(exc, hf.EntryNotFoundError):
        return RemoteNotFoundError(f"file {filename} does not exist in {repo} at {revision}", model=model,
                                   hint=f"lyricsub-hub lock --update {model}")
    if isinstance(exc, CorruptTransfer):
        return HubError(f"the Hub kept sending bad bytes: {exc} (after {attempts} tries; nothing was kept)", model=model, hint=warm)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskSpaceError(f"the disk filled up while writing {filename}; the partial file is kept for resume",
                              model=model, hint=f"free space, then {warm}")
    status = http_status(exc)
    if status in (401, 403):
        return AccessDeniedError(f"{endpoint} refused access to {repo} (HTTP {status}); check HF_TOKEN", model=model, hint=warm)
    tries = f" after {attempts} tries" if attempts > 1 else ""
    if status is not None:
        return HubError(f"{endpoint} answered HTTP {status} for {filename or repo}{tries}", model=model, hint=warm)
    if is_transient(exc):
        return HubUnreachableError(f"cannot reach {endpoint}{tries}: {_short(exc, token)}", model=model, hint=warm)
    return HubError(f"download of {filename or repo} failed: {_short(exc, token)}", model=model, hint=warm)


def _short(exc: BaseException, token: str | None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _redact(text[:200], token)


def _redact(text: str, token: str | None) -> str:
    """Never echo a token, whole or in part."""
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{6,}", "hf_***", text)
