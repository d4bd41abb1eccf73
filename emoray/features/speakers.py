"""Speaker normalisation: standardise each audio coefficient with statistics of its speaker.

A speaker's statistics (per coefficient, the mean and standard deviation over every frame of
every clip of theirs) come from their recordings alone, never from labels, so a speaker the
model never heard is normalised with their own statistics too. Unlike per-utterance
normalisation this keeps what sets one utterance apart from the speaker's usual voice
(louder, higher, brighter), which is much of what emotion changes. A model's input is
normalised: frames for the CNN, each clip's summary vector (one row) for the summary model;
an ensemble's joined input has a part for each member (``blocks``), each with its own
statistics, side by side.

Statistics are kept as mergeable sums (``SpeakerSums``: frames, sum, sum of squares, float64)
so that Ray tasks can compute them over parts of a corpus and the driver can add them up.
"""

from __future__ import annotations

import posixpath

import numpy as np

from emoray.ravdess import RavdessNameError, parse_name


def actor_key(actor: int) -> str:
    return f"actor {actor:02d}"


def speaker_key(uri: str) -> str:
    """Who speaks in ``uri``: ``actor NN`` for a RAVDESS name, else the folder that holds it
    (one folder per speaker, the layout of most corpora)."""
    try:
        return actor_key(parse_name(posixpath.basename(uri)).actor)
    except RavdessNameError:
        return posixpath.dirname(uri) or "."


SpeakerSums = dict[str, np.ndarray]
"""speaker -> float64 [3, F]: frames, sum and sum of squares of each coefficient."""


Blocks = tuple[tuple[int, int], ...] | None
"""(rows, width) of each part of a flat clip vector (``emoray.models.AudioInput.blocks``);
None: the clip is one part, its own rows ([T, F] frames, or one [F] vector)."""


def split_blocks(x: np.ndarray, blocks: Blocks) -> list[np.ndarray]:
    """A clip as its parts, each [rows, width]."""
    if blocks is None:
        return [np.atleast_2d(x)]
    ends = np.cumsum([r * w for r, w in blocks])
    return [p.reshape(b) for p, b in zip(np.split(np.ravel(x), ends[:-1]), blocks)]


def clip_sums(keys, features, blocks: Blocks = None) -> SpeakerSums:
    """Sums of the clips ``features`` by their speaker ``keys``; a clip of several
    ``blocks`` has each part's sums side by side."""
    out: SpeakerSums = {}
    for key, clip in zip(keys, features):
        s = np.concatenate([_sums(np.asarray(x, np.float64)) for x in split_blocks(clip, blocks)],
                           axis=1)
        out[key] = out[key] + s if key in out else s
    return out


def _sums(x: np.ndarray) -> np.ndarray:
    return np.stack([np.full(x.shape[1], len(x), np.float64), x.sum(0), (x * x).sum(0)])


def merge(*parts: SpeakerSums) -> SpeakerSums:
    out: SpeakerSums = {}
    for part in parts:
        for key, s in part.items():
            out[key] = out[key] + s if key in out else np.asarray(s, np.float64)
    return out


def to_columns(sums: SpeakerSums, n_coeffs: int) -> dict[str, np.ndarray]:
    """``sums`` as a Ray Data batch: ``speaker`` and ``sums`` [speakers, 3, n_coeffs]."""
    return {"speaker": np.array(list(sums), object),
            "sums": np.stack(list(sums.values())) if sums else np.zeros((0, 3, n_coeffs))}


def from_rows(rows) -> SpeakerSums:
    """The merged sums of ``to_columns`` rows (e.g. a dataset's ``iter_rows()``)."""
    return merge(*({r["speaker"]: r["sums"]} for r in rows))


def statistics(sums: SpeakerSums) -> dict[str, tuple[list[float], list[float]]]:
    """speaker -> (mean, std) per coefficient, plain lists (JSON- and Ray-friendly)."""
    out = {}
    for key, (n, s, ss) in sums.items():
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
        out[key] = (mean.tolist(), std.tolist())
    return out


def normalise(x: np.ndarray, mean, std, blocks: Blocks = None) -> np.ndarray:
    """Features ``x`` [..., F] standardised with a speaker's ``mean`` and ``std``; a clip of
    several ``blocks``, each part with its own columns of them."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if blocks is not None:
        cols = np.cumsum([0] + [w for _, w in blocks])
        return np.concatenate([normalise(p, mean[a:b], std[a:b]).ravel() for p, a, b in
                               zip(split_blocks(x, blocks), cols[:-1], cols[1:])])
    return ((x - mean) / (std + 1e-5)).astype(np.float32)


def stats_rows(keys, stats) -> np.ndarray:
    """Each key's speaker's ``stats`` (``statistics`` output) as rows [N, 2, F] (mean, std),
    float32: the form a speaker head's ``readout_stats`` take."""
    return np.asarray([stats[k] for k in keys], np.float32).reshape(len(keys), 2, -1)


def normalise_clips(keys, features, stats, blocks: Blocks = None) -> list:
    """Each clip of ``features`` (None passes through) standardised with its speaker's
    ``stats`` (``statistics`` output) by ``keys``."""
    return [x if x is None else normalise(x, *stats[k], blocks) for k, x in zip(keys, features)]
