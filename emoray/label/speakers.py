"""Who speaks, and their statistics, for labeling with a speaker-normalised model
(``speaker_norm``) and one with speaker heads (``speaker_head``).

The ``speakers`` setting groups files (``emoray.features.speakers.grouping``: ``auto``, the
RAVDESS actor, else the folder; ``folder``; ``none``, every file alone; or a CSV / Parquet
table of ``uri,speaker``). The job plans parts of whole speakers (``parts.plan_parts``), so
a speaker's statistics come from its clips in the part being labelled, decoded once
(``standardise``): the input's, then with speaker heads the readout's of the input
standardised with them, each blended with the model's population statistics by the
speaker's clip count. A long recording's windows are clips of its speaker (with ``none``,
of the file).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import torch

from emoray import storage
from emoray.features import speakers
from emoray.label.schema import SPEAKERS_SCHEMA
from emoray.models import AudioInput, audio_branch, population


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


@dataclass(frozen=True)
class Standardised:
    """A part's audio as a speaker-normalised model takes it (``standardise``); lists align
    with the clips, None where a clip has no audio."""

    audio: list  # each clip standardised with its speaker's statistics
    readout_stats: list | None  # with speaker heads: its speaker's readout statistics [2, D]
    readouts: list | None  # with speaker heads: its readout [D] (the heads' input)
    clips: list  # how many clips its speaker's statistics came from
    table: pa.Table  # the statistics, one row per speaker (``schema.SPEAKERS_SCHEMA``)


def standardise(model, audio_in: AudioInput, keys: list[str], audio: list,
                batch_size: int = 256) -> Standardised:
    """Each clip of ``audio`` (its network inputs ``audio_in``; None passes through) of a
    speaker-normalised ``model`` standardised with its speaker's statistics (by ``keys``) over
    the clips given, blended with the model's population; with speaker heads, the readouts of
    the standardised clips and each speaker's readout statistics over them, blended likewise."""
    idx = [i for i, x in enumerate(audio) if x is not None]
    sums = speakers.clip_sums([keys[i] for i in idx], [audio[i] for i in idx], audio_in.blocks)
    stats = blended(model, "input", sums, audio_in)
    audio = speakers.normalise_clips(keys, audio, stats, audio_in.blocks)
    n = speakers.clips(sums)
    clips = [None if x is None else n[k] for k, x in zip(keys, audio)]
    net = audio_branch(model)
    readouts, rows, z_rows = {}, None, None
    if net.readout_dim:
        z = np.zeros((0, net.readout_dim), np.float32)
        if idx:
            device = next(net.parameters()).device
            with torch.inference_mode():
                z = np.concatenate([net.readout(torch.from_numpy(np.stack(
                    [audio[i] for i in idx[j:j + batch_size]])).to(device)).float().cpu()
                    .numpy() for j in range(0, len(idx), batch_size)])
            readouts = blended(model, "readout", speakers.clip_sums([keys[i] for i in idx], z))
        rows = [None if x is None else np.asarray(readouts[k], np.float32)
                for k, x in zip(keys, audio)]
        z_rows = [None] * len(audio)
        for i, zi in zip(idx, z):
            z_rows[i] = zi
    table = pa.Table.from_pylist(
        [{"speaker": k, "clips": n[k], "mean": stats[k][0], "std": stats[k][1],
          "readout_mean": readouts[k][0] if k in readouts else None,
          "readout_std": readouts[k][1] if k in readouts else None} for k in sorted(stats)],
        SPEAKERS_SCHEMA)
    return Standardised(audio, rows, z_rows, clips, table)


def blended(model, part: str, sums: speakers.SpeakerSums,
            audio_in: AudioInput | None = None) -> speakers.Stats:
    """``sums`` as statistics blended with ``model``'s ``input`` or ``readout`` population
    by its audio network's ``speaker_prior`` (for the input, at each speaker's recording
    level with ``speaker_level``: ``audio_in`` is the network's input)."""
    cfg = audio_branch(model).cfg
    direction = audio_in.gain_direction if part == "input" and cfg.speaker_level else None
    return speakers.statistics(sums, population(model, part), cfg.speaker_prior, direction)
