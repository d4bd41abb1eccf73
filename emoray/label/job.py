"""The labeling job: the Ray Data layer over ``stage`` and ``parts``.

The driver lists the input, skips what committed parts already hold and plans the rest into
parts. Ray Data then streams: CPU tasks (a block of files per part) decode and featurize each
file (``prepare_file``; only feature tensors and 30x80x70 crops leave a task) -> a fixed pool of
model actors (``predict``, explicit ``batch_size``, a GPU each when the cluster has GPUs) -> the
driver, which collects the small predicted rows per part and commits each part as soon as its
files are complete. No stage holds the archive, and a killed job resumes from its committed
parts. A speaker-normalised audio model first gets its speakers' statistics (``speakers``: one
more pass over the audio of the speakers still to label, kept in the output), and one with a
speaker head its readout statistics (another); with ``speakers: none`` neither pass runs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import time
from typing import Iterator

import numpy as np
import pyarrow as pa
import ray
import torch

from emoray import console, storage
from emoray.artifact import load_model
from emoray.features import speakers
from emoray.features.config import FeatureConfig
from emoray.features.speakers import SpeakerSums, normalise_clips, speaker_key
from emoray.label.config import LabelConfig
from emoray.label.parts import Assembler, Part, plan_parts, recover
from emoray.label.report import write_report
from emoray.label.schema import ITEMS_SCHEMA, item_row, predicted_table, tensors
from emoray.label.speakers import blended, load_grouping, readout_sums, speaker_sums
from emoray.label.stage import Settings, predict, prepare_file
from emoray.models import audio_branch, audio_config, audio_input
from emoray.ravdess import EMOTIONS
from emoray.raycluster import pinned

_BLOCK_BYTES = 16 << 20  # a long recording's windows leave its task in blocks of this size


def run_label(cfg: LabelConfig, files: list[storage.FileEntry] | None = None) -> dict:
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
    listed = storage.list_files(cfg.input) if files is None else files
    files = [f for f in listed if _wanted(f.uri, cfg)]
    pending = [f for f in files if f.uri not in done.uris]
    parts = plan_parts(pending, cfg.files_per_part, identity)
    print(f"emoray label: {len(files)} files, {len(files) - len(pending)} already labelled, "
          f"{len(pending)} to label in {len(parts)} parts with the {info.kind} model "
          f"{model_id} -> {cfg.output}", flush=True)
    assembler = Assembler(parts, cfg.output, info.labels, model_id, identity)
    audio_in = audio_input(audio_config(model), info.features.audio)
    key = load_grouping(cfg.speakers)
    prepare = lambda todo: prepare_dataset(todo, cfg, "audio", info.features)  # noqa: E731
    grouped = parts and audio_in is not None and audio_in.speaker_norm and cfg.speakers != "none"
    sums = speaker_sums(cfg, files, pending, prepare, audio_in, key) if grouped else None
    readouts = readout_sums(cfg, files, pending, prepare, audio_in, key,
                            blended(model, "input", sums, audio_in)) \
        if grouped and audio_branch(model).readout_dim else None
    if parts:
        with console.bar("label", len(pending), "file") as bar:
            for batch in label_dataset(parts, cfg, info.kind, info.features, key, sums,
                                       readouts).iter_batches(batch_size=None,
                                                              batch_format="pyarrow"):
                assembler.add(batch.to_pylist())
                bar.update(assembler.files_done - bar.n)
    if assembler.pending:
        raise RuntimeError(f"parts left incomplete: {sorted(assembler.pending)[:5]}")
    elapsed = time.perf_counter() - start
    summary = {"files": len(files), "skipped": len(files) - len(pending),
               "labelled": sum(c[1] for c in assembler.committed),
               "windows": sum(c[2] for c in assembler.committed),
               "errors": sum(c[3] for c in assembler.committed),
               "parts": len(assembler.committed), "model_id": model_id, "seconds": elapsed}
    print(f"emoray label: {summary['labelled']} files labelled ({summary['windows']} window "
          f"rows), {summary['errors']} errors, {summary['parts']} parts in {elapsed:.1f} s "
          f"({len(pending) / elapsed:.1f} files/s)", flush=True)
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
    """files -> item rows: decoding and features in CPU tasks, a block of files per part."""
    files = [{"part": p.name, "uri": u, "size": s} for p in parts for u, s in zip(p.uris, p.sizes)]
    ds = ray.data.from_items(files, override_num_blocks=len(parts))
    ds.context.target_max_block_size = _BLOCK_BYTES  # this dataset's own context
    return ds.flat_map(prepare_rows, num_cpus=cfg.prepare_cpus, **pinned(cfg.node_resource),
                       fn_kwargs={"kind": kind, "features": features.to_dict(),
                                  "settings": dataclasses.asdict(cfg.settings()),
                                  "in_memory_bytes": int(cfg.in_memory_mb * 2**20)})


def label_dataset(parts: list[Part], cfg: LabelConfig, kind: str, features: FeatureConfig,
                  key=speaker_key, sums: SpeakerSums | None = None,
                  readouts: SpeakerSums | None = None) -> ray.data.Dataset:
    """files -> item rows (CPU tasks) -> predicted rows (model actors); ``key``: who speaks
    in a file; ``sums``: the speakers' sums a speaker-normalised model's audio is
    standardised with (None: each clip alone), ``readouts`` those of its speaker heads'
    readouts.

    ``flat_map`` (rows out of a file, any number) is never fused into the ``batch_size``
    model stage, so decoding scales over the CPUs while the actor pool stays small.
    """
    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpu = gpus > 0 if cfg.use_gpu == "auto" else cfg.use_gpu
    if use_gpu and not gpus:
        raise ValueError("use_gpu: true, but the Ray cluster has no GPUs")
    # Without a GPU the model is a small share of the work: its actors reserve no CPU, so
    # decoding keeps every CPU and the model shares them.
    model_cpus = (1.0 if use_gpu else 0.0) if cfg.model_cpus == "auto" else cfg.model_cpus
    ds = prepare_dataset(parts, cfg, kind, features)
    return ds.map_batches(Predictor, batch_size=cfg.batch_size, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
                          num_cpus=model_cpus, num_gpus=1 if use_gpu else 0,
                          **pinned(cfg.model_resource),
                          fn_constructor_kwargs={"model_uri": cfg.model, "use_gpu": use_gpu,
                                                 "threads": max(1, int(model_cpus)),
                                                 "key": key, "sums": sums,
                                                 "readouts": readouts})


def prepare_rows(file: dict, kind: str, features: dict, settings: dict,
                 in_memory_bytes: int) -> Iterator[dict]:
    """Ray task body: the item rows of one file (``schema.ITEMS_SCHEMA``), as they come."""
    torch.set_num_threads(1)
    for item in prepare_file(file["uri"], file["size"], kind, FeatureConfig.from_dict(features),
                             Settings(**settings), in_memory_bytes):
        yield item_row({**item, "part": file["part"]})


class Predictor:
    """Ray actor: the model, loaded once; item rows in, tensors out, probabilities in.

    A speaker-normalised model's audio is standardised with its speaker's statistics
    (``sums`` blended with the model's population), or with no ``sums`` each clip with its
    own, as its readout is for a speaker head."""

    def __init__(self, model_uri: str, use_gpu: bool, threads: int, key=speaker_key,
                 sums: SpeakerSums | None = None, readouts: SpeakerSums | None = None):
        torch.set_num_threads(threads)
        self.model, self.info = load_model(model_uri, device="cuda" if use_gpu else "cpu")
        self.key = key
        self.audio_in = audio_input(audio_config(self.model), self.info.features.audio)
        self.norm = self.audio_in is not None and self.audio_in.speaker_norm
        self.stats = None if sums is None else blended(self.model, "input", sums,
                                                       self.audio_in)
        self.clips = None if sums is None else speakers.clips(sums)
        self.readouts = None if readouts is None else {  # speaker -> [2, D], once, not per row
            k: np.asarray(v, np.float32) for k, v in blended(self.model, "readout",
                                                              readouts).items()}

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = batch.select(ITEMS_SCHEMA.names).cast(ITEMS_SCHEMA)  # blocks of all-null columns
        f = self.info.features
        audio = tensors(batch, "audio", f.audio.shape, np.float32)
        if self.audio_in is not None and not self.audio_in.identity:
            audio = [x if x is None else self.audio_in(x) for x in audio]
        keys = [self.key(u) for u in batch.column("uri").to_pylist()]
        counts = [None] * len(keys)
        readout_stats = None
        if self.norm and self.stats is not None:
            audio = normalise_clips(keys, audio, self.stats, self.audio_in.blocks)
            counts = [self.clips.get(k) for k in keys]
            if self.readouts is not None:
                readout_stats = [None if x is None else self.readouts[k]
                                 for k, x in zip(keys, audio)]
        elif self.norm:
            audio, readout_stats = self._alone(audio)
            counts = [None if x is None else 1 for x in audio]
        probs = predict(self.model, self.info.kind, batch.column("modality").to_pylist(),
                        audio, tensors(batch, "video", f.video.shape, np.uint8), readout_stats)
        return predicted_table(batch, probs, keys, counts)

    def _alone(self, audio: list) -> tuple[list, list | None]:
        """Each clip standardised with its own statistics blended with the population, and
        with speaker heads its readout likewise."""
        own = [None if x is None else blended(self.model, "input", speakers.clip_sums(
            ["clip"], [x], self.audio_in.blocks), self.audio_in)["clip"] for x in audio]
        audio = [x if x is None else speakers.normalise(x, *s, self.audio_in.blocks)
                 for x, s in zip(audio, own)]
        net = audio_branch(self.model)
        idx = [i for i, x in enumerate(audio) if x is not None]
        if not net.readout_dim or not idx:
            return audio, None
        device = next(net.parameters()).device
        with torch.inference_mode():
            z = net.readout(torch.from_numpy(np.stack([audio[i] for i in idx])).to(device))
        rows = [None] * len(audio)
        for i, r in zip(idx, z.float().cpu().numpy()):
            mean, std = blended(self.model, "readout", speakers.clip_sums(["clip"], [r[None]]))[
                "clip"]
            rows[i] = np.asarray([mean, std], np.float32)
        return audio, rows
