"""Synthetic RAVDESS-like corpus: speech-like audio and animated face video whose emotion is
learnable from each modality, with calm/neutral ambiguous in audio and fearful/surprised
ambiguous in video (see ``audio`` and ``video``)."""

from emoray.synth.corpus import synthesize_corpus

__all__ = ["synthesize_corpus"]
