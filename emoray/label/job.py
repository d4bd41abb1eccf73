"""The labeling job: the Ray Data layer over ``stage``, ``speakers`` and ``parts``.

The driver streams the listing and plans it into parts a wave at a time, in memory that does
not grow with the archive (``plan.Plan``), skipping what committed parts already hold (for a
speaker-normalised model, parts of whole speakers). Ray Data then streams each wave, each file
decoded once, a part at a time: its speakers' statistics come from its own clips, so a part is
labelled without waiting for the rest of the archive. On CPUs one task per part decodes and
featurizes its files (``prepare_file``), labels them with the worker process's copy of the
model and commits the part (``label_part``). With GPUs (or ``model_resource``) the model is a
stage of its own: CPU tasks decode (only feature tensors and 30x80x70 crops leave a task, as
one row per part) -> a fixed pool of model actors (``Predictor``, a GPU each) -> CPU tasks
that commit each part (``commit_predicted``). The driver sees one row of counts per part. No
stage holds the archive, and a killed job resumes from its committed parts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import time
from typing import Iterable

import numpy as np
import pyarrow as pa
import ray
import torch

from emoray import console, storage
from emoray.artifact import load_model
from emoray.features.config import FeatureConfig
from emoray.features.speakers import speaker_key
from emoray.label.config import LabelConfig
from emoray.label.parts import Part, commit_part, done_uris, recover, write_speakers
from emoray.label.plan import Plan
from emoray.label.report import write_report
from emoray.label.schema import (ITEMS_SCHEMA, from_ipc, item_row, predicted_table, tensors,
                                 to_ipc)
from emoray.label.speakers import load_grouping, standardise
from emoray.label.stage import Settings, predict, prepare_file
from emoray.models import audio_config, audio_input
from emoray.ravdess import EMOTIONS
from emoray.raycluster import pinned

def run_label(cfg: LabelConfig, files: Iterable[storage.FileEntry] | None = None) -> dict:
    """Label every file under ``cfg.input`` (or only ``files``, entries of that listing) not
    yet in ``cfg.output``, then write its report (``report/``); returns a summary."""
    start = time.perf_counter()
    model_id = hashlib.sha256(storage.read_bytes(cfg.model)).hexdigest()[:16]
    model, info = load_model(cfg.model)
    if tuple(info.labels) != EMOTIONS:
        raise ValueError(f"{cfg.model}: model classes {info.labels} are not {EMOTIONS}")
    identity = {"model_id": model_id, **dataclasses.asdict(cfg.settings()),
                **({"speakers": cfg.speakers} if cfg.speakers != "auto" else {})}
    done = recover(cfg.output)
    if done.settings is not None and done.settings != identity:
        raise ValueError(f"{cfg.output} holds labels of another model or other settings "
                         f"({done.settings}); label into a new output")
    listing = storage.iter_files(cfg.input) if files is None else files
    key = load_grouping(cfg.speakers)
    audio_in = audio_input(audio_config(model), info.features.audio)
    grouped = audio_in is not None and audio_in.speaker_norm  # parts of whole speakers
    plan = Plan((f for f in listing if _wanted(f.uri, cfg)), done_uris(done),
                cfg.files_per_part, identity, key if grouped else None, cfg.speaker_files)
    print(f"emoray label: {plan.listed} files ({plan.done} already labelled) -> "
          f"{cfg.output}, with the {info.kind} model {model_id}", flush=True)
    total = dict.fromkeys(("files", "windows", "errors", "parts"), 0)
    pending = 0
    with console.bar("label", plan.listed, "file") as bar:
        for wave in plan.waves():
            bar.update(wave.listed - wave.pending)  # already labelled
            pending += wave.pending
            if not wave.parts:
                continue
            committed = set()
            for batch in label_dataset(wave.parts, cfg, info.kind, info.features, key,
                                       model_id, identity).iter_batches(batch_size=None):
                committed.update(batch["part"].tolist())
                for k in ("files", "windows", "errors"):
                    total[k] += int(np.sum(batch[k]))
                bar.update(int(np.sum(batch["files"]) + np.sum(batch["errors"])))
            missing = {p.name for p in wave.parts} - committed
            if missing:
                raise RuntimeError(f"parts left uncommitted: {sorted(missing)[:5]}")
            total["parts"] += len(committed)
    elapsed = time.perf_counter() - start
    summary = {"files": plan.listed, "skipped": plan.listed - pending,
               "labelled": total["files"], "windows": total["windows"],
               "errors": total["errors"], "parts": total["parts"], "model_id": model_id,
               "seconds": elapsed}
    print(f"emoray label: {summary['labelled']} files labelled ({summary['windows']} window "
          f"rows), {summary['errors']} errors, {summary['parts']} parts in {elapsed:.1f} s "
          f"({pending / elapsed:.1f} files/s)", flush=True)
    summary["report"] = write_report(cfg.output)
    print(f"emoray label: report {summary['report']}", flush=True)
    return summary


def _wanted(uri: str, cfg: LabelConfig) -> bool:
    """Not excluded by name and not inside the output (an output within the input)."""
    name = uri.rsplit("/", 1)[-1]
    out = storage.filesystem(cfg.output)[1].rstrip("/") + "/"
    return (not any(fnmatch.fnmatch(name, p) for p in cfg.exclude)
            and not storage.filesystem(uri)[1].startswith(out))


def prepare_dataset(parts: list[Part], cfg: LabelConfig, kind: str,
                    features: FeatureConfig) -> ray.data.Dataset:
    """parts -> one row per part (``part``, ``uris``, ``items``: its item rows as Arrow IPC),
    decoding and features in CPU tasks, one per part."""
    return _parts_dataset(parts).map(prepare_part, num_cpus=cfg.prepare_cpus,
                                     **pinned(cfg.node_resource),
                                     fn_kwargs=_prepare_args(cfg, kind, features))


def _prepare_args(cfg: LabelConfig, kind: str, features: FeatureConfig) -> dict:
    return {"kind": kind, "features": features.to_dict(),
            "settings": dataclasses.asdict(cfg.settings()),
            "in_memory_bytes": int(cfg.in_memory_mb * 2**20)}


def label_dataset(parts: list[Part], cfg: LabelConfig, kind: str, features: FeatureConfig,
                  key=speaker_key, model_id: str = "", identity: dict | None = None
                  ) -> ray.data.Dataset:
    """parts -> one row of counts per committed part (``part``, ``files``, ``windows``,
    ``errors``); ``key``: who speaks in a file; ``model_id``, ``identity``: what the parts
    record.

    With GPUs (``use_gpu``) or ``model_resource`` the model runs in a stage of its own: CPU
    tasks decode each part -> a pool of ``concurrency`` model actors, a part per call (so a
    speaker's clips meet in one call) -> CPU tasks that commit it. Otherwise one CPU task
    per part decodes, labels and commits it with its worker process's copy of the model
    (``label_part``): no actor to start beside the decoders, no tensors through the object
    store.
    """
    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpu = gpus > 0 if cfg.use_gpu == "auto" else cfg.use_gpu
    if use_gpu and not gpus:
        raise ValueError("use_gpu: true, but the Ray cluster has no GPUs")
    commit = {"output": cfg.output, "model_id": model_id, "identity": identity or {}}
    if not (use_gpu or cfg.model_resource):
        return _parts_dataset(parts).map(
            label_part, num_cpus=cfg.prepare_cpus, **pinned(cfg.node_resource),
            fn_kwargs={**_prepare_args(cfg, kind, features), **commit,
                       "model_uri": cfg.model, "key": key, "batch_size": cfg.batch_size})
    model_cpus = (1.0 if use_gpu else 0.0) if cfg.model_cpus == "auto" else cfg.model_cpus
    ds = prepare_dataset(parts, cfg, kind, features)
    ds = ds.map_batches(Predictor, batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
                        num_cpus=model_cpus, num_gpus=1 if use_gpu else 0,
                        **pinned(cfg.model_resource),
                        fn_constructor_kwargs={"model_uri": cfg.model, "use_gpu": use_gpu,
                                               "threads": max(1, int(model_cpus)), "key": key,
                                               "batch_size": cfg.batch_size})
    return ds.map(commit_predicted, num_cpus=COMMIT_CPUS, **pinned(cfg.node_resource),
                  fn_kwargs=commit)


COMMIT_CPUS = 0.25  # a commit is a few small writes (0 measured slower: 0.72x against 0.78x)


def _parts_dataset(parts: list[Part]) -> ray.data.Dataset:
    rows = [{"part": p.name, "uris": list(p.uris), "sizes": list(p.sizes)} for p in parts]
    return ray.data.from_items(rows, override_num_blocks=len(parts))


def part_items(part: dict, kind: str, features: dict, settings: dict,
               in_memory_bytes: int) -> pa.Table:
    """The item rows (``schema.ITEMS_SCHEMA``) of one part's files."""
    torch.set_num_threads(1)
    features, settings = FeatureConfig.from_dict(features), Settings(**settings)
    rows = [item_row({**item, "part": part["part"]})
            for uri, size in zip(part["uris"], part["sizes"])
            for item in prepare_file(uri, size, kind, features, settings, in_memory_bytes)]
    return pa.Table.from_pylist(rows, ITEMS_SCHEMA)


def prepare_part(part: dict, **prepare) -> dict:
    """Ray task body: one part's item rows, as Arrow IPC (``items``), for the model actors."""
    return {"part": part["part"], "uris": part["uris"],
            "items": to_ipc(part_items(part, **prepare))}


def label_part(part: dict, model_uri: str, model_id: str, key, batch_size: int, output: str,
               identity: dict, **prepare) -> dict:
    """Ray task body of the CPU path: one part decoded, labelled and committed; its counts."""
    labeller = Labeller(*_model(model_uri, model_id), key, batch_size)
    predicted, speakers = labeller.predicted(part_items(part, **prepare))
    return _commit(output, part["part"], list(part["uris"]), predicted, speakers, model_id,
                   identity)


@functools.lru_cache(maxsize=2)
def _model(uri: str, model_id: str):
    """A worker process's copy of the model, loaded by its first part (``model_id``, the
    hash of the file the driver read, tells a changed file from the one loaded)."""
    return load_model(uri)


class Labeller:
    """A loaded model over a part's item rows: its predicted rows and speakers' statistics.

    A speaker-normalised model's audio is standardised with its speaker's statistics over the
    part's clips, blended with the model's population (``speakers.standardise``)."""

    def __init__(self, model, info, key=speaker_key, batch_size: int = 32):
        self.model, self.info, self.key, self.batch_size = model, info, key, batch_size
        self.audio_in = audio_input(audio_config(model), info.features.audio)
        self.norm = self.audio_in is not None and self.audio_in.speaker_norm

    def predicted(self, items: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """A part's item rows with probabilities (``schema.PREDICTED_SCHEMA``), and for a
        speaker-normalised model its speakers' statistics (``SPEAKERS_SCHEMA``)."""
        f = self.info.features
        audio = tensors(items, "audio", f.audio.shape, np.float32)
        if self.audio_in is not None and not self.audio_in.identity:
            audio = [x if x is None else self.audio_in(x) for x in audio]
        keys = [self.key(u) for u in items.column("uri").to_pylist()]
        counts, readout_stats, readouts, stats = [None] * len(keys), None, None, None
        if self.norm:
            std = standardise(self.model, self.audio_in, keys, audio, self.batch_size)
            audio, readout_stats, readouts = std.audio, std.readout_stats, std.readouts
            counts, stats = std.clips, std.table
        video = tensors(items, "video", f.video.shape, np.uint8)
        modality = items.column("modality").to_pylist()
        b = self.batch_size
        probs = np.concatenate([np.zeros((0, 8), np.float32)] + [
            predict(self.model, self.info.kind, modality[i:i + b], audio[i:i + b],
                    video[i:i + b], None if readout_stats is None else readout_stats[i:i + b],
                    None if readouts is None else readouts[i:i + b],
                    counts[i:i + b] if self.norm else None)
            for i in range(0, len(keys), b)])
        return (predicted_table(items, probs, keys, counts),
                stats if stats is not None and len(stats) else None)


class Predictor:
    """Ray actor of the model stage: the model, loaded once; a part's item rows in, the part's
    predicted rows out (``part``, ``uris``, ``predicted``: ``schema.PREDICTED_SCHEMA`` rows,
    and ``speakers``: its ``SPEAKERS_SCHEMA`` table or empty, both as Arrow IPC), for
    ``commit_predicted`` to commit on a CPU node."""

    def __init__(self, model_uri: str, use_gpu: bool, threads: int, key=speaker_key,
                 batch_size: int = 32):
        torch.set_num_threads(threads)
        self.labeller = Labeller(*load_model(model_uri, device="cuda" if use_gpu else "cpu"),
                                 key, batch_size)

    def __call__(self, batch: dict) -> dict:
        out = {"part": batch["part"], "uris": batch["uris"], "predicted": [], "speakers": []}
        for items in batch["items"]:
            predicted, speakers = self.labeller.predicted(from_ipc(items))
            out["predicted"].append(to_ipc(predicted))
            out["speakers"].append(b"" if speakers is None else to_ipc(speakers))
        return {k: np.asarray(v, object) if isinstance(v, list) else v for k, v in out.items()}


def commit_predicted(row: dict, output: str, model_id: str, identity: dict) -> dict:
    """Ray task body: commit one part from a ``Predictor`` row; its counts."""
    return _commit(output, row["part"], list(row["uris"]), from_ipc(row["predicted"]),
                   from_ipc(row["speakers"]) if row["speakers"] else None, model_id, identity)


def _commit(output: str, name: str, uris: list[str], predicted: pa.Table,
            speakers: pa.Table | None, model_id: str, identity: dict) -> dict:
    """``parts.commit_part``, its speakers part first; its counts (``part``, ``files``,
    ``windows``, ``errors``)."""
    if speakers is not None:
        write_speakers(output, name, speakers)
    return commit_part(output, name, uris, predicted.to_pylist(), EMOTIONS, model_id, identity)
