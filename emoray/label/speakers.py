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

SPEAKERS_FILE = "speakers.json"


def speaker_statistics(cfg: LabelConfig, files: list[storage.FileEntry],
                       pending: list[storage.FileEntry], shape: tuple[int, int],
                       prepare: Callable[[list[Part]], ray.data.Dataset],
                       model_input: Callable | None = None) -> dict:
    """speaker -> (mean, std) for every speaker of ``pending``, from all their ``files``;
    ``prepare(parts)`` is the labeling job's audio item rows of those files (``shape``), and
    the statistics are of ``model_input`` of each (``emoray.models.audio_input``; None: the
    frames)."""
    uri = storage.join(cfg.output, SPEAKERS_FILE)
    stats = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    missing = {speakers.speaker_key(f.uri) for f in pending} - set(stats)
    if not missing:
        return stats
    todo = [f for f in files if speakers.speaker_key(f.uri) in missing]
    print(f"emoray label: speaker statistics of {len(missing)} speakers from {len(todo)} files",
          flush=True)
    parts = plan_parts(todo, cfg.files_per_part, {"speaker_statistics": True})
    model_input = model_input or (lambda x: x)
    width = model_input(np.zeros(shape, np.float32)).shape[-1]
    rows = prepare(parts).map_batches(_item_sums, batch_format="pyarrow",
                                      fn_kwargs={"shape": shape, "model_input": model_input,
                                                 "width": width})
    sums = speakers.from_rows(rows.iter_rows())
    stats.update(speakers.statistics(sums))
    storage.write_bytes(uri, json.dumps(stats).encode())
    return stats


def _item_sums(batch: pa.Table, shape: tuple[int, int], model_input: Callable,
               width: int) -> dict[str, np.ndarray]:
    audio = tensors(batch, "audio", shape, np.float32)
    keep = [i for i, x in enumerate(audio) if x is not None]
    uris = batch.column("uri").to_pylist()
    sums = speakers.clip_sums([speakers.speaker_key(uris[i]) for i in keep],
                              [model_input(audio[i]) for i in keep])
    return speakers.to_columns(sums, width)
