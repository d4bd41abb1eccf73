"""Errors that name the stage and reason a file failed; pipelines record them instead of dying."""

MIN_CLIP_S = 0.5  # both jobs refuse a shorter clip: too short to carry an emotion


class MediaError(Exception):
    """A file could not be turned into features. ``stage`` is one of: read, decode, audio, video."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason

    def __reduce__(self):  # picklable, so it survives crossing a Ray task boundary
        return (MediaError, (self.stage, self.reason))


def too_long(stage: str, length: str, max_s: float) -> MediaError:
    """The error for a clip over ``max_s`` seconds (``length`` says by how much)."""
    return MediaError(stage, f"{length} long; clips longer than {max_s:g} s are refused "
                             "(`emoray label` labels long recordings in windows)")



def too_short(stage: str, seconds: float, min_s: float = MIN_CLIP_S) -> MediaError:
    """The error for a clip of ``seconds`` under ``min_s``."""
    return MediaError(stage, f"too short: {seconds:.3f} s; clips shorter than {min_s:g} s "
                             "are refused")
