"""lyricsub-hub tests."""
