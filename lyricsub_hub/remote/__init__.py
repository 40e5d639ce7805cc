"""The only room that opens sockets: the endpoint and its reachability, file metadata at a pinned commit,
streamed GETs with every bound a hostile server needs, the Hub's listing for pinning, the bandwidth cap,
and one table that turns failures into our errors."""

from __future__ import annotations

from .http import Client, HttpStatus, Stream, Timeouts, TransferError
from .ratelimit import RateLimiter

__all__ = ["Client", "HttpStatus", "RateLimiter", "Stream", "Timeouts", "TransferError"]
