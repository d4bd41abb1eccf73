"""``emoray evaluate`` on the session's local Ray: an audio model trained here on the synthetic
corpus, scored on a held-out synthetic actor and (when present) on real RAVDESS speech, against
predictions computed here on the training feature path."""

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emoray.artifact import save_model
from emoray.evaluate import cli as evaluate_cli
from emoray.evaluate import evaluate
from emoray.features.audio import audio_clip_features
from emoray.features.config import preset
from emoray.features.speakers import (clip_sums, normalise, normalise_clips, speaker_key,
                                      statistics, stats_rows)
from emoray.label.config import LabelConfig
from emoray.label.parts import read_output, read_speakers
from emoray.features.summary import clip_summary
from emoray.models import AudioNet, AudioNetConfig, build_branch
from emoray.ravdess import parse_name
from emoray.synth.corpus import synthesize_corpus
from emoray.train.metrics import confusion
from emoray.train.speaker_head import fit_speaker_heads, readout_statistics
from conftest import real_data
from test_label_job import _fit

FEATURES = preset("default")


def fit_audio(synth_corpus, path: Path, speaker_norm: bool, ensemble: bool = False):
    """(artifact path, net): a small audio CNN fitted to the corpus's actors 1 and 2, on
    per-utterance or (``speaker_norm``) per-speaker normalised features; with ``ensemble``,
    the speech recipe's kind of model: that CNN, with a speaker head, and an MLP over clip
    summaries, each fitted to its own input standardised per speaker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    wavs = sorted(synth_corpus.rglob("03-*.wav"))
    frames = [audio_clip_features(str(p), FEATURES.audio)[0] for p in wavs]
    keys = [speaker_key(str(p)) for p in wavs]
    y = np.array([parse_name(p.name).label for p in wavs])
    torch.manual_seed(0)
    cnn = AudioNetConfig(channels=(32, 32), batchnorm=True, utterance_norm=not speaker_norm,
                         speaker_norm=speaker_norm, readout="stats", hidden=(32,))
    if ensemble:
        mlp = AudioNetConfig(input="summary", speaker_norm=True, hidden=(64,),
                             input_dropout=0.2, dropout=0.5)
        cnn = dataclasses.replace(cnn, speaker_head=True)
        net = build_branch("audio", AudioNetConfig(speaker_norm=True, members=(cnn, mlp)),
                           FEATURES)
        normalised = [np.stack(normalise_clips(keys, x, statistics(clip_sums(keys, x))))
                      for x in (frames, summaries(frames))]
        for member, x in zip(net.members, normalised):
            _fit(member, [x], y, 40, 3e-3)
        with torch.no_grad():
            readouts = net.members[0].eval().readout(torch.from_numpy(normalised[0])).numpy()
        fit_speaker_heads(net, readouts, stats_rows(keys, readout_statistics(keys, readouts)), y,
                          None, 0.1, 0)
    else:
        x = normalise_clips(keys, frames, statistics(clip_sums(keys, frames))) if speaker_norm \
            else frames
        net = _fit(AudioNet(cnn, FEATURES.audio.shape), [np.stack(x)], y, 40, 3e-3)
    torch.set_num_threads(threads)
    save_model(str(path), net.eval(), FEATURES)
    return str(path), net


def saved_statistics(output: Path, readout: bool = False) -> dict:
    """speaker -> (mean, std) of the input (or ``readout``) statistics a labeling output's
    committed ``speakers/`` parts hold."""
    prefix = "readout_" if readout else ""
    return {r["speaker"]: (r[f"{prefix}mean"], r[f"{prefix}std"])
            for r in read_speakers(str(output)).to_pylist()}


def summaries(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [clip_summary(x, FEATURES.audio.kind) for x in frames]


@pytest.fixture(scope="module")
def audio_model(synth_corpus, tmp_path_factory):
    return fit_audio(synth_corpus, tmp_path_factory.mktemp("model") / "audio.pt", False)


def expected_confusion(net, paths: list[Path]) -> list[list[int]]:
    """The confusion matrix computed here: training features of each file, the net, argmax."""
    x = np.stack([audio_clip_features(str(p), FEATURES.audio)[0] for p in paths])
    with torch.no_grad():
        predicted = net(torch.from_numpy(x)).argmax(1).numpy()
    return confusion([parse_name(p.name).label for p in paths], predicted).tolist()


@pytest.fixture(scope="module")
def held_out(synth_corpus, tmp_path_factory) -> Path:
    """Actor 3's audio (never trained on), a broken file and a video-only file with RAVDESS
    names, and a file without one."""
    root = tmp_path_factory.mktemp("held-out")
    synthesize_corpus(root, actors=(3,), seed=0, modalities=("audio",), repetitions=(1,))
    (root / "03-01-05-01-01-02-03.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt broken")
    shutil.copy(next(synth_corpus.rglob("02-*.mp4")), root)
    shutil.copy(next(synth_corpus.rglob("03-*.wav")), root / "memo.wav")
    (root / "notes.txt").write_text("not media")
    return root


def test_evaluate_scores_files_against_their_names(ray_local, audio_model, held_out, tmp_path,
                                                    capsys):
    model, net = audio_model
    out = tmp_path / "eval"
    rc = evaluate_cli.main(["--model", model, "--data", str(held_out), "--output", str(out)])
    assert rc == 0
    result = json.loads((out / "evaluation.json").read_text())
    wavs = sorted((held_out / "Actor_03").glob("03-*.wav"))
    assert result["n"] == len(wavs) == 30
    assert result["confusion"] == expected_confusion(net, wavs)
    assert result["accuracy"] > 0.3  # chance is 1/8: the model learned, and evaluate sees it
    assert result["by_modality"] == {"audio": {k: result[k] for k in
                                               ("n", "accuracy", "uar", "macro_f1")}}
    failed = {Path(e["uri"]).name: e["stage"] for e in result["errors"]}
    video_only = next(held_out.glob("02-*.mp4")).name  # nothing an audio model can label
    assert failed == {"03-01-05-01-01-02-03.wav": "probe", video_only: "route"}
    assert [Path(u["uri"]).name for u in result["unnamed"]] == ["memo.wav"]
    printed = capsys.readouterr().out
    assert f"accuracy {100 * result['accuracy']:.2f}%" in printed
    assert f"macro-F1 {100 * result['macro_f1']:.2f}%" in printed
    assert "03-01-05-01-01-02-03.wav" in printed and "memo.wav" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("angry"))
    assert [int(v) for v in row.split()[1:]] == result["confusion"][4]


def test_real_flac_and_wav_files_are_scored(ray_local, audio_model, tmp_path):
    """The same eight real trials as 16 kHz FLAC and as the original 48 kHz WAV."""
    model, net = audio_model
    actor = {rate: real_data(f"ravdess-speech-{rate}/Actor_01") for rate in ("16k", "48k")}
    names = sorted(p.stem for p in actor["48k"].glob("*.wav"))
    names = names[::8][:8]
    for sub, ext, rate in (("flac", "flac", "16k"), ("wav", "wav", "48k")):
        (tmp_path / "data" / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(actor[rate] / f"{n}.{ext}",
                        tmp_path / "data" / sub)
    result = evaluate(LabelConfig(model=model, input=str(tmp_path / "data"),
                                  output=str(tmp_path / "eval")))
    assert result["n"] == 16 and not result["errors"] and not result["unnamed"]
    paths = sorted((tmp_path / "data").rglob("03-*"))
    assert result["confusion"] == expected_confusion(net, paths)


def test_default_model_is_the_speech_model_of_the_working_directory(
        ray_local, audio_model, held_out, tmp_path, monkeypatch, capsys):
    """Without --model, evaluate (and labeling) use models/audio-speech18.pt, and say how to
    build it when it is missing."""
    monkeypatch.chdir(tmp_path)
    assert evaluate_cli.main(["--data", str(held_out)]) != 0
    err = capsys.readouterr().err
    assert "models/audio-speech18.pt" in err and "make speech-model" in err
    (tmp_path / "models").mkdir()
    shutil.copy(audio_model[0], tmp_path / "models" / "audio-speech18.pt")
    assert evaluate_cli.main(["--data", str(held_out), "--output", "eval"]) == 0
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    wavs = sorted((held_out / "Actor_03").glob("03-*.wav"))
    assert result["confusion"] == expected_confusion(audio_model[1], wavs)


@pytest.fixture(scope="module")
def speaker_model(synth_corpus, tmp_path_factory):
    return fit_audio(synth_corpus, tmp_path_factory.mktemp("model") / "audio-spk.pt", True)


@pytest.fixture(scope="module")
def speaker_eval(ray_local, speaker_model, held_out, tmp_path_factory):
    """(output, result, what it printed): ``held_out`` evaluated with the speaker model."""
    out = tmp_path_factory.mktemp("speaker-eval") / "eval"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = evaluate(LabelConfig(model=speaker_model[0], input=str(held_out),
                                      output=str(out)))
    return out, result, printed.getvalue()


def test_speaker_normalised_model_uses_each_speakers_own_statistics(speaker_model, held_out,
                                                                    speaker_eval):
    """Actor 3 (never trained on) is standardised with statistics of its own files (evaluate
    labels only RAVDESS-named ones), computed by the job and kept with the output."""
    _, net = speaker_model
    out, result, _ = speaker_eval
    wavs = sorted((held_out / "Actor_03").glob("03-*.wav"))
    feats = {p: audio_clip_features(str(p), FEATURES.audio)[0] for p in wavs}
    stats = statistics(clip_sums([speaker_key(str(p)) for p in feats], feats.values()))
    saved = saved_statistics(out)
    assert list(saved) == list(stats) == ["actor 03"]
    for key, (mean, std) in stats.items():
        np.testing.assert_allclose(saved[key][0], mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(saved[key][1], std, rtol=1e-5, atol=1e-5)
    x = np.stack(normalise_clips(["actor 03"] * len(wavs), [feats[p] for p in wavs], stats))
    with torch.no_grad():
        predicted = net(torch.from_numpy(x)).argmax(1).numpy()
    assert result["confusion"] == confusion([parse_name(p.name).label for p in wavs],
                                            predicted).tolist()
    assert result["accuracy"] > 0.3  # chance is 1/8


def test_a_speaker_is_labelled_whole_whatever_the_part_size(speaker_model, held_out,
                                                            speaker_eval, tmp_path):
    """Parts hold whole speakers: with one file per part the labels are the same; a speaker
    larger than ``speaker_files`` is split evenly, each part's statistics from its own clips."""
    _, result, _ = speaker_eval
    n = len(list((held_out / "Actor_03").glob("03-*.wav")))
    again = evaluate(LabelConfig(model=speaker_model[0], input=str(held_out),
                                 output=str(tmp_path / "one"), files_per_part=1))
    assert again["confusion"] == result["confusion"]
    assert [(r["speaker"], r["clips"]) for r in read_speakers(str(tmp_path / "one")).to_pylist()] \
        == [("actor 03", n)]
    files = sum(1 for p in held_out.rglob("*") if p.is_file())  # audio and video of actor 3
    evaluate(LabelConfig(model=speaker_model[0], input=str(held_out),
                         output=str(tmp_path / "split"), files_per_part=1,
                         speaker_files=-(-files // 2)))
    clips = [r["clips"] for r in read_speakers(str(tmp_path / "split")).to_pylist()]
    assert len(clips) == 2 and sum(clips) == n and min(clips) >= n // 3  # an even split
    labels = read_output(str(tmp_path / "split"))[0].to_pylist()
    assert sorted(r["speaker_clips"] for r in labels) == sorted(c for c in clips
                                                                for _ in range(c))


@pytest.fixture(scope="module")
def ensemble_model(synth_corpus, tmp_path_factory):
    return fit_audio(synth_corpus, tmp_path_factory.mktemp("model") / "audio-ensemble.pt", True,
                     ensemble=True)


def test_ensemble_labels_with_each_members_own_speaker_statistics(ray_local, ensemble_model,
                                                                  held_out, tmp_path):
    """The speech recipe's kind of model: each file of actor 3 goes to the CNN as frames and
    to the MLP as its clip summary, each standardised with actor 3's statistics of that input
    (side by side in its ``speakers/`` part); the CNN predicts with its speaker head, over its
    readout standardised with actor 3's readout statistics (the same rows); the
    label is the product of the members' probabilities (both need speaker statistics,
    so they weigh the same)."""
    model, net = ensemble_model
    out = tmp_path / "eval"
    result = evaluate(LabelConfig(model=model, input=str(held_out), output=str(out)))
    wavs = sorted((held_out / "Actor_03").glob("03-*.wav"))
    frames = [audio_clip_features(str(p), FEATURES.audio)[0] for p in wavs]
    keys = ["actor 03"] * len(wavs)
    inputs = (frames, summaries(frames))
    stats = [statistics(clip_sums(keys, x))["actor 03"] for x in inputs]
    saved = saved_statistics(out)
    assert list(saved) == ["actor 03"]
    for i in (0, 1):  # mean, std: the frames' coefficients, then the summary's elements
        np.testing.assert_allclose(saved["actor 03"][i], stats[0][i] + stats[1][i], rtol=1e-4,
                                   atol=1e-4)
    x = [torch.from_numpy(np.stack(normalise_clips(keys, v, {"actor 03": s})))
         for v, s in zip(inputs, stats)]
    cnn, mlp = net.members
    with torch.no_grad():
        readouts = cnn.readout(x[0]).numpy()
        readout_stats = readout_statistics(keys, readouts)
        saved = saved_statistics(out, readout=True)
        np.testing.assert_allclose(saved["actor 03"], readout_stats["actor 03"], rtol=1e-4,
                                   atol=1e-4)
        z = normalise(readouts, *readout_stats["actor 03"])
        probs = (torch.log_softmax(cnn.speaker_head(torch.from_numpy(z)), 1)
                 + torch.log_softmax(mlp(x[1]), 1))
    assert result["confusion"] == confusion([parse_name(p.name).label for p in wavs],
                                            probs.argmax(1).numpy()).tolist()
    assert result["accuracy"] > 0.3  # chance is 1/8
