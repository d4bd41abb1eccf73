"""Classification metrics from true and predicted class indices (pure numpy)."""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int = 8) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def scores(cm: np.ndarray) -> dict:
    """Accuracy, UAR (mean per-class recall), macro-F1 and per-class precision/recall/F1/support
    from a confusion matrix. Classes absent from the truth are left out of UAR and macro-F1."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    pr = precision + recall
    f1 = np.divide(2 * precision * recall, pr, out=np.zeros_like(tp), where=pr > 0)
    present = support > 0
    total = cm.sum()
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.astype(int).tolist(),
    }


def normalised(cm: np.ndarray) -> np.ndarray:
    """Rows divided by their totals (rows of absent classes stay zero)."""
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
