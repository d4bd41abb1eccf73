"""Evaluation on Ray: the labeling job labels the RAVDESS-named files of a folder with the
model's own feature config (files that fail become error rows), then the file labels are
scored against the emotions in the names."""

from __future__ import annotations

import json

from emoray import storage
from emoray.evaluate.score import ravdess_files, score
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.label.parts import read_output

RESULT = "evaluation.json"


def evaluate(cfg: LabelConfig) -> dict:
    """Evaluate ``cfg.model`` on the files under ``cfg.input``; labels go to ``cfg.output``
    (files already labelled there are only scored) and the result to its ``evaluation.json``.

    Returns ``score``'s metrics plus ``model`` and ``data``.
    """
    files, unnamed = ravdess_files(storage.list_files(cfg.input))
    run_label(cfg, files)
    labels, errors = read_output(cfg.output)
    wanted = {f.uri for f in files}
    rows = [r for r in labels.select(["uri", "window_start_s", "label", "modality"]).to_pylist()
            if r["window_start_s"] is None and r["uri"] in wanted]
    failed = [e for e in errors.to_pylist() if e["uri"] in wanted]
    result = {"model": cfg.model, "data": cfg.input, **score(rows, failed, unnamed)}
    storage.write_bytes(storage.join(cfg.output, RESULT), json.dumps(result, indent=2).encode())
    return result
