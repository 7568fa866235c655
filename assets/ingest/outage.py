"""Download failures that say nothing about the video: this machine cannot reach the host at all.

A private or removed video fails on its own; a name that does not resolve, a network with no route, a refused
connection or proxy, or YouTube's bot check fail every video the same way, and retrying each of 280 videos only
repeats the same error for an hour. Recognising them, from yt-dlp's own wording, lets a rebuild stop early with
one clear message (see pipelines/circuit_breaker.py). Timeouts count too: a firewall that drops packets times out
every video alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from assets.ingest.errors import ErrorClass, classify_error


@dataclass(frozen=True)
class Outage:
    """A failure shared by every video: ``cause`` is the key consecutive failures must agree on."""

    cause: str  # proxy | dns | no_route | refused | timeout | bot_check | rate_limited
    host: str | None  # the host named in the message, when there is one

    def explain(self) -> str:
        where = self.host or "the host"
        return {
            "proxy": f"the proxy ({where}) refuses connections or cannot be reached: check MOTIONPIPE_PROXY",
            "dns": f"the host name {where} does not resolve (no DNS, or no network on this machine)",
            "no_route": f"there is no route to {where} (this machine's network is down or walled off)",
            "refused": f"{where} refuses connections (nothing listens there, or a firewall rejects them)",
            "timeout": f"connections to {where} time out (a firewall dropping packets, or no network)",
            "bot_check": "YouTube asks to sign in to confirm this is not a bot, for every video (this IP is "
                         "flagged)",
            "rate_limited": "YouTube answers 429 Too Many Requests for every video (this IP is throttled)",
        }[self.cause]


def _rx(*patterns: str) -> re.Pattern:
    return re.compile("|".join(patterns), re.IGNORECASE)


# In order: a refused proxy's message also says "Connection refused" about the proxy's port.
_CAUSES: tuple[tuple[str, re.Pattern], ...] = (
    ("proxy", _rx(r"Unable to connect to proxy", r"ProxyError", r"Tunnel connection failed")),
    ("dns", _rx(r"Failed to resolve", r"Name or service not known", r"Temporary failure in name resolution",
                r"nodename nor servname", r"getaddrinfo failed", r"No address associated with hostname",
                r"\[Errno -[235]\]")),
    ("no_route", _rx(r"Network is unreachable", r"No route to host", r"\[Errno 101\]", r"\[Errno 113\]")),
    ("refused", _rx(r"Connection refused", r"\[Errno 111\]")),
    ("timeout", _rx(r"timed out")),
)
_SHARED_CLASSES = (ErrorClass.network, ErrorClass.bot_check, ErrorClass.rate_limited)
_HOST = (re.compile(r"Failed to resolve '([^']+)'"), re.compile(r"host='([^']+)'"),
         re.compile(r"https?://([^/\s:'\"]+)"))


def _host(message: str) -> str | None:
    for pattern in _HOST:
        m = pattern.search(message)
        if m:
            return m.group(1)
    return None


def outage_of(message: str | None) -> Outage | None:
    """The machine-wide cause of a download failure's message, or None for a failure that may be the video's."""
    error_class = classify_error(message)
    if error_class not in _SHARED_CLASSES:
        return None  # a private, removed, corrupt ... video, or a full disk (its own, clearer error)
    for cause, pattern in _CAUSES:
        if pattern.search(message):
            return Outage(cause, _host(message))
    if error_class is not ErrorClass.network:
        return Outage(error_class.value, None)
    return None  # another network error (a reset, a 5xx, a truncated response): may well be this video's
