"""Matplotlib without a display (Agg), and figures written as PNG to a folder or ``s3://``."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emoray import storage  # noqa: E402

__all__ = ["plt", "write_png"]


def write_png(uri: str, fig, dpi: int = 110) -> None:
    """Save ``fig`` to ``uri`` as PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    storage.write_bytes(uri, buf.getvalue())
