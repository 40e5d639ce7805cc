"""The `lyricsub-hub` console script and `python -m lyricsub_hub` start here.

A process start, not an import: `dataclasses` is loaded without `inspect` first
(core/startup.py), then the command line runs.
"""

from __future__ import annotations

import sys


def run() -> None:
    from .core.startup import import_dataclasses

    import_dataclasses()
    from .cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
