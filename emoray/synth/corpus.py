"""Write a synthetic RAVDESS-layout corpus: ``Actor_XX/MM-01-EE-II-SS-RR-AA.{wav,mp4}``.

Every trial is one performance, drawn from a seed of its own, so its audio-only, video-only and
full-AV files agree (the full-AV file carries the video-only file's very bitstream). Files
appear atomically under their final names; existing ones are kept.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import av
import numpy as np

from emoray.ravdess import RavdessName, parse_name
from emoray.synth import audio, video

MODALITY_CODES = {"av": 1, "video": 2, "audio": 3}
AAC_BITRATE = 192_000
_AAC_FRAME = 1024


def synthesize_corpus(out_dir: str | Path, actors: Sequence[int] = (1, 2), *, seed: int = 0,
                      modalities: Sequence[str] = ("audio", "video", "av"),
                      emotions: Sequence[int] | None = None,
                      statements=(1, 2), repetitions=(1, 2), intensities=(1, 2),
                      width: int = 1280, height: int = 720, fps: float = 29.97,
                      stills_dir: str | Path | None = None,
                      ) -> list[Path]:
    """Synthesize the speech trials of ``actors`` into ``out_dir/Actor_XX/``.

    ``emotions`` are RAVDESS codes 1..8 (None: all); neutral (1) has no intensity 2. Audio-only
    trials are 48 kHz mono 16-bit WAV, video-only H.264 MP4, full AV H.264 + 48 kHz stereo AAC.
    ``stills_dir`` holds ``Actor_NN.png`` face stills; without it faces are drawn. Returns the
    paths of all the requested files, sorted, whether written now or already there.
    """
    unknown = set(modalities) - set(MODALITY_CODES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; "
                         f"choose from {sorted(MODALITY_CODES)}")
    if width % 2 or height % 2 or width <= 0 or height <= 0:
        raise ValueError(f"frame size {width}x{height}: both must be positive and even (yuv420p)")
    out = Path(out_dir)
    paths = []
    for actor in actors:
        actor_rngs = _rngs(seed, actor, n=3)
        voice = audio.actor_voice(actor, actor_rngs[0])
        style = video.actor_face_style(actor_rngs[1])
        look = int(actor_rngs[2].integers(2**31))
        still = None if stills_dir is None else video.still_path(stills_dir, actor)
        for key in _trial_keys(range(1, 9) if emotions is None else emotions, intensities,
                               statements, repetitions):
            files = _trial_files(out, actor, key, modalities)
            missing = {m for m, f in files.items() if not f.exists()}
            if missing:
                trial = Performance(seed, actor, *key, voice=voice, style=style)
                trial.write(files, missing, width, height, fps, still, look)
            paths.extend(files.values())
    return sorted(paths)


def _trial_files(out: Path, actor: int, key: tuple[int, ...],
                 modalities: Sequence[str]) -> dict[str, Path]:
    """The trial's file per modality, validated as a RAVDESS name."""
    files = {}
    for m in modalities:
        name = parse_name(RavdessName(MODALITY_CODES[m], 1, *key, actor).stem())
        files[m] = out / f"Actor_{actor:02d}" / (name.stem() + (".wav" if m == "audio" else ".mp4"))
    return files


def _trial_keys(emotions, intensities, statements, repetitions) -> Iterator[tuple[int, ...]]:
    """(emotion, intensity, statement, repetition) of each trial; neutral has no intensity 2."""
    for emotion in emotions:
        for intensity in intensities:
            if emotion == 1 and intensity == 2:
                continue
            for statement in statements:
                for repetition in repetitions:
                    yield emotion, intensity, statement, repetition


def _rngs(seed: int, *key: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators for one actor or trial key."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed, spawn_key=key).spawn(n)]


class Performance:
    """One trial: its timing, speech and face, each from its own generator of the trial's seed,
    so that any subset of its files comes out the same."""

    def __init__(self, seed: int, actor: int, emotion: int, intensity: int, statement: int,
                 repetition: int, *, voice: audio.Voice, style: video.FaceStyle):
        self.emotion, self.intensity, self.statement = emotion, intensity, statement
        self.voice, self.style = voice, style
        self._timing_rng, self._audio_rng, self._video_rng = _rngs(
            seed, actor, emotion, intensity, statement, repetition, n=3)

    @cached_property
    def utterance(self) -> audio.Utterance:
        return audio.plan_utterance(self.statement, self.emotion, self.intensity, self.voice,
                                    self._timing_rng)

    @cached_property
    def speech(self) -> np.ndarray:
        cues = audio.vocal_cues(self.emotion, self.intensity, self.voice, self._audio_rng)
        return audio.render_speech(self.voice, self.utterance, cues, self._audio_rng)

    def frames(self, canvas: video.Canvas, fps: float) -> Iterator[np.ndarray]:
        cues = video.facial_cues(self.emotion, self.intensity, self.style, self._video_rng)
        return video.render_video(canvas, cues, self.style, self.utterance, fps, self._video_rng)

    def write(self, files: dict[str, Path], missing: set[str], width: int, height: int,
              fps: float, still: Path | None, look: int) -> None:
        """Write the ``missing`` modalities to their ``files``."""
        folder = next(iter(files.values())).parent
        folder.mkdir(parents=True, exist_ok=True)
        if "audio" in missing:
            with _scratch(folder) as tmp:
                audio.write_wav(tmp, self.speech)
                os.replace(tmp, files["audio"])
        if missing & {"video", "av"}:
            canvas = video.face_canvas(width, height, still, look)
            with _scratch(folder) as tmp:
                video.encode_h264(tmp, self.frames(canvas, fps), width, height, fps)
                if "av" in missing:
                    with _scratch(folder) as av_tmp:
                        mux_av(tmp, self.speech, av_tmp)
                        os.replace(av_tmp, files["av"])
                if "video" in missing:
                    os.replace(tmp, files["video"])


@contextmanager
def _scratch(folder: Path) -> Iterator[Path]:
    """A fresh temporary name in ``folder`` (so that ``os.replace`` publishes it atomically); the
    file is removed on exit unless it was renamed."""
    tmp = folder / f".synth-{uuid.uuid4().hex}.part"
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def mux_av(video_path: Path, speech: np.ndarray, dest: Path) -> None:
    """Copy the H.264 stream of ``video_path`` and add ``speech`` as 48 kHz stereo AAC."""
    with av.open(str(video_path)) as src, av.open(str(dest), "w", format="mp4") as out:
        v_in = src.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        a_out = out.add_stream("aac", rate=audio.SAMPLE_RATE, layout="stereo",
                               options={"aac_coder": "fast"})
        a_out.bit_rate = AAC_BITRATE
        packets = []
        for packet in src.demux(v_in):
            if packet.dts is not None:
                packet.stream = v_out
                packets.append(packet)
        stereo = np.ascontiguousarray(np.stack([speech, speech]))
        for start in range(0, stereo.shape[1], _AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(stereo[:, start:start + _AAC_FRAME], format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = audio.SAMPLE_RATE, start
            packets.extend(a_out.encode(frame))
        packets.extend(a_out.encode(None))
        for packet in sorted(packets, key=lambda p: float(p.dts * p.time_base)):
            out.mux(packet)
