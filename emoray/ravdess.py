"""RAVDESS file names: ``MM-VV-EE-II-SS-RR-AA.ext`` (modality, vocal channel, emotion,
intensity, statement, repetition, actor)."""

from __future__ import annotations

import re
from dataclasses import dataclass

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
"""Class index ``i`` is RAVDESS emotion code ``i + 1``."""

MODALITIES = {1: "av", 2: "video", 3: "audio"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


class RavdessNameError(ValueError):
    """A file name that is not a valid RAVDESS name."""


@dataclass(frozen=True)
class RavdessName:
    modality: int  # 1 full AV, 2 video-only, 3 audio-only
    vocal_channel: int  # 1 speech, 2 song
    emotion: int  # 1..8, see EMOTIONS
    intensity: int  # 1 normal, 2 strong
    statement: int  # 1 or 2
    repetition: int  # 1 or 2
    actor: int  # 1..24

    @property
    def label(self) -> int:
        """Class index 0..7."""
        return self.emotion - 1

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion - 1]

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def trial_id(self) -> str:
        """The trial without its modality: ``VV-EE-II-SS-RR-AA``; audio and video files of one
        trial share it."""
        return "-".join(f"{v:02d}" for v in (self.vocal_channel, self.emotion, self.intensity,
                                              self.statement, self.repetition, self.actor))

    def stem(self) -> str:
        return f"{self.modality:02d}-{self.trial_id}"


def parse_name(name: str) -> RavdessName:
    """Parse a RAVDESS file name or path (extension and folders are ignored).

    Raises ``RavdessNameError`` naming the field that is wrong.
    """
    stem = name.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]
    m = _NAME.match(stem)
    if not m:
        raise RavdessNameError(f"{stem!r} is not a RAVDESS name: expected seven two-digit fields "
                               "MM-VV-EE-II-SS-RR-AA")
    mod, voc, emo, inten, stmt, rep, actor = (int(g) for g in m.groups())

    def check(field: str, value: int, allowed) -> None:
        if value not in allowed:
            raise RavdessNameError(f"{stem!r}: {field} {value:02d} is not one of "
                                   f"{', '.join(f'{a:02d}' for a in allowed)}")

    check("modality", mod, MODALITIES)
    check("vocal channel", voc, VOCAL_CHANNELS)
    check("emotion", emo, range(1, 9))
    check("intensity", inten, INTENSITIES)
    check("statement", stmt, STATEMENTS)
    check("repetition", rep, (1, 2))
    check("actor", actor, range(1, 25))
    if emo == 1 and inten == 2:
        raise RavdessNameError(f"{stem!r}: neutral (emotion 01) has no strong intensity (02)")
    return RavdessName(mod, voc, emo, inten, stmt, rep, actor)
