"""Local folders and ``s3://`` prefixes behind one small interface (pyarrow filesystems).

S3 uses the standard AWS credential chain. An S3-compatible store is reached by setting
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:8333``). Credentials
never appear in URIs or messages produced here: a URI carrying them is refused.

Retries: the AWS SDK retries each S3 request 3 times within about 2 s; on top, every operation
here retries an object store that does not answer (network errors, 5xx, throttling) with
exponential backoff (0.5 s doubling, at most 8 s apart) for ``$EMORAY_S3_RETRY_S`` seconds
(default 120), so an outage of a minute is ridden out, saying so on stderr at each retry
(``emoray: object store not answering ...``). After that the error is raised, and
``is_transient`` recognises it: jobs stop on it (to be re-run) rather than record a good file
as bad.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from emoray.redact import redact

RETRY_S = 120.0  # default of $EMORAY_S3_RETRY_S
_TEMP = ".tmp-"  # a local write's temp file: <path>.tmp-<8 hex digits>
_BACKOFF_S = (0.5, 8.0)  # first and longest wait between tries
_TRANSIENT = re.compile(r"NETWORK_CONNECTION|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|SLOW_DOWN|"
                        r"THROTTLING|REQUEST_TIMEOUT|curlCode|HTTP status 5\d\d")


@dataclass(frozen=True)
class FileEntry:
    uri: str
    size: int


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def absolute(uri: str) -> str:
    """``uri`` with a local path made absolute (Ray workers may run in another directory)."""
    return uri if is_s3(uri) else os.path.abspath(uri)


def check_uri(uri: str) -> None:
    """Raise ``ValueError`` for what is not a usable location: another scheme, an ``s3://`` URI
    without a bucket, credentials inside the URI (never echoed), ``..`` in an S3 key."""
    if not uri:
        raise ValueError("empty location")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return
    shown = redact(uri)
    if scheme != "s3":
        raise ValueError(f"{shown!r}: scheme {scheme + '://'!r} is not supported; use a local "
                         "path or s3://bucket/prefix")
    bucket = rest.split("/", 1)[0]
    if "@" in rest and re.search(r"[:@]", bucket):
        raise ValueError(f"{shown!r}: credentials do not belong in a URI; use the AWS "
                         "credential chain (environment, config files, instance profile)")
    if not bucket:
        raise ValueError(f"{shown!r}: no bucket; expected s3://bucket/prefix")
    if ".." in rest.split("/"):
        raise ValueError(f"{shown!r}: '..' is not allowed in an S3 key")


def is_transient(e: BaseException) -> bool:
    """Whether ``e`` is the object store not answering (network, 5xx, throttling) after its
    retries: a fault of the store, not of the file being read."""
    return isinstance(e, OSError) and bool(_TRANSIENT.search(str(e)))


def _retrying(op):
    """Retry ``op`` while the object store does not answer (``is_transient``), with backoff, for
    up to ``$EMORAY_S3_RETRY_S`` seconds; then raise its last error."""
    @functools.wraps(op)
    def run(*args, **kwargs):
        delay = _BACKOFF_S[0]
        deadline = time.monotonic() + float(os.environ.get("EMORAY_S3_RETRY_S", RETRY_S))
        while True:
            try:
                return op(*args, **kwargs)
            except OSError as e:
                if not is_transient(e) or time.monotonic() + delay > deadline:
                    raise
                print(f"emoray: object store not answering ({redact(str(e))}); retrying "
                      f"{op.__name__} in {delay:g} s", file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(2 * delay, _BACKOFF_S[1])
    return run


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


@functools.lru_cache(maxsize=8)
def _s3(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    kwargs = {"region": region or "us-east-1"}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**kwargs)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a local path or an ``s3://bucket/key`` URI."""
    check_uri(uri)
    if is_s3(uri):
        fs = _s3(endpoint_url(), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
        return fs, uri[len("s3://"):].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _uri(template: str, path: str) -> str:
    return f"s3://{path}" if is_s3(template) else path


def join(uri: str, *parts: str) -> str:
    """``uri/part/...``; a part that would climb out of ``uri`` (``..``) raises ``ValueError``."""
    out = uri.rstrip("/")
    for p in parts:
        if ".." in p.split("/"):
            raise ValueError(f"{p!r}: '..' would leave {uri}")
        out = f"{out}/{p.strip('/')}"
    return out


@_retrying
def list_files(uri: str) -> list[FileEntry]:
    """Every file under ``uri`` (recursive), sorted by URI; ``uri`` may also be a single file."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [FileEntry(_uri(uri, path), info.size)]
    if info.type == pafs.FileType.NotFound and not is_s3(uri):
        raise FileNotFoundError(f"input {uri!r} does not exist")
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    files = [FileEntry(_uri(uri, i.path), i.size) for i in infos if i.type == pafs.FileType.File]
    return sorted(files, key=lambda f: f.uri)


@_retrying
def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


@_retrying
def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


@_retrying
def open_input_file(uri: str):
    """A seekable binary file (pyarrow ``NativeFile``) for streaming reads of large files."""
    fs, path = filesystem(uri)
    return fs.open_input_file(path)


@_retrying
def delete_file(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.delete_file(path)


@_retrying
def write_bytes(uri: str, data: bytes) -> None:
    """Write atomically: readers see the old state or the whole new file, never a part.

    Locally a temp file is renamed into place; an S3 object becomes visible only when its
    upload completes.
    """
    fs, path = filesystem(uri)
    if is_s3(uri):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}{_TEMP}{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def is_temp(uri: str) -> bool:
    """Whether ``uri`` is a temp file of ``write_bytes`` (left behind if it was killed)."""
    return re.search(re.escape(_TEMP) + r"[0-9a-f]{8}$", uri) is not None


def remove_temp_files(uri: str) -> int:
    """Delete the temp files that killed writes left anywhere under the local folder ``uri``
    (S3 writes leave none); returns how many there were."""
    if is_s3(uri) or not os.path.isdir(uri):
        return 0
    temps = [f.uri for f in list_files(uri) if is_temp(f.uri)]
    for t in temps:
        delete_file(t)
    return len(temps)
