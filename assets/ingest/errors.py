"""Why a video could not be obtained, read from yt-dlp's own message.

Most YouTube reasons are text YouTube sends (the `playabilityStatus` reason/subreason that yt-dlp's youtube
extractor passes on through `raise_no_formats`, `raise_geo_restricted` or the login hint); HTTP and transport
failures are worded by yt-dlp's networking layer ("HTTP Error 429: Too Many Requests", "[Errno 111] Connection
refused", "timed out"). The rules are ordered: a private video's message also says "Sign in", a copyright block may
say "in your country", a members-only or live message may say "not available", so the specific rules come first.
"""
from __future__ import annotations

import re
from enum import Enum


class ErrorClass(str, Enum):
    unavailable = "unavailable"
    private = "private"
    members_only = "members_only"
    age_gated = "age_gated"
    rate_limited = "rate_limited"
    bot_check = "bot_check"
    geo_blocked = "geo_blocked"
    not_found = "not_found"
    network = "network"
    copyright = "copyright"
    live = "live"
    corrupt = "corrupt"
    limit_exceeded = "limit_exceeded"  # our byte/time bound on one download (an endless or oversized source)
    environment = "environment"  # this machine, not the video: disk full, quota, read-only, out of files/memory
    other = "other"


TRANSIENT = frozenset({ErrorClass.rate_limited, ErrorClass.network, ErrorClass.bot_check})
# Not retried within the run (the disk stays full for the next attempt), but never a reason to skip the video later.
LOCAL = frozenset({ErrorClass.environment})


def _rx(*patterns: str) -> re.Pattern:
    return re.compile("|".join(patterns), re.IGNORECASE)


# YouTube's apostrophes are typographic (’) as often as not; match both.
_RULES: tuple[tuple[ErrorClass, re.Pattern], ...] = (
    # OS errors of the local machine, as yt-dlp words a failed write ("unable to write data: [Errno 28] ...")
    (ErrorClass.environment, _rx(r"No space left on device", r"Disk quota exceeded", r"File too large",
                                 r"Read-only file system", r"Too many open files", r"Cannot allocate memory",
                                 r"\[Errno (?:12|23|24|27|28|30|122)\]", r"unable to (?:write|open for writing)")),
    (ErrorClass.private, _rx(r"\bprivate video\b", r"this video is private")),
    (ErrorClass.members_only, _rx(r"members[- ]only", r"available to this channel.s members")),
    (ErrorClass.bot_check, _rx(r"confirm you.re not a bot", r"captcha challenge")),
    (ErrorClass.age_gated, _rx(r"confirm your age", r"age[- ]restricted", r"inappropriate for some users")),
    (ErrorClass.copyright, _rx(r"copyright")),
    (ErrorClass.geo_blocked, _rx(r"not made this video available in your country",
                                 r"not available (?:in your country|from your location)", r"geo[- ]restrict")),
    (ErrorClass.live, _rx(r"live event", r"\bpremieres? in\b", r"live stream recording", r"is not currently live",
                          r"live_status")),
    (ErrorClass.rate_limited, _rx(r"HTTP Error 429", r"Too Many Requests", r"rate[- ]limited")),
    (ErrorClass.not_found, _rx(r"HTTP Error 404", r"HTTP Error 410", r"No such file or directory")),
    (ErrorClass.network, _rx(r"timed out", r"Connection refused", r"Connection reset", r"Connection aborted",
                             r"Name or service not known", r"Temporary failure in name resolution",
                             r"nodename nor servname", r"getaddrinfo failed", r"Network is unreachable",
                             r"No route to host", r"Unable to connect to proxy", r"Remote end closed connection",
                             r"IncompleteRead", r"TransportError", r"HTTP Error 5\d\d", r"\[Errno 10[1-4]\]",
                             r"\[Errno 11[0-3]\]", r"EOF occurred in violation of protocol")),
    (ErrorClass.corrupt, _rx(r"Did not get any data blocks", r"Invalid data found when processing input",
                             r"moov atom not found", r"no video stream", r"could not probe",
                             r"Downloaded \d+ bytes, expected \d+ bytes", r"Conversion failed",
                             r"unable to continue")),
    # our own selector always falls back to any video format, so this means YouTube served none we can use
    (ErrorClass.other, _rx(r"Requested format is not available", r"Only images are available")),
    (ErrorClass.unavailable, _rx(r"video unavailable", r"no longer available", r"has been removed",
                                 r"account associated with this video has been terminated",
                                 r"this video (?:is|isn.t) (?:not )?available", r"does not exist",
                                 r"violating YouTube", r"not available")),
)


def classify_error(message: str | None) -> ErrorClass:
    """The class of a yt-dlp error message (as str(DownloadError), "ERROR: [youtube] <id>: ...")."""
    if not message:
        return ErrorClass.other
    for error_class, pattern in _RULES:
        if pattern.search(message):
            return error_class
    return ErrorClass.other


def is_transient(error_class: ErrorClass) -> bool:
    """Worth retrying after a pause: rate limits, bot checks (both expire) and network trouble."""
    return ErrorClass(error_class) in TRANSIENT


def is_permanent(error_class: ErrorClass) -> bool:
    """A property of the video (private, removed, ...): later runs skip it unless --retry-failed. Transient and
    local (environment) failures are retried by the next run."""
    error_class = ErrorClass(error_class)
    return error_class not in TRANSIENT and error_class not in LOCAL
