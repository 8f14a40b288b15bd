"""Keep credentials out of logs and error messages.

Camera URLs carry passwords (``rtsp://admin:secret@10.0.0.7/stream1``). FFmpeg puts the URL it
was given into its error messages, so every text that can reach a log line, ``last_error`` or a
metric label goes through :func:`redact_url` first.
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

__all__ = ["redact_url"]

# scheme://user:password@ — the password may itself contain "@", "/", "#" (people rarely
# URL-encode it, and FFmpeg then splits the URL elsewhere), so it runs to the last "@" before
# whitespace. A URL with no password but an "@" after a ":" loses more than its password: a log
# line short of a host is better than one with a password in it.
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>\S*)@"
)


# Credentials some cameras and stream servers take in the query string instead
# (``...?channel=1&user=admin&password=secret``, ``...m3u8?token=...``): the value of each such
# parameter, up to the next "&", "#" or whitespace.
_SECRET_PARAMS = re.compile(
    r"(?P<key>[?&](?:password|passwd|pwd|pass|token|access_token|auth|authorization|apikey|"
    r"api_key|key|secret|signature|sig)=)(?P<value>[^&#\s]+)",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:pass@`` in ``text`` by ``***``, and the
    value of every credential query parameter (``password=``, ``token=``, ...).

    Args:
        text: a URL, or any message that may contain URLs (an FFmpeg error, a log line).

    Returns:
        ``text`` with each ``user:pass@`` written as ``user:***@`` and each ``password=...``
        as ``password=***``; text without credentials comes back unchanged.

    Example:
        >>> redact_url("rtsp://admin:s3cr@t@10.0.0.7:554/live")
        'rtsp://admin:***@10.0.0.7:554/live'
        >>> redact_url("cannot connect to rtsp://admin:p@ss/w#1@10.0.0.7/live: refused")
        'cannot connect to rtsp://admin:***@10.0.0.7/live: refused'
        >>> redact_url("rtsp://10.0.0.5/cam?channel=1&user=admin&password=Secret1")
        'rtsp://10.0.0.5/cam?channel=1&user=admin&password=***'
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_PARAMS.sub(lambda m: f"{m['key']}***", text)
