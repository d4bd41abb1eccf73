"""Speaker statistics for labeling with a speaker-normalised model (``speaker_norm``).

Each speaker's statistics come from every file of theirs in the input (``speaker_key``: the
RAVDESS actor, else the folder), computed once by a Ray Data pass over those files' audio
features and kept in ``<output>/speakers.json``; a re-run reuses them, so a resumed or repeated
job labels with the same statistics, and only speakers that are new to the output are computed.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pyarrow as pa
import ray.data

from emoray import storage
from emoray.features import speakers
from emoray.label.config import LabelConfig
from emoray.label.parts import Part, plan_parts
from emoray.label.schema import tensors
from emoray.models import AudioInput

SPEAKERS_FILE = "speakers.json"


def speaker_statistics(cfg: LabelConfig, files: list[storage.FileEntry],
                       pending: list[storage.FileEntry],
                       prepare: Callable[[list[Part]], ray.data.Dataset],
                       audio_in: AudioInput) -> dict:
    """speaker -> (mean, std) for every speaker of ``pending``, from all their ``files``;
    ``prepare(parts)`` is the labeling job's audio item rows of those files, and the
    statistics are of ``audio_in`` of each (the audio network's input)."""
    uri = storage.join(cfg.output, SPEAKERS_FILE)
    stats = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    missing = {speakers.speaker_key(f.uri) for f in pending} - set(stats)
    if not missing:
        return stats
    todo = [f for f in files if speakers.speaker_key(f.uri) in missing]
    print(f"emoray label: speaker statistics of {len(missing)} speakers from {len(todo)} files",
          flush=True)
    parts = plan_parts(todo, cfg.files_per_part, {"speaker_statistics": True})
    rows = prepare(parts).map_batches(_item_sums, batch_format="pyarrow",
                                      fn_kwargs={"audio_in": audio_in})
    sums = speakers.from_rows(rows.iter_rows())
    stats.update(speakers.statistics(sums))
    storage.write_bytes(uri, json.dumps(stats).encode())
    return stats


def _item_sums(batch: pa.Table, audio_in: AudioInput) -> dict[str, np.ndarray]:
    audio = tensors(batch, "audio", audio_in.shape, np.float32)
    keep = [i for i, x in enumerate(audio) if x is not None]
    uris = batch.column("uri").to_pylist()
    sums = speakers.clip_sums([speakers.speaker_key(uris[i]) for i in keep],
                              [audio_in(audio[i]) for i in keep], audio_in.blocks)
    return speakers.to_columns(sums, audio_in.width)
