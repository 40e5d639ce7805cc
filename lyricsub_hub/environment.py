"""Settings that must be in os.environ before huggingface_hub is imported.

huggingface_hub reads HF_HUB_OFFLINE and HF_ENDPOINT once, at import; setting
them afterwards silently does nothing. So the switch lives here and refuses to
pretend when it is too late.
"""

from __future__ import annotations

import os
import sys

_TRUE = {"1", "on", "yes", "true"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_offline() -> bool:
    """The same rule huggingface_hub applies: HF_HUB_OFFLINE, or else TRANSFORMERS_OFFLINE."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def go_offline() -> None:
    """Make the whole stack offline: our code, huggingface_hub, transformers, pyannote's telemetry."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and not getattr(constants, "HF_HUB_OFFLINE", True):
        # Imported too early: flip its flag too (2.x checks it per request; 0.36 per session).
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
        try:
            from huggingface_hub.utils import reset_sessions  # 0.x only

            reset_sessions()
        except ImportError:
            pass


def quiet_hub() -> None:
    """No telemetry (2.x otherwise contacts huggingface.co on its own) and no tqdm bars of its own.

    Defaults only: a user's explicit setting wins. Effective when set before huggingface_hub is imported.
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
