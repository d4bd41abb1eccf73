"""The audio ensemble (``AudioNetConfig.members``): joined inputs, per-part speaker
statistics, combined probabilities (weighted by how many clips a speaker has), members that
train as if alone, and a member with a speaker head."""

import numpy as np
import pytest
import torch

from emoray.artifact import load_model, save_model
from emoray.config import ConfigError
from emoray.features.config import AudioFeatureConfig, FeatureConfig
from emoray.features.speakers import (actor_key, clip_sums, normalise_clips, statistics,
                                      stats_rows)
from emoray.features.summary import clip_summary, summary_size
from emoray.models import AudioEnsemble, audio_config, audio_input, build_branch, model_config
from emoray.train.config import StageConfig
from emoray.train.data import SpeakerHeadUDF, SpeakerStats
from emoray.train.loop import train_epoch
from emoray.train.report import stage_title

FEATURES = FeatureConfig(audio=AudioFeatureConfig(frames=50, n_mels=16))
MEMBERS = [{"channels": [8, 8], "hidden": [8]},
           {"input": "summary", "hidden": [16], "input_dropout": 0.2, "dropout": 0.5}]


def product(*logits, weights=None) -> torch.Tensor:
    """The members' probabilities' normalised weighted geometric mean, written out."""
    weights = weights or [1.0] * len(logits)
    p = torch.stack([torch.softmax(z, 1) ** w for z, w in zip(logits, weights)]).prod(0)
    p = p ** (1 / sum(weights))
    return p / p.sum(1, keepdim=True)


def clips(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(-30, 8, (50, 16)).astype(np.float32) for _ in range(n)]


def test_members_come_from_the_preset_and_must_agree_on_speaker_norm():
    cfg = model_config("audio", "default", {"members": MEMBERS})
    cnn, mlp = cfg.members
    assert cnn.batchnorm and cnn.readout == "stats" and cnn.channels == (8, 8)  # default preset
    assert mlp.input == "summary" and mlp.hidden == (16,) and cfg.speaker_norm
    with pytest.raises(ConfigError, match="speaker_norm must be the ensemble's"):
        model_config("audio", "default", {"members": [{}, {"speaker_norm": False}]})
    with pytest.raises(ConfigError, match=r"members\[1\]: expected a mapping"):
        model_config("audio", "default", {"members": [{}, "summary"]})
    with pytest.raises(ConfigError, match="cannot itself be an ensemble"):
        model_config("audio", "default", {"members": [{"members": [{}]}]})
    with pytest.raises(ConfigError, match="speaker_head: set it on a member"):
        model_config("audio", "default", {"members": MEMBERS, "speaker_head": True})
    with pytest.raises(ConfigError, match="speaker_head: needs speaker_norm"):
        model_config("audio", "paper", {"speaker_head": True})
    with pytest.raises(ConfigError, match="only a CNN"):
        model_config("audio", "default", {"members": [{}, {**MEMBERS[1], "speaker_head": True}]})
    stage = StageConfig(preset="default", model={"members": MEMBERS})
    assert stage_title("audio", stage) == "Audio (ensemble: 1D CNN + summary MLP)"


def test_each_part_of_a_joined_input_has_its_own_speaker_statistics():
    cfg = model_config("audio", "default", {"members": MEMBERS})
    audio_in = audio_input(cfg, FEATURES.audio)
    size = summary_size((50, 16), "logmel")
    assert audio_in.blocks == ((50, 16), (1, size)) and audio_in.width == 16 + size
    frames = clips(6)
    summaries = [clip_summary(x, "logmel") for x in frames]
    keys = ["a", "a", "a", "b", "b", "b"]
    joined = [audio_in(x) for x in frames]
    assert joined[0].shape == (50 * 16 + size,)
    stats = statistics(clip_sums(keys, joined, audio_in.blocks))
    of_frames, of_summaries = statistics(clip_sums(keys, frames)), statistics(clip_sums(keys,
                                                                                          summaries))
    for k in "ab":  # side by side: the frames' 16 coefficients, then the summary's elements
        for i in (0, 1):
            np.testing.assert_allclose(stats[k][i], of_frames[k][i] + of_summaries[k][i],
                                       rtol=1e-6, atol=1e-6)
    got = np.stack(normalise_clips(keys, joined, stats, audio_in.blocks))
    expected = np.concatenate([
        np.stack(normalise_clips(keys, frames, of_frames)).reshape(6, -1),
        np.stack(normalise_clips(keys, summaries, of_summaries))], 1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_ensemble_combines_its_members_probabilities_and_survives_its_artifact(tmp_path):
    cfg = model_config("audio", "default", {"members": MEMBERS})
    net = build_branch("audio", cfg, FEATURES)
    assert isinstance(net, AudioEnsemble) and net.embed_dim == 8 + 16
    audio_in = audio_input(cfg, FEATURES.audio)
    x = torch.from_numpy(np.stack([audio_in(c) for c in clips(4)]))
    frames, summaries = net.parts(x)
    assert frames.shape == (4, 50, 16) and summaries.shape == (4, summary_size((50, 16),
                                                                                "logmel"))
    net.train()
    assert net(x).shape == (4, 2, 8)  # each member's logits, for its own loss
    net.eval()
    with torch.no_grad():
        expected = product(net.members[0](frames), net.members[1](summaries))
        np.testing.assert_allclose(net(x).exp().numpy(), expected.numpy(), atol=1e-6)
        assert net.embed(x).shape == (4, 24)
        save_model(str(tmp_path / "e.pt"), net, FEATURES)
        loaded, info = load_model(str(tmp_path / "e.pt"))
        assert info.kind == "audio" and audio_config(loaded) == cfg
        np.testing.assert_allclose(loaded(x).numpy(), net(x).numpy(), atol=1e-6)


def test_each_member_trains_as_if_it_were_trained_alone():
    """One epoch of the ensemble leaves each member's weights as an epoch of that member
    alone, on the same batches, would (no dropout or masking, so no randomness)."""
    plain = [{**MEMBERS[0], "time_masks": 0, "freq_masks": 0, "dropout": 0.0},
             {**MEMBERS[1], "input_dropout": 0.0, "dropout": 0.0}]
    cfg = model_config("audio", "default", {"members": plain})
    audio_in = audio_input(cfg, FEATURES.audio)
    x = torch.from_numpy(np.stack([audio_in(c) for c in clips(32, seed=1)]))
    y = torch.arange(32) % 8
    torch.manual_seed(0)
    net = build_branch("audio", cfg, FEATURES)
    alone = [build_branch("audio", m, FEATURES) for m in cfg.members]
    for m, a in zip(net.members, alone):
        a.load_state_dict(m.state_dict())
    batches = [{"audio": x[i:i + 8], "label": y[i:i + 8]} for i in range(0, 32, 8)]
    loss = torch.nn.CrossEntropyLoss()
    train_epoch(net, batches, ["audio"], loss, torch.optim.AdamW(net.parameters(), lr=1e-2))
    for a, part in zip(alone, (0, 1)):
        own = [{"audio": net.parts(b["audio"])[part], "label": b["label"]} for b in batches]
        train_epoch(a, own, ["audio"], loss, torch.optim.AdamW(a.parameters(), lr=1e-2))
    for m, a in zip(net.members, alone):
        for (name, w), v in zip(m.state_dict().items(), a.state_dict().values()):
            np.testing.assert_allclose(w.float().numpy(), v.float().numpy(), atol=1e-5,
                                       err_msg=name)


def test_a_speaker_head_member_predicts_from_its_readout_standardised_per_speaker(tmp_path):
    """With each clip's speaker's readout statistics, the CNN member's probabilities are its
    speaker head's over the standardised readout; its dense layers still give the embedding,
    training leaves the head alone, and the head survives the artifact."""
    cfg = model_config("audio", "default", {"members": [{**MEMBERS[0], "speaker_head": True},
                                                        MEMBERS[1]]})
    net = build_branch("audio", cfg, FEATURES)
    cnn, mlp = net.members
    assert net.readout_dim == cnn.readout_dim == 2 * 8 and mlp.readout_dim == 0
    audio_in = audio_input(cfg, FEATURES.audio)
    x = torch.from_numpy(np.stack([audio_in(c) for c in clips(8, seed=2)]))
    head = cnn.speaker_head.weight.clone()
    train_epoch(net, [{"audio": x, "label": torch.arange(8)}], ["audio"],
                torch.nn.CrossEntropyLoss(), torch.optim.AdamW(net.parameters(), lr=1e-2))
    assert torch.equal(cnn.speaker_head.weight, head)  # fitted after training, not by it
    torch.nn.init.normal_(cnn.speaker_head.weight)
    net.eval()
    frames, summaries = net.parts(x)
    with torch.no_grad():
        readout = net.readout(x)
        assert readout.shape == (8, 16) and torch.equal(readout, cnn.readout(frames))
        mean, std = readout.mean(0), readout.std(0) + 1.0
        stats = torch.stack([mean, std]).expand(8, 2, 16)
        z = (readout - mean) / (std + 1e-5)
        expected = product(cnn.speaker_head(z), mlp(summaries))
        np.testing.assert_allclose(net(x, stats).exp().numpy(), expected.numpy(), atol=1e-6)
        assert not torch.allclose(net(x, stats), net(x))  # without statistics: the dense layers
        save_model(str(tmp_path / "h.pt"), net, FEATURES)
        loaded, _ = load_model(str(tmp_path / "h.pt"))
        np.testing.assert_allclose(loaded(x, stats).numpy(), net(x, stats).numpy(), atol=1e-6)


def test_a_member_without_speaker_statistics_weighs_more_the_fewer_clips_a_speaker_has():
    """With ``speaker_prior`` k, an ``utterance_norm`` member weighs 1 + k / (n + k) for a
    speaker of n clips (nearly 2 alone, 1 for many), the others 1; without counts, 1."""
    cfg = model_config("audio", "default", {"speaker_norm": True, "speaker_prior": 5,
                                            "members": [{**MEMBERS[0], "speaker_norm": True},
                                                        {**MEMBERS[0], "speaker_norm": True,
                                                         "utterance_norm": True}]})
    net = build_branch("audio", cfg, FEATURES).eval()
    audio_in = audio_input(cfg, FEATURES.audio)
    x = torch.from_numpy(np.stack([audio_in(c) for c in clips(4, seed=3)]))
    with torch.no_grad():
        speaker, free = (m(p) for m, p in zip(net.members, net.parts(x)))
        n = torch.tensor([1, 1, 5, 1000])
        got = net(x, clips=n).exp()
        for i, w in enumerate([1 + 5 / 6, 1 + 5 / 6, 1.5, 1 + 5 / 1005]):
            np.testing.assert_allclose(got[i].numpy(), product(
                speaker[i:i + 1], free[i:i + 1], weights=[1.0, w])[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(net(x).exp().numpy(), product(speaker, free).numpy(),
                                   atol=1e-6)
        assert not torch.allclose(got[0], net(x).exp()[0], atol=1e-4)


def test_the_training_reports_head_pass_weighs_members_by_each_actors_clips():
    """The training report's test predictions (``SpeakerHeadUDF`` with readout statistics)
    pass each actor's clip count, so they combine the members as labeling does."""
    cfg = model_config("audio", "default", {"speaker_norm": True, "speaker_prior": 5,
                                            "members": [{**MEMBERS[0], "speaker_norm": True,
                                                         "speaker_head": True},
                                                        {**MEMBERS[0], "speaker_norm": True,
                                                         "utterance_norm": True}]})
    net = build_branch("audio", cfg, FEATURES).eval()
    torch.nn.init.normal_(net.members[0].speaker_head.weight)
    audio_in = audio_input(cfg, FEATURES.audio)
    x = np.stack([audio_in(c) for c in clips(6, seed=4)])
    actors = np.array([1, 1, 1, 1, 1, 2])
    with torch.no_grad():
        readout = net.readout(torch.from_numpy(x)).numpy()
    keys = [actor_key(a) for a in actors]
    readouts = SpeakerStats(statistics(clip_sums(keys, readout)))
    counts = {"actor 01": 5, "actor 02": 1}
    got = SpeakerHeadUDF(net, False, readouts, counts)(
        {"audio": x, "trial_id": np.arange(6), "actor": actors, "label": np.zeros(6)})["y_pred"]
    stats = torch.as_tensor(stats_rows(keys, readouts.actors))
    with torch.no_grad():
        logits = net(torch.from_numpy(x), stats, clips=torch.tensor([5] * 5 + [1]))
        unweighed = net(torch.from_numpy(x), stats)
    np.testing.assert_array_equal(got, logits.argmax(1).numpy())
    assert not torch.allclose(logits, unweighed)  # the counts change the combination
