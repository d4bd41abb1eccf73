"""Who speaks, and their statistics, for labeling with a speaker-normalised model
(``speaker_norm``) and one with speaker heads (``speaker_head``).

The ``speakers`` setting groups files (``emoray.features.speakers.grouping``: ``auto``, the
RAVDESS actor, else the folder; ``folder``; ``none``; or a CSV / Parquet table of
``uri,speaker``). Each group's sums come from every file of theirs in the input, computed
once by a Ray Data pass over those files' audio features and kept in
``<output>/speakers.json``; a model with speaker heads then gets a second pass, its readouts
of the same items standardised with those statistics, kept in
``<output>/speaker_readouts.json``. Both hold each speaker's sums (clips, frames, sum, sum of
squares per column; null for a speaker without audio), and are blended with the model's
population statistics where they are used. A re-run reuses both, so a resumed or repeated job labels with the same statistics, and
only speakers that are new to the output are computed. With ``speakers: none`` every clip is
alone: no pass runs, and the model actors take each clip's statistics from the clip itself.
"""

from __future__ import annotations

import io
import json
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import ray.data
import torch

from emoray import storage
from emoray.artifact import load_model
from emoray.features import speakers
from emoray.label.config import LabelConfig
from emoray.label.parts import Part, plan_parts
from emoray.label.schema import tensors
from emoray.models import AudioInput, audio_branch, population

SPEAKERS_FILE = "speakers.json"
READOUTS_FILE = "speaker_readouts.json"


def load_grouping(setting: str) -> Callable[[str], str]:
    """``uri -> speaker`` for a ``speakers`` setting: a mode, or the URI of a table (``.csv``
    or ``.parquet``) with columns ``uri`` and ``speaker`` (uris as the job lists them: local
    paths absolute or relative to the working directory, or ``s3://``)."""
    if setting in speakers.SPEAKER_MODES:
        return speakers.grouping(setting)
    data = storage.read_bytes(setting)
    table = (pq.read_table(io.BytesIO(data)) if setting.endswith(".parquet")
             else pyarrow.csv.read_csv(io.BytesIO(data)))
    missing = {"uri", "speaker"} - set(table.column_names)
    if missing:
        raise ValueError(f"speakers: {setting} has no column {', '.join(sorted(missing))} "
                         f"(columns: {', '.join(table.column_names)})")
    uris, who = (table.column(c).cast(pa.string()).to_pylist() for c in ("uri", "speaker"))
    return speakers.grouping("table", {storage.absolute(u): str(s) for u, s in zip(uris, who)})


def speaker_sums(cfg: LabelConfig, files: list[storage.FileEntry],
                 pending: list[storage.FileEntry],
                 prepare: Callable[[list[Part]], ray.data.Dataset],
                 audio_in: AudioInput, key: Callable[[str], str]) -> speakers.SpeakerSums:
    """speaker -> sums for every speaker of ``pending``, from all their ``files``;
    ``prepare(parts)`` is the labeling job's audio item rows of those files, and the sums are
    of ``audio_in`` of each (the audio network's input)."""
    return _cached(cfg, SPEAKERS_FILE, files, pending, prepare, "speaker statistics", key,
                   lambda rows: rows.map_batches(_item_sums, batch_format="pyarrow",
                                                 fn_kwargs={"audio_in": audio_in, "key": key}))


def readout_sums(cfg: LabelConfig, files: list[storage.FileEntry],
                 pending: list[storage.FileEntry],
                 prepare: Callable[[list[Part]], ray.data.Dataset],
                 audio_in: AudioInput, key: Callable[[str], str],
                 stats: speakers.Stats) -> speakers.SpeakerSums:
    """speaker -> sums of the ``cfg.model``'s readout (its speaker heads' columns), for
    every speaker of ``pending`` from all their ``files``, the input standardised with
    ``stats`` (blended ``speaker_sums``)."""
    return _cached(cfg, READOUTS_FILE, files, pending, prepare, "readout statistics", key,
                   lambda rows: rows.map_batches(
                       ReadoutSums, batch_format="pyarrow", batch_size=64,
                       compute=ray.data.ActorPoolStrategy(size=1),
                       fn_constructor_args=(cfg.model, audio_in, stats, key)))


def blended(model, part: str, sums: speakers.SpeakerSums,
            audio_in: AudioInput | None = None) -> speakers.Stats:
    """``sums`` as statistics blended with ``model``'s ``input`` or ``readout`` population
    by its audio network's ``speaker_prior`` (for the input, at each speaker's recording
    level with ``speaker_level``: ``audio_in`` is the network's input)."""
    cfg = audio_branch(model).cfg
    direction = audio_in.gain_direction if part == "input" and cfg.speaker_level else None
    return speakers.statistics(sums, population(model, part), cfg.speaker_prior, direction)


def _cached(cfg: LabelConfig, name: str, files, pending, prepare, what: str, key,
            sums_of) -> speakers.SpeakerSums:
    """The sums kept in ``<output>/name``, with those of ``pending``'s speakers not yet there
    computed by ``sums_of(item rows)`` (rows of speaker sums) over all their files. A speaker
    whose files hold no audio is kept as null, so a re-run does not look for it again."""
    uri = storage.join(cfg.output, name)
    kept = json.loads(storage.read_bytes(uri)) if storage.exists(uri) else {}
    missing = {key(f.uri) for f in pending} - set(kept)
    if missing:
        todo = [f for f in files if key(f.uri) in missing]
        print(f"emoray label: {what} of {len(missing)} speakers from {len(todo)} files",
              flush=True)
        parts = plan_parts(todo, cfg.files_per_part, {"speaker_statistics": True})
        new = speakers.from_rows(sums_of(prepare(parts)).iter_rows())
        kept.update({k: new[k].tolist() if k in new else None for k in missing})
        storage.write_bytes(uri, json.dumps(kept).encode())
    return {k: np.asarray(v, np.float64) for k, v in kept.items() if v is not None}


def _clips(batch: pa.Table, audio_in: AudioInput, key) -> tuple[list[str], list[np.ndarray]]:
    """Speakers and network inputs (``audio_in``) of the items with audio."""
    audio = tensors(batch, "audio", audio_in.shape, np.float32)
    keep = [i for i, x in enumerate(audio) if x is not None]
    uris = batch.column("uri").to_pylist()
    return [key(uris[i]) for i in keep], [audio_in(audio[i]) for i in keep]


def _item_sums(batch: pa.Table, audio_in: AudioInput, key) -> dict[str, np.ndarray]:
    keys, clips = _clips(batch, audio_in, key)
    return speakers.to_columns(speakers.clip_sums(keys, clips, audio_in.blocks), audio_in.width)


class ReadoutSums:
    """Ray actor: speaker sums of a model's readouts of audio items, their input standardised
    with their speakers' ``stats``."""

    def __init__(self, model_uri: str, audio_in: AudioInput, stats: speakers.Stats, key):
        torch.set_num_threads(1)
        self.model = audio_branch(load_model(model_uri)[0])
        self.audio_in, self.stats, self.key = audio_in, stats, key

    @torch.no_grad()
    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        keys, clips = _clips(batch, self.audio_in, self.key)
        clips = speakers.normalise_clips(keys, clips, self.stats, self.audio_in.blocks)
        readouts = (self.model.readout(torch.from_numpy(np.stack(clips))).numpy() if clips
                    else np.zeros((0, self.model.readout_dim), np.float32))
        return speakers.to_columns(speakers.clip_sums(keys, readouts), self.model.readout_dim)
