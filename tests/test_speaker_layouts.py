"""Who speaks, in every archive layout: statistics blended with the training population by
how many clips a speaker has, training on statistics of random subsets of each speaker's
clips, and the labeling job's ``speakers`` setting (``none``, ``folder``, a table)."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.csv
import pyarrow as pa
import pytest
import torch

from emoray.artifact import save_model
from emoray.features.audio import audio_clip_features
from emoray.features.config import preset
from emoray.features.speakers import (clip_sums, draw_subsets, each_clip_sums, normalise,
                                      population, statistics, subset_statistics)
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.label.parts import read_output, read_speakers
from emoray.label.speakers import blended
from emoray.models import AudioNetConfig, audio_input, build_branch
from emoray.ravdess import EMOTIONS, parse_name
from emoray.synth.corpus import synthesize_corpus
from emoray.train.speaker_head import fit_speaker_heads
from test_label_job import _fit

FEATURES = preset("default")
PRIOR = 5.0


def test_one_clip_is_blended_with_the_population_and_many_keep_their_own():
    """A summary (one row per clip) of a speaker heard once has a standard deviation of zero
    on its own; blended with the population it is the population's, shrunk by 1/(1+k). A
    speaker of many clips keeps nearly their own statistics."""
    rng = np.random.default_rng(0)
    pop = np.array([np.zeros(4), np.ones(4)], np.float32)
    one = rng.normal(3, 1, (1, 4))
    alone = statistics(clip_sums(["x"], [one]))["x"]
    assert np.allclose(alone[1], 0)  # degenerate: the reason labels were constant
    mean, std = statistics(clip_sums(["x"], [one]), pop, PRIOR)["x"]
    w = 1 / (1 + PRIOR)
    np.testing.assert_allclose(mean, w * one[0], rtol=1e-6)
    assert np.all(np.asarray(std) > 0.9)
    many = rng.normal(3, 2, (500, 4))
    own = statistics(clip_sums(["y"] * 500, [r[None] for r in many]))["y"]
    got = statistics(clip_sums(["y"] * 500, [r[None] for r in many]), pop, PRIOR)["y"]
    np.testing.assert_allclose(got[0], own[0], rtol=0.02)
    np.testing.assert_allclose(got[1], own[1], rtol=0.02)


def test_a_lone_clip_standardised_at_its_level_does_not_change_with_gain():
    """With the population moved to the speaker's level (``speaker_level``), a clip alone 20 dB
    louder or quieter is standardised to the same input (log-mel dB: a gain adds a constant;
    a summary moves along ``gain_direction``)."""
    cfg = AudioNetConfig(speaker_norm=True, speaker_prior=PRIOR, speaker_level=True,
                         members=(AudioNetConfig(speaker_norm=True),
                                  AudioNetConfig(input="summary", speaker_norm=True)))
    audio_in = audio_input(cfg, FEATURES.audio)
    rng = np.random.default_rng(0)
    clips = [audio_in(rng.normal(-40, 8, FEATURES.audio.shape)) for _ in range(20)]
    pop = population({"all": each_clip_sums(clips, audio_in.blocks).sum(0)})
    x = rng.normal(-35, 8, FEATURES.audio.shape)

    def alone(frames, direction):
        v = audio_in(frames)
        st = statistics(clip_sums(["x"], [v], audio_in.blocks), pop, PRIOR, direction)["x"]
        return normalise(v, *st, audio_in.blocks)

    base = alone(x, audio_in.gain_direction)
    for gain in (-20.0, 20.0):
        np.testing.assert_allclose(alone(x + gain, audio_in.gain_direction), base, atol=2e-3)
        assert np.abs(alone(x + gain, None) - alone(x, None)).max() > 1.0  # without: it moves


def test_training_subsets_hold_their_clip_and_span_alone_to_all():
    keys = ["a"] * 40 + ["b"] * 20
    subsets = draw_subsets(keys, np.random.default_rng(0))
    sizes = Counter()
    for i, idx in enumerate(subsets):
        assert idx[0] == i and len(set(idx)) == len(idx)
        assert {keys[j] for j in idx} == {keys[i]}
        sizes[len(idx)] += 1
    assert sizes[1] >= 3 and sizes[40] + sizes[20] >= 10 and len(sizes) > 10
    x = [np.full((1, 3), float(i)) for i in range(60)]
    st = subset_statistics(each_clip_sums(x), subsets, None, 0.0)
    for i in (0, 45):
        np.testing.assert_allclose(st[i, 0], np.mean([x[j][0] for j in subsets[i]], 0),
                                   rtol=1e-5)


def fit_recipe_model(corpus: Path, path: Path):
    """The speech recipe's kind of model, small, fitted here to the corpus's actors 1 and 2
    on the statistics labeling will see: each clip standardised with the statistics of a
    random subset of its speaker's clips (three draws per clip), blended with the population
    by ``PRIOR``; a CNN with a speaker head and a summary MLP."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    wavs = sorted(corpus.rglob("03-*.wav"))
    frames = [audio_clip_features(str(p), FEATURES.audio)[0] for p in wavs]
    keys = [f"actor {parse_name(p.name).actor}" for p in wavs]
    y = np.array([parse_name(p.name).label for p in wavs])
    cnn = AudioNetConfig(channels=(32, 32), batchnorm=True, speaker_norm=True, readout="stats",
                         hidden=(32,), speaker_head=True)
    mlp = AudioNetConfig(input="summary", speaker_norm=True, hidden=(64,), input_dropout=0.2,
                         dropout=0.5)
    cfg = AudioNetConfig(speaker_norm=True, speaker_prior=PRIOR, speaker_subsets=True,
                         members=(cnn, mlp))
    torch.manual_seed(0)
    net = build_branch("audio", cfg, FEATURES)
    audio_in = audio_input(cfg, FEATURES.audio)
    x = np.stack([audio_in(f) for f in frames])
    sums = each_clip_sums(x, audio_in.blocks)
    pop = population({"all": sums.sum(0)})
    draws = [s for seed in range(3) for s in draw_subsets(keys, np.random.default_rng(seed))]
    st = subset_statistics(sums, draws, pop, PRIOR)
    xn = np.stack([normalise(x[d[0]], *s, audio_in.blocks) for d, s in zip(draws, st)])
    yy = np.concatenate([y] * 3)
    parts = [p.numpy() for p in net.parts(torch.from_numpy(xn))]
    for member, part in zip(net.members, parts):
        _fit(member, [part], yy, 30, 3e-3)
    with torch.no_grad():
        readouts = net.members[0].eval().readout(torch.from_numpy(parts[0])).numpy()
    each = each_clip_sums(readouts[:len(y)])  # the first draw's readouts, one per clip
    r_pop = population({"all": each.sum(0)})
    fit_speaker_heads(net, readouts[:len(y)], subset_statistics(each, draws[:len(y)], r_pop,
                                                                PRIOR), y, None, 0.1, 0)
    net.input_population.copy_(torch.from_numpy(pop))
    net.readout_population.copy_(torch.from_numpy(r_pop))
    torch.set_num_threads(threads)
    save_model(str(path), net.eval(), FEATURES)
    return str(path), net


@pytest.fixture(scope="module")
def recipe_model(synth_corpus, tmp_path_factory):
    return fit_recipe_model(synth_corpus, tmp_path_factory.mktemp("model") / "audio.pt")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> list[Path]:
    """Actors 5 and 6 (never trained on), one recording each of every trial, each file in a
    folder of its own under a name that does not say who speaks."""
    src = tmp_path_factory.mktemp("unseen-src")
    synthesize_corpus(src, actors=(5, 6), seed=1, modalities=("audio",), repetitions=(1,))
    root = tmp_path_factory.mktemp("unseen")
    out = []
    for i, wav in enumerate(sorted(src.rglob("03-*.wav"))):
        (root / f"call-{i:03d}").mkdir()
        out.append(shutil.copy(wav, root / f"call-{i:03d}" / wav.name))
    return [Path(p) for p in out]


def _labels(ray_local, model: str, files: list[Path], tmp_path: Path, speakers: str):
    cfg = LabelConfig(input=str(files[0].parents[1]), output=str(tmp_path / "labels"),
                      model=model, speakers=speakers)
    cfg.validate()
    run_label(cfg)
    rows = read_output(cfg.output)[0].to_pylist()
    return cfg, {Path(r["uri"]).name: r for r in rows}


def test_single_files_of_unseen_speakers_are_labelled_alone(ray_local, recipe_model, unseen,
                                                            tmp_path):
    """Every file of two unseen actors labelled alone (``speakers: none``): well above
    chance, and no class takes over (a speaker of one clip used to get constant labels)."""
    model, _ = recipe_model
    cfg, rows = _labels(ray_local, model, unseen, tmp_path, "none")
    assert len(rows) == len(unseen) == 60
    assert all(r["speaker_clips"] == 1 and r["speaker"] == r["uri"] for r in rows.values())
    truth = [parse_name(n).label for n in rows]
    pred = [EMOTIONS.index(r["label"]) for r in rows.values()]
    accuracy = np.mean(np.equal(truth, pred))
    share = Counter(pred).most_common(1)[0][1] / len(pred)
    assert accuracy > 0.4, accuracy  # chance 1/8
    assert share <= 0.4, Counter(pred)


def test_grouped_speakers_use_their_statistics(ray_local, recipe_model, unseen, tmp_path):
    """The same files grouped by the actor in their names (``auto``): each row rests on its
    actor's 30 clips, and accuracy holds."""
    model, _ = recipe_model
    _, rows = _labels(ray_local, model, unseen, tmp_path, "auto")
    assert {r["speaker"] for r in rows.values()} == {"actor 05", "actor 06"}
    assert {r["speaker_clips"] for r in rows.values()} == {30}
    truth = [parse_name(n).label for n in rows]
    pred = [EMOTIONS.index(r["label"]) for r in rows.values()]
    assert np.mean(np.equal(truth, pred)) > 0.4


def test_a_speakers_table_groups_files_as_it_says(ray_local, recipe_model, unseen, tmp_path):
    """A ``uri,speaker`` table (CSV here, relative paths) puts three files under one speaker
    and two under another across folders; a file it does not list is alone."""
    model, net = recipe_model
    alice, bob, other = unseen[:3], unseen[30:32], unseen[40]
    files = alice + bob + [other]
    root = tmp_path / "mixed"
    for f in files:
        shutil.copytree(f.parent, root / f.parent.name)
    copies = [root / f.parent.name / f.name for f in files]
    table = tmp_path / "who.csv"
    pyarrow.csv.write_csv(pa.table({"uri": [str(c) for c in copies[:5]],
                                    "speaker": ["alice"] * 3 + ["bob"] * 2}), table)
    cfg = LabelConfig(input=str(root), output=str(tmp_path / "labels"), model=model,
                      speakers=str(table))
    cfg.validate()
    run_label(cfg)
    rows = {r["uri"]: r for r in read_output(cfg.output)[0].to_pylist()}
    assert [(rows[str(c)]["speaker"], rows[str(c)]["speaker_clips"]) for c in copies] == \
        [("alice", 3)] * 3 + [("bob", 2)] * 2 + [(str(copies[5]), 1)]
    saved = {r["speaker"]: r for r in read_speakers(cfg.output).to_pylist()}
    assert {k: r["clips"] for k, r in saved.items()} == {"alice": 3, "bob": 2, str(copies[5]): 1}
    audio_in = audio_input(net.cfg, FEATURES.audio)
    x = [audio_in(audio_clip_features(str(c), FEATURES.audio)[0]) for c in copies[:3]]
    mean, std = blended(net, "input", clip_sums(["a"] * 3, x, audio_in.blocks), audio_in)["a"]
    np.testing.assert_allclose(saved["alice"]["mean"], mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(saved["alice"]["std"], std, rtol=1e-4, atol=1e-4)
