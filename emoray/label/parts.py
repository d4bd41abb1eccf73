"""The output prefix as a set of committed parts: planning, assembling and committing them.

Layout: ``labels/part-<hash>.parquet`` and, when the batch had failures,
``errors/part-<hash>.parquet`` of the same name. A batch commits its errors part first and its
labels part last, each written atomically; **a batch is committed when its labels part
exists** (possibly with zero rows). On start, errors parts without their labels part (a run
killed between the two writes) and local temp files are removed, the files named in committed
parts are skipped, and the rest are planned into new batches whose names hash their members.
So a killed run restarted with the same arguments, or a re-run over a grown archive, labels
each file exactly once. Every part records the labeling identity (model id and settings); a run
with another identity refuses the output. Two runs writing to the same output at the same time
are not supported.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

import emoray
from emoray import storage
from emoray.label.schema import ERRORS_SCHEMA, LABELS_SCHEMA
from emoray.label.stage import file_rows

LABELS_DIR, ERRORS_DIR = "labels", "errors"
SETTINGS_KEY = b"emoray.label_settings"


@dataclass(frozen=True)
class Part:
    name: str  # part-<hash>
    uris: tuple[str, ...]
    sizes: tuple[int, ...]


@dataclass
class Done:
    """What the committed parts of an output hold."""

    uris: set[str] = field(default_factory=set)  # files labelled or failed
    settings: dict | None = None  # the labeling identity they were written with


def plan_parts(files: list[storage.FileEntry], files_per_part: int, identity: dict) -> list[Part]:
    """Batches of ``files_per_part`` files (sorted by URI), named by a hash of the labeling
    identity (model, settings) and their members' URIs and sizes."""
    files = sorted(files, key=lambda f: f.uri)
    parts = []
    for i in range(0, len(files), files_per_part):
        chunk = files[i:i + files_per_part]
        h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        for f in chunk:
            h.update(f"{f.uri}\0{f.size}\n".encode())
        parts.append(Part(f"part-{h.hexdigest()[:20]}", tuple(f.uri for f in chunk),
                          tuple(f.size for f in chunk)))
    return parts


def recover(output: str) -> Done:
    """Tidy ``output`` after an interrupted run and read what its committed parts hold."""
    labels = _parts(storage.join(output, LABELS_DIR))
    errors = _parts(storage.join(output, ERRORS_DIR))
    for name, uri in errors.items():
        if name not in labels:  # its batch never committed: it will be redone
            storage.delete_file(uri)
    if not labels:
        return Done()
    fs, path = storage.filesystem(next(iter(labels.values())))
    settings = json.loads(pq.read_schema(path, filesystem=fs).metadata[SETTINGS_KEY])
    uris = _uris(list(labels.values())) | _uris([errors[n] for n in labels if n in errors])
    return Done(uris, settings)


def read_output(output: str) -> tuple[pa.Table, pa.Table]:
    """(labels, errors): the rows of an output's committed parts."""
    labels = _parts(storage.join(output, LABELS_DIR))
    errors = _parts(storage.join(output, ERRORS_DIR))
    return (_read(list(labels.values()), LABELS_SCHEMA),
            _read([errors[n] for n in labels if n in errors], ERRORS_SCHEMA))


def _uris(parts: list[str]) -> set[str]:
    """The ``uri`` column of Parquet ``parts``."""
    return set(_read(parts, ERRORS_SCHEMA, ["uri"]).column("uri").to_pylist())


def _read(parts: list[str], schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    """Parquet ``parts`` as one table (read in parallel)."""
    if not parts:
        return schema.empty_table().select(columns or schema.names)
    fs, _ = storage.filesystem(parts[0])
    paths = [storage.filesystem(p)[1] for p in parts]
    return pads.dataset(paths, filesystem=fs, format="parquet").to_table(columns=columns)


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


class Assembler:
    """Collects predicted item rows (any order, any batching) per file and part, and commits a
    part as soon as all its files are complete."""

    def __init__(self, parts: list[Part], output: str, labels: tuple[str, ...], model_id: str,
                 settings: dict):
        self.output, self.labels, self.model_id, self.settings = output, labels, model_id, settings
        self.pending = {p.name: set(p.uris) for p in parts}
        self.items: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        self.complete: dict[str, set[str]] = defaultdict(set)
        self.committed: list[tuple[str, int, int, int]] = []  # part, files, window rows, errors
        self.files_done = 0  # files complete, committed or not

    def add(self, rows: list[dict]) -> None:
        touched = set()
        for row in rows:
            if row["part"] not in self.pending:
                continue
            self.items[row["part"]][row["uri"]].append(row)
            touched.add((row["part"], row["uri"]))
        for part, uri in touched:
            if uri not in self.complete[part] and _file_complete(self.items[part][uri]):
                self.complete[part].add(uri)
                self.files_done += 1
                if self.complete[part] == self.pending[part]:
                    self._commit(part)

    def _commit(self, part: str) -> None:
        labels, errors = [], []
        for uri in sorted(self.pending.pop(part)):
            rows, errs = file_rows(self.items[part].pop(uri), self.labels)
            labels += rows
            errors += errs
        del self.items[part], self.complete[part]
        write_part(self.output, part, labels, errors, self.model_id, self.settings)
        files = sum(r["window_start_s"] is None for r in labels)
        self.committed.append((part, files, len(labels) - files, len(errors)))


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
    table = pa.Table.from_pylist(rows, schema=schema.with_metadata(meta))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    storage.write_bytes(uri, buf.getvalue())
