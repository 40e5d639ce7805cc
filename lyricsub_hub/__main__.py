"""`python -m lyricsub_hub` is the same as the `lyricsub-hub` command."""

from .cli import main

raise SystemExit(main())
