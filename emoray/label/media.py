"""Media for labeling: probe a file by content, stream-decode it in windows.

Windowed decoding keeps only what the current windows need: audio samples from the oldest open
window on, and the sampled frames' Y planes of the open windows (each window is cropped to
faces and released as soon as its last frame arrives). Memory does not grow with the length of
the recording.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterator, Sequence

import av
import numpy as np

from emoray.errors import MediaError
from emoray.features.config import VideoFeatureConfig
from emoray.features.ffmpeg import ffmpeg_errors, open_media
from emoray.features.video import (copy_y, centre_box, crop_faces, decoded_frames, face_box,
                                   frame_rate, frame_size, open_video)

_PROBE_OPTIONS = {"probesize": "65536", "analyzeduration": "0"}


@dataclass(frozen=True)
class Probe:
    has_audio: bool  # an audio stream
    has_video: bool  # a moving-picture stream (cover art and still images do not count)
    duration_s: float


def probe(src) -> Probe:
    """Streams and duration of a file object, from its content (the name plays no part).

    Raises ``MediaError("probe", ...)`` for data that is not audio or video.
    """
    with open_media(src, "probe", _PROBE_OPTIONS) as container, ffmpeg_errors("probe"):
        audio = bool(container.streams.audio)
        still = container.format.name == "image2" or container.format.name.endswith("_pipe")
        video = not still and any(not s.disposition & av.stream.Disposition.attached_pic
                                  for s in container.streams.video)
        if not (audio or video):
            raise MediaError("probe", "no audio or video stream"
                                      + (" (a still image)" if still else ""))
        duration = _duration(container)
    return Probe(audio, video, duration)


def _duration(container) -> float:
    """From the headers, else by reading the packets' timestamps (no decoding)."""
    if container.duration:
        return container.duration / av.time_base
    ends = [float(s.duration * s.time_base) for s in container.streams if s.duration]
    if ends:
        return max(ends)
    end = 0.0
    for packet in container.demux():
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def audio_windows(src, sample_rate: int, starts: Sequence[float],
                  window_s: float) -> Iterator[np.ndarray | None]:
    """For each start (ascending), the mono ``sample_rate`` samples of
    ``[start, start + window_s)``, decoded as ``features.audio.decode_audio`` does (resampled,
    mean of the channels); shorter where the audio ends, None past its end."""
    n = round(window_s * sample_rate)
    bounds = [(round(s * sample_rate), round(s * sample_rate) + n) for s in starts]
    chunks: list[np.ndarray] = []
    first, end, k = 0, 0, 0  # the buffer holds samples [first, end)
    for chunk in _mono_chunks(src, sample_rate):
        chunks.append(chunk)
        end += len(chunk)
        while k < len(bounds) and end >= bounds[k][1]:
            buf = np.concatenate(chunks)
            lo, hi = bounds[k]
            yield buf[lo - first:hi - first].copy()
            k += 1
            cut = min(bounds[k][0] if k < len(bounds) else end, end) - first
            chunks, first = [buf[max(cut, 0):]], first + max(cut, 0)
    buf = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    for lo, hi in bounds[k:]:
        part = buf[max(lo - first, 0):max(hi - first, 0)]
        yield part.copy() if len(part) else None


def _mono_chunks(src, sample_rate: int) -> Iterator[np.ndarray]:
    with open_media(src, "decode", _PROBE_OPTIONS) as container, ffmpeg_errors("decode"):
        if not container.streams.audio:
            raise MediaError("decode", "no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        for frame in container.decode(stream):
            for r in resampler.resample(frame):
                yield r.to_ndarray().mean(axis=0)
        for r in resampler.resample(None):
            yield r.to_ndarray().mean(axis=0)


def video_windows(src, cfg: VideoFeatureConfig, starts: Sequence[float],
                  window_s: float) -> Iterator[tuple[np.ndarray | None, bool | None]]:
    """For each start (ascending), the window's ``cfg.frames`` face crops and whether a face was
    found, as ``features.video.video_features`` computes them for a clip's middle window: frames
    sampled evenly over ``[start, start + window_s)`` (nearest decoded frame), Haar box on a few,
    crops resized to ``cfg.height x cfg.width``. (None, None) for windows after the last frame.
    """
    with open_video(src) as stream:
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        step = window_s / cfg.frames
        heap: list[tuple[float, int, int]] = []  # (time, window, sample) of opened windows
        buffers: dict[int, np.ndarray] = {}
        filled: dict[int, int] = {}
        opened = emitted = 0
        prev, prev_t = None, 0.0
        until = start + starts[-1] + step * (cfg.frames - 1)
        for t, frame in decoded_frames(stream, until):
            while opened < len(starts) and start + starts[opened] <= t:
                for i in range(cfg.frames):
                    heapq.heappush(heap, (start + starts[opened] + step * i, opened, i))
                filled[opened] = 0
                opened += 1
            while heap and heap[0][0] <= t:
                tau, k, i = heapq.heappop(heap)
                near_prev = prev is not None and tau - prev_t < t - tau
                _store(buffers, k, i, prev if near_prev else frame, cfg)
                filled[k] += 1
            while emitted < opened and filled[emitted] == cfg.frames:
                del filled[emitted]
                yield _crop(buffers.pop(emitted), cfg)
                emitted += 1
            prev, prev_t = frame, t
        period = 1.0 / (frame_rate(stream) or 30.0)
        for k in range(emitted, len(starts)):  # past the last frame: pad with it, or nothing
            if prev is None or start + starts[k] > prev_t + period:
                yield None, None
                continue
            rows = [i for _, kk, i in heap if kk == k] if k < opened else range(cfg.frames)
            for i in rows:
                _store(buffers, k, i, prev, cfg)
            yield _crop(buffers.pop(k), cfg)


def _store(buffers: dict[int, np.ndarray], k: int, i: int, frame, cfg: VideoFeatureConfig) -> None:
    if k not in buffers:
        buffers[k] = np.empty((cfg.frames, *frame_size(frame)), dtype=np.uint8)
    copy_y(frame, buffers[k][i])


def _crop(frames_y: np.ndarray, cfg: VideoFeatureConfig) -> tuple[np.ndarray, bool]:
    box = face_box(frames_y, cfg)
    if box is None:
        return crop_faces(frames_y, centre_box(frames_y.shape[1:], cfg), cfg), False
    return crop_faces(frames_y, box, cfg), True
