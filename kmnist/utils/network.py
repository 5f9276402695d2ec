"""Whether a server answers, asked quickly: libraries retry an unreachable host for up to a
minute before failing (huggingface_hub ~50 s), so callers probe first and fail with a clear line."""

from __future__ import annotations

import socket
from urllib.parse import urlparse


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to `url`'s host and port opens within `timeout`; never raises."""
    try:
        parsed = urlparse(url)
        if not parsed.hostname:
            return False
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False
