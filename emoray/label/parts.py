"""The output prefix as a set of committed parts: planning and committing them.

Layout: ``labels/part-<hash>.parquet`` and, when the batch had failures,
``errors/part-<hash>.parquet`` of the same name, and for a speaker-normalised model
``speakers/part-<hash>.parquet``, all written by the task that commits the batch. A
batch commits its speakers and errors parts first and its labels part last, each written
atomically (a retried batch writes the same files again); **a batch is committed when its
labels part exists** (possibly with zero rows). On start, speakers and errors parts without
their labels part (a run killed between the writes) and local temp files are removed, the
files named in committed parts are skipped, and the rest are planned into new batches whose
names hash their members (``emoray.label.plan``: in waves, in bounded memory). So a killed
run restarted with the same arguments, or a re-run over a grown archive, labels each file
exactly once. Every part records the labeling identity (model id and settings); a run with
another identity refuses the output. Two runs writing to the same output at the same time
are not supported.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

import emoray
from emoray import storage
from emoray.label.schema import ERRORS_SCHEMA, LABELS_SCHEMA, SPEAKERS_SCHEMA
from emoray.label.stage import file_rows

LABELS_DIR, ERRORS_DIR, SPEAKERS_DIR = "labels", "errors", "speakers"
SETTINGS_KEY = b"emoray.label_settings"


@dataclass(frozen=True)
class Part:
    name: str  # part-<hash>
    uris: tuple[str, ...]
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class Done:
    """The committed parts of an output."""

    parts: tuple[str, ...] = ()  # URIs of its labels parts and their errors parts
    settings: dict | None = None  # the labeling identity they were written with


def plan_parts(files: list[storage.FileEntry], files_per_part: int, identity: dict,
               key: Callable[[str], str] | None = None,
               speaker_files: int | None = None) -> list[Part]:
    """Batches of files, each named by a hash of the labeling identity (model, settings) and
    its members' URIs and sizes. Without ``key``: ``files_per_part`` files each, sorted by
    URI. With ``key`` (uri -> speaker) parts hold whole speakers: those with at most
    ``files_per_part`` files packed together (sorted by speaker) up to that many, a larger one
    in parts of its own, split evenly into parts of at most ``speaker_files``."""
    files = sorted(files, key=lambda f: f.uri)
    if key is None:
        chunks = [files[i:i + files_per_part] for i in range(0, len(files), files_per_part)]
    else:
        chunks = _speaker_chunks(files, key, files_per_part, speaker_files or files_per_part)
    parts = []
    for chunk in chunks:
        h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        for f in chunk:
            h.update(f"{f.uri}\0{f.size}\n".encode())
        parts.append(Part(f"part-{h.hexdigest()[:20]}", tuple(f.uri for f in chunk),
                          tuple(f.size for f in chunk)))
    return parts


def _speaker_chunks(files, key, files_per_part: int, speaker_files: int) -> list[list]:
    """``plan_parts``' chunks of whole speakers (``files`` sorted by URI)."""
    groups: dict[str, list] = defaultdict(list)
    for f in files:
        groups[key(f.uri)].append(f)
    chunks, packed = [], []
    for speaker in sorted(groups):
        group = groups[speaker]
        if len(group) > files_per_part:
            n = -(-len(group) // max(files_per_part, speaker_files))
            chunks += [group[i::n] for i in range(n)]  # even, and each spans the speaker
            continue
        if len(packed) + len(group) > files_per_part:
            chunks.append(packed)
            packed = []
        packed += group
    return chunks + ([packed] if packed else [])


def recover(output: str) -> Done:
    """Tidy ``output`` after an interrupted run and read what its committed parts hold."""
    labels = _parts(storage.join(output, LABELS_DIR))
    errors = _parts(storage.join(output, ERRORS_DIR))
    for name, uri in [*errors.items(), *_parts(storage.join(output, SPEAKERS_DIR)).items()]:
        if name not in labels:  # its batch never committed: it will be redone
            storage.delete_file(uri)
    if not labels:
        return Done()
    fs, path = storage.filesystem(next(iter(labels.values())))
    settings = json.loads(pq.read_schema(path, filesystem=fs).metadata[SETTINGS_KEY])
    return Done(tuple(labels.values()) + tuple(errors[n] for n in labels if n in errors),
                settings)


def done_uris(done: Done, parts_at_a_time: int = 64) -> Iterator[str]:
    """The files ``done``'s parts hold (labelled or failed), read a few parts at a time."""
    for i in range(0, len(done.parts), parts_at_a_time):
        yield from _read(list(done.parts[i:i + parts_at_a_time]), ERRORS_SCHEMA,
                         ["uri"], parts_at_a_time).column("uri").to_pylist()


def iter_output(output: str, parts_at_a_time: int = 64) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(labels, errors) of an output's committed parts, ``parts_at_a_time`` parts together."""
    labels = _parts(storage.join(output, LABELS_DIR))
    errors = _parts(storage.join(output, ERRORS_DIR))
    names = sorted(labels)
    for i in range(0, len(names), parts_at_a_time):
        chunk = names[i:i + parts_at_a_time]
        yield (_read([labels[n] for n in chunk], LABELS_SCHEMA),
               _read([errors[n] for n in chunk if n in errors], ERRORS_SCHEMA))


def read_output(output: str) -> tuple[pa.Table, pa.Table]:
    """(labels, errors): the rows of an output's committed parts."""
    labels = _parts(storage.join(output, LABELS_DIR))
    errors = _parts(storage.join(output, ERRORS_DIR))
    return (_read(list(labels.values()), LABELS_SCHEMA),
            _read([errors[n] for n in labels if n in errors], ERRORS_SCHEMA))


def read_speakers(output: str) -> pa.Table:
    """The speaker statistics of an output's committed parts, with their ``part``."""
    labels = _parts(storage.join(output, LABELS_DIR))
    speakers = _parts(storage.join(output, SPEAKERS_DIR))
    tables = [(n, _read([speakers[n]], SPEAKERS_SCHEMA)) for n in sorted(speakers) if n in labels]
    empty = SPEAKERS_SCHEMA.empty_table()
    return pa.concat_tables([t.append_column("part", pa.array([n] * len(t), pa.string()))
                             for n, t in tables + [("", empty)]])


def write_speakers(output: str, name: str, table: pa.Table) -> None:
    """A part's speaker statistics (``SPEAKERS_SCHEMA``), written before it commits."""
    storage.write_parquet(storage.join(output, SPEAKERS_DIR, f"{name}.parquet"), table)


def _read(parts: list[str], schema: pa.Schema, columns: list[str] | None = None,
          at_a_time: int = 64) -> pa.Table:
    """Parquet ``parts`` as one table, read ``at_a_time`` parts together (in parallel; one
    scan of thousands of parts holds far more memory than their rows)."""
    if not parts:
        return schema.empty_table().select(columns or schema.names)
    fs, _ = storage.filesystem(parts[0])
    paths = [storage.filesystem(p)[1] for p in parts]
    return pa.concat_tables(
        pads.dataset(paths[i:i + at_a_time], filesystem=fs, format="parquet")
        .to_table(columns=columns) for i in range(0, len(paths), at_a_time))


def _parts(prefix: str) -> dict[str, str]:
    """name -> URI of the complete parts under ``prefix``; leftover temp files are removed."""
    try:
        files = storage.list_files(prefix)
    except FileNotFoundError:
        return {}
    out = {}
    for f in files:
        base = f.uri.rsplit("/", 1)[-1]
        if base.endswith(".parquet"):
            out[base[:-len(".parquet")]] = f.uri
        elif storage.is_temp(f.uri):
            storage.delete_file(f.uri)
    return out


def commit_part(output: str, name: str, uris: list[str], rows: list[dict],
                labels: tuple[str, ...], model_id: str, settings: dict) -> dict:
    """Commit one batch from its predicted item rows (``schema.PREDICTED_SCHEMA``, any order):
    every file of ``uris`` must be complete. Returns its counts: files labelled, window rows,
    errors."""
    items: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        items[row["uri"]].append(row)
    incomplete = [u for u in uris if not _file_complete(items.get(u, []))]
    if incomplete:
        raise RuntimeError(f"{name}: files without all their rows: {incomplete[:5]}")
    label_rows, errors = [], []
    for uri in sorted(uris):
        got, errs = file_rows(items[uri], labels)
        label_rows += got
        errors += errs
    write_part(output, name, label_rows, errors, model_id, settings)
    files = sum(r["window_start_s"] is None for r in label_rows)
    return {"part": name, "files": files, "windows": len(label_rows) - files,
            "errors": len(errors)}


def _file_complete(items: list[dict]) -> bool:
    ends = [it for it in items if it["kind"] in ("clip", "end", "error")]
    if not ends:
        return False
    if ends[0]["kind"] == "clip":
        return True
    return sum(it["kind"] == "window" for it in items) >= (ends[0]["n_windows"] or 0)


def write_part(output: str, name: str, labels: list[dict], errors: list[dict], model_id: str,
               settings: dict) -> None:
    """Commit one batch: its errors part (if any) first, then its labels part (always)."""
    stamp = {"model_id": model_id, "emoray_version": emoray.__version__,
             "processed_at": datetime.now(timezone.utc)}
    meta = {SETTINGS_KEY: json.dumps(settings, sort_keys=True).encode()}
    if errors:
        rows = sorted(({**e, **stamp} for e in errors), key=lambda e: e["uri"])
        _write(storage.join(output, ERRORS_DIR, f"{name}.parquet"), rows, ERRORS_SCHEMA, meta)
    rows = sorted(({**r, **stamp} for r in labels),  # by file, its file row first
                  key=lambda r: (r["uri"], r["window_start_s"] is not None,
                                 r["window_start_s"] or 0.0))
    _write(storage.join(output, LABELS_DIR, f"{name}.parquet"), rows, LABELS_SCHEMA, meta)


def _write(uri: str, rows: list[dict], schema: pa.Schema, meta: dict) -> None:
    storage.write_parquet(uri, pa.Table.from_pylist(rows, schema=schema.with_metadata(meta)))
