"""The synthetic corpus: RAVDESS layout and formats, determinism, idempotence, faces the Haar
cascade finds, and emotion cues that are there (and ambiguous exactly where designed)."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from emoray.ravdess import parse_name
from emoray.synth import synthesize_corpus
from emoray.synth import audio, video
from conftest import real_data

SMALL = dict(width=320, height=180)
CORPUS = dict(actors=(1, 2), emotions=(1, 2, 4, 5, 6, 8), statements=(1,), repetitions=(1,),
              **SMALL)
ONE_TRIAL = dict(actors=(2,), emotions=(5,), intensities=(2,), statements=(2,), repetitions=(1,))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("synth")
    return root, synthesize_corpus(root, **CORPUS)


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getparams(), np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0


def frames_db(x: np.ndarray, n: int = 480) -> np.ndarray:
    """RMS level (dBFS) of consecutive ``n``-sample frames."""
    x = x[: len(x) // n * n].reshape(-1, n)
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)


def mean_f0(x: np.ndarray, sr: int = audio.SAMPLE_RATE) -> float:
    """Median autocorrelation pitch (Hz) over the loud 40 ms frames."""
    n = 1920
    frames = x[: len(x) // n * n].reshape(-1, n)
    db = frames_db(x, n)
    frames = frames[db > db.max() - 15]
    spec = np.fft.rfft(frames * np.hanning(n), 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, : n]
    lo, hi = sr // 500, sr // 70
    return float(np.median(sr / (lo + np.argmax(ac[:, lo:hi], axis=1))))


def decode_gray(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def faces_found(frames: list[np.ndarray]) -> list[int]:
    cascade = cv2.CascadeClassifier(video.HAAR)
    return [len(cascade.detectMultiScale(f, 1.1, 5, minSize=(30, 30))) for f in frames]


def test_layout_and_counts(corpus):
    root, paths = corpus
    assert paths == sorted(p for p in root.rglob("*") if p.is_file())
    per_actor: dict[int, list] = {}
    for p in paths:
        name = parse_name(p.name)
        assert p.parent.name == f"Actor_{name.actor:02d}"
        assert p.suffix == (".wav" if name.modality == 3 else ".mp4")
        assert name.vocal_channel == 1
        per_actor.setdefault(name.actor, []).append(name)
    assert sorted(per_actor) == [1, 2]
    for names in per_actor.values():
        # neutral: intensity 1 only; five other emotions x 2 intensities; x 3 modalities
        assert len(names) == 3 * (1 + 5 * 2)
        assert not any(n.emotion == 1 and n.intensity == 2 for n in names)
        assert {n.modality for n in names} == {1, 2, 3}


def test_wav_format_and_leading_silence(corpus):
    _, paths = corpus
    durations = set()
    for p in (p for p in paths if p.suffix == ".wav"):
        params, x = read_wav(p)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 48_000)
        durations.add(round(len(x) / 48_000, 3))
        assert 3.0 <= len(x) / 48_000 <= 5.0
        db = frames_db(x)  # 10 ms frames
        assert db[:80].max() < -60, "the first 0.8 s should be near-silence"
        assert db.max() > db[:80].max() + 30
    assert len(durations) > 5, "durations should vary per trial"


def test_video_formats(corpus):
    _, paths = corpus
    for p in (p for p in paths if p.suffix == ".mp4"):
        with av.open(str(p)) as c:
            v = c.streams.video[0]
            assert v.codec_context.name == "h264"
            assert (v.codec_context.width, v.codec_context.height) == (320, 180)
            assert v.codec_context.pix_fmt == "yuv420p"
            assert abs(float(v.average_rate) - 29.97) < 0.01
            assert 3.0 <= v.frames / float(v.average_rate) <= 5.0
            if parse_name(p.name).modality == 2:
                assert not c.streams.audio
            else:
                (a,) = c.streams.audio
                assert a.codec_context.name == "aac"
                assert a.codec_context.sample_rate == 48_000
                assert a.codec_context.layout.name == "stereo"


def test_one_performance_per_trial(corpus):
    root, _ = corpus
    folder = root / "Actor_01"
    with av.open(str(folder / "01-01-05-02-01-01-01.mp4")) as c:
        av_video = [bytes(p) for p in c.demux(video=0) if p.size]
    with av.open(str(folder / "02-01-05-02-01-01-01.mp4")) as c:
        video_only = [bytes(p) for p in c.demux(video=0) if p.size]
    assert av_video == video_only
    with av.open(str(folder / "01-01-05-02-01-01-01.mp4")) as c:
        aac = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    _, wav = read_wav(folder / "03-01-05-02-01-01-01.wav")
    n = min(len(aac), len(wav)) // 480 * 480
    assert abs(len(aac) - len(wav)) < 2048
    assert np.corrcoef(frames_db(aac[:n]), frames_db(wav[:n]))[0, 1] > 0.95


def test_deterministic(corpus, tmp_path):
    """Same arguments, same files, even when other modalities are left out."""
    root, _ = corpus
    paths = synthesize_corpus(tmp_path, **{**CORPUS, "actors": (2,), "emotions": (6,),
                                           "intensities": (2,), "modalities": ("av", "audio")})
    assert len(paths) == 2
    for p in paths:
        twin = root / p.relative_to(tmp_path)
        if p.suffix == ".wav":
            assert p.read_bytes() == twin.read_bytes()
        else:
            assert all(np.array_equal(a, b) for a, b in zip(decode_gray(p), decode_gray(twin)))


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(path, frames, *args):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("killed")

    monkeypatch.setattr(video, "encode_h264", broken)
    with pytest.raises(RuntimeError, match="killed"):
        synthesize_corpus(tmp_path, **ONE_TRIAL, modalities=("video", "av"), **SMALL)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_idempotent(corpus):
    root, paths = corpus
    before = {p: p.stat().st_mtime_ns for p in paths}
    assert synthesize_corpus(root, **CORPUS) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == before
    assert not list(root.rglob(".*")), "no temporary files left behind"


def test_drawn_face_is_found(corpus):
    root, _ = corpus
    frames = decode_gray(root / "Actor_02" / "02-01-08-02-01-01-02.mp4")
    assert all(faces_found(frames[::20]))


def test_still_face_is_found(tmp_path):
    stills = real_data("ravdess-stills")
    (path,) = synthesize_corpus(tmp_path, **ONE_TRIAL, modalities=("video",), stills_dir=stills,
                                **SMALL)
    frames = decode_gray(path)
    assert all(faces_found(frames[::20]))
    still = cv2.resize(cv2.imread(str(stills / "Actor_02.png"), cv2.IMREAD_GRAYSCALE), (320, 180))
    assert np.abs(frames[0].astype(int) - still).mean() < 12, "the still is the background"


def test_720p_bitrate_near_ravdess(tmp_path):
    (path,) = synthesize_corpus(tmp_path, **ONE_TRIAL, modalities=("video",))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (1280, 720)
        seconds = v.frames / float(v.average_rate)
    mbit_s = path.stat().st_size * 8 / seconds / 1e6
    assert 10 / 1.5 < mbit_s < 10 * 1.5


def test_angry_and_sad_sound_different(corpus):
    root, _ = corpus
    for actor in (1, 2):
        _, angry = read_wav(root / f"Actor_{actor:02d}" / f"03-01-05-02-01-01-{actor:02d}.wav")
        _, sad = read_wav(root / f"Actor_{actor:02d}" / f"03-01-04-02-01-01-{actor:02d}.wav")
        assert frames_db(angry).max() > frames_db(sad).max() + 6
        assert mean_f0(angry) > mean_f0(sad) * 2 ** (2 / 12)


def test_actor_pitch_follows_gender(corpus):
    root, _ = corpus
    male = mean_f0(read_wav(root / "Actor_01" / "03-01-01-01-01-01-01.wav")[1])
    female = mean_f0(read_wav(root / "Actor_02" / "03-01-01-01-01-01-02.wav")[1])
    assert 90 < male < 160 < female < 280


def rngs(n: int = 3) -> list[np.random.Generator]:
    return [np.random.default_rng(100 + i) for i in range(n)]


def speech(emotion: int, intensity: int, actor: int = 3) -> np.ndarray:
    """A trial rendered from fixed generators, so only the emotion differs."""
    voice = audio.actor_voice(actor, np.random.default_rng(actor))
    timing, cues, noise = rngs()
    utt = audio.plan_utterance(1, emotion, intensity, voice, timing)
    return audio.render_speech(voice, utt, audio.vocal_cues(emotion, intensity, voice, cues), noise)


def face_frames(emotion: int, intensity: int) -> np.ndarray:
    """A trial's frames from fixed generators, so only the emotion differs."""
    voice = audio.actor_voice(3, np.random.default_rng(3))
    style = video.actor_face_style(np.random.default_rng(4))
    timing, cues, motion = rngs()
    utt = audio.plan_utterance(1, emotion, intensity, voice, timing)
    canvas = video.face_canvas(160, 90, None, 7)
    c = video.facial_cues(emotion, intensity, style, cues)
    return np.stack(list(video.render_video(canvas, c, style, utt, 29.97, motion)))


def test_calm_and_neutral_audio_are_identical_in_distribution():
    neutral = speech(1, 1)
    assert np.array_equal(neutral, speech(2, 1))
    assert np.array_equal(neutral, speech(2, 2))
    assert not np.array_equal(neutral, speech(4, 1))


def test_fearful_and_surprised_video_are_identical_in_distribution():
    style = video.actor_face_style(np.random.default_rng(4))
    for intensity in (1, 2):
        assert (video.facial_cues(6, intensity, style, np.random.default_rng(1))
                == video.facial_cues(8, intensity, style, np.random.default_rng(1)))
    fearful = face_frames(6, 2)
    assert np.array_equal(fearful, face_frames(8, 2))
    assert not np.array_equal(speech(6, 2), speech(8, 2)), "audio must tell them apart"


def test_other_emotions_look_different():
    neutral = face_frames(1, 1).astype(float)
    for emotion in (2, 3, 4, 5, 6, 7):
        other = face_frames(emotion, 2).astype(float)
        n = min(len(neutral), len(other))
        assert np.abs(other[:n] - neutral[:n]).mean() > 1.0, emotion


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        synthesize_corpus(tmp_path, width=321, height=180)
    with pytest.raises(ValueError, match="modalities"):
        synthesize_corpus(tmp_path, modalities=("smell",))
