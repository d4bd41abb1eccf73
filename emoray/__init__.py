"""emoray: multimodal (speech + face video) emotion recognition on Ray."""

__version__ = "0.1.0"
