"""Speaker normalisation: standardise each audio coefficient with statistics of its speaker.

A speaker's statistics (per coefficient, the mean and standard deviation over every frame of
every clip of theirs) come from their recordings alone, never from labels, so a speaker the
model never heard is normalised with their own statistics too. Unlike per-utterance
normalisation this keeps what sets one utterance apart from the speaker's usual voice
(louder, higher, brighter), which is much of what emotion changes. A model's input is
normalised: frames for the CNN, each clip's summary vector (one row) for the summary model;
an ensemble's joined input has a part for each member (``blocks``), each with its own
statistics, side by side.

Statistics are kept as mergeable sums (``SpeakerSums``: clips, frames, sum, sum of squares,
float64) so that Ray tasks can compute them over parts of a corpus and the driver can add them up.

A speaker heard a few times has noisy statistics, and one heard once degenerate ones (a clip
summary's standard deviation over one clip is zero). ``statistics`` with a ``population`` (the
training speakers' statistics, which the model carries) and a ``prior`` of k clips blends
them: a speaker of n clips gets weight n / (n + k), the population the rest, so one recording
alone is standardised mostly with the population's statistics and a speaker of many with
their own. Training draws each clip's statistics from a random subset of its speaker's clips
(``draw_subsets``), so the network learns from the statistics it will see.
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


SPEAKER_MODES = ("auto", "folder", "none")
"""How an archive says who speaks (besides a table of ``uri,speaker``): ``auto`` the RAVDESS
actor of the name, else the folder; ``folder`` the folder; ``none`` every file alone."""


def grouping(mode: str, table: dict[str, str] | None = None):
    """``uri -> speaker`` for a ``SPEAKER_MODES`` mode, or for ``table`` (uri -> speaker;
    files it does not list are alone)."""
    if table is not None:
        return lambda uri: table.get(uri, uri)
    if mode == "auto":
        return speaker_key
    if mode == "folder":
        return lambda uri: posixpath.dirname(uri) or "."
    if mode == "none":
        return lambda uri: uri
    raise ValueError(f"speakers: expected one of {SPEAKER_MODES} or a table, got {mode!r}")


SpeakerSums = dict[str, np.ndarray]
"""speaker -> float64 [4, F]: clips, frames, sum and sum of squares of each coefficient."""

Stats = dict[str, tuple[list[float], list[float]]]
"""speaker -> (mean, std) per coefficient, plain lists (JSON- and Ray-friendly)."""


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
    return np.stack([np.ones(x.shape[1]), np.full(x.shape[1], len(x), np.float64), x.sum(0),
                     (x * x).sum(0)])


def each_clip_sums(features, blocks: Blocks = None) -> np.ndarray:
    """Every clip's own sums [N, 4, F] (the rows ``clip_sums`` adds up per speaker)."""
    return np.stack([np.concatenate([_sums(np.asarray(x, np.float64))
                                     for x in split_blocks(clip, blocks)], axis=1)
                     for clip in features])


def merge(*parts: SpeakerSums) -> SpeakerSums:
    out: SpeakerSums = {}
    for part in parts:
        for key, s in part.items():
            out[key] = out[key] + s if key in out else np.asarray(s, np.float64)
    return out


def to_columns(sums: SpeakerSums, n_coeffs: int) -> dict[str, np.ndarray]:
    """``sums`` as a Ray Data batch: ``speaker`` and ``sums`` [speakers, 4, n_coeffs]."""
    return {"speaker": np.array(list(sums), object),
            "sums": np.stack(list(sums.values())) if sums else np.zeros((0, 4, n_coeffs))}


def from_rows(rows) -> SpeakerSums:
    """The merged sums of ``to_columns`` rows (e.g. a dataset's ``iter_rows()``)."""
    return merge(*({r["speaker"]: r["sums"]} for r in rows))


def clips(sums: SpeakerSums) -> dict[str, int]:
    """speaker -> how many clips their sums hold."""
    return {key: int(round(s[0, 0])) if s.shape[1] else 0 for key, s in sums.items()}


def statistics(sums: SpeakerSums, population=None, prior: float = 0.0,
               direction: np.ndarray | None = None) -> Stats:
    """speaker -> (mean, std) per coefficient; with a ``population`` (mean, std) and a
    ``prior`` of k clips, a speaker of n clips is blended with it by weight n / (n + k): the
    mean and variance of the mixture of the two. With a gain ``direction`` (how each column
    moves per dB of recording level, ``emoray.models.AudioInput.gain_direction``) the
    population is first moved to the speaker's level, so a recording's level does not decide
    what its standardised input looks like."""
    return {key: _moments(s, population, prior, direction) for key, s in sums.items()}


def population(sums: SpeakerSums) -> np.ndarray:
    """(mean, std) [2, F] float32 over every clip of every speaker of ``sums``."""
    return np.asarray(_moments(sum(sums.values()), None, 0.0), np.float32)


def _moments(s: np.ndarray, population, prior: float,
             direction: np.ndarray | None = None) -> tuple[list[float], list[float]]:
    n_clips, n, total, squares = s
    mean = total / n
    var = np.maximum(squares / n - mean * mean, 0.0)
    if population is not None and prior > 0:
        w = n_clips / (n_clips + prior)
        p_mean, p_std = (np.asarray(v, np.float64) for v in population)
        if direction is not None:  # the population at the speaker's level
            r = np.asarray(direction, np.float64)
            p_mean = p_mean + r * (r @ (mean - p_mean)) / (r @ r)
        blended = w * mean + (1 - w) * p_mean
        var = (w * (var + (mean - blended) ** 2)
               + (1 - w) * (p_std ** 2 + (p_mean - blended) ** 2))
        mean = blended
    return mean.tolist(), np.sqrt(var).tolist()


def draw_subsets(keys, rng: np.random.Generator, full_share: float = 0.25) -> list[np.ndarray]:
    """For each clip (speaker ``keys``), the indices of a random subset of its speaker's clips
    that holds it: all of them with chance ``full_share``, else a size drawn log-uniformly
    from 1 to all, so alone, few and many are all seen in training."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out = []
    for i, k in enumerate(keys):
        members = np.asarray(groups[k])
        n = len(members)
        size = n if rng.random() < full_share else \
            int(np.clip(np.floor(np.exp(rng.random() * np.log(n + 1))), 1, n))
        others = rng.permutation(members[members != i])[:size - 1]
        out.append(np.concatenate([[i], others]).astype(np.int64))
    return out


def subset_statistics(sums: np.ndarray, subsets, population, prior: float,
                      direction: np.ndarray | None = None) -> np.ndarray:
    """(mean, std) [N, 2, F] float32 of each clip from its subset of clips' ``sums``
    [N, 4, F] (``each_clip_sums``), blended with ``population`` by the subset's size (as
    ``statistics``)."""
    return np.asarray([_moments(sums[idx].sum(0), population, prior, direction)
                       for idx in subsets], np.float32)


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
