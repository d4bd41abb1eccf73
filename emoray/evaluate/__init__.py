"""``emoray evaluate``: a model artifact against a RAVDESS-named folder, whose file names give
the true emotions (see ``emoray.evaluate.run``)."""

from emoray.evaluate.run import evaluate

__all__ = ["evaluate"]
