"""Ray Train end to end on a real local cluster (2 CPUs), on the synthetic corpus.

The synthetic corpus keeps audio blind to calm/neutral and video blind to fearful/surprised
(by design of ``emoray.synth``); every other emotion shows in both. 24 actors are
synthesized, 14 of them with video too (drawn faces, 320x180), and preprocessed with short
audio windows and small video crops (16 frames of 40x35), so that training on 2 CPUs takes
seconds per epoch. Test actors are never seen in training.
"""

import json
import os
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray._private.state as ray_state  # actor pids, without the dashboard's state API
import torch

from emoray import manifest, storage
from emoray.artifact import load_model
from emoray.features.speakers import (actor_key, clip_sums, normalise_clips, statistics,
                                     stats_rows)
from emoray.models import audio_config, audio_input
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.synth.corpus import synthesize_corpus
from emoray.train import train, train_config
from emoray.train.metrics import confusion
from emoray.train.speaker_head import readout_statistics
from emoray.train.splits import Split, read_metadata

AUDIO_TWINS = (0, 1)  # neutral and calm sound the same
VIDEO_TWINS = (5, 7)  # fearful and surprised look the same
AUDIO_FLOOR = 0.5
"""Audio on the 6 emotions it can tell apart, held-out actors (chance: 1/6). With
per-utterance normalisation (the old default) seeds and runs scored 0.65 to 0.84: the
synthetic voices keep few cues apart from happy and angry but loudness, which it removes.
Video and fusion: 0.9."""
AUDIO_ACTORS = tuple(range(1, 25))  # audio is cheap: more voices to generalise from
VIDEO_ACTORS = tuple(range(1, 15))
TEST_ACTORS = [12, 13, 14]
# 1.5 s of audio (synthetic utterances hold 1.5-2.5 s of speech) and small crops: fast epochs.
SMALL_FEATURES = {"audio": {"frames": 150}, "video": {"frames": 16, "height": 40, "width": 35}}
TINY = {  # default recipes, fewer epochs, a narrower video net
    "workers": {"num_workers": 2},
    "audio": {"preset": "default", "batch_size": 16},  # the recipe's 60 epochs: cheap
    "video": {"preset": "default", "batch_size": 16, "epochs": 20,
              "model": {"channels": [16, 32, 64]}},
    "fusion": {"preset": "default", "batch_size": 16, "epochs": 15},
}


@pytest.fixture(scope="module")
def ray_cluster(ray_local):
    """The session's local Ray; Ray Train's controller polls reports every 0.2 s (not 2 s), so
    tiny epochs are not throttled."""
    saved = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.2"
    yield ray_local
    if saved is None:
        os.environ.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    else:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = saved


@pytest.fixture(scope="module")
def shard_dir(ray_cluster, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(corpus, actors=AUDIO_ACTORS, seed=0, modalities=("audio",))
    synthesize_corpus(corpus, actors=VIDEO_ACTORS, seed=0, modalities=("video",),
                      width=320, height=180, stills_dir=None)
    out = str(tmp_path_factory.mktemp("shards"))
    result = run_preprocess(PreprocessConfig(input=str(corpus), output=out, **SMALL_FEATURES))
    assert result["n_clips"] == 60 * len(AUDIO_ACTORS) and not result["n_errors"]
    return out


def config(shard_dir, storage, name, **extra):
    return train_config({"name": name, "data": shard_dir, "storage": str(storage),
                         "protocol": {"kind": "actors", "test_actors": TEST_ACTORS,
                                      "val_fraction": 0.2},
                         **TINY, **extra})


@pytest.fixture(scope="module")
def trained(ray_cluster, shard_dir, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    metrics = train(config(shard_dir, storage, "all"))
    return metrics, storage / "all"


def accuracy_without(cm, classes) -> float:
    cm = np.asarray(cm)
    keep = [c for c in range(8) if c not in classes]
    return cm[keep, keep].sum() / cm[keep].sum()


def test_each_branch_learns_what_its_modality_shows(trained):
    metrics, _ = trained
    audio, video = metrics["stages"]["audio"], metrics["stages"]["video"]
    assert accuracy_without(audio["confusion"], AUDIO_TWINS) >= AUDIO_FLOOR
    assert accuracy_without(video["confusion"], VIDEO_TWINS) >= 0.9
    assert min(audio["test"]["accuracy"]["mean"], video["test"]["accuracy"]["mean"]) > 0.45  # 1/8


def test_fusion_beats_both_branches_and_needs_both_inputs(trained):
    metrics, _ = trained
    acc = {k: s["test"]["accuracy"]["mean"] for k, s in metrics["stages"].items()}
    assert acc["fusion"] >= 0.9
    assert acc["fusion"] > max(acc["audio"], acc["video"])
    ablation = metrics["stages"]["fusion"]["splits"]["actors"]["ablation"]
    # Alone, each branch confuses its twin pair (a fifth to a quarter of the trials).
    assert ablation["no_audio"] < acc["fusion"] - 0.05
    assert ablation["no_video"] < acc["fusion"] - 0.05


def test_test_actors_are_unseen(trained, shard_dir):
    _, run = trained
    (split,) = [Split.from_dict(d) for d in json.loads((run / "splits.json").read_text())]
    meta = read_metadata(shard_dir)
    actor_of = dict(zip(meta.column("trial_id").to_pylist(), meta.column("actor").to_pylist()))
    test_actors = {actor_of[i] for i in split.test}
    assert test_actors == set(split.test_actors)
    assert not test_actors & {actor_of[i] for i in split.train + split.val}
    assert split.val and not set(split.val_actors) & test_actors


def test_report_files_and_throughput(trained):
    metrics, run = trained
    report = run / "report"
    assert json.loads((report / "metrics.json").read_text())["protocol"]["kind"] == "actors"
    summary = (report / "summary.md").read_text()
    assert "speaker-independent: test actors" in summary
    for row in ("| Audio (1D CNN) | default |", "| Video (3D CNN) | default |", "| Fusion |"):
        assert row in summary
    for kind in ("audio", "video", "fusion"):
        for name in (f"confusion_{kind}.png", f"curves_{kind}.png"):
            assert (report / name).read_bytes()[:4] == b"\x89PNG"
        history = metrics["stages"][kind]["splits"]["actors"]["history"]
        assert all(h["samples_per_s"] > 0 and 0 <= h["data_wait_share"] <= 1 for h in history)
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_uar"} <= set(history[0])


def test_artifacts_label_shard_tensors_like_the_report(trained, shard_dir):
    metrics, run = trained
    features = manifest.feature_config(shard_dir)
    table = pq.read_table([u for u in manifest.shard_uris(shard_dir)])
    test_ids = set(json.loads((run / "splits.json").read_text())[0]["test"])
    audible = table.filter(table.column("has_audio"))
    stats = statistics(clip_sums([actor_key(a) for a in audible.column("actor").to_pylist()],
                                 audible.column("audio").combine_chunks().to_numpy_ndarray()))
    rows = table.filter(np.isin(table.column("trial_id").to_numpy(zero_copy_only=False),
                                list(test_ids)))
    batch = {k: rows.column(k).combine_chunks().to_numpy_ndarray() for k in ("audio", "video")}
    # the default audio recipe standardises each actor with their own clips' statistics
    batch["audio"] = np.stack(normalise_clips(
        [actor_key(a) for a in rows.column("actor").to_pylist()], batch["audio"], stats))
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    labels = rows.column("label").to_numpy()
    for kind in ("audio", "video", "fusion"):
        model, info = load_model(str(run / "models" / "actors" / f"{kind}.pt"),
                                 expect_features=features)
        assert info.kind == kind and info.training["split"] == "actors"
        with torch.no_grad():
            pred = model(*(batch[k] for k in model.inputs)).argmax(1).numpy()
        assert (pred == labels).mean() == pytest.approx(
            metrics["stages"][kind]["test"]["accuracy"]["mean"])


def test_fusion_alone_on_trained_branches(trained, shard_dir, tmp_path):
    _, run = trained
    branches = {f"{k}_model": str(run / "models" / "actors" / f"{k}.pt")
                for k in ("audio", "video")}
    metrics = train(config(shard_dir, tmp_path, "fusion", stages=["fusion"], **branches))
    assert metrics["stages"]["fusion"]["test"]["accuracy"]["mean"] >= 0.9
    with pytest.raises(ValueError, match="fusion needs branches trained on the same split"):
        train(config(shard_dir, tmp_path, "fusion-random", stages=["fusion"], **branches,
                     protocol={"kind": "random"}))


def test_killed_worker_resumes_from_checkpoint_and_rerun_continues(ray_cluster, shard_dir, s3):
    """On S3 storage: checkpoints, artifacts and the report all go through s3://. The resumed
    run clears the accuracy floor an undisturbed run clears."""
    storage_uri = f"s3://{s3.bucket}/runs-{time.time_ns()}"
    cfg = config(shard_dir, storage_uri, "ft", stages=["audio"])
    epochs = cfg.audio.epochs
    checkpoints = storage.join(storage_uri, "ft", "checkpoints", "actors-audio")
    killed = []

    def kill_a_worker_after_two_checkpoints():
        deadline = time.time() + 180
        while time.time() < deadline and not killed:
            if sum(f.uri.endswith("/state.pt") for f in storage.list_files(checkpoints)) >= 2:
                pid = next(a["Pid"] for a in ray_state.actors().values()
                           if a["ActorClassName"] == "RayTrainWorker" and a["State"] == "ALIVE")
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_after_two_checkpoints, daemon=True)
    killer.start()
    audio = train(cfg)["stages"]["audio"]
    run = audio["splits"]["actors"]
    killer.join()
    assert killed
    assert accuracy_without(audio["confusion"], AUDIO_TWINS) >= AUDIO_FLOOR  # as undisturbed
    restart = run["starts"][1]
    assert run["starts"] == [0, restart] and 1 <= restart < epochs  # not from epoch 0
    assert [h["epoch"] for h in run["history"]] == list(range(1, epochs + 1))

    again = train(config(shard_dir, storage_uri, "ft", stages=["audio"],
                         audio={**TINY["audio"], "epochs": epochs + 2}))
    again = again["stages"]["audio"]["splits"]["actors"]
    assert again["starts"] == [0, restart, epochs]  # continued after the last epoch
    assert [h["epoch"] for h in again["history"]] == list(range(1, epochs + 3))
    assert again["artifact"].startswith("s3://")
    load_model(again["artifact"], expect_features=manifest.feature_config(shard_dir))
    assert storage.exists(storage.join(storage_uri, "ft", "report", "summary.md"))
    with pytest.raises(ValueError, match=r"other settings \(audio.lr\)"):
        train(config(shard_dir, storage_uri, "ft", stages=["audio"],
                     audio={**TINY["audio"], "lr": 0.01}))


def test_protocol_all_trains_the_model_to_ship_on_every_actor(ray_cluster, shard_dir, tmp_path):
    cfg = config(shard_dir, tmp_path, "ship", stages=["audio"],
                 protocol={"kind": "all", "val_fraction": 0},
                 audio={**TINY["audio"], "epochs": 2})
    metrics = train(cfg)
    audio = metrics["stages"]["audio"]
    assert audio["test"] is None and audio["splits"]["all"]["epochs_run"] == 2
    (split,) = json.loads((tmp_path / "ship" / "splits.json").read_text())
    assert len(split["train"]) == 60 * len(AUDIO_ACTORS) and not split["val"] + split["test"]
    model, info = load_model(audio["splits"]["all"]["artifact"])
    assert info.training["split"] == "all" and info.training["test_accuracy"] is None
    assert "not tested" in (tmp_path / "ship" / "report" / "summary.md").read_text()


def test_ensemble_members_learn_from_their_own_speaker_normalised_inputs(trained, shard_dir,
                                                                        tmp_path):
    """The speech recipe's audio model: the CNN over frames, with a speaker head, and an MLP
    over each clip's summary, each input standardised with its actor's statistics of it,
    probabilities combined. Its artifact, fed inputs and readout statistics computed here,
    reproduces the report; fusion trains on its embeddings."""
    model_cfg = {"members": [{"speaker_head": True},
                             {"input": "summary", "hidden": [128], "input_dropout": 0.2,
                              "dropout": 0.5}]}
    metrics = train(config(shard_dir, tmp_path, "ensemble", stages=["audio"],
                           audio={**TINY["audio"], "model": model_cfg}))
    audio = metrics["stages"]["audio"]
    assert accuracy_without(audio["confusion"], AUDIO_TWINS) > AUDIO_FLOOR
    model, info = load_model(audio["splits"]["actors"]["artifact"])
    audio_in = audio_input(audio_config(model), info.features.audio)
    assert info.training["split"] == "actors" and audio_in.speaker_norm
    assert "| Audio (ensemble: 1D CNN with speaker head + summary MLP) | default |" in (
        tmp_path / "ensemble" / "report" / "summary.md").read_text()
    table = pq.read_table([u for u in manifest.shard_uris(shard_dir)])
    table = table.filter(table.column("has_audio"))
    keys = [actor_key(a) for a in table.column("actor").to_pylist()]
    x = [audio_in(f) for f in table.column("audio").combine_chunks().to_numpy_ndarray()]
    stats = statistics(clip_sums(keys, x, audio_in.blocks))
    x = np.stack(normalise_clips(keys, x, stats, audio_in.blocks))
    test = np.isin(table.column("trial_id").to_numpy(zero_copy_only=False),
                   json.loads((tmp_path / "ensemble" / "splits.json").read_text())[0]["test"])
    y = table.column("label").to_numpy()[test]
    x = torch.from_numpy(x)
    frames, summaries = model.parts(x[test])
    with torch.no_grad():  # each actor's readout statistics from all their clips
        readout_stats = torch.from_numpy(stats_rows(keys, readout_statistics(
            keys, model.readout(x).numpy())))
        pred = model(x[test], readout_stats[test]).argmax(1).numpy()
        alone = [model.members[0](frames, readout_stats[test]).argmax(1).numpy(),
                 model.members[1](summaries).argmax(1).numpy()]
    assert (pred == y).mean() == pytest.approx(audio["test"]["accuracy"]["mean"])
    for member in alone:  # each member learnt on its own input
        assert accuracy_without(confusion(y, member), AUDIO_TWINS) > AUDIO_FLOOR
    video = str(trained[1] / "models" / "actors" / "video.pt")
    fused = train(config(shard_dir, tmp_path, "ensemble-fusion", stages=["fusion"],
                         audio_model=audio["splits"]["actors"]["artifact"], video_model=video))
    assert fused["stages"]["fusion"]["test"]["accuracy"]["mean"] >= 0.9
