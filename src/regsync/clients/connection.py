"""Say why a connection failed (refused, DNS, TLS, timeout) in words an operator can act on.

requests and httpx both wrap the socket's error two or three levels deep (MaxRetryError,
NewConnectionError, httpcore.ConnectError): their own message is a class name or a repr of a pool.
This walks the chain to the error the operating system or the TLS library raised.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps (cause, context, urllib3's `reason`, exceptions in args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        todo += [item for item in wrapped if isinstance(item, BaseException)]


def connection_cause(exc: BaseException) -> str:
    """The cause of a failed connection: 'connection refused', 'DNS: ...', 'TLS: ...', 'timed out'."""
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"TLS: certificate not trusted ({item.verify_message or item.reason})"
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return f"TLS: {item.reason or item}"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return f"DNS: the host name does not resolve ({item.strerror or item})"
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connection refused (nothing listens on that port?)"
    for item in chain:
        if isinstance(item, TimeoutError) or "Timeout" in type(item).__name__:
            return "timed out"
    for item in chain:
        if isinstance(item, ConnectionResetError):
            return "connection reset by the server"
    for item in chain:
        if isinstance(item, OSError) and item.strerror:
            return item.strerror
    text = str(exc)
    # A name resolution failure that reached us only as text (urllib3 formats it into a message).
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "DNS: the host name does not resolve"
    return type(exc).__name__


def describe_connection_error(exc: BaseException, url: str) -> str:
    """'HOST:PORT: CAUSE' for the URL the client was calling."""
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}: {connection_cause(exc)}"
