"""One table from what went wrong on the wire to the error a person reads, and whether another try is worth it.

Read top to bottom: the first row whose test matches decides. Messages name the
host (never its query string or credentials) and say what to do next.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from ..core.text import clean_url
from ..errors import (
    AccessDeniedError,
    Fix,
    Hint,
    HubError,
    HubTimeoutError,
    HubUnreachableError,
    LyricsubError,
    ProxyRouteError,
    RemoteNotFoundError,
    UntrustedCertificateError,
)
from .http import (
    BadAnswer,
    BadBytes,
    ConnectionLost,
    HttpStatus,
    NoFirstByte,
    ProxyFailure,
    RouteFailure,
    TooSlow,
    TransferError,
    TrustFailure,
    _host,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Context:
    """What the error line names."""

    model: str
    repo: str
    revision: str | None
    filename: str | None
    endpoint: str
    attempts: int = 1


def is_transient(exc: BaseException) -> bool:
    """Worth another try: connection trouble, a trickle, a slow mirror, bad bytes, 408/429/5xx."""
    if isinstance(exc, HttpStatus):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, TransferError):
        return exc.transient
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: Retry-After (seconds or an HTTP date), else the reset of a RateLimit
    header whose remaining count is 0 (the IETF draft's form, which the Hub sends: `"api";r=0;t=55`)."""
    return wait_told(exc.headers) if isinstance(exc, HttpStatus) else None


def rate_limited(exc: BaseException) -> float | None:
    """A 429, or a 503 that says when to come back: the seconds to wait (0 when none was told for a 429)."""
    if not isinstance(exc, HttpStatus) or exc.status not in (429, 503):
        return None
    told = wait_told(exc.headers)
    if exc.status == 503 and not told:
        return None  # a plain 503 is a server in trouble, retried as one
    return told or 0.0


_RATELIMIT = re.compile(r'"?[\w-]*"?\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)')
_RATELIMIT_OLD = re.compile(r"remaining\s*=\s*(\d+)\s*,\s*reset\s*=\s*(\d+)")
MAX_TOLD = 3600.0  # a wait longer than this is taken as this (the time budget ends it sooner anyway)


def wait_told(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("retry-after") or "").strip()
    if value:
        seconds: float | None
        try:
            seconds = float(value)
        except ValueError:
            seconds = _date_wait(value)
        if seconds is not None and math.isfinite(seconds):
            return min(MAX_TOLD, max(0.0, seconds))
    limit = headers.get("ratelimit") or ""
    match = _RATELIMIT.search(limit) or _RATELIMIT_OLD.search(limit)
    if match and int(match.group(1)) == 0:
        return min(MAX_TOLD, float(match.group(2)))
    return None


def _date_wait(value: str) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - time.time()


def _code(exc: HttpStatus) -> str:
    return exc.headers.get("x-error-code", "").strip()


def _tries(ctx: Context) -> str:
    return f" after {ctx.attempts} tries" if ctx.attempts > 1 else ""


Row = tuple[Callable[[BaseException], bool], Callable[[BaseException, Context], LyricsubError]]
TABLE: list[Row] = [
    (lambda e: isinstance(e, LyricsubError), lambda e, c: cast(LyricsubError, e)),
    (lambda e: isinstance(e, ProxyFailure),
     lambda e, c: ProxyRouteError(f"{e}{_tries(c)}", model=c.model, hint=_fix(cast(RouteFailure, e), c))),
    (lambda e: isinstance(e, TrustFailure),
     lambda e, c: UntrustedCertificateError(str(e), model=c.model, hint=_fix(cast(RouteFailure, e), c))),
    (lambda e: isinstance(e, HttpStatus) and _code(e) == "GatedRepo",
     lambda e, c: AccessDeniedError(f"{c.repo} is gated: accept its terms at {c.endpoint}/{c.repo} and set HF_TOKEN to a "
                                    "token of that account", model=c.model, hint=Fix("warm", c.model, env=(("HF_TOKEN", "<your token>"),)))),
    (lambda e: isinstance(e, HttpStatus) and _code(e) == "RevisionNotFound",
     lambda e, c: RemoteNotFoundError(f"revision {c.revision} does not exist in {c.repo}", model=c.model,
                                      hint=Hint.lock_update(c.model))),
    (lambda e: isinstance(e, HttpStatus) and _code(e) == "RepoNotFound",
     lambda e, c: RemoteNotFoundError(f"repo {c.repo} not found on {c.endpoint} (or it is private: set HF_TOKEN)",
                                      model=c.model, hint=Fix("info", c.model))),
    (lambda e: isinstance(e, HttpStatus) and (_code(e) == "EntryNotFound" or (e.status == 404 and not e.on_redirect_target)),
     lambda e, c: _entry_not_found(c)),
    (lambda e: isinstance(e, HttpStatus) and e.on_redirect_target and e.status in (401, 403, 404, 410),
     lambda e, c: HubError(f"the download address {_host(e.url)} gave for {c.filename} kept being refused (HTTP "  # type: ignore[attr-defined]
                           f"{e.status}){_tries(c)}, though it was asked for anew each time", model=c.model,  # type: ignore[attr-defined]
                           hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, HttpStatus) and e.status in (401, 403),
     lambda e, c: AccessDeniedError(f"{c.endpoint} refused access to {c.repo} (HTTP {e.status}); check HF_TOKEN",  # type: ignore[attr-defined]
                                    model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, HttpStatus),
     lambda e, c: HubError(f"{_host(e.url)} answered HTTP {e.status} for {c.filename or c.repo}{_tries(c)}",  # type: ignore[attr-defined]
                           model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, NoFirstByte),
     lambda e, c: HubTimeoutError(f"{e}{_tries(c)}: the server (a mirror fetching the file upstream?) is reachable but "
                                  f"too slow to start sending {c.filename or c.repo}", model=c.model,
                                  hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, TooSlow),
     lambda e, c: HubTimeoutError(f"{c.filename}: {e}{_tries(c)}", model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, BadBytes),
     lambda e, c: HubError(f"the Hub kept sending bytes that do not match the pin: {e}{_tries(c)}; they were not kept",
                           model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, BadAnswer),
     lambda e, c: HubError(f"refusing the answer for {c.filename or c.repo}: {e}", model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, ConnectionLost) and e.got == 0 and _never_connected(e),
     lambda e, c: HubUnreachableError(f"cannot reach {c.endpoint}{_tries(c)}: {e}", model=c.model, hint=Hint.warm(c.model))),
    (lambda e: isinstance(e, ConnectionLost),
     lambda e, c: HubError(f"the download of {c.filename or c.repo} kept breaking off{_tries(c)}: {e}", model=c.model,
                           hint=Hint.warm(c.model))),
]


def _fix(exc: RouteFailure, c: Context) -> Fix:
    """A variable to set goes before the command; words go before ", then"."""
    if not exc.fix:
        return Hint.warm(c.model)
    variable = re.fullmatch(r"([A-Z_]+)=(\S+)", exc.fix)
    if variable:
        return Fix("warm", c.model, env=((variable[1], variable[2]),))
    return Fix("warm", c.model, before=f"{exc.fix}, then ")


def _entry_not_found(c: Context) -> LyricsubError:
    """On the Hub the file is gone (the pin moved); a mirror says the same when it is offline or lacks the file."""
    from ..core.env import DEFAULT_ENDPOINT

    words = f"file {c.filename} does not exist in {c.repo} at {c.revision}"
    if c.endpoint.rstrip("/") == DEFAULT_ENDPOINT:
        return RemoteNotFoundError(words, model=c.model, hint=Hint.lock_update(c.model))
    return RemoteNotFoundError(f"{words} on {clean_url(c.endpoint)} (a mirror in offline mode, or one that never fetched "
                               "it, answers so too)", model=c.model, hint=Fix("warm", c.model, env=(("HF_ENDPOINT", DEFAULT_ENDPOINT),)))


def _never_connected(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("refused", "resolution", "not known", "no route", "unreachable"))


def translate(exc: BaseException, ctx: Context) -> LyricsubError:
    """The one clear error for an exception: first matching row of TABLE, else a plain HubError."""
    for test, make in TABLE:
        if test(exc):
            return make(exc, ctx)
    return HubError(f"download of {ctx.filename or ctx.repo} failed: {type(exc).__name__}: {clean_url(str(exc))[:200]}",
                    model=ctx.model, hint=Hint.warm(ctx.model))
