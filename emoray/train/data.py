"""Ray Data inputs for a training stage: shard rows filtered to a split's trials.

Workers stream their part of ``train`` with ``get_dataset_shard``; ``val`` and ``test`` are
read whole by rank 0. Fusion trains on branch embeddings computed once by a Ray Data pass.
Audio rows become what the audio network takes (``model_input_rows``,
``emoray.models.AudioInput``): a summary model gets each clip's summary in place of its frames,
an ensemble its members' inputs joined, and a model with ``speaker_norm`` its rows
standardised per actor (``speaker_stats``, ``audio_rows``: each actor's statistics from their
own clips, labels unused, blended with the training population by the model's
``speaker_prior``; with ``speaker_subsets`` each training clip's from a random subset).
A model with a speaker head gets two more passes once trained (``speaker_head_rows``): its
readouts of every clip, then its predictions with the fitted head. With ``channel_copies``
each training actor is heard again through recording channels drawn at random
(``with_channels``), each copy a speaker of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import ray.data
import torch
from ray.data.expressions import col

from emoray import manifest, storage
from emoray.artifact import load_model
from emoray.features import channels, speakers
from emoray.features.config import AudioFeatureConfig
from emoray.models import AudioInput, population
from emoray.train.splits import Split


def read_shards(data: str, columns: list[str]) -> ray.data.Dataset:
    """The listed columns of every shard of preprocessing output ``data``."""
    uris = manifest.shard_uris(data)
    fs, _ = storage.filesystem(uris[0])
    return ray.data.read_parquet([storage.filesystem(u)[1] for u in uris], filesystem=fs,
                                 columns=columns)


COPY_ACTOR = 1000
"""Copy k of actor a is actor ``a + k * COPY_ACTOR``; its trials are ``<trial>~ch<k>``."""


def with_channels(split: Split, copies: int) -> Split:
    """``split`` whose training trials include those of each channel copy (``channel_rows``)."""
    if not copies:
        return split
    extra = tuple(f"{t}~ch{k}" for k in range(1, copies + 1) for t in split.train)
    return dataclasses.replace(split, train=split.train + extra)


def _channel_rows(batch: dict[str, np.ndarray], train: frozenset, copies: int,
                  features: AudioFeatureConfig, seed: int) -> dict[str, np.ndarray]:
    out = {k: list(v) for k, v in batch.items()}
    drawn = {}
    for i, (trial, actor) in enumerate(zip(batch["trial_id"], batch["actor"])):
        if trial not in train:
            continue
        for k in range(1, copies + 1):
            if (actor, k) not in drawn:  # one channel per copy of an actor
                rng = np.random.default_rng([seed, int(actor), k])
                drawn[actor, k] = channels.random_channel(rng)
            for name, v in batch.items():
                out[name].append(v[i])
            out["trial_id"][-1] = f"{trial}~ch{k}"
            out["actor"][-1] = int(actor) + k * COPY_ACTOR
            out["audio"][-1] = channels.apply(batch["audio"][i], drawn[actor, k], features)
    return {**{k: np.asarray(v, object if k == "trial_id" else batch[k].dtype)
               for k, v in out.items() if k not in ("actor", "audio")},
            "actor": np.asarray(out["actor"], np.int64), "audio": np.stack(out["audio"])}


def channel_rows(ds: ray.data.Dataset, split: Split, copies: int,
                 features: AudioFeatureConfig, seed: int) -> ray.data.Dataset:
    """Audio rows (with ``actor``) and, for ``copies``, each of the ``split``'s training rows
    again through the copy's channel of its actor (drawn from ``seed``, the actor and the
    copy)."""
    if not copies:
        return ds
    return ds.map_batches(_channel_rows, batch_format="numpy", fn_kwargs={
        "train": frozenset(split.train), "copies": copies, "features": features,
        "seed": seed})


def split_datasets(ds: ray.data.Dataset, split: Split, inputs: list[str], cache: bool,
                   seed: int) -> dict[str, ray.data.Dataset]:
    """``train`` / ``val`` / ``test`` views of ``ds`` (``val`` only when the split has one);
    test rows keep their ``trial_id``.

    Training rows are shuffled across blocks (``seed``) before they are cached: shards hold
    runs of one emotion (trial ids sort by emotion), and the workers split the blocks between
    them, so unshuffled blocks would give each worker a few emotions, and its BatchNorm layers
    statistics of those alone. Each epoch then reads the blocks in a new order, through a
    local shuffle buffer.
    """
    out = {}
    for name in ("train", "val", "test"):
        ids = getattr(split, name)
        if not ids:
            continue
        keep = inputs + ["label"] + (["trial_id"] if name == "test" else [])
        part = ds.filter(expr=col("trial_id").is_in(list(ids))).select_columns(keep)
        part = part.random_shuffle(seed=seed) if name == "train" else part
        part = part.materialize() if cache else part
        out[name] = part.randomize_block_order() if name == "train" else part
    return out


@dataclass(frozen=True)
class SpeakerStats:
    """How a split's audio rows are standardised (``speaker_stats``): each actor with their
    statistics (blended with the training ``population`` by the model's ``speaker_prior``),
    and with ``speaker_subsets`` each training clip with those of its own random ``subsets``
    of its actor's clips (``clips``: trial -> (mean, std) [2, W])."""

    actors: speakers.Stats
    population: np.ndarray | None = None
    clips: dict[str, np.ndarray] = field(default_factory=dict)
    subsets: dict[str, list[str]] = field(default_factory=dict)

    def of(self, trial: str, actor) -> tuple:
        """(mean, std) a row is standardised with: its own subset's, else its actor's."""
        return self.clips[trial] if trial in self.clips else self.actors[speakers.actor_key(actor)]


def _each_sums(batch: dict[str, np.ndarray], audio_in: AudioInput) -> dict[str, np.ndarray]:
    return {"trial_id": batch["trial_id"], "actor": batch["actor"],
            "sums": speakers.each_clip_sums(batch["audio"], audio_in.blocks)}


def speaker_stats(ds: ray.data.Dataset, audio_in: AudioInput, train, prior: float = 0.0,
                  subsets: bool = False, seed: int = 0, population: np.ndarray | None = None,
                  level: bool = False) -> SpeakerStats:
    """``SpeakerStats`` of rows with audio (``audio_in`` of each clip), ``actor`` and
    ``trial_id``, from one distributed pass of per-clip sums; the population is that of the
    ``train`` trials unless given (a trained model's), moved to each speaker's recording
    level with ``level``."""
    rows = ds.map_batches(_each_sums, batch_format="numpy",
                          fn_kwargs={"audio_in": audio_in}).to_pandas()
    sums = np.stack(rows["sums"].to_numpy()) if len(rows) else np.zeros((0, 4, audio_in.width))
    keys = [speakers.actor_key(a) for a in rows["actor"]]
    trials = [str(t) for t in rows["trial_id"]]
    is_train = np.isin(trials, list(train))
    if population is None and prior:
        population = speakers.population({"train": sums[is_train].sum(0)})
    per_actor = speakers.merge(*({k: s} for k, s in zip(keys, sums)))
    direction = audio_in.gain_direction if level else None
    out = SpeakerStats(speakers.statistics(per_actor, population, prior, direction), population)
    if subsets:
        idx = np.flatnonzero(is_train)
        drawn = speakers.draw_subsets([keys[i] for i in idx], np.random.default_rng(seed))
        clip_stats = speakers.subset_statistics(sums[idx], drawn, population, prior, direction)
        for i, members, st in zip(idx, drawn, clip_stats):
            out.clips[trials[i]] = st
            out.subsets[trials[i]] = [trials[idx[j]] for j in members]
    return out


def _normalise_rows(batch: dict[str, np.ndarray], stats: SpeakerStats,
                    blocks) -> dict[str, np.ndarray]:
    audio = [speakers.normalise(x, *stats.of(str(t), a), blocks)
             for x, t, a in zip(batch["audio"], batch["trial_id"], batch["actor"])]
    return {**batch, "audio": np.stack(audio)}


def _model_input_rows(batch: dict[str, np.ndarray],
                      audio_in: AudioInput) -> dict[str, np.ndarray]:
    return {**batch, "audio": np.stack([audio_in(x) for x in batch["audio"]])}


def model_input_rows(ds: ray.data.Dataset, audio_in: AudioInput) -> ray.data.Dataset:
    """Rows whose audio is ``audio_in`` of each clip (what the network takes, before any
    speaker statistics)."""
    if audio_in.identity:
        return ds
    return ds.map_batches(_model_input_rows, batch_format="numpy",
                          fn_kwargs={"audio_in": audio_in})


def audio_rows(ds: ray.data.Dataset, audio_in: AudioInput,
               stats: SpeakerStats | None) -> ray.data.Dataset:
    """Rows of ``model_input_rows`` standardised as ``stats`` says (None: as they are)."""
    if stats is None:
        return ds
    return ds.map_batches(_normalise_rows, batch_format="numpy",
                          fn_kwargs={"stats": stats, "blocks": audio_in.blocks})


def audio_shard_rows(data: str, split: Split, copies: int, features: AudioFeatureConfig,
                     seed: int) -> ray.data.Dataset:
    """trial_id, label, actor and audio of every audio row, with ``copies`` channel copies
    of the training rows (``channel_rows``; ``split`` as ``with_channels`` gives it or not)."""
    ds = read_shards(data, ["trial_id", "label", "actor", "has_audio", "audio"])
    ds = ds.filter(expr=col("has_audio")).select_columns(["trial_id", "label", "actor", "audio"])
    return channel_rows(ds, split, copies, features, seed)


def branch_datasets(data: str, kind: str, split: Split, cache: bool, seed: int,
                    audio_in: AudioInput | None = None, net=None, copies: int = 0,
                    features: AudioFeatureConfig | None = None
                    ) -> tuple[dict, SpeakerStats | None]:
    """Rows that have the ``kind`` (audio or video) modality, and for a speaker-normalised
    audio network (``net``: its ``AudioNetConfig``) the ``SpeakerStats`` they are
    standardised with (``speaker_stats`` with the network's prior, subsets and level).
    Audio trains on ``copies`` channel copies of each training actor too (``split``: as
    ``with_channels`` gives it)."""
    stats = None
    if kind == "audio":
        ds = model_input_rows(audio_shard_rows(data, split, copies, features, seed), audio_in)
        if audio_in.speaker_norm:
            stats = speaker_stats(ds, audio_in, split.train, net.speaker_prior,
                                  net.speaker_subsets, seed, level=net.speaker_level)
            ds = audio_rows(ds, audio_in, stats)
    else:
        ds = read_shards(data, ["trial_id", "label", f"has_{kind}", kind])
        ds = ds.filter(expr=col(f"has_{kind}"))
    return split_datasets(ds, split, [kind], cache, seed), stats


class Embedder:
    """Ray Data UDF: frozen branch embeddings of shard rows."""

    def __init__(self, audio_uri: str, video_uri: str, features, use_gpu: bool):
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.audio, _ = load_model(audio_uri, expect_features=features, device=self.device)
        self.video, _ = load_model(video_uri, expect_features=features, device=self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio = torch.as_tensor(batch["audio"]).to(self.device)
        video = torch.as_tensor(batch["video"]).to(self.device)
        return {"trial_id": batch["trial_id"], "label": batch["label"],
                "audio_emb": self.audio.embed(audio).cpu().numpy(),
                "video_emb": self.video.embed(video).cpu().numpy()}


def fusion_datasets(data: str, split: Split, audio_uri: str, video_uri: str, features,
                    use_gpu: bool, seed: int, audio_in: AudioInput) -> dict:
    """Embeddings of the rows that have both modalities, computed once and cached; the audio
    branch takes ``audio_in``."""
    ds = read_shards(data, ["trial_id", "label", "has_audio", "has_video", "audio", "video"]
                     + (["actor"] if audio_in.speaker_norm else []))
    # an actor's statistics come from all their audio clips, as the audio branch's did, with
    # the audio model's own population and prior
    ds = model_input_rows(ds.filter(expr=col("has_audio")), audio_in)
    if audio_in.speaker_norm:
        audio = load_model(audio_uri)[0]
        ds = audio_rows(ds, audio_in, speaker_stats(
            ds, audio_in, split.train, audio.cfg.speaker_prior,
            population=population(audio, "input"), level=audio.cfg.speaker_level))
    ds = ds.filter(expr=col("has_video"))
    emb = ds.map_batches(Embedder, fn_constructor_args=(audio_uri, video_uri, features, use_gpu),
                         batch_size=32, compute=ray.data.ActorPoolStrategy(size=1),
                         num_cpus=1, num_gpus=1 if use_gpu else 0).materialize()
    return split_datasets(emb, split, ["audio_emb", "video_emb"], True, seed)


class SpeakerHeadUDF:
    """Ray Data UDF: a trained audio model's readouts of audio rows (``model.readout``), or,
    given ``readouts`` (``SpeakerStats`` of the readouts) and each actor's ``clips`` (how
    many their statistics came from), its predictions with its speaker head."""

    def __init__(self, model, use_gpu: bool, readouts: SpeakerStats | None = None,
                 clips: dict[str, int] | None = None):
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.model = model.to(self.device).eval()
        self.readouts = readouts
        self.clips = clips

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio = torch.from_numpy(np.array(batch["audio"], np.float32)).to(self.device)
        out = {"trial_id": batch["trial_id"], "actor": batch["actor"], "label": batch["label"]}
        if self.readouts is None:
            return {**out, "readout": self.model.readout(audio).cpu().numpy()}
        keys = [speakers.actor_key(a) for a in batch["actor"]]
        stats = torch.as_tensor(speakers.stats_rows(keys, self.readouts.actors)).to(self.device)
        clips = torch.tensor([self.clips[k] for k in keys], device=self.device)
        return {**out, "y_pred": self.model(audio, stats, clips=clips).argmax(1).cpu().numpy()}


def speaker_head_rows(rows: ray.data.Dataset, audio_in: AudioInput, model, use_gpu: bool,
                      stats: SpeakerStats, readouts: SpeakerStats | None = None,
                      trials=None, clips: dict[str, int] | None = None) -> ray.data.Dataset:
    """Audio ``rows`` (``audio_shard_rows``; or only those of ``trials``), standardised as
    ``stats`` says, as ``SpeakerHeadUDF`` gives them: trial_id, actor, label and
    ``readout``, or with ``readouts`` and ``clips`` ``y_pred``."""
    ds = audio_rows(model_input_rows(rows, audio_in), audio_in, stats)
    if trials is not None:
        ds = ds.filter(expr=col("trial_id").is_in(list(trials)))
    # the model travels in the object store as a constructor argument, so a restarted actor
    # could not be built again: a lost actor fails the pass (max_restarts=0) instead
    return ds.map_batches(SpeakerHeadUDF, fn_constructor_args=(model, use_gpu, readouts, clips),
                          batch_size=64, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=1), max_restarts=0,
                          num_cpus=1, num_gpus=1 if use_gpu else 0)
