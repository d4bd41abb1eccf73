"""Scoring file labels against the emotions in their RAVDESS names (pure, no Ray)."""

from __future__ import annotations

from collections import Counter

from emoray.catalog import is_media
from emoray.ravdess import EMOTIONS, RavdessNameError, parse_name
from emoray.storage import FileEntry
from emoray.train.metrics import confusion, scores


def ravdess_files(files: list[FileEntry]) -> tuple[list[FileEntry], list[dict]]:
    """(media files with valid RAVDESS names, ``{"uri", "reason"}`` of media files without).
    Files that are not media by extension are left out of both."""
    named, unnamed = [], []
    for f in files:
        if not is_media(f.uri):
            continue
        try:
            parse_name(f.uri)
            named.append(f)
        except RavdessNameError as e:
            unnamed.append({"uri": f.uri, "reason": str(e)})
    return named, unnamed


def score(labels: list[dict], errors: list[dict], unnamed: list[dict]) -> dict:
    """Metrics of file label rows (``uri``, ``label``, ``modality``) against their names.

    ``errors`` (files that failed: ``uri``, ``stage``, ``reason``) and ``unnamed`` are carried
    into the result, not scored.
    """
    truth = [parse_name(r["uri"]).label for r in labels]
    predicted = [EMOTIONS.index(r["label"]) for r in labels]
    cm = confusion(truth, predicted)
    by_modality = {}
    for m in sorted(Counter(r["modality"] for r in labels)):
        idx = [i for i, r in enumerate(labels) if r["modality"] == m]
        by_modality[m] = scores(confusion([truth[i] for i in idx], [predicted[i] for i in idx]))
    return {**scores(cm), "confusion": cm.tolist(),
            "by_modality": {m: {k: s[k] for k in ("n", "accuracy", "uar", "macro_f1")}
                            for m, s in by_modality.items()},
            "errors": [{k: e[k] for k in ("uri", "stage", "reason")} for e in errors],
            "unnamed": unnamed}


def format_report(result: dict) -> str:
    """The result as text: the headline metrics, per modality, the confusion matrix (rows
    true, columns predicted) and the files that were not scored."""
    short = [e[:5] for e in EMOTIONS]
    lines = [f"emoray evaluate: {result['model']} on {result['data']}",
             f"  files scored: {result['n']}, failed: {len(result['errors'])}, "
             f"not RAVDESS-named: {len(result['unnamed'])}",
             f"  accuracy {100 * result['accuracy']:.2f}%   UAR {100 * result['uar']:.2f}%   "
             f"macro-F1 {100 * result['macro_f1']:.2f}%"]
    for m, s in result["by_modality"].items():
        lines.append(f"  {m:<6} ({s['n']} files): accuracy {100 * s['accuracy']:.2f}%, "
                     f"UAR {100 * s['uar']:.2f}%")
    lines.append("\nconfusion matrix (rows: true, columns: predicted)")
    lines.append(f"{'':>10}" + "".join(f"{s:>7}" for s in short))
    for name, row in zip(EMOTIONS, result["confusion"]):
        lines.append(f"{name:>10}" + "".join(f"{v:>7}" for v in row))
    if result["errors"]:
        lines.append("\nfailed (not scored):")
        lines += [f"  {e['uri']}: {e['stage']}: {e['reason']}" for e in result["errors"]]
    if result["unnamed"]:
        lines.append("\nnot RAVDESS-named (not scored):")
        lines += [f"  {u['uri']}: {u['reason']}" for u in result["unnamed"]]
    return "\n".join(lines)
