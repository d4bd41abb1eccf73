"""Planning an archive of any size into parts, in memory that does not grow with it.

The listing (``storage.iter_files``, streamed) and the files that committed parts already
hold (``parts.done_uris``, streamed) are spilled to local files, ``BUCKETS`` of them, by a
hash of who speaks in each file (its URI without a speaker grouping), so that every file of a
speaker, and its record of being done, lands in one bucket. Buckets are then read back a run
at a time, a *wave* of at least ``wave_files`` pending files, and each wave's pending files are
planned into parts (``parts.plan_parts``) and labelled before the next is read. The driver
holds one wave's files, never the archive; an archive of up to ``wave_files`` files is one
wave, planned exactly as if it were held whole.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import pyarrow as pa

from emoray import storage
from emoray.label.parts import Part, plan_parts

BUCKETS = 128
WAVE_FILES = 100_000  # listed files read back at a time
_FLUSH = 1024  # rows a bucket buffers before they are written
_SPILL = pa.schema([("uri", pa.string()), ("size", pa.int64())])  # size -1: done


@dataclass(frozen=True)
class Wave:
    parts: list[Part]  # its pending files, planned
    listed: int  # files of the listing in the wave
    pending: int  # of which not yet in a committed part


class Plan:
    """The parts of ``entries`` (a listing) that are not in ``done`` (URIs of committed
    files), a wave at a time (``waves``). ``key`` (uri -> speaker) keeps each speaker's files
    in one part, as ``plan_parts`` does; without it files are packed in URI order. Creating it
    reads both streams to the end: then ``listed`` and ``done`` (how many listed files are
    already done) are known."""

    def __init__(self, entries: Iterable[storage.FileEntry], done: Iterable[str],
                 files_per_part: int, identity: dict, key: Callable[[str], str] | None = None,
                 speaker_files: int | None = None, wave_files: int = WAVE_FILES):
        self._tmp = tempfile.TemporaryDirectory(prefix="emoray-plan-")
        self._plan = (files_per_part, identity, key, speaker_files)
        self._wave_files = wave_files
        _spill(self._tmp.name, ((e.uri, e.size) for e in entries), ((u, -1) for u in done),
               key or (lambda uri: uri))
        sizes = [_read_bucket(self._tmp.name, b) for b in range(BUCKETS)]
        self._pending = [p for _, p in sizes]
        self.listed = sum(n for n, _ in sizes)
        self.done = self.listed - sum(self._pending)

    def waves(self) -> Iterator[Wave]:
        """Consecutive buckets of at least ``wave_files`` pending files (the last may hold
        fewer), each wave's files planned; the spill files go when the last is given."""
        try:
            wave: list[int] = []
            for b in range(BUCKETS):
                wave.append(b)
                if sum(self._pending[i] for i in wave) < self._wave_files and b < BUCKETS - 1:
                    continue
                listed, pending = 0, []
                for i in wave:
                    n, files = _read_bucket(self._tmp.name, i, entries=True)
                    listed, pending = listed + n, pending + files
                yield Wave(plan_parts(pending, *self._plan), listed, len(pending))
                wave = []
        finally:
            self._tmp.cleanup()


def bucket(name: str) -> int:
    """Which of the ``BUCKETS`` spill files ``name`` goes to."""
    return zlib.crc32(name.encode("utf-8", "surrogateescape")) % BUCKETS


def _spill(tmp: str, listed: Iterable[tuple[str, int]], done: Iterable[tuple[str, int]],
           group: Callable[[str], str]) -> None:
    """Write the rows to their buckets' files."""
    buffers: list[list[tuple[str, int]]] = [[] for _ in range(BUCKETS)]
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def flush(b: int) -> None:
        uris, sizes = zip(*buffers[b])
        if b not in writers:
            writers[b] = pa.ipc.new_stream(_path(tmp, b), _SPILL)
        writers[b].write_batch(pa.record_batch([pa.array(uris, pa.string()),
                                                pa.array(sizes, pa.int64())], schema=_SPILL))
        buffers[b].clear()

    try:
        for rows in (done, listed):
            for uri, size in rows:
                b = bucket(group(uri))
                buffers[b].append((uri, size))
                if len(buffers[b]) >= _FLUSH:
                    flush(b)
        for b in range(BUCKETS):
            if buffers[b]:
                flush(b)
    finally:
        for w in writers.values():
            w.close()


def _path(tmp: str, b: int) -> str:
    return os.path.join(tmp, f"bucket-{b:03d}.arrow")


def _read_bucket(tmp: str, b: int, entries: bool = False):
    """(files listed, pending files: their count, or with ``entries`` the ``FileEntry``
    list) of bucket ``b``."""
    if not os.path.exists(_path(tmp, b)):
        return 0, [] if entries else 0
    with pa.ipc.open_stream(_path(tmp, b)) as reader:
        table = reader.read_all()
    uris, sizes = table.column("uri").to_pylist(), table.column("size").to_pylist()
    done = {u for u, s in zip(uris, sizes) if s < 0}
    listing = [(u, s) for u, s in zip(uris, sizes) if s >= 0]
    pending = [(u, s) for u, s in listing if u not in done]
    return len(listing), [storage.FileEntry(u, s) for u, s in pending] if entries else len(pending)
