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

Local names are listed as bytes, so any name the OS holds can be read. A URI is a ``str`` that
Parquet and JSON can store: a path component that is valid UTF-8 appears as it is; in one that
is not (archives from older Windows or Samba shares), each byte that does not decode is written
``%XX`` (upper-case hex) and each ``%`` as ``%25``, e.g. ``caf\\xe9.wav`` -> ``caf%E9.wav``.
Reading such a URI opens the original file (``os_path``); a valid name that reads literally like
an escaped one (``caf%E9.wav`` on disk) is opened as that literal name when it exists. A symlink
is followed; one that leads nowhere is listed (size 0), and reading it fails with
``dangling symlink -> TARGET``.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote_to_bytes, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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
    """``uri`` with a local path made absolute (Ray workers may run in another directory) and
    its undecodable bytes (a command-line argument) escaped as listing escapes them."""
    return uri if is_s3(uri) else local_uri(os.fsencode(os.path.abspath(uri)))


def local_uri(path: bytes) -> str:
    """The URI of a local path given as bytes: components that are not UTF-8 escaped."""
    return "/".join(_component(c) for c in path.split(b"/"))


def _component(name: bytes) -> str:
    try:
        return name.decode()
    except UnicodeDecodeError:
        return "".join(f"%{ord(ch) - 0xDC00:02X}" if "\udc80" <= ch <= "\udcff"
                       else "%25" if ch == "%" else ch
                       for ch in name.decode(errors="surrogateescape"))


def os_path(path: str) -> str | bytes:
    """The local path (for ``open``, ``os``) of a local URI: bytes where it holds a component
    escaped by ``local_uri`` or undecodable bytes as Python decodes them (``os.fsdecode``)."""
    try:
        encoded = path.encode()
    except UnicodeEncodeError:
        return os.fsencode(path)
    if "%" not in path or os.path.lexists(path):
        return path
    raw = b"/".join(_unescape(c) for c in path.split("/"))
    return path if raw == encoded else raw


def _unescape(name: str) -> bytes:
    """The bytes ``local_uri`` wrote as ``name``; else ``name`` itself, encoded."""
    raw = unquote_to_bytes(name)
    try:
        raw.decode()
    except UnicodeDecodeError:
        if _component(raw) == name:
            return raw
    return name.encode()


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


def list_files(uri: str) -> list[FileEntry]:
    """Every file under ``uri`` (recursive, symlinks followed), sorted by URI; ``uri`` may also
    be a single file. A local symlink that leads nowhere is listed too, with size 0."""
    return sorted(iter_files(uri), key=lambda f: f.uri)


def iter_files(uri: str) -> Iterator[FileEntry]:
    """``list_files`` as a stream, unsorted: a folder at a time, or a page (1000 keys) of an
    S3 listing at a time, so that an archive of millions of files is never held whole."""
    if not is_s3(uri):
        yield from _local_files(uri)
        return
    fs, path = filesystem(uri)
    info = _file_info(fs, path)
    if info.type == pafs.FileType.File:
        yield FileEntry(_uri(uri, path), info.size)
        return
    bucket, _, key = path.partition("/")
    prefix, token = f"{key}/" if key else "", None
    while True:
        page = _s3_page(bucket, prefix, token)
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):  # a folder marker
                yield FileEntry(f"s3://{bucket}/{obj['Key']}", int(obj["Size"]))
        token = page.get("NextContinuationToken")
        if not token:
            return


@_retrying
def _file_info(fs: pafs.FileSystem, path: str) -> pafs.FileInfo:
    return fs.get_file_info(path)


@functools.lru_cache(maxsize=8)
def _boto(endpoint: str | None, region: str | None):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=region or "us-east-1",
                        config=Config(retries={"max_attempts": 3, "mode": "standard"}))


@_retrying
def _s3_page(bucket: str, prefix: str, token: str | None) -> dict:
    """One page of an S3 listing; a store that does not answer raises a transient OSError
    (retried), a bucket that does not exist FileNotFoundError."""
    from botocore.exceptions import BotoCoreError, ClientError

    args = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
    client = _boto(endpoint_url(), os.environ.get("AWS_REGION")
                   or os.environ.get("AWS_DEFAULT_REGION"))
    try:
        return client.list_objects_v2(**args)
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = e.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise FileNotFoundError(f"input s3://{bucket}/{prefix} does not exist") from None
        if status >= 500 or code in ("SlowDown", "Throttling"):
            raise OSError(f"listing s3://{bucket}/{prefix}: HTTP status {status} {code}") from e
        raise OSError(f"listing s3://{bucket}/{prefix}: {code or status}") from e
    except BotoCoreError as e:  # connection refused or reset, timeouts
        raise OSError(f"listing s3://{bucket}/{prefix}: NETWORK_CONNECTION "
                      f"{type(e).__name__}") from e


def _local_path(uri: str) -> str | bytes:
    check_uri(uri)
    return os_path(os.path.abspath(uri))


def _local_files(uri: str) -> Iterator[FileEntry]:
    top = os.fsencode(_local_path(uri))
    if os.path.isfile(top) or (os.path.islink(top) and not os.path.exists(top)):
        return iter([FileEntry(local_uri(top), _size(top))])
    if not os.path.isdir(top):
        raise FileNotFoundError(f"input {uri!r} does not exist")
    return (FileEntry(local_uri(p), size) for p, size in _walk(top, frozenset()))


def _walk(folder: bytes, above: frozenset):
    """(path, size) of the files under ``folder``; a folder link back to a folder ``above``
    (a loop) is not entered."""
    st = os.stat(folder)
    here = above | {(st.st_dev, st.st_ino)}
    if len(here) == len(above):
        return
    with os.scandir(folder) as entries:
        for e in list(entries):
            try:
                is_dir, is_file = e.is_dir(), e.is_file()
            except OSError:  # a symlink loop
                is_dir, is_file = False, True
            if is_dir:
                yield from _walk(e.path, here)
            elif is_file or e.is_symlink():  # a link that leads nowhere: reading says so
                yield e.path, _size(e.path)


def _size(path: bytes) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # a symlink that leads nowhere, or a loop
        return 0


def _local_error(e: OSError, path: str | bytes, uri: str) -> OSError:
    """``e`` naming ``uri`` (not its bytes), or saying where a dangling symlink points."""
    if isinstance(e, FileNotFoundError) and os.path.islink(path):
        target = local_uri(os.fsencode(os.readlink(path)))
        return FileNotFoundError(f"dangling symlink -> {target}")
    return type(e)(e.errno, e.strerror, uri)


@_retrying
def exists(uri: str) -> bool:
    if not is_s3(uri):
        return os.path.isfile(_local_path(uri))
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


@_retrying
def read_bytes(uri: str) -> bytes:
    if not is_s3(uri):
        path = _local_path(uri)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise _local_error(e, path, uri) from None
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


@_retrying
def open_input_file(uri: str):
    """A seekable binary file (a Python file locally, a pyarrow ``NativeFile`` on S3) for
    streaming reads of large files."""
    if not is_s3(uri):
        path = _local_path(uri)
        try:
            return open(path, "rb")
        except OSError as e:
            raise _local_error(e, path, uri) from None
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


def write_parquet(uri: str, table: pa.Table) -> None:
    """``table`` as one zstd-compressed Parquet file, written atomically (``write_bytes``)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    write_bytes(uri, sink.getvalue().to_pybytes())


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
