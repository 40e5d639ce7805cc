"""Every switch the environment holds, in one place: offline mode, the endpoint, the token, telemetry.

huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT once, at import; setting
them afterwards silently does nothing. So going offline lives here alone, and
flips the flags of libraries that were imported too early.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_TRUE = {"1", "on", "yes", "true"}
DEFAULT_ENDPOINT = "https://huggingface.co"


def is_offline() -> bool:
    """The same rule huggingface_hub applies: HF_HUB_OFFLINE, or else TRANSFORMERS_OFFLINE."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def endpoint(explicit: str | None = None) -> str:
    """--endpoint, else HF_ENDPOINT, else the Hub; without a trailing slash."""
    return (explicit or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def endpoint_problem(url: str) -> str | None:
    """Why url cannot be a Hub endpoint (scheme, host, port, no query or fragment); None when it can. Checked when
    the knob is read, so a typo is one line at the start instead of a traceback or broken URLs later."""
    from urllib.parse import urlsplit

    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "it holds spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, an unclosed IPv6 bracket
        return str(exc)
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "port 0 is no port"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "it has a query string or fragment (file paths are appended to it)"
    return None


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface"


def token(explicit: str | None = None) -> str | None:
    """The HF token: explicit, HF_TOKEN, or the file `hf auth login` wrote; stripped of the newline
    that Kubernetes secrets and env files often carry."""
    for value in (explicit, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        if value and value.strip():
            return value.strip()
    path = os.environ.get("HF_TOKEN_PATH") or str(hf_home() / "token")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def go_offline() -> None:
    """Make the whole stack offline: our code, huggingface_hub, transformers, pyannote's telemetry."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    close_side_doors()
    _flip_loaded_modules()


def close_side_doors() -> None:
    """The requests the speech stack makes on its own: pyannote's telemetry (sent on every model init and not
    stopped by HF_HUB_OFFLINE) and huggingface_hub's."""
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def quiet_hub() -> None:
    """No telemetry and no tqdm bars of huggingface_hub's own; defaults only, a user's explicit setting wins."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _flip_loaded_modules() -> None:
    """huggingface_hub and transformers copy the flag into globals at import time: flip those copies too."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and not getattr(constants, "HF_HUB_OFFLINE", True):
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010  (2.x checks it per request; 0.36 per session)
        http = sys.modules.get("huggingface_hub.utils._http")
        if http is not None and hasattr(http, "reset_sessions"):
            http.reset_sessions()
    hub = sys.modules.get("transformers.utils.hub")
    if hub is not None and hasattr(hub, "_is_offline_mode"):
        setattr(hub, "_is_offline_mode", True)  # noqa: B010


STATE_ENV = "LYRICSUB_STATE_DIR"
SITE_ENV = "LYRICSUB_SITE_CACHE"


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The same answer huggingface_hub gives: HF_HUB_CACHE, else HF_HOME/hub, else XDG/~/.cache."""
    if explicit:
        return Path(explicit).expanduser()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return hf_home() / "hub"


def resolve_state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Our own records live outside the cache, so read-only and shared caches work."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "lyricsub-hub"


def resolve_site_caches(own: Path | None = None) -> tuple[Path, ...]:
    """LYRICSUB_SITE_CACHE: read-only huggingface_hub caches (os.pathsep-separated) layered under the user's own,
    in the order given; empty entries, repeats and the user's own cache left out."""
    seen = {os.path.realpath(own)} if own is not None else set()
    out = []
    for item in os.environ.get(SITE_ENV, "").split(os.pathsep):
        if not item.strip():
            continue
        path = Path(item.strip()).expanduser()
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return tuple(out)
