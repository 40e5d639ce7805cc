"""What the command line does before its first import of our own: load `dataclasses` without `inspect`.

`dataclasses` imports `inspect` (and with it ast, dis, tokenize: about 7 ms, a quarter
of a `lyricsub-hub path` start) only to write a docstring for a class that has none,
and every dataclass of ours has one. So `dataclasses` is imported with a stand-in
for `inspect` that imports the real one on first use; the stand-in is in
`sys.modules` only while `dataclasses` itself is being imported, so every other
`import inspect` in the process, before or after, gets the real module.
"""

from __future__ import annotations

import sys
from types import ModuleType


class _Inspect(ModuleType):
    """Stands in for `inspect` inside `dataclasses`: any attribute imports the real module and comes from it."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get("inspect") is self:  # still importing dataclasses: step aside first
            del sys.modules["inspect"]
        import importlib

        return getattr(importlib.import_module("inspect"), name)


def import_dataclasses() -> None:
    """Import `dataclasses` with `inspect` deferred (a no-op when either is already imported)."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = _Inspect("inspect", "Imports the real inspect module on first use (lyricsub_hub.core.startup).")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
