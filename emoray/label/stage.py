"""Pure labeling stages, no Ray: one file -> model inputs (``prepare_file``) -> probabilities
(``predict``) -> label rows (``file_rows``). ``label_file`` chains them for one file.

A file shorter than ``errors.MIN_CLIP_S`` is refused (``too short``). One no longer than
``clip_max_s`` is one clip and takes exactly the training feature path
(``decode_audio`` + ``audio_features``, ``video_features``). A longer one is labelled in windows,
stream-decoded, plus a file row holding the mean of the window probabilities.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from emoray import storage
from emoray.errors import MIN_CLIP_S, MediaError, too_short
from emoray.features.audio import audio_features, decode_audio, peak_dbfs
from emoray.features.config import FeatureConfig
from emoray.features.video import video_features
from emoray.label.media import Probe, audio_windows, probe, video_windows
from emoray.redact import redact
from emoray.label.schema import ITEMS_SCHEMA
from emoray.label.windows import plan_windows, route
from emoray.source import IN_MEMORY_BYTES, Source, fetch


@dataclass(frozen=True)
class Settings:
    """How files are cut and routed (part of the labels' identity: a re-run must keep them)."""

    window_s: float = 3.0  # window length for long recordings
    hop_s: float = 3.0  # distance between window starts
    clip_max_s: float = 6.0  # up to this long: one clip on the training path, no windows
    silence_dbfs: float = -60.0  # audio whose peak is below this counts as silent


_EMPTY = {name: None for name in ITEMS_SCHEMA.names if name != "part"}


def prepare_file(uri: str, size: int, model_kind: str, features: FeatureConfig,
                 settings: Settings, in_memory_bytes: int = IN_MEMORY_BYTES) -> Iterator[dict]:
    """Item rows (``schema.ITEMS_SCHEMA`` without ``part``) for one file: a ``clip`` row, or
    ``window`` rows then an ``end`` row; any failure ends the file with an ``error`` row
    (what came before it is then discarded). Never raises for a bad file; an object store
    that does not answer raises (the file is not at fault, and its part is not committed).
    Files up to ``in_memory_bytes`` are read whole; larger ones are streamed from storage."""
    base = {**_EMPTY, "uri": uri, "size_bytes": size}
    n = 0
    try:
        source = fetch(uri, size, in_memory_bytes)
        info = probe(source.open())
        base.update(sha256=source.sha256, size_bytes=source.size, duration_s=info.duration_s)
        _check_fits(model_kind, info)
        if info.duration_s <= settings.clip_max_s:
            yield {**base, **_clip(source, info, model_kind, features, settings), "kind": "clip"}
            return
        for window in _windows(source, info, model_kind, features, settings):
            n += 1
            yield {**base, **window, "kind": "window"}
        if not n:
            raise MediaError("route", f"no window the {model_kind} model can label")
        yield {**base, "kind": "end", "n_windows": n}
    except MediaError as e:
        yield {**base, "kind": "error", "n_windows": n, "stage": e.stage,
               "reason": redact(e.reason)}
    except Exception as e:  # noqa: BLE001 - one odd file must never stop the job
        if storage.is_transient(e):
            raise
        yield {**base, "kind": "error", "n_windows": n, "stage": "label",
               "reason": redact(f"unexpected {type(e).__name__}: {e}")}


def _check_fits(model_kind: str, info: Probe) -> None:
    if info.duration_s < MIN_CLIP_S:
        raise too_short("route", info.duration_s)
    if model_kind == "audio" and not info.has_audio:
        raise MediaError("route", "no audio stream, and the model is an audio model")
    if model_kind == "video" and not info.has_video:
        raise MediaError("route", "no video stream, and the model is a video model")


def _clip(source: Source, info: Probe, model_kind: str, features: FeatureConfig,
          settings: Settings) -> dict:
    wave = feats = crops = face = None
    if info.has_audio and model_kind != "video":
        wave = decode_audio(source.open(), features.audio.sample_rate)
        feats = audio_features(wave, features.audio)
    if info.has_video and model_kind != "audio":
        crops, face = video_features(source.open(), features.video)
    item = _item(model_kind, info, feats, wave, crops, face, settings)
    if item["modality"] is None:
        raise MediaError("route", f"nothing the {model_kind} model can label (silent audio)")
    return item


def _windows(source: Source, info: Probe, model_kind: str, features: FeatureConfig,
             settings: Settings) -> Iterator[dict]:
    starts = plan_windows(info.duration_s, settings.window_s, settings.hop_s)
    waves = itertools.repeat(None)
    if info.has_audio and model_kind != "video":
        waves = audio_windows(source.open(), features.audio.sample_rate, starts, settings.window_s)
    videos = itertools.repeat((None, None))
    if info.has_video and model_kind != "audio":
        videos = video_windows(source.open(), features.video, starts, settings.window_s)
    for start, wave, (crops, face) in zip(starts, waves, videos):
        feats = audio_features(wave, features.audio) if wave is not None else None
        item = _item(model_kind, info, feats, wave, crops, face, settings)
        if item["modality"] is not None:
            yield {**item, "window_start_s": start, "window_end_s": start + settings.window_s}


def _item(model_kind: str, info: Probe, feats, wave, crops, face, settings: Settings) -> dict:
    """Route one clip or window; keep only the tensors its branch reads."""
    has_audio = wave is not None and len(wave) > 0
    audible = has_audio and peak_dbfs(wave) >= settings.silence_dbfs
    has_video = crops is not None if model_kind != "audio" else info.has_video
    modality = route(model_kind, has_audio, audible, has_video, face)
    return {"modality": modality, "has_audio": audible, "has_video": has_video,
            "face_detected": face,
            "audio": feats if modality in ("fusion", "audio") else None,
            "video": crops if modality in ("fusion", "video") else None}


def predict(model: torch.nn.Module, model_kind: str, modality: list[str | None],
            audio: list[np.ndarray | None], video: list[np.ndarray | None],
            readout_stats: list[np.ndarray | None] | None = None,
            readouts: list[np.ndarray | None] | None = None,
            clips: list[int | None] | None = None) -> np.ndarray:
    """Class probabilities [n, 8] (float32) of each row with a modality, NaN for the others.

    ``model`` is an artifact's model of ``model_kind``; a fusion model labels audio-only and
    video-only rows with its own branches. ``readout_stats``: each audio row's speaker's
    readout statistics [2, D], for an audio network with a speaker head; ``readouts``: the
    rows' readouts [D] when they are already computed (``emoray.label.speakers``), so that
    the network's convolutions do not run twice; ``clips``: how many clips each audio row's
    speaker statistics came from, which an ensemble weighs its members by.
    """
    out = np.full((len(modality), 8), np.nan, dtype=np.float32)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for m in ("fusion", "audio", "video"):
            idx = [i for i, x in enumerate(modality) if x == m]
            if not idx:
                continue
            net = model if m == model_kind else getattr(model, m)
            inputs, extra = [], {}
            if m != "video":
                inputs.append(torch.from_numpy(np.stack([audio[i] for i in idx])).to(device))
            if m != "audio":
                inputs.append(torch.from_numpy(np.stack([video[i] for i in idx])).to(device))
            if m == "audio":
                for name, rows in (("readout_stats", readout_stats), ("readout", readouts),
                                   ("clips", clips)):
                    if rows is not None:
                        extra[name] = torch.from_numpy(np.stack([np.asarray(
                            rows[i], np.float32) for i in idx])).to(device)
            out[idx] = torch.softmax(net(*inputs, **extra).float(), dim=1).cpu().numpy()
    return out


def file_rows(items: list[dict], labels: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """(label rows, error rows) of one file from its predicted items (``probs`` set on clip and
    window rows): the clip row, or the window rows plus their mean as the file row."""
    last = next(it for it in items if it["kind"] in ("clip", "end", "error"))
    if last["kind"] == "error":
        return [], [{k: last[k] for k in ("uri", "stage", "reason", "size_bytes")}]
    windows = [it for it in items if it["kind"] in ("clip", "window")]
    rows = [_label_row(it, it["probs"], labels) for it in windows]
    if last["kind"] == "end":
        modalities = {w["modality"] for w in windows}
        faces = [w["face_detected"] for w in windows if w["face_detected"] is not None]
        counts = [w["speaker_clips"] for w in windows if w.get("speaker_clips") is not None]
        summary = {**last, "modality": modalities.pop() if len(modalities) == 1 else "mixed",
                   "speaker_clips": max(counts) if counts else None,
                   "has_audio": any(w["has_audio"] for w in windows),
                   "has_video": any(w["has_video"] for w in windows),
                   "face_detected": any(faces) if faces else None}
        rows.insert(0, _label_row(summary, np.mean([w["probs"] for w in windows], axis=0), labels))
    return rows, []


def _label_row(item: dict, probs, labels: tuple[str, ...]) -> dict:
    probs = np.asarray(probs, dtype=np.float32)
    row = {k: item.get(k) for k in ("uri", "sha256", "size_bytes", "duration_s", "window_start_s",
                                    "window_end_s", "modality", "has_audio", "has_video",
                                    "face_detected", "speaker", "speaker_clips")}
    row["label"] = labels[int(np.argmax(probs))]
    row.update({f"p_{name}": float(p) for name, p in zip(labels, probs)})
    return row


def label_file(uri: str, size: int, model: torch.nn.Module, model_kind: str,
               features: FeatureConfig, settings: Settings,
               labels: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """All stages for one file, in process: (label rows, error rows)."""
    items = list(prepare_file(uri, size, model_kind, features, settings))
    probs = predict(model, model_kind, [it.get("modality") for it in items],
                    [it.get("audio") for it in items], [it.get("video") for it in items])
    return file_rows(_with_probs(items, probs), labels)


def _with_probs(items: Iterable[dict], probs: np.ndarray) -> list[dict]:
    return [{**it, "probs": None if np.isnan(p).any() else p.tolist()}
            for it, p in zip(items, probs)]
