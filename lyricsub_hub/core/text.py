"""Text that reaches a person: sizes, rates, and messages with every secret and control character removed.

One copy of each: the CLI, errors and the network room all format through here.
"""

from __future__ import annotations

import functools
import re

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}
_PATTERNS = {
    "size": (r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]I?)?B?\s*(?:/S)?\s*", re.IGNORECASE),
    "token": (r"hf_[A-Za-z0-9]{6,}", 0),
    "bearer": (r"(?i)(bearer\s+)[^\s'\",;]+", 0),
    "url": (r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#'\"<>]*@)?([^\s?#'\"<>]*)(\?[^\s#'\"<>]*)?(#[^\s'\"<>]*)?", 0),
    "control": (r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]", 0),
}


@functools.cache
def _re(name: str) -> re.Pattern[str]:
    """Compiled on first use, so a command that prints no message does not pay for them at start-up."""
    pattern, flags = _PATTERNS[name]
    return re.compile(pattern, flags)


def human_size(n: int | float | None) -> str:
    """Decimal units, as disk makers and the Hub's web pages use them: 3.1 GB."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def parse_size(text: str) -> int:
    """'20M', '20MB' = 20*10^6; '20MiB' = 20*2^20; a bare number is bytes. Raises ValueError."""
    match = _re("size").fullmatch(text or "")
    if not match:
        raise ValueError(f"'{text}' is not a size (examples: 500M, 20MB, 1.5GiB, 1048576)")
    value = float(match[1]) * _UNITS[(match[2] or "").upper()]
    if value > 2**62:
        raise ValueError(f"'{text}' is too large")
    return int(value)


def parse_rate(text: str) -> int:
    """Bytes per second, spelled like a size ('20M', '20MB/s', '20MiB'); at least 1 KB/s."""
    rate = parse_size(text)
    if rate < 1000:
        raise ValueError(f"'{text}' is below the smallest rate (1K = 1000 bytes per second)")
    return rate


def clean_url(url: str) -> str:
    """A URL safe to print: no user info (a password in --endpoint) and no query (signed CDN URLs)."""
    return _re("url").sub(lambda m: m[1] + m[3] + ("?…" if m[4] else ""), url)


def redact(text: str, *secrets: str | None) -> str:
    """Remove tokens, bearer values, URL credentials and signed query strings from any message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _re("bearer").sub(r"\1***", text)
    text = _re("token").sub("hf_***", text)
    return clean_url(text)


def printable(text: str) -> str:
    """Control characters (terminal escapes, newlines, 8-bit controls, line separators, lone surrogates) shown as
    escapes, so a hostile name cannot paint the screen or break the output's encoding."""
    return _re("control").sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def one_line(text: str, limit: int = 240) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
