"""One training stage (audio, video or fusion) on one split, as a Ray ``TorchTrainer`` run.

The Ray run is named ``<split>-<stage>`` under ``<run>/checkpoints``; Ray Train V2 resumes a
run with the same name and storage from its latest checkpoint, and restarts failed workers
from it (up to ``workers.max_failures`` times).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import ray
import torch
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from emoray import storage
from emoray.artifact import load_model, save_model
from emoray.features.config import FeatureConfig
from emoray.features import speakers
from emoray.features.speakers import actor_key
from emoray.models import FusionNet, audio_config, audio_input
from emoray.models.config import model_config, to_dict
from emoray.train import data as train_data
from emoray.train import speaker_head
from emoray.train.config import StageConfig, TrainConfig, WorkersConfig
from emoray.train.loop import STATE_FILE, build_trainable, train_loop
from emoray.train.progress import epoch_bar
from emoray.train.splits import Split


GPU_WORKER_CPUS = 4.0
"""CPUs a GPU training worker takes at most when not configured (a g6.2xlarge GPU node of
``cluster.yaml`` has 8): the rest of the node is left to Ray Data."""


def auto_cpus_per_worker(total_cpus: float, largest_node_cpus: float, num_workers: int,
                         use_gpu: bool) -> float:
    """CPUs per training worker that leave about a quarter of the cluster (at least one CPU)
    to Ray Data; training workers that take every CPU starve ingest and hang. A cluster with
    no CPUs yet (autoscaling, nodes start on demand) gets 1 per CPU worker."""
    if total_cpus <= 0:
        return GPU_WORKER_CPUS if use_gpu else 1.0
    free = total_cpus - max(1.0, total_cpus // 4)
    if free <= 0:
        free = total_cpus / 2
    per_worker = min(free / num_workers, max(largest_node_cpus - 1, largest_node_cpus / 2))
    if use_gpu:
        per_worker = min(per_worker, GPU_WORKER_CPUS)
    return max(0.01, int(per_worker * 100) / 100)


def scaling(workers: WorkersConfig) -> tuple[ScalingConfig, int, bool]:
    """Ray ``ScalingConfig``, torch threads per worker, and whether GPUs are used.

    ``use_gpu: auto`` means GPUs when the cluster has some now; on an autoscaling cluster whose
    GPU nodes start on demand, say ``true``.
    """
    resources = ray.cluster_resources()
    use_gpu = resources.get("GPU", 0) > 0 if workers.use_gpu == "auto" else workers.use_gpu
    cpus = workers.cpus_per_worker
    if cpus is None:
        largest = max([n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]] or [0])
        cpus = auto_cpus_per_worker(resources.get("CPU", 0), largest, workers.num_workers,
                                    use_gpu)
    config = ScalingConfig(num_workers=workers.num_workers, use_gpu=use_gpu,
                           resources_per_worker={"CPU": cpus, **({"GPU": 1} if use_gpu else {})})
    return config, max(1, int(cpus)), use_gpu


def class_weights(labels, n_classes: int = 8) -> list[float]:
    """Inverse class frequency, normalised so a balanced set gets all ones (absent: 0)."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w.tolist()


def stage_spec(kind: str, stage: StageConfig, features: FeatureConfig, train_labels,
               has_val: bool, seed: int, threads: int, num_workers: int,
               embed_dims=None, has_test: bool = True) -> dict:
    """The plain-dict config ``train_loop`` runs from."""
    return {
        "kind": kind, "model": to_dict(model_config(kind, stage.preset, stage.model)),
        "features": features.to_dict(), "embed_dims": embed_dims,
        "inputs": ["audio_emb", "video_emb"] if kind == "fusion" else [kind],
        "epochs": stage.epochs, "batch_size": stage.batch_size, "lr": stage.lr,
        "schedule": stage.schedule,
        "steps_per_epoch": max(1, len(train_labels) // (stage.batch_size * num_workers)),
        "weight_decay": stage.weight_decay, "label_smoothing": stage.label_smoothing,
        "mixup": stage.mixup,
        "class_weights": class_weights(train_labels) if stage.class_weights else None,
        "patience": stage.patience if has_val else 0, "has_val": has_val,
        "has_test": has_test,
        "keep_best": stage.keep_best and has_val,
        "shuffle_buffer": max(stage.shuffle_buffer, stage.batch_size), "seed": seed,
        "threads": threads,
    }


def _labels(meta: pa.Table, ids, modality: str | None) -> np.ndarray:
    mask = np.isin(meta.column("trial_id").to_numpy(zero_copy_only=False), list(ids))
    for m in ("audio", "video") if modality == "fusion" else (modality,):
        mask &= meta.column(f"has_{m}").to_numpy(zero_copy_only=False)
    return meta.column("label").to_numpy()[mask]


def run_stage(kind: str, cfg: TrainConfig, split: Split, meta: pa.Table,
              features: FeatureConfig, run_uri: str, branches: dict[str, str]) -> dict:
    """Train ``kind`` on ``split``; write its artifact; return history and test predictions.

    ``branches`` maps audio/video to their artifacts (needed by fusion).
    """
    stage: StageConfig = getattr(cfg, kind)
    train_split = train_data.with_channels(split, stage.channel_copies)  # audio's copies too
    scaling_config, threads, use_gpu = scaling(cfg.workers)
    if kind == "fusion":
        audio, video = (load_model(branches[b])[0] for b in ("audio", "video"))
        datasets = train_data.fusion_datasets(
            cfg.data, split, branches["audio"], branches["video"], features, use_gpu, cfg.seed,
            audio_input(audio_config(audio), features.audio))
        dims = [audio.embed_dim, video.embed_dim]
    else:
        model_cfg = model_config(kind, stage.preset, stage.model)
        audio_in = audio_input(model_cfg, features.audio) if kind == "audio" else None
        datasets, speaker_stats = train_data.branch_datasets(
            cfg.data, kind, train_split, cfg.cache_data, cfg.seed, audio_in, model_cfg,
            stage.channel_copies, features.audio)
        dims = None
    train_labels = np.tile(_labels(meta, split.train, kind), 1 + stage.channel_copies)
    spec = stage_spec(kind, stage, features, train_labels,
                      "val" in datasets, cfg.seed, threads, cfg.workers.num_workers, dims,
                      "test" in datasets)
    fs, ckpt_path = storage.filesystem(storage.join(run_uri, "checkpoints"))
    with epoch_bar(f"train {kind} ({split.name})", stage.epochs) as callbacks:
        trainer = TorchTrainer(
            train_loop, train_loop_config=spec, scaling_config=scaling_config,
            datasets=datasets, dataset_config=DataConfig(datasets_to_split=["train"]),
            run_config=RunConfig(
                name=f"{split.name}-{kind}", storage_path=ckpt_path,
                storage_filesystem=fs if storage.is_s3(run_uri) else None,
                failure_config=FailureConfig(max_failures=cfg.workers.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks))
        result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=True)

    model = _deployable(kind, spec, state["final_model"], branches)
    test = state["test"]  # None for a split with no test trials (protocol kind all)
    if hasattr(model, "input_population"):
        model.input_population.copy_(torch.as_tensor(speaker_stats.population))
    if kind == "audio" and model.readout_dim:
        test = fit_speaker_head(model, cfg.data, train_split, spec, features, use_gpu,
                                speaker_stats, stage.channel_copies)
    artifact = storage.join(run_uri, "models", split.name, f"{kind}.pt")
    y_true, y_pred = (np.asarray(test[k]) if test else np.zeros(0) for k in ("y_true", "y_pred"))
    summary = {"run": cfg.name, "split": split.name, "protocol": dataclasses.asdict(cfg.protocol),
               "preset": stage.preset, "epochs_run": state["epoch"],
               "best_epoch": (state["best"] or {}).get("epoch"),
               "test_accuracy": float((y_true == y_pred).mean()) if len(y_true) else None}
    save_model(artifact, model, features, training=summary)
    return {"kind": kind, "split": split.name, "artifact": artifact, "preset": stage.preset,
            "history": state["history"], "starts": state["starts"],
            "best_epoch": summary["best_epoch"], "epochs_run": state["epoch"], "test": test,
            "workers": cfg.workers.num_workers, "use_gpu": use_gpu,
            "cpus_per_worker": scaling_config.resources_per_worker["CPU"]}


def fit_speaker_head(model, data: str, split: Split, spec: dict, features: FeatureConfig,
                     use_gpu: bool, stats: train_data.SpeakerStats,
                     copies: int = 0) -> dict | None:
    """Fit ``model``'s speaker heads (``emoray.train.speaker_head``) on the split's training
    rows and their ``copies`` channel copies (``split`` as ``train_data.with_channels`` gives
    it; their input standardised as in training, ``stats``), each with the readout statistics
    of the clips its input statistics came from: its actor's, or with
    ``speaker_subsets`` its subset's, blended with the training population's readout
    statistics by the prior (which the model then carries). Returns the test predictions (as
    ``train_loop`` gives them) of the model with its heads, None without test trials."""
    audio_in = audio_input(model.cfg, features.audio)
    rows = train_data.speaker_head_rows(
        train_data.audio_shard_rows(data, split, copies, features.audio, spec["seed"]),
        audio_in, model, use_gpu, stats).to_pandas()
    keys = [actor_key(a) for a in rows["actor"]]
    trials = [str(t) for t in rows["trial_id"]]
    readouts = np.stack(rows["readout"].to_numpy())
    each = speakers.each_clip_sums(readouts)
    train = np.isin(trials, list(split.train))
    prior = model.cfg.speaker_prior
    pop = speakers.population({"train": each[train].sum(0)}) if prior else None
    actors = speaker_head.readout_statistics(keys, readouts, pop, prior)
    if stats.subsets:
        where = {t: i for i, t in enumerate(trials)}
        clip_stats = speakers.subset_statistics(
            each, [[where[t] for t in stats.subsets[trials[i]]] for i in np.flatnonzero(train)],
            pop, prior)
    else:
        clip_stats = speakers.stats_rows([k for k, t in zip(keys, train) if t], actors)
    speaker_head.fit_speaker_heads(
        model, readouts[train], clip_stats, rows["label"].to_numpy()[train],
        spec["class_weights"], spec["label_smoothing"], spec["seed"])
    if pop is not None:
        model.readout_population.copy_(torch.as_tensor(pop))
    if not spec["has_test"]:
        return None
    pred = train_data.speaker_head_rows(
        train_data.audio_shard_rows(data, split, 0, features.audio, spec["seed"]), audio_in,
        model, use_gpu, stats, train_data.SpeakerStats(actors), split.test,
        dict(Counter(keys))).to_pandas()
    return {"y_true": pred["label"].tolist(), "y_pred": pred["y_pred"].tolist(),
            "trial_id": [str(t) for t in pred["trial_id"]]}


def _deployable(kind: str, spec: dict, weights: dict, branches: dict[str, str]):
    if kind != "fusion":
        model = build_trainable(spec)
        model.load_state_dict(weights)
        return model
    head = build_trainable(spec)
    head.load_state_dict(weights)
    audio, video = (load_model(branches[b])[0] for b in ("audio", "video"))
    return FusionNet(audio, video, head)
