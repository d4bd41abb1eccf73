"""Small media files written in tests with PyAV (no media is committed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_audio(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le") -> Path:
    """Write float samples of shape (channels, n) in [-1, 1]; container from the extension."""
    samples = np.atleast_2d(samples).astype(np.float32)
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[samples.shape[0]]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.format.name
        for start in range(0, samples.shape[1], 1024):
            chunk = samples[:, start:start + 1024]
            if fmt == "s16":
                frame = av.AudioFrame.from_ndarray(
                    (chunk.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout=layout)
            else:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                                   layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_video(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Write grayscale uint8 frames (n, h, w) as H.264 video without audio."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
