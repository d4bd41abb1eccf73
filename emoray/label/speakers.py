"""Speaker statistics for labeling with a speaker-normalised model (``speaker_norm``), and
readout statistics for one with a speaker head (``speaker_head``).

Each speaker's statistics come from every file of theirs in the input (``speaker_key``: the
RAVDESS actor, else the folder), computed once by a Ray Data pass over those files' audio
features and kept in ``<output>/speakers.json``; a model with a speaker head then gets a second
pass, its readouts of the same items standardised with those statistics, kept in
``<output>/speaker_readouts.json``. A re-run reuses both, so a resumed or repeated job labels
with the same statistics, and only speakers that are new to the output are computed.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pyarrow as pa
import ray.data
import torch

from emoray import storage
from emoray.artifact import load_model
from emoray.features import speakers
from emoray.label.config import LabelConfig
from emoray.label.parts import Part, plan_parts
from emoray.label.schema import tensors
from emoray.models import AudioInput, audio_branch

SPEAKERS_FILE = "speakers.json"
READOUTS_FILE = "speaker_readouts.json"


def speaker_statistics(cfg: LabelConfig, files: list[storage.FileEntry],
                       pending: list[storage.FileEntry],
                       prepare: Callable[[list[Part]], ray.data.Dataset],
                       audio_in: AudioInput) -> dict:
    """speaker -> (mean, std) for every speaker of ``pending``, from all their ``files``;
    ``prepare(parts)`` is the labeling job's audio item rows of those files, and the
    statistics are of ``audio_in`` of each (the audio network's input)."""
    return _cached(cfg, SPEAKERS_FILE, files, pending, prepare, "speaker statistics",
                   lambda rows: rows.map_batches(_item_sums, batch_format="pyarrow",
                                                 fn_kwargs={"audio_in": audio_in}))


def readout_statistics(cfg: LabelConfig, files: list[storage.FileEntry],
                       pending: list[storage.FileEntry],
                       prepare: Callable[[list[Part]], ray.data.Dataset],
                       audio_in: AudioInput, stats: dict) -> dict:
    """speaker -> (mean, std) of the ``cfg.model``'s readout (its speaker heads' columns),
    for every speaker of ``pending`` from all their ``files``, the input standardised with
    ``stats`` (``speaker_statistics``)."""
    return _cached(cfg, READOUTS_FILE, files, pending, prepare, "readout statistics",
                   lambda rows: rows.map_batches(
                       ReadoutSums, batch_format="pyarrow", batch_size=64,
                       compute=ray.data.ActorPoolStrategy(size=1),
                       fn_constructor_args=(cfg.model, audio_in, stats)))


def _cached(cfg: LabelConfig, name: str, files, pending, prepare, what: str, sums_of) -> dict:
    """The statistics kept in ``<output>/name``, with those of ``pending``'s speakers not yet
    there computed by ``sums_of(item rows)`` (rows of speaker sums) over all their files."""
    uri = storage.join(cfg.output, name)
    stats = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    missing = {speakers.speaker_key(f.uri) for f in pending} - set(stats)
    if not missing:
        return stats
    todo = [f for f in files if speakers.speaker_key(f.uri) in missing]
    print(f"emoray label: {what} of {len(missing)} speakers from {len(todo)} files", flush=True)
    parts = plan_parts(todo, cfg.files_per_part, {"speaker_statistics": True})
    sums = speakers.from_rows(sums_of(prepare(parts)).iter_rows())
    stats.update(speakers.statistics(sums))
    storage.write_bytes(uri, json.dumps(stats).encode())
    return stats


def _clips(batch: pa.Table, audio_in: AudioInput) -> tuple[list[str], list[np.ndarray]]:
    """Speakers and network inputs (``audio_in``) of the items with audio."""
    audio = tensors(batch, "audio", audio_in.shape, np.float32)
    keep = [i for i, x in enumerate(audio) if x is not None]
    uris = batch.column("uri").to_pylist()
    return [speakers.speaker_key(uris[i]) for i in keep], [audio_in(audio[i]) for i in keep]


def _item_sums(batch: pa.Table, audio_in: AudioInput) -> dict[str, np.ndarray]:
    keys, clips = _clips(batch, audio_in)
    return speakers.to_columns(speakers.clip_sums(keys, clips, audio_in.blocks), audio_in.width)


class ReadoutSums:
    """Ray actor: speaker sums of a model's readouts of audio items, their input standardised
    with their speakers' ``stats``."""

    def __init__(self, model_uri: str, audio_in: AudioInput, stats: dict):
        torch.set_num_threads(1)
        self.model = audio_branch(load_model(model_uri)[0])
        self.audio_in, self.stats = audio_in, stats

    @torch.no_grad()
    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        keys, clips = _clips(batch, self.audio_in)
        clips = speakers.normalise_clips(keys, clips, self.stats, self.audio_in.blocks)
        readouts = (self.model.readout(torch.from_numpy(np.stack(clips))).numpy() if clips
                    else np.zeros((0, self.model.readout_dim), np.float32))
        return speakers.to_columns(speakers.clip_sums(keys, readouts), self.model.readout_dim)
