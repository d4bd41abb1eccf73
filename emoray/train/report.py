"""The evaluation report of a training run, in ``<run>/report/``.

``metrics.json`` (everything below, machine-readable), ``summary.md`` (the paper's Table III
layout plus per-class scores and throughput), ``confusion_<stage>.png`` (row-normalised, summed
over splits) and ``curves_<stage>.png`` (loss and accuracy, train vs validation).
"""

from __future__ import annotations

import dataclasses
import json
import textwrap

from matplotlib.ticker import MaxNLocator
import numpy as np

from emoray import storage
from emoray.figures import plt, write_png
from emoray.models.config import model_config
from emoray.ravdess import EMOTIONS
from emoray.train.metrics import confusion, normalised, scores

PAPER_ACCURACY = {"audio": 64.09, "video": 59.07, "fusion": 66.90}
"""Sultana et al., Table III (RAVDESS accuracy, %)."""

TITLES = {"audio": "Audio (1D CNN)", "video": "Video (3D CNN)", "fusion": "Fusion"}


def stage_title(kind: str, stage) -> str:
    """What the report calls stage ``kind`` trained with ``stage`` (its ``StageConfig``)."""
    if kind != "audio":
        return TITLES[kind]
    cfg = model_config("audio", stage.preset, stage.model)

    def name(c) -> str:
        return ("1D CNN" + (" with speaker head" if c.speaker_head else "")
                if c.input == "frames" else "summary MLP")
    if cfg.members:
        return f"Audio (ensemble: {' + '.join(map(name, cfg.members))})"
    return f"Audio ({name(cfg)})"


def describe_protocol(protocol) -> str:
    if protocol.kind == "random":
        return (f"random stratified split (seed {protocol.seed}): {protocol.test_fraction:.0%} "
                f"of each class for testing, {protocol.val_fraction:.0%} of the rest for "
                "validation")
    if protocol.kind == "all":
        return (f"every actor trains ({protocol.val_fraction:.0%} of them validate), nothing "
                "is tested: the model to ship; its recipe's accuracy comes from a folds run")
    if protocol.test_actors:
        return (f"speaker-independent: test actors {list(protocol.test_actors)}, "
                f"{protocol.val_fraction:.0%} of the other actors for validation")
    return (f"speaker-independent: {protocol.folds} folds by actor (seed {protocol.seed}), "
            f"{protocol.val_fraction:.0%} of each fold's other actors for validation; "
            "mean ± standard deviation over folds")


THROUGHPUT = ("samples_per_s", "data_wait_share", "steady_data_wait_share", "first_batch_s")


def throughput(history: list[dict]) -> dict:
    """Means over epochs, leaving out the first (warm-up) one: training samples/s, the share
    of step time spent waiting for data (all of it, and without each epoch's first batch) and
    the first batch's wait (the data pipeline's start-up)."""
    rows = history[1:] or history
    return {k: float(np.mean([r[k] for r in rows])) if rows else None for k in THROUGHPUT}


def stage_metrics(results: list[dict]) -> dict:
    """One stage's results over all splits (test scores are None when no split was tested:
    protocol kind ``all``)."""
    folds, total = {}, np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    tested = all(r["test"] is not None for r in results)
    for r in results:
        cm = confusion(r["test"]["y_true"], r["test"]["y_pred"]) if tested else None
        if tested:
            total += cm
        folds[r["split"]] = {
            "test": scores(cm) if tested else None, "confusion": cm.tolist() if tested else None,
            "history": r["history"], "epochs_run": r["epochs_run"],
            "best_epoch": r["best_epoch"], "starts": r["starts"], "artifact": r["artifact"],
            "throughput": throughput(r["history"]),
            **({"ablation": r["test"]["ablation"]} if tested and "ablation" in r["test"] else {}),
        }
    summary = None
    if tested:
        summary = {}
        for key in ("accuracy", "uar", "macro_f1"):
            values = [f["test"][key] for f in folds.values()]
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                            "splits": values}
    first = results[0]
    return {"preset": first["preset"], "workers": first["workers"], "use_gpu": first["use_gpu"],
            "cpus_per_worker": first["cpus_per_worker"], "test": summary,
            "pooled": scores(total) if tested else None,
            "confusion": total.tolist() if tested else None, "splits": folds,
            "throughput": {k: _mean([f["throughput"][k] for f in folds.values()])
                           for k in THROUGHPUT}}


def write_report(report_uri: str, cfg, splits, results: list[dict]) -> dict:
    """Write the report files; returns the metrics (``metrics.json``'s content)."""
    stages = {}
    for kind in cfg.stages:
        mine = [r for r in results if r["kind"] == kind]
        title = stage_title(kind, getattr(cfg, kind))
        stages[kind] = {"title": title, **stage_metrics(mine)}
        if stages[kind]["test"] is not None:
            write_png(storage.join(report_uri, f"confusion_{kind}.png"),
                       plot_confusion(np.asarray(stages[kind]["confusion"]), title))
        write_png(storage.join(report_uri, f"curves_{kind}.png"),
                   plot_curves({r["split"]: r["history"] for r in mine}, title))
    metrics = {
        "run": cfg.name, "data": cfg.data, "labels": list(EMOTIONS),
        "protocol": {**dataclasses.asdict(cfg.protocol),
                     "description": describe_protocol(cfg.protocol)},
        "splits": [{"name": s.name, "train": len(s.train), "val": len(s.val),
                    "test": len(s.test), "test_actors": list(s.test_actors),
                    "val_actors": list(s.val_actors)} for s in splits],
        "stages": stages, "paper_accuracy": PAPER_ACCURACY,
    }
    storage.write_bytes(storage.join(report_uri, "metrics.json"),
                        json.dumps(metrics, indent=2).encode())
    storage.write_bytes(storage.join(report_uri, "summary.md"), summary_markdown(metrics).encode())
    return metrics


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _pct(stat: dict, folds: bool) -> str:
    return (f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}" if folds
            else f"{100 * stat['mean']:.2f}")


def summary_markdown(m: dict) -> str:
    folds = len(m["splits"]) > 1
    lines = [f"# Training report: {m['run']}", "",
             f"Protocol: {m['protocol']['description']}.", "",
             f"Data: `{m['data']}`; splits: " + "; ".join(
                 f"{s['name']} {s['train']}/{s['val']}/{s['test']} train/val/test"
                 + (f", test actors {s['test_actors']}" if s["test_actors"] else "")
                 for s in m["splits"]) + ".", "",
             "## Test results (layout of the paper's Table III)", "",
             "| Model | Preset | Accuracy (%) | UAR (%) | Macro-F1 (%) | Paper accuracy (%) |",
             "|---|---|---|---|---|---|"]
    for kind, s in m["stages"].items():
        t = s["test"]
        if t is None:
            lines.append(f"| {s['title']} | {s['preset']} | not tested | | | "
                         f"{m['paper_accuracy'][kind]:.2f} |")
            continue
        lines.append(f"| {s['title']} | {s['preset']} | {_pct(t['accuracy'], folds)} | "
                     f"{_pct(t['uar'], folds)} | {_pct(t['macro_f1'], folds)} | "
                     f"{m['paper_accuracy'][kind]:.2f} |")
    lines += ["", "The paper reports accuracy on its own random split; compare like with like.",
              ""]
    fusion = m["stages"].get("fusion")
    if fusion and fusion["test"] is not None:
        abl = [f["ablation"] for f in fusion["splits"].values()]
        lines += [f"Fusion with the audio embedding zeroed: "
                  f"{100 * np.mean([a['no_audio'] for a in abl]):.2f}% accuracy; with the video "
                  f"embedding zeroed: {100 * np.mean([a['no_video'] for a in abl]):.2f}%.", ""]
    kinds = [k for k, s in m["stages"].items() if s["test"] is not None]
    if kinds:
        lines += ["## Per class (test, pooled over splits): precision / recall (%)", "",
                  "| Emotion | " + " | ".join(m["stages"][k]["title"] for k in kinds) + " |",
                  "|---|" + "---|" * len(kinds)]
        for i, name in enumerate(m["labels"]):
            cells = [f"{100 * m['stages'][k]['pooled']['precision'][i]:.1f} / "
                     f"{100 * m['stages'][k]['pooled']['recall'][i]:.1f}" for k in kinds]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Training", "",
              "| Model | Split | Epochs run | Best epoch | Restarts at epoch | Samples/s | "
              "Data wait (% of step time) | without first batch | First batch (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for kind, s in m["stages"].items():
        for name, f in s["splits"].items():
            tp = f["throughput"]
            if tp["samples_per_s"] is None:
                cells = ["-"] * 4
            else:
                cells = [f"{tp['samples_per_s']:.1f}", f"{100 * tp['data_wait_share']:.1f}",
                         f"{100 * tp['steady_data_wait_share']:.1f}",
                         f"{tp['first_batch_s']:.2f}"]
            lines.append(f"| {s['title']} | {name} | {f['epochs_run']} | "
                         f"{f['best_epoch'] or '-'} | {f['starts'][1:] or '-'} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"Workers: {next(iter(m['stages'].values()))['workers']} "
              f"({'GPU' if next(iter(m['stages'].values()))['use_gpu'] else 'CPU'}).", "",
              "## Figures", ""]
    for kind in m["stages"]:
        confusion_png = f"![{kind} confusion](confusion_{kind}.png) " if kind in kinds else ""
        lines += [f"{confusion_png}![{kind} curves](curves_{kind}.png)"]
    return "\n".join(lines) + "\n"


def plot_confusion(cm: np.ndarray, title: str):
    norm = normalised(cm)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(textwrap.fill(f"{title}: normalised confusion (test)", 60), fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_curves(histories: dict[str, list[dict]], title: str):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (name, history), color in zip(histories.items(), plt.cm.tab10.colors * 5):
        epochs = [r["epoch"] for r in history]
        for ax, key in zip(axes, ("loss", "acc")):
            label = "" if len(histories) == 1 else f"{name} "
            ax.plot(epochs, [r[f"train_{key}"] for r in history], color=color,
                    label=f"{label}train")
            if history and f"val_{key}" in history[0]:
                ax.plot(epochs, [r[f"val_{key}"] for r in history], color=color, ls="--",
                        label=f"{label}validation")
    for ax, name in zip(axes, ("loss", "accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(textwrap.fill(f"{title}: {name}", 50), fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
