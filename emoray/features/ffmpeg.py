"""Opening media with PyAV, and FFmpeg failures as ``MediaError``s that say what is wrong.

Data FFmpeg cannot parse reads 'not a readable audio or video file', followed by FFmpeg's own
detail when it logged one (e.g. 'moov atom not found'). Reasons never carry credentials. An
object store that stopped answering is not the file's fault: its error passes through, so the
job stops (to be re-run) instead of recording the file as bad.
"""

from __future__ import annotations

import contextlib

import av
import av.logging

from emoray import storage
from emoray.errors import MediaError
from emoray.redact import redact


def open_media(src, stage: str, options: dict[str, str]) -> av.container.InputContainer:
    """``av.open(src)`` (a path or a binary file object); failures raise ``MediaError(stage, ...)``
    with FFmpeg's logged detail."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # without it FFmpeg's detailed message is not kept
    try:
        with ffmpeg_errors(stage), av.logging.Capture():  # captured: not printed to stderr
            return av.open(src, options=options)
    finally:
        av.logging.set_level(level)


@contextlib.contextmanager
def ffmpeg_errors(stage: str):
    """FFmpeg and I/O errors inside the block become ``MediaError(stage, reason)``."""
    try:
        yield
    except (av.FFmpegError, OSError, ValueError) as e:
        if storage.is_transient(e):
            raise
        raise MediaError(stage, redact(_reason(e))) from None


def _reason(e: Exception) -> str:
    log = getattr(e, "log", None)
    detail = log[2].strip() if log and log[2] else ""
    if isinstance(e, av.error.InvalidDataError):
        reason = "not a readable audio or video file"
    else:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return f"{reason}: {detail}" if detail and detail not in reason else reason
