#!/usr/bin/env python3
"""Warm the model cache (for CI, container builds, first run): the same as `lyricsub-hub warm ...`.

    python scripts/warm_cache.py                 # the default set
    python scripts/warm_cache.py --set lyrics-full --workers 8
    python scripts/warm_cache.py whisper:large-v3 --no-load --json

Exit codes as documented in README.md (0 ok, 1 not available, 2 usage, 3 network, 4 disk, 5 load, 130 cancelled).
"""

import sys

from lyricsub_hub.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["warm", *sys.argv[1:]]))
