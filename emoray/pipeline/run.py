"""Running the pipeline on the connected Ray cluster."""

from __future__ import annotations

import dataclasses

from emoray import storage
from emoray.label.job import run_label
from emoray.label.parts import LABELS_DIR
from emoray.pipeline.config import PipelineConfig
from emoray.preprocess.job import ERRORS_PATH, run_preprocess
from emoray.train import train


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Preprocess, train every configured stage, label with the last stage's model (fusion
    when it is trained; the first split's). Returns where everything went."""
    manifest = run_preprocess(cfg.preprocess)
    if not manifest["n_clips"]:
        raise RuntimeError(f"{cfg.preprocess.input}: no clips to train on (see "
                           f"{storage.join(cfg.preprocess.output, ERRORS_PATH)})")
    metrics = train(cfg.train)
    model = labeling_model(metrics, cfg.train.stages[-1])
    labels = run_label(dataclasses.replace(cfg.label, model=model))
    run = storage.join(cfg.train.storage, cfg.train.name)
    return {"shards": cfg.preprocess.output, "clips": manifest["n_clips"],
            "report": storage.join(run, "report", "summary.md"), "model": model,
            "test_accuracy": {k: s["test"]["accuracy"]["mean"]
                              for k, s in metrics["stages"].items() if s["test"]},
            "labels": storage.join(cfg.label.output, LABELS_DIR), "labelled": labels["labelled"],
            "label_errors": labels["errors"]}


def format_summary(result: dict) -> str:
    """Where ``run_pipeline``'s outputs went, as lines to print."""
    accuracy = ", ".join(f"{k} {100 * a:.2f}%"
                         for k, a in result["test_accuracy"].items()) or "not tested"
    report = result["report"].rsplit("/", 1)[0]
    return (f"  shards:  {result['shards']} ({result['clips']} clips)\n"
            f"  report:  {result['report']} (test accuracy: {accuracy}); plots "
            f"{report}/confusion_*.png, {report}/curves_*.png\n"
            f"  model:   {result['model']}\n"
            f"  labels:  {result['labels']} ({result['labelled']} files, "
            f"{result['label_errors']} errors)")


def labeling_model(metrics: dict, stage: str) -> str:
    """The artifact of ``stage`` on the run's first split (a training report's metrics)."""
    splits = metrics["stages"][stage]["splits"]
    return splits[next(iter(splits))]["artifact"]
