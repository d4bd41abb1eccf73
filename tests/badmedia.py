"""A corpus of bad and unusual inputs, written in a few seconds with PyAV and numpy (never
committed). Every file has a RAVDESS name of actor 03 unless its kind is about the name."""

from __future__ import annotations

import fractions
import os
import struct
from pathlib import Path

import av
import cv2
import numpy as np

from media import tone, write_audio, write_video

RATE = 48000
LONG_S = 30 * 60
UNICODE_DIR = "Actor 03 – Zoë ünïcode"  # spaces, an en dash and accents in a folder name
LATIN1_DIR = os.fsdecode(b"Actor 03 \xe9t\xe9 100%")  # Latin-1 "été", not UTF-8; and a "%"

FILES = {  # kind -> path under the corpus root
    "zero_bytes": "Actor_03/03-01-02-01-01-01-03.wav",
    "truncated_wav_header": "Actor_03/03-01-02-01-02-01-03.wav",
    "truncated_mp4_no_moov": "Actor_03/02-01-02-02-01-01-03.mp4",
    "text_as_media": "Actor_03/03-01-03-01-01-01-03.flac",
    "no_audio_or_video_stream": "Actor_03/03-01-03-01-02-01-03.mp4",
    "all_zero_audio": "Actor_03/03-01-04-01-01-01-03.wav",
    "clipped_audio": "Actor_03/03-01-04-01-02-01-03.wav",
    "video_without_face": "Actor_03/02-01-05-01-01-01-03.mp4",
    "one_frame_video": "Actor_03/02-01-05-01-02-01-03.mp4",
    "video_4k": "Actor_03/02-01-06-01-01-01-03.mp4",
    "audio_30_min": "Actor_03/03-01-06-01-02-01-03.flac",
    "audio_8khz": "Actor_03/03-01-07-01-01-01-03.wav",
    "audio_6_channels": "Actor_03/03-01-07-01-02-01-03.wav",
    "unicode_folder": f"{UNICODE_DIR}/03-01-08-01-01-01-03.wav",
    "unicode_file_name": f"{UNICODE_DIR}/réunion d'équipe 01 🎙.wav",
    "impossible_emotion_09": "Actor_03/03-01-09-01-01-01-03.wav",
    "audio_20_ms": "Actor_03/03-01-07-02-01-01-03.wav",
    "non_utf8_folder": f"{LATIN1_DIR}/03-01-08-02-01-01-03.wav",
    "non_utf8_file_name": os.fsdecode(b"Actor_03/r\xe9union \xab1\xbb.wav"),
    "dangling_symlink": "Actor_03/03-01-08-02-02-01-03.wav",
}
LOCAL_ONLY = ("non_utf8_folder", "non_utf8_file_name", "dangling_symlink")
"""Kinds an S3 bucket cannot hold (its keys are UTF-8 and it has no links)."""
ESCAPED = {  # kind -> its path as emoray's URIs write it (storage: undecodable bytes as %XX)
    "non_utf8_folder": "Actor 03 %E9t%E9 100%25/03-01-08-02-01-01-03.wav",
    "non_utf8_file_name": "Actor_03/r%E9union %AB1%BB.wav",
}
DANGLING_TARGET = "../gone/03-01-08-02-02-01-03.wav"


def write_bad_corpus(root: Path, face: np.ndarray) -> dict[str, Path]:
    """Write every kind of ``FILES`` under ``root``; ``face`` is a grayscale frame showing a
    face. Returns kind -> path."""
    paths = {kind: root / rel for kind, rel in FILES.items()}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    speech = tone(3.0, RATE, freq=220.0, amp=0.3)
    paths["zero_bytes"].write_bytes(b"")
    whole = write_audio(paths["truncated_wav_header"], speech, RATE).read_bytes()
    paths["truncated_wav_header"].write_bytes(whole[:30])  # cut inside the fmt chunk
    mp4 = write_video(paths["truncated_mp4_no_moov"], _frames(face, 30)).read_bytes()
    paths["truncated_mp4_no_moov"].write_bytes(mp4[: len(mp4) // 2])  # moov is at the end
    paths["text_as_media"].write_text("this is a text file, not FLAC\n" * 40)
    write_subtitles_only(paths["no_audio_or_video_stream"])
    write_audio(paths["all_zero_audio"], np.zeros(3 * RATE, np.float32), RATE)
    write_audio(paths["clipped_audio"], np.clip(8 * speech, -1, 1), RATE)
    bars = np.tile(np.linspace(40, 200, 320, dtype=np.uint8)[None, None], (90, 180, 1))
    write_video(paths["video_without_face"], bars)
    write_video(paths["one_frame_video"], face[None])  # 33 ms: too short
    write_video(paths["video_4k"], _frames(cv2.resize(face, (3840, 2160)), 6), fps=10)
    write_long_flac(paths["audio_30_min"], LONG_S)
    write_audio(paths["audio_8khz"], tone(3.0, 8000, freq=220.0, amp=0.3), 8000)
    write_audio(paths["audio_6_channels"], six_channels(speech), RATE)
    for kind in ("unicode_folder", "unicode_file_name", "impossible_emotion_09",
                 "non_utf8_folder", "non_utf8_file_name"):
        write_audio(paths[kind], speech, RATE)
    write_audio(paths["audio_20_ms"], speech[: RATE // 50], RATE)
    paths["dangling_symlink"].symlink_to(DANGLING_TARGET)
    return paths


def six_channels(speech: np.ndarray) -> np.ndarray:
    """Six channels that differ (a second tone added to or taken from ``speech``, in varying
    amounts) and whose mean is exactly ``speech``."""
    other = tone(len(speech) / RATE, RATE, freq=330.0, amp=0.2)
    return speech + np.array([1.0, -1.0, 0.5, -0.5, 0.8, -0.8])[:, None] * other


def _frames(frame: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(frame[None], n, axis=0)


def write_subtitles_only(path: Path) -> Path:
    """A valid MP4 whose only track is subtitles (no audio, no video)."""
    with av.open(str(path), "w") as out:
        stream = out.add_mux_stream("mov_text")
        stream.time_base = fractions.Fraction(1, 1000)
        for i in range(3):
            text = f"line {i}".encode()
            packet = av.Packet(struct.pack(">H", len(text)) + text)
            packet.stream, packet.time_base = stream, stream.time_base
            packet.pts = packet.dts = i * 1000
            packet.duration = 900
            out.mux(packet)
    return path


def write_long_flac(path: Path, seconds: int, rate: int = 16000) -> Path:
    """Mono FLAC: a 1 s tone every 10 s, silence between; about 2.5 KB per second, written in
    about a second per 20 minutes."""
    t = np.arange(rate) / rate
    block = np.concatenate([(0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16),
                            np.zeros(9 * rate, np.int16)])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.codec_context.options = {"compression_level": "0"}
        pts = 0
        for _ in range(seconds // 10):
            for start in range(0, len(block), 4096):
                frame = av.AudioFrame.from_ndarray(block[None, start:start + 4096], format="s16",
                                                   layout="mono")
                frame.sample_rate, frame.pts = rate, pts
                pts += frame.samples
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
