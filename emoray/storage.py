"""Local folders and ``s3://`` prefixes behind one small interface (pyarrow filesystems).

S3 uses the standard AWS credential chain. An S3-compatible store is reached by setting
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (e.g. ``http://127.0.0.1:8333``). Credentials
never appear in URIs or messages produced here.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

import pyarrow.fs as pafs


@dataclass(frozen=True)
class FileEntry:
    uri: str
    size: int


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


@lru_cache(maxsize=8)
def _s3(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    kwargs = {"region": region or "us-east-1"}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**kwargs)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a local path or an ``s3://bucket/key`` URI."""
    if is_s3(uri):
        fs = _s3(endpoint_url(), os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
        return fs, uri[len("s3://"):].rstrip("/")
    if "://" in uri:
        raise ValueError(f"unsupported URI scheme in {uri!r}: use a local path or s3://")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _uri(template: str, path: str) -> str:
    return f"s3://{path}" if is_s3(template) else path


def join(uri: str, *parts: str) -> str:
    out = uri.rstrip("/")
    for p in parts:
        out = f"{out}/{p.strip('/')}"
    return out


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


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def open_input_file(uri: str):
    """A seekable binary file (pyarrow ``NativeFile``) for streaming reads of large files."""
    fs, path = filesystem(uri)
    return fs.open_input_file(path)


def delete_file(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.delete_file(path)


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
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
