"""Which stretches of a recording get labelled, and by which model."""

from __future__ import annotations

MODALITIES = ("fusion", "audio", "video")
"""What a label row can be computed from; a fusion artifact serves all three."""


def plan_windows(duration_s: float, window_s: float, hop_s: float) -> list[float]:
    """Start times of the windows over a recording longer than ``window_s``.

    Windows start every ``hop_s`` seconds while they fit; if that leaves the end uncovered, a last
    window ends exactly at ``duration_s``. So every window is full length and the whole
    recording is covered.
    """
    if duration_s <= window_s:
        return [0.0]
    starts = []
    k = 0
    while k * hop_s + window_s <= duration_s + 1e-6:
        starts.append(round(k * hop_s, 6))
        k += 1
    if starts[-1] + window_s < duration_s - 1e-3:
        starts.append(round(duration_s - window_s, 6))
    return starts


def route(model_kind: str, has_audio: bool, audible: bool, has_video: bool,
          face: bool | None) -> str | None:
    """The model branch for one clip or window, or None when the model has none that fits.

    ``has_audio``: audio samples; ``audible``: not (near-)silent; ``has_video``: video frames;
    ``face``: a face was found in them. Speech and a face go to fusion; speech without a face to
    the audio branch; video without audible audio to the video branch (a centre crop when there
    is no face, flagged by ``face_detected = false``). Silent audio counts as audio only when
    there is nothing else. An audio model never labels silence that comes with a picture.
    """
    if model_kind == "audio":
        return "audio" if has_audio and (audible or not has_video) else None
    if model_kind == "video":
        return "video" if has_video else None
    if audible and has_video and face:
        return "fusion"
    if audible:
        return "audio"
    if has_video:
        return "video"
    return "audio" if has_audio else None
