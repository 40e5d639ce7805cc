"""A socket-level guard for tests: proves "zero connection attempts" instead of assuming it.

Inside ``no_network()`` every outbound connect and every name lookup is recorded
and refused with ``ConnectionRefusedError`` (an OSError, so libraries fail the way
they do on a machine without network). Loopback is allowed unless ``loopback=False``,
so a fake Hub on 127.0.0.1 keeps working. Unix-domain sockets are never blocked.
Patches are process-wide (threads included) and undone on exit.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkBlocked(ConnectionRefusedError):
    """Raised for a connection attempt inside no_network()."""


@dataclass
class NetGuard:
    """What the guard saw: ``attempts`` lists refused (host, port) pairs, ``allowed`` loopback ones."""

    loopback: bool = True
    attempts: list[tuple[str, Any]] = field(default_factory=list)
    allowed: list[tuple[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, host: Any, port: Any) -> None:
        """Record the address; raise NetworkBlocked unless it is loopback and loopback is allowed."""
        text = host.decode() if isinstance(host, bytes) else str(host)
        with self._lock:
            if self.loopback and _is_loopback(text):
                self.allowed.append((text, port))
                return
            self.attempts.append((text, port))
        raise NetworkBlocked(f"network access blocked by no_network(): {text}:{port}")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _inet_address(sock: socket.socket, address: Any) -> tuple[str, Any] | None:
    """(host, port) for an inet socket address, None for unix sockets and the like."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and address:
        return address[0], address[1] if len(address) > 1 else None
    return None


@contextmanager
def no_network(*, loopback: bool = True) -> Iterator[NetGuard]:
    """Refuse and count non-loopback connect()/getaddrinfo (all of them with ``loopback=False``)."""
    guard = NetGuard(loopback=loopback)
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        target = _inet_address(self, address)
        if target is not None:
            guard.check(*target)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        target = _inet_address(self, address)
        if target is not None:
            guard.check(*target)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check(address[0], address[1])
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:  # None means "a local wildcard address", not a lookup
            guard.check(host, port)
        return real_getaddrinfo(host, port, *args, **kwargs)

    patches = {(socket.socket, "connect"): connect, (socket.socket, "connect_ex"): connect_ex,
               (socket, "create_connection"): create_connection, (socket, "getaddrinfo"): getaddrinfo}
    saved = {key: getattr(*key) for key in patches}
    for (owner, name), replacement in patches.items():
        setattr(owner, name, replacement)
    try:
        yield guard
    finally:
        for (owner, name), original in saved.items():
            setattr(owner, name, original)
