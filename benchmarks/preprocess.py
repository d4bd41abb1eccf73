"""Preprocessing throughput on one core against its floor, measured in the same run.

Audio: the full path (PyAV decode, resample, downmix, trim, log-mel/MFCC) against decoding
alone. Video: ``video_features`` (decode, detect, crop, resize) against decoding the same
frames alone. Real RAVDESS files from ``$EMORAY_DATA`` (default ../shared/data) when present,
else a synthetic corpus.

    python benchmarks/preprocess.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.video_path import decode_floor, full_path  # noqa: E402
from emoray.features.audio import audio_clip_features, decode_audio  # noqa: E402
from emoray.features.config import preset  # noqa: E402

DATA = Path(os.environ.get("EMORAY_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def files() -> tuple[list[Path], list[Path], str]:
    wavs = sorted((DATA / "ravdess-speech-48k").rglob("*.wav"))
    mp4s = sorted((DATA / "ravdess-video-actor05").glob("*.mp4"))
    if wavs and mp4s:
        return wavs, mp4s, f"real RAVDESS ({DATA})"
    from emoray.synth.corpus import synthesize_corpus

    out = Path(tempfile.mkdtemp(prefix="emoray-bench-"))
    paths = synthesize_corpus(out, actors=(1,), modalities=("audio", "video"), emotions=(1, 5))
    return ([p for p in paths if p.suffix == ".wav"], [p for p in paths if p.suffix == ".mp4"],
            f"synthetic ({out})")


def timed(fn, paths) -> float:
    start = time.perf_counter()
    for p in paths:
        fn(str(p))
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    args = p.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    wavs, mp4s, source = files()
    audio_cfg, video_cfg = preset("default").audio, preset("default").video
    timed(lambda f: audio_clip_features(f, audio_cfg), wavs[:2])  # warm-up
    full_path(mp4s[:1], video_cfg)
    best = lambda fn: min(fn() for _ in range(args.rounds))  # noqa: E731
    rows = [
        ("audio", len(wavs),
         best(lambda: timed(lambda f: decode_audio(f, audio_cfg.sample_rate), wavs)),
         best(lambda: timed(lambda f: audio_clip_features(f, audio_cfg), wavs))),
        ("video", len(mp4s), best(lambda: decode_floor(mp4s, video_cfg)),
         best(lambda: full_path(mp4s, video_cfg))),
    ]
    print(f"{source}; one core; best of {args.rounds} rounds")
    print("| path | clips | floor (decode only) clips/s | full path clips/s | ratio | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, n, floor, full), target in zip(rows, ("2.0", "1.3")):
        print(f"| {name} | {n} | {n / floor:.1f} | {n / full:.1f} | {full / floor:.2f} | {target} |")


if __name__ == "__main__":
    main()
