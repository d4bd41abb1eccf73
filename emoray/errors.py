"""Errors that name the stage and reason a file failed; pipelines record them instead of dying."""


class MediaError(Exception):
    """A file could not be turned into features. ``stage`` is one of: read, decode, audio, video."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason

    def __reduce__(self):  # picklable, so it survives crossing a Ray task boundary
        return (MediaError, (self.stage, self.reason))
