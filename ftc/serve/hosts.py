"""Which names are this machine: for where a server binds, and for the Host a request asks for.

A server without a key trusts whoever reaches it, which is this machine only while it binds loopback and the
request's Host is a loopback name: a site whose name is made to resolve to 127.0.0.1 (DNS rebinding) would
otherwise be same-origin with the server and drive it from its own page.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def asks_for_loopback(host_header: str | None) -> bool:
    """The request's Host header names this machine (127.0.0.1:8000, localhost, [::1]:7860)."""
    name = urlsplit("//" + (host_header or "")).hostname
    return name is not None and is_loopback(name)
