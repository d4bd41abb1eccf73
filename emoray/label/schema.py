"""The labels and errors tables (the public contract) and the internal item rows between stages.

Labels, one Parquet part per batch of files under ``labels/``: one row per file (window columns
null) and, for recordings longer than ``clip_max_s``, one row per window too.

| column | type | meaning |
| --- | --- | --- |
| uri | string | source file (a local name that is not UTF-8: undecodable bytes as ``%XX``, ``storage``) |
| sha256 | string | SHA-256 of its content |
| size_bytes | int64 | its size |
| duration_s | float32 | its duration (container) |
| window_start_s, window_end_s | float32, null | the window; null on the file row |
| modality | string | fusion, audio or video: what the label was computed from (file row of windows that differ: mixed) |
| has_audio | bool | audible audio (silence does not count) |
| has_video | bool | moving pictures |
| face_detected | bool, null | a face was found (false: centre crop); null when the video was not examined |
| speaker | string | who speaks, as the job's ``speakers`` setting groups files (``auto``: the RAVDESS actor, else the folder; ``folder``; ``none``: the file itself; or a ``uri,speaker`` table) |
| speaker_clips | int32, null | how many clips the speaker statistics of its label came from (null: the model uses none) |
| label | string | the most probable emotion |
| p_neutral ... p_surprised | float32 | class probabilities (file row of windows: their mean) |
| model_id | string | first 16 hex digits of the model artifact's SHA-256 |
| emoray_version | string | emoray that labelled it |
| processed_at | timestamp[us, UTC] | when its part was committed |

Speaker statistics, ``speakers/`` parts of the same names (speaker-normalised models only):
one row per speaker of the part, the statistics its labels were computed with.

| column | type | meaning |
| --- | --- | --- |
| speaker | string | as in the labels |
| clips | int32 | clips (files, or a long recording's windows) the statistics came from |
| mean, std | list<float32> | the audio network's input statistics, blended with the model's population |
| readout_mean, readout_std | list<float32>, null | the speaker heads' readout statistics likewise (null: no head) |

Errors, ``errors/`` parts of the same names: ``uri``, ``stage`` (read, probe, decode, audio,
video, route, label), ``reason``, ``size_bytes``, ``model_id``, ``emoray_version``,
``processed_at``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from emoray.ravdess import EMOTIONS

PROB_COLUMNS = tuple(f"p_{e}" for e in EMOTIONS)

_IDENTITY = [
    ("uri", pa.string()), ("sha256", pa.string()), ("size_bytes", pa.int64()),
    ("duration_s", pa.float32()),
]
_WHAT = [
    ("window_start_s", pa.float32()), ("window_end_s", pa.float32()),
    ("modality", pa.string()), ("has_audio", pa.bool_()), ("has_video", pa.bool_()),
    ("face_detected", pa.bool_()),
]
_SPEAKER = [("speaker", pa.string()), ("speaker_clips", pa.int32())]
_STAMP = [
    ("model_id", pa.string()), ("emoray_version", pa.string()),
    ("processed_at", pa.timestamp("us", tz="UTC")),
]

LABELS_SCHEMA = pa.schema(_IDENTITY + _WHAT + _SPEAKER + [("label", pa.string())]
                          + [(c, pa.float32()) for c in PROB_COLUMNS] + _STAMP)

ERRORS_SCHEMA = pa.schema([("uri", pa.string()), ("stage", pa.string()),
                           ("reason", pa.string()), ("size_bytes", pa.int64())] + _STAMP)

_VECTOR = pa.list_(pa.float32())
SPEAKERS_SCHEMA = pa.schema([("speaker", pa.string()), ("clips", pa.int32()),
                             ("mean", _VECTOR), ("std", _VECTOR),
                             ("readout_mean", _VECTOR), ("readout_std", _VECTOR)])

ITEMS_SCHEMA = pa.schema([("part", pa.string()), ("kind", pa.string())] + _IDENTITY + _WHAT
                         + [("n_windows", pa.int32()), ("stage", pa.string()),
                            ("reason", pa.string()), ("audio", pa.binary()),
                            ("video", pa.binary())])
"""Stage rows (internal). ``kind``: clip (a whole short file), window, end (a long file's last
row, ``n_windows``), error (``stage``, ``reason``; ends the file). Tensors travel as raw bytes
(empty when unused) whose shapes the feature config gives."""

PREDICTED_SCHEMA = pa.schema(
    [f for f in ITEMS_SCHEMA if f.name not in ("audio", "video")] + _SPEAKER
    + [("probs", pa.list_(pa.float32(), len(EMOTIONS)))])
"""Item rows after the model: tensors dropped, the speaker and class probabilities added
(null when none)."""


def item_row(item: dict) -> dict:
    """An item with its tensors as raw bytes."""
    row = {name: item.get(name) for name in ITEMS_SCHEMA.names}
    for name in ("audio", "video"):
        row[name] = b"" if row[name] is None else np.ascontiguousarray(row[name]).tobytes()
    return row


def to_ipc(table: pa.Table) -> bytes:
    """A table as Arrow IPC stream bytes (a part's item rows travel as one value)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def tensors(table: pa.Table, name: str, shape: tuple[int, ...], dtype) -> list[np.ndarray | None]:
    """The ``audio`` or ``video`` column as arrays (None where empty)."""
    return [np.frombuffer(b, dtype).reshape(shape) if b else None
            for b in table.column(name).to_pylist()]


def predicted_table(items: pa.Table, probs: np.ndarray, speaker: list[str],
                    speaker_clips: list[int | None]) -> pa.Table:
    """``items`` without tensors, with each row's ``speaker``, ``speaker_clips`` and
    ``probs`` (rows of NaN become nulls)."""
    rows = [None if np.isnan(p).any() else p.tolist() for p in probs]
    out = items.drop_columns(["audio", "video"])
    for name, values in (("speaker", speaker), ("speaker_clips", speaker_clips),
                         ("probs", rows)):
        out = out.append_column(PREDICTED_SCHEMA.field(name),
                                pa.array(values, PREDICTED_SCHEMA.field(name).type))
    return out
