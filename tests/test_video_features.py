"""Video feature path: sampling, face detection, crops, and the errors of broken files."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from emoray.errors import MediaError
from emoray.features.config import VideoFeatureConfig
from emoray.features.video import (centre_box, crop_faces, decoded_frames, face_box, fit_box,
                                   open_video, sample_frames_y, target_times, video_features)
from conftest import real_data

CFG = VideoFeatureConfig()


def encode(frames_y, fps, dst=None, options=None) -> bytes | None:
    """Encode grayscale frames losslessly as H.264 yuv420p mp4 into ``dst`` or return the bytes.

    Frame ``i`` gets pts ``i`` at ``fps``, so its presentation time is exactly i / fps.
    """
    h, w = frames_y[0].shape
    buf = io.BytesIO()
    with av.open(dst or buf, "w", format="mp4", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        chroma = np.full((h // 2, w), 128, np.uint8)
        for i, y in enumerate(frames_y):
            frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return None if dst else buf.getvalue()


def numbered(n, fps, size=(48, 64)) -> bytes:
    """A clip whose frame i is uniformly grey level i % 256: samples tell which frame they are."""
    return encode([np.full(size, i % 256, np.uint8) for i in range(n)], fps)


def still_frame(size=(180, 320)) -> np.ndarray:
    """The real RAVDESS still of actor 1, grayscale, at ``size``."""
    still = real_data("ravdess-stills/Actor_01.png")
    return cv2.resize(cv2.imread(str(still), cv2.IMREAD_GRAYSCALE), size[::-1],
                      interpolation=cv2.INTER_AREA)


def sampled_indices(data: bytes) -> tuple[list[int], float]:
    frames, fps = sample_frames_y(io.BytesIO(data), CFG)
    assert frames.shape == (CFG.frames, 48, 64) and frames.dtype == np.uint8
    assert (frames == frames[:, :1, :1]).all()  # each sample is one whole source frame
    return frames[:, 0, 0].tolist(), fps


# --- sampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [15, 30, 60])
def test_samples_span_3s_centred_at_any_frame_rate(fps):
    n = 4 * fps  # a 4 s clip: the window is 0.5 .. 3.5 s
    idx, got_fps = sampled_indices(numbered(n, fps))
    assert got_fps == fps
    times = np.array(idx) / fps
    assert np.all(np.diff(idx) > 0)
    assert np.allclose(np.diff(times), 0.1, atol=1 / fps)
    assert times[-1] - times[0] == pytest.approx(2.9, abs=1 / fps)
    assert times[0] == pytest.approx(0.5, abs=1 / fps)


def test_short_clip_keeps_every_frame_and_pads_with_the_last():
    idx, _ = sampled_indices(numbered(10, 30))
    assert idx == list(range(10)) + [9] * 20


def test_one_frame_video_gives_30_copies():
    idx, _ = sampled_indices(numbered(1, 30))
    assert idx == [0] * 30


def test_long_clip_decoding_stops_after_the_window():
    data = numbered(300, 30)  # 10 s: the window is 3.5 .. 6.5 s
    idx, _ = sampled_indices(data)
    assert idx == list(range(105, 195, 3))
    with open_video(io.BytesIO(data)) as stream:
        decoded = sum(1 for _ in decoded_frames(stream, target_times(stream, CFG)[-1]))
    assert decoded in (193, 194)  # frames 0..192 (the last sample) and at most one more, of 300


def test_non_yuv_video_is_converted_to_grey():
    grey = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mov") as out:
        stream = out.add_stream("png", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.dstack([grey] * 3), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    frames, _ = sample_frames_y(io.BytesIO(buf.getvalue()), CFG)
    assert frames.shape == (30, 48, 64)
    assert np.abs(frames[0].astype(int) - grey).max() <= 2


def test_path_and_bytes_give_the_same_frames(tmp_path):
    data = numbered(100, 30)
    (tmp_path / "clip.mp4").write_bytes(data)
    from_path, _ = sample_frames_y(tmp_path / "clip.mp4", CFG)
    from_bytes, _ = sample_frames_y(io.BytesIO(data), CFG)
    assert np.array_equal(from_path, from_bytes)


def test_y_plane_ignores_line_padding():
    # width 70 is not a multiple of the decoder's line alignment: rows carry padding
    ramp = np.tile(np.arange(70, dtype=np.uint8) * 3, (40, 1))
    frames, _ = sample_frames_y(io.BytesIO(encode([ramp] * 3, 30)), CFG)
    assert np.array_equal(frames[0], ramp)


# --- detection and crops ----------------------------------------------------------------------

def test_face_video_gives_face_crops():
    rng = np.random.default_rng(0)
    face = still_frame()
    clip = [np.clip(face + rng.normal(0, 2, face.shape), 0, 255).astype(np.uint8)
            for _ in range(45)]
    crops, found = video_features(io.BytesIO(encode(clip, 15)), CFG)
    assert found
    assert crops.shape == (30, 80, 70) and crops.dtype == np.uint8
    assert _face_fills(crops[15])


def test_upside_down_face_is_not_a_face():
    frames = np.stack([cv2.flip(still_frame(), 0)] * 30)
    assert face_box(frames, CFG) is None


def test_blank_and_noise_frames_have_no_face():
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (30, 180, 320), dtype=np.uint8)
    smooth = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in noise[:3]] * 10)
    for frames in (np.full((30, 180, 320), 128, np.uint8), noise, smooth):
        assert face_box(frames, CFG) is None


def test_no_face_video_is_flagged_and_centre_cropped():
    rng = np.random.default_rng(2)
    clip = [rng.integers(0, 256, (120, 160), dtype=np.uint8) for _ in range(20)]
    crops, found = video_features(io.BytesIO(encode(clip, 30)), CFG)
    assert not found
    frames, _ = sample_frames_y(io.BytesIO(encode(clip, 30)), CFG)
    assert np.array_equal(crops, crop_faces(frames, centre_box((120, 160), CFG), CFG))


@pytest.mark.parametrize("box", [(500, 200, 200, 200), (0, 0, 60, 60), (1200, 650, 80, 70),
                                 (100, 100, 300, 150), (-50, 300, 900, 900)])
def test_fitted_box_has_crop_aspect_and_stays_in_frame(box):
    x, y, w, h = fit_box(box, (720, 1280), CFG)
    assert 0 <= x and x + w <= 1280 and 0 <= y and y + h <= 720
    assert h / w == pytest.approx(80 / 70, rel=0.02)
    assert h == pytest.approx(min(720, 1.2 * max(box[3], box[2] * 80 / 70)), abs=1)  # grown


def test_centre_box_is_central_with_crop_aspect():
    x, y, w, h = centre_box((720, 1280), CFG)
    assert (x + w / 2, y + h / 2) == pytest.approx((640, 360), abs=1)
    assert h / w == pytest.approx(80 / 70, rel=0.02)


# --- broken inputs ----------------------------------------------------------------------------

def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _moov_missing() -> io.BytesIO:
    data = numbered(30, 30)  # PyAV writes the moov atom (the index) after the media data
    return io.BytesIO(data[:data.index(b"moov") - 4])


def _audio_only(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(16000, np.int16).tobytes())
    return path


@pytest.mark.parametrize("make, reason", [
    (lambda tmp: io.BytesIO(b""), "file is empty"),
    (lambda tmp: _written(tmp / "empty.mp4", b""), "file is empty"),
    (lambda tmp: _moov_missing(), "moov atom not found"),
    (lambda tmp: _written(tmp / "notes.mp4", b"not a video\n" * 50),
     "not a readable audio or video file"),
    (lambda tmp: _audio_only(tmp / "speech.wav"), "no video stream"),
    (lambda tmp: tmp / "missing.mp4", "No such file"),
], ids=["empty-bytes", "empty-file", "no-moov", "text", "audio-only", "missing"])
def test_broken_files_raise_decode_errors(tmp_path, make, reason):
    with pytest.raises(MediaError) as err:
        video_features(make(tmp_path), CFG)
    assert err.value.stage == "decode"
    assert reason in err.value.reason


def test_truncated_faststart_mp4_is_an_error_not_padding(tmp_path):
    path = tmp_path / "fast.mp4"
    frames = [np.full((48, 64), i, np.uint8) for i in range(120)]
    encode(frames, 30, path, {"movflags": "faststart"})
    data = path.read_bytes()
    with av.open(path) as c:  # cut at a packet boundary: the demuxer just sees an early end
        cut = sorted(p.pos + p.size for p in c.demux(video=0) if p.size)[40]
    with pytest.raises(MediaError, match="truncated") as err:
        sample_frames_y(io.BytesIO(data[:cut]), CFG)
    assert err.value.stage == "decode"


# --- real RAVDESS videos ----------------------------------------------------------------------

def test_real_videos_give_filled_face_crops():
    videos = sorted(real_data("ravdess-video-actor05").glob("*.mp4"))
    assert len(videos) == 6
    for path in videos:
        crops, found = video_features(path, CFG)
        assert found, path.name
        assert crops.shape == (30, 80, 70) and crops.dtype == np.uint8
        assert crops.std() > 20, path.name  # an image, not a flat patch
        for crop in crops[::10]:
            assert _face_fills(crop), path.name


def _face_fills(crop: np.ndarray) -> bool:
    """Whether the cascade, run on the crop (upscaled x4), finds a centred face that fills it.

    With a 10% margin per side the face box is ~0.8 of the crop's width (0.78-0.82 on the real
    clips; a crop 1.3x too large gives 0.65-0.71); a crop off-centre by a third finds no face.
    """
    big = cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                                 "haarcascade_frontalface_default.xml"))
    faces = cascade.detectMultiScale(big, scaleFactor=1.1, minNeighbors=5, minSize=(80, 80))
    if not len(faces):
        return False
    x, _, w, _ = max(faces, key=lambda f: f[2])
    width = big.shape[1]
    return 0.7 <= w / width <= 0.95 and abs(x + w / 2 - width / 2) < 0.1 * width
