"""Time the video feature path against its decode floor, on one core.

The floor decodes exactly the frames the path decodes (same file opening, decoder settings,
window and stopping point) and only views their Y planes; the full path is
``video_features``: decode + sample + detect + crop + resize.

    python -m benchmarks.video_path [folder of .mp4]   # default: the real RAVDESS clips
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from emoray.features.config import VideoFeatureConfig
from emoray.features.video import decoded_frames, open_video, target_times, video_features

DATA = Path(os.environ.get("EMORAY_DATA") or Path(__file__).resolve().parents[2] / "shared/data")


def decode_floor(paths, cfg: VideoFeatureConfig) -> float:
    """Seconds to decode, one thread, the frames ``video_features`` decodes from ``paths``."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    for path in paths:
        with open_video(path) as stream:
            for _, frame in decoded_frames(stream, target_times(stream, cfg)[-1]):
                np.frombuffer(frame.planes[0], dtype=np.uint8)
    return time.perf_counter() - start


def full_path(paths, cfg: VideoFeatureConfig) -> float:
    """Seconds for ``video_features`` (decode, detect, crop, resize) on ``paths``, one thread."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    for path in paths:
        video_features(path, cfg)
    return time.perf_counter() - start


def main(folder: Path, rounds: int = 5) -> None:
    paths = sorted(folder.glob("*.mp4"))
    if not paths:
        sys.exit(f"no .mp4 files in {folder}")
    cfg = VideoFeatureConfig()
    full_path(paths[:1], cfg)  # warm-up: loads the cascade, fills caches
    times = [(decode_floor(paths, cfg), full_path(paths, cfg)) for _ in range(rounds)]
    floor, full = (min(col) for col in zip(*times))  # rounds interleave: same machine load
    print(f"{len(paths)} clips from {folder}, best of {rounds} rounds, one core")
    print(f"{'stage':<14}{'clips/s':>9}{'ms/clip':>9}")
    for name, secs in (("decode floor", floor), ("full path", full)):
        print(f"{name:<14}{len(paths) / secs:>9.2f}{1000 * secs / len(paths):>9.1f}")
    print(f"{'ratio':<14}{full / floor:>9.2f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA / "ravdess-video-actor05")
