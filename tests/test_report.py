import json

import numpy as np

from emoray.figures import plt
from emoray.train.config import train_config
from emoray.train.metrics import confusion, scores
from emoray.train.report import plot_confusion, plot_curves, write_report
from emoray.train.splits import Split


def test_scores():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 2]
    s = scores(confusion(y_true, y_pred))
    assert s["accuracy"] == 4 / 6
    assert np.isclose(s["uar"], (1 / 2 + 2 / 3 + 1) / 3)  # classes 3..7 are absent
    assert s["precision"][:3] == [1.0, 2 / 3, 0.5] and s["support"][:3] == [2, 3, 1]
    f1 = [2 * p * r / (p + r) for p, r in zip(s["precision"][:3], s["recall"][:3])]
    assert np.isclose(s["macro_f1"], np.mean(f1))


def fake_result(kind, split, accuracy, rng):
    y = rng.integers(0, 8, 200)
    wrong = rng.random(200) > accuracy
    pred = np.where(wrong, (y + 1) % 8, y)
    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5, "val_loss": 1 / e,
                "val_acc": 0.5, "val_uar": 0.5, "samples_per_s": 100.0 * e,
                "data_wait_share": 0.05, "steady_data_wait_share": 0.01,
                "first_batch_s": 0.1} for e in (1, 2, 3)]
    test = {"y_true": y.tolist(), "y_pred": pred.tolist(), "trial_id": []}
    if kind == "fusion":
        test["ablation"] = {"no_audio": 0.3, "no_video": 0.4}
    return {"kind": kind, "split": split, "artifact": f"m/{split}/{kind}.pt", "preset": "paper",
            "history": history, "starts": [0, 2], "best_epoch": 3, "epochs_run": 3,
            "test": test, "workers": 2, "use_gpu": False, "cpus_per_worker": 0.5}


def test_report_over_folds(tmp_path):
    cfg = train_config({"name": "r", "data": "d", "storage": "s",
                        "protocol": {"kind": "actors", "folds": 2}})
    splits = [Split("fold0", ("a",), ("b",), ("c",), (1,), (2,)),
              Split("fold1", ("a",), ("b",), ("c",), (2,), (1,))]
    rng = np.random.default_rng(0)
    results = [fake_result(kind, s.name, acc, rng) for s in splits
               for kind, acc in (("audio", 0.6), ("video", 0.5), ("fusion", 0.7))]
    m = write_report(str(tmp_path), cfg, splits, results)
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    audio = m["stages"]["audio"]
    assert abs(audio["test"]["accuracy"]["mean"] - 0.6) < 0.06
    assert len(audio["test"]["accuracy"]["splits"]) == 2
    assert audio["throughput"]["samples_per_s"] == 250.0  # epochs 2-3, warm-up left out
    assert m["protocol"]["kind"] == "actors" and "2 folds by actor" in m["protocol"]["description"]
    summary = (tmp_path / "summary.md").read_text()
    assert "2 folds by actor" in summary
    assert "| Audio (1D CNN) | paper |" in summary and " ± " in summary and "64.09" in summary
    assert "Fusion with the audio embedding zeroed: 30.00%" in summary
    for kind in ("audio", "video", "fusion"):
        for name in (f"confusion_{kind}.png", f"curves_{kind}.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_report_of_an_untested_run(tmp_path):
    """Protocol ``all`` trains on every actor: the report keeps training figures, no scores."""
    cfg = train_config({"name": "r", "data": "d", "storage": "s", "stages": ["audio"],
                        "protocol": {"kind": "all", "val_fraction": 0}})
    rng = np.random.default_rng(0)
    result = {**fake_result("audio", "all", 0.6, rng), "test": None}
    m = write_report(str(tmp_path), cfg, [Split("all", ("a", "b"), (), ())], [result])
    assert m["stages"]["audio"]["test"] is None and m["stages"]["audio"]["confusion"] is None
    assert m["stages"]["audio"]["splits"]["all"]["artifact"] == "m/all/audio.pt"
    summary = (tmp_path / "summary.md").read_text()
    assert "| Audio (1D CNN) | paper | not tested |" in summary
    assert "nothing is tested" in summary and "Per class" not in summary
    assert (tmp_path / "curves_audio.png").exists()
    assert not (tmp_path / "confusion_audio.png").exists()


def test_a_long_model_title_stays_inside_its_figures():
    title = " + ".join(["1D CNN with speaker head"] * 2 + ["summary MLP"] + ["1D CNN"] * 2)
    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5} for e in (1, 2)]
    for fig in (plot_confusion(np.eye(8), f"Audio (ensemble: {title})"),
                plot_curves({"fold0": history}, f"Audio (ensemble: {title})")):
        fig.canvas.draw()
        for ax in (a for a in fig.axes if a.get_title()):  # the colorbar has none
            extent = ax.title.get_window_extent()
            assert fig.bbox.x0 <= extent.x0 and extent.x1 <= fig.bbox.x1, ax.get_title()
        plt.close(fig)
