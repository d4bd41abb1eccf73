"""Keep credentials out of messages: error rows and logs pass through ``redact``.

S3 client errors can quote request details (signed URLs, ``Credential=`` scopes), and a URI can
carry a user and password (``s3://key:secret@bucket``); the environment's own AWS secrets are
removed wherever they appear. Used by every stage (preprocessing, labeling, storage).
"""

from __future__ import annotations

import os
import re

_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_PATTERNS = (
    re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s@\"']+(?=@)", re.I),  # user:password of a URI
    re.compile(r"((?:X-Amz-(?:Signature|Credential|Security-Token)|AWSAccessKeyId)=)"
               r"[^&\s\"']+", re.I),
    re.compile(r"((?:Signature|Credential)=)[^,\s\"'&]+", re.I),
    re.compile(r"((?:aws_secret_access_key|aws_session_token|secret_key|access_key)"
               r"[\"']?\s*[=:]\s*[\"']?)[^\s,\"'&]+", re.I),
)


def redact(text: str) -> str:
    """``text`` without the environment's AWS secrets, URI credentials, signatures or credential
    scopes."""
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text
