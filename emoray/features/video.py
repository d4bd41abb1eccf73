"""Face-video features: 30 grayscale face crops (80x70) from the middle 3 s of a clip.

The path is decode -> detect -> crop. Decoding keeps only the Y plane of the sampled frames
(for YUV video that already is the grayscale image, so no pixel-format conversion), with one
decoder thread, and stops once the window is covered. The Haar cascade runs on a few
downscaled frames and their median box is reused for every frame.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from typing import Iterator

import av
import cv2
import numpy as np

from emoray.errors import MediaError, too_long, too_short
from emoray.features.config import VideoFeatureConfig
from emoray.features.ffmpeg import ffmpeg_errors, open_media

Box = tuple[int, int, int, int]  # x, y, w, h in full-resolution pixels

# Pixel formats whose first plane is 8-bit luma, i.e. the grayscale image.
_LUMA_FORMATS = frozenset({"gray", "nv12", "nv21", "yuv410p", "yuv411p", "yuv420p", "yuv422p",
                           "yuv440p", "yuv444p", "yuvj411p", "yuvj420p", "yuvj422p", "yuvj440p",
                           "yuvj444p", "yuva420p"})
# detectMultiScale on frames scaled to cfg.detect_width. Checked at 320x180: finds the face in
# every sampled frame of the real clips and in all 24 stills, none in upside-down faces, blank
# or noise frames; ~5 ms a frame (scaleFactor 1.1 doubles that, for no extra finds).
_SCALE_FACTOR = 1.2
_MIN_NEIGHBORS = 4
_MIN_FACE = 0.2  # smallest face searched for, as a fraction of the frame's shorter side
_NEXT_MIN_FACE = 0.7  # once a face is found, later frames search only faces >= 0.7x its size
# Frames taller than this are scaled down to it as they are decoded: 30 sampled 4K frames would
# hold 250 MB, and the 80x70 crops lose nothing (a RAVDESS face is ~560 rows of 720).
_MAX_HEIGHT = 720
# Without a face: crop this fraction of the frame's height around its centre. A RAVDESS face
# crop is ~0.78 of the height and centred, so this approximates it for RAVDESS-like framing.
_CENTRE_FRACTION = 0.75


def video_features(src, cfg: VideoFeatureConfig, max_s: float | None = None,
                   min_s: float | None = None) -> tuple[np.ndarray, bool]:
    """(cfg.frames, cfg.height, cfg.width) uint8 face crops of a clip, and whether a face was found.

    ``src`` is a path or a binary file-like object. Without a face the crops are centre crops
    (flagged by ``False``, not an error). Raises ``MediaError("decode", reason)`` when the file
    cannot be decoded or has no video frames, ``MediaError("video", reason)`` when it declares
    more than ``max_s`` or less than ``min_s`` seconds (when given).
    """
    frames_y, _ = sample_frames_y(src, cfg, max_s, min_s)
    box = face_box(frames_y, cfg)
    if box is None:
        return crop_faces(frames_y, centre_box(frames_y.shape[1:], cfg), cfg), False
    return crop_faces(frames_y, box, cfg), True


def sample_frames_y(src, cfg: VideoFeatureConfig, max_s: float | None = None,
                    min_s: float | None = None) -> tuple[np.ndarray, float]:
    """The decode stage: Y planes (cfg.frames, H, W) uint8 of the sampled frames, and the fps.

    The window is the middle ``cfg.window_s`` of the clip (the whole clip if shorter); the
    samples are evenly spaced over it, at most one per source frame; each takes the frame
    nearest its timestamp. Clips with too few frames are padded with their last frame.
    (H, W) is the frame size, scaled down to at most ``_MAX_HEIGHT`` rows (``frame_size``).
    """
    with open_video(src) as stream:
        duration = _duration(stream)
        if max_s is not None and duration and duration > max_s:
            raise too_long("video", f"{duration:.1f} s", max_s)
        if min_s is not None and duration is not None and duration < min_s:
            raise too_short("video", duration, min_s)
        times = target_times(stream, cfg)
        out = None
        for k, frame in _pick(decoded_frames(stream, times[-1]), times):
            if out is None:
                out = np.empty((len(times), *frame_size(frame)), dtype=np.uint8)
            copy_y(frame, out[k])
        return out, frame_rate(stream)


@contextlib.contextmanager
def open_video(src) -> Iterator[av.VideoStream]:
    """Open the first video stream of ``src`` for single-threaded decoding.

    FFmpeg errors (open or decode) inside the block become ``MediaError("decode", reason)``
    carrying FFmpeg's own message, e.g. 'moov atom not found'.
    """
    if _is_empty(src):
        raise MediaError("decode", "file is empty")
    # A small probe: mp4 headers hold all we need; the default probe decodes a frame.
    container = open_media(src if hasattr(src, "read") else os.fspath(src), "decode",
                           {"probesize": "65536"})
    try:
        if not container.streams.video:
            raise MediaError("decode", "no video stream")
        stream = container.streams.video[0]
        stream.thread_count = 1  # no frame or slice threads: a Ray task has one CPU
        with ffmpeg_errors("decode"):
            yield stream
    finally:
        container.close()


def frame_rate(stream: av.VideoStream) -> float:
    """Frames per second declared by the stream, 0.0 when it declares none."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def target_times(stream: av.VideoStream, cfg: VideoFeatureConfig) -> np.ndarray:
    """Presentation times (s) of the cfg.frames samples, evenly spaced over the centred window.

    Spacing is at least one frame period, so a short clip's samples run past its end and get
    padded with its last frame.
    """
    fps = frame_rate(stream)
    duration = _duration(stream)
    window = min(cfg.window_s, duration) if duration else cfg.window_s
    step = max(window / cfg.frames, 1.0 / fps) if fps else window / cfg.frames
    first = _start(stream) + ((duration - window) / 2 if duration else 0.0)
    return first + step * np.arange(cfg.frames)


def decoded_frames(stream: av.VideoStream, until: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time, frame) in presentation order, ending with the first frame at or after ``until``.

    Raises ``MediaError`` when no frame decodes, or the stream ends more than two frames
    before its declared duration (a truncated file).
    """
    period = 1.0 / (frame_rate(stream) or 30.0)
    t = None
    for frame in stream.container.decode(stream):
        t = frame.time if frame.time is not None else (t or 0.0) + period
        yield t, frame
        if t >= until:
            return
    if t is None:
        raise MediaError("decode", "no frames decoded")
    declared = float(stream.duration * stream.time_base) if stream.duration else None
    if declared and t + 2 * period < _start(stream) + declared:
        raise MediaError("decode", f"video ends at {t:.2f} s of a declared {declared:.2f} s "
                                   "(truncated?)")


def _pick(frames: Iterator[tuple[float, av.VideoFrame]], times: np.ndarray):
    """(sample index, frame) for each target time: the decoded frame nearest to it.

    Targets past the last frame get the last frame (padding).
    """
    k, prev, prev_t = 0, None, 0.0
    for t, frame in frames:
        while k < len(times) and times[k] <= t:
            near_prev = prev is not None and times[k] - prev_t < t - times[k]
            yield k, prev if near_prev else frame
            k += 1
        prev, prev_t = frame, t
    for k in range(k, len(times)):
        yield k, prev


def face_box(frames_y: np.ndarray, cfg: VideoFeatureConfig) -> Box | None:
    """Median of the largest Haar face found in cfg.detect_frames of the frames, or None.

    Detection runs on frames downscaled to cfg.detect_width; the box (fitted by ``fit_box``)
    is in full-resolution pixels.
    """
    height, width = frames_y.shape[1:]
    scale = min(1.0, cfg.detect_width / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    min_face = max(24, round(_MIN_FACE * min(size)))
    boxes = []
    for i in _detect_indices(len(frames_y), cfg.detect_frames):
        small = frames_y[i] if scale == 1 else cv2.resize(frames_y[i], size,
                                                            interpolation=cv2.INTER_AREA)
        found = _cascade().detectMultiScale(small, scaleFactor=_SCALE_FACTOR,
                                            minNeighbors=_MIN_NEIGHBORS,
                                            minSize=(min_face, min_face))
        if len(found):
            boxes.append(max(found, key=lambda b: b[2] * b[3]))
            # the largest face is kept anyway: skipping the small scales halves the cost
            min_face = max(min_face, round(_NEXT_MIN_FACE * boxes[-1][2]))
    if not boxes:
        return None
    x, y, w, h = np.median(np.asarray(boxes, dtype=np.float64), axis=0) / scale
    return fit_box((x, y, w, h), (height, width), cfg)


def fit_box(box, frame_hw: tuple[int, int], cfg: VideoFeatureConfig) -> Box:
    """Grow ``box`` by cfg.margin per side and to the crop's aspect, then fit it in the frame."""
    x, y, w, h = box
    grown = (1 + 2 * cfg.margin) * max(h, w * cfg.height / cfg.width)
    return _place((x + w / 2, y + h / 2), grown, frame_hw, cfg)


def centre_box(frame_hw: tuple[int, int], cfg: VideoFeatureConfig) -> Box:
    """The crop used without a face: the middle of the frame, with the crop's aspect."""
    height, width = frame_hw
    return _place((width / 2, height / 2), _CENTRE_FRACTION * height, frame_hw, cfg)


def crop_faces(frames_y: np.ndarray, box: Box, cfg: VideoFeatureConfig) -> np.ndarray:
    """Crop ``box`` from every frame, resized (INTER_AREA) to (frames, cfg.height, cfg.width)."""
    x, y, w, h = box
    out = np.empty((len(frames_y), cfg.height, cfg.width), dtype=np.uint8)
    for i, frame in enumerate(frames_y):
        cv2.resize(frame[y:y + h, x:x + w], (cfg.width, cfg.height), dst=out[i],
                   interpolation=cv2.INTER_AREA)
    return out


def _place(centre, height: float, frame_hw: tuple[int, int], cfg: VideoFeatureConfig) -> Box:
    """Integer box ``height`` tall with the crop's aspect around ``centre``, fitted in the frame.

    A box larger than the frame shrinks (keeping its aspect); one crossing an edge shifts inside.
    """
    frame_h, frame_w = frame_hw
    h = min(height, frame_h, frame_w * cfg.height / cfg.width)
    w, h = max(1, min(frame_w, round(h * cfg.width / cfg.height))), max(1, round(h))
    x = min(max(0, round(centre[0] - w / 2)), frame_w - w)
    y = min(max(0, round(centre[1] - h / 2)), frame_h - h)
    return x, y, w, h


def _detect_indices(n: int, k: int) -> list[int]:
    """``k`` frame indices spread over ``n`` frames, at the middles of k equal parts."""
    k = max(1, min(k, n))
    return [int((i + 0.5) * n / k) for i in range(k)]


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}")
    return cascade


def frame_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(height, width) a decoded frame is kept at: its own, or scaled to ``_MAX_HEIGHT`` rows."""
    if frame.height <= _MAX_HEIGHT:
        return frame.height, frame.width
    return _MAX_HEIGHT, max(1, round(frame.width * _MAX_HEIGHT / frame.height))


def copy_y(frame: av.VideoFrame, dst: np.ndarray) -> None:
    """Copy the frame's grayscale image, at ``frame_size``, into ``dst``: its Y plane, minus the
    line padding (other pixel formats and taller frames go through swscale first)."""
    size = frame_size(frame)
    if size != dst.shape:
        raise MediaError("decode", "frame size changes mid-stream")
    if frame.format.name not in _LUMA_FORMATS or size != (frame.height, frame.width):
        frame = frame.reformat(width=size[1], height=size[0], format="gray",
                               interpolation="AREA")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8)[:plane.line_size * frame.height]
    dst[:] = rows.reshape(frame.height, plane.line_size)[:, :frame.width]


def _start(stream: av.VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _duration(stream: av.VideoStream) -> float | None:
    """Declared duration (s) of the stream, from its header, the container or its frame count."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if stream.container.duration:  # all streams; the video's own is unknown
        return stream.container.duration / av.time_base
    if stream.frames and frame_rate(stream):
        return stream.frames / frame_rate(stream)
    return None


def _is_empty(src) -> bool:
    if not hasattr(src, "read"):
        return os.path.isfile(src) and os.path.getsize(src) == 0
    if not src.seekable():
        return False
    pos = src.tell()
    end = src.seek(0, io.SEEK_END)
    src.seek(pos)
    return end == pos
