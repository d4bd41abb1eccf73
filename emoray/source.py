"""A file to decode: read and hashed once, held in memory when small, streamed when large.

Memory then stays bounded by ``in_memory_bytes`` (plus what the decoder holds) whatever the size
of the file. Used by preprocessing and labeling alike.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from emoray import storage
from emoray.errors import MediaError
from emoray.redact import redact

IN_MEMORY_BYTES = 64 << 20  # default: files up to this size are read whole
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Source:
    """A file to decode: its identity, and its bytes (small files) or a way to stream them."""

    uri: str
    size: int
    sha256: str
    data: bytes | None = None  # the whole file when it is small; None: stream from storage

    def open(self):
        """A fresh seekable binary file over the content (each decoder gets its own)."""
        return io.BytesIO(self.data) if self.data is not None else storage.open_input_file(self.uri)


def fetch(uri: str, size: int, in_memory_bytes: int = IN_MEMORY_BYTES) -> Source:
    """Hash ``uri``; keep its bytes when it is at most ``in_memory_bytes`` long.

    Raises ``MediaError("read", ...)`` when it cannot be read or is empty; an object store that
    does not answer (``storage.is_transient``) raises its own error, which is not the file's.
    """
    try:
        if size <= in_memory_bytes:
            data = storage.read_bytes(uri)
            digest = hashlib.sha256(data).hexdigest()
        else:
            data, h = None, hashlib.sha256()
            with storage.open_input_file(uri) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            digest = h.hexdigest()
    except OSError as e:
        if storage.is_transient(e):
            raise
        raise MediaError("read", redact(str(e)) or type(e).__name__) from None
    if size == 0 or (data is not None and not data):
        raise MediaError("read", "file is empty")
    return Source(uri, size if data is None else len(data), digest, data)
